/* The tiny GPT-2 against PyTorch (tests/fixtures/gpt2-tiny*.safetensors, made by
 * scripts/make-fixtures.py with Hugging Face transformers): logits, loss and
 * every parameter gradient after one forward/backward, then the loss
 * trajectory, gradient norms and final weights of 10 AdamW steps with
 * clipping and weight decay on 2-D weights only. */
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "model_yaml.h"
#include "safetensors.h"
#include "train.h"
#include "weights.h"

typedef struct {
  ir_model ir;
  ms_state s;
  st_file ref;
} fixture;

static float *read_ref(const fixture *fx, const char *name, int64_t *n) {
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

static int setup(fixture *fx) {
  lt_error err;
  memset(fx, 0, sizeof *fx);
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), &fx->ir, &err) ||
      ad_build_backward(&fx->ir, &err) || ms_create(&fx->s, &fx->ir, 3, 11, fx->ir.n_layer, &err) ||
      wt_load(&fx->s, src_path("tests/fixtures/gpt2-tiny.safetensors"), NULL, 0, &err) ||
      st_open(&fx->ref, src_path("tests/fixtures/gpt2-tiny-ref.safetensors"), &err)) {
    fprintf(stderr, "setup: %s\n", err.msg);
    check_failures++;
    return -1;
  }
  if (st_read_i32(&fx->ref, st_find(&fx->ref, "inputs"), fx->s.ids, &err) ||
      st_read_i32(&fx->ref, st_find(&fx->ref, "targets"), fx->s.targets, &err)) {
    fprintf(stderr, "setup: %s\n", err.msg);
    check_failures++;
    return -1;
  }
  return 0;
}

static void teardown(fixture *fx) {
  st_close(&fx->ref);
  ms_free(&fx->s);
  ir_model_free(&fx->ir);
}

/* max |a - b| relative to max |b|: one scale per tensor, as llm.c does. */
static double max_rel_err(const float *a, const float *b, int64_t n) {
  double diff = 0, scale = 1e-12;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - b[i]);
    if (d > diff || isnan(d)) diff = isnan(d) ? INFINITY : d;
    if (fabs(b[i]) > scale) scale = fabs(b[i]);
  }
  return diff / scale;
}

static void test_forward_matches_torch(void) {
  fixture fx;
  if (setup(&fx)) return;
  float loss = train_forward(&fx.s);
  int64_t n;
  float *ref_loss = read_ref(&fx, "loss", &n);
  if (ref_loss) CHECK_CLOSE(loss, ref_loss[0], 0, 1e-5);
  float *ref_logits = read_ref(&fx, "logits", &n);
  const ir_graph *head = &fx.ir.sections[IR_HEAD];
  int v = ir_find_value(head, "logits");
  CHECK(v >= 0);
  if (ref_logits && v >= 0) {
    CHECK(n == (int64_t)fx.s.N * head->values[v].cols);
    double e = max_rel_err(fx.s.bufs[ms_head_inst(&fx.s)][v], ref_logits, n);
    CHECK_MSG(e < 1e-5, "logits max rel err %.3g", e);
  }
  free(ref_loss);
  free(ref_logits);
  teardown(&fx);
}

typedef float *(*tensor_fn)(const ms_state *s, int p, int layer);

/* Compares every (param, layer) tensor get(p, layer) with "<prefix><hf
 * name>". Elements marked in `skip` (may be NULL; laid out as the parameter
 * arena) are left out. */
static int compare_params(fixture *fx, tensor_fn get, const char *prefix, double tol,
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
      float *ref = read_ref(fx, name, &n);
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
      double e = max_rel_err(ours, ref, n);
      CHECK_MSG(e < tol, "%s: max rel err %.3g", name, e);
      compared++;
      free(ours);
      free(ref);
    }
  }
  return compared;
}

static void test_gradients_match_torch(void) {
  fixture fx;
  if (setup(&fx)) return;
  train_zero_grads(&fx.s);
  train_forward(&fx.s);
  train_backward(&fx.s, NULL, 1.0f);
  /* 2 embed + 12 per block x 2 + 2 head params */
  CHECK(compare_params(&fx, ms_grad, "grad.", 1e-4, NULL) == 28);
  teardown(&fx);
}

