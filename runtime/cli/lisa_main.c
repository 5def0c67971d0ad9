/* lisa_main.c: the command line. The only place that prints errors and
 * decides the exit status; everything else returns messages. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#include "cli_opts.h"
#ifdef LISA_HAVE_GPU
#include "cuda_run.h"
#endif
#include "log.h"
#include "memory_plan.h"
#include "train.h"
#include "weights.h"

enum { DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA };
static const char *const device_names[] = {"auto", "cpu", "cuda", NULL};
static const char *const on_off[] = {"on", "off", NULL};
static const int on_off_values[] = {1, 0};
static const char *const sampling_names[] = {"uniform", "bernoulli", NULL}; /* lisa_sample_mode */
static const char *const schedule_names[] = {"constant", "cosine", NULL};   /* opt_schedule */

typedef struct {
  train_config train;
  const char *save_path, *jsonl_path;
  int device; /* DEVICE_ */
  int dtype;  /* -1: not given; else an index into cliopt_dtype_names */
  int nearest; /* --rounding nearest */
  double max_shard_gb; /* > 0: --save writes a folder of Hugging Face shards */
  const char *save_state_dir, *resume_dir;
  int64_t save_every; /* 0: save the state only at the end */
  int64_t norms_every; /* 0: no per-layer norms in the JSONL */
  int merge_lora;
  int profile; /* --profile: time the ops (cpu) or launches and GEMMs (cuda) */
  const char *tune_path; /* --tune: the generated kernels' tunables */
  int quiet;
} cli_args;

enum { ANY = 0, LISA_ONLY = 1, LORA_ONLY = 2 }; /* cliopt tags, for the method checks */
#define AT(field) offsetof(cli_args, field)

