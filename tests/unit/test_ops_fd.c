/* test_ops_fd.c: every CPU kernel's backward against central finite
 * differences, and forwards against naive double-precision references.
 *
 * Gradients use a random projection loss L = sum(dy * y): its derivative
 * with respect to an input is exactly what backward computes from dy, so one
 * pair of forward runs per input element checks the whole gradient. Shapes
 * are odd on purpose (7, 13, 5, 11) and some exceed the 64-column strips the
 * accumulating kernels use. Accumulating kernels start from a known non-zero
 * gradient; overwriting kernels start from garbage. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"
#include "expr.h"
#include "ir.h"

#define FD_EPS 1e-2f
#define FD_RTOL 2e-3  /* of the largest |gradient| element */
#define FWD_TOL 1e-5
#define PREFILL 0.75f /* what accumulating gradients start from */
#define GARBAGE 1e3f  /* what overwritten outputs start from */

/* ------------------------------------------------------------------------ */
/* helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float uniform(float lo, float hi) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  uint64_t r = rng_state * 2685821657736338717ull;
  return lo + (hi - lo) * (float)((r >> 40) / 16777216.0);
}

static float *rand_buf(int64_t n, float lo, float hi) {
  float *p = malloc((size_t)n * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = uniform(lo, hi);
  return p;
}

static float *filled(int64_t n, float value) {
  float *p = malloc((size_t)n * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = value;
  return p;
}

static void sub_scalar(float *p, int64_t n, float value) {
  for (int64_t i = 0; i < n; i++) p[i] -= value;
}

/* A forward pass over inputs held in ctx, writing y. */
typedef void (*forward_fn)(const void *ctx, float *y);

static double projected_loss(forward_fn f, const void *ctx, float *y,
                             const float *dy, int64_t ny) {
  f(ctx, y);
  double s = 0.0;
  for (int64_t i = 0; i < ny; i++) s += (double)dy[i] * y[i];
  return s;
}

/* Checks grad against central differences of sum(dy * f(ctx)) with respect
 * to each element of x (which ctx reads). Errors are measured against the
 * largest gradient element so tiny entries do not need a relative match. */
static void check_grad(const char *what, forward_fn f, const void *ctx,
                       float *x, int64_t nx, const float *grad, int64_t ny,
                       const float *dy) {
  float *y = malloc((size_t)ny * sizeof *y);
  double *fd = malloc((size_t)nx * sizeof *fd);
  double scale = 1e-3;
  for (int64_t i = 0; i < nx; i++) {
    float saved = x[i], hi = saved + FD_EPS, lo = saved - FD_EPS;
    x[i] = hi;
    double lp = projected_loss(f, ctx, y, dy, ny);
    x[i] = lo;
    double lm = projected_loss(f, ctx, y, dy, ny);
    x[i] = saved;
    fd[i] = (lp - lm) / ((double)hi - lo);
    if (fabs(fd[i]) > scale) scale = fabs(fd[i]);
  }
  int64_t worst = 0;
  double worst_err = -1.0;
  for (int64_t i = 0; i < nx; i++) {
    double e = fabs(grad[i] - fd[i]);
    if (e > worst_err) worst_err = e, worst = i;
  }
  CHECK_MSG(worst_err <= FD_RTOL * scale,
            "%s: element %lld: backward %.6g, finite difference %.6g "
            "(largest %.3g)",
            what, (long long)worst, grad[worst], fd[worst], scale);
  free(fd);
  free(y);
}

