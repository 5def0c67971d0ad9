#include "optim.h"

#include <math.h>

opt_config opt_defaults(void) {
  return (opt_config){.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                      .weight_decay = 0.01f, .grad_clip = 1.0f, .warmup = 0,
                      .schedule = OPT_CONSTANT, .min_lr_frac = 0.0f, .total_steps = 1};
}

float opt_lr_at(const opt_config *c, int64_t step) {
  if (step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
  if (c->schedule == OPT_CONSTANT) return c->lr;
  int64_t span = c->total_steps - c->warmup;
  double progress = span > 0 ? (double)(step - c->warmup) / (double)span : 1.0;
  if (progress > 1.0) progress = 1.0;
  double min_lr = (double)c->lr * c->min_lr_frac;
  return (float)(min_lr + 0.5 * (1.0 + cos(M_PI * progress)) * ((double)c->lr - min_lr));
}

/* Squares of one block, in float lanes (which GCC vectorises) then double. */
static double block_sum_squares(const float *g, int64_t n) {
  float lane[8] = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) lane[k] += g[i + k] * g[i + k];
  double sum = 0.0;
  for (; i < n; i++) sum += (double)g[i] * g[i];
  for (int k = 0; k < 8; k++) sum += lane[k];
  return sum;
}

double opt_sum_squares(const float *g, int64_t n) {
  /* Fixed chunks summed in order, so the norm (and the clipping it decides)
   * is bit-identical whatever the thread count. */
  enum { CHUNKS = 64, BLOCK = 1024 };
  double part[CHUNKS];
#pragma omp parallel for schedule(static)
  for (int c = 0; c < CHUNKS; c++) {
    int64_t begin = n * c / CHUNKS, end = n * (c + 1) / CHUNKS;
    double sum = 0.0;
    for (int64_t b = begin; b < end; b += BLOCK)
      sum += block_sum_squares(g + b, end - b < BLOCK ? end - b : BLOCK);
    part[c] = sum;
  }
  double total = 0.0;
  for (int c = 0; c < CHUNKS; c++) total += part[c];
  return total;
}

float opt_clip_scale(const opt_config *c, double global_norm) {
  if (c->grad_clip <= 0.0f) return 1.0f;
  double scale = c->grad_clip / (global_norm + 1e-6);
  return scale < 1.0 ? (float)scale : 1.0f;
}

void opt_adamw_update(float *w, const float *g, float *m, float *v, int64_t n,
                      float lr, float weight_decay, const opt_config *c,
                      int64_t t, float grad_scale) {
  /* The same order of operations as torch.optim.AdamW (single-tensor path),
   * so fp32 results agree to rounding. */
  const float b1 = c->beta1, b2 = c->beta2;
  /* PyTorch computes these scalars in double (Python floats). */
  const float bias2_sqrt = (float)sqrt(1.0 - pow(b2, (double)t));
  const float step_size = (float)(lr / (1.0 - pow(b1, (double)t)));
  const float decay = (float)(1.0 - (double)lr * weight_decay);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float grad = g[i] * grad_scale;
    w[i] *= decay;
    m[i] += (grad - m[i]) * (1.0f - b1);
    v[i] = v[i] * b2 + (1.0f - b2) * grad * grad;
    float denom = sqrtf(v[i]) / bias2_sqrt + c->eps;
    w[i] -= step_size * m[i] / denom;
  }
}
