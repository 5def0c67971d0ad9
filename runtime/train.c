#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autodiff.h"
#include "executor.h"
#include "model_yaml.h"
#include "weights.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

float train_forward(ms_state *s) {
  for (int inst = 0; inst < s->n_inst; inst++) exec_forward(s, inst);
  return ms_loss(s);
}

void train_zero_grads(ms_state *s) { memset(s->grads, 0, s->bytes_grads); }

void train_backward(ms_state *s, float loss_scale) {
  for (int inst = s->n_inst - 1; inst >= 0; inst--)
    exec_backward(s, inst, EXEC_ACTIVE, loss_scale);
}

double train_adamw_all(ms_state *s, const opt_config *c, float lr, float *adam_m,
                       float *adam_v, int64_t adam_t) {
  /* Padding between tensors is zero in grads, so one pass over the arena
   * gives the global norm. */
  double norm = sqrt(opt_sum_squares(s->grads, s->n_param_scalars));
  float scale = opt_clip_scale(c, norm);
  const ir_model *m = s->ir;
  for (int p = 0; p < m->n_params; p++) {
    float wd = m->params[p].decay ? c->weight_decay : 0.0f;
    int64_t n = ir_param_numel(&m->params[p]);
    int layers = m->params[p].section == IR_BLOCK ? m->n_layer : 1;
    for (int l = 0; l < layers; l++) {
      int64_t off = ms_param(s, p, l) - s->params;
      opt_adamw_update(s->params + off, s->grads + off, adam_m + off, adam_v + off, n, lr, wd, c,
                       adam_t, scale);
    }
  }
  return norm;
}

static int check_config(const train_config *cfg, const ir_model *m, lt_error *err) {
  if (cfg->batch < 1 || cfg->seq < 1) return lt_fail(err, "--batch and --seq must be at least 1");
  if (cfg->steps < 0) return lt_fail(err, "--steps must not be negative");
  if (m->max_seq > 0 && cfg->seq > m->max_seq)
    return lt_fail(err, "--seq %d is longer than %s allows (%d positions)", cfg->seq, m->path,
                   m->max_seq);
  return 0;
}

int trainer_create(trainer *t, const train_config *cfg, lt_error *err) {
  memset(t, 0, sizeof *t);
  t->cfg = *cfg;
  if (yml_load_model(cfg->model_path, &t->ir, err) || ad_build_backward(&t->ir, err)) return -1;
  if (check_config(cfg, &t->ir, err)) return -1;
  if (data_open(&t->data, cfg->data_path, t->ir.vocab_size, err)) return -1;
  if (t->data.n_tokens < cfg->seq + 1)
    return lt_fail(err, "%s: %lld tokens, too few for --seq %d", cfg->data_path,
                   (long long)t->data.n_tokens, cfg->seq);
  if (ms_create(&t->state, &t->ir, cfg->batch, cfg->seq, err)) return -1;
  if (cfg->weights_path) {
    if (wt_load(&t->state, cfg->weights_path, t->load_note, sizeof t->load_note, err)) return -1;
  } else {
    wt_init_random(&t->state, cfg->seed);
  }
  size_t moment_bytes = (size_t)t->state.n_param_scalars * sizeof(float);
  t->adam_m = calloc(1, moment_bytes);
  t->adam_v = calloc(1, moment_bytes);
  if (!t->adam_m || !t->adam_v) return lt_fail(err, "out of memory for optimizer state");
  return 0;
}

void trainer_free(trainer *t) {
  free(t->adam_m);
  free(t->adam_v);
  ms_free(&t->state);
  data_close(&t->data);
  ir_model_free(&t->ir);
}

uint64_t trainer_bytes(const trainer *t) {
  const ms_state *s = &t->state;
  return (uint64_t)s->bytes_params + s->bytes_grads + s->bytes_acts +
         2 * (uint64_t)s->n_param_scalars * sizeof(float) +
         (uint64_t)t->data.n_tokens * sizeof(uint32_t);
}

int trainer_step(trainer *t, train_step_stats *st, lt_error *err) {
  ms_state *s = &t->state;
  double t0 = now_ms();
  if (data_batch(&t->data, t->cfg.seed, t->step, s->B, s->T, s->ids, s->targets, err)) return -1;
  float lr = opt_lr_at(&t->cfg.opt, t->step);
  train_zero_grads(s);
  float loss = train_forward(s);
  train_backward(s, 1.0f);
  t->adam_t++;
  double norm = train_adamw_all(s, &t->cfg.opt, lr, t->adam_m, t->adam_v, t->adam_t);
  double ms = now_ms() - t0;
  *st = (train_step_stats){.step = t->step, .loss = loss, .lr = lr, .grad_norm = norm,
                           .step_ms = ms, .tokens_per_s = s->N / (ms / 1e3)};
  t->step++;
  return 0;
}
