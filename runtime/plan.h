/* plan.h: the memory a training run needs, by category, before anything
 * runs. It asks the runtime's own buffer planner (ms_plan) for the layout,
 * so the fp32 plan is exactly what `lisa train` allocates on the CPU; the
 * bf16 plan is the GPU layout of the design notes: bf16 weights, gradients
 * and activations, fp32 master weights and AdamW moments only for what
 * trains, and a 32 MiB cuBLASLt workspace. */
#ifndef LT_PLAN_H
#define LT_PLAN_H

#include <stdint.h>

#include "ir.h"

enum plan_category {
  PLAN_WEIGHTS, PLAN_MASTER_WEIGHTS, PLAN_GRADS, PLAN_OPTIMIZER, PLAN_ACTIVATIONS,
  PLAN_WORKSPACE, PLAN_NCATEGORIES
};

typedef struct {
  int method;      /* enum train_method */
  int gamma;       /* LISA: middle blocks that train at once */
  int lora_rank;   /* LoRA: the model must come through lora_apply with it */
  double lora_alpha;
  const char *lora_targets; /* NULL: every block linear weight */
  int batch, seq;
  int bf16;        /* GPU mixed precision instead of the CPU's fp32 */
} plan_settings;

typedef struct {
  uint64_t bytes[PLAN_NCATEGORIES];
  uint64_t total;
} plan_memory;

const char *plan_category_name(int category); /* "weights", "master_weights", ... */
int plan_compute(const ir_model *m, const plan_settings *ps, plan_memory *out, lt_error *err);

#endif