static const cliopt train_opts[] = {
    {"--method", CLIOPT_ENUM, AT(train.method), .names = cliopt_method_names,
     .help = "full fine-tuning, LISA, or LoRA adapters on frozen weights"},
    {"--gamma", CLIOPT_INT, AT(train.lisa.gamma), 0, 1 << 20, .meta = "G", .tag = LISA_ONLY,
     .help = "LISA: middle blocks trained per period (2)"},
    {"--interval", CLIOPT_INT64, AT(train.lisa.interval), 1, 1e12, .meta = "K", .tag = LISA_ONLY,
     .help = "LISA: steps per period; a new set at every K-th step (20)"},
    {"--lisa-sampling", CLIOPT_ENUM, AT(train.lisa.mode), .names = sampling_names,
     .tag = LISA_ONLY, .help = "exactly G blocks (as the reference\n"
                               "implementation), or each block with p = G/N_L (the paper)"},
    {"--lua", CLIOPT_STRING, AT(train.lisa.lua_path), .meta = "FILE", .tag = LISA_ONLY,
     .help = "LISA: a policy defining sample_layers(ctx)"},
    {"--train-embed", CLIOPT_ENUM, AT(train.train_embed), .names = on_off, .values = on_off_values,
     .tag = LISA_ONLY, .help = "LISA: train the embedding (on)"},
    {"--train-head", CLIOPT_ENUM, AT(train.train_head), .names = on_off, .values = on_off_values,
     .tag = LISA_ONLY, .help = "LISA: train the final norm and output projection (on)"},
    {"--lora-rank", CLIOPT_INT, AT(train.lora_rank), 1, 1 << 16, .meta = "R", .tag = LORA_ONLY,
     .help = "LoRA: adapter rank (8)"},
    {"--lora-alpha", CLIOPT_DOUBLE, AT(train.lora_alpha), 0, 1e6, .lo_open = 1, .meta = "A",
     .tag = LORA_ONLY,
     .help = "LoRA: the adapters' output is scaled by A / R (16)"},
    {"--lora-targets", CLIOPT_STRING, AT(train.lora_targets), .meta = "K,K,...", .tag = LORA_ONLY,
     .help = "LoRA: block linear weights to adapt, by YAML param key\n"
             "(default: every block linear weight)"},
    {"--merge-lora", CLIOPT_FLAG, AT(merge_lora), .tag = LORA_ONLY,
     .help = "LoRA: --save writes W + (A/R) B A into the base weights,\n"
             "without adapter tensors (default: base + adapters)"},
    {"--steps", CLIOPT_INT64, AT(train.steps), 0, 1e12, .meta = "N",
     .help = "total optimizer steps, counted from step 0 (100)"},
    {"--batch", CLIOPT_INT, AT(train.batch), 1, 1 << 20, .meta = "B --seq T",
     .help = "sequences per micro-batch and tokens per sequence (4, 64)"},
    {"--seq", CLIOPT_INT, AT(train.seq), 1, 1 << 24, .help = NULL /* with --batch */},
    {"--grad-accum", CLIOPT_INT, AT(train.grad_accum), 1, 1 << 16, .meta = "N",
     .help = "micro-batches per step, gradients summed at 1/N (1)"},
    {"--lr", CLIOPT_FLOAT, AT(train.opt.lr), 0, 10, .meta = "X",
     .help = "peak learning rate (3e-4)"},
    {"--weight-decay", CLIOPT_FLOAT, AT(train.opt.weight_decay), 0, 10, .meta = "X",
     .help = "AdamW decoupled weight decay on 2-D weights (0.01)"},
    {"--grad-clip", CLIOPT_FLOAT, AT(train.opt.grad_clip), 0, 1e9, .meta = "X",
     .help = "clip the global gradient norm to X; 0 = off (1.0)"},
    {"--warmup", CLIOPT_INT, AT(train.opt.warmup), 0, 1e9, .meta = "N",
     .help = "linear warmup steps (0)"},
    {"--schedule", CLIOPT_ENUM, AT(train.opt.schedule), .names = schedule_names,
     .help = "after warmup (constant)"},
    {"--seed", CLIOPT_UINT64, AT(train.seed), .meta = "S",
     .help = "init, data order and sampling (1337)"},
    {"--data", CLIOPT_STRING, AT(train.data_path), .help = NULL /* in the usage line */},
    {"--weights", CLIOPT_STRING, AT(train.weights_path), .meta = "FILE",
     .help = "start from a safetensors checkpoint (HF names)"},
    {"--save", CLIOPT_STRING, AT(save_path), .meta = "FILE",
     .help = "write the trained weights as safetensors"},
    {"--max-shard-size", CLIOPT_DOUBLE, AT(max_shard_gb), 0, 1e6, .lo_open = 1, .meta = "GB",
     .help = "--save writes a folder of Hugging Face shards and an index"},
    {"--save-state", CLIOPT_STRING, AT(save_state_dir), .meta = "DIR",
     .help = "save the whole run state (weights, AdamW, LISA period)\n"
             "to DIR/step-<N> at the end; DIR/latest names the newest"},
    {"--save-every", CLIOPT_INT64, AT(save_every), 1, 1e12, .meta = "N",
     .help = "also save the state after every N-th step"},
    {"--norms-every", CLIOPT_INT64, AT(norms_every), 1, 1e12, .meta = "N",
     .help = "per-layer weight and gradient norms in every N-th JSONL row"},
    {"--resume", CLIOPT_STRING, AT(resume_dir), .meta = "DIR",
     .help = "continue from DIR/latest with the same settings;\n"
             "--steps is still the total, so the run goes on to it"},
    {"--log-jsonl", CLIOPT_STRING, AT(jsonl_path), .meta = "FILE",
     .help = "one JSON object per step"},
    {"--quiet", CLIOPT_FLAG, AT(quiet), .help = "no progress line"},
    {"--tune", CLIOPT_STRING, AT(tune_path), .meta = "FILE",
     .help = "cuda: kernel tunables over templates/tuning.lua, as\n"
             "lisa gen --tune (e.g. attention_forward_mma = {USE = 0})"},
    {"--profile", CLIOPT_FLAG, AT(profile),
     .help = "time every kernel and GEMM (cuda) or op (cpu) of the\n"
             "steps after the first; a table per step at the end, rows\n"
             "in the JSONL"},
    {"--device", CLIOPT_ENUM, AT(device), .names = device_names,
     .help = "cuda: the generated kernels and cuBLASLt; auto: cuda\n"
             "where a device is found, else the cpu backend (auto)"},
    {"--dtype", CLIOPT_ENUM, AT(dtype), .names = cliopt_dtype_names, .meta = "P",
     .help = "cuda: bf16 (= bf16-mixed: fp32 grads, masters, moments),\n"
             "bf16-true (all bf16, the paper's) or fp32; cpu: fp32"},
    {"--rounding", CLIOPT_ENUM, AT(nearest), .names = cliopt_rounding_names,
     .help = "cuda, bf16-mixed: how each step's bf16 weights are\n"
             "rounded from the fp32 masters (stochastic)"},
};

