/* cli_gen.c: `lisa gen`, the generated CUDA C++ of every path, the plan and
 * (with the toolkit) NVRTC's compile report, written to a folder. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "autodiff.h"
#include "cli.h"
#include "gen.h"
#ifdef LISA_HAVE_GPU
#include "gpu_api.h"
#endif
#include "lora.h"
#include "gen_tune.h"
#include "model_yaml.h"
#ifdef LISA_HAVE_NVRTC
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "nvrtc_driver.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
#endif

static const char usage_gen[] =
    "usage: lisa gen MODEL.yaml -o DIR [options]\n"
    "  -o DIR               where the .cu files, plan.txt and compile.txt go\n"
    "  --batch B --seq T    sizes the kernels are specialised for (4, 64)\n"
    "  --dtype fp32|bf16|bf16-mixed|bf16-true  precision (bf16 = bf16-mixed):\n"
    "                       bf16-mixed: bf16 weights and activations, fp32 parameter\n"
    "                       gradients (and fp32 master weights and moments);\n"
    "                       bf16-true: gradients and optimizer state bf16 as well\n"
    "  --arch sm_XX         NVRTC target (the GPU's, else sm_90); --no-compile skips NVRTC\n"
    "  --rounding stochastic|nearest  bf16-mixed: how AdamW rounds the bf16 weights\n"
    "                       from the fp32 masters (stochastic)\n"
    "  --grad-accum N       micro-batches per step (1; > 1 keeps bias gradients\n"
    "                       out of GEMM epilogues, which overwrite)\n"
    "  --method ft|lisa|lora  ft and lisa share every path (LISA picks among them\n"
    "                       each step); lora adds adapters, only they train (ft)\n"
    "  --lora-rank R --lora-alpha A --lora-targets K,...  as lisa train (8, 2R, all)\n"
    "  --tune FILE          a Lua table of kernel tunables (block sizes, rows per\n"
    "                       block) over the defaults of templates/tuning.lua, e.g.\n"
    "                       return {attention_forward = {BQ = 16, THREADS = 64}}\n";

typedef struct {
  const char *model, *out, *arch, *tune, *lora_targets;
  int batch, seq, dtype, grad_dtype, grad_accum, compile, lora, lora_rank, nearest;
  double lora_alpha; /* 0: 2 * rank */
} gen_args;

static int gen_fail(const char *fmt, const char *arg) {
  fprintf(stderr, "lisa gen: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n%s", usage_gen);
  return 2;
}

static int parse_int(const char *opt, const char *text, int *out) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < 1 || v > 1 << 24) {
    fprintf(stderr, "lisa gen: %s: '%s' is not a positive integer\n", opt, text);
    return -1;
  }
  *out = (int)v;
  return 0;
}

static int parse_gen_args(int argc, char **argv, gen_args *a) {
  *a = (gen_args){.arch = NULL, .batch = 4, .seq = 64, .dtype = GEN_BF16, .grad_accum = 1,
                  .compile = 1, .lora_rank = 8};
  for (int i = 0; i < argc; i++) {
    const char *opt = argv[i];
    if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) return fputs(usage_gen, stdout), 1;
    if (!strcmp(opt, "--no-compile")) { a->compile = 0; continue; }
    if (strncmp(opt, "-", 1)) {
      if (a->model) return gen_fail("unexpected argument '%s'", opt);
      a->model = opt;
      continue;
    }
    if (i + 1 >= argc) return gen_fail("%s needs a value", opt);
    const char *val = argv[++i];
    if (!strcmp(opt, "-o")) a->out = val;
    else if (!strcmp(opt, "--arch")) a->arch = val;
    else if (!strcmp(opt, "--tune")) a->tune = val;
    else if (!strcmp(opt, "--dtype")) {
      if (!strcmp(val, "fp32")) a->dtype = GEN_F32, a->grad_dtype = GEN_F32;
      else if (!strcmp(val, "bf16") || !strcmp(val, "bf16-mixed")) a->dtype = GEN_BF16, a->grad_dtype = GEN_F32;
      else if (!strcmp(val, "bf16-true")) a->dtype = GEN_BF16, a->grad_dtype = GEN_BF16;
      else return gen_fail("--dtype must be fp32, bf16, bf16-mixed or bf16-true, not '%s'", val);
    } else if (!strcmp(opt, "--batch")) { if (parse_int(opt, val, &a->batch)) return 2; }
    else if (!strcmp(opt, "--seq")) { if (parse_int(opt, val, &a->seq)) return 2; }
    else if (!strcmp(opt, "--grad-accum")) { if (parse_int(opt, val, &a->grad_accum)) return 2; }
    else if (!strcmp(opt, "--rounding")) {
      if (strcmp(val, "stochastic") && strcmp(val, "nearest"))
        return gen_fail("--rounding must be stochastic or nearest, not '%s'", val);
      a->nearest = !strcmp(val, "nearest");
    }
    else if (!strcmp(opt, "--lora-rank")) { if (parse_int(opt, val, &a->lora_rank)) return 2; }
    else if (!strcmp(opt, "--lora-targets")) a->lora_targets = val;
    else if (!strcmp(opt, "--lora-alpha")) {
      char *end;
      a->lora_alpha = strtod(val, &end);
      if (end == val || *end || !(a->lora_alpha > 0)) return gen_fail("--lora-alpha must be a positive number, not '%s'", val);
    } else if (!strcmp(opt, "--method")) {
      if (strcmp(val, "ft") && strcmp(val, "lisa") && strcmp(val, "lora"))
        return gen_fail("--method must be ft, lisa or lora, not '%s'", val);
      a->lora = !strcmp(val, "lora");
    } else return gen_fail("unknown option '%s'", opt);
  }
  if (!a->model) return gen_fail("%s", "no MODEL.yaml given");
  if (!a->out) return gen_fail("%s", "no output folder given (-o DIR)");
  if (a->arch && strncmp(a->arch, "sm_", 3)) return gen_fail("--arch must be a real arch such as sm_90, not '%s'", a->arch);
  return 0;
}