/* |got - want| <= FWD_TOL * (1 + |want|) everywhere */
static void check_values(const char *what, const float *got, const double *want,
                         int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (fabs(got[i] - want[i]) > FWD_TOL * (1.0 + fabs(want[i]))) {
      CHECK_MSG(0, "%s[%lld] = %.9g, reference %.9g", what, (long long)i,
                got[i], want[i]);
      return;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* linear */

typedef struct {
  float *x, *W, *b;
  int N, in, out, layout;
} linear_ctx;

static void linear_fwd(const void *c, float *y) {
  const linear_ctx *l = c;
  cpu_linear_forward(y, l->x, l->W, l->b, l->N, l->in, l->out, l->layout);
}

static void linear_reference(double *y, const linear_ctx *l) {
  for (int n = 0; n < l->N; n++) {
    for (int o = 0; o < l->out; o++) {
      double s = l->b ? l->b[o] : 0.0;
      for (int i = 0; i < l->in; i++) {
        float w = l->layout == IR_LAYOUT_OUT_IN ? l->W[o * l->in + i]
                                                : l->W[i * l->out + o];
        s += (double)l->x[n * l->in + i] * w;
      }
      y[n * l->out + o] = s;
    }
  }
}

static void linear_case(int N, int in, int out, int layout, int has_bias) {
  linear_ctx l = {rand_buf(N * in, -1, 1), rand_buf(in * out, -1, 1),
                  has_bias ? rand_buf(out, -1, 1) : NULL, N, in, out, layout};
  int64_t ny = (int64_t)N * out;
  float *y = malloc(ny * sizeof *y), *dy = rand_buf(ny, -1, 1);
  double *ref = malloc(ny * sizeof *ref);
  linear_fwd(&l, y);
  linear_reference(ref, &l);
  check_values(layout == IR_LAYOUT_OUT_IN ? "linear out_in y" : "linear in_out y",
               y, ref, ny);

  float *dx = filled(N * in, GARBAGE), *dW = filled(in * out, PREFILL),
        *db = filled(out, PREFILL);
  cpu_linear_backward_x(dx, dy, l.W, N, in, out, layout);
  cpu_linear_backward_w(dW, dy, l.x, N, in, out, layout);
  cpu_linear_backward_b(db, dy, N, out);
  sub_scalar(dW, in * out, PREFILL);
  sub_scalar(db, out, PREFILL);
  check_grad("linear dx", linear_fwd, &l, l.x, N * in, dx, ny, dy);
  check_grad("linear dW", linear_fwd, &l, l.W, in * out, dW, ny, dy);
  if (has_bias) check_grad("linear db", linear_fwd, &l, l.b, out, db, ny, dy);
  free(l.x), free(l.W), free(l.b), free(y), free(dy), free(ref);
  free(dx), free(dW), free(db);
}

static void test_linear(void) {
  for (int layout = IR_LAYOUT_OUT_IN; layout <= IR_LAYOUT_IN_OUT; layout++) {
    linear_case(7, 13, 11, layout, 1);
    linear_case(10, 5, 70, layout, 1); /* bias grad spans two strips */
    linear_case(7, 13, 11, layout, 0);
  }
}

/* ------------------------------------------------------------------------ */
/* layernorm */

typedef struct {
  float *x, *w, *b, *mean, *rstd;
  int N, C;
  float eps;
} layernorm_ctx;

static void layernorm_fwd(const void *c, float *y) {
  const layernorm_ctx *l = c;
  cpu_layernorm_forward(y, l->mean, l->rstd, l->x, l->w, l->b, l->N, l->C,
                        l->eps);
}

static void layernorm_reference(double *y, double *mean, double *rstd,
                                const layernorm_ctx *l) {
  for (int n = 0; n < l->N; n++) {
    const float *xr = l->x + n * l->C;
    double m = 0.0, v = 0.0;
    for (int c = 0; c < l->C; c++) m += xr[c];
    m /= l->C;
    for (int c = 0; c < l->C; c++) v += (xr[c] - m) * (xr[c] - m);
    v /= l->C;
    mean[n] = m;
    rstd[n] = 1.0 / sqrt(v + l->eps);
    for (int c = 0; c < l->C; c++)
      y[n * l->C + c] = (xr[c] - m) * rstd[n] * l->w[c] + l->b[c];
  }
}

static void layernorm_case(int N, int C) {
  int64_t ny = (int64_t)N * C;
  layernorm_ctx l = {rand_buf(ny, -2, 2), rand_buf(C, 0.5f, 1.5f),
                     rand_buf(C, -1, 1), malloc(N * sizeof(float)),
                     malloc(N * sizeof(float)), N, C, 1e-5f};
  float *y = malloc(ny * sizeof *y), *dy = rand_buf(ny, -1, 1);
  double *ref = malloc(ny * sizeof *ref), *rmean = malloc(N * sizeof *rmean),
         *rrstd = malloc(N * sizeof *rrstd);
  layernorm_fwd(&l, y);
  layernorm_reference(ref, rmean, rrstd, &l);
  check_values("layernorm y", y, ref, ny);
  check_values("layernorm mean", l.mean, rmean, N);
  check_values("layernorm rstd", l.rstd, rrstd, N);

  float *dx = filled(ny, GARBAGE), *dw = filled(C, PREFILL),
        *db = filled(C, PREFILL);
  cpu_layernorm_backward_x(dx, dy, l.x, l.w, l.mean, l.rstd, N, C);
  cpu_layernorm_backward_wb(dw, db, dy, l.x, l.mean, l.rstd, N, C);
  sub_scalar(dw, C, PREFILL);
  sub_scalar(db, C, PREFILL);
  check_grad("layernorm dx", layernorm_fwd, &l, l.x, ny, dx, ny, dy);
  check_grad("layernorm dw", layernorm_fwd, &l, l.w, C, dw, ny, dy);
  check_grad("layernorm db", layernorm_fwd, &l, l.b, C, db, ny, dy);
  free(l.x), free(l.w), free(l.b), free(l.mean), free(l.rstd);
  free(y), free(dy), free(ref), free(rmean), free(rrstd);
  free(dx), free(dw), free(db);
}

static void test_layernorm(void) {
  layernorm_case(7, 13);
  layernorm_case(10, 70);
}

/* ------------------------------------------------------------------------ */
/* RMSNorm */

typedef struct {
  float *x, *w, *rstd;
  int N, C;
  float eps, offset; /* the weight applied is offset + w */
} rmsnorm_ctx;

static void rmsnorm_fwd(const void *c, float *y) {
  const rmsnorm_ctx *r = c;
  cpu_rmsnorm_forward(y, r->rstd, r->x, r->w, r->N, r->C, r->eps, r->offset);
}

static void rmsnorm_reference(double *y, double *rstd, const rmsnorm_ctx *r) {
  for (int n = 0; n < r->N; n++) {
    const float *xr = r->x + n * r->C;
    double ms = 0.0;
    for (int c = 0; c < r->C; c++) ms += (double)xr[c] * xr[c];
    rstd[n] = 1.0 / sqrt(ms / r->C + r->eps);
    for (int c = 0; c < r->C; c++)
      y[n * r->C + c] = ((double)r->offset + r->w[c]) * (xr[c] * rstd[n]);
  }
}

static void rmsnorm_case(int N, int C, float eps, float offset) {
  int64_t ny = (int64_t)N * C;
  rmsnorm_ctx r = {rand_buf(ny, -2, 2), rand_buf(C, 0.5f - offset, 1.5f - offset),
                   malloc(N * sizeof(float)), N, C, eps, offset};
  float *y = malloc(ny * sizeof *y), *dy = rand_buf(ny, -1, 1);
  double *ref = malloc(ny * sizeof *ref), *rrstd = malloc(N * sizeof *rrstd);
  rmsnorm_fwd(&r, y);
  rmsnorm_reference(ref, rrstd, &r);
  check_values("rmsnorm y", y, ref, ny);
  check_values("rmsnorm rstd", r.rstd, rrstd, N);

  float *dx = filled(ny, GARBAGE), *dw = filled(C, PREFILL);
  cpu_rmsnorm_backward_x(dx, dy, r.x, r.w, r.rstd, N, C, offset);
  cpu_rmsnorm_backward_w(dw, dy, r.x, r.rstd, N, C);
  sub_scalar(dw, C, PREFILL);
  check_grad("rmsnorm dx", rmsnorm_fwd, &r, r.x, ny, dx, ny, dy);
  check_grad("rmsnorm dw", rmsnorm_fwd, &r, r.w, C, dw, ny, dy);
  free(r.x), free(r.w), free(r.rstd), free(y), free(dy), free(ref), free(rrstd);
  free(dx), free(dw);
}

static void test_rmsnorm(void) {
  rmsnorm_case(7, 13, 1e-6f, 0.0f);
  rmsnorm_case(10, 70, 1e-5f, 0.0f); /* dw spans two strips */
  rmsnorm_case(9, 16, 1e-6f, 1.0f);  /* Gemma's 1 + w, w near zero */
  /* eps matters where mean(x^2) is small: rows of +-0.01 */
  rmsnorm_ctx r = {filled(26, 0.01f), filled(13, 1.0f), malloc(2 * sizeof(float)), 2, 13,
                   1e-4f, 0.0f};
  for (int i = 0; i < 26; i += 2) r.x[i] = -0.01f;
  float y[26];
  rmsnorm_fwd(&r, y);
  CHECK_CLOSE(r.rstd[0], 1.0 / sqrt(1e-4 + 1e-4), 0, 1e-6);
  CHECK_CLOSE(y[1], 0.01 / sqrt(2e-4), 0, 1e-6);
  free(r.x), free(r.w), free(r.rstd);
}

/* ------------------------------------------------------------------------ */
/* rotary position embedding */

typedef struct {
  float *x;
  int N, T, heads, hd, rot;
  double theta;
} rope_ctx;

static void rope_fwd(const void *c, float *y) {
  const rope_ctx *r = c;
  cpu_rope_forward(y, r->x, r->N, r->T, r->heads, r->hd, r->rot, r->theta);
}

/* Hugging Face's formula element by element, in double: x * cos +
 * rotate_half(x) * sin with rotate_half(x) = [-x2, x1] over the rot dims. */
static void rope_reference(double *y, const rope_ctx *r) {
  int half = r->rot / 2, W = r->heads * r->hd;
  for (int n = 0; n < r->N; n++)
    for (int h = 0; h < r->heads; h++)
      for (int d = 0; d < r->hd; d++) {
        const float *xh = r->x + n * W + h * r->hd;
        int i = d % half;
        double angle = (n % r->T) * pow(r->theta, -2.0 * i / r->rot);
        double rotated = d < half ? -xh[d + half] : xh[d - half];
        y[n * W + h * r->hd + d] =
            d < r->rot ? xh[d] * cos(angle) + rotated * sin(angle) : xh[d];
      }
}

static void rope_case(int B, int T, int heads, int hd, int rot, double theta) {
  int N = B * T;
  int64_t n = (int64_t)N * heads * hd;
  rope_ctx r = {rand_buf(n, -2, 2), N, T, heads, hd, rot, theta};
  float *y = malloc(n * sizeof *y), *dy = rand_buf(n, -1, 1);
  double *ref = malloc(n * sizeof *ref);
  char what[2][96];
  snprintf(what[0], sizeof what[0], "rope B=%d T=%d heads=%d hd=%d rot=%d theta=%g y",
           B, T, heads, hd, rot, theta);
  snprintf(what[1], sizeof what[1], "rope B=%d T=%d heads=%d hd=%d rot=%d theta=%g dx",
           B, T, heads, hd, rot, theta);
  rope_fwd(&r, y);
  rope_reference(ref, &r);
  check_values(what[0], y, ref, n);

  float *dx = filled(n, GARBAGE);
  cpu_rope_backward(dx, dy, N, T, heads, hd, rot, theta);
  check_grad(what[1], rope_fwd, &r, r.x, n, dx, n, dy);
  /* turning back undoes the turn */
  cpu_rope_backward(dx, y, N, T, heads, hd, rot, theta);
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(dx[i] - r.x[i]));
  CHECK_MSG(worst < 1e-5, "%s: backward(forward(x)) - x up to %.3g", what[0], worst);
  free(r.x), free(y), free(dy), free(ref), free(dx);
}

static void test_rope(void) {
  rope_case(2, 5, 3, 6, 6, 10000.0);  /* hd/2 = 3: odd pair count */
  rope_case(1, 9, 2, 10, 10, 1e6);
  rope_case(2, 4, 3, 10, 4, 10000.0); /* partial: dims 4..9 pass through */
  rope_case(1, 3, 2, 142, 140, 500000.0); /* 70 pairs: two chunks of frequencies */
}

/* ------------------------------------------------------------------------ */
/* GELU */

typedef struct {
  float *x;
  int64_t n;
} gelu_ctx;

static void gelu_fwd(const void *c, float *y) {
  const gelu_ctx *g = c;
  cpu_gelu_forward(y, g->x, g->n);
}

static void test_gelu(void) {
  /* torch.nn.functional.gelu(x, approximate='tanh') in float64; near |x| = 2
   * the output is most sensitive to the 0.044715 constant, so the tolerance
   * is a few fp32 ulps rather than FWD_TOL */
  float x[10] = {-3, -2, -1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 2.5f};
  double want[10] = {-0.0036373920817729943, -0.04540230591222494,
                     -0.15880800939172324,   -0.15428599017485606,
                     0.0,                    0.34571400982514394,
                     0.8411919906082768,     1.3995715769802328,
                     1.954597694087775,      2.484915733910001};
  float y[10];
  cpu_gelu_forward(y, x, 10);
  for (int i = 0; i < 10; i++) CHECK_CLOSE(y[i], want[i], 1e-7, 5e-7);

  gelu_ctx g = {rand_buf(91, -3, 3), 91};
  float *dy = rand_buf(91, -1, 1), *dx = filled(91, GARBAGE);
  cpu_gelu_backward(dx, dy, g.x, 91);
  check_grad("gelu dx", gelu_fwd, &g, g.x, 91, dx, 91, dy);
  free(g.x), free(dy), free(dx);
}

/* ------------------------------------------------------------------------ */
/* SiLU and mul (SwiGLU's parts) */

typedef struct {
  float *x;
  int64_t n;
} silu_ctx;

static void silu_fwd(const void *c, float *y) {
  const silu_ctx *g = c;
  cpu_silu_forward(y, g->x, g->n);
}

static void test_silu(void) {
  /* torch.nn.functional.silu in float64 */
  float x[9] = {-20, -3, -1, -0.5f, 0, 0.5f, 1, 3, 20};
  double want[9] = {-4.122307236380407e-08, -0.14227761953270035,
                    -0.2689414213699951,    -0.1887703343990727,
                    0.0,                    0.3112296656009273,
                    0.7310585786300049,     2.8577223804672998,
                    19.999999958776925};
  float y[9];
  cpu_silu_forward(y, x, 9);
  for (int i = 0; i < 9; i++) CHECK_CLOSE(y[i], want[i], 1e-12, 3e-7);

  silu_ctx g = {rand_buf(91, -6, 6), 91};
  float *dy = rand_buf(91, -1, 1), *dx = filled(91, GARBAGE);
  cpu_silu_backward(dx, dy, g.x, 91);
  check_grad("silu dx", silu_fwd, &g, g.x, 91, dx, 91, dy);
  free(g.x), free(dy), free(dx);
}

/* ------------------------------------------------------------------------ */
/* activation: a custom y = fn(x), its derivative built symbolically */

typedef struct {
  float *x;
  int64_t n;
  const expr_node *fn;
} activation_ctx;

static double eval_tree(const void *tree, double x) { return expr_eval_x(tree, x); }

static void activation_fwd(const void *c, float *y) {
  const activation_ctx *a = c;
  cpu_activation_forward(y, a->x, a->n, eval_tree, a->fn);
}

/* Builds fn from text and checks its backward kernel against central
 * differences of its forward kernel over [lo, hi]. */
static void activation_case(const char *text, float lo, float hi) {
  lt_error err = {{0}};
  expr_node *fn, *dfn;
  CHECK_MSG(expr_function(text, "x", NULL, NULL, &fn, &dfn, &err) == 0, "%s", err.msg);
  if (!fn) return;
  activation_ctx a = {rand_buf(91, lo, hi), 91, fn};
  float *dy = rand_buf(91, -1, 1), *dx = filled(91, GARBAGE);
  cpu_activation_backward(dx, dy, a.x, 91, eval_tree, dfn);
  char what[160];
  snprintf(what, sizeof what, "activation '%s' dx", text);
  check_grad(what, activation_fwd, &a, a.x, 91, dx, 91, dy);
  free(a.x), free(dy), free(dx);
  expr_free(fn), expr_free(dfn);
}

static const char *const tanh_gelu =
    "0.5*x*(1+tanh(0.7978845608028654*(x+0.044715*x^3)))";

static void test_activation(void) {
  activation_case("x * sigmoid(1.702 * x)", -4, 4);
  activation_case(tanh_gelu, -3, 3);
  activation_case("0.5*x*(1+erf(x/sqrt(2)))", -3, 3);
  activation_case("x * tanh(log(1 + exp(x)))", -3, 3);
  activation_case("sqrt(1 + x^2) - 1", -2, 2);
  activation_case("x^3 / (1 + x^2)", -2, 2);
  activation_case("2^x", -2, 2);
  /* the tanh-GELU formula as an expression is the built-in gelu, forward and
   * backward, to fp32 rounding */
  lt_error err = {{0}};
  expr_node *fn, *dfn;
  CHECK(expr_function(tanh_gelu, "x", NULL, NULL, &fn, &dfn, &err) == 0);
  if (!fn) return;
  enum { n = 1001 };
  float *x = malloc(n * sizeof *x), *dy = filled(n, 1);
  for (int i = 0; i < n; i++) x[i] = -6 + 12.0f * i / (n - 1);
  float *y_expr = filled(n, GARBAGE), *y_gelu = filled(n, GARBAGE);
  float *dx_expr = filled(n, GARBAGE), *dx_gelu = filled(n, GARBAGE);
  cpu_activation_forward(y_expr, x, n, eval_tree, fn);
  cpu_gelu_forward(y_gelu, x, n);
  cpu_activation_backward(dx_expr, dy, x, n, eval_tree, dfn);
  cpu_gelu_backward(dx_gelu, dy, x, n);
  for (int i = 0; i < n; i++) {
    CHECK_CLOSE(y_expr[i], y_gelu[i], 1e-7, 1e-6);
    CHECK_CLOSE(dx_expr[i], dx_gelu[i], 1e-7, 1e-6);
  }
  free(x), free(dy), free(y_expr), free(y_gelu), free(dx_expr), free(dx_gelu);
  expr_free(fn), expr_free(dfn);
}

typedef struct {
  float *a, *b;
  int64_t n;
} mul_ctx;

static void mul_fwd(const void *c, float *y) {
  const mul_ctx *m = c;
  cpu_mul(y, m->a, m->b, m->n);
}

/* mul's backward is two muls: da = dy * b, db = dy * a */
static void test_mul(void) {
  float a[5] = {1, -2, 3, 0.5f, 7}, b[5] = {0.5f, -2, 7, 0, -9}, y[5];
  cpu_mul(y, a, b, 5);
  CHECK(y[0] == 0.5f && y[1] == 4 && y[2] == 21 && y[3] == 0 && y[4] == -63);
  mul_ctx m = {rand_buf(37, -2, 2), rand_buf(37, -2, 2), 37};
  float *dy = rand_buf(37, -1, 1), *da = filled(37, GARBAGE), *db = filled(37, GARBAGE);
  cpu_mul(da, dy, m.b, 37);
  cpu_mul(db, dy, m.a, 37);
  check_grad("mul da", mul_fwd, &m, m.a, 37, da, 37, dy);
  check_grad("mul db", mul_fwd, &m, m.b, 37, db, 37, dy);
  free(m.a), free(m.b), free(dy), free(da), free(db);
}

typedef struct {
  float *x, factor;
  int64_t n;
} scale_ctx;

static void scale_fwd(const void *c, float *y) {
  const scale_ctx *m = c;
  cpu_scale(y, m->x, m->factor, m->n);
}

/* scale's backward is a scale of dy by the same factor (LoRA's alpha / r) */
static void test_scale(void) {
  float x[4] = {1, -2, 0.5f, 0}, y[4];
  cpu_scale(y, x, 2.5f, 4);
  CHECK(y[0] == 2.5f && y[1] == -5 && y[2] == 1.25f && y[3] == 0);
  scale_ctx m = {rand_buf(29, -2, 2), 5.0f / 3.0f, 29};
  float *dy = rand_buf(29, -1, 1), *dx = filled(29, GARBAGE);
  cpu_scale(dx, dy, m.factor, 29);
  check_grad("scale dx", scale_fwd, &m, m.x, 29, dx, 29, dy);
  free(m.x), free(dy), free(dx);
}

/* ------------------------------------------------------------------------ */
/* embeddings and add */

typedef struct {
  int32_t *ids;
  float *table;
  int N, C;
} embedding_ctx;

static void embedding_fwd(const void *c, float *y) {
  const embedding_ctx *e = c;
  cpu_embedding_forward(y, e->ids, e->table, e->N, e->C);
}

static void embedding_case(int C) {
  enum { N = 10, V = 11 };
  int32_t ids[N] = {3, 0, 10, 3, 7, 3, 0, 5, 10, 1}; /* repeats collide */
  embedding_ctx e = {ids, rand_buf(V * C, -1, 1), N, C};
  float *y = malloc(N * C * sizeof *y), *dy = rand_buf(N * C, -1, 1);
  embedding_fwd(&e, y);
  int exact = 1;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++)
      exact &= y[n * C + c] == e.table[ids[n] * C + c];
  CHECK(exact);

  float *dtable = filled(V * C, PREFILL);
  cpu_embedding_backward(dtable, ids, dy, N, C);
  sub_scalar(dtable, V * C, PREFILL);
  check_grad("embedding dtable", embedding_fwd, &e, e.table, V * C, dtable,
             N * C, dy);
  free(e.table), free(y), free(dy), free(dtable);
}