static const cliopt_cmd train_cmd = {
    "lisa train", "usage: lisa train MODEL.yaml --data FILE [options]\n", 24, train_opts,
    sizeof train_opts / sizeof train_opts[0]};

static void train_defaults(cli_args *a) {
  memset(a, 0, sizeof *a);
  a->train.method = TRAIN_FT;
  a->train.steps = 100, a->train.batch = 4, a->train.seq = 64, a->train.seed = 1337;
  a->train.opt = opt_defaults();
  a->train.train_embed = a->train.train_head = 1;
  a->train.lisa = (lisa_sampler_config){.mode = LISA_SAMPLE_UNIFORM, .gamma = 2, .interval = 20};
  a->train.lora_rank = 8, a->train.lora_alpha = 16;
  a->device = DEVICE_AUTO, a->dtype = -1;
}

/* The checks across options; the first that fails is the one reported. */
static int check_train_args(const cli_args *a, const cliopt_result *r) {
  const cliopt_cmd *c = &train_cmd;
  if (!a->train.model_path) return cliopt_fail_usage(c, "missing MODEL.yaml");
  if (!a->train.data_path) return cliopt_fail_usage(c, "missing --data FILE");
  if (a->train.method != TRAIN_LISA && r->tagged[LISA_ONLY])
    return cliopt_fail_usage(c, "%s applies to --method lisa", r->tagged[LISA_ONLY]);
  if (a->train.method != TRAIN_LORA && r->tagged[LORA_ONLY])
    return cliopt_fail_usage(c, "%s applies to --method lora", r->tagged[LORA_ONLY]);
  if (a->max_shard_gb > 0 && !a->save_path)
    return cliopt_fail_usage(c, "--max-shard-size needs --save");
  if (a->max_shard_gb > 0 && a->merge_lora)
    return cliopt_fail_usage(c, "--max-shard-size and --merge-lora do not go together yet");
  if (a->merge_lora && !a->save_path)
    return cliopt_fail_usage(c, "--merge-lora needs --save FILE");
  if (a->resume_dir && a->train.weights_path)
    return cliopt_fail_usage(c, "--resume takes the weights from the saved state; drop --weights");
  if (a->save_every && !a->save_state_dir)
    return cliopt_fail_usage(c, "--save-every needs --save-state DIR");
  return 0;
}

/* 0 to train, else -1 with the exit status (0 after --help). */
static int parse_train_args(int argc, char **argv, cli_args *a, int *exit_status) {
  cliopt_result r;
  lt_error err;
  train_defaults(a);
  int rc = cliopt_parse(&train_cmd, argc, argv, a, &r, &err);
  if (rc) return *exit_status = cliopt_finish(&train_cmd, rc, &err), -1;
  a->train.model_path = r.positional;
  if (a->train.lisa.lua_path) a->train.lisa.mode = LISA_SAMPLE_LUA;
  a->train.opt.total_steps = a->train.steps;
  *exit_status = check_train_args(a, &r);
  return *exit_status ? -1 : 0;
}

/* The backend of a run: the cpu's, or a CUDA device (cuda non-NULL). */
typedef struct {
#ifdef LISA_HAVE_GPU
  cuda_run *cuda;
#endif
  int on_cuda;
} backend;

/* auto: CUDA where a device opens, else the CPU, saying why; cuda: the
 * device or an error saying what is missing. */
static int choose_device(const cli_args *a, backend *be) {
  memset(be, 0, sizeof *be);
  if (a->device == DEVICE_CPU) return 0;
  char what[1200];
#ifdef LISA_HAVE_GPU
  lt_error err = {{0}};
  char name[256];
  if (cuda_run_open(&be->cuda, name, sizeof name, &err) == 0) {
    be->on_cuda = 1;
    if (!a->quiet) fprintf(stderr, "lisa: training on %s\n", name);
    return 0;
  }
  snprintf(what, sizeof what, "%s", err.msg);
#else
  snprintf(what, sizeof what, "this build has no CUDA support (no toolkit when it was built)");
#endif
  if (a->device == DEVICE_CUDA) {
    fprintf(stderr, "lisa: --device cuda: %s; use --device cpu\n", what);
    return -1;
  }
  if (!a->quiet) fprintf(stderr, "lisa: device auto: %s; using the cpu backend\n", what);
  return 0;
}

