#include "run.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "data.h"
#include "hf_folder.h"
#include "log.h"
#include "peft.h"
#include "safetensors.h"
#include "weights.h"

/* ---- the cpu backend: the host trainer itself --------------------------- */

static int cpu_prepare(void *ctx, trainer *t, const run_backend_options *o, lt_error *err) {
  (void)ctx;
  return o->profile ? trainer_profile(t, err) : 0;
}

static int cpu_step(void *ctx, trainer *t, train_step_stats rows[2], int *n, int flush,
                    lt_error *err) {
  (void)ctx, (void)flush;
  *n = 1;
  return trainer_step(t, &rows[0], err);
}

static int cpu_sync_counts(void *ctx, lt_error *err) {
  (void)ctx, (void)err;
  return 0;
}

static prof_table *cpu_profile_table(void *ctx, trainer *t) {
  (void)ctx;
  return trainer_profile_table(t);
}

static int cpu_eval_batch(void *ctx, trainer *t, float *loss, lt_error *err) {
  (void)ctx, (void)err;
  *loss = train_forward(trainer_state(t));
  return 0;
}

static void cpu_close(void *ctx) { (void)ctx; }

const run_backend *run_cpu_backend(void) {
  static const run_backend cpu = {"cpu", 0, cpu_prepare, cpu_step, cpu_sync_counts,
                                  cpu_profile_table, cpu_eval_batch, cpu_close};
  return &cpu;
}

/* ---- the loop ----------------------------------------------------------- */

int run_resume(trainer *t, const char *dir, int64_t steps, int override, int quiet,
               lt_error *err) {
  ckpt_overrides ov = {.allow = override};
  if (ckpt_resume(t, dir, &ov, err)) return -1;
  int64_t at = trainer_next_step(t);
  if (at > steps)
    return lt_fail(err, "%s: the saved state is at step %lld, past --steps %lld", dir,
                   (long long)at, (long long)steps);
  if (!quiet) fprintf(stderr, "resumed at step %lld from %s\n", (long long)at, dir);
  if (ov.n_changed) fprintf(stderr, "lisa: --override: %s\n", ov.changes);
  return 0;
}

/* --profile: the table on stdout and "profile" rows in the JSONL. */
static void report_profile(const run_backend *be, void *ctx, trainer *t, const log_sink *log) {
  prof_table *pt = be->profile_table(ctx, t);
  if (!pt || pt->steps == 0) return;
  prof_print(pt, stdout);
  if (log->jsonl) prof_write_jsonl(pt, log->jsonl, (long long)trainer_next_step(t));
}

static int save_state(trainer *t, const run_backend *be, void *ctx, const run_options *o,
                      log_sink *log, lt_error *err) {
  char step_dir[1100];
  int64_t at = trainer_next_step(t);
  /* the log first: on disk it never lags a state a resume starts from */
  if (log_sync(log, err) || be->sync_counts(ctx, err) || ckpt_save_ranks(t, o->save_state_dir, err) ||
      ckpt_step_path(o->save_state_dir, at, step_dir, sizeof step_dir, err) ||
      log_event(log, at, "checkpoint", "path", step_dir, err))
    return -1;
  if (!o->quiet) fprintf(stderr, "saved state %s\n", step_dir);
  return 0;
}

int run_save_is_folder(const run_options *o) {
  static const char ext[] = ".safetensors";
  size_t n = o->save_path ? strlen(o->save_path) : 0;
  return o->max_shard_gb > 0 ||
         n < sizeof ext || strcmp(o->save_path + n - (sizeof ext - 1), ext) != 0;
}

/* The weights at the end (LoRA merged first when asked): one file, or a
 * model folder (run_save_is_folder) that is, for a model that came from a
 * Hugging Face folder, that folder again: its config.json and tokenizer
 * files beside the trained weights, under the checkpoint's names. LoRA
 * without merging saves a folder of the adapters alone, for peft. */
static int save_dtype(const trainer *t, const run_options *o) {
  if (o->save_dtype != RUN_SAVE_AUTO) return o->save_dtype == RUN_SAVE_BF16 ? ST_BF16 : ST_F32;
  const char *source = t->folder_weights[0] ? t->folder_weights : trainer_config(t)->weights_path;
  return source ? wt_source_dtype(source) : ST_F32;
}

