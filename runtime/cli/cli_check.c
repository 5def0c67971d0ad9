/* cli_check.c: `lisa check`, every generated path of a model run on a device
 * (the CUDA emulator by default, or a GPU) against the CPU backend, value by
 * value, before any training: a table (or JSON) and exit 1 on a failure;
 * and what lisa tune (cli_tune.c) shares with it (cli_check.h). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autodiff.h"
#include "cli.h"
#include "cli_check.h"
#include "atomic_file.h"
#include "cli_opts.h"
#include "data.h"
#include "dev_check.h"
#include "emu_device.h"
#include "gen_tune.h"
#include "json_out.h"
#include "lora.h"
#include "memory_plan.h"
#include "model_source.h"
#include "param_store.h"
#include "rng.h"
#include "sbuf.h"
#include "train.h"
#include "tune_db.h"
#include "weights.h"
#ifdef LISA_HAVE_GPU
#include "cuda_run.h"
#endif


#define AT(field) offsetof(check_args, field)

static const char *const check_devices[] = {"emu", "cuda", NULL};

static const cliopt check_opts[] = {
    {"--method", CLIOPT_ENUM, AT(method), .names = cliopt_method_names,
     .help = "lora: the adapted program; ft and lisa share one (ft)"},
    {"--lora-rank", CLIOPT_INT, AT(lora_rank), 1, 1 << 16, .meta = "R", .help = "(8)"},
    {"--batch", CLIOPT_INT, AT(batch), 1, 1 << 16, .meta = "B --seq T", .help = "(2, 8)"},
    {"--seq", CLIOPT_INT, AT(seq), 1, 1 << 20, .help = NULL /* with --batch */},
    {"--grad-accum", CLIOPT_INT, AT(grad_accum), 1, 1 << 16, .meta = "N",
     .help = "micro-batches per step, as lisa train (1)"},
    {"--steps", CLIOPT_INT, AT(steps), 0, DEV_CHECK_MAX_STEPS, .meta = "N",
     .help = "lisa check: then N training steps on the device against\n"
             "the CPU trainer, the optimizer path in them (3; 0: none)"},
    {"--dtype", CLIOPT_ENUM, AT(dtype), .names = cliopt_dtype_names,
     .values = cliopt_dtype_values, .meta = "P", .help = "fp32 (default), bf16 (= bf16-mixed) or bf16-true"},
    {"--weights", CLIOPT_STRING, AT(weights_path), .meta = "FILE",
     .help = "a checkpoint (default: a folder MODEL's own weights, else\n"
             "random ones, perturbed so norms and biases are not 1 and 0)"},
    {"--tune", CLIOPT_STRING, AT(tune_path), .meta = "FILE",
     .help = "kernel tunables, as lisa gen (default: the tuning\n"
             "database's for the device and program, as lisa train)"},
    {"--no-tune-db", CLIOPT_FLAG, AT(no_tune_db),
     .help = "not the tuning database's (lisa tune: nor store in it)"},
    {"--device", CLIOPT_ENUM, AT(device), .names = check_devices,
     .help = "emu: the CUDA emulator (default); cuda: the GPU, at 10x the\n"
             "bounds (other summation orders)"},
    {"--seed", CLIOPT_INT64, AT(seed), 0, INT64_MAX, .meta = "S", .help = "ids, targets, weights (1337)"},
    {"--kernels", CLIOPT_STRING, AT(kernels), .meta = "TEXT",
     .help = "lisa tune: the kernels whose name holds TEXT (all)"},
    {"--search", CLIOPT_STRING, AT(search_path), .meta = "FILE",
     .help = "lisa tune: a Lua file returning function(space, measure)\n"
             "that chooses the variants to measure (all of them)"},
    {"--budget", CLIOPT_DOUBLE, AT(budget), 0, 1e9, .lo_open = 1, .meta = "SECONDS",
     .help = "lisa tune: per kernel, no new variant after this long"},
    {"--no-prune", CLIOPT_FLAG, AT(no_prune),
     .help = "lisa tune: check variants that cannot launch or that\n"
             "spill registers where the default does not, too"},
    {"--report", CLIOPT_FLAG, AT(report),
     .help = "lisa tune: the database's winners for the program\n"
             "against the defaults, without tuning"},
    {"--json", CLIOPT_FLAG, AT(json), .help = "one JSON object: a row per value (variant), the failures"},
};

