/* cpu_profile.h: `lisa train --profile` on the CPU backend. Every IR op
 * the executor runs (by section, pass and path), the gradient zeroing and
 * AdamW, timed on the host clock into one labelled table (profile.h). */
#ifndef LT_CPU_PROFILE_H
#define LT_CPU_PROFILE_H

#include "executor.h"
#include "ir.h"
#include "profile.h"

typedef struct cpu_profile {
  exec_profile exec; /* what the executor reads through ms_state.profile */
  prof_table table;
  int row_zero, row_adamw;
} cpu_profile;

/* Rows for every op of m's sections: forward ("block"), backward on the
 * ACTIVE and FROZEN paths ("block_active", "block_frozen"). */
int cpu_profile_create(cpu_profile *p, const ir_model *m, int N, lt_error *err);
void cpu_profile_free(cpu_profile *p);

#endif
