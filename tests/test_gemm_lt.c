/* test_gemm_lt: the cuBLASLt form of every kind of plan GEMM computes what
 * the plan means. For each op (forward, dX, dW), weight layout, epilogue and
 * beta, at odd sizes, a column-major matmul written from cuBLASLt's
 * documented semantics (D = op(A) op(B) + beta C, then the epilogue), fed
 * the operands gen_lt_of picks, must equal cpu_ops on the row-major data. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"
#include "gen_cublaslt.h"

/* cuBLASLt's tanh GELU and its derivative, as in the CPU backend */
static void gelu(float *x, int64_t n) { cpu_gelu_forward(x, x, n); }

typedef struct {
  const float *A, *B, *C, *bias, *aux_in;
  float *D, *aux_out, *bias_grad;
} lt_operands;

static float op_at(const float *X, int trans, long long ld, long long i, long long j) {
  return trans ? X[j + i * ld] : X[i + j * ld]; /* op(X)(i, j), column-major */
}

/* The column-major reference, one epilogue at a time. */
static void lt_reference(const gen_lt *lt, const lt_operands *o) {
  long long m = lt->m, n = lt->n, k = lt->k;
  float *pre = calloc((size_t)(m * n), sizeof *pre);
  for (long long j = 0; j < n; j++)
    for (long long i = 0; i < m; i++) {
      double s = 0;
      for (long long p = 0; p < k; p++)
        s += (double)op_at(o->A, lt->trans_a, lt->lda, i, p) * op_at(o->B, lt->trans_b, lt->ldb, p, j);
      if (lt->beta) s += o->C[i + j * lt->ldd];
      if (o->bias && lt->epilogue != GEN_LT_BGRADA && lt->epilogue != GEN_LT_BGRADB) s += o->bias[i];
      pre[i + j * m] = (float)s;
    }
  int e = lt->epilogue;
  if (e == GEN_LT_GELU_AUX || e == GEN_LT_GELU_AUX_BIAS)
    for (long long j = 0; j < n; j++)
      for (long long i = 0; i < m; i++) o->aux_out[i + j * lt->ldd] = pre[i + j * m];
  if (e == GEN_LT_GELU || e == GEN_LT_GELU_AUX || e == GEN_LT_GELU_BIAS || e == GEN_LT_GELU_AUX_BIAS)
    gelu(pre, m * n);
  if (e == GEN_LT_DGELU)
    for (long long j = 0; j < n; j++)
      for (long long i = 0; i < m; i++) {
        float dx;
        cpu_gelu_backward(&dx, &pre[i + j * m], &o->aux_in[i + j * lt->ldd], 1);
        pre[i + j * m] = dx;
      }
  if (e == GEN_LT_BGRADA) /* bias gradient: sums of op(A) over k, one per row of D */
    for (long long i = 0; i < m; i++) {
      double s = 0;
      for (long long p = 0; p < k; p++) s += op_at(o->A, lt->trans_a, lt->lda, i, p);
      o->bias_grad[i] = (float)s;
    }
  if (e == GEN_LT_BGRADB) /* sums of op(B) over k, one per column of D */
    for (long long j = 0; j < n; j++) {
      double s = 0;
      for (long long p = 0; p < k; p++) s += op_at(o->B, lt->trans_b, lt->ldb, p, j);
      o->bias_grad[j] = (float)s;
    }
  for (long long j = 0; j < n; j++)
    for (long long i = 0; i < m; i++) o->D[i + j * lt->ldd] = pre[i + j * m];
  free(pre);
}

static float *random_floats(size_t n, unsigned seed) {
  float *p = malloc(n * sizeof *p);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
  }
  return p;
}

static double max_rel(const float *got, const float *want, size_t n) {
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - want[i]) / (1e-3 + fabs(want[i]));
    if (e > worst) worst = e;
  }
  return worst;
}

/* One plan GEMM both ways. rows, in, out odd; the plan's row-major data.
 * (fp32 sums against double ones: 1e-4 relative; a wrong transpose or
 * leading dimension is off by O(1).) */