/* What the CUDA trainer does not do yet, said before anything runs. */
static int check_backend(const cli_args *a, const backend *be) {
  if (!be->on_cuda) {
    if (a->dtype >= 0 && cliopt_dtype_values[a->dtype] != PRECISION_FP32) {
      fprintf(stderr, "lisa train: the cpu backend trains in fp32; --dtype %s needs --device cuda\n",
              cliopt_dtype_names[a->dtype]);
      return -1;
    }
    if (a->tune_path) {
      fprintf(stderr, "lisa train: --tune sets the generated kernels' tunables; it needs "
                      "--device cuda\n");
      return -1;
    }
    return 0;
  }
  return 0;
}

/* --profile: the table of sums (NULL when not profiling). */
static prof_table *backend_profile(backend *be, trainer *t) {
#ifdef LISA_HAVE_GPU
  if (be->on_cuda) return cuda_run_profile_table(be->cuda);
#endif
  (void)be;
  return trainer_profile_table(t);
}

/* --profile: the table on stdout and "profile" rows in the JSONL. */
static void backend_report(backend *be, trainer *t, const log_sink *log) {
  prof_table *pt = backend_profile(be, t);
  if (!pt || pt->steps == 0) return;
  prof_print(pt, stdout);
  if (log->jsonl) prof_write_jsonl(pt, log->jsonl, (long long)t->step);
}

/* One step; rows[0..*n) the steps that finished, in order (a device step
 * finishes while the next is enqueued; flush: this one too). */
static int backend_step(backend *be, trainer *t, train_step_stats rows[2], int *n, int flush,
                        lt_error *err) {
#ifdef LISA_HAVE_GPU
  if (be->on_cuda) return cuda_run_step(be->cuda, rows, n, flush, err);
#endif
  (void)flush;
  *n = 1;
  return trainer_step(t, &rows[0], err);
}

/* The weights (with_state: and the AdamW state) into the host trainer
 * before it reads or saves them. */
static int backend_sync(backend *be, int with_state, lt_error *err) {
#ifdef LISA_HAVE_GPU
  if (be->on_cuda)
    return with_state ? cuda_run_sync_state(be->cuda, err) : cuda_run_sync_params(be->cuda, err);
#endif
  (void)be, (void)with_state, (void)err;
  return 0;
}

static void backend_close(backend *be) {
#ifdef LISA_HAVE_GPU
  cuda_run_close(be->cuda);
#endif
  (void)be;
}

static int save_state(trainer *t, backend *be, const cli_args *a, log_sink *log, lt_error *err) {
  char step_dir[1100];
  if (backend_sync(be, 1, err) || ckpt_save(t, a->save_state_dir, err) ||
      ckpt_step_path(a->save_state_dir, t->step, step_dir, sizeof step_dir, err))
    return -1;
  log_event(log, t->step, "checkpoint", "path", step_dir);
  if (!a->quiet) fprintf(stderr, "saved state %s\n", step_dir);
  return 0;
}

/* Runs the steps from t->step (0, or where a resumed state left off) to the
 * total --steps; the state is saved every --save-every steps and at the end. */
