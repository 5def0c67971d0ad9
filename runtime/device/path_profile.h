/* path_profile.h: the time of every kernel launch and GEMM of a step, by
 * path step. A plan_exec backend that forwards each call to the real one
 * between two marks of the device's stream-ordered timers (CUDA events on
 * the GPU, the host clock in the emulator); the marks are read after the
 * step, so timing adds no wait inside it. Rows add up over the instances
 * that run the same path step (every frozen block runs block_frozen's). */
#ifndef LT_PATH_PROFILE_H
#define LT_PATH_PROFILE_H

#include <stdio.h>

#include "err.h"
#include "gen.h"
#include "path_exec.h"
#include "profile.h"

/* A device's timers, in stream order with its path_exec_backend. */
typedef struct {
  void *ctx;
  int (*create)(void *ctx, int n, lt_error *err);  /* n timers, before the loop */
  int (*mark)(void *ctx, int i, lt_error *err);    /* timer i, when the stream gets here */
  /* waits for timer `to`; the milliseconds from `from` to it */
  int (*elapsed)(void *ctx, int from, int to, float *ms, lt_error *err);
  void (*destroy)(void *ctx);
} path_profile_timers;

typedef struct path_profile path_profile;

/* max_calls: launches and GEMMs one profiled step makes at most. */
int path_profile_create(path_profile **out, const gen_program *prog, int max_calls,
                        const path_exec_backend *inner, const path_profile_timers *timers,
                        lt_error *err);
void path_profile_free(path_profile *pf);

/* The backend to run a step with; each call is timed. */
path_exec_backend path_profile_backend(path_profile *pf);

/* After a step: reads the timers of its calls into the rows (waits for the
 * step to finish) and readies them for the next. */
int path_profile_collect(path_profile *pf, lt_error *err);

/* The rows (one per path step, labelled), summed over the steps collected;
 * prof_clear forgets a warm-up step. */
prof_table *path_profile_table(path_profile *pf);

#endif
