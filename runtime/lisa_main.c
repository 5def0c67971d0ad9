/* lisa_main.c: the command line. The only place that prints errors and
 * decides the exit status; everything else returns messages. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "cli.h"
#ifdef LISA_HAVE_GPU
#include "cuda_run.h"
#endif
#include "log.h"
#include "plan.h"
#include "train.h"
#include "weights.h"

static const char usage_train[] =
    "usage: lisa train MODEL.yaml --data FILE [options]\n"
    "  --method ft|lisa|lora    full fine-tuning, LISA, or LoRA adapters on frozen weights\n"
    "  --gamma G                LISA: middle blocks trained per period (2)\n"
    "  --interval K             LISA: steps per period; a new set at every K-th step (20)\n"
    "  --lisa-sampling uniform|bernoulli  exactly G blocks (as the reference\n"
    "                           implementation), or each block with p = G/N_L (the paper)\n"
    "  --lua FILE               LISA: a policy defining sample_layers(ctx)\n"
    "  --train-embed on|off     LISA: train the embedding (on)\n"
    "  --train-head on|off      LISA: train the final norm and output projection (on)\n"
    "  --lora-rank R            LoRA: adapter rank (8)\n"
    "  --lora-alpha A           LoRA: the adapters' output is scaled by A / R (16)\n"
    "  --lora-targets K,K,...   LoRA: block linear weights to adapt, by YAML param key\n"
    "                           (default: every block linear weight)\n"
    "  --merge-lora             LoRA: --save writes W + (A/R) B A into the base weights,\n"
    "                           without adapter tensors (default: base + adapters)\n"
    "  --steps N                total optimizer steps, counted from step 0 (100)\n"
    "  --batch B --seq T        sequences per micro-batch and tokens per sequence (4, 64)\n"
    "  --grad-accum N           micro-batches per step, gradients summed at 1/N (1)\n"
    "  --lr X                   peak learning rate (3e-4)\n"
    "  --weight-decay X         AdamW decoupled weight decay on 2-D weights (0.01)\n"
    "  --grad-clip X            clip the global gradient norm to X; 0 = off (1.0)\n"
    "  --warmup N               linear warmup steps (0)\n"
    "  --schedule constant|cosine  after warmup (constant)\n"
    "  --seed S                 init, data order and sampling (1337)\n"
    "  --weights FILE           start from a safetensors checkpoint (HF names)\n"
    "  --save FILE              write the trained weights as safetensors\n"
    "  --max-shard-size GB      --save writes a folder of Hugging Face shards and an index\n"
    "  --save-state DIR         save the whole run state (weights, AdamW, LISA period)\n"
    "                           to DIR/step-<N> at the end; DIR/latest names the newest\n"
    "  --save-every N           also save the state after every N-th step\n"
    "  --norms-every N          per-layer weight and gradient norms in every N-th JSONL row\n"
    "  --resume DIR             continue from DIR/latest with the same settings;\n"
    "                           --steps is still the total, so the run goes on to it\n"
    "  --log-jsonl FILE         one JSON object per step\n"
    "  --quiet                  no progress line\n"
    "  --device auto|cpu|cuda   cuda: the generated kernels and cuBLASLt; auto: cuda\n"
    "                           where a device is found, else the cpu backend (auto)\n"
    "  --dtype P                cuda: bf16 (= bf16-mixed: fp32 grads, masters, moments),\n"
    "                           bf16-true (all bf16, the paper's) or fp32; cpu: fp32\n"
    "  --rounding stochastic|nearest  cuda, bf16-mixed: how each step's bf16 weights are\n"
    "                           rounded from the fp32 masters (stochastic)\n";

typedef struct {
  train_config train;
  const char *save_path, *jsonl_path, *device, *dtype;
  int nearest; /* --rounding nearest */
  double max_shard_gb; /* > 0: --save writes a folder of Hugging Face shards */
  const char *save_state_dir, *resume_dir;
  int64_t save_every; /* 0: save the state only at the end */
  int64_t norms_every; /* 0: no per-layer norms in the JSONL */
  const char *lisa_option; /* a LISA-only option given, for the method check */
  const char *lora_option; /* a LoRA-only option given, likewise */
  int merge_lora;
  int quiet;
} cli_args;