static void test_embedding(void) {
  embedding_case(13);
  embedding_case(70);
}

typedef struct {
  float *table;
  int N, T, C;
} pos_ctx;

static void pos_fwd(const void *c, float *y) {
  const pos_ctx *p = c;
  cpu_pos_embedding_forward(y, p->table, p->N, p->T, p->C);
}

static void test_pos_embedding(void) {
  enum { B = 2, T = 5, P = 8, C = 13, N = B * T };
  pos_ctx p = {rand_buf(P * C, -1, 1), N, T, C}; /* rows T..P-1 unused */
  float y[N * C], *dy = rand_buf(N * C, -1, 1);
  pos_fwd(&p, y);
  int exact = 1;
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) exact &= y[n * C + c] == p.table[(n % T) * C + c];
  CHECK(exact);

  float *dtable = filled(P * C, PREFILL);
  cpu_pos_embedding_backward(dtable, dy, N, T, C);
  sub_scalar(dtable, P * C, PREFILL);
  check_grad("pos_embedding dtable", pos_fwd, &p, p.table, P * C, dtable,
             N * C, dy);
  free(p.table), free(dy), free(dtable);
}

static void test_add(void) {
  float a[5] = {1, 2, 3, 4, 5}, b[5] = {0.5f, -2, 7, 0, -9}, y[5];
  cpu_add(y, a, b, 5);
  CHECK(y[0] == 1.5f && y[1] == 0 && y[2] == 10 && y[3] == 4 && y[4] == -4);
}