static int save_weights(trainer *t, const run_options *o, log_sink *log, lt_error *err) {
  const ir_model *m = trainer_state(t)->ir;
  const param_store *ps = trainer_store(t);
  int rc;
  const train_config *cfg = trainer_config(t);
  if (o->merge_lora && trainer_merge_lora(t, err)) return -1;
  if (cfg->method == TRAIN_LORA && !o->merge_lora && run_save_is_folder(o)) {
    /* the adapters alone, as a PEFT folder for the base model */
    peft_config pc = {cfg->lora_rank, cfg->lora_alpha,
                      t->folder_weights[0] ? t->folder_weights : cfg->model_path};
    rc = peft_save_from(m, ps, o->save_path, &pc, err);
  } else if (run_save_is_folder(o)) {
    uint64_t shard = o->max_shard_gb > 0 ? (uint64_t)(o->max_shard_gb * 1e9) : UINT64_MAX;
    rc = wt_save_sharded_into(m, ps, o->save_path, shard, o->merge_lora, save_dtype(t, o), err);
    if (rc == 0 && t->folder_weights[0])
      rc = hf_copy_side_files(t->folder_weights, o->save_path, NULL, err);
  } else {
    rc = wt_save_into(m, ps, o->save_path, o->merge_lora, save_dtype(t, o), err);
  }
  if (rc || log_event(log, trainer_next_step(t), "checkpoint", "path", o->save_path, err))
    return -1;
  if (!o->quiet) fprintf(stderr, "saved %s\n", o->save_path);
  return 0;
}

/* A stop asked for (SIGINT): the state is saved where there is somewhere to
 * save it; the weights are not (the run did not finish). */
static int interrupted(trainer *t, const run_backend *be, void *ctx, const run_options *o,
                       log_sink *log, lt_error *err) {
  int64_t at = trainer_next_step(t);
  if (log_event(log, at, "interrupted", "by", "signal", err)) return -1;
  if (o->save_state_dir && save_state(t, be, ctx, o, log, err)) return -1;
  if (o->save_state_dir)
    lt_fail(err, "interrupted before step %lld; the state is saved: --resume %s continues",
            (long long)at, o->save_state_dir);
  else
    lt_fail(err, "interrupted before step %lld; nothing saved (no --save-state)", (long long)at);
  return RUN_INTERRUPTED;
}

/* ---- validation ----------------------------------------------------------- */

/* The backend's forward, as train_sweep_loss calls it. */
typedef struct {
  const run_backend *be;
  void *ctx;
  trainer *t;
} val_forward;

static int backend_loss(void *vf, float *loss, lt_error *err) {
  val_forward *f = vf;
  return f->be->eval_batch(f->ctx, f->t, loss, err);
}

/* The validation file's first batches (every full one, or eval_batches),
 * through the backend's forward: the mean loss over their counted targets,
 * as lisa eval computes it. The state's batch is overwritten; the next step
 * reads its own. */
static int validate(trainer *t, const run_backend *be, void *ctx, const run_options *o,
                    const data_file *val, log_sink *log, lt_error *err) {
  ms_state *s = trainer_state(t);
  int64_t batches = data_sweep_batches(val, s->B, s->T, o->eval_batches, err), tokens;
  double loss;
  val_forward f = {be, ctx, t};
  if (batches < 0 || train_sweep_loss(s, val, batches, backend_loss, &f, &loss, &tokens, err))
    return -1;
  return log_val(log, trainer_next_step(t), loss, tokens, err);
}

/* Validation is due once the weights of step `done` exist. */
static int val_due(const run_options *o, int64_t done) {
  return o->val_path && (done == o->steps || (o->eval_every && done % o->eval_every == 0));
}

/* Opens --val-data and checks a batch fits in it. */
static int run_open_val(const run_options *o, const trainer *t, data_file *val, lt_error *err) {
  memset(val, 0, sizeof *val);
  if (!o->val_path) return 0;
  const ms_state *s = trainer_state((trainer *)t);
  if (data_open(val, o->val_path, s->ir->vocab_size, err)) return -1;
  return data_sweep_batches(val, s->B, s->T, 0, err) < 0 ? -1 : 0;
}

