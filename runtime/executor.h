/* executor.h: runs a section instance's forward or backward op list on the
 * CPU backend, calling one cpu_ops kernel per IR op. */
#ifndef LT_EXECUTOR_H
#define LT_EXECUTOR_H

#include "model_state.h"

/* The three paths a block can take in a step (design notes). */
enum exec_path {
  EXEC_ACTIVE,  /* backward computes dX and the parameter gradients */
  EXEC_FROZEN,  /* backward computes dX only: param_grad ops are skipped */
  EXEC_FORWARD, /* no backward: no gradient has to reach or pass this block */
};

void exec_forward(ms_state *s, int inst);
/* loss_scale multiplies the loss gradient (1 / grad-accumulation steps). */
void exec_backward(ms_state *s, int inst, int path, float loss_scale);

#endif
