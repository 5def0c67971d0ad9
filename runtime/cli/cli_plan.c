/* cli_plan.c: `lisa plan`, the memory a run needs before it runs. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "autodiff.h"
#include "cli.h"
#include "cli_opts.h"
#include "lora.h"
#include "model_source.h"
#include "model_yaml.h"
#include "memory_plan.h"
#include "train.h"

typedef struct {
  const char *model_path;
  memory_plan_settings ps;
  double device_gib; /* 0: not asked */
  int json;
  int ranks;         /* --ranks: data-parallel ranks, each at --batch */
} plan_args;

#define AT(field) offsetof(plan_args, field)

static const char *const on_off[] = {"on", "off", NULL};
static const int off_on[] = {0, 1}; /* stored as "frozen" */

static const cliopt plan_opts[] = {
    {"--method", CLIOPT_ENUM, AT(ps.method), .names = cliopt_method_names, .help = "(ft)"},
    {"--lora-rank", CLIOPT_INT, AT(ps.lora_rank), 1, 1 << 16, .meta = "R",
     .help = "LoRA: adapter rank (8)"},
    {"--lora-targets", CLIOPT_STRING, AT(ps.lora_targets), .meta = "K,...",
     .help = "LoRA: block linear weights to adapt (all)"},
    {"--gamma", CLIOPT_INT, AT(ps.gamma), 0, 1 << 20, .meta = "G",
     .help = "LISA: middle blocks trained at once (2)"},
    {"--train-embed", CLIOPT_ENUM, AT(ps.frozen_embed), .names = on_off, .values = off_on,
     .help = "LISA: off: the embedding holds no gradient or moments (on)"},
    {"--train-head", CLIOPT_ENUM, AT(ps.frozen_head), .names = on_off, .values = off_on,
     .help = "LISA: off: nor the head (on; a tied head keeps the table's)"},
    {"--batch", CLIOPT_INT, AT(ps.batch), 1, 1 << 24, .meta = "B --seq T",
     .help = "(1, 1024: the paper's setting)"},
    {"--seq", CLIOPT_INT, AT(ps.seq), 1, 1 << 24, .help = NULL /* with --batch */},
    {"--dtype", CLIOPT_ENUM, AT(ps.precision), .names = cliopt_dtype_names,
     .values = cliopt_dtype_values, .meta = "P",
     .help = "fp32: what the CPU backend allocates (default); the device\n"
             "trainer's arena for:\n"
             "bf16 (= bf16-mixed): bf16 weights, fp32 grads, master and moments;\n"
             "bf16-true: all bf16, no master copy (the paper's setting)"},
    {"--device-mem", CLIOPT_DOUBLE, AT(device_gib), 0, 1e9, .meta = "GIB",
     .help = "say whether the total fits in this much memory"},
    {"--zero", CLIOPT_INT, AT(ps.zero), 0, 1, .meta = "1",
     .help = "with --ranks: each rank keeps its share of the moments (0)"},
    {"--ranks", CLIOPT_INT, AT(ranks), 1, 1 << 20, .meta = "N",
     .help = "data parallel (mpirun -np N): every rank holds the above at\n"
             "--batch; the gradient bytes a step sums over ranks (1)"},
    {"--json", CLIOPT_FLAG, AT(json), .help = "one JSON object: total_bytes, breakdown, fits"},
};

static const cliopt_cmd plan_cmd = {"lisa plan", "usage: lisa plan MODEL.yaml [options]\n", 20,
                                    plan_opts, sizeof plan_opts / sizeof plan_opts[0]};

/* 0 to plan, else -1 with the exit status (0 after --help). */
static int parse_plan_args(int argc, char **argv, plan_args *a, int *exit_status) {
  memset(a, 0, sizeof *a);
  a->ps = (memory_plan_settings){.method = TRAIN_FT, .gamma = 2, .lora_rank = 8, .lora_alpha = 16,
                          .batch = 1, .seq = 1024};
  a->ranks = 1;
  a->ps.ranks = 1;
  cliopt_result r;
  lt_error err;
  int rc = cliopt_parse(&plan_cmd, argc, argv, a, &r, &err);
  a->model_path = r.positional;
  a->ps.ranks = a->ranks;
  if (rc) *exit_status = cliopt_finish(&plan_cmd, rc, &err);
  else if (!a->model_path) *exit_status = cliopt_fail_usage(&plan_cmd, "missing MODEL.yaml");
  else if (a->ps.zero && a->ranks < 2) *exit_status = cliopt_fail_usage(&plan_cmd, "--zero 1 needs --ranks N > 1");
  else return 0;
  return -1;
}

/* Data parallel: what each step sums over ranks (runtime/train: the
 * gradients of what trains and the loss), and what a ring moves in and
 * out of each rank: an all-reduce 2 (N - 1) / N of its bytes. --zero 1 on
 * the CPU reduce-scatters the gradients ((N - 1) / N) and all-reduces the
 * loss and the norm's squares (a double per region per rank); on a device
 * the gradients are all-reduced (the norm kernel reads them all). Then
 * the weights that trained are gathered ((N - 1) / N). */