static int run_training(trainer *t, backend *be, const cli_args *a, lt_error *err) {
  log_sink log;
  if (log_open(&log, a->jsonl_path, a->quiet, a->train.steps, t->ir.n_layer, err)) {
    log_close(&log);
    return -1;
  }
  int rc = 0;
  int64_t run_steps = 0;
  while (t->step < a->train.steps && rc == 0) {
    /* a step whose end is read (norms, a save, the last) finishes before the next */
    int64_t s = t->step;
    int norms = a->norms_every && s % a->norms_every == 0;
    int save = a->save_every && (s + 1) % a->save_every == 0 && s + 1 < a->train.steps;
    train_step_stats rows[2];
    int n = 0;
    rc = backend_step(be, t, rows, &n, norms || save || s + 1 == a->train.steps, err);
    /* the first step also fills caches (and loads modules on a device) */
    prof_table *pt = rc == 0 && ++run_steps == 1 ? backend_profile(be, t) : NULL;
    if (pt) prof_clear(pt);
    for (int i = 0; i < n && rc == 0; i++) {
      int with_norms = a->norms_every && rows[i].step % a->norms_every == 0;
      if (with_norms) rc = backend_sync(be, 0, err);
      if (rc == 0) log_step(&log, t, &rows[i], with_norms);
    }
    if (rc == 0 && save) rc = save_state(t, be, a, &log, err);
  }
  if (rc == 0 && a->save_state_dir) rc = save_state(t, be, a, &log, err);
  if (rc == 0 && a->save_path) rc = backend_sync(be, 0, err);
  if (rc == 0 && a->save_path) {
    if (a->merge_lora) trainer_merge_lora(t);
    if (a->max_shard_gb > 0)
      rc = wt_save_sharded(&t->state, a->save_path, (uint64_t)(a->max_shard_gb * 1e9), err);
    else
      rc = a->merge_lora ? wt_save_base(&t->state, a->save_path, err)
                         : wt_save(&t->state, a->save_path, err);
    if (rc == 0) log_event(&log, t->step, "checkpoint", "path", a->save_path);
    if (rc == 0 && !a->quiet) fprintf(stderr, "saved %s\n", a->save_path);
  }
  if (rc == 0) backend_report(be, t, &log);
  log_close(&log);
  return rc;
}

static int resume(trainer *t, const cli_args *a, lt_error *err) {
  if (ckpt_resume(t, a->resume_dir, err)) return -1;
  if (t->step > a->train.steps)
    return lt_fail(err, "%s: the saved state is at step %lld, past --steps %lld", a->resume_dir,
                   (long long)t->step, (long long)a->train.steps);
  if (!a->quiet) fprintf(stderr, "resumed at step %lld from %s\n", (long long)t->step, a->resume_dir);
  return 0;
}

static int cmd_train(int argc, char **argv) {
  cli_args a;
  int rc;
  if (parse_train_args(argc, argv, &a, &rc)) return rc;
  backend be;
  if (choose_device(&a, &be) || check_backend(&a, &be)) return backend_close(&be), 1;
  lt_error err;
  trainer t;
  a.train.params_only = be.on_cuda; /* activations live on the device */
  a.train.host_moments = be.on_cuda && (a.save_state_dir || a.resume_dir);
  rc = trainer_create(&t, &a.train, &err);
  if (rc == 0 && t.load_note[0] && !a.quiet) fprintf(stderr, "note: %s\n", t.load_note);
  if (rc == 0 && a.resume_dir) rc = resume(&t, &a, &err);
#ifdef LISA_HAVE_GPU
  if (rc == 0 && be.on_cuda) {
    cuda_run_options o = {a.dtype >= 0 ? cliopt_dtype_values[a.dtype] : PRECISION_BF16_MIXED,
                          a.nearest, a.tune_path};
    rc = cuda_run_prepare(be.cuda, &t, &o, &err);
  }
  if (rc == 0 && be.on_cuda && a.profile) rc = cuda_run_profile(be.cuda, &err);
#endif
  if (rc == 0 && !be.on_cuda && a.profile) rc = trainer_profile(&t, &err);
#ifdef LISA_HAVE_GPU
  if (rc == 0 && be.on_cuda && cuda_run_unfused(be.cuda) && !a.quiet)
    fprintf(stderr, "lisa: cuBLASLt has no algorithm for some fused GEMM epilogues here; "
                    "they run as kernels of their own (mask 0x%x of enum gen_epilogue)\n",
            cuda_run_unfused(be.cuda));
#endif
  if (rc == 0) rc = run_training(&t, &be, &a, &err);
  backend_close(&be);
  trainer_free(&t);
  if (rc) {
    fprintf(stderr, "lisa: %s\n", err.msg);
    return 1;
  }
  return 0;
}

static const char usage_main[] =
    "usage: lisa train MODEL.yaml --data FILE [options]   train (lisa train --help)\n"
    "       lisa plan MODEL.yaml [options]                 memory by category, no run\n"
    "       lisa gen MODEL.yaml -o DIR [options]           generated CUDA C++ and plan per path\n";

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "plan")) return cli_plan(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "gen")) return cli_gen(argc - 2, argv + 2);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    fputs(usage_main, stdout);
    return 0;
  }
  fputs(usage_main, stderr);
  return 2;
}