/* ------------------------------------------------------------------------ */
/* split and concat (concat is split's backward) */

enum { SPLIT_N = 7, SPLIT_K = 3 };
static const int64_t split_widths[SPLIT_K] = {4, 1, 6};

typedef struct {
  float *x;
} split_ctx;

/* all pieces laid out one after another in y */
static void split_fwd(const void *c, float *y) {
  const split_ctx *s = c;
  float *outs[SPLIT_K] = {y, y + SPLIT_N * 4, y + SPLIT_N * 5};
  cpu_split(outs, split_widths, SPLIT_K, s->x, SPLIT_N);
}

static void test_split_concat(void) {
  enum { W = 11, NX = SPLIT_N * W };
  split_ctx s = {rand_buf(NX, -1, 1)};
  float y[NX];
  split_fwd(&s, y);
  CHECK(y[0] == s.x[0] && y[SPLIT_N * 4 - 1] == s.x[6 * W + 3]); /* piece 0 */
  CHECK(y[SPLIT_N * 4 + 2] == s.x[2 * W + 4]);                   /* piece 1 */
  CHECK(y[SPLIT_N * 5 + 6 * 3 + 5] == s.x[3 * W + 10]);          /* piece 2 */

  float *dy = rand_buf(NX, -1, 1), *dx = filled(NX, GARBAGE);
  const float *pieces[SPLIT_K] = {dy, dy + SPLIT_N * 4, dy + SPLIT_N * 5};
  cpu_concat(dx, pieces, split_widths, SPLIT_K, SPLIT_N);
  check_grad("split dx (concat)", split_fwd, &s, s.x, NX, dx, NX, dy);

  pieces[1] = NULL; /* a piece without a gradient contributes zeros */
  cpu_concat(dx, pieces, split_widths, SPLIT_K, SPLIT_N);
  CHECK(dx[2 * W + 4] == 0.0f && dx[2 * W + 3] == dy[2 * 4 + 3] &&
        dx[2 * W + 5] == dy[SPLIT_N * 5 + 2 * 6]);
  free(s.x), free(dy), free(dx);
}

