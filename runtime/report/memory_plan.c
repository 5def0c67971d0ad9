#include "memory_plan.h"

#include <stdlib.h>
#include <string.h>

#include "dev_arena.h"
#include "dev_train.h"
#include "gen.h"
#include "model_state.h"
#include "safetensors.h"
#include "train.h"
#include "weights.h"

#define CUBLASLT_WORKSPACE (32u << 20) /* Hopper: 32 MiB (anchors.md) */

const char *memory_category_name(int category) {
  static const char *const names[MEMORY_NCATEGORIES] = {
      "weights", "master_weights", "grads", "optimizer", "activations", "workspace"};
  return category >= 0 && category < MEMORY_NCATEGORIES ? names[category] : "?";
}

const char *precision_name(int precision) {
  static const char *const names[] = {"fp32", "bf16-mixed", "bf16-true"};
  return precision >= PRECISION_FP32 && precision <= PRECISION_BF16_TRUE ? names[precision] : "?";
}

void precision_dtypes(int precision, int *dtype, int *grad_dtype) {
  *dtype = precision == PRECISION_FP32 ? GEN_F32 : GEN_BF16;
  *grad_dtype = precision == PRECISION_BF16_TRUE ? GEN_BF16 : GEN_F32;
}

/* The GPU layouts: the device trainer's own arena for the generated
 * program (dev_train.h), plus cuBLASLt's workspace. */
static int device_bytes(const ir_model *m, const ms_state *s, const memory_plan_settings *ps,
                        const unsigned char *trains, uint64_t *b, lt_error *err) {
  gen_config cfg = {.B = ps->batch, .T = ps->seq, .grad_accum = 1, .trains = trains};
  precision_dtypes(ps->precision, &cfg.dtype, &cfg.grad_dtype);
  gen_program prog;
  if (gen_build(&prog, m, &cfg, err)) return -1;
  int rc = dt_arena_layout(s, &prog, b, err);
  gen_free(&prog);
  b[MEMORY_WORKSPACE] += CUBLASLT_WORKSPACE;
  return rc;
}

/* The CPU's: ms_state's fp32 arenas and AdamW's two moments. */
static void cpu_bytes(const ms_state *s, uint64_t *b) {
  uint64_t trainable = (uint64_t)s->n_grad_scalars;
  b[MEMORY_WEIGHTS] = 4 * (uint64_t)s->n_param_scalars;
  b[MEMORY_MASTER_WEIGHTS] = 0; /* the CPU trains its fp32 weights in place */
  b[MEMORY_GRADS] = 4 * trainable;
  b[MEMORY_OPTIMIZER] = 8 * trainable;
  b[MEMORY_ACTIVATIONS] = s->bytes_acts;
  b[MEMORY_WORKSPACE] = 0;
}

/* The elements of the tensors that train at once (the gradient regions may
 * hold more: their layout's padding). */
static uint64_t trained_scalars(const ms_state *s) {
  uint64_t n = 0;
  for (int p = 0; p < s->ir->n_params; p++)
    if (s->grad_off[p] >= 0)
      n += (uint64_t)ir_param_numel(&s->ir->params[p]) *
           (uint64_t)(s->ir->params[p].section == IR_BLOCK ? s->n_grad_slots : 1);
  return n;
}

/* --zero 1: the moments' scalars of the rank with the most. */
static int64_t largest_shard(const ms_state *s, int ranks) {
  int64_t most = 0;
  for (int k = 0; k < ranks; k++) {
    const int64_t n = train_shard_layout(s, k, ranks, NULL, NULL, NULL);
    most = n > most ? n : most;
  }
  return most;
}

int memory_plan_compute(const ir_model *m, const memory_plan_settings *ps, memory_breakdown *out, lt_error *err) {
  if (ps->method == TRAIN_LISA && (ps->gamma < 0 || ps->gamma > m->n_layer))
    return lt_fail(err, "--gamma %d exceeds the model's %d middle blocks", ps->gamma, m->n_layer);
  if (ps->precision < PRECISION_FP32 || ps->precision > PRECISION_BF16_TRUE)
    return lt_fail(err, "unknown precision %d", ps->precision);
  if (ir_check_seq(m, ps->seq, err)) return -1; /* as lisa train refuses it */
  int slots = ps->method == TRAIN_LISA ? ps->gamma : m->n_layer;
  /* what trains, as the trainer lays it out (LoRA: the model has its
   * adapters, lora_apply) */
  unsigned char *trains;
  if (train_trains_set(m, ps->method, !ps->frozen_embed, !ps->frozen_head, &trains, err))
    return -1;
  ms_state s;
  memset(out, 0, sizeof *out);
  int rc = ms_layout(&s, m, ps->batch, ps->seq, slots, ps->method == TRAIN_LISA, trains, 4, err);
  if (rc == 0) {
    int dtype, grad_dtype;
    precision_dtypes(ps->precision, &dtype, &grad_dtype);
    out->regions = TRAIN_REGION_SLOTS + s.n_grad_slots;
    out->summed_grad_bytes = (uint64_t)s.n_grad_scalars * (uint64_t)gen_dtype_bytes(grad_dtype);
    /* --zero 1 gathers what trained: the CPU its regions whole, a device the
     * tensors' weights (and bf16-mixed's fp32 masters) */
    out->gathered_bytes = ps->precision == PRECISION_FP32
                              ? out->summed_grad_bytes
                              : trained_scalars(&s) * (uint64_t)(gen_dtype_bytes(dtype) +
                                                                 (ps->precision == PRECISION_BF16_MIXED ? 4 : 0));
  }
  if (rc == 0 && ps->precision == PRECISION_FP32) cpu_bytes(&s, out->bytes);
  else if (rc == 0) rc = device_bytes(m, &s, ps, trains, out->bytes, err);
  if (rc == 0 && ps->zero && ps->ranks > 1) { /* m and v of the largest share */
    const uint64_t share = (out->summed_grad_bytes / (uint64_t)s.n_grad_scalars) *
                           (uint64_t)largest_shard(&s, ps->ranks);
    out->bytes[MEMORY_OPTIMIZER] = 2 * (ps->precision == PRECISION_FP32 ? share : arena_align(share));
  }
  if (rc == 0 && ps->precision != PRECISION_FP32) /* the batch, then what a tensor in hand takes */
    out->host_bytes = 8 * (uint64_t)s.N + dt_host_bytes(&s, 1) + wt_staging_bytes(m) +
                      ST_WRITE_CHUNK_BYTES;
  free(trains);
  ms_free(&s);
  if (rc) return -1;
  for (int c = 0; c < MEMORY_NCATEGORIES; c++) out->total += out->bytes[c];
  return 0;
}