static const cliopt_cmd check_cmd = {"lisa check", "usage: lisa check MODEL [options]\n", 22,
                                     check_opts, sizeof check_opts / sizeof check_opts[0]};
static const cliopt_cmd tune_cmd = {"lisa tune", "usage: lisa tune MODEL [options]\n", 22, check_opts,
                                    sizeof check_opts / sizeof check_opts[0]};

int check_parse_args(int tune, int argc, char **argv, check_args *a, int *exit_status) {
  const cliopt_cmd *cmd = tune ? &tune_cmd : &check_cmd;
  memset(a, 0, sizeof *a);
  a->method = TRAIN_FT, a->lora_rank = 8, a->batch = 2, a->seq = 8, a->seed = 1337;
  a->grad_accum = 1, a->steps = tune ? 0 : 3;
  a->dtype = PRECISION_FP32;
  cliopt_result r;
  lt_error err;
  int rc = cliopt_parse(cmd, argc, argv, a, &r, &err);
  a->model_path = r.positional;
  if (rc) *exit_status = cliopt_finish(cmd, rc, &err);
  else if (!a->model_path) *exit_status = cliopt_fail_usage(cmd, "missing MODEL");
  else if (tune && a->steps)
    *exit_status = cliopt_fail_usage(cmd, "--steps is lisa check's");
  else if (!tune && (a->kernels || a->report || a->search_path || a->budget > 0 || a->no_prune))
    *exit_status = cliopt_fail_usage(cmd, "%s is lisa tune's",
                                     a->report ? "--report" : a->kernels ? "--kernels"
                                     : a->search_path ? "--search"
                                     : a->no_prune ? "--no-prune" : "--budget");
  else return 0;
  return -1;
}

/* The device: emu, or the GPU; *slack: the bounds' factor. */
int check_open_device(const check_args *a, dev_provider *p, char *name, size_t cap, double *slack,
                       lt_error *err) {
  *slack = 1;
  if (a->device == 0) return emu_provider_open(p, name, cap, err);
#ifdef LISA_HAVE_GPU
  *slack = 10;
  return cuda_provider_open(p, 0, name, cap, err);
#else
  return lt_fail(err, "--device cuda: this build has no CUDA support");
#endif
}

/* Weights from a file, else random ones perturbed (tensors only: pads stay
 * zero) so norms and biases are not trivially 1 and 0; ids and targets
 * drawn, every fifth target ignored as a loss mask leaves it. */
static int fill_state(const check_args *a, const char *weights, ms_state *s, lt_error *err) {
  const ir_model *m = s->ir;
  if (weights && weights[0]) {
    if (wt_load(s, weights, NULL, 0, err)) return -1;
  } else {
    wt_init_random(s, (uint64_t)a->seed);
    int64_t i = 0;
    for (int p = 0; p < m->n_params; p++)
      for (int l = 0; l < ps_param_layers(m, p); l++) {
        float *w = ms_param(s, p, l);
        for (int64_t j = 0; j < ir_param_numel(&m->params[p]); j++, i++) w[j] += 0.05f * sinf((float)i);
      }
  }
  rng_state r;
  rng_seed(&r, (uint64_t)a->seed + 1);
  for (int n = 0; n < s->N; n++) {
    s->ids[n] = (int32_t)rng_below(&r, (uint64_t)m->vocab_size);
    s->targets[n] = n % 5 == 2 ? -1 : (int32_t)rng_below(&r, (uint64_t)m->vocab_size);
  }
  return 0;
}

static void print_table(const dev_check_report *r) {
  printf("%-16s %4s %-3s %-28s %11s %11s %9s\n", "path", "inst", "", "value", "max abs", "nmse",
         "limit");
  for (int i = 0; i < r->n; i++) {
    const dev_check_row *w = &r->rows[i];
    printf("%-16s %4d %-3s %-28s %11.3e %11.3e %9.1e  %s\n", w->path, w->inst,
           w->backward ? "bwd" : "fwd", w->value, w->max_abs, w->nmse, w->limit,
           w->info ? "(shown, not judged)" : w->pass ? "ok" : "FAIL");
  }
}