static int fail_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "lisa train: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n%s", usage_train);
  return 2;
}

static int parse_number(const char *opt, const char *text, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || v < lo || v > hi) {
    fprintf(stderr, "lisa train: %s: '%s' is not a number in [%g, %g]\n", opt, text, lo, hi);
    return -1;
  }
  *out = v;
  return 0;
}

/* Options that take a number: where each one goes and its valid range. */
typedef struct {
  const char *name;
  double lo, hi;
  int64_t *i64;   /* exactly one of these three is set */
  int *i32;
  double *f64;
  float *f32;
  int only;       /* 1: LISA only, 2: LoRA only */
} numeric_option;

static int set_numeric(cli_args *a, const char *opt, const char *val) {
  train_config *t = &a->train;
  const numeric_option spec[] = {
      {"--steps", 0, 1e12, &t->steps, NULL, NULL, NULL, 0},
      {"--batch", 1, 1 << 20, NULL, &t->batch, NULL, NULL, 0},
      {"--seq", 1, 1 << 24, NULL, &t->seq, NULL, NULL, 0},
      {"--lr", 0, 10, NULL, NULL, NULL, &t->opt.lr, 0},
      {"--weight-decay", 0, 10, NULL, NULL, NULL, &t->opt.weight_decay, 0},
      {"--grad-clip", 0, 1e9, NULL, NULL, NULL, &t->opt.grad_clip, 0},
      {"--warmup", 0, 1e12, NULL, &t->opt.warmup, NULL, NULL, 0},
      {"--gamma", 0, 1 << 20, NULL, &t->lisa.gamma, NULL, NULL, 1},
      {"--interval", 1, 1e12, &t->lisa.interval, NULL, NULL, NULL, 1},
      {"--lora-rank", 1, 1 << 16, NULL, &t->lora_rank, NULL, NULL, 2},
      {"--lora-alpha", 1e-6, 1e6, NULL, NULL, &t->lora_alpha, NULL, 2},
      {"--save-every", 1, 1e12, &a->save_every, NULL, NULL, NULL, 0},
      {"--norms-every", 1, 1e12, &a->norms_every, NULL, NULL, NULL, 0},
      {"--grad-accum", 1, 1 << 16, NULL, &t->grad_accum, NULL, NULL, 0},
  };
  double v;
  if (!strcmp(opt, "--seed")) { /* all 64 bits: not through a double */
    if (parse_number(opt, val, 0, 1.8e19, &v)) return -1;
    t->seed = strtoull(val, NULL, 10);
    return 1;
  }
  for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
    const numeric_option *o = &spec[i];
    if (strcmp(opt, o->name)) continue;
    if (parse_number(opt, val, o->lo, o->hi, &v)) return -1;
    if (o->i64) *o->i64 = (int64_t)v;
    else if (o->i32) *o->i32 = (int)v;
    else if (o->f64) *o->f64 = v;
    else *o->f32 = (float)v;
    if (o->only == 1) a->lisa_option = opt;
    if (o->only == 2) a->lora_option = opt;
    return 1;
  }
  return 0;
}

