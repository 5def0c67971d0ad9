/* lisa_main.c: the command line: parsing, the device and exit codes (the
 * loop is runtime/run). The only place that prints errors and decides the
 * exit status; everything else returns messages. */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_opts.h"
#include "dev_run.h"
#include "dist.h"
#include "emu_device.h"
#ifdef LISA_HAVE_GPU
#include "cuda_run.h"
#endif
#include "memory_plan.h"
#include "run.h"
#include "train.h"

static const char *const on_off[] = {"on", "off", NULL};
static const int on_off_values[] = {1, 0};
static const char *const sampling_names[] = {"uniform", "bernoulli", NULL}; /* lisa_sample_mode */
static const char *const schedule_names[] = {"constant", "cosine", NULL};   /* opt_schedule */
static const char *const save_dtype_names[] = {"auto", "f32", "bf16", NULL}; /* run_save_dtype */

typedef struct {
  train_config train;
  const char *save_path, *jsonl_path;
  int device; /* DEVICE_ */
  int dtype;  /* -1: not given; else an index into cliopt_dtype_names */
  int nearest; /* --rounding nearest */
  double max_shard_gb; /* > 0: --save writes a folder of Hugging Face shards */
  int save_dtype;      /* enum run_save_dtype; -1: not given (auto) */
  const char *save_state_dir, *resume_dir;
  int64_t save_every; /* 0: save the state only at the end */
  int64_t norms_every; /* 0: no per-layer norms in the JSONL */
  const char *val_path; /* --val-data */
  int64_t eval_every, eval_batches;
  int merge_lora;
  int override; /* --override: a resume may change trajectory settings */
  int profile; /* --profile: time the ops (cpu) or launches and GEMMs (cuda) */
  const char *tune_path; /* --tune: the generated kernels' tunables */
  int no_tune_db;        /* --no-tune-db: nor the tuning database's */
  int comm_timeout;      /* --comm-timeout: seconds a collective may wait (mpirun) */
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
     .tag = LISA_ONLY, .help = "LISA: train the embedding (on); off: it holds no\n"
                               "gradient or moments (a tied head's table trains with H)"},
    {"--train-head", CLIOPT_ENUM, AT(train.train_head), .names = on_off, .values = on_off_values,
     .tag = LISA_ONLY, .help = "LISA: train the final norm and output projection (on);\n"
                               "off: they hold no gradient or moments"},
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
    {"--zero", CLIOPT_INT, AT(train.zero), 0, 1, .meta = "1",
     .help = "under mpirun: each rank keeps the AdamW moments of its\n"
             "share of what trains, then the weights are gathered (0)"},
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
    {"--from-scratch", CLIOPT_FLAG, AT(train.from_scratch),
     .help = "a folder MODEL: initialize its weights (GPT-2's scheme)\n"
             "instead of reading them; config.json alone is enough"},
    {"--ignore-unused", CLIOPT_FLAG, AT(train.ignore_unused),
     .help = "load weights holding tensors the model does not use\n"
             "(default: an error naming them)"},
    {"--save", CLIOPT_STRING, AT(save_path), .meta = "PATH",
     .help = "write the trained weights: PATH.safetensors, one file;\n"
             "else a model folder (a Hugging Face MODEL's config.json\n"
             "and tokenizer files beside them)"},
    {"--max-shard-size", CLIOPT_DOUBLE, AT(max_shard_gb), 0, 1e6, .lo_open = 1, .meta = "GB",
     .help = "the --save folder holds shards of at most GB and an index"},
    {"--save-dtype", CLIOPT_ENUM, AT(save_dtype), .names = save_dtype_names,
     .help = "what --save writes the weights in: auto (default) is\n"
             "what the starting weights were stored in (bf16 for most\n"
             "Hugging Face releases), else f32; bf16 rounds to nearest"},
    {"--save-state", CLIOPT_STRING, AT(save_state_dir), .meta = "DIR",
     .help = "save the whole run state (weights, AdamW, LISA period)\n"
             "to DIR/step-<N> at the end; DIR/latest names the newest"},
    {"--save-every", CLIOPT_INT64, AT(save_every), 1, 1e12, .meta = "N",
     .help = "also save the state after every N-th step"},
    {"--norms-every", CLIOPT_INT64, AT(norms_every), 1, 1e12, .meta = "N",
     .help = "per-layer weight and gradient norms in every N-th JSONL row"},
    {"--val-data", CLIOPT_STRING, AT(val_path), .meta = "FILE",
     .help = "validation tokens (FILE.mask honoured): val_loss rows at\n"
             "step 0, every --eval-every steps and at the end"},
    {"--eval-every", CLIOPT_INT64, AT(eval_every), 1, 1e12, .meta = "N",
     .help = "with --val-data: validate after every N-th step"},
    {"--eval-batches", CLIOPT_INT64, AT(eval_batches), 1, 1e12, .meta = "M",
     .help = "with --val-data: its first M batches (default: all)"},
    {"--resume", CLIOPT_STRING, AT(resume_dir), .meta = "DIR",
     .help = "continue from DIR/latest with the same settings;\n"
             "--steps is still the total, so the run goes on to it"},
    {"--override", CLIOPT_FLAG, AT(override),
     .help = "with --resume: accept changed lr, schedule, data, seed, ...\n"
             "(each change is printed); the state's shape must still match"},
    {"--log-jsonl", CLIOPT_STRING, AT(jsonl_path), .meta = "FILE",
     .help = "one JSON object per step"},
    {"--quiet", CLIOPT_FLAG, AT(quiet), .help = "no progress line"},
    {"--tune", CLIOPT_STRING, AT(tune_path), .meta = "FILE",
     .help = "cuda: kernel tunables over templates/tuning.lua, as\n"
             "lisa gen --tune (e.g. attention_forward_mma = {USE = 0});\n"
             "without it, lisa tune's winners for this device and program"},
    {"--comm-timeout", CLIOPT_INT, AT(comm_timeout), 0, 1 << 30, .meta = "SECONDS",
     .help = "under mpirun: end every rank when a sum over ranks\n"
             "waits longer (a rank stopped or hangs; 600; 0: never)"},
    {"--no-tune-db", CLIOPT_FLAG, AT(no_tune_db),
     .help = "the default tunables, not lisa tune's winners"},
    {"--profile", CLIOPT_FLAG, AT(profile),
     .help = "time every kernel and GEMM (cuda) or op (cpu) of the\n"
             "steps after the first; a table per step at the end, rows\n"
             "in the JSONL"},
    {"--device", CLIOPT_ENUM, AT(device), .names = cliopt_device_names,
     .help = "cuda: the generated kernels and cuBLASLt; emu: the same\n"
             "kernels on the CPU in the CUDA emulator (slow, exact; needs\n"
             "a C++ compiler); auto: cuda where a device is found, else\n"
             "the cpu backend (auto)"},
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
  a->device = CLIOPT_DEVICE_AUTO, a->dtype = -1, a->save_dtype = -1;
  a->comm_timeout = 600; /* the first sum waits for every rank's model to load */
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
  if (a->save_dtype >= 0 && !a->save_path)
    return cliopt_fail_usage(c, "--save-dtype needs --save");
  if (a->merge_lora && !a->save_path)
    return cliopt_fail_usage(c, "--merge-lora needs --save PATH");
  if (a->override && !a->resume_dir) return cliopt_fail_usage(c, "--override needs --resume DIR");
  if (a->resume_dir && a->train.weights_path)
    return cliopt_fail_usage(c, "--resume takes the weights from the saved state; drop --weights");
  if (a->train.from_scratch && (a->train.weights_path || a->resume_dir))
    return cliopt_fail_usage(c, "--from-scratch initializes the weights; drop %s",
                             a->train.weights_path ? "--weights" : "--resume");
  if (a->save_every && !a->save_state_dir)
    return cliopt_fail_usage(c, "--save-every needs --save-state DIR");
  if ((a->eval_every || a->eval_batches) && !a->val_path)
    return cliopt_fail_usage(c, "%s needs --val-data FILE",
                             a->eval_every ? "--eval-every" : "--eval-batches");
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

