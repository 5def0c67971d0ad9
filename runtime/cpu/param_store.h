/* param_store.h: where a trainer's parameters and AdamW moments live, read
 * and written one tensor (or range) at a time: the host state's own arrays
 * (ps_host), or a device's memory (dev_train.h's dt_store). Loading, saving,
 * checkpoints, LoRA merges and weight norms go through a store, so a device
 * run keeps nothing model-sized on the host: only the tensor in hand. */
#ifndef LT_PARAM_STORE_H
#define LT_PARAM_STORE_H

#include <stdint.h>

#include "err.h"
#include "model_state.h"

typedef struct param_store {
  void *ctx;
  /* (p, layer)'s ir_param_numel values, fp32, in lisa's row order */
  int (*get)(void *ctx, int p, int layer, float *out, lt_error *err);
  int (*put)(void *ctx, int p, int layer, const float *in, lt_error *err);
  /* AdamW moment `which` (0: m, 1: v): n values from index `at` of the
   * gradient layout (ms_state.grads'); NULL where there are none */
  int (*get_moments)(void *ctx, int which, int64_t at, int64_t n, float *out, lt_error *err);
  int (*put_moments)(void *ctx, int which, int64_t at, int64_t n, const float *in,
                     lt_error *err);
  /* after a checkpoint's whole state is put (the trainer's step counts are
   * restored): take them; may be NULL */
  int (*restored)(void *ctx, lt_error *err);
  /* --zero 1 where the store's moments are sharded over ranks (a device's):
   * whole = 1 makes them whole for a state's save (gather: from every
   * rank's share, a collective) or load (zeros to put into); whole = 0
   * takes this rank's share back. NULL where they are always whole. */
  int (*moments_whole)(void *ctx, int whole, int gather, lt_error *err);
} param_store;

/* The host arrays of a state and its moments (m and v may be NULL). */
typedef struct {
  ms_state *s;
  float *m, *v;
} ps_host_arrays;

/* A store over a's arrays; a must outlive it. */
param_store ps_host(ps_host_arrays *a);

/* 0 if [at, at + n) lies in s's gradient layout (where moments are), else
 * -1 with the reason: a store's check of a moments range. */
int ps_check_moments(const ms_state *s, int64_t at, int64_t n, lt_error *err);

/* Every parameter from one store into another, a tensor at a time. */
int ps_copy(const ir_model *m, const param_store *from, const param_store *to, lt_error *err);

/* The largest parameter's element count: the staging a store's user needs. */
int64_t ps_max_numel(const ir_model *m);

/* How many tensors param p has: one per block for a block param, else one. */
int ps_param_layers(const ir_model *m, int p);

#endif
