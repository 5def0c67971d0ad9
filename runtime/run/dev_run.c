/* dev_run.c: the pieces of a device training run, in the order they start. */
#include "dev_run.h"

#include <stdio.h>
#include <stdlib.h>

#include "gen_tune.h"
#include "lora.h"
#include "memory_plan.h"
#include "tune_db.h"

struct dev_run {
  dev_provider dev;
  trainer *t;
  gen_program prog;
  int have_prog;
  unsigned char *trains;
  gen_tuning *tuning;  /* --tune, else the tuning database's; NULL: the defaults */
  dev_trainer *trainer;
  ncomm *comm;           /* several ranks: the gradients' sums */
  path_profile *profile; /* NULL unless profiling */
  double flops_per_token;
  int mfu;               /* bf16 runs on a device whose peak is known */
  unsigned unfused;      /* epilogues generated unfused */
  uint64_t memory[MEMORY_NCATEGORIES]; /* the arena and the workspace, by category */
};

int dev_run_open(dev_run **out, const dev_provider *p, lt_error *err) {
  dev_run *r = calloc(1, sizeof *r);
  if (!r) {
    if (p->close) p->close(p->ctx);
    return lt_fail(err, "out of memory");
  }
  r->dev = *p;
  *out = r;
  return 0;
}

gen_config dev_program_config(const dev_provider *p, int B, int T, int grad_accum, int precision,
                              int nearest, const unsigned char *trains, const gen_tuning *tuning) {
  gen_config cfg = {.B = B, .T = T, .grad_accum = grad_accum, .sms = p->sms, .no_mma = p->no_mma,
                    .opt_nearest = nearest, .trains = trains, .tuning = tuning};
  precision_dtypes(precision, &cfg.dtype, &cfg.grad_dtype);
  return cfg;
}

/* The program's settings for t's model, method, batch and sequence. */
static int config_of(dev_run *r, int precision, int nearest, gen_config *cfg, lt_error *err) {
  const trainer *t = r->t;
  if (t->cfg.method == TRAIN_LORA) {
    if (!r->trains && !(r->trains = malloc((size_t)t->ir.n_params + 1)))
      return lt_fail(err, "out of memory");
    lora_trains(&t->ir, r->trains);
  }
  *cfg = dev_program_config(&r->dev, t->state.B, t->state.T, trainer_grad_accum(t), precision,
                            nearest, r->trains, r->tuning);
  return 0;
}

/* The tunables: --tune's, else the device's tuning database's entries for
 * this program (--no-tune-db: none), said on stderr. */
static int load_tuning(dev_run *r, const run_backend_options *o, const gen_config *cfg,
                       lt_error *err) {
  if (o->tune_path) return gen_tune_load(&r->tuning, o->tune_path, err);
  if (o->no_tune_db || !r->dev.tune_device[0]) return 0;
  char applied[1024];
  int rc = tdb_lookup(r->dev.tune_device, &r->t->ir, cfg, &r->tuning, applied, sizeof applied,
                      stderr, err);
  if (rc == 0 && r->tuning && !o->quiet)
    fprintf(stderr, "lisa: kernels tuned by lisa tune (--no-tune-db: the defaults): %s\n", applied);
  return rc;
}

/* The program, loaded. */
static int build(dev_run *r, const run_backend_options *o, lt_error *err) {
  gen_config cfg;
  if (config_of(r, o->precision, o->nearest, &cfg, err) || load_tuning(r, o, &cfg, err)) return -1;
  cfg.tuning = r->tuning;
  if (r->dev.build(r->dev.ctx, &r->t->ir, &cfg, &r->prog, &r->unfused, err)) return -1;
  r->have_prog = 1;
  return 0;
}

/* Several ranks (mpirun): a communicator of them all for the trainer. */
static int join_ranks(dev_run *r, const run_backend_options *o, lt_error *err) {
  dist_comm *world = trainer_config(r->t)->comm;
  if (dist_size(world) == 1) return 0;
  if (!r->dev.collectives)
    return lt_fail(err, "%d ranks: this device has no collectives", dist_size(world));
  nccl_lib lib;
  ncomm_streams streams;
  if (r->dev.collectives(r->dev.ctx, world, &lib, &streams, err) ||
      ncomm_open(&r->comm, &lib, world, &streams, err))
    return -1;
  dt_comm comm = ncomm_iface(r->comm);
  if (dt_use_comm(r->trainer, &comm, err)) return -1;
  if (!o->quiet)
    fprintf(stderr, "lisa: %d ranks sum their gradients with %s\n", dist_size(world),
            ncomm_library(r->comm));
  return 0;
}