static void print_json(const check_args *a, const char *device, const char *tuned,
                       const dev_check_report *r) {
  printf("{\"model\":");
  json_write_string(stdout, a->model_path);
  printf(",\"device\":");
  json_write_string(stdout, device);
  printf(",\"tuned\":");
  json_write_string(stdout, tuned);
  printf(",\"dtype\":\"%s\",\"batch\":%d,\"seq\":%d,\"rows\":[", precision_name(a->dtype), a->batch,
         a->seq);
  for (int i = 0; i < r->n; i++) {
    const dev_check_row *w = &r->rows[i];
    printf("%s{\"path\":\"%s\",\"inst\":%d,\"pass\":\"%s\",\"value\":", i ? "," : "", w->path,
           w->inst, w->backward ? "backward" : "forward");
    json_write_string(stdout, w->value);
    printf(",\"max_abs\":%.6g,\"nmse\":%.6g,\"limit\":%.3g,\"ok\":%s,\"judged\":%s}",
           isfinite(w->max_abs) ? w->max_abs : -1, isfinite(w->nmse) ? w->nmse : -1, w->limit,
           w->pass ? "true" : "false", w->info ? "false" : "true");
  }
  printf("],\"checked\":%d,\"failed\":%d}\n", r->n, r->failed);
}

/* The program's settings: the arguments' shape and precision, the device's
 * SMs and tensor cores. */
gen_config check_config_of(const check_args *a, const unsigned char *trains,
                            const gen_tuning *tuning, const dev_provider *p) {
  return dev_program_config(p, a->batch, a->seq, a->grad_accum, a->dtype, 0, trains, tuning);
}

/* The program for the model with `tuning`, as the device p builds it, and
 * the CPU state beside it, checked into rep. *built: 0 when the generator
 * or the device refused the program (err says why). */
int check_verify(const check_args *a, ir_model *m, const char *weights,
                  const unsigned char *trains, const gen_tuning *tuning, const dev_provider *p,
                  const dev_check_options *o, dev_check_report *rep, int *built, lt_error *err) {
  gen_config cfg = check_config_of(a, trains, tuning, p);
  gen_program prog;
  ms_state s;
  unsigned unfused;
  *built = 0;
  if (p->build(p->ctx, m, &cfg, &prog, &unfused, err)) return -1;
  *built = 1;
  int rc = ms_create_trains(&s, m, a->batch, a->seq, m->n_layer, 0, trains, err);
  if (rc == 0) {
    dt_device dev = p->iface(p->ctx);
    rc = fill_state(a, weights, &s, err) || dev_check_program(&prog, &s, &dev, o, rep, err) ? -1 : 0;
    ms_free(&s);
  }
  if (p->unload) p->unload(p->ctx);
  gen_free(&prog);
  return rc;
}

/* MODEL opened, LoRA applied where asked, backward built; on failure m is
 * freed and err says why. */
int check_load_model(const check_args *a, ir_model *m, char *folder, size_t cap, lt_error *err) {
  if (model_open(a->model_path, m, folder, cap, err)) return -1;
  if ((a->method == TRAIN_LORA && lora_apply(m, a->lora_rank, 2.0 * a->lora_rank, NULL, err)) ||
      ad_build_backward(m, err)) {
    ir_model_free(m);
    return -1;
  }
  return 0;
}

/* What trains: the adapters for LoRA, else everything. */
unsigned char *check_trains_of(const check_args *a, const ir_model *m) {
  unsigned char *trains = malloc((size_t)m->n_params + 1);
  if (!trains) return NULL;
  if (a->method == TRAIN_LORA) lora_trains(m, trains);
  else memset(trains, 1, (size_t)m->n_params + 1);
  return trains;
}

/* The tunables: --tune's, else the tuning database's for the device and
 * the program (as lisa train), its warnings on stderr; tuned: what the
 * database set ("" for none). */
static int load_tuning(const check_args *a, const ir_model *m, const unsigned char *trains,
                       const dev_provider *p, gen_tuning **out, char *tuned, size_t cap,
                       lt_error *err) {
  *out = NULL, tuned[0] = '\0';
  if (a->tune_path) return gen_tune_load(out, a->tune_path, err);
  if (a->no_tune_db) return 0;
  gen_config cfg = check_config_of(a, trains, NULL, p);
  return tdb_lookup(p->tune_device, m, &cfg, out, tuned, cap, stderr, err);
}

/* Random ids of m's vocabulary for the steps to draw batches from, in the
 * cache folder (the process's own file, removed after). */