static int set_string(cli_args *a, const char *opt, const char *val) {
  if (!strcmp(opt, "--data")) a->train.data_path = val;
  else if (!strcmp(opt, "--weights")) a->train.weights_path = val;
  else if (!strcmp(opt, "--save")) a->save_path = val;
  else if (!strcmp(opt, "--max-shard-size")) {
    char *end;
    a->max_shard_gb = strtod(val, &end);
    if (end == val || *end || !(a->max_shard_gb > 0)) {
      fprintf(stderr, "lisa train: --max-shard-size: '%s' is not a positive number of GB\n", val);
      return -1;
    }
  }
  else if (!strcmp(opt, "--save-state")) a->save_state_dir = val;
  else if (!strcmp(opt, "--resume")) a->resume_dir = val;
  else if (!strcmp(opt, "--log-jsonl")) a->jsonl_path = val;
  else if (!strcmp(opt, "--device")) a->device = val;
  else if (!strcmp(opt, "--rounding")) {
    if (strcmp(val, "stochastic") && strcmp(val, "nearest")) {
      fprintf(stderr, "lisa train: --rounding must be stochastic or nearest, not '%s'\n", val);
      return -1;
    }
    a->nearest = !strcmp(val, "nearest");
  } else if (!strcmp(opt, "--dtype")) {
    if (plan_precision_parse(val) < 0) {
      fprintf(stderr, "lisa train: --dtype must be fp32, bf16, bf16-mixed or bf16-true, not '%s'\n", val);
      return -1;
    }
    a->dtype = val;
  }
  else if (!strcmp(opt, "--method")) {
    if (!strcmp(val, "ft")) a->train.method = TRAIN_FT;
    else if (!strcmp(val, "lisa")) a->train.method = TRAIN_LISA;
    else if (!strcmp(val, "lora")) a->train.method = TRAIN_LORA;
    else {
      fprintf(stderr, "lisa train: --method must be ft, lisa or lora, not '%s'\n", val);
      return -1;
    }
  } else if (!strcmp(opt, "--lora-targets")) {
    a->train.lora_targets = val, a->lora_option = opt;
  } else if (!strcmp(opt, "--lisa-sampling")) {
    int mode = lisa_sample_mode_from_name(val);
    if (mode < 0 || mode == LISA_SAMPLE_LUA) {
      fprintf(stderr, "lisa train: --lisa-sampling must be uniform or bernoulli, not '%s'\n", val);
      return -1;
    }
    a->train.lisa.mode = mode, a->lisa_option = opt;
  } else if (!strcmp(opt, "--lua")) {
    a->train.lisa.mode = LISA_SAMPLE_LUA, a->train.lisa.lua_path = val, a->lisa_option = opt;
  } else if (!strcmp(opt, "--train-embed") || !strcmp(opt, "--train-head")) {
    int on = !strcmp(val, "on");
    if (!on && strcmp(val, "off")) {
      fprintf(stderr, "lisa train: %s must be on or off, not '%s'\n", opt, val);
      return -1;
    }
    *(!strcmp(opt, "--train-embed") ? &a->train.train_embed : &a->train.train_head) = on;
    a->lisa_option = opt;
  } else if (!strcmp(opt, "--schedule")) {
    if (!strcmp(val, "constant")) a->train.opt.schedule = OPT_CONSTANT;
    else if (!strcmp(val, "cosine")) a->train.opt.schedule = OPT_COSINE;
    else {
      fprintf(stderr, "lisa train: --schedule must be constant or cosine, not '%s'\n", val);
      return -1;
    }
  } else return 0;
  return 1;
}

