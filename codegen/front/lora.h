/* lora.h: LoRA (Hu et al. 2021) as a graph transform of the block.
 *
 * Each targeted block linear y = linear(x, W) becomes
 *   y.base = linear(x, W)              (W frozen)
 *   y      = y.base + (alpha / r) * linear(linear(x, A), B)
 * with A [r, in] and B [out, r], both stored out_in like nn.Linear. A starts
 * normal with std 1/r (PEFT's init_lora_weights="gaussian"), B at zeros, so
 * the model starts out as the base model; neither decays.
 *
 * The adapters are block params named like Hugging Face PEFT: the base
 * weight's name with ".weight" replaced by ".lora_A.weight" / ".lora_B.weight"
 * (h.{i}.attn.c_attn.lora_A.weight). PEFT's own state dict puts
 * "base_model.model." in front (and get_peft_model_state_dict drops the base
 * weights): to load ours into PEFT, add that prefix to the adapter tensors and
 * call set_peft_model_state_dict with LoraConfig(r, lora_alpha, target_modules).
 *
 * Run after yml_load_model and before ad_build_backward. */
#ifndef LT_LORA_H
#define LT_LORA_H

#include "ir.h"

/* targets: comma-separated block param keys of linear weights ("attn_w,fc_w");
 * NULL = every block linear weight. An unknown key is an error naming it. */
int lora_apply(ir_model *m, int rank, double alpha, const char *targets, lt_error *err);

/* What trains under LoRA: trains[p] (n_params flags) = p is an adapter. */
void lora_trains(const ir_model *m, unsigned char *trains);

/* The adapter pair of block param `base`: their indices, or -1 if it has none. */
void lora_adapters_of(const ir_model *m, int base, int *a, int *b);

/* W += scale * B A, in W's stored layout (in_out stores W as [in, out], so
 * (B A)^T is added). A is [rank, in], B [out, rank]; sums in double. */
void lora_merge_weight(float *W, const float *A, const float *B, int in, int out, int rank,
                       double scale, int layout);

#endif
