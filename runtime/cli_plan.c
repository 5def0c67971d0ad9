/* cli_plan.c: `lisa plan`, the memory a run needs before it runs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "cli.h"
#include "lora.h"
#include "model_yaml.h"
#include "plan.h"
#include "train.h"

static const char usage_plan[] =
    "usage: lisa plan MODEL.yaml [options]\n"
    "  --method ft|lisa|lora  (ft)\n"
    "  --lora-rank R        LoRA: adapter rank (8)\n"
    "  --lora-targets K,... LoRA: block linear weights to adapt (all)\n"
    "  --gamma G            LISA: middle blocks trained at once (2)\n"
    "  --batch B --seq T    (1, 1024: the paper's setting)\n"
    "  --dtype P            fp32: what the CPU backend allocates (default); the device\n"
    "                       trainer's arena for:\n"
    "                       bf16 (= bf16-mixed): bf16 weights, fp32 grads, master and moments;\n"
    "                       bf16-true: all bf16, no master copy (the paper's setting)\n"
    "  --device-mem GIB     say whether the total fits in this much memory\n"
    "  --json               one JSON object: total_bytes, breakdown, fits\n";

typedef struct {
  const char *model_path;
  plan_settings ps;
  double device_gib; /* 0: not asked */
  int json;
} plan_args;

static int plan_fail(const char *fmt, const char *arg) {
  fprintf(stderr, "lisa plan: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n%s", usage_plan);
  return 2;
}

static int parse_positive(const char *opt, const char *text, double *out) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || v < 0) {
    fprintf(stderr, "lisa plan: %s: '%s' is not a non-negative number\n", opt, text);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_plan_args(int argc, char **argv, plan_args *a) {
  memset(a, 0, sizeof *a);
  a->ps = (plan_settings){.method = TRAIN_FT, .gamma = 2, .lora_rank = 8, .lora_alpha = 16,
                          .batch = 1, .seq = 1024};
  for (int i = 0; i < argc; i++) {
    const char *opt = argv[i];
    if (!strcmp(opt, "--json")) { a->json = 1; continue; }
    if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
      fputs(usage_plan, stdout);
      exit(0);
    }
    if (strncmp(opt, "--", 2)) {
      if (a->model_path) return plan_fail("unexpected argument '%s'", opt);
      a->model_path = opt;
      continue;
    }
    if (i + 1 >= argc) return plan_fail("%s needs a value", opt);
    const char *val = argv[++i];
    double v;
    if (!strcmp(opt, "--method")) {
      if (!strcmp(val, "ft")) a->ps.method = TRAIN_FT;
      else if (!strcmp(val, "lisa")) a->ps.method = TRAIN_LISA;
      else if (!strcmp(val, "lora")) a->ps.method = TRAIN_LORA;
      else return plan_fail("--method must be ft, lisa or lora, not '%s'", val);
    } else if (!strcmp(opt, "--lora-targets")) {
      a->ps.lora_targets = val;
    } else if (!strcmp(opt, "--dtype")) {
      a->ps.precision = plan_precision_parse(val);
      if (a->ps.precision < 0)
        return plan_fail("--dtype must be fp32, bf16, bf16-mixed or bf16-true, not '%s'", val);
    } else if (!strcmp(opt, "--gamma") || !strcmp(opt, "--batch") || !strcmp(opt, "--seq") ||
               !strcmp(opt, "--device-mem") || !strcmp(opt, "--lora-rank")) {
      if (parse_positive(opt, val, &v)) return 2;
      if (!strcmp(opt, "--gamma")) a->ps.gamma = (int)v;
      else if (!strcmp(opt, "--batch")) a->ps.batch = (int)v;
      else if (!strcmp(opt, "--seq")) a->ps.seq = (int)v;
      else if (!strcmp(opt, "--lora-rank")) a->ps.lora_rank = (int)v;
      else a->device_gib = v;
    } else return plan_fail("unknown option '%s'", opt);
  }
  if (!a->model_path) return plan_fail("%s", "missing MODEL.yaml");
  if (a->ps.batch < 1 || a->ps.seq < 1) return plan_fail("%s", "--batch and --seq must be at least 1");
  return 0;
}

static const char *const method_names[] = {"ft", "lisa", "lora"};

static void print_human(const plan_args *a, const ir_model *m, const plan_memory *pm) {
  const double gib = 1024.0 * 1024 * 1024;
  printf("%s: %s%s, batch %d, seq %d, %s (%s)\n", m->name, method_names[a->ps.method],
         a->ps.method == TRAIN_LISA ? (a->ps.gamma ? " E+H+gamma" : " E+H") : "", a->ps.batch,
         a->ps.seq, plan_precision_name(a->ps.precision),
         a->ps.precision == PLAN_FP32 ? "CPU" : "GPU");
  if (a->ps.method == TRAIN_LISA) printf("  gamma %d of %d middle blocks\n", a->ps.gamma, m->n_layer);
  if (a->ps.method == TRAIN_LORA) printf("  rank %d\n", a->ps.lora_rank);
  for (int c = 0; c < PLAN_NCATEGORIES; c++)
    printf("  %-16s %10.3f GiB\n", plan_category_name(c), pm->bytes[c] / gib);
  printf("  %-16s %10.3f GiB", "total", pm->total / gib);
  if (a->device_gib > 0)
    printf("   %s in %g GiB", pm->total <= a->device_gib * gib ? "fits" : "does not fit", a->device_gib);
  printf("\n");
}

static void print_json(const plan_args *a, const ir_model *m, const plan_memory *pm) {
  printf("{\"model\":\"%s\",\"method\":\"%s\",\"gamma\":%d,\"batch\":%d,\"seq\":%d,\"dtype\":\"%s\","
         "\"total_bytes\":%llu,\"breakdown\":{",
         m->name, method_names[a->ps.method], a->ps.method == TRAIN_LISA ? a->ps.gamma : m->n_layer,
         a->ps.batch, a->ps.seq, plan_precision_name(a->ps.precision), (unsigned long long)pm->total);
  for (int c = 0; c < PLAN_NCATEGORIES; c++)
    printf("%s\"%s\":%llu", c ? "," : "", plan_category_name(c), (unsigned long long)pm->bytes[c]);
  printf("}");
  if (a->device_gib > 0)
    printf(",\"device_mem_bytes\":%.0f,\"fits\":%s", a->device_gib * 1073741824.0,
           pm->total <= a->device_gib * 1073741824.0 ? "true" : "false");
  printf("}\n");
}

int cli_plan(int argc, char **argv) {
  plan_args a;
  int rc = parse_plan_args(argc, argv, &a);
  if (rc) return rc;
  ir_model m;
  lt_error err;
  plan_memory pm;
  rc = yml_load_model(a.model_path, &m, &err) ||
       (a.ps.method == TRAIN_LORA &&
        lora_apply(&m, a.ps.lora_rank, a.ps.lora_alpha, a.ps.lora_targets, &err)) ||
       ad_build_backward(&m, &err) || plan_compute(&m, &a.ps, &pm, &err);
  if (rc) fprintf(stderr, "lisa: %s\n", err.msg);
  else if (a.json) print_json(&a, &m, &pm);
  else print_human(&a, &m, &pm);
  ir_model_free(&m);
  return rc ? 1 : 0;
}
