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

/* Operand alignment. cuBLASLt's heuristic assumes every operand pointer is
 * 256-byte aligned unless the preference says less
 * (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_{A,B,C,D}_BYTES, default 256), and
 * takes the bias and aux alignment from the pointer values set on the
 * descriptor; an algorithm picked for 256 may fail or fault on a pointer
 * that is less aligned. The device trainer's parameters sit at multiples
 * of 16 elements (32 bytes in bf16) and views at column offsets, so the
 * backend picks one algorithm per tier (256 bytes, 16 bytes, the element
 * size) and each call takes the first tier its pointers meet. */
#define GEN_LT_NTIERS 3

/* The bytes tier t asks of an operand of elem_bytes: 256, 16, elem_bytes
 * (never below elem_bytes). */
unsigned gen_lt_tier_align(int tier, int elem_bytes);
/* The largest power of two <= 256 dividing p (256 for 0: no pointer). */
unsigned gen_lt_ptr_align(uintptr_t p);
/* The first tier t with have[t] that all n pointers p[i] (elem[i] bytes
 * per element; 0: no operand) meet; -1 if none does. */
int gen_lt_pick_tier(const int have[GEN_LT_NTIERS], int n, const uintptr_t *p, const int *elem);

#endif
