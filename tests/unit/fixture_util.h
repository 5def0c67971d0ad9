/* fixture_util.h: what the tests against PyTorch / Hugging Face fixtures
 * (scripts/make-fixtures.py) share: a model from its YAML with the fixture's
 * weights loaded, the reference tensors beside it, and comparisons one
 * tensor at a time. Include after check.h. */
#ifndef LT_FIXTURE_UTIL_H
#define LT_FIXTURE_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "model_yaml.h"
#include "safetensors.h"
#include "train.h"
#include "weights.h"

typedef struct {
  ir_model ir;
  ms_state s;
  st_file ref;
} fixture;

/* Reference tensor `name` as floats (malloc'd), or NULL after a failed check. */
static float *fx_read_ref(const fixture *fx, const char *name, int64_t *n) {
  lt_error err;
  const st_tensor *t = st_find(&fx->ref, name);
  CHECK_MSG(t != NULL, "reference tensor '%s' missing", name);
  if (!t) return NULL;
  *n = st_numel(t);
  float *buf = malloc(sizeof(float) * (size_t)*n);
  if (st_read_f32(&fx->ref, t, buf, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    free(buf);
    return NULL;
  }
  return buf;
}

/* The batch is the reference's `inputs` and `targets` ([B, T] each), so the
 * buffers are sized from them. Paths are relative to the source root. */
static int fx_open(fixture *fx, const char *model, const char *weights, const char *ref,
                   lt_error *err) {
  if (yml_load_model(src_path(model), &fx->ir, err) || ad_build_backward(&fx->ir, err) ||
      st_open(&fx->ref, src_path(ref), err))
    return -1;
  const st_tensor *in = st_find(&fx->ref, "inputs"), *tg = st_find(&fx->ref, "targets");
  if (!in || !tg || in->ndim != 2)
    return lt_fail(err, "%s: no [B, T] 'inputs' and 'targets'", ref);
  int B = (int)in->shape[0], T = (int)in->shape[1];
  if (ms_create(&fx->s, &fx->ir, B, T, fx->ir.n_layer, err) ||
      wt_load(&fx->s, src_path(weights), NULL, 0, err) ||
      st_read_i32(&fx->ref, in, fx->s.ids, err) || st_read_i32(&fx->ref, tg, fx->s.targets, err))
    return -1;
  return 0;
}

static inline int fx_setup(fixture *fx, const char *model, const char *weights, const char *ref) {
  lt_error err;
  memset(fx, 0, sizeof *fx);
  if (fx_open(fx, model, weights, ref, &err) == 0) return 0;
  fprintf(stderr, "setup: %s\n", err.msg);
  check_failures++;
  return -1;
}

static void fx_teardown(fixture *fx) {
  st_close(&fx->ref);
  ms_free(&fx->s);
  ir_model_free(&fx->ir);
}

/* max |a - b| relative to max |b|: one scale per tensor, as llm.c does. */
static double fx_max_rel_err(const float *a, const float *b, int64_t n) {
  double diff = 0, scale = 1e-12;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > diff || isnan(d)) diff = isnan(d) ? INFINITY : d;
    if (fabs(b[i]) > scale) scale = fabs(b[i]);
  }
  return diff / scale;
}

/* One forward: the loss (relative tol) and the head's value "logits"
 * (max rel err < tol) against the reference's "loss" and "logits". */
static void fx_check_forward(fixture *fx, double tol) {
  float loss = train_forward(&fx->s);
  int64_t n;
  float *ref_loss = fx_read_ref(fx, "loss", &n);
  if (ref_loss) CHECK_CLOSE(loss, ref_loss[0], 0, tol);
  float *ref_logits = fx_read_ref(fx, "logits", &n);
  const ir_graph *head = &fx->ir.sections[IR_HEAD];
  int v = ir_find_value(head, "logits");
  CHECK(v >= 0);
  if (ref_logits && v >= 0) {
    CHECK(n == (int64_t)fx->s.N * head->values[v].cols);
    double e = fx_max_rel_err(fx->s.bufs[ms_head_inst(&fx->s)][v], ref_logits, n);
    CHECK_MSG(e < tol, "logits max rel err %.3g", e);
  }
  free(ref_loss);
  free(ref_logits);
}

typedef float *(*fx_tensor_fn)(const ms_state *s, int p, int layer);

/* Compares every (param, layer) tensor get(p, layer) with "<prefix><hf
 * name>". Elements marked in `skip` (may be NULL; laid out as the parameter
 * arena) are left out. Returns how many tensors it compared. */
static inline int fx_compare_params(fixture *fx, fx_tensor_fn get, const char *prefix, double tol,
                             const unsigned char *skip) {
  int compared = 0;
  for (int p = 0; p < fx->ir.n_params; p++) {
    const ir_param *par = &fx->ir.params[p];
    int layers = par->section == IR_BLOCK ? fx->ir.n_layer : 1;
    for (int l = 0; l < layers; l++) {
      char hf[200], name[256];
      ir_param_hf_name(par, l, hf, sizeof hf);
      snprintf(name, sizeof name, "%s%s", prefix, hf);
      int64_t n;
      float *ref = fx_read_ref(fx, name, &n);
      if (!ref) continue;
      CHECK(n == ir_param_numel(par));
      int64_t off = ms_param(&fx->s, p, l) - fx->s.params;
      const float *t = get(&fx->s, p, l);
      float *ours = malloc(sizeof(float) * (size_t)n);
      for (int64_t i = 0; i < n; i++) {
        int drop = skip && skip[off + i];
        ours[i] = drop ? 0.0f : t[i];
        if (drop) ref[i] = 0.0f;
      }
      double e = fx_max_rel_err(ours, ref, n);
      CHECK_MSG(e < tol, "%s: max rel err %.3g", name, e);
      compared++;
      free(ours);
      free(ref);
    }
  }
  return compared;
}

#endif