/* The backend of a run and its context: the cpu's, or a CUDA device. */
typedef struct {
  const run_backend *ops;
  void *ctx;
} backend;

/* A device's run as the backend. */
static int open_device(const cli_args *a, const dev_provider *p, const char *name, backend *be,
                       lt_error *err) {
  dev_run *r;
  if (dev_run_open(&r, p, err)) return -1;
  *be = (backend){dev_run_backend(), r};
  if (!a->quiet) fprintf(stderr, "lisa: training on %s\n", name);
  return 0;
}

/* auto: CUDA where a device opens, else the CPU, saying why; cuda, emu: the
 * device or an error saying what is missing. */
static int choose_device(const cli_args *a, backend *be) {
  *be = (backend){run_cpu_backend(), NULL};
  if (a->device == CLIOPT_DEVICE_CPU) return 0;
  char what[1200], name[256];
  lt_error err = {{0}};
  dev_provider p;
  if (a->device == CLIOPT_DEVICE_EMU) {
    if (emu_provider_open(&p, name, sizeof name, &err) == 0 && open_device(a, &p, name, be, &err) == 0)
      return 0;
    fprintf(stderr, "lisa: --device emu: %s\n", err.msg);
    return -1;
  }
#ifdef LISA_HAVE_GPU
  if (cuda_provider_open(&p, dist_local_rank(a->train.comm), name, sizeof name, &err) == 0 &&
      open_device(a, &p, name, be, &err) == 0)
    return 0;
  snprintf(what, sizeof what, "%s", err.msg);
#else
  snprintf(what, sizeof what, "this build has no CUDA support (no toolkit when it was built)");
#endif
  if (a->device == CLIOPT_DEVICE_CUDA) {
    fprintf(stderr, "lisa: --device cuda: %s; use --device cpu\n", what);
    return -1;
  }
  if (!a->quiet) fprintf(stderr, "lisa: device auto: %s; using the cpu backend\n", what);
  return 0;
}