static void check_case(int op, int layout, int epilogue, int beta) {
  const int rows = 7, in = 5, out = 9;
  int wr = layout == 1 ? in : out, wc = layout == 1 ? out : in; /* stored W shape */
  int acols = op == GEN_GEMM_FWD ? in : out, dcols = op == GEN_GEMM_FWD ? out : in;
  float *a = random_floats((size_t)rows * acols, 1 + op);
  float *w = op == GEN_GEMM_DW ? random_floats((size_t)rows * in, 7) : random_floats((size_t)wr * wc, 3);
  size_t dn = op == GEN_GEMM_DW ? (size_t)wr * wc : (size_t)rows * dcols;
  float *c = random_floats(dn, 5); /* what D adds to: dW's own old value for DW */
  float *bias = random_floats((size_t)out, 9), *aux = random_floats((size_t)rows * dcols, 11);
  float *want = calloc(dn, sizeof *want), *got = calloc(dn, sizeof *got);
  float *want_aux = calloc(dn, sizeof *want_aux), *got_aux = calloc(dn, sizeof *got_aux);
  float *want_bg = calloc((size_t)out, sizeof *want_bg), *got_bg = calloc((size_t)out, sizeof *got_bg);

  gen_gemm g = {.op = op, .layout = layout, .rows = rows, .in = in, .out = out,
                .a = {0, 0, acols}, .w = {1, 0, op == GEN_GEMM_DW ? in : wc},
                .d = {2, 0, op == GEN_GEMM_DW ? wc : dcols}, .beta = beta || op == GEN_GEMM_DW,
                .epilogue = epilogue};
  /* the plan's meaning, through cpu_ops (as the emulator test runs it) */
  if (op == GEN_GEMM_DW) {
    memcpy(want, c, dn * sizeof *want); /* dW accumulates */
    cpu_linear_backward_w(want, a, w, rows, in, out, layout);
    if (epilogue == GEN_EPI_BGRAD) cpu_linear_backward_b(want_bg, a, rows, out);
  } else {
    if (op == GEN_GEMM_FWD) {
      int has_bias = epilogue == GEN_EPI_BIAS || epilogue == GEN_EPI_GELU_BIAS ||
                     epilogue == GEN_EPI_GELU_AUX_BIAS;
      cpu_linear_forward(want, a, w, has_bias ? bias : NULL, rows, in, out, layout);
    } else {
      cpu_linear_backward_x(want, a, w, rows, in, out, layout);
    }
    for (size_t i = 0; beta && i < dn; i++) want[i] += c[i];
    if (epilogue == GEN_EPI_GELU_AUX || epilogue == GEN_EPI_GELU_AUX_BIAS)
      memcpy(want_aux, want, dn * sizeof *want);
    if (epilogue == GEN_EPI_GELU || epilogue == GEN_EPI_GELU_BIAS || epilogue == GEN_EPI_GELU_AUX ||
        epilogue == GEN_EPI_GELU_AUX_BIAS)
      gelu(want, (int64_t)dn);
    if (epilogue == GEN_EPI_DGELU) cpu_gelu_backward(want, want, aux, (int64_t)dn);
  }
  /* the same through the cuBLASLt form */
  gen_lt lt;
  gen_lt_of(&g, &lt);
  int uses_bias = epilogue == GEN_EPI_BIAS || epilogue == GEN_EPI_GELU_BIAS ||
                  epilogue == GEN_EPI_GELU_AUX_BIAS;
  lt_operands o = {.A = lt.a_from == GEN_LT_A ? a : w, .B = lt.b_from == GEN_LT_A ? a : w,
                   .C = c, .bias = uses_bias ? bias : NULL, .aux_in = aux, .D = got,
                   .aux_out = got_aux, .bias_grad = got_bg};
  lt_reference(&lt, &o);

  CHECK_MSG(max_rel(got, want, dn) < 1e-4, "op %d layout %d epilogue %s beta %d: D differs by %g",
            op, layout, gen_lt_epilogue_name(lt.epilogue), beta, max_rel(got, want, dn));
  if (epilogue == GEN_EPI_GELU_AUX || epilogue == GEN_EPI_GELU_AUX_BIAS)
    CHECK_MSG(max_rel(got_aux, want_aux, dn) < 1e-4, "op %d layout %d: aux differs", op, layout);
  if (epilogue == GEN_EPI_BGRAD)
    CHECK_MSG(max_rel(got_bg, want_bg, (size_t)out) < 1e-4, "layout %d %s: bias gradient differs",
              layout, gen_lt_epilogue_name(lt.epilogue));
  free(a), free(w), free(c), free(bias), free(aux), free(want), free(got);
  free(want_aux), free(got_aux), free(want_bg), free(got_bg);
}

static void test_forward(void) {
  int epis[] = {GEN_EPI_NONE, GEN_EPI_BIAS, GEN_EPI_GELU, GEN_EPI_GELU_AUX, GEN_EPI_GELU_BIAS,
                GEN_EPI_GELU_AUX_BIAS};
  for (int layout = 0; layout < 2; layout++)
    for (size_t e = 0; e < sizeof epis / sizeof epis[0]; e++)
      for (int beta = 0; beta < 2; beta++) check_case(GEN_GEMM_FWD, layout, epis[e], beta);
}

static void test_backward_x(void) {
  for (int layout = 0; layout < 2; layout++) {
    check_case(GEN_GEMM_DX, layout, GEN_EPI_NONE, 0);
    check_case(GEN_GEMM_DX, layout, GEN_EPI_NONE, 1);
    check_case(GEN_GEMM_DX, layout, GEN_EPI_DGELU, 0);
  }
}

static void test_backward_w(void) {
  for (int layout = 0; layout < 2; layout++) {
    check_case(GEN_GEMM_DW, layout, GEN_EPI_NONE, 1);
    check_case(GEN_GEMM_DW, layout, GEN_EPI_BGRAD, 1);
  }
}

int main(void) {
  RUN(test_forward);
  RUN(test_backward_x);
  RUN(test_backward_w);
  return check_exit();
}
