/* AdamW, clipping and the learning-rate schedule against closed forms. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "optim.h"

static void test_schedule_warmup_then_constant(void) {
  opt_config c = opt_defaults();
  c.lr = 1e-3f, c.warmup = 4, c.schedule = OPT_CONSTANT, c.total_steps = 100;
  CHECK_CLOSE(opt_lr_at(&c, 0), 0.25e-3, 1e-12, 1e-6);
  CHECK_CLOSE(opt_lr_at(&c, 3), 1e-3, 1e-12, 1e-6);
  CHECK_CLOSE(opt_lr_at(&c, 4), 1e-3, 1e-12, 1e-6);
  CHECK_CLOSE(opt_lr_at(&c, 99), 1e-3, 1e-12, 1e-6);
}

static void test_schedule_cosine(void) {
  opt_config c = opt_defaults();
  c.lr = 2e-3f, c.warmup = 10, c.schedule = OPT_COSINE, c.total_steps = 110,
  c.min_lr_frac = 0.1f;
  CHECK_CLOSE(opt_lr_at(&c, 9), 2e-3, 1e-12, 1e-6);   /* end of warmup */
  CHECK_CLOSE(opt_lr_at(&c, 10), 2e-3, 1e-12, 1e-6);  /* cosine starts at the peak */
  CHECK_CLOSE(opt_lr_at(&c, 60), 0.2e-3 + 0.5 * 1.8e-3, 1e-12, 1e-6); /* halfway */
  CHECK_CLOSE(opt_lr_at(&c, 110), 0.2e-3, 1e-12, 1e-6);
  CHECK_CLOSE(opt_lr_at(&c, 500), 0.2e-3, 1e-12, 1e-6); /* stays at the floor */
  for (int s = 11; s < 110; s++) CHECK(opt_lr_at(&c, s) < opt_lr_at(&c, s - 1));
}

static void test_clip_scale(void) {
  opt_config c = opt_defaults();
  c.grad_clip = 1.0f;
  CHECK_CLOSE(opt_clip_scale(&c, 4.0), 1.0 / (4.0 + 1e-6), 0, 1e-6);
  CHECK(opt_clip_scale(&c, 0.5) == 1.0f);
  c.grad_clip = 0.0f; /* off */
  CHECK(opt_clip_scale(&c, 1e9) == 1.0f);
  float g[5] = {3, 4, 0, 0, 12};
  CHECK_CLOSE(opt_sum_squares(g, 5), 169.0, 0, 1e-12);
}

/* The blocked, chunked sum of squares against a plain double sum, at a size
 * that is not a multiple of any block. */
static void test_sum_squares_large(void) {
  int64_t n = 1000003;
  float *g = malloc(sizeof(float) * (size_t)n);
  double want = 0.0;
  for (int64_t i = 0; i < n; i++) {
    g[i] = (float)((i * 7919 % 2003) - 1001) / 997.0f;
    want += (double)g[i] * g[i];
  }
  CHECK_CLOSE(opt_sum_squares(g, n), want, 0, 1e-6);
  free(g);
}

/* Two AdamW steps on one scalar, written out from the algorithm (Loshchilov
 * & Hutter, PyTorch's form) in double. */
static void test_adamw_two_steps(void) {
  opt_config c = opt_defaults();
  const double lr = 0.01, wd = 0.1, b1 = c.beta1, b2 = c.beta2, eps = c.eps;
  float w = 0.5f, m = 0, v = 0;
  double rw = 0.5, rm = 0, rv = 0;
  const double grads[2] = {0.3, -0.2};
  for (int t = 1; t <= 2; t++) {
    float g = (float)grads[t - 1];
    opt_adamw_update(&w, &g, &m, &v, 1, (float)lr, (float)wd, &c, t, 1.0f);
    rw *= 1 - lr * wd;
    rm = b1 * rm + (1 - b1) * grads[t - 1];
    rv = b2 * rv + (1 - b2) * grads[t - 1] * grads[t - 1];
    double mhat = rm / (1 - pow(b1, t)), vhat = rv / (1 - pow(b2, t));
    rw -= lr * mhat / (sqrt(vhat) + eps);
    CHECK_CLOSE(w, rw, 1e-7, 1e-6);
    CHECK_CLOSE(m, rm, 1e-9, 1e-6);
    CHECK_CLOSE(v, rv, 1e-12, 1e-5);
  }
}

/* grad_scale multiplies the gradient before the moments see it. */
static void test_adamw_grad_scale(void) {
  opt_config c = opt_defaults();
  float w1 = 1, m1 = 0, v1 = 0, g1 = 0.8f;
  float w2 = 1, m2 = 0, v2 = 0, g2 = 0.4f;
  opt_adamw_update(&w1, &g1, &m1, &v1, 1, 1e-3f, 0, &c, 1, 0.5f);
  opt_adamw_update(&w2, &g2, &m2, &v2, 1, 1e-3f, 0, &c, 1, 1.0f);
  CHECK(w1 == w2 && m1 == m2 && v1 == v2);
}

int main(void) {
  RUN(test_schedule_warmup_then_constant);
  RUN(test_schedule_cosine);
  RUN(test_clip_scale);
  RUN(test_sum_squares_large);
  RUN(test_adamw_two_steps);
  RUN(test_adamw_grad_scale);
  return check_exit();
}