/* Marks the elements whose first-step gradient is negligible (ours, computed
 * on the fixture's batch, which test_gradients_match_torch checks). */
static int64_t mark_noise_only(fixture *fx, unsigned char *mark) {
  train_zero_grads(&fx->s);
  train_forward(&fx->s);
  train_backward(&fx->s, NULL, 1.0f);
  int64_t n_marked = 0;
  for (int p = 0; p < fx->ir.n_params; p++) {
    const ir_param *par = &fx->ir.params[p];
    int64_t n = ir_param_numel(par);
    for (int l = 0; l < (par->section == IR_BLOCK ? fx->ir.n_layer : 1); l++) {
      const float *g = ms_grad(&fx->s, p, l);
      int64_t off = ms_param(&fx->s, p, l) - fx->s.params;
      float gmax = 0;
      for (int64_t i = 0; i < n; i++) gmax = fmaxf(gmax, fabsf(g[i]));
      for (int64_t i = 0; i < n; i++)
        if (fabsf(g[i]) < 1e-6f * gmax) mark[off + i] = 1, n_marked++;
    }
  }
  return n_marked;
}

static float meta_float(const fixture *fx, const char *key) {
  const char *v = st_metadata(&fx->ref, key);
  CHECK_MSG(v != NULL, "metadata '%s' missing", key);
  return v ? strtof(v, NULL) : 0.0f;
}

static void test_adamw_trajectory_matches_torch(void) {
  fixture fx;
  if (setup(&fx)) return;
  opt_config c = opt_defaults();
  c.lr = meta_float(&fx, "lr");
  c.beta1 = meta_float(&fx, "beta1");
  c.beta2 = meta_float(&fx, "beta2");
  c.eps = meta_float(&fx, "eps");
  c.weight_decay = meta_float(&fx, "weight_decay");
  c.grad_clip = meta_float(&fx, "grad_clip");
  int64_t n_losses, n_norms;
  float *losses = read_ref(&fx, "adamw.losses", &n_losses);
  float *norms = read_ref(&fx, "adamw.grad_norms", &n_norms);
  train_optim o;
  lt_error err;
  CHECK(train_optim_init(&o, &fx.s, &err) == 0);
  memset(o.on, 1, (size_t)o.n_regions); /* full fine-tuning: everything trains */
  /* Elements whose gradient is zero in exact arithmetic (GPT-2's key bias:
   * softmax ignores a shift shared by every key) get rounding noise as
   * gradient, which AdamW normalises into +-lr steps of random sign, in
   * PyTorch and here alike. Their final values carry no signal: leave out
   * elements whose first-step gradient is below 1e-6 of their tensor's. */
  unsigned char *noise_only = calloc((size_t)fx.s.n_param_scalars, 1);
  int64_t n_noise = mark_noise_only(&fx, noise_only);
  CHECK_MSG(n_noise < fx.s.n_param_scalars / 20, "%lld noise-only elements", (long long)n_noise);
  printf("%lld noise-only elements\n", (long long)n_noise);
  int clipped = 0;
  for (int step = 0; losses && norms && step < n_losses; step++) {
    train_zero_grads(&fx.s);
    float loss = train_forward(&fx.s);
    train_backward(&fx.s, NULL, 1.0f);
    double norm = train_adamw(&fx.s, &c, c.lr, &o);
    clipped += norm > c.grad_clip;
    CHECK_MSG(fabs(loss - losses[step]) <= 1e-4 * fabs(losses[step]), "step %d: loss %.7f vs torch %.7f",
              step, loss, losses[step]);
    CHECK_MSG(fabs(norm - norms[step]) <= 1e-4 * norms[step], "step %d: grad norm %.7f vs torch %.7f",
              step, norm, norms[step]);
  }
  CHECK(n_losses == 10);
  CHECK_MSG(clipped > 0, "the fixture should exercise gradient clipping");
  CHECK(compare_params(&fx, ms_param, "adamw.final.", 1e-4, noise_only) == 28);
  free(noise_only);
  train_optim_free(&o);
  free(losses);
  free(norms);
  teardown(&fx);
}

int main(void) {
  RUN(test_forward_matches_torch);
  RUN(test_gradients_match_torch);
  RUN(test_adamw_trajectory_matches_torch);
  return check_exit();
}
