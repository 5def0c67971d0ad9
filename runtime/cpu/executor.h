/* executor.h: runs a section instance's forward or backward op list on the
 * CPU backend, calling one cpu_ops kernel per IR op (a table indexed by
 * ir_opkind; ops defined by a formula evaluate their trees). */
#ifndef LT_EXECUTOR_H
#define LT_EXECUTOR_H

#include "model_state.h"
#include "path.h"
#include "profile.h"

/* lisa train --profile on the CPU: each op's time goes into table row
 * row0[section][pass] + the op's index; pass 0 is the forward, 1 + a
 * path_kind (ACTIVE, FROZEN) the backward on that path. */
typedef struct exec_profile {
  prof_table *table;
  int row0[IR_NSECTIONS][3];
} exec_profile;

void exec_forward(ms_state *s, int inst);
/* loss_scale multiplies the loss gradient (1 / grad-accumulation steps). */
void exec_backward(ms_state *s, int inst, path_kind path, float loss_scale);

/* Decoding with a KV cache: one block's cache, [positions, kv width] each. */
typedef struct {
  float *k, *v;
} exec_kv;
/* The forward of instance inst for `rows` new positions pos0 .. pos0 +
 * rows - 1 of one sequence (its buffers' first rows): rope and position
 * embeddings from pos0; a block's attention (kv, NULL elsewhere) stores
 * the new keys and values in the cache and attends over every cached
 * position. */
void exec_forward_cached(ms_state *s, int inst, int rows, int pos0, const exec_kv *kv);

/* ops[0..n_ops) of graph g over bufs (one per value of g, as ms_state's
 * bufs[inst]), for callers that wire their own buffers (tests). */
void exec_ops(const ir_model *m, const ir_graph *g, void **bufs, int B, int T,
              const ir_op *ops, int n_ops, float loss_scale);

/* The CPU backend has a kernel for ops of this kind. */
int exec_supports(ir_opkind kind);

#endif
