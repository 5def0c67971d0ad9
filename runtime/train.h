/* train.h: the training loop's pieces. A trainer owns the model IR (with its
 * backward graphs), the buffers, the optimizer moments and the data; one
 * call runs one step: batch, forward, backward, clip, AdamW. Everything is
 * allocated by trainer_create; trainer_step allocates nothing. */
#ifndef LT_TRAIN_H
#define LT_TRAIN_H

#include <stdint.h>

#include "data.h"
#include "model_state.h"
#include "optim.h"

enum train_method { TRAIN_FT };

typedef struct {
  const char *model_path;
  const char *data_path;
  const char *weights_path; /* NULL: random init from the seed */
  int method;               /* enum train_method */
  int64_t steps;
  int batch, seq;
  uint64_t seed;
  opt_config opt;
} train_config;

typedef struct {
  int64_t step;
  float loss;           /* of this step's batch, before its update */
  float lr;
  double grad_norm;     /* global norm before clipping */
  double step_ms;
  double tokens_per_s;
} train_step_stats;

typedef struct {
  train_config cfg;
  ir_model ir;
  ms_state state;
  data_file data;
  float *adam_m, *adam_v;  /* one moment each per parameter scalar */
  int64_t adam_t;          /* AdamW's step count (bias correction) */
  int64_t step;            /* next step to run */
  char load_note[512];     /* tensors in --weights the model ignored */
} trainer;

int trainer_create(trainer *t, const train_config *cfg, lt_error *err);
void trainer_free(trainer *t);
int trainer_step(trainer *t, train_step_stats *st, lt_error *err);

/* Bytes of every buffer the run holds (params, grads, moments, activations). */
uint64_t trainer_bytes(const trainer *t);

/* The step's building blocks, also used by the tests. */
float train_forward(ms_state *s);
void train_zero_grads(ms_state *s);
void train_backward(ms_state *s, float loss_scale);
/* Clips by global norm and applies AdamW to every parameter; returns the
 * pre-clip global gradient norm. */
double train_adamw_all(ms_state *s, const opt_config *c, float lr, float *adam_m,
                       float *adam_v, int64_t adam_t);

#endif