static int write_text(const char *dir, const char *name, const char *text) {
  char path[1024];
  lt_error err = {{0}};
  if (af_join(path, sizeof path, dir, name, &err) ||
      af_write_text(path, text, &err)) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    return -1;
  }
  return 0;
}

#ifdef LISA_HAVE_NVRTC
/* Paths compile in parallel, one NVRTC program each (one per core): the
 * first build of all of GPT-2 124M's paths is the sum of the slowest
 * core's share, not of all of them. */
typedef struct {
  const gen_program *prog;
  nv_options opts;
  nv_result result[GEN_MAX_PATHS];
  lt_error err[GEN_MAX_PATHS];
  int rc[GEN_MAX_PATHS];
  int next;
  pthread_mutex_t lock;
} compile_job;

static void *compile_worker(void *arg) {
  compile_job *j = arg;
  for (;;) {
    pthread_mutex_lock(&j->lock);
    int i = j->next++;
    pthread_mutex_unlock(&j->lock);
    if (i >= j->prog->n_paths) return NULL;
    const gen_path *p = &j->prog->paths[i];
    j->rc[i] = nv_compile(p->name, sb_str(&p->source), &j->opts, &j->result[i], &j->err[i]);
  }
}

/* A table of every kernel's registers, spills and shared memory. */
static void report_kernels(sbuf *report, const char *log) {
  nv_kernel_stats k[64];
  int n = nv_parse_stats(log, k, 64);
  sb_puts(report, "| kernel | registers | spill stores | spill loads | stack | smem |\n"
                  "|---|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < n && i < 64; i++)
    sb_printf(report, "| %s | %d | %d | %d | %d | %d |\n", k[i].name, k[i].registers,
              k[i].spill_stores, k[i].spill_loads, k[i].stack, k[i].smem);
  if (n > 64) sb_printf(report, "| (%d more) | | | | | |\n", n - 64);
}

/* compile.txt: per path the time, the kernel table and ptxas's own words. */
static int compile_paths(const gen_program *prog, const gen_args *a, sbuf *report) {
  compile_job j = {.prog = prog, .lock = PTHREAD_MUTEX_INITIALIZER};
  snprintf(j.opts.arch, sizeof j.opts.arch, "%s", a->arch);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int n_threads = cores < 1 ? 1 : cores > prog->n_paths ? prog->n_paths : (int)cores;
  pthread_t threads[GEN_MAX_PATHS];
  double t0 = now_ms();
  for (int t = 0; t < n_threads; t++) pthread_create(&threads[t], NULL, compile_worker, &j);
  for (int t = 0; t < n_threads; t++) pthread_join(threads[t], NULL);
  double wall = now_ms() - t0;
  int failed = 0;
  for (int i = 0; i < prog->n_paths; i++) {
    const gen_path *p = &prog->paths[i];
    const nv_result *r = &j.result[i];
    if (j.rc[i]) {
      fprintf(stderr, "lisa gen: %s\n", j.err[i].msg);
      failed = 1;
      continue;
    }
    sb_printf(report, "## %s (%s): %s %.1f ms, %zu bytes of CUBIN\n", p->name, a->arch,
              r->cache_hit ? "cache hit" : "compiled", r->compile_ms, r->size);
    report_kernels(report, r->log);
    sb_printf(report, "\nptxas and NVRTC said:\n%s\n", r->log);
    printf("  %-14s %s %7.1f ms\n", p->name, r->cache_hit ? "cache hit" : "compiled ",
           r->compile_ms);
    nv_result_free(&j.result[i]);
  }
  printf("  all paths: %.1f ms wall on %d threads\n", wall, n_threads);
  sb_printf(report, "# all paths: %.1f ms wall on %d threads\n", wall, n_threads);
  return failed ? -1 : 0;
}
#endif

static int write_outputs(const gen_program *prog, const gen_args *a) {
  lt_error err = {{0}};
  if (af_make_dir(a->out, &err)) return fprintf(stderr, "lisa gen: %s\n", err.msg), -1;
  for (int i = 0; i < prog->n_paths; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s.cu", prog->paths[i].name);
    if (write_text(a->out, name, sb_str(&prog->paths[i].source))) return -1;
  }
  sbuf plan = {0};
  gen_print_plan(prog, &plan);
  int rc = write_text(a->out, "plan.txt", sb_str(&plan));
  sb_free(&plan);
  return rc;
}

/* The model with its backward (and LoRA's adapters); trains[p]: p trains. */
static int load_model(const gen_args *a, ir_model *m, unsigned char **trains, lt_error *err) {
  double alpha = a->lora_alpha > 0 ? a->lora_alpha : 2.0 * a->lora_rank;
  *trains = NULL;
  if (yml_load_model(a->model, m, err) ||
      (a->lora && lora_apply(m, a->lora_rank, alpha, a->lora_targets, err)) ||
      ad_build_backward(m, err))
    return -1;
  *trains = malloc((size_t)m->n_params + 1);
  if (!*trains) return lt_fail(err, "out of memory");
  if (a->lora) lora_trains(m, *trains);
  else memset(*trains, 1, (size_t)m->n_params);
  return 0;
}

/* No --arch: the device's, when there is one, else Hopper's. */
static const char *default_arch(char *buf, size_t cap) {
#ifdef LISA_HAVE_GPU
  gpu_api g;
  lt_error err = {{0}};
  if (gpu_open(&g, &err) == 0) {
    gpu_arch(&g, buf, cap);
    gpu_close(&g);
    return buf;
  }
#endif
  snprintf(buf, cap, "sm_90");
  return buf;
}

int cli_gen(int argc, char **argv) {
  gen_args a;
  char arch[16];
  int rc = parse_gen_args(argc, argv, &a);
  if (rc) return rc == 1 ? 0 : rc;
  if (!a.arch) a.arch = default_arch(arch, sizeof arch);
  ir_model m;
  unsigned char *trains = NULL;
  gen_tuning *tuning = NULL;
  gen_program prog = {0};
  lt_error err = {{0}};
  rc = 1;
  if (load_model(&a, &m, &trains, &err) || (a.tune && gen_tune_load(&tuning, a.tune, &err))) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    goto done;
  }
  gen_config cfg = {.B = a.batch, .T = a.seq, .dtype = a.dtype, .grad_dtype = a.grad_dtype,
                    .grad_accum = a.grad_accum, .opt_nearest = a.nearest,
                    .tuning = tuning, .trains = trains};
  if (gen_build(&prog, &m, &cfg, &err)) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    goto done;
  }
  if (write_outputs(&prog, &a)) goto done;
  printf("lisa gen: %d paths of %s written to %s\n", prog.n_paths, a.model, a.out);
  rc = 0;
#ifdef LISA_HAVE_NVRTC
  if (a.compile) {
    sbuf report = {0};
    if (compile_paths(&prog, &a, &report)) rc = 1;
    if (write_text(a.out, "compile.txt", sb_str(&report))) rc = 1;
    sb_free(&report);
  }
#else
  if (a.compile) printf("lisa gen: built without NVRTC: sources only\n");
#endif
done:
  gen_free(&prog);
  gen_tune_free(tuning);
  free(trains);
  ir_model_free(&m);
  return rc;
}