/* What the cpu backend does not do, said before anything runs. */
static int check_backend(const cli_args *a, const backend *be) {
  if (be->ops->params_only) return 0;
  if (a->dtype >= 0 && cliopt_dtype_values[a->dtype] != PRECISION_FP32) {
    fprintf(stderr, "lisa train: the cpu backend trains in fp32; --dtype %s needs --device cuda "
                    "or emu\n",
            cliopt_dtype_names[a->dtype]);
    return -1;
  }
  if (a->tune_path) {
    fprintf(stderr, "lisa train: --tune sets the generated kernels' tunables; it needs "
                    "--device cuda or emu\n");
    return -1;
  }
  return 0;
}

static run_options run_options_of(const cli_args *a) {
  return (run_options){.steps = a->train.steps, .save_path = a->save_path,
                       .jsonl_path = a->jsonl_path, .save_state_dir = a->save_state_dir,
                       .max_shard_gb = a->max_shard_gb, .save_dtype = a->save_dtype < 0 ? RUN_SAVE_AUTO : a->save_dtype,
                       .save_every = a->save_every,
                       .norms_every = a->norms_every, .merge_lora = a->merge_lora,
                       .val_path = a->val_path, .eval_every = a->eval_every,
                       .eval_batches = a->eval_batches,
                       .quiet = a->quiet};
}

/* SIGINT or SIGTERM: the run stops after the step in flight and saves its
 * state; a second signal finds the default action (SA_RESETHAND) and kills. */
static volatile sig_atomic_t stop_requested;

static void request_stop(int sig) {
  (void)sig;
  static const char msg[] = "\nlisa: stopping after this step (again to kill)\n";
  stop_requested = 1;
  ssize_t ignored = write(2, msg, sizeof msg - 1);
  (void)ignored;
}

static void catch_stop_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = request_stop;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* What a saved state records as the run's arithmetic: the host trainer
 * computes in fp32; a device in the chosen precision and rounding. */
static const char *numerics_of(const cli_args *a, int on_device, char *buf, size_t cap) {
  if (!on_device) return "fp32";
  int p = a->dtype >= 0 ? cliopt_dtype_values[a->dtype] : PRECISION_BF16_MIXED;
  if (p == PRECISION_FP32) return "fp32";
  snprintf(buf, cap, "%s/%s", precision_name(p), a->nearest ? "nearest" : "stochastic");
  return buf;
}

/* Under mpirun: rank 0 speaks (progress, JSONL) and writes the files;
 * every rank holds the same weights after each step. Every rank goes
 * through a state's save (--zero 1 gathers the moments for it). */
