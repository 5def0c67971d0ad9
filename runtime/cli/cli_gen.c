/* cli_gen.c: `lisa gen`, the generated CUDA C++ of every path, the plan and
 * (with the toolkit) NVRTC's compile report, written to a folder. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "autodiff.h"
#include "cli.h"
#include "cli_opts.h"
#include "clock_ms.h"
#include "gen.h"
#ifdef LISA_HAVE_GPU
#include "gpu_api.h"
#endif
#include "lora.h"
#include "emu_device.h"
#include "gen_tune.h"
#include "model_source.h"
#include "model_yaml.h"
#include "memory_plan.h"
#include "train.h"
#include "tune_db.h"
#ifdef LISA_HAVE_NVRTC
#include <unistd.h>

#include "nvrtc_driver.h"

#endif

typedef struct {
  const char *model, *out, *arch, *tune, *lora_targets;
  int batch, seq, precision, grad_accum, no_compile, method, lora_rank, nearest, decode;
  int device, no_tune_db; /* the tuning database's: 0 the GPU's if any, 1 cuda, 2 emu */
  double lora_alpha; /* 0: 2 * rank */
} gen_args;

#define AT(field) offsetof(gen_args, field)
#define SIZE 1, 1 << 24 /* the range of every size */

static const char *const gen_devices[] = {"auto", "cuda", "emu", NULL};

static const cliopt gen_opts[] = {
    {"-o", CLIOPT_STRING, AT(out), .meta = "DIR",
     .help = "where the .cu files, plan.txt and compile.txt go"},
    {"--batch", CLIOPT_INT, AT(batch), SIZE, .meta = "B --seq T",
     .help = "sizes the kernels are specialised for (4, 64)"},
    {"--seq", CLIOPT_INT, AT(seq), SIZE, .help = NULL /* with --batch */},
    {"--dtype", CLIOPT_ENUM, AT(precision), .names = cliopt_dtype_names,
     .values = cliopt_dtype_values,
     .help = "precision (bf16 = bf16-mixed):\n"
             "bf16-mixed: bf16 weights and activations, fp32 parameter\n"
             "gradients (and fp32 master weights and moments);\n"
             "bf16-true: gradients and optimizer state bf16 as well"},
    {"--arch", CLIOPT_STRING, AT(arch), .meta = "sm_XX",
     .help = "NVRTC target (the GPU's, else sm_90); --no-compile skips NVRTC"},
    {"--no-compile", CLIOPT_FLAG, AT(no_compile), .help = NULL /* with --arch */},
    {"--rounding", CLIOPT_ENUM, AT(nearest), .names = cliopt_rounding_names,
     .help = "bf16-mixed: how AdamW rounds the bf16 weights\n"
             "from the fp32 masters (stochastic)"},
    {"--grad-accum", CLIOPT_INT, AT(grad_accum), SIZE, .meta = "N",
     .help = "micro-batches per step (1; > 1 keeps bias gradients\n"
             "out of GEMM epilogues, which overwrite)"},
    {"--method", CLIOPT_ENUM, AT(method), .names = cliopt_method_names,
     .help = "ft and lisa share every path (LISA picks among them\n"
             "each step); lora adds adapters, only they train (ft)"},
    {"--lora-rank", CLIOPT_INT, AT(lora_rank), SIZE,
     .meta = "R --lora-alpha A --lora-targets K,...",
     .help = "as lisa train (8, 2R, all)"},
    {"--lora-alpha", CLIOPT_DOUBLE, AT(lora_alpha), 0, 1e6, .lo_open = 1,
     .help = NULL /* with --lora-rank */},
    {"--lora-targets", CLIOPT_STRING, AT(lora_targets), .help = NULL /* with --lora-rank */},
    {"--decode", CLIOPT_INT, AT(decode), SIZE, .meta = "CTX",
     .help = "the decoding program instead (lisa sample's): a KV\n"
             "cache of CTX positions, --seq rows a call, --batch 1"},
    {"--tune", CLIOPT_STRING, AT(tune), .meta = "FILE",
     .help = "a Lua table of kernel tunables (block sizes, rows per\n"
             "block) over the defaults of templates/tuning.lua, e.g.\n"
             "return {attention_forward = {BQ = 16, THREADS = 64}}"},
    {"--device", CLIOPT_ENUM, AT(device), .names = gen_devices,
     .help = "whose lisa tune winners apply without --tune: the\n"
             "GPU's (its SMs too; default when there is one) or emu's"},
    {"--no-tune-db", CLIOPT_FLAG, AT(no_tune_db), .help = "the default tunables"},
};