/* ------------------------------------------------------------------------ */
/* attention */

typedef struct {
  float *q, *k, *v, *lse;
  int B, T, heads, kv_heads, hd, causal;
  cpu_att_opts opts; /* scale, softcap, window; all 0: plain */
} attention_ctx;

static void attention_fwd(const void *c, float *y) {
  const attention_ctx *a = c;
  cpu_attention_forward(y, a->lse, a->q, a->k, a->v, a->B, a->T, a->heads,
                        a->kv_heads, a->hd, a->causal, &a->opts);
}

/* softmax over an explicit mask, in double, head by head */
static void attention_reference(double *y, double *lse, const attention_ctx *a) {
  int T = a->T, hd = a->hd, qs = a->heads * hd, ks = a->kv_heads * hd;
  double *s = malloc(T * sizeof *s);
  for (int b = 0; b < a->B; b++)
    for (int h = 0; h < a->heads; h++)
      for (int t = 0; t < T; t++) {
        int n = b * T + t, g = h / (a->heads / a->kv_heads);
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < T; j++) {
          s[j] = -INFINITY;
          if (a->causal && j > t) continue;
          if (a->causal && a->opts.window > 0 && t - j >= a->opts.window) continue;
          double d = 0.0;
          for (int i = 0; i < hd; i++)
            d += (double)a->q[n * qs + h * hd + i] *
                 a->k[(b * T + j) * ks + g * hd + i];
          s[j] = a->opts.scale > 0 ? d * a->opts.scale : d / sqrt((double)hd);
          if (a->opts.softcap > 0) s[j] = a->opts.softcap * tanh(s[j] / a->opts.softcap);
          if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j < T; j++) sum += exp(s[j] - mx);
        lse[n * a->heads + h] = mx + log(sum);
        for (int i = 0; i < hd; i++) {
          double acc = 0.0;
          for (int j = 0; j < T; j++)
            acc += exp(s[j] - mx) / sum * a->v[(b * T + j) * ks + g * hd + i];
          y[n * qs + h * hd + i] = acc;
        }
      }
  free(s);
}

