/* test_gemm_lt: the cuBLASLt form of every kind of plan GEMM computes what
 * the plan means. For each op (forward, dX, dW), weight layout, epilogue and
 * beta, at odd sizes, a column-major matmul written from cuBLASLt's
 * documented semantics (D = op(A) op(B) + beta C, then the epilogue), fed
 * the operands gen_lt_of picks, must equal cpu_ops on the row-major data;
 * bf16-true's dW GEMMs (bf16 D, beta = 1, BGRAD) with the operand types
 * gen_lt_types_of gives cuBLASLt, and those types over whole programs. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "cpu_ops.h"
#include "gen_cublaslt.h"
#include "model_yaml.h"

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

/* ---- bf16-true: dW GEMMs with a bf16 D (and bias gradient) -------------- */

static float bf16_round(float x) { /* round to nearest even, as cuBLASLt's store */
  uint32_t u;
  memcpy(&u, &x, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  memcpy(&x, &u, 4);
  return x;
}

static void round_all(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = bf16_round(p[i]);
}

/* dW += dy^T x with dy, x, the old dW and the result in bf16, beta = 1, and
 * BGRAD's bias gradient in bf16: gen_lt_types_of says bf16 for A, B, C, D
 * and the bias (cuBLASLt's BIAS_DATA_TYPE default is Dtype, kept), and the
 * column-major call (fp32 sum of C + A B, one rounding) equals the plan's
 * meaning (cpu_ops in fp32 on the bf16 values, one rounding): at most one
 * bf16 ulp apart (the sums' orders differ), where a wrong operand, transpose
 * or a C that is not added is off by O(1). */
static void check_dw_bf16(int layout, int epilogue) {
  const int rows = 7, in = 5, out = 9;
  int wr = layout == 1 ? in : out, wc = layout == 1 ? out : in;
  size_t dn = (size_t)wr * wc;
  float *dy = random_floats((size_t)rows * out, 21), *x = random_floats((size_t)rows * in, 23);
  float *c = random_floats(dn, 25);
  round_all(dy, (size_t)rows * out), round_all(x, (size_t)rows * in), round_all(c, dn);
  float *want = malloc(dn * sizeof *want), *got = calloc(dn, sizeof *got);
  float *want_bg = calloc((size_t)out, sizeof *want_bg), *got_bg = calloc((size_t)out, sizeof *got_bg);
  memcpy(want, c, dn * sizeof *want);
  cpu_linear_backward_w(want, dy, x, rows, in, out, layout);
  round_all(want, dn);
  if (epilogue == GEN_EPI_BGRAD) cpu_linear_backward_b(want_bg, dy, rows, out), round_all(want_bg, out);

  /* a path with the four buffers as a bf16-true program has them */
  gen_buffer bufs[4] = {{.name = "d_y", .dtype = GEN_BF16, .rows = rows, .cols = out},
                        {.name = "x", .dtype = GEN_BF16, .rows = rows, .cols = in},
                        {.name = "d_w", .role = GEN_BUF_PARAM_GRAD, .dtype = GEN_BF16, .rows = wr, .cols = wc},
                        {.name = "d_b", .role = GEN_BUF_PARAM_GRAD, .dtype = GEN_BF16, .rows = 1, .cols = out}};
  gen_path p = {.n_bufs = 4, .bufs = bufs};
  gen_gemm g = {.op = GEN_GEMM_DW, .layout = layout, .rows = rows, .in = in, .out = out,
                .a = {0, 0, out}, .w = {1, 0, in}, .d = {2, 0, wc}, .beta = 1, .c = {2, 0, wc},
                .epilogue = epilogue, .bias = {epilogue == GEN_EPI_BGRAD ? 3 : -1, 0, out},
                .aux = {-1, 0, 0}};
  gen_lt lt;
  gen_lt_types ty;
  gen_lt_of(&g, &lt);
  gen_lt_types_of(&p, &g, &ty);
  CHECK(ty.a == GEN_BF16 && ty.b == GEN_BF16 && ty.c == GEN_BF16 && ty.d == GEN_BF16);
  CHECK(ty.bias == (epilogue == GEN_EPI_BGRAD ? GEN_BF16 : -1) && ty.aux == -1);
  CHECK(lt.beta == 1);
  lt_operands o = {.A = lt.a_from == GEN_LT_A ? dy : x, .B = lt.b_from == GEN_LT_A ? dy : x,
                   .C = c, .D = got, .bias_grad = got_bg};
  lt_reference(&lt, &o);
  round_all(got, dn);
  round_all(got_bg, out);
  /* one bf16 ulp: 2^-7 relative (plus the absolute floor of max_rel) */
  CHECK_MSG(max_rel(got, want, dn) < 1.0 / 128, "layout %d %s: bf16 dW differs by %g", layout,
            gen_lt_epilogue_name(lt.epilogue), max_rel(got, want, dn));
  /* C matters: the same product without the old dW is far off */
  float *fresh = calloc(dn, sizeof *fresh);
  cpu_linear_backward_w(fresh, dy, x, rows, in, out, layout);
  CHECK(max_rel(got, fresh, dn) > 0.1);
  free(fresh);
  if (epilogue == GEN_EPI_BGRAD)
    CHECK_MSG(max_rel(got_bg, want_bg, (size_t)out) < 1.0 / 128, "layout %d: bf16 bias gradient differs",
              layout);
  free(dy), free(x), free(c), free(want), free(got), free(want_bg), free(got_bg);
}

static void test_backward_w_bf16(void) {
  for (int layout = 0; layout < 2; layout++) {
    check_dw_bf16(layout, GEN_EPI_NONE);
    check_dw_bf16(layout, GEN_EPI_BGRAD);
  }
}

/* Every GEMM of a generated program: D's type is the gradients' dtype for
 * dW GEMMs (bf16 in bf16-true, fp32 in bf16-mixed) and the storage dtype
 * otherwise; the bias (or BGRAD's bias gradient) and aux are D's type, as
 * cuBLASLt's defaults take them; bf16-true has BGRAD dW GEMMs. */
static void check_program_types(int grad_dtype) {
  ir_model m;
  lt_error err = {{0}};
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err) || ad_build_backward(&m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  gen_config cfg = {.B = 2, .T = 4, .dtype = GEN_BF16, .grad_dtype = grad_dtype, .grad_accum = 1};
  gen_program prog;
  if (gen_build(&prog, &m, &cfg, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ir_model_free(&m);
    return;
  }
  int dw = 0, bgrad = 0;
  for (int i = 0; i < prog.n_paths; i++) {
    const gen_path *p = &prog.paths[i];
    for (int s = 0; s < p->n_steps; s++) {
      if (p->steps[s].kind != GEN_STEP_GEMM) continue;
      const gen_gemm *g = &p->steps[s].gemm;
      gen_lt_types ty;
      gen_lt_types_of(p, g, &ty);
      int want_d = g->op == GEN_GEMM_DW ? grad_dtype : GEN_BF16;
      CHECK_MSG(ty.d == want_d && ty.c == want_d, "%s step %d: D is %s", p->name, s,
                gen_dtype_name(ty.d));
      CHECK(ty.a == GEN_BF16 && ty.b == GEN_BF16);
      CHECK_MSG(ty.bias < 0 || ty.bias == ty.d, "%s step %d: bias %s, D %s", p->name, s,
                gen_dtype_name(ty.bias), gen_dtype_name(ty.d));
      CHECK(ty.aux < 0 || ty.aux == ty.d);
      dw += g->op == GEN_GEMM_DW;
      bgrad += g->epilogue == GEN_EPI_BGRAD;
    }
  }
  CHECK(dw > 0 && bgrad > 0);
  gen_free(&prog);
  /* bf16 gradients only over bf16 storage */
  cfg.dtype = GEN_F32;
  if (grad_dtype == GEN_BF16) {
    CHECK(gen_build(&prog, &m, &cfg, &err) != 0);
    CHECK(strstr(err.msg, "bf16-true") != NULL);
  }
  ir_model_free(&m);
}

static void test_program_types(void) {
  check_program_types(GEN_F32);
  check_program_types(GEN_BF16);
}

/* Alignment tiers: the algorithm a call takes is one planned for no more
 * alignment than its pointers have; the last tier (element size) takes any
 * element-aligned pointer; no tier with an algorithm: -1. */
static void test_align_tiers(void) {
  CHECK(gen_lt_ptr_align(0) == 256);
  CHECK(gen_lt_ptr_align(0x1000) == 256);
  CHECK(gen_lt_ptr_align(0x1020) == 32);
  CHECK(gen_lt_ptr_align(0x1002) == 2);
  CHECK(gen_lt_ptr_align(0x1001) == 1);
  CHECK(gen_lt_tier_align(0, 2) == 256 && gen_lt_tier_align(1, 2) == 16);
  CHECK(gen_lt_tier_align(2, 2) == 2 && gen_lt_tier_align(2, 4) == 4);
  int all[GEN_LT_NTIERS] = {1, 1, 1}, no_top[GEN_LT_NTIERS] = {0, 1, 1};
  int last_only[GEN_LT_NTIERS] = {0, 0, 1}, none[GEN_LT_NTIERS] = {0, 0, 0};
  int elem[6] = {2, 2, 4, 4, 4, 0};
  uintptr_t aligned[6] = {0x10000, 0x20000, 0x30000, 0x30000, 0x40000, 0};
  CHECK(gen_lt_pick_tier(all, 6, aligned, elem) == 0);
  CHECK(gen_lt_pick_tier(no_top, 6, aligned, elem) == 1);
  /* a bf16 weight 16 elements past a 256-byte boundary (the device
   * trainer's parameter padding): 32 bytes, tier 1 */
  uintptr_t padded[6] = {0x10020, 0x20000, 0x30000, 0x30000, 0x40000, 0};
  CHECK(gen_lt_pick_tier(all, 6, padded, elem) == 1);
  /* a bf16 view at an odd column (q of a width-3 qkv): only the last tier */
  uintptr_t odd[6] = {0x10006, 0x20000, 0x30000, 0x30000, 0x40040, 0};
  CHECK(gen_lt_pick_tier(all, 6, odd, elem) == 2);
  CHECK(gen_lt_pick_tier(last_only, 6, aligned, elem) == 2);
  CHECK(gen_lt_pick_tier(no_top, 6, odd, elem) == 2);
  int no_last[GEN_LT_NTIERS] = {1, 1, 0};
  CHECK(gen_lt_pick_tier(no_last, 6, odd, elem) == -1);
  CHECK(gen_lt_pick_tier(none, 6, aligned, elem) == -1);
  /* a misaligned bias counts too */
  uintptr_t bias_off[6] = {0x10000, 0x20000, 0x30000, 0x30000, 0x40008, 0};
  CHECK(gen_lt_pick_tier(all, 6, bias_off, elem) == 2);
}

int main(void) {
  RUN(test_forward);
  RUN(test_backward_x);
  RUN(test_backward_w);
  RUN(test_backward_w_bf16);
  RUN(test_program_types);
  RUN(test_align_tiers);
  return check_exit();
}
