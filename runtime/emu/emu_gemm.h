/* emu_gemm.h: a generated program's GEMM step on the host, as cuBLASLt
 * computes it: fp32 products of the operands (bf16 widened exactly), the
 * result rounded once into D's dtype; the GELU aux at D's leading
 * dimension (EPILOGUE_AUX_LD = ldd); BGRADB's bias gradient overwritten. */
#ifndef LT_EMU_GEMM_H
#define LT_EMU_GEMM_H

#include "path_exec.h"

int emu_gemm_run(const gen_path *p, const path_exec_gemm *pg, lt_error *err);

#endif
