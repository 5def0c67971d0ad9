/* optim.h: AdamW as PyTorch computes it (decoupled weight decay, bias
 * correction), global-norm gradient clipping as clip_grad_norm_, and the
 * learning-rate schedule (linear warmup, then constant or cosine). */
#ifndef LT_OPTIM_H
#define LT_OPTIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* the emulator tests (C++) call these as the reference */
#endif

enum opt_schedule { OPT_CONSTANT, OPT_COSINE };

typedef struct {
  float lr;            /* peak learning rate */
  float beta1, beta2, eps;
  float weight_decay;  /* applied to params whose IR `decay` flag is set */
  float grad_clip;     /* max global norm; 0 = off */
  int warmup;          /* steps of linear warmup */
  int schedule;        /* enum opt_schedule */
  float min_lr_frac;   /* cosine decays to lr * min_lr_frac */
  int64_t total_steps; /* cosine's horizon */
} opt_config;

/* PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
opt_config opt_defaults(void);

/* Learning rate at a step (steps count from 0). */
float opt_lr_at(const opt_config *c, int64_t step);

/* Sum of squares of g[0..n), accumulated in double. */
double opt_sum_squares(const float *g, int64_t n);

/* The factor clip_grad_norm_ multiplies gradients by: min(1, clip/(norm+1e-6)). */
float opt_clip_scale(const opt_config *c, double global_norm);

/* One AdamW step over a contiguous tensor. t is the parameter's step count
 * starting at 1 (bias correction); grad_scale multiplies g (clipping). */
void opt_adamw_update(float *w, const float *g, float *m, float *v, int64_t n,
                      float lr, float weight_decay, const opt_config *c,
                      int64_t t, float grad_scale);

#ifdef __cplusplus
}
#endif

#endif
