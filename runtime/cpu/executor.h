/* executor.h: runs a section instance's forward or backward op list on the
 * CPU backend, calling one cpu_ops kernel per IR op. */
#ifndef LT_EXECUTOR_H
#define LT_EXECUTOR_H

#include "model_state.h"
#include "profile.h"

/* The three paths a block can take in a step (design notes). */
enum exec_path {
  EXEC_ACTIVE,  /* backward computes dX and the parameter gradients */
  EXEC_FROZEN,  /* backward computes dX only: param_grad ops are skipped */
  EXEC_FORWARD, /* no backward: no gradient has to reach or pass this block */
};

/* lisa train --profile on the CPU: each op's time goes into table row
 * row0[section][pass] + the op's index; pass 0 is the forward, 1 + an
 * exec_path (ACTIVE, FROZEN) the backward on that path. */
typedef struct exec_profile {
  prof_table *table;
  int row0[IR_NSECTIONS][3];
} exec_profile;

void exec_forward(ms_state *s, int inst);
/* loss_scale multiplies the loss gradient (1 / grad-accumulation steps). */
void exec_backward(ms_state *s, int inst, int path, float loss_scale);

#endif