int run_check_val(const run_options *o, const trainer *t, lt_error *err) {
  data_file val;
  int rc = run_open_val(o, t, &val, err);
  data_close(&val);
  return rc;
}

/* A step whose loss or gradient norm is not finite has broken the weights
 * (AdamW spreads a NaN to every parameter it updates): the run ends here,
 * its row written, and nothing after it is saved over a good file. */
static int check_finite(const train_step_stats *row, const run_options *o, lt_error *err) {
  const char *what = !isfinite(row->loss) ? "loss" : !isfinite(row->grad_norm) ? "gradient norm" : NULL;
  if (!what) return 0;
  double v = !isfinite(row->loss) ? row->loss : row->grad_norm;
  if (o->save_state_dir)
    return lt_fail(err, "step %lld: the %s is %g; stopped, nothing saved (the last good state "
                   "stays in %s)", (long long)row->step, what, v, o->save_state_dir);
  return lt_fail(err, "step %lld: the %s is %g; stopped, nothing saved", (long long)row->step,
                 what, v);
}

/* One pass of the loop: a step and the rows of the steps that finished; a
 * step whose end is read (norms, a save, the last) finishes before the next. */
static int run_step(trainer *t, const run_backend *be, void *ctx, const run_options *o,
                    const data_file *vdata, log_sink *log, int64_t *run_steps, int last,
                    lt_error *err) {
  int64_t s = trainer_next_step(t);
  int norms = o->norms_every && s % o->norms_every == 0;
  int save = o->save_every && (s + 1) % o->save_every == 0 && s + 1 < o->steps;
  int val = val_due(o, s + 1);
  train_step_stats rows[2];
  int n = 0;
  if (be->step(ctx, t, rows, &n, norms || save || val || last || s + 1 == o->steps, err))
    return -1;
  /* the first step also fills caches (and loads modules on a device) */
  prof_table *pt = ++*run_steps == 1 ? be->profile_table(ctx, t) : NULL;
  if (pt) prof_clear(pt);
  for (int i = 0; i < n; i++) {
    int with_norms = o->norms_every && rows[i].step % o->norms_every == 0;
    if (log_step(log, t, &rows[i], with_norms, err) || check_finite(&rows[i], o, err)) return -1;
  }
  if (val && validate(t, be, ctx, o, vdata, log, err)) return -1;
  return save ? save_state(t, be, ctx, o, log, err) : 0;
}

int run_training(trainer *t, const run_backend *be, void *ctx, const run_options *o,
                 lt_error *err) {
  log_sink log;
  if (log_open(&log, o->jsonl_path, o->quiet, o->steps, trainer_next_step(t),
               trainer_state(t)->ir->n_layer, err)) {
    log_close(&log);
    return -1;
  }
  data_file vdata;
  int rc = run_open_val(o, t, &vdata, err), stopping = 0;
  int64_t run_steps = 0;
  /* the loss before any step: the "before" a fine-tune is judged against */
  if (rc == 0 && o->val_path && trainer_next_step(t) == 0)
    rc = validate(t, be, ctx, o, &vdata, &log, err);
  /* the flag is read before a step, so the step that sees it is flushed and
     its row written: a signal mid-step costs at most one more step */
  while (trainer_next_step(t) < o->steps && rc == 0 && !stopping) {
    stopping = o->stop && *o->stop;
    rc = run_step(t, be, ctx, o, &vdata, &log, &run_steps, stopping, err);
  }
  if (rc == 0 && stopping && trainer_next_step(t) < o->steps) {
    rc = interrupted(t, be, ctx, o, &log, err);
    log_close(&log);
    data_close(&vdata);
    return rc;
  }
  if (rc == 0 && o->save_state_dir) rc = save_state(t, be, ctx, o, &log, err);
  if (rc == 0 && o->save_path) rc = save_weights(t, o, &log, err);
  if (rc == 0) report_profile(be, ctx, t, &log);
  log_close(&log);
  data_close(&vdata);
  return rc;
}
