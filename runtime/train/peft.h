/* peft.h: LoRA adapters as a PEFT adapter folder, which peft's
 * PeftModel.from_pretrained(base, DIR) loads onto the base model:
 *
 *   adapter_model.safetensors  "base_model.model.<module path>.lora_A.weight"
 *                              [r, in] and ".lora_B.weight" [out, r] per
 *                              adapted linear of every layer
 *   adapter_config.json        peft_type LORA, r, lora_alpha (the path is
 *                              scaled by alpha / r, as ours), target_modules
 *                              (the adapted linears' leaf names),
 *                              fan_in_fan_out for Conv1D-stored weights
 *                              (GPT-2), task_type CAUSAL_LM
 *
 * A module path is a tensor's Hugging Face name under the longest of the
 * model's `prefixes` (GPT-2's hub names leave out "transformer."). */
#ifndef LT_PEFT_H
#define LT_PEFT_H

#include "err.h"
#include "model_state.h"
#include "param_store.h"

typedef struct {
  int rank;
  double alpha;
  const char *base_model; /* base_model_name_or_path; NULL: none */
} peft_config;

int peft_save(const ms_state *s, const char *dir, const peft_config *c, lt_error *err);
/* The same from a store, a tensor at a time. */
int peft_save_from(const ir_model *m, const param_store *ps, const char *dir, const peft_config *c,
                   lt_error *err);

#endif
