/* executor.h: runs a section instance's forward or backward op list on the
 * CPU backend, calling one cpu_ops kernel per IR op. */
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

#endif
