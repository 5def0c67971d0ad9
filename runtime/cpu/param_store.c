/* param_store.c: the host store: copies in and out of ms_state's arrays. */
#include "param_store.h"

#include <stdlib.h>
#include <string.h>

static int host_get(void *ctx, int p, int layer, float *out, lt_error *err) {
  (void)err;
  ps_host_arrays *a = ctx;
  memcpy(out, ms_param(a->s, p, layer), sizeof(float) * (size_t)ir_param_numel(&a->s->ir->params[p]));
  return 0;
}

static int host_put(void *ctx, int p, int layer, const float *in, lt_error *err) {
  (void)err;
  ps_host_arrays *a = ctx;
  memcpy(ms_param(a->s, p, layer), in, sizeof(float) * (size_t)ir_param_numel(&a->s->ir->params[p]));
  return 0;
}

int ps_check_moments(const ms_state *s, int64_t at, int64_t n, lt_error *err) {
  if (at >= 0 && n >= 0 && at + n <= s->n_grad_scalars) return 0;
  return lt_fail(err, "moments [%lld, %lld) outside the %lld of the gradient layout",
                 (long long)at, (long long)(at + n), (long long)s->n_grad_scalars);
}

static float *moments_of(ps_host_arrays *a, int which, int64_t at, int64_t n, lt_error *err) {
  float *base = which ? a->v : a->m;
  if (!base) {
    lt_fail(err, "this trainer keeps no AdamW moments");
    return NULL;
  }
  return ps_check_moments(a->s, at, n, err) ? NULL : base + at;
}

static int host_get_moments(void *ctx, int which, int64_t at, int64_t n, float *out,
                            lt_error *err) {
  const float *src = moments_of(ctx, which, at, n, err);
  if (!src) return -1;
  memcpy(out, src, sizeof(float) * (size_t)n);
  return 0;
}

static int host_put_moments(void *ctx, int which, int64_t at, int64_t n, const float *in,
                            lt_error *err) {
  float *dst = moments_of(ctx, which, at, n, err);
  if (!dst) return -1;
  memcpy(dst, in, sizeof(float) * (size_t)n);
  return 0;
}

param_store ps_host(ps_host_arrays *a) {
  return (param_store){a, host_get, host_put, host_get_moments, host_put_moments, NULL, NULL};
}

int ps_param_layers(const ir_model *m, int p) {
  return m->params[p].section == IR_BLOCK ? m->n_layer : 1;
}

int64_t ps_max_numel(const ir_model *m) {
  int64_t n = 1;
  for (int p = 0; p < m->n_params; p++)
    if (ir_param_numel(&m->params[p]) > n) n = ir_param_numel(&m->params[p]);
  return n;
}

int ps_copy(const ir_model *m, const param_store *from, const param_store *to, lt_error *err) {
  float *w = malloc(sizeof(float) * (size_t)ps_max_numel(m));
  int rc = w ? 0 : lt_fail(err, "out of memory");
  for (int p = 0; rc == 0 && p < m->n_params; p++)
    for (int l = 0; rc == 0 && l < ps_param_layers(m, p); l++)
      rc = from->get(from->ctx, p, l, w, err) || to->put(to->ctx, p, l, w, err) ? -1 : 0;
  free(w);
  return rc;
}