static void quiet_unless_rank0(cli_args *a, const dist_comm *comm) {
  if (dist_rank(comm) == 0) return;
  a->quiet = 1;
  a->jsonl_path = a->save_path = NULL;
}

/* "lisa: why", naming the rank under mpirun. */
static void print_failure(const dist_comm *comm, const char *why) {
  if (dist_size(comm) == 1) fprintf(stderr, "lisa: %s\n", why);
  else fprintf(stderr, "lisa: rank %d of %d: %s\n", dist_rank(comm), dist_size(comm), why);
}

/* The run of this process (a rank under mpirun): status 0, or 1 with the
 * failure printed. */
static int cmd_train_ranked(const cli_args *ap) {
  cli_args a = *ap;
  int rc;
  backend be;
  if (choose_device(&a, &be)) return 1;
  if (check_backend(&a, &be)) return be.ops->close(be.ctx), 1;
  lt_error err;
  trainer t;
  int on_device = be.ops->params_only; /* activations live on the device */
  a.train.params_only = on_device;
  char numerics[48];
  a.train.numerics = numerics_of(&a, on_device, numerics, sizeof numerics);
  rc = trainer_create(&t, &a.train, &err);
  if (rc == 0 && t.load_note[0] && !a.quiet) fprintf(stderr, "note: %s\n", t.load_note);
  run_backend_options bo = {a.dtype >= 0 ? cliopt_dtype_values[a.dtype] : PRECISION_BF16_MIXED,
                            a.nearest, a.tune_path, a.no_tune_db, a.profile, a.quiet};
  run_options ro = run_options_of(&a);
  if (rc == 0) rc = run_check_val(&ro, &t, &err);
  /* a device's store holds the weights: the resume puts its state there */
  if (rc == 0) rc = be.ops->prepare(be.ctx, &t, &bo, &err);
  if (rc == 0 && a.resume_dir)
    rc = run_resume(&t, a.resume_dir, a.train.steps, a.override, a.quiet, &err);
  ro.stop = &stop_requested;
  /* "stop after this step" needs every rank to stop after the same one;
   * under mpirun a signal ends the ranks instead */
  if (rc == 0 && dist_size(a.train.comm) == 1) catch_stop_signals();
  if (rc == 0) rc = run_training(&t, be.ops, be.ctx, &ro, &err);
  be.ops->close(be.ctx);
  trainer_free(&t);
  if (rc) {
    print_failure(a.train.comm, err.msg);
    return rc == RUN_INTERRUPTED ? 128 + SIGINT : 1;
  }
  return 0;
}

/* A rank that fails ends every rank (no rank waits in a collective for it). */
static int cmd_train(int argc, char **argv) {
  cli_args a;
  int status;
  if (parse_train_args(argc, argv, &a, &status)) return status;
  dist_comm *comm = NULL;
  lt_error err = {{0}};
  if (dist_open(&comm, a.comm_timeout, &err)) {
    print_failure(comm, err.msg);
    status = 1;
  } else {
    a.train.comm = comm;
    quiet_unless_rank0(&a, comm);
    status = cmd_train_ranked(&a);
  }
  if (status && dist_size(comm) > 1) dist_abort(comm, status);
  dist_close(comm);
  return status;
}

static const char usage_main[] =
    "usage: lisa train MODEL.yaml --data FILE [options]   train (lisa train --help)\n"
    "       lisa plan MODEL.yaml [options]                 memory by category, no run\n"
    "       lisa gen MODEL.yaml -o DIR [options]           generated CUDA C++ and plan per path\n"
    "       lisa eval MODEL --data FILE [options]          loss and perplexity as JSON, no run\n"
    "       lisa sample MODEL --prompt TEXT [options]      generate text (KV cache, cpu)\n"
    "       lisa check MODEL [options]                     every generated path against the cpu\n"
    "       lisa tune MODEL [options]                      every tunable variant, checked so\n";

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_train(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "plan")) return cli_plan(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "gen")) return cli_gen(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "eval")) return cli_eval(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "sample")) return cli_sample(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "check")) return cli_check(argc - 2, argv + 2);
  if (argc >= 2 && !strcmp(argv[1], "tune")) return cli_tune(argc - 2, argv + 2);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    fputs(usage_main, stdout);
    return 0;
  }
  fputs(usage_main, stderr);
  return 2;
}
