/* log.h: what a run reports. One JSON object per step to --log-jsonl (the
 * interface contract in the design notes), and a progress line (step, loss,
 * tokens/s, ETA) on a terminal, redrawn in place; when stderr is not a
 * terminal, a plain line every 5% of the run instead. */
#ifndef LT_LOG_H
#define LT_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "train.h"

typedef struct {
  FILE *jsonl;          /* NULL: no JSONL */
  char path[1024];      /* its name, for messages */
  FILE *term;           /* progress destination; NULL when --quiet */
  int tty;              /* term is a terminal: redraw one line */
  int64_t total_steps;
  double ms_total;      /* sum of step times so far (for the ETA) */
  int64_t steps_seen;
  int n_norms;          /* n_layer + 2 */
  double *weight_norms, *grad_norms; /* scratch for --norms-every */
} log_sink;

/* Opens the JSONL (never through a symlink). first_step 0 starts it afresh;
 * a run resumed at first_step keeps the rows of earlier steps and the events
 * up to first_step, drops the rest (and a torn last line), and appends. */
int log_open(log_sink *l, const char *jsonl_path, int quiet, int64_t total_steps, int64_t first_step,
             int n_layer, lt_error *err);
/* One row: the contract's fields, the memory breakdown and, with_norms, the
 * per-layer weight and gradient norms ([embed, blocks..., head]; null where
 * nothing trained). Numbers that are not finite are written null. Each row is
 * flushed; a failed write (a full disk) is an error naming the file. */
int log_step(log_sink *l, const trainer *t, const train_step_stats *st, int with_norms,
             lt_error *err);
/* An "event" row, e.g. log_event(l, "checkpoint", "path", "out.safetensors"). */
int log_event(log_sink *l, int64_t step, const char *event, const char *key, const char *value,
              lt_error *err);
/* A validation row, {"event":"val","step":S,"val_loss":..,"val_perplexity":..,
 * "val_tokens":..}: the loss of the weights after S steps (a line on the
 * terminal too). */
int log_val(log_sink *l, int64_t step, double loss, int64_t tokens, lt_error *err);
/* Flushes and fsyncs the JSONL: before a state is saved, so the log on disk
 * never lags a saved state. */
int log_sync(log_sink *l, lt_error *err);
void log_close(log_sink *l);

#endif
