/* run.h: `lisa train`'s loop (steps, JSONL rows, norms, saves, profile)
 * over a backend given as a table, so the loop is one for the CPU trainer
 * and a device. The CLI chooses the backend and passes it in (the cuda one
 * sits above this library: cuda_backend() in cuda_run.h). */
#ifndef LT_RUN_H
#define LT_RUN_H

#include <signal.h>
#include <stdint.h>

#include "err.h"
#include "profile.h"
#include "train.h"

typedef struct {
  int precision;         /* memory_plan.h's PRECISION_*; the cpu takes fp32 only */
  int nearest;           /* bf16-mixed: round to nearest, not stochastically */
  const char *tune_path; /* the generated kernels' tunables; NULL */
  int no_tune_db;        /* --no-tune-db: not the tuning database's either */
  int profile;           /* --profile */
  int quiet;
} run_backend_options;

typedef struct {
  const char *name;
  int params_only; /* the host trainer keeps the layout only (values elsewhere) */
  /* After trainer_create, before a resume: everything before step 0; a
   * params_only backend puts its store into t and loads t's weights. */
  int (*prepare)(void *ctx, trainer *t, const run_backend_options *o, lt_error *err);
  /* One step; rows[0..*n) the steps that finished, in order (a pipelined
   * step finishes while the next is enqueued; flush: this one too). */
  int (*step)(void *ctx, trainer *t, train_step_stats rows[2], int *n, int flush, lt_error *err);
  /* Before a checkpoint: the AdamW step counts into the host trainer
   * (parameters and moments are read through the trainer's store). */
  int (*sync_counts)(void *ctx, lt_error *err);
  prof_table *(*profile_table)(void *ctx, trainer *t); /* NULL: not profiling */
  /* Validation: the mean loss over the counted targets of the host state's
   * ids and targets, forward only, with no step in flight. */
  int (*eval_batch)(void *ctx, trainer *t, float *loss, lt_error *err);
  void (*close)(void *ctx);
} run_backend;

const run_backend *run_cpu_backend(void);

/* --save-dtype: auto is the dtype the starting weights were stored in
 * (wt_source_dtype: bf16 for most Hugging Face releases), f32 otherwise. */
enum run_save_dtype { RUN_SAVE_AUTO, RUN_SAVE_F32, RUN_SAVE_BF16 };

typedef struct {
  int64_t steps;            /* the total, counted from step 0 */
  const char *save_path, *jsonl_path, *save_state_dir;
  double max_shard_gb;      /* > 0: --save writes a folder of shards */
  int save_dtype;           /* enum run_save_dtype: what --save writes the weights in */
  int64_t save_every, norms_every;
  /* --val-data: its loss (non-overlapping windows, its mask honoured) at
   * step 0, every eval_every steps and at the end, as "val_loss" rows;
   * eval_batches > 0 caps the batches read. NULL: none. */
  const char *val_path;
  int64_t eval_every, eval_batches;
  int merge_lora, quiet;
  /* Set from a signal handler to stop: the loop ends after the step in
   * flight, saves the state (with save_state_dir) but not the weights, and
   * run_training returns RUN_INTERRUPTED. NULL: never. */
  const volatile sig_atomic_t *stop;
} run_options;

#define RUN_INTERRUPTED (-2)

/* --save PATH is one safetensors file when PATH ends in ".safetensors" and
 * no shard size is given; anything else is a model folder (weights in
 * Hugging Face's names, one file or shards, and the source folder's
 * config.json and tokenizer files when the model came from one). */
int run_save_is_folder(const run_options *o);

/* ckpt_resume, checked against the total steps. override: let settings that
 * change only the trajectory differ from the saved ones (each change is
 * printed on stderr, even when quiet: a run that changed course says so). */
int run_resume(trainer *t, const char *dir, int64_t steps, int override, int quiet,
               lt_error *err);
/* --val-data opened and checked (a batch fits) before anything slow runs
 * (a device compiles every path first); 0 without one. */
int run_check_val(const run_options *o, const trainer *t, lt_error *err);
/* Runs the steps from the trainer's next step to o->steps; the state is
 * saved every save_every steps and at the end, the weights at the end.
 * 0, -1 on an error, RUN_INTERRUPTED when o->stop ended it (err says how). */
int run_training(trainer *t, const run_backend *be, void *ctx, const run_options *o,
                 lt_error *err);

#endif