static int reduce_scatters(const plan_args *a) {
  return a->ps.zero && a->ps.precision == PRECISION_FP32; /* fp32: the CPU's plan */
}
static uint64_t scalars_bytes(const plan_args *a, const memory_breakdown *pm) {
  return 8 + (reduce_scatters(a) ? 8 * (uint64_t)pm->regions * (uint64_t)a->ranks : 0);
}
static uint64_t summed_bytes(const plan_args *a, const memory_breakdown *pm) {
  return pm->summed_grad_bytes + scalars_bytes(a, pm);
}
static uint64_t comm_bytes(const plan_args *a, const memory_breakdown *pm) {
  return summed_bytes(a, pm) + (a->ps.zero ? pm->gathered_bytes : 0);
}
static double ring_bytes(const plan_args *a, const memory_breakdown *pm) {
  const double share = (double)(a->ranks - 1) / a->ranks, grads = (double)pm->summed_grad_bytes;
  const double scalars = (double)scalars_bytes(a, pm);
  const double sums = reduce_scatters(a) ? share * grads + 2 * share * scalars : 2 * share * (grads + scalars);
  return sums + (a->ps.zero ? share * (double)pm->gathered_bytes : 0);
}

static void print_human(const plan_args *a, const ir_model *m, const memory_breakdown *pm) {
  const double gib = 1024.0 * 1024 * 1024;
  printf("%s: %s%s, batch %d, seq %d, %s (%s)\n", m->name, cliopt_method_names[a->ps.method],
         a->ps.method == TRAIN_LISA ? (a->ps.gamma ? " E+H+gamma" : " E+H") : "", a->ps.batch,
         a->ps.seq, precision_name(a->ps.precision),
         a->ps.precision == PRECISION_FP32 ? "CPU" : "GPU");
  if (a->ps.method == TRAIN_LISA) printf("  gamma %d of %d middle blocks\n", a->ps.gamma, m->n_layer);
  if (a->ps.method == TRAIN_LORA) printf("  rank %d\n", a->ps.lora_rank);
  for (int c = 0; c < MEMORY_NCATEGORIES; c++)
    printf("  %-16s %10.3f GiB\n", memory_category_name(c), pm->bytes[c] / gib);
  printf("  %-16s %10.3f GiB", "total", pm->total / gib);
  if (a->device_gib > 0)
    printf("   %s in %g GiB", pm->total <= a->device_gib * gib ? "fits" : "does not fit", a->device_gib);
  printf("\n");
  if (pm->host_bytes)
    printf("  %-16s %10.3f GiB   (at most: a tensor in hand to load and save, the batch; "
           "plus the data)\n", "host",
           pm->host_bytes / gib);
  if (a->ranks > 1)
    printf("  %d ranks, each as above%s (the run's batch: %d); a step %s %.3f GiB over the "
           "ranks%s (a ring moves %.3f GiB in and out of each)\n",
           a->ranks, a->ps.zero ? ", the optimizer its largest share" : "",
           a->ranks * a->ps.batch, reduce_scatters(a) ? "reduce-scatters" : "sums",
           summed_bytes(a, pm) / gib,
           a->ps.zero ? ", then gathers the weights that trained" : "", ring_bytes(a, pm) / gib);
}

static void print_json(const plan_args *a, const ir_model *m, const memory_breakdown *pm) {
  printf("{\"model\":\"%s\",\"method\":\"%s\",\"gamma\":%d,\"batch\":%d,\"seq\":%d,\"dtype\":\"%s\","
         "\"total_bytes\":%llu,\"breakdown\":{",
         m->name, cliopt_method_names[a->ps.method], a->ps.method == TRAIN_LISA ? a->ps.gamma : m->n_layer,
         a->ps.batch, a->ps.seq, precision_name(a->ps.precision), (unsigned long long)pm->total);
  for (int c = 0; c < MEMORY_NCATEGORIES; c++)
    printf("%s\"%s\":%llu", c ? "," : "", memory_category_name(c), (unsigned long long)pm->bytes[c]);
  printf("}");
  if (pm->host_bytes) printf(",\"host_bytes\":%llu", (unsigned long long)pm->host_bytes);
  if (a->ranks > 1)
    printf(",\"ranks\":%d,\"zero\":%d,\"comm_bytes\":%llu,\"ring_bytes\":%.0f", a->ranks,
           a->ps.zero, (unsigned long long)comm_bytes(a, pm), ring_bytes(a, pm));
  if (a->device_gib > 0)
    printf(",\"device_mem_bytes\":%.0f,\"fits\":%s", a->device_gib * 1073741824.0,
           pm->total <= a->device_gib * 1073741824.0 ? "true" : "false");
  printf("}\n");
}

int cli_plan(int argc, char **argv) {
  plan_args a;
  int rc;
  if (parse_plan_args(argc, argv, &a, &rc)) return rc;
  ir_model m;
  lt_error err;
  memory_breakdown pm;
  char weights[1024];
  rc = model_open(a.model_path, &m, weights, sizeof weights, &err) ||
       (a.ps.method == TRAIN_LORA &&
        lora_apply(&m, a.ps.lora_rank, a.ps.lora_alpha, a.ps.lora_targets, &err)) ||
       ad_build_backward(&m, &err) || memory_plan_compute(&m, &a.ps, &pm, &err);
  if (rc) fprintf(stderr, "lisa: %s\n", err.msg);
  else if (a.json) print_json(&a, &m, &pm);
  else print_human(&a, &m, &pm);
  ir_model_free(&m);
  return rc ? 1 : 0;
}
