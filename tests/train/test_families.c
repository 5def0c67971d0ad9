/* The model families (models/<model_type>.yaml) on Hugging Face folders made
 * by transformers' own classes (tests/fixtures/families/<type>/, from
 * scripts/make-family-fixtures.py): the folder loads as `lisa train FOLDER`
 * loads it (config.json picks the family and its sizes, the folder's
 * safetensors are the weights), then one forward and backward on the
 * fixture's batch (loss, logits, every parameter gradient) and ten steps
 * of full fine-tuning with AdamW and clipping (losses, gradient norms,
 * final weights) must match PyTorch. */
#include "check.h"
#include "fixture_util.h"

typedef struct {
  const char *type;
  int n_tensors; /* parameter tensors the checkpoint holds */
} family_case;

static const family_case cases[] = {
    {"qwen2", 1 + 12 * 2 + 2},  /* untied: embed, 12 per block, norm, lm_head */
    {"qwen3", 1 + 11 * 2 + 1},  /* tied: the head is the embedding table */
    {"gemma", 1 + 9 * 2 + 1},   /* tied */
    {"phi", 1 + 14 * 2 + 4},    /* final LayerNorm w, b; lm_head w, b */
    {"olmo2", 1 + 11 * 2 + 2},
    {"gpt_neox", 1 + 12 * 2 + 3}, /* interleaved query_key_value, untied embed_out */
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static int setup(fixture *fx, const family_case *c) {
  char model[128], ref[160];
  snprintf(model, sizeof model, "tests/fixtures/families/%s", c->type);
  snprintf(ref, sizeof ref, "%s/ref.safetensors", model);
  return fx_setup(fx, model, NULL, ref);
}

static void test_forward(void) {
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    printf("%s\n", cases[i].type);
    fx_check_forward(&fx, 1e-5);
    fx_teardown(&fx);
  }
}

static void test_gradients(void) {
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    train_zero_grads(&fx.s);
    train_forward(&fx.s);
    train_backward(&fx.s, NULL, 1.0f);
    int n = fx_compare_params(&fx, ms_grad, "grad.", 1e-4, NULL);
    CHECK_MSG(n == cases[i].n_tensors, "%s: %d gradients compared", cases[i].type, n);
    fx_teardown(&fx);
  }
}

static void test_full_finetune(void) {
  for (int i = 0; i < N_CASES; i++) {
    fixture fx;
    if (setup(&fx, &cases[i])) continue;
    printf("%s\n", cases[i].type);
    fx_check_adamw_trajectory(&fx, cases[i].n_tensors, 1);
    fx_teardown(&fx);
  }
}

int main(void) {
  RUN(test_forward);
  RUN(test_gradients);
  RUN(test_full_finetune);
  return check_exit();
}
