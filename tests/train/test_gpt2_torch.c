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

static void test_adamw_trajectory_matches_torch(void) {
  fixture fx;
  if (setup(&fx)) return;
  fx_check_adamw_trajectory(&fx, 28, 1);
  fx_teardown(&fx);
}

int main(void) {
  RUN(test_forward_matches_torch);
  RUN(test_gradients_match_torch);
  RUN(test_adamw_trajectory_matches_torch);
  return check_exit();
}