static void attention_case_ex(int B, int T, int heads, int kv_heads, int causal, int HD,
                              cpu_att_opts opts) {
  int N = B * T, nq = N * heads * HD, nk = N * kv_heads * HD;
  attention_ctx a = {rand_buf(nq, -2, 2), rand_buf(nk, -2, 2),
                     rand_buf(nk, -1, 1), malloc(N * heads * sizeof(float)),
                     B, T, heads, kv_heads, HD, causal, opts};
  float *y = malloc(nq * sizeof *y), *dy = rand_buf(nq, -1, 1);
  double *ref = malloc(nq * sizeof *ref),
         *rlse = malloc(N * heads * sizeof *rlse);
  char what[4][96];
  const char *part[4] = {"y/lse", "dq", "dk", "dv"};
  for (int i = 0; i < 4; i++)
    snprintf(what[i], sizeof what[i], "attention B=%d T=%d heads=%d kv=%d "
             "hd=%d causal=%d scale=%g cap=%g window=%d %s", B, T, heads, kv_heads, HD, causal,
             opts.scale, opts.softcap, opts.window, part[i]);
  attention_fwd(&a, y);
  attention_reference(ref, rlse, &a);
  check_values(what[0], y, ref, nq);
  check_values(what[0], a.lse, rlse, N * heads);

  float *dq = filled(nq, GARBAGE), *dk = filled(nk, GARBAGE),
        *dv = filled(nk, GARBAGE);
  cpu_attention_backward(dq, dk, dv, dy, a.q, a.k, a.v, y, a.lse, B, T, heads,
                         kv_heads, HD, causal, &a.opts);
  check_grad(what[1], attention_fwd, &a, a.q, nq, dq, nq, dy);
  check_grad(what[2], attention_fwd, &a, a.k, nk, dk, nq, dy);
  check_grad(what[3], attention_fwd, &a, a.v, nk, dv, nq, dy);
  free(a.q), free(a.k), free(a.v), free(a.lse), free(y), free(dy);
  free(ref), free(rlse), free(dq), free(dk), free(dv);
}

static void attention_case(int B, int T, int heads, int kv_heads, int causal, int HD) {
  attention_case_ex(B, T, heads, kv_heads, causal, HD, (cpu_att_opts){0});
}

static void test_attention(void) {
  for (int causal = 0; causal <= 1; causal++) {
    attention_case(1, 7, 3, 3, causal, 5);
    attention_case(2, 5, 3, 3, causal, 5);
    attention_case(1, 7, 3, 1, causal, 5);
    attention_case(2, 5, 3, 1, causal, 5);
    attention_case(2, 5, 4, 2, causal, 5); /* groups of two query heads */
    /* keys come in chunks of 64: T = 130 crosses two chunk boundaries, so
     * the online softmax rescales; hd = 11 is one vector lane set + tail */
    attention_case(1, 130, 2, 1, causal, 11);
    /* Gemma 2: a scale of its own (query_pre_attn_scalar^-0.5) and scores
     * soft-capped by tanh; a cap of 1.5 bends most of these scores */
    attention_case_ex(2, 5, 4, 2, causal, 5, (cpu_att_opts){0.7f, 1.5f, 0});
    attention_case_ex(1, 70, 2, 1, causal, 6, (cpu_att_opts){0.25f, 0.0f, 0});
    /* Mistral's sliding window: 3 keys; 67 across a chunk boundary */
    attention_case_ex(2, 9, 4, 2, causal, 5, (cpu_att_opts){0, 0, 3});
    attention_case_ex(1, 140, 2, 1, causal, 6, (cpu_att_opts){0, 2.0f, 67});
  }
}

