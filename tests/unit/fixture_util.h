/* fixture_util.h: what the tests against PyTorch / Hugging Face fixtures
 * (scripts/make-fixtures.py) share: a model from its YAML with the fixture's
 * weights loaded, the reference tensors beside it, and comparisons one
 * tensor at a time. Include after check.h. */
#ifndef LT_FIXTURE_UTIL_H
#define LT_FIXTURE_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "model_source.h"
#include "model_yaml.h"
#include "optim.h"
#include "safetensors.h"
#include "train.h"
#include "weights.h"

typedef struct {
  ir_model ir;
  ms_state s;
  st_file ref;
  double f64_check[16]; /* our losses of an AdamW run, for fx_check_against_f64 */
} fixture;

/* Reference tensor `name` as floats (malloc'd), or NULL after a failed check. */
static inline float *fx_read_ref(const fixture *fx, const char *name, int64_t *n) {
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
 * buffers are sized from them. Paths are relative to the source root; model
 * is a YAML file or a Hugging Face folder (then weights may be NULL: the
 * folder's). */
static inline int fx_open(fixture *fx, const char *model, const char *weights, const char *ref,
                   lt_error *err) {
  char folder[1024];
  if (model_open(src_path(model), &fx->ir, folder, sizeof folder, err) ||
      ad_build_backward(&fx->ir, err) || st_open(&fx->ref, src_path(ref), err))
    return -1;
  if (!weights) weights = folder;
  const st_tensor *in = st_find(&fx->ref, "inputs"), *tg = st_find(&fx->ref, "targets");
  if (!in || !tg || in->ndim != 2)
    return lt_fail(err, "%s: no [B, T] 'inputs' and 'targets'", ref);
  int B = (int)in->shape[0], T = (int)in->shape[1];
  if (ms_create(&fx->s, &fx->ir, B, T, fx->ir.n_layer, err) ||
      wt_load(&fx->s, weights == folder ? folder : src_path(weights), NULL, 0, err) ||
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

static inline void fx_teardown(fixture *fx) {
  st_close(&fx->ref);
  ms_free(&fx->s);
  ir_model_free(&fx->ir);
}

/* ||a - b|| / ||b||: a block whose update went wrong moves the whole
 * tensor; single elements with near-zero gradients, where AdamW turns
 * rounding into steps of up to lr, barely move it. */
static inline double fx_rel_l2(const float *a, const float *b, int64_t n) {
  double d = 0, s = 1e-30;
  for (int64_t i = 0; i < n; i++) {
    d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    s += (double)b[i] * b[i];
  }
  return sqrt(d / s);
}

/* max |a - b| relative to max |b|: one scale per tensor, as llm.c does. */
static inline double fx_max_rel_err(const float *a, const float *b, int64_t n) {
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
static inline void fx_check_forward(fixture *fx, double tol) {
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
/* The reference tensor "<prefix><hf name of (p, l)>" in lisa's row order
 * (malloc'd; interleaved params reordered), or NULL: a failed check when
 * `required`, else silently when the reference lacks it. */
static inline float *fx_param_ref(const fixture *fx, const char *prefix, int p, int l,
                                  int required) {
  const ir_param *par = &fx->ir.params[p];
  char hf[200], name[256];
  ir_param_hf_name(par, l, hf, sizeof hf);
  snprintf(name, sizeof name, "%s%s", prefix, hf);
  if (!required && !st_find(&fx->ref, name)) return NULL;
  int64_t n;
  float *ref = fx_read_ref(fx, name, &n);
  if (!ref) return NULL;
  CHECK_MSG(n == ir_param_numel(par), "%s: %lld values, the param has %lld", name, (long long)n,
            (long long)ir_param_numel(par));
  if (n != ir_param_numel(par)) return free(ref), NULL;
  if (par->interleave_groups) { /* the checkpoint's row order -> lisa's */
    float *lisa = malloc(sizeof(float) * (size_t)n);
    wt_interleave_rows(par, ref, lisa, 1);
    free(ref);
    ref = lisa;
  }
  return ref;
}

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
      int64_t n = ir_param_numel(par);
      float *ref = fx_param_ref(fx, prefix, p, l, 1);
      if (!ref) continue;
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

/* The reference's first-step gradient of (p, l) in lisa's row order, or
 * NULL when the reference has none. */
static inline float *fx_ref_grad(const fixture *fx, int p, int l) {
  return fx_param_ref(fx, "grad.", p, l, 0);
}

/* Marks the elements whose first-step gradient is negligible (ours,
 * computed on the fixture's batch, which the gradient tests check): below
 * 1e-4 of their tensor's largest, float32 rounding in the sums that cancel
 * to it is a sizeable part of it, and AdamW turns it into steps of +-lr.
 * An element whose gradient is exactly zero here and in the reference (an
 * embedding row no token of the batch uses) is no noise: AdamW only decays
 * it, and it is compared. */
static inline int64_t fx_mark_noise_only(fixture *fx, unsigned char *mark) {
  train_zero_grads(&fx->s);
  train_forward(&fx->s);
  train_backward(&fx->s, NULL, 1.0f);
  int64_t n_marked = 0;
  for (int p = 0; p < fx->ir.n_params; p++) {
    const ir_param *par = &fx->ir.params[p];
    int64_t n = ir_param_numel(par);
    for (int l = 0; l < (par->section == IR_BLOCK ? fx->ir.n_layer : 1); l++) {
      const float *g = ms_grad(&fx->s, p, l);
      float *ref = fx_ref_grad(fx, p, l);
      int64_t off = ms_param(&fx->s, p, l) - fx->s.params;
      float gmax = 0;
      for (int64_t i = 0; i < n; i++) gmax = fmaxf(gmax, fabsf(g[i]));
      for (int64_t i = 0; i < n; i++)
        if (fabsf(g[i]) < 1e-4f * gmax && (g[i] != 0.0f || (ref && ref[i] != 0.0f)))
          mark[off + i] = 1, n_marked++;
      free(ref);
    }
  }
  return n_marked;
}

static inline float fx_meta_float(const fixture *fx, const char *key) {
  const char *v = st_metadata(&fx->ref, key);
  CHECK_MSG(v != NULL, "metadata '%s' missing", key);
  return v ? strtof(v, NULL) : 0.0f;
}

/* The reference's float64 replay of the AdamW run (adamw64.<what>.hi + .lo),
 * where it has one: PyTorch's float32 losses are within 1e-5 of it, and so
 * must ours be; both distances are printed. The run is replayed here. */
static inline void fx_check_against_f64(fixture *fx, const char *what, const float *torch32,
                                        int64_t n) {
  char hi_name[64], lo_name[64];
  snprintf(hi_name, sizeof hi_name, "adamw64.%s.hi", what);
  snprintf(lo_name, sizeof lo_name, "adamw64.%s.lo", what);
  if (!st_find(&fx->ref, hi_name)) return;
  int64_t nh = 0, nl = 0;
  float *hi = fx_read_ref(fx, hi_name, &nh), *lo = fx_read_ref(fx, lo_name, &nl);
  double *ours = fx->f64_check, worst_ours = 0, worst_torch = 0;
  for (int64_t i = 0; hi && lo && ours && i < n && i < nh; i++) {
    double exact = (double)hi[i] + lo[i];
    worst_ours = fmax(worst_ours, fabs(ours[i] - exact) / fabs(exact));
    worst_torch = fmax(worst_torch, fabs(torch32[i] - exact) / fabs(exact));
  }
  CHECK_MSG(worst_ours <= 1e-5, "%s vs float64: %.3g relative", what, worst_ours);
  printf("%s vs the float64 replay: ours %.2e, PyTorch float32 %.2e (relative, worst step)\n",
         what, worst_ours, worst_torch);
  free(hi);
  free(lo);
}

/* Full fine-tuning against the reference's AdamW run (adamw.losses,
 * adamw.grad_norms, adamw.final.<name>; settings in its metadata): every
 * step's loss and gradient norm, then every parameter; n_tensors of them.
 * Elements whose gradient is zero in exact arithmetic (GPT-2's key bias:
 * softmax ignores a shift shared by every key) get rounding noise as
 * gradient, which AdamW normalises into +-lr steps of random sign, in
 * PyTorch and here alike; their final values carry no signal and are left
 * out (fx_mark_noise_only). Qwen2's key biases have such elements too: the
 * slowest RoPE frequencies barely rotate, so shifting those dims of every
 * key by the same bias is nearly invisible to the softmax. */
static inline void fx_check_adamw_trajectory(fixture *fx, int n_tensors, int want_clipped) {
  opt_config c = opt_defaults();
  c.lr = fx_meta_float(fx, "lr");
  c.beta1 = fx_meta_float(fx, "beta1");
  c.beta2 = fx_meta_float(fx, "beta2");
  c.eps = fx_meta_float(fx, "eps");
  c.weight_decay = fx_meta_float(fx, "weight_decay");
  c.grad_clip = fx_meta_float(fx, "grad_clip");
  int64_t n_losses = 0, n_norms;
  float *losses = fx_read_ref(fx, "adamw.losses", &n_losses);
  float *norms = fx_read_ref(fx, "adamw.grad_norms", &n_norms);
  train_optim o;
  lt_error err;
  CHECK(train_optim_init(&o, &fx->s, &err) == 0);
  memset(o.on, 1, (size_t)o.n_regions); /* full fine-tuning: everything trains */
  unsigned char *noise_only = calloc((size_t)fx->s.n_param_scalars, 1);
  int64_t n_noise = fx_mark_noise_only(fx, noise_only);
  CHECK_MSG(n_noise < fx->s.n_param_scalars / 20, "%lld noise-only elements", (long long)n_noise);
  int clipped = 0;
  for (int step = 0; losses && norms && step < n_losses; step++) {
    train_zero_grads(&fx->s);
    float loss = train_forward(&fx->s);
    train_backward(&fx->s, NULL, 1.0f);
    double norm = train_adamw(&fx->s, &c, c.lr, &o);
    clipped += norm > c.grad_clip;
    if (step < 16) fx->f64_check[step] = loss;
    CHECK_MSG(fabs(loss - losses[step]) <= 1e-4 * fabs(losses[step]),
              "step %d: loss %.7f vs torch %.7f", step, loss, losses[step]);
    CHECK_MSG(fabs(norm - norms[step]) <= 1e-4 * norms[step],
              "step %d: grad norm %.7f vs torch %.7f", step, norm, norms[step]);
  }
  CHECK(n_losses == 10);
  fx_check_against_f64(fx, "losses", losses, n_losses);
  CHECK_MSG(!want_clipped || (clipped > 0 && clipped < n_losses),
            "the fixture should clip on some steps, not all (%d of %lld)", clipped,
            (long long)n_losses);
  int n = fx_compare_params(fx, ms_param, "adamw.final.", 1e-4, noise_only);
  CHECK_MSG(n == n_tensors, "%d final tensors compared, expected %d", n, n_tensors);
  free(noise_only);
  train_optim_free(&o);
  free(losses);
  free(norms);
}

#endif