static int parse_train_args(int argc, char **argv, cli_args *a) {
  memset(a, 0, sizeof *a);
  a->train.method = TRAIN_FT;
  a->train.steps = 100, a->train.batch = 4, a->train.seq = 64, a->train.seed = 1337;
  a->train.opt = opt_defaults();
  a->train.train_embed = a->train.train_head = 1;
  a->train.lisa = (lisa_sampler_config){.mode = LISA_SAMPLE_UNIFORM, .gamma = 2, .interval = 20};
  a->train.lora_rank = 8, a->train.lora_alpha = 16;
  a->device = "auto";
  for (int i = 0; i < argc; i++) {
    const char *opt = argv[i];
    if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
      fputs(usage_train, stdout);
      exit(0);
    }
    if (!strcmp(opt, "--quiet")) {
      a->quiet = 1;
      continue;
    }
    if (!strcmp(opt, "--merge-lora")) {
      a->merge_lora = 1, a->lora_option = opt;
      continue;
    }
    if (strncmp(opt, "--", 2)) {
      if (a->train.model_path) return fail_usage("unexpected argument '%s'", opt);
      a->train.model_path = opt;
      continue;
    }
    if (i + 1 >= argc) return fail_usage("%s needs a value", opt);
    const char *val = argv[++i];
    int rc = set_numeric(a, opt, val);
    if (rc == 0) rc = set_string(a, opt, val);
    if (rc < 0) return 2;
    if (rc == 0) return fail_usage("unknown option '%s'", opt);
  }
  if (!a->train.model_path) return fail_usage("%s", "missing MODEL.yaml");
  if (!a->train.data_path) return fail_usage("%s", "missing --data FILE");
  if (a->train.method != TRAIN_LISA && a->lisa_option)
    return fail_usage("%s applies to --method lisa", a->lisa_option);
  if (a->train.method != TRAIN_LORA && a->lora_option)
    return fail_usage("%s applies to --method lora", a->lora_option);
  if (a->max_shard_gb > 0 && !a->save_path)
    return fail_usage("%s", "--max-shard-size needs --save");
  if (a->max_shard_gb > 0 && a->merge_lora)
    return fail_usage("%s", "--max-shard-size and --merge-lora do not go together yet");
  if (a->merge_lora && !a->save_path)
    return fail_usage("%s", "--merge-lora needs --save FILE");
  if (a->resume_dir && a->train.weights_path)
    return fail_usage("%s", "--resume takes the weights from the saved state; drop --weights");
  if (a->save_every && !a->save_state_dir)
    return fail_usage("%s", "--save-every needs --save-state DIR");
  a->train.opt.total_steps = a->train.steps;
  return 0;
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
  const char *device = a->device;
  if (strcmp(device, "cpu") && strcmp(device, "auto") && strcmp(device, "cuda")) {
    fprintf(stderr, "lisa train: --device must be auto, cpu or cuda, not '%s'\n", device);
    return -1;
  }
  if (!strcmp(device, "cpu")) return 0;
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
  if (!strcmp(device, "cuda")) {
    fprintf(stderr, "lisa: --device cuda: %s; use --device cpu\n", what);
    return -1;
  }
  if (!a->quiet) fprintf(stderr, "lisa: device auto: %s; using the cpu backend\n", what);
  return 0;
}

/* What the CUDA trainer does not do yet, said before anything runs. */
static int check_backend(const cli_args *a, const backend *be) {
  if (!be->on_cuda) {
    if (a->dtype && strcmp(a->dtype, "fp32")) {
      fprintf(stderr, "lisa train: the cpu backend trains in fp32; --dtype %s needs --device cuda\n",
              a->dtype);
      return -1;
    }
    return 0;
  }
  return 0;
}

static int backend_step(backend *be, trainer *t, train_step_stats *st, lt_error *err) {
#ifdef LISA_HAVE_GPU
  if (be->on_cuda) return cuda_run_step(be->cuda, st, err);
#endif
  return trainer_step(t, st, err);
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
  while (t->step < a->train.steps && rc == 0) {
    train_step_stats st;
    rc = backend_step(be, t, &st, err);
    int norms = a->norms_every && st.step % a->norms_every == 0;
    if (rc == 0 && norms) rc = backend_sync(be, 0, err);
    if (rc == 0) log_step(&log, t, &st, norms);
    if (rc == 0 && a->save_every && t->step % a->save_every == 0 && t->step < a->train.steps)
      rc = save_state(t, be, a, &log, err);
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
  int rc = parse_train_args(argc, argv, &a);
  if (rc) return rc;
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
  if (rc == 0 && be.on_cuda)
    rc = cuda_run_prepare(be.cuda, &t, a.dtype ? plan_precision_parse(a.dtype) : PLAN_BF16_MIXED,
                          a.nearest, &err);
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
