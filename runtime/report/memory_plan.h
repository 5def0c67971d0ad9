/* memory_plan.h: the memory a training run needs, by category, before anything
 * runs. It asks the runtime's own buffer planner (ms_layout) for the layout,
 * so the fp32 plan is exactly what `lisa train` allocates on the CPU. The
 * two bf16 plans are the device trainer's arena (dev_train.h: dt_arena_layout) for
 * the generated program, both with bf16 weights and activations, plus a
 * 32 MiB cuBLASLt workspace:
 *  - bf16-mixed (the design notes' default): fp32 gradients, master weights
 *    and AdamW moments, only for what trains;
 *  - bf16-true (what the paper ran: a bf16 model with torch AdamW, whose
 *    state takes the parameters' dtype): bf16 gradients and moments, the
 *    bf16 weights updated in place, no master copy. */
#ifndef LT_MEMORY_PLAN_H
#define LT_MEMORY_PLAN_H

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
  int precision;   /* enum precision */
  int ranks;       /* data parallel (0 or 1: alone); each rank at batch */
  int zero;        /* 1 (ranks > 1): the optimizer's moments sharded, the largest rank's
                      share counted (train_optim_shard's split; a device's is the same) */
  int frozen_embed, frozen_head; /* LISA with --train-embed / --train-head off: their
                      params (unless a training section reads them) hold no gradient */
} memory_plan_settings;

typedef struct {
  uint64_t bytes[MEMORY_NCATEGORIES];
  uint64_t total;
  /* GPU precisions: what the host process holds at most beside the device
   * and the data: the batch, the device trainer's staging (dt_host_bytes)
   * and a tensor in hand while loading or saving through the device's
   * store (wt_staging_bytes, a writer's piece); no parameter, gradient or
   * moment stays on the host. 0 for fp32 on the CPU, where it is the total. */
  uint64_t host_bytes;
  int regions;     /* the optimizer's regions (train.h): E, H, a slot per block that
                      can train at once; --zero 1 sums each one's norm squares per rank */
  uint64_t summed_grad_bytes; /* what a data-parallel step sums of the gradients: the
                      regions themselves, in the gradients' dtype (the arena's
                      category adds its alignment) */
  uint64_t gathered_bytes; /* --zero 1: what a step gathers of what trained (the weights,
                      and bf16-mixed's fp32 masters) */
} memory_breakdown;

const char *memory_category_name(int category); /* "weights", "master_weights", ... */
const char *precision_name(int precision); /* "fp32", "bf16-mixed", "bf16-true" */
/* The generated program's storage (enum gen_dtype) for a precision: fp32
 * everywhere; bf16 weights and activations with fp32 gradients (mixed);
 * bf16 everywhere (true). */
void precision_dtypes(int precision, int *dtype, int *grad_dtype);
int memory_plan_compute(const ir_model *m, const memory_plan_settings *ps, memory_breakdown *out, lt_error *err);

#endif