/* ------------------------------------------------------------------------ */
/* cross entropy */

typedef struct {
  float *logits;
  int32_t *targets;
  int N, V;
} ce_ctx;

static void ce_fwd(const void *c, float *loss) {
  const ce_ctx *e = c;
  *loss = cpu_cross_entropy_forward(e->logits, e->targets, e->N, e->V);
}

static double ce_reference(const ce_ctx *e) {
  double total = 0.0;
  int counted = 0;
  for (int n = 0; n < e->N; n++) {
    if (e->targets[n] < 0) continue; /* ignored: labels -100 */
    counted++;
    double sum = 0.0;
    for (int i = 0; i < e->V; i++) sum += exp((double)e->logits[n * e->V + i]);
    total += log(sum) - e->logits[n * e->V + e->targets[n]];
  }
  return counted ? total / counted : 0.0;
}

static void test_cross_entropy(void) {
  enum { N = 7, V = 11 };
  int32_t targets[N] = {0, 10, 4, -1, 7, 1, -1}; /* two ignored rows */
  ce_ctx e = {rand_buf(N * V, -3, 3), targets, N, V};
  float loss;
  ce_fwd(&e, &loss);
  CHECK_CLOSE(loss, ce_reference(&e), 0, FWD_TOL);

  /* max-subtracted: a huge common offset changes nothing */
  float *shifted = malloc(N * V * sizeof *shifted);
  for (int i = 0; i < N * V; i++) shifted[i] = e.logits[i] + 1000.0f;
  CHECK_CLOSE(cpu_cross_entropy_forward(shifted, targets, N, V), loss, 0, 1e-3);

  float scale = 0.7f, *dlogits = filled(N * V, GARBAGE);
  cpu_cross_entropy_backward(dlogits, e.logits, targets, N, V, scale);
  check_grad("cross_entropy dlogits", ce_fwd, &e, e.logits, N * V, dlogits, 1,
             &scale);

  /* in place gives the same result */
  memcpy(shifted, e.logits, N * V * sizeof *shifted);
  cpu_cross_entropy_backward(shifted, shifted, targets, N, V, scale);
  CHECK(memcmp(shifted, dlogits, N * V * sizeof *shifted) == 0);

  /* nothing counts: loss 0 and a zero gradient, not NaN */
  int32_t none[N] = {-1, -1, -1, -1, -1, -1, -1};
  CHECK(cpu_cross_entropy_forward(e.logits, none, N, V) == 0.0f);
  cpu_cross_entropy_backward(dlogits, e.logits, none, N, V, scale);
  for (int i = 0; i < N * V; i++) CHECK(dlogits[i] == 0.0f);
  free(e.logits), free(shifted), free(dlogits);
}

/* ------------------------------------------------------------------------ */
/* threads: the shapes above are too small to be worth threads, so here every
 * kernel runs at a size that is, once on one thread and once on two; our own
 * kernels' results must match bit for bit (a race or a thread-dependent
 * summation order would show). The BLAS GEMM makes no such promise. */

enum { BB = 2, BT = 32, BN = BB * BT, BC = 520, BV = 600, BH = 4, BKV = 2,
       BHD = 16, BLIN = 16 };

typedef struct {
  float *x, *dy, *w, *b, *table, *W, *q, *k, *v, *dq_y, *logits;
  int32_t ids[BN];
} big_inputs;

/* One buffer carved into named slices, one per kernel output. */
typedef struct {
  float *base;
  int64_t used;
  int n;
  const char *names[40];
  int64_t starts[40], sizes[40];
} slab;

static float *take(slab *s, const char *name, int64_t n, float fill) {
  float *p = s->base + s->used;
  for (int64_t i = 0; i < n; i++) p[i] = fill;
  s->names[s->n] = name, s->starts[s->n] = s->used, s->sizes[s->n++] = n;
  s->used += n;
  return p;
}

static const cpu_att_opts big_opts = {0.0f, 2.0f, 20}; /* soft cap, window */

