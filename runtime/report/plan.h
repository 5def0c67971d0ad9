/* plan.h: the memory a training run needs, by category, before anything
 * runs. It asks the runtime's own buffer planner (ms_plan) for the layout,
 * so the fp32 plan is exactly what `lisa train` allocates on the CPU. The
 * two bf16 plans are the device trainer's arena (dev_train.h: dt_plan) for
 * the generated program, both with bf16 weights and activations, plus a
 * 32 MiB cuBLASLt workspace:
 *  - bf16-mixed (the design notes' default): fp32 gradients, master weights
 *    and AdamW moments, only for what trains;
 *  - bf16-true (what the paper ran: a bf16 model with torch AdamW, whose
 *    state takes the parameters' dtype): bf16 gradients and moments, the
 *    bf16 weights updated in place, no master copy. */
#ifndef LT_PLAN_H
#define LT_PLAN_H

#include <stdint.h>

#include "ir.h"
#include "memory_kinds.h"

typedef struct {
  int method;      /* enum train_method */
  int gamma;       /* LISA: middle blocks that train at once */
  int lora_rank;   /* LoRA: the model must come through lora_apply with it */
  double lora_alpha;
  const char *lora_targets; /* NULL: every block linear weight */
  int batch, seq;
  int precision;   /* enum plan_precision */
} plan_settings;

typedef struct {
  uint64_t bytes[PLAN_NCATEGORIES];
  uint64_t total;
  /* GPU precisions: what the host process holds beside the device (fp32
   * parameters, to load and save them, and fp32 gradients of what trains,
   * ms_create_params's layout); 0 for fp32 on the CPU, where it is the total. */
  uint64_t host_bytes;
} plan_memory;

const char *plan_category_name(int category); /* "weights", "master_weights", ... */
const char *plan_precision_name(int precision); /* "fp32", "bf16-mixed", "bf16-true" */
int plan_compute(const ir_model *m, const plan_settings *ps, plan_memory *out, lt_error *err);

#endif
