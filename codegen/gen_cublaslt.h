/* gen_cublaslt.h: a plan GEMM (row-major, gen.h) as the column-major
 * cuBLASLt matmul that computes it: D(m x n) = op(A) op(B) [+ C] with an
 * epilogue. A row-major [rows, cols] buffer with row stride ld is, read
 * column-major, a [cols x rows] matrix with leading dimension ld, so each
 * plan GEMM becomes a transposed product with no data movement.
 * The CUDA backend builds its descriptors from this; plan.txt prints it. */
#ifndef LT_GEN_CUBLASLT_H
#define LT_GEN_CUBLASLT_H

#include "gen.h"

enum gen_lt_operand { GEN_LT_A, GEN_LT_W }; /* gen_gemm.a or gen_gemm.w */

enum gen_lt_epilogue { /* the CUBLASLT_EPILOGUE_* each maps to */
  GEN_LT_DEFAULT, GEN_LT_BIAS, GEN_LT_GELU, GEN_LT_GELU_AUX, GEN_LT_GELU_BIAS,
  GEN_LT_GELU_AUX_BIAS, GEN_LT_DGELU, GEN_LT_BGRADA, GEN_LT_BGRADB,
};

typedef struct {
  long long m, n, k;
  int a_from, b_from;        /* enum gen_lt_operand: which plan operand is A, B */
  int trans_a, trans_b;      /* 1: CUBLAS_OP_T */
  long long lda, ldb, ldd;   /* ldc = ldd (C is D's layout); aux has ldd too */
  int beta;                  /* 0 or 1 */
  int epilogue;              /* enum gen_lt_epilogue */
} gen_lt;

void gen_lt_of(const gen_gemm *g, gen_lt *out);
const char *gen_lt_epilogue_name(int e); /* "GELU_AUX_BIAS" */

#endif
