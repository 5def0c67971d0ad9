/* cuda_run.c: the pieces of a CUDA training run, in the order they start. */
#include "cuda_run.h"

#include <stdio.h>
#include <stdlib.h>

#include "dev_train.h"
#include "gen.h"
#include "gen_tune.h"
#include "gpu_device.h"
#include "gpu_paths.h"
#include "lora.h"
#include "memory_plan.h"

struct cuda_run {
  gpu_device *gpu;
  trainer *t;
  gen_program prog;
  int have_prog;
  unsigned char *trains;
  gen_tuning *tuning;  /* --tune; NULL: the defaults */
  dev_trainer *dev;
  path_profile *profile; /* NULL unless cuda_run_profile */
  double flops_per_token, peak;
  unsigned unfused; /* epilogues generated unfused: cuBLASLt had no algorithm */
  uint64_t memory[MEMORY_NCATEGORIES]; /* the arena and the workspace, by category */
};

int cuda_run_open(cuda_run **out, char *name, size_t cap, lt_error *err) {
  cuda_run *r = calloc(1, sizeof *r);
  if (!r) return lt_fail(err, "out of memory");
  if (gpu_device_open(&r->gpu, name, cap, err)) return free(r), -1;
  *out = r;
  return 0;
}

/* The program for t's model, method, batch and sequence, loaded (the
 * unfused retry: gpu_device_build). */
static int build(cuda_run *r, int precision, int nearest, lt_error *err) {
  const trainer *t = r->t;
  gen_config cfg = {.B = t->state.B, .T = t->state.T, .grad_accum = trainer_grad_accum(t),
                    .sms = gpu_device_sms(r->gpu), .opt_nearest = nearest,
                    .no_mma = gpu_device_sm(r->gpu) < 80, .tuning = r->tuning};
  cfg.dtype = precision == PRECISION_FP32 ? GEN_F32 : GEN_BF16;
  cfg.grad_dtype = precision == PRECISION_BF16_TRUE ? GEN_BF16 : GEN_F32;
  if (t->cfg.method == TRAIN_LORA) {
    if (!(r->trains = malloc((size_t)t->ir.n_params + 1))) return lt_fail(err, "out of memory");
    lora_trains(&t->ir, r->trains);
    cfg.trains = r->trains;
  }
  if (gpu_device_build(r->gpu, &t->ir, &cfg, &r->prog, &r->unfused, err)) return -1;
  r->have_prog = 1;
  return 0;
}

int cuda_run_prepare(cuda_run *r, trainer *t, const cuda_run_options *o, lt_error *err) {
  r->t = t;
  int precision = o->precision, nearest = o->nearest;
  if (o->tune_path && gen_tune_load(&r->tuning, o->tune_path, err)) return -1;
  if (build(r, precision, nearest, err)) return -1;
  dt_device dev = gpu_device_iface(r->gpu);
  if (dt_create(&r->dev, t, &r->prog, &dev, err)) return -1;
  param_store ps = dt_store(r->dev);
  trainer_use_store(t, &ps);
  if (trainer_load_weights(t, err)) return -1; /* straight from the shards to the device */
  dt_arena_categories(r->dev, r->memory);
  r->memory[MEMORY_WORKSPACE] += GPU_WORKSPACE_BYTES;
  r->flops_per_token = trainer_flops_per_token(t);
  r->peak = precision == PRECISION_FP32 ? 0 : gpu_device_bf16_peak(r->gpu);
  return 0;
}

int cuda_run_profile(cuda_run *r, lt_error *err) {
  dt_device dev = gpu_device_iface(r->gpu);
  if (path_profile_create(&r->profile, &r->prog, dt_max_calls(r->dev), &dev.exec, &dev.timers, err))
    return -1;
  path_exec_backend timed = path_profile_backend(r->profile);
  dt_use_exec(r->dev, &timed);
  return 0;
}

prof_table *cuda_run_profile_table(cuda_run *r) { return r->profile ? path_profile_table(r->profile) : NULL; }

int cuda_run_step(cuda_run *r, train_step_stats rows[2], int *n, int flush, lt_error *err) {
  int ready;
  *n = 0;
  if (dt_step(r->dev, &rows[0], &ready, err)) return -1;
  *n += ready;
  if (r->profile && path_profile_collect(r->profile, err)) return -1;
  if (flush && dt_finish(r->dev, &rows[*n], &ready, err)) return -1;
  *n += flush && ready;
  for (int i = 0; i < *n; i++) {
    train_step_stats *st = &rows[i];
    st->peak_bytes = dt_arena_bytes(r->dev) + GPU_WORKSPACE_BYTES;
    st->device_used_bytes = gpu_device_used_bytes(r->gpu);
    st->mfu = r->peak > 0 ? r->flops_per_token * st->tokens_per_s / r->peak : -1;
    st->device_memory = r->memory;
  }
  return 0;
}

unsigned cuda_run_unfused(const cuda_run *r) { return r->unfused; }

void cuda_run_sync_counts(cuda_run *r) { dt_sync_counts(r->dev); }

void cuda_run_close(cuda_run *r) {
  if (!r) return;
  path_profile_free(r->profile);
  dt_free(r->dev);
  if (r->gpu) gpu_device_unload(r->gpu); /* its paths point into the program */
  if (r->have_prog) gen_free(&r->prog);
  free(r->trains);
  gen_tune_free(r->tuning);
  gpu_device_close(r->gpu);
  free(r);
}

/* ---- the run loop's backend (run.h) ------------------------------------- */

static int backend_prepare(void *ctx, trainer *t, const run_backend_options *o, lt_error *err) {
  cuda_run *r = ctx;
  cuda_run_options co = {o->precision, o->nearest, o->tune_path};
  if (cuda_run_prepare(r, t, &co, err) || (o->profile && cuda_run_profile(r, err))) return -1;
  if (r->unfused && !o->quiet)
    fprintf(stderr, "lisa: cuBLASLt has no algorithm for some fused GEMM epilogues here; "
                    "they run as kernels of their own (mask 0x%x of enum gen_epilogue)\n",
            r->unfused);
  return 0;
}

static int backend_step(void *ctx, trainer *t, train_step_stats rows[2], int *n, int flush,
                        lt_error *err) {
  (void)t;
  return cuda_run_step(ctx, rows, n, flush, err);
}

static int backend_sync_counts(void *ctx, lt_error *err) {
  (void)err;
  cuda_run_sync_counts(ctx);
  return 0;
}

static prof_table *backend_profile_table(void *ctx, trainer *t) {
  (void)t;
  return cuda_run_profile_table(ctx);
}

static int backend_eval_batch(void *ctx, trainer *t, float *loss, lt_error *err) {
  (void)t;
  return dt_eval_batch(((cuda_run *)ctx)->dev, loss, err);
}

static void backend_close(void *ctx) { cuda_run_close(ctx); }

const run_backend *cuda_backend(void) {
  static const run_backend cuda = {"cuda", 1, backend_prepare, backend_step, backend_sync_counts,
                                   backend_profile_table, backend_eval_batch, backend_close};
  return &cuda;
}
