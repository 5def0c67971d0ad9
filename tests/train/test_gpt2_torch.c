/* The tiny GPT-2 against PyTorch (tests/fixtures/gpt2-tiny*.safetensors, made by
 * scripts/make-fixtures.py with Hugging Face transformers): logits, loss and
 * every parameter gradient after one forward/backward, then the loss
 * trajectory, gradient norms and final weights of 10 AdamW steps with
 * clipping and weight decay on 2-D weights only. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fixture_util.h"

static int setup(fixture *fx) {
  return fx_setup(fx, "models/gpt2-tiny.yaml", "tests/fixtures/gpt2-tiny.safetensors",
                  "tests/fixtures/gpt2-tiny-ref.safetensors");
}

static void test_forward_matches_torch(void) {
  fixture fx;
  if (setup(&fx)) return;
  fx_check_forward(&fx, 1e-5);
  fx_teardown(&fx);
}

static void test_gradients_match_torch(void) {
  fixture fx;
  if (setup(&fx)) return;
  train_zero_grads(&fx.s);
  train_forward(&fx.s);
  train_backward(&fx.s, NULL, 1.0f);
  /* 2 embed + 12 per block x 2 + 2 head params */
  CHECK(fx_compare_params(&fx, ms_grad, "grad.", 1e-4, NULL) == 28);
  fx_teardown(&fx);
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
  float *losses = fx_read_ref(&fx, "adamw.losses", &n_losses);
  float *norms = fx_read_ref(&fx, "adamw.grad_norms", &n_norms);
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
  CHECK(fx_compare_params(&fx, ms_param, "adamw.final.", 1e-4, noise_only) == 28);
  free(noise_only);
  train_optim_free(&o);
  free(losses);
  free(norms);
  fx_teardown(&fx);
}

int main(void) {
  RUN(test_forward_matches_torch);
  RUN(test_gradients_match_torch);
  RUN(test_adamw_trajectory_matches_torch);
  return check_exit();
}