static const cliopt_cmd gen_cmd = {"lisa gen", "usage: lisa gen MODEL.yaml -o DIR [options]\n", 20,
                                   gen_opts, sizeof gen_opts / sizeof gen_opts[0]};

static int check_gen_args(const gen_args *a) {
  if (!a->model) return cliopt_fail_usage(&gen_cmd, "missing MODEL.yaml");
  if (!a->out) return cliopt_fail_usage(&gen_cmd, "no output folder given (-o DIR)");
  if (a->arch && strncmp(a->arch, "sm_", 3))
    return cliopt_fail_usage(&gen_cmd, "--arch must be a real arch such as sm_90, not '%s'",
                             a->arch);
  return 0;
}

/* 0 to generate, else -1 with the exit status (0 after --help). */
static int parse_gen_args(int argc, char **argv, gen_args *a, int *exit_status) {
  *a = (gen_args){.batch = 4, .seq = 64, .precision = PRECISION_BF16_MIXED, .grad_accum = 1,
                  .method = TRAIN_FT, .lora_rank = 8};
  cliopt_result r;
  lt_error err;
  int rc = cliopt_parse(&gen_cmd, argc, argv, a, &r, &err);
  a->model = r.positional;
  *exit_status = rc ? cliopt_finish(&gen_cmd, rc, &err) : check_gen_args(a);
  return rc || *exit_status ? -1 : 0;
}

static int write_text(const char *dir, const char *name, const char *text) {
  char path[1024];
  lt_error err = {{0}};
  if (atomic_file_join(path, sizeof path, dir, name, &err) ||
      atomic_file_write_text(path, text, &err)) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    return -1;
  }
  return 0;
}

#ifdef LISA_HAVE_NVRTC
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
  nv_options opts = {.cache_dir = NULL};
  snprintf(opts.arch, sizeof opts.arch, "%s", a->arch);
  nv_job *jobs = calloc((size_t)prog->n_paths, sizeof *jobs); /* results hold 64 KiB logs */
  if (!jobs) return fprintf(stderr, "lisa gen: out of memory\n"), -1;
  for (int i = 0; i < prog->n_paths; i++)
    jobs[i].name = prog->paths[i].name, jobs[i].source = sb_str(&prog->paths[i].source);
  int n_threads;
  double t0 = lt_now_ms();
  int failed = nv_compile_batch(jobs, prog->n_paths, &opts, &n_threads);
  double wall = lt_now_ms() - t0;
  for (int i = 0; i < prog->n_paths; i++) {
    const gen_path *p = &prog->paths[i];
    const nv_result *r = &jobs[i].result;
    if (jobs[i].rc) {
      fprintf(stderr, "lisa gen: %s\n", jobs[i].err.msg);
      continue;
    }
    sb_printf(report, "## %s (%s): %s %.1f ms, %zu bytes of CUBIN\n", p->name, a->arch,
              r->cache_hit ? "cache hit" : "compiled", r->compile_ms, r->size);
    report_kernels(report, r->log);
    sb_printf(report, "\nptxas and NVRTC said:\n%s\n", r->log);
    printf("  %-14s %s %7.1f ms\n", p->name, r->cache_hit ? "cache hit" : "compiled ",
           r->compile_ms);
    nv_result_free(&jobs[i].result);
  }
  free(jobs);
  printf("  all paths: %.1f ms wall on %d threads\n", wall, n_threads);
  sb_printf(report, "# all paths: %.1f ms wall on %d threads\n", wall, n_threads);
  return failed ? -1 : 0;
}
#endif