static int steps_data(const check_args *a, const ir_model *m, char *path, size_t cap,
                      lt_error *err) {
  char dir[1024], name[64];
  snprintf(name, sizeof name, "check-tokens-%ld.bin", (long)getpid());
  if (atomic_file_cache_dir(dir, sizeof dir, err) || atomic_file_join(path, cap, dir, name, err))
    return -1;
  const int64_t n = 4 * ((int64_t)a->batch * a->seq + 1) > 4096 ? 4 * ((int64_t)a->batch * a->seq + 1) : 4096;
  uint32_t *ids = malloc(sizeof *ids * (size_t)n);
  if (!ids) return lt_fail(err, "out of memory");
  rng_state r;
  rng_seed(&r, (uint64_t)a->seed + 2);
  for (int64_t i = 0; i < n; i++) ids[i] = (uint32_t)rng_below(&r, (uint64_t)m->vocab_size);
  int rc = data_write(path, ids, n, err);
  free(ids);
  return rc;
}

/* --steps of lisa train's step on the device against the CPU trainer: the
 * optimizer path and what surrounds it (dev_check_steps); LISA trains one
 * block at a time, switching every 2 steps. */
static int check_steps(const check_args *a, const ir_model *m, const gen_tuning *tuning,
                       const dev_provider *p, double slack, dev_check_report *rep, lt_error *err) {
  char data[1200];
  if (steps_data(a, m, data, sizeof data, err)) return -1;
  train_config tc = {.model_path = a->model_path, .data_path = data,
                     .weights_path = a->weights_path, .method = a->method, .steps = a->steps,
                     .batch = a->batch, .seq = a->seq, .seed = (uint64_t)a->seed,
                     .opt = opt_defaults(), .train_embed = 1, .train_head = 1,
                     .lora_rank = a->lora_rank, .lora_alpha = 2.0 * a->lora_rank,
                     .grad_accum = a->grad_accum};
  tc.opt.lr = 3e-3f; /* large enough that a few steps move every weight */
  tc.opt.grad_clip = 1.0f;
  /* A gradient that is zero but for rounding (GPT-2's and Qwen2's key bias:
   * softmax ignores it) would move its weights by lr either way with eps
   * 1e-8, on each side differently; 1e-6 leaves it still and real
   * gradients (1e-4 and up) as they are. */
  tc.opt.eps = 1e-6f;
  tc.lisa.mode = LISA_SAMPLE_UNIFORM, tc.lisa.gamma = 1, tc.lisa.interval = 2;
  int rc = dev_check_steps(&tc, a->dtype, tuning, p, slack, rep, err);
  unlink(data);
  return rc;
}

static int check(const check_args *a, ir_model *m, const char *weights, dev_check_report *rep,
                 char *device, size_t cap, char *tuned, size_t tuned_cap, lt_error *err) {
  unsigned char *trains = check_trains_of(a, m);
  gen_tuning *tuning = NULL;
  dev_provider p = {0};
  double slack;
  int built, rc = -1;
  if (!trains) return lt_fail(err, "out of memory");
  if (check_open_device(a, &p, device, cap, &slack, err) ||
      load_tuning(a, m, trains, &p, &tuning, tuned, tuned_cap, err))
    goto out;
  dev_check_options o = {slack, NULL, 0};
  rc = check_verify(a, m, weights, trains, tuning, &p, &o, rep, &built, err);
  if (rc == 0 && a->steps) rc = check_steps(a, m, tuning, &p, slack, rep, err);
out:
  if (p.close) p.close(p.ctx);
  gen_tune_free(tuning);
  free(trains);
  return rc;
}

int cli_check(int argc, char **argv) {
  check_args a;
  int rc;
  if (check_parse_args(0, argc, argv, &a, &rc)) return rc;
  ir_model m;
  lt_error err = {{0}};
  char folder[1024], device[256] = "", tuned[1024] = "";
  dev_check_report rep = {0};
  if (check_load_model(&a, &m, folder, sizeof folder, &err)) {
    fprintf(stderr, "lisa check: %s\n", err.msg);
    return 1;
  }
  const char *weights = a.weights_path ? a.weights_path : folder;
  rc = check(&a, &m, weights, &rep, device, sizeof device, tuned, sizeof tuned, &err);
  if (rc) fprintf(stderr, "lisa check: %s\n", err.msg);
  else if (a.json) print_json(&a, device, tuned, &rep);
  else {
    if (tuned[0]) printf("tunables from the tuning database: %s\n", tuned);
    print_table(&rep);
    printf("%s on %s: %d values checked, %d failed\n", m.name, device, rep.n, rep.failed);
  }
  int failed = rc ? 1 : rep.failed > 0;
  dev_check_report_free(&rep);
  ir_model_free(&m);
  return failed;
}
