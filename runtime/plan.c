#include "plan.h"

#include <stdlib.h>

#include "lora.h"
#include "model_state.h"
#include "train.h"

#define CUBLASLT_WORKSPACE (32u << 20) /* Hopper: 32 MiB (anchors.md) */

const char *plan_category_name(int category) {
  static const char *const names[PLAN_NCATEGORIES] = {
      "weights", "master_weights", "grads", "optimizer", "activations", "workspace"};
  return category >= 0 && category < PLAN_NCATEGORIES ? names[category] : "?";
}

int plan_compute(const ir_model *m, const plan_settings *ps, plan_memory *out, lt_error *err) {
  if (ps->method == TRAIN_LISA && (ps->gamma < 0 || ps->gamma > m->n_layer))
    return lt_fail(err, "--gamma %d exceeds the model's %d middle blocks", ps->gamma, m->n_layer);
  int slots = ps->method == TRAIN_LISA ? ps->gamma : m->n_layer;
  /* LoRA trains only the adapters (the model has them: lora_apply) */
  unsigned char *trains = NULL;
  if (ps->method == TRAIN_LORA) {
    trains = malloc((size_t)m->n_params + 1);
    if (!trains) return lt_fail(err, "out of memory");
    lora_trains(m, trains);
  }
  ms_state s;
  int rc = ms_plan(&s, m, ps->batch, ps->seq, slots, trains, ps->bf16 ? 2 : 4, err);
  free(trains);
  if (rc) {
    ms_free(&s);
    return -1;
  }
  /* what trains: what holds gradients (embed, head, the blocks' slots) */
  uint64_t trainable = (uint64_t)s.n_grad_scalars, all = (uint64_t)s.n_param_scalars;
  uint64_t *b = out->bytes;
  if (ps->bf16) {
    b[PLAN_WEIGHTS] = 2 * all;
    b[PLAN_MASTER_WEIGHTS] = 4 * trainable;
    b[PLAN_GRADS] = 2 * trainable;
    b[PLAN_WORKSPACE] = CUBLASLT_WORKSPACE;
  } else { /* the CPU trains fp32 weights in place: no master copy */
    b[PLAN_WEIGHTS] = 4 * all;
    b[PLAN_MASTER_WEIGHTS] = 0;
    b[PLAN_GRADS] = 4 * trainable;
    b[PLAN_WORKSPACE] = 0;
  }
  b[PLAN_OPTIMIZER] = 8 * trainable; /* fp32 m and v */
  b[PLAN_ACTIVATIONS] = s.bytes_acts;
  out->total = 0;
  for (int c = 0; c < PLAN_NCATEGORIES; c++) out->total += b[c];
  ms_free(&s);
  return 0;
}
