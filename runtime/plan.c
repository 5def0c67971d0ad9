#include "plan.h"

#include <stdlib.h>
#include <string.h>

#include "lora.h"
#include "model_state.h"
#include "train.h"

#define CUBLASLT_WORKSPACE (32u << 20) /* Hopper: 32 MiB (anchors.md) */

const char *plan_category_name(int category) {
  static const char *const names[PLAN_NCATEGORIES] = {
      "weights", "master_weights", "grads", "optimizer", "activations", "workspace"};
  return category >= 0 && category < PLAN_NCATEGORIES ? names[category] : "?";
}

const char *plan_precision_name(int precision) {
  static const char *const names[] = {"fp32", "bf16-mixed", "bf16-true"};
  return precision >= PLAN_FP32 && precision <= PLAN_BF16_TRUE ? names[precision] : "?";
}

int plan_precision_parse(const char *name) {
  if (!strcmp(name, "bf16")) return PLAN_BF16_MIXED;
  for (int p = PLAN_FP32; p <= PLAN_BF16_TRUE; p++)
    if (!strcmp(name, plan_precision_name(p))) return p;
  return -1;
}

/* Bytes per scalar, by category, of what exists (weights: all params) or
 * trains (the rest). */
static void precision_sizes(int precision, int *weight, int *master, int *grad, int *moments) {
  switch (precision) {
  case PLAN_BF16_MIXED: *weight = 2, *master = 4, *grad = 4, *moments = 8; break;
  case PLAN_BF16_TRUE: *weight = 2, *master = 0, *grad = 2, *moments = 4; break;
  default: /* the CPU trains fp32 weights in place: no master copy */
    *weight = 4, *master = 0, *grad = 4, *moments = 8;
  }
}

int plan_compute(const ir_model *m, const plan_settings *ps, plan_memory *out, lt_error *err) {
  if (ps->method == TRAIN_LISA && (ps->gamma < 0 || ps->gamma > m->n_layer))
    return lt_fail(err, "--gamma %d exceeds the model's %d middle blocks", ps->gamma, m->n_layer);
  if (ps->precision < PLAN_FP32 || ps->precision > PLAN_BF16_TRUE)
    return lt_fail(err, "unknown precision %d", ps->precision);
  int slots = ps->method == TRAIN_LISA ? ps->gamma : m->n_layer;
  /* LoRA trains only the adapters (the model has them: lora_apply) */
  unsigned char *trains = NULL;
  if (ps->method == TRAIN_LORA) {
    trains = malloc((size_t)m->n_params + 1);
    if (!trains) return lt_fail(err, "out of memory");
    lora_trains(m, trains);
  }
  int gpu = ps->precision != PLAN_FP32;
  ms_state s;
  int rc = ms_plan(&s, m, ps->batch, ps->seq, slots, trains, gpu ? 2 : 4, err);
  free(trains);
  if (rc) {
    ms_free(&s);
    return -1;
  }
  /* what trains: what holds gradients (embed, head, the blocks' slots) */
  uint64_t trainable = (uint64_t)s.n_grad_scalars, all = (uint64_t)s.n_param_scalars;
  int weight, master, grad, moments;
  precision_sizes(ps->precision, &weight, &master, &grad, &moments);
  uint64_t *b = out->bytes;
  b[PLAN_WEIGHTS] = (uint64_t)weight * all;
  b[PLAN_MASTER_WEIGHTS] = (uint64_t)master * trainable;
  b[PLAN_GRADS] = (uint64_t)grad * trainable;
  b[PLAN_OPTIMIZER] = (uint64_t)moments * trainable;
  b[PLAN_WORKSPACE] = gpu ? CUBLASLT_WORKSPACE : 0;
  b[PLAN_ACTIVATIONS] = s.bytes_acts;
  out->total = 0;
  for (int c = 0; c < PLAN_NCATEGORIES; c++) out->total += b[c];
  ms_free(&s);
  return 0;
}
