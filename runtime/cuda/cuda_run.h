/* cuda_run.h: `lisa train --device cuda`: the device, the generated
 * program for the run and the device trainer, set up before step 0. */
#ifndef LT_CUDA_RUN_H
#define LT_CUDA_RUN_H

#include <stddef.h>

#include "path_profile.h"
#include "run.h"
#include "train.h"

typedef struct cuda_run cuda_run;

/* Opens the first CUDA device; name gets what it is. -1 with the reason. */
int cuda_run_open(cuda_run **out, char *name, size_t cap, lt_error *err);
typedef struct {
  int precision;         /* memory_plan.h: PRECISION_FP32, PRECISION_BF16_MIXED or PRECISION_BF16_TRUE */
  int nearest;           /* bf16-mixed: round the bf16 weights to nearest, not stochastically */
  const char *tune_path; /* a tunables file over templates/tuning.lua (lisa gen --tune); NULL */
} cuda_run_options;

/* Generates every path for t's model, method, batch and sequence as o
 * says, compiles and loads them, puts the device's store into t
 * (dt_store) and loads t's weights into it, tensor by tensor from the
 * shards. t must have been created with params_only; a resume follows. */
int cuda_run_prepare(cuda_run *r, trainer *t, const cuda_run_options *o, lt_error *err);
/* After prepare: the GEMM epilogues (bits 1u << enum gen_epilogue) that
 * run as kernels of their own because cuBLASLt had no algorithm for them
 * fused; 0 normally. Worth a line on the terminal. */
unsigned cuda_run_unfused(const cuda_run *r);
/* After prepare: time every launch and GEMM of the steps that follow; the
 * table holds the sums (NULL: not profiling). */
int cuda_run_profile(cuda_run *r, lt_error *err);
prof_table *cuda_run_profile_table(cuda_run *r);
/* One step enqueued (dev_train.h's pipelined dt_step); rows[0..*n) get the
 * stats of the steps that finished meanwhile, in order: the one before,
 * and with flush this one too (the device is then idle: its state may be
 * read or saved). Fills the rows' mfu, peak_bytes and device_used_bytes. */
int cuda_run_step(cuda_run *r, train_step_stats rows[2], int *n, int flush, lt_error *err);
/* The AdamW step counts into t, for ckpt_save (which reads parameters and
 * moments through t's store, from the device). */
void cuda_run_sync_counts(cuda_run *r);
void cuda_run_close(cuda_run *r);

/* The run loop's backend over an opened cuda_run (the context): prepare
 * generates, loads and uploads (and profiles with o->profile). */
const run_backend *cuda_backend(void);

#endif