static int prepare(dev_run *r, trainer *t, const run_backend_options *o, lt_error *err) {
  r->t = t;
  if (build(r, o, err)) return -1;
  dt_device dev = r->dev.iface(r->dev.ctx);
  if (dt_create(&r->trainer, t, &r->prog, &dev, err) || join_ranks(r, o, err)) return -1;
  param_store ps = dt_store(r->trainer);
  trainer_use_store(t, &ps);
  if (trainer_load_weights(t, err)) return -1; /* straight from the shards to the device */
  dt_arena_categories(r->trainer, r->memory);
  r->memory[MEMORY_WORKSPACE] += r->dev.workspace_bytes;
  r->flops_per_token = trainer_flops_per_token(t);
  r->mfu = o->precision != PRECISION_FP32 && r->dev.bf16_peak > 0;
  if (!o->profile) return 0;
  if (path_profile_create(&r->profile, &r->prog, dt_max_calls(r->trainer), &dev.exec,
                          &dev.timers, err))
    return -1;
  path_exec_backend timed = path_profile_backend(r->profile);
  dt_use_exec(r->trainer, &timed);
  return 0;
}

static int step(dev_run *r, train_step_stats rows[2], int *n, int flush, lt_error *err) {
  int ready;
  *n = 0;
  if (dt_step(r->trainer, &rows[0], &ready, err)) return -1;
  *n += ready;
  if (r->profile && path_profile_collect(r->profile, err)) return -1;
  if (flush && dt_finish(r->trainer, &rows[*n], &ready, err)) return -1;
  *n += flush && ready;
  for (int i = 0; i < *n; i++) {
    train_step_stats *st = &rows[i];
    st->peak_bytes = dt_arena_bytes(r->trainer) + r->dev.workspace_bytes;
    st->device_used_bytes = r->dev.used_bytes ? r->dev.used_bytes(r->dev.ctx) : st->peak_bytes;
    st->mfu = r->mfu ? r->flops_per_token * st->tokens_per_s / r->dev.bf16_peak : -1;
    st->device_memory = r->memory;
  }
  return 0;
}

unsigned dev_run_unfused(const dev_run *r) { return r->unfused; }

void dev_run_close(dev_run *r) {
  if (!r) return;
  path_profile_free(r->profile);
  dt_free(r->trainer);
  ncomm_close(r->comm); /* no sum in flight: the run waited for its last step */
  if (r->dev.unload) r->dev.unload(r->dev.ctx); /* its paths point into the program */
  if (r->have_prog) gen_free(&r->prog);
  free(r->trains);
  gen_tune_free(r->tuning);
  if (r->dev.close) r->dev.close(r->dev.ctx);
  free(r);
}

/* ---- the run loop's backend (run.h) ------------------------------------- */

static int backend_prepare(void *ctx, trainer *t, const run_backend_options *o, lt_error *err) {
  dev_run *r = ctx;
  if (prepare(r, t, o, err)) return -1;
  if (r->unfused && !o->quiet)
    fprintf(stderr, "lisa: cuBLASLt has no algorithm for some fused GEMM epilogues here; "
                    "they run as kernels of their own (mask 0x%x of enum gen_epilogue)\n",
            r->unfused);
  return 0;
}

static int backend_step(void *ctx, trainer *t, train_step_stats rows[2], int *n, int flush,
                        lt_error *err) {
  (void)t;
  return step(ctx, rows, n, flush, err);
}

static int backend_sync_counts(void *ctx, lt_error *err) {
  (void)err;
  dt_sync_counts(((dev_run *)ctx)->trainer);
  return 0;
}

static prof_table *backend_profile_table(void *ctx, trainer *t) {
  (void)t;
  dev_run *r = ctx;
  return r->profile ? path_profile_table(r->profile) : NULL;
}

static int backend_eval_batch(void *ctx, trainer *t, float *loss, lt_error *err) {
  (void)t;
  return dt_eval_batch(((dev_run *)ctx)->trainer, loss, err);
}

static void backend_close(void *ctx) { dev_run_close(ctx); }

const run_backend *dev_run_backend(void) {
  static const run_backend dev = {"device", 1, backend_prepare, backend_step, backend_sync_counts,
                                  backend_profile_table, backend_eval_batch, backend_close};
  return &dev;
}
