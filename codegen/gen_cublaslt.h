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

/* The storage type (enum gen_dtype) of each cuBLASLt operand, from the
 * path's buffers; -1 where the GEMM has none. Compute and scale are fp32
 * always, so D = alpha op(A) op(B) + beta C is summed in fp32 and rounded
 * once to D's type. C is D's type (cuBLASLt requires Ctype = Dtype for
 * these types). bias: the bias (BIAS, GELU_*BIAS) or the bias gradient
 * (BGRAD), set as CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE. Unset, cuBLASLt takes
 * the bias vector's type to be Dtype (outside IMMA and fp8 kernels), and
 * the generator keeps it so: a dW GEMM's bias gradient has the gradients'
 * dtype like its D (fp32 in bf16-mixed, bf16 in bf16-true), a forward
 * GEMM's bias the weights' dtype like its output. aux (GELU_AUX*, DGELU)
 * is D's type too. */
typedef struct {
  int a, b, c, d, bias, aux;
} gen_lt_types;

void gen_lt_types_of(const gen_path *p, const gen_gemm *g, gen_lt_types *out);
const char *gen_lt_epilogue_name(int e); /* "GELU_AUX_BIAS" */

#endif
