/* The tiny LLaMA and Mistral against Hugging Face transformers
 * (tests/fixtures/{llama,mistral}-tiny*.safetensors, made by
 * scripts/make-fixtures.py from LlamaForCausalLM and MistralForCausalLM):
 * models/{llama,mistral}-tiny.yaml with the checkpoints save_pretrained wrote, one
 * forward and backward on the fixture's batch; loss, logits and every
 * parameter gradient must match. Both use grouped-query attention; the
 * Mistral one has rope_theta 1e6. */
#include "check.h"
#include "fixture_util.h"

typedef struct {
  const char *name;
  int n_tensors; /* embed + 9 per block * layers + norm + lm_head */
} llama_case;

static const llama_case cases[] = {{"llama-tiny", 1 + 9 * 2 + 2},
                                   {"mistral-tiny", 1 + 9 * 3 + 2}};

static int setup(fixture *fx, const llama_case *c) {
  char model[128], weights[128], ref[128];
  snprintf(model, sizeof model, "models/%s.yaml", c->name);
  snprintf(weights, sizeof weights, "tests/fixtures/%s.safetensors", c->name);
  snprintf(ref, sizeof ref, "tests/fixtures/%s-ref.safetensors", c->name);
  return fx_setup(fx, model, weights, ref);
}

static void test_forward_matches_hf(void) {
  for (int i = 0; i < 2; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    CHECK(fx.s.B == 2 && fx.s.T == 9);
    fx_check_forward(&fx, 1e-5);
    fx_teardown(&fx);
  }
}

static void test_gradients_match_hf(void) {
  for (int i = 0; i < 2; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    train_zero_grads(&fx.s);
    train_forward(&fx.s);
    train_backward(&fx.s, NULL, 1.0f);
    int n = fx_compare_params(&fx, ms_grad, "grad.", 1e-4, NULL);
    CHECK_MSG(n == cases[i].n_tensors, "%s: %d gradients compared", cases[i].name, n);
    fx_teardown(&fx);
  }
}

int main(void) {
  RUN(test_forward_matches_hf);
  RUN(test_gradients_match_hf);
  return check_exit();
}
