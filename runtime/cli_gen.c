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
#include "model_yaml.h"
#ifdef LISA_HAVE_NVRTC
#include "nvrtc_driver.h"
#endif

static const char usage_gen[] =
    "usage: lisa gen MODEL.yaml -o DIR [options]\n"
    "  -o DIR               where the .cu files, plan.txt and compile.txt go\n"
    "  --batch B --seq T    sizes the kernels are specialised for (4, 64)\n"
    "  --dtype bf16|fp32    storage of weights and activations (bf16)\n"
    "  --arch sm_XX         NVRTC target (sm_90); --no-compile skips NVRTC\n"
    "  --grad-accum N       micro-batches per step (1; > 1 keeps bias gradients\n"
    "                       out of GEMM epilogues, which overwrite)\n";

typedef struct {
  const char *model, *out, *arch;
  int batch, seq, dtype, grad_accum, compile;
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
  *a = (gen_args){.arch = "sm_90", .batch = 4, .seq = 64, .dtype = GEN_BF16, .grad_accum = 1,
                  .compile = 1};
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
    else if (!strcmp(opt, "--dtype")) {
      if (strcmp(val, "bf16") && strcmp(val, "fp32")) return gen_fail("--dtype must be bf16 or fp32, not '%s'", val);
      a->dtype = strcmp(val, "bf16") ? GEN_F32 : GEN_BF16;
    } else if (!strcmp(opt, "--batch")) { if (parse_int(opt, val, &a->batch)) return 2; }
    else if (!strcmp(opt, "--seq")) { if (parse_int(opt, val, &a->seq)) return 2; }
    else if (!strcmp(opt, "--grad-accum")) { if (parse_int(opt, val, &a->grad_accum)) return 2; }
    else return gen_fail("unknown option '%s'", opt);
  }
  if (!a->model) return gen_fail("%s", "no MODEL.yaml given");
  if (!a->out) return gen_fail("%s", "no output folder given (-o DIR)");
  if (strncmp(a->arch, "sm_", 3)) return gen_fail("--arch must be a real arch such as sm_90, not '%s'", a->arch);
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
/* ptxas's lines for one kernel: "Compiling entry function 'k' ..." then
 * "Used N registers, ..." and spill counts; kept whole in compile.txt. */
static int compile_paths(const gen_program *prog, const gen_args *a, sbuf *report) {
  nv_options o = {.cache_dir = NULL};
  snprintf(o.arch, sizeof o.arch, "%s", a->arch);
  int failed = 0;
  for (int i = 0; i < prog->n_paths; i++) {
    const gen_path *p = &prog->paths[i];
    nv_result r;
    lt_error err = {{0}};
    if (nv_compile(p->name, sb_str(&p->source), &o, &r, &err)) {
      fprintf(stderr, "lisa gen: %s\n", err.msg);
      failed = 1;
      continue;
    }
    sb_printf(report, "## %s (%s): %s %.1f ms, %zu bytes of CUBIN\n%s\n", p->name, a->arch,
              r.cache_hit ? "cache hit" : "compiled", r.compile_ms, r.size, r.log);
    printf("  %-14s %s %7.1f ms\n", p->name, r.cache_hit ? "cache hit" : "compiled ", r.compile_ms);
    nv_result_free(&r);
  }
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

int cli_gen(int argc, char **argv) {
  gen_args a;
  int rc = parse_gen_args(argc, argv, &a);
  if (rc) return rc == 1 ? 0 : rc;
  ir_model m;
  lt_error err = {{0}};
  if (yml_load_model(a.model, &m, &err) || ad_build_backward(&m, &err)) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    ir_model_free(&m);
    return 1;
  }
  gen_config cfg = {.B = a.batch, .T = a.seq, .dtype = a.dtype, .grad_accum = a.grad_accum};
  gen_program prog;
  if (gen_build(&prog, &m, &cfg, &err)) {
    fprintf(stderr, "lisa gen: %s\n", err.msg);
    ir_model_free(&m);
    return 1;
  }
  rc = write_outputs(&prog, &a) ? 1 : 0;
  printf("lisa gen: %d paths of %s written to %s\n", prog.n_paths, a.model, a.out);
#ifdef LISA_HAVE_NVRTC
  if (!rc && a.compile) {
    sbuf report = {0};
    if (compile_paths(&prog, &a, &report)) rc = 1;
    if (write_text(a.out, "compile.txt", sb_str(&report))) rc = 1;
    sb_free(&report);
  }
#else
  if (a.compile) printf("lisa gen: built without NVRTC: sources only\n");
#endif
  gen_free(&prog);
  ir_model_free(&m);
  return rc;
}