static void run_big_kernels(slab *s, const big_inputs *in) {
  const int64_t nc = (int64_t)BN * BC;
  float *y;
  cpu_embedding_forward(take(s, "embedding", nc, 0), in->ids, in->table, BN, BC);
  cpu_embedding_backward(take(s, "embedding_bwd", (int64_t)BV * BC, PREFILL),
                         in->ids, in->dy, BN, BC);
  cpu_pos_embedding_forward(take(s, "pos", nc, 0), in->table, BN, BT, BC);
  cpu_pos_embedding_backward(take(s, "pos_bwd", BT * BC, PREFILL), in->dy, BN,
                             BT, BC);
  cpu_add(take(s, "add", nc, 0), in->x, in->dy, nc);
  float *mean = take(s, "ln mean", BN, 0), *rstd = take(s, "ln rstd", BN, 0);
  cpu_layernorm_forward(take(s, "ln", nc, 0), mean, rstd, in->x, in->w, in->b,
                        BN, BC, 1e-5f);
  cpu_layernorm_backward_x(take(s, "ln_bwd_x", nc, 0), in->dy, in->x, in->w,
                           mean, rstd, BN, BC);
  cpu_layernorm_backward_wb(take(s, "ln dw", BC, PREFILL),
                            take(s, "ln db", BC, PREFILL), in->dy, in->x, mean,
                            rstd, BN, BC);
  float *rms_rstd = take(s, "rms rstd", BN, 0);
  cpu_rmsnorm_forward(take(s, "rms", nc, 0), rms_rstd, in->x, in->w, BN, BC, 1e-6f, 1.0f);
  cpu_rmsnorm_backward_x(take(s, "rms_bwd_x", nc, 0), in->dy, in->x, in->w, rms_rstd, BN, BC,
                         1.0f);
  cpu_rmsnorm_backward_w(take(s, "rms dw", BC, PREFILL), in->dy, in->x, rms_rstd, BN, BC);
  /* 4 heads of 130, 65 rotating pairs: two chunks of frequencies */
  cpu_rope_forward(take(s, "rope", nc, 0), in->x, BN, BT, 4, BC / 4, BC / 4, 10000.0);
  cpu_rope_backward(take(s, "rope_bwd", nc, 0), in->dy, BN, BT, 4, BC / 4, BC / 4 - 2, 1e6);
  cpu_silu_forward(take(s, "silu", nc, 0), in->x, nc);
  cpu_silu_backward(take(s, "silu_bwd", nc, 0), in->dy, in->x, nc);
  cpu_mul(take(s, "mul", nc, 0), in->x, in->dy, nc);
  cpu_linear_forward(take(s, "linear", nc, 0), in->x, in->W, in->b, BN, BLIN,
                     BC, IR_LAYOUT_IN_OUT);
  cpu_linear_backward_b(take(s, "linear_bwd_b", BC, PREFILL), in->dy, BN, BC);
  cpu_gelu_forward(take(s, "gelu", nc, 0), in->x, nc);
  cpu_gelu_backward(take(s, "gelu_bwd", nc, 0), in->dy, in->x, nc);
  int64_t widths[3] = {100, 20, BC - 120};
  float *pieces[3] = {take(s, "split 0", BN * 100, 0),
                      take(s, "split 1", BN * 20, 0),
                      take(s, "split 2", BN * (BC - 120), 0)};
  cpu_split(pieces, widths, 3, in->x, BN);
  const float *cpieces[3] = {pieces[0], NULL, pieces[2]};
  cpu_concat(take(s, "concat", nc, 0), cpieces, widths, 3, BN);
  int64_t nq = (int64_t)BN * BH * BHD, nk = (int64_t)BN * BKV * BHD;
  float *lse = take(s, "attention lse", BN * BH, 0);
  cpu_attention_forward(y = take(s, "attention", nq, 0), lse, in->q, in->k,
                        in->v, BB, BT, BH, BKV, BHD, 1, &big_opts);
  cpu_attention_backward(take(s, "attention dq", nq, 0),
                         take(s, "attention dk", nk, 0),
                         take(s, "attention dv", nk, 0), in->dq_y, in->q, in->k,
                         in->v, y, lse, BB, BT, BH, BKV, BHD, 1, &big_opts);
  *take(s, "cross_entropy", 1, 0) =
      cpu_cross_entropy_forward(in->logits, in->ids, BN, BV);
  cpu_cross_entropy_backward(take(s, "cross_entropy_bwd", (int64_t)BN * BV, 0),
                             in->logits, in->ids, BN, BV, 1.0f);
}

static void test_threads_match_serial(void) {
  big_inputs in = {rand_buf(BN * BC, -2, 2), rand_buf(BN * BC, -1, 1),
                   rand_buf(BC, 0.5f, 1.5f), rand_buf(BC, -1, 1),
                   rand_buf(BV * BC, -1, 1), rand_buf(BLIN * BC, -1, 1),
                   rand_buf(BN * BH * BHD, -2, 2),
                   rand_buf(BN * BKV * BHD, -2, 2),
                   rand_buf(BN * BKV * BHD, -1, 1),
                   rand_buf(BN * BH * BHD, -1, 1),
                   rand_buf(BN * BV, -3, 3), {0}};
  for (int n = 0; n < BN; n++) in.ids[n] = (n * 37) % 7 * 71 % BT; /* repeats */
  slab runs[2];
  for (int r = 0; r < 2; r++) {
    runs[r] = (slab){malloc((1 << 21) * sizeof(float)), 0, 0, {0}, {0}, {0}};
    omp_set_num_threads(r + 1);
    run_big_kernels(&runs[r], &in);
  }
  omp_set_num_threads(1);
  CHECK(runs[0].used <= (1 << 21));
  for (int i = 0; i < runs[0].n; i++) {
    const float *a = runs[0].base + runs[0].starts[i], *b = runs[1].base + runs[1].starts[i];
    if (strcmp(runs[0].names[i], "linear") == 0) {
      /* OpenBLAS's sgemm: on AVX-512 cores one thread takes its small-matrix
       * kernel and two the blocked one, which sum in another order. */
      for (int64_t j = 0; j < runs[0].sizes[i]; j++)
        CHECK_MSG(fabsf(a[j] - b[j]) <= 1e-5f * (1.0f + fabsf(a[j])),
                  "linear[%lld]: %g on one thread, %g on two", (long long)j, a[j], b[j]);
      continue;
    }
    CHECK_MSG(memcmp(a, b, (size_t)runs[0].sizes[i] * sizeof(float)) == 0,
              "%s differs between one and two threads", runs[0].names[i]);
  }
  free(runs[0].base), free(runs[1].base);
  free(in.x), free(in.dy), free(in.w), free(in.b), free(in.table), free(in.W);
  free(in.q), free(in.k), free(in.v), free(in.dq_y), free(in.logits);
}

int main(void) {
  RUN(test_linear);
  RUN(test_layernorm);
  RUN(test_rmsnorm);
  RUN(test_rope);
  RUN(test_gelu);
  RUN(test_silu);
  RUN(test_activation);
  RUN(test_mul);
  RUN(test_scale);
  RUN(test_embedding);
  RUN(test_pos_embedding);
  RUN(test_add);
  RUN(test_split_concat);
  RUN(test_attention);
  RUN(test_cross_entropy);
  RUN(test_threads_match_serial);
  return check_exit();
}