static int write_outputs(const gen_program *prog, const gen_args *a) {
  lt_error err = {{0}};
  if (atomic_file_make_dir(a->out, &err)) return fprintf(stderr, "lisa gen: %s\n", err.msg), -1;
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
  char weights[1024];
  if (model_open(a->model, m, weights, sizeof weights, err) ||
      (a->method == TRAIN_LORA && lora_apply(m, a->lora_rank, alpha, a->lora_targets, err)) ||
      ad_build_backward(m, err))
    return -1;
  *trains = malloc((size_t)m->n_params + 1);
  if (!*trains) return lt_fail(err, "out of memory");
  if (a->method == TRAIN_LORA) lora_trains(m, *trains);
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

/* The tuning database's device: --device's, else the GPU when there is
 * one (cfg gets its SMs, as lisa train's program has); "" for none. */
static int db_device(const gen_args *a, gen_config *cfg, char *key, size_t cap, lt_error *err) {
  key[0] = '\0';
  if (a->device == 2) return emu_tune_key(key, cap), 0;
#ifdef LISA_HAVE_GPU
  gpu_api g;
  lt_error why = {{0}};
  if (gpu_open(&g, &why) == 0) {
    gpu_tune_key(&g, key, cap);
    cfg->sms = g.n_sms;
    gpu_close(&g);
  } else if (a->device == 1)
    return lt_fail(err, "--device cuda: %s", why.msg);
#else
  if (a->device == 1) return lt_fail(err, "--device cuda: this build has no CUDA support");
#endif
  (void)cfg;
  return 0;
}

/* lisa tune's winners for this program, said on stderr. */
static int db_tuning(const gen_args *a, const ir_model *m, gen_config *cfg, gen_tuning **out,
                     lt_error *err) {
  char device[160];
  if (db_device(a, cfg, device, sizeof device, err)) return -1;
  if (!device[0]) return 0;
  char applied[1024];
  int rc = tdb_lookup(device, m, cfg, out, applied, sizeof applied, stderr, err);
  if (rc == 0 && *out)
    fprintf(stderr, "lisa gen: kernels tuned by lisa tune on %s (--no-tune-db: the defaults): %s\n",
            device, applied);
  return rc;
}

int cli_gen(int argc, char **argv) {
  gen_args a;
  char arch[16];
  int rc;
  if (parse_gen_args(argc, argv, &a, &rc)) return rc;
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
  gen_config cfg = {.B = a.batch, .T = a.seq, .grad_accum = a.grad_accum, .opt_nearest = a.nearest,
                    .tuning = tuning, .trains = trains,
                    .decode = a.decode > 0, .ctx = a.decode,
                    .dump_after = getenv("LISA_GEN_DUMP")}; /* a debugging aid */
  precision_dtypes(a.precision, &cfg.dtype, &cfg.grad_dtype);
  if (!a.tune && !a.no_tune_db && !a.decode && db_tuning(&a, &m, &cfg, &tuning, &err)) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    goto done;
  }
  cfg.tuning = tuning;
  int failed = gen_build(&prog, &m, &cfg, &err);
  fputs(sb_str(&prog.dump), stderr);
  if (failed) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    goto done;
  }
  if (write_outputs(&prog, &a)) goto done;
  printf("lisa gen: %d paths of %s written to %s\n", prog.n_paths, a.model, a.out);
  rc = 0;
#ifdef LISA_HAVE_NVRTC
  if (!a.no_compile) {
    sbuf report = {0};
    if (compile_paths(&prog, &a, &report)) rc = 1;
    if (write_text(a.out, "compile.txt", sb_str(&report))) rc = 1;
    sb_free(&report);
  }
#else
  if (!a.no_compile) printf("lisa gen: built without NVRTC: sources only\n");
#endif
done:
  gen_free(&prog);
  gen_tune_free(tuning);
  free(trains);
  ir_model_free(&m);
  return rc;
}
