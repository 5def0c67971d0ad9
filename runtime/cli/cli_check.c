/* cli_check.c: `lisa check`, every generated path of a model run on a device
 * (the CUDA emulator by default, or a GPU) against the CPU backend, value by
 * value, before any training: a table (or JSON) and exit 1 on a failure;
 * and `lisa tune`, every variant of the kernels' tunables checked so. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "cli.h"
#include "cli_opts.h"
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

typedef struct {
  const char *model_path, *weights_path, *tune_path, *kernels;
  int method, lora_rank, batch, seq, grad_accum, dtype, device, json, no_tune_db, report;
  int64_t seed;
} check_args;

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
    {"--report", CLIOPT_FLAG, AT(report),
     .help = "lisa tune: the database's winners for the program\n"
             "against the defaults, without tuning"},
    {"--json", CLIOPT_FLAG, AT(json), .help = "one JSON object: a row per value (variant), the failures"},
};

static const cliopt_cmd check_cmd = {"lisa check", "usage: lisa check MODEL [options]\n", 22,
                                     check_opts, sizeof check_opts / sizeof check_opts[0]};
static const cliopt_cmd tune_cmd = {"lisa tune", "usage: lisa tune MODEL [options]\n", 22, check_opts,
                                    sizeof check_opts / sizeof check_opts[0]};

static int parse_args(const cliopt_cmd *cmd, int argc, char **argv, check_args *a,
                      int *exit_status) {
  memset(a, 0, sizeof *a);
  a->method = TRAIN_FT, a->lora_rank = 8, a->batch = 2, a->seq = 8, a->seed = 1337;
  a->grad_accum = 1;
  a->dtype = PRECISION_FP32;
  cliopt_result r;
  lt_error err;
  int rc = cliopt_parse(cmd, argc, argv, a, &r, &err);
  a->model_path = r.positional;
  if (rc) *exit_status = cliopt_finish(cmd, rc, &err);
  else if (!a->model_path) *exit_status = cliopt_fail_usage(cmd, "missing MODEL");
  else if ((a->kernels || a->report) && cmd == &check_cmd)
    *exit_status = cliopt_fail_usage(cmd, "%s is lisa tune's", a->report ? "--report" : "--kernels");
  else return 0;
  return -1;
}

/* The device: emu, or the GPU; *slack: the bounds' factor. */
static int open_device(const check_args *a, dev_provider *p, char *name, size_t cap, double *slack,
                       lt_error *err) {
  *slack = 1;
  if (a->device == 0) return emu_provider_open(p, name, cap, err);
#ifdef LISA_HAVE_GPU
  *slack = 10;
  return cuda_provider_open(p, name, cap, err);
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
           w->pass ? "ok" : "FAIL");
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
    printf(",\"max_abs\":%.6g,\"nmse\":%.6g,\"limit\":%.3g,\"ok\":%s}", isfinite(w->max_abs) ? w->max_abs : -1,
           isfinite(w->nmse) ? w->nmse : -1, w->limit, w->pass ? "true" : "false");
  }
  printf("],\"checked\":%d,\"failed\":%d}\n", r->n, r->failed);
}

/* The program's settings: the arguments' shape and precision, the device's
 * SMs and tensor cores. */
static gen_config config_of(const check_args *a, const unsigned char *trains,
                            const gen_tuning *tuning, const dev_provider *p) {
  gen_config cfg = {.B = a->batch, .T = a->seq, .grad_accum = a->grad_accum, .trains = trains,
                    .tuning = tuning, .sms = p->sms, .no_mma = p->no_mma};
  precision_dtypes(a->dtype, &cfg.dtype, &cfg.grad_dtype);
  return cfg;
}

/* The program for the model with `tuning`, as the device p builds it, and
 * the CPU state beside it, checked into rep. *built: 0 when the generator
 * or the device refused the program (err says why). */
static int verify(const check_args *a, ir_model *m, const char *weights,
                  const unsigned char *trains, const gen_tuning *tuning, const dev_provider *p,
                  const dev_check_options *o, dev_check_report *rep, int *built, lt_error *err) {
  gen_config cfg = config_of(a, trains, tuning, p);
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
static int load_model(const check_args *a, ir_model *m, char *folder, size_t cap, lt_error *err) {
  if (model_open(a->model_path, m, folder, cap, err)) return -1;
  if ((a->method == TRAIN_LORA && lora_apply(m, a->lora_rank, 2.0 * a->lora_rank, NULL, err)) ||
      ad_build_backward(m, err)) {
    ir_model_free(m);
    return -1;
  }
  return 0;
}

/* What trains: the adapters for LoRA, else everything. */
static unsigned char *trains_of(const check_args *a, const ir_model *m) {
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
  gen_config cfg = config_of(a, trains, NULL, p);
  sbuf applied = {0}, warnings = {0};
  int rc = tdb_lookup(p->tune_device, m, &cfg, out, &applied, &warnings, err);
  tdb_print_warnings(stderr, sb_str(&warnings));
  snprintf(tuned, cap, "%s", sb_str(&applied));
  sb_free(&applied), sb_free(&warnings);
  return rc;
}

static int check(const check_args *a, ir_model *m, const char *weights, dev_check_report *rep,
                 char *device, size_t cap, char *tuned, size_t tuned_cap, lt_error *err) {
  unsigned char *trains = trains_of(a, m);
  gen_tuning *tuning = NULL;
  dev_provider p = {0};
  double slack;
  int built, rc = -1;
  if (!trains) return lt_fail(err, "out of memory");
  if (open_device(a, &p, device, cap, &slack, err) ||
      load_tuning(a, m, trains, &p, &tuning, tuned, tuned_cap, err))
    goto out;
  dev_check_options o = {slack, NULL, 0};
  rc = verify(a, m, weights, trains, tuning, &p, &o, rep, &built, err);
out:
  if (p.close) p.close(p.ctx);
  gen_tune_free(tuning);
  free(trains);
  return rc;
}

int cli_check(int argc, char **argv) {
  check_args a;
  int rc;
  if (parse_args(&check_cmd, argc, argv, &a, &rc)) return rc;
  ir_model m;
  lt_error err = {{0}};
  char folder[1024], device[256] = "", tuned[1024] = "";
  dev_check_report rep = {0};
  if (load_model(&a, &m, folder, sizeof folder, &err)) {
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

/* ---- lisa tune -------------------------------------------------------------- */

/* Whether prog's section paths launch the tunable kernel `name` (the
 * optimizer path's are not checked by dev_check, so not tuned here). */
static int launches(const gen_program *prog, const char *name) {
  for (int i = 0; i < prog->n_paths; i++)
    for (int k = 0; strcmp(prog->paths[i].name, "optimizer") && k < prog->paths[i].n_steps; k++)
      if (prog->paths[i].steps[k].kind == GEN_STEP_KERNEL &&
          dev_check_is_kernel(prog->paths[i].steps[k].kernel, name))
        return 1;
  return 0;
}

typedef struct {
  char kernel[64], variant[160];
  int is_default, built, failed, checked;
  double ms; /* the kernel's time over the checked passes (dev_check_options) */
  char why[200];
  tdb_entry entry; /* its kernel and values, as the database would hold them */
} tune_row;

/* One variant of kernel k: the whole table t (the embedded one, or --tune's
 * over it) as Lua, kernel k's params at idx[] of their spaces; row gets its
 * name and whether it is t's own setting. */
static void variant_text(const gen_tuning *t, int k, const int *idx, tune_row *row, sbuf *lua) {
  row->variant[0] = '\0';
  row->is_default = 1;
  snprintf(row->entry.kernel, sizeof row->entry.kernel, "%s", gen_tune_kernel(t, k));
  sb_puts(lua, "return {");
  for (int q = 0; q < gen_tune_n_kernels(t); q++) {
    sb_printf(lua, "%s = {", gen_tune_kernel(t, q));
    for (int j = 0, n; j < gen_tune_n_params(t, q); j++) {
      int value;
      const int *space;
      const char *param = gen_tune_param(t, q, j, &value, &space, &n);
      const int v = q == k ? space[idx[j]] : value;
      sb_printf(lua, "%s = %d, ", param, v);
      if (q != k) continue;
      if (j < TDB_MAX_VALUES) {
        snprintf(row->entry.names[j], sizeof row->entry.names[j], "%s", param);
        row->entry.values[j] = v, row->entry.n_values = j + 1;
      }
      size_t len = strlen(row->variant);
      snprintf(row->variant + len, sizeof row->variant - len, "%s%s=%d", j ? " " : "", param, v);
      row->is_default &= v == value;
    }
    sb_puts(lua, "}, ");
  }
  sb_puts(lua, "}");
}

/* The next point of the cross product (an odometer); 0 after the last. */
static int next_variant(const gen_tuning *t, int k, int *idx) {
  for (int j = gen_tune_n_params(t, k) - 1; j >= 0; j--) {
    int value, n;
    const int *space;
    gen_tune_param(t, k, j, &value, &space, &n);
    if (++idx[j] < n) return 1;
    idx[j] = 0;
  }
  return 0;
}

typedef struct {
  const check_args *a;
  ir_model *m;
  const char *weights;
  const unsigned char *trains;
  const dev_provider *p;
  double slack;
  tune_row *rows;
  int n, cap;
} tuner;

/* Launches timed per step of the kernel (the median counts). */
#define TUNE_REPEATS 5

/* Every variant of kernel k checked into t's rows. */
static int tune_kernel(tuner *t, const gen_tuning *table, int k, lt_error *err) {
  int idx[TDB_MAX_VALUES] = {0};
  if (gen_tune_n_params(table, k) > TDB_MAX_VALUES)
    return lt_fail(err, "%s: too many tunables", gen_tune_kernel(table, k));
  do {
    if (t->n == t->cap) {
      tune_row *rows = realloc(t->rows, sizeof *rows * (size_t)(t->cap = t->cap ? 2 * t->cap : 32));
      if (!rows) return lt_fail(err, "out of memory");
      t->rows = rows;
    }
    tune_row *row = &t->rows[t->n++];
    memset(row, 0, sizeof *row);
    snprintf(row->kernel, sizeof row->kernel, "%s", gen_tune_kernel(table, k));
    sbuf lua = {0};
    variant_text(table, k, idx, row, &lua);
    gen_tuning *v = NULL;
    dev_check_report rep = {0};
    lt_error why = {{0}};
    dev_check_options o = {t->slack, row->kernel, TUNE_REPEATS};
    if (gen_tune_load_text(&v, sb_str(&lua), "lisa tune", &why) == 0 &&
        verify(t->a, t->m, t->weights, t->trains, v, t->p, &o, &rep, &row->built, &why) == 0) {
      row->failed = rep.failed, row->checked = rep.n, row->ms = rep.kernel_ms;
    } else {
      snprintf(row->why, sizeof row->why, "%.199s", why.msg);
      row->failed += row->built; /* built, then broke: as wrong as a wrong value */
    }
    dev_check_report_free(&rep);
    gen_tune_free(v);
    sb_free(&lua);
  } while (next_variant(table, k, idx));
  return 0;
}

static const char *tune_status(const tune_row *r) {
  return !r->built ? "rejected" : r->failed ? "WRONG" : "ok";
}

/* The fastest ok variant of the kernel whose rows start at `from`, and its
 * default's row; *end: past its rows. */
static void best_of(const tuner *t, int from, int *end, int *best, int *dflt) {
  *best = *dflt = -1;
  int i = from;
  for (; i < t->n && !strcmp(t->rows[i].kernel, t->rows[from].kernel); i++) {
    const tune_row *r = &t->rows[i];
    if (r->is_default) *dflt = i;
    if (r->built && !r->failed && (*best < 0 || r->ms < t->rows[*best].ms)) *best = i;
  }
  *end = i;
}

static void print_tune_json(const tuner *t, const int counts[3]) {
  printf("{\"variants\":[");
  for (int i = 0; i < t->n; i++) {
    const tune_row *r = &t->rows[i];
    printf("%s{\"kernel\":\"%s\",\"variant\":\"%s\",\"default\":%s,\"status\":\"%s\",\"checked\":%d,"
           "\"failed\":%d,\"ms\":%.6g,\"why\":", i ? "," : "", r->kernel, r->variant,
           r->is_default ? "true" : "false", tune_status(r), r->checked, r->failed, r->ms);
    json_write_string(stdout, r->why);
    printf("}");
  }
  printf("],\"ok\":%d,\"wrong\":%d,\"rejected\":%d}\n", counts[0], counts[1], counts[2]);
}

static void print_tune(const tuner *t, const char *device, int json) {
  int counts[3] = {0};
  for (int i = 0; i < t->n; i++) counts[!t->rows[i].built ? 2 : t->rows[i].failed ? 1 : 0]++;
  if (json) return print_tune_json(t, counts);
  printf("%-28s %-32s %-8s %10s\n", "kernel", "variant", "", "ms");
  for (int from = 0, end, best, dflt; from < t->n; from = end) {
    best_of(t, from, &end, &best, &dflt);
    for (int i = from; i < end; i++) {
      const tune_row *r = &t->rows[i];
      printf("%-28s %-32s %-8s %10.4f %s%s%s\n", r->kernel, r->variant, tune_status(r), r->ms,
             r->is_default ? "(default) " : "", i == best ? "(fastest) " : "", r->why);
    }
    if (best >= 0 && dflt >= 0 && t->rows[best].ms > 0)
      printf("%s: fastest %s, %.2fx the default's speed\n", t->rows[from].kernel,
             t->rows[best].variant, t->rows[dflt].ms / t->rows[best].ms);
  }
  printf("%d variants: %d ok, %d wrong, %d rejected; times on %s%s\n", t->n, counts[0], counts[1],
         counts[2], device, t->slack == 1 ? " (an emulator's, not a GPU's)" : "");
}

/* Each kernel's fastest variant that checked ok into the device's tuning
 * database at `program`; a wrong or rejected variant is never stored. */
static int store_winners(const tuner *t, const char *device, const char *program, int quiet,
                         lt_error *err) {
  tune_db db;
  int stored = 0;
  if (tdb_open(&db, device, err)) return -1;
  tdb_print_warnings(stderr, sb_str(&db.warnings));
  for (int from = 0, end, best, dflt; from < t->n; from = end) {
    best_of(t, from, &end, &best, &dflt);
    if (best < 0) continue;
    tdb_entry e = t->rows[best].entry;
    snprintf(e.program, sizeof e.program, "%s", program);
    e.ms = t->rows[best].ms;
    e.default_ms = dflt >= 0 && t->rows[dflt].built && !t->rows[dflt].failed ? t->rows[dflt].ms : 0;
    e.variants = end - from;
    if (tdb_put(&db, &e, err)) return tdb_free(&db), -1;
    stored++;
  }
  int rc = stored ? tdb_save(&db, err) : 0;
  if (rc == 0 && !quiet)
    fprintf(stderr, "lisa tune: %d winner%s stored in %s\n", stored, stored == 1 ? "" : "s",
            db.path);
  tdb_free(&db);
  return rc;
}

/* --report: the database's entries for the program, winner against default. */
static int report(const char *device, const char *program, int json, lt_error *err) {
  tune_db db;
  if (tdb_open(&db, device, err)) return -1;
  tdb_print_warnings(stderr, sb_str(&db.warnings));
  int n = 0;
  if (json) printf("{\"device\":"), json_write_string(stdout, device), printf(",\"program\":"),
            json_write_string(stdout, program), printf(",\"entries\":[");
  else printf("%s\n%s\n%-28s %-32s %10s %10s %8s\n", device, program, "kernel", "winner", "ms",
              "default", "speed-up");
  for (int i = 0; i < db.n; i++) {
    const tdb_entry *e = &db.entries[i];
    if (strcmp(e->program, program)) continue;
    char values[200];
    tdb_values_text(e, values, sizeof values);
    const double up = e->ms > 0 && e->default_ms > 0 ? e->default_ms / e->ms : 0;
    if (json) {
      printf("%s{\"kernel\":\"%s\",\"values\":\"%s\",\"ms\":%.6g,\"default_ms\":%.6g,"
             "\"speedup\":%.4g,\"variants\":%d}", n ? "," : "", e->kernel, values, e->ms,
             e->default_ms, up, e->variants);
    } else
      printf("%-28s %-32s %10.4f %10.4f %7.2fx\n", e->kernel, values, e->ms, e->default_ms, up);
    n++;
  }
  if (json) printf("],\"others\":%d}\n", db.n - n);
  else printf("%d kernel%s tuned for this program; %d entries for other programs in %s\n", n,
              n == 1 ? "" : "s", db.n - n, db.path);
  tdb_free(&db);
  return 0;
}

/* Every variant of every kernel the program launches (--kernels: those
 * matching), then the winners stored. */
static int tune_all(tuner *t, gen_tuning *table, const gen_program *prog, const char *device,
                    const char *program, lt_error *err) {
  const check_args *a = t->a;
  for (int k = 0; k < gen_tune_n_kernels(table); k++) {
    const char *name = gen_tune_kernel(table, k);
    if ((!a->kernels || strstr(name, a->kernels)) && launches(prog, name) &&
        tune_kernel(t, table, k, err))
      return -1;
  }
  if (t->n == 0)
    return lt_fail(err, "no tunable kernel of %s%s%s", t->m->name,
                   a->kernels ? " matches " : "", a->kernels ? a->kernels : "");
  if (!a->json) printf("%s on %s\n", t->m->name, device);
  print_tune(t, device, a->json);
  return a->no_tune_db ? 0 : store_winners(t, t->p->tune_device, program, a->json, err);
}

int cli_tune(int argc, char **argv) {
  check_args a;
  int rc;
  if (parse_args(&tune_cmd, argc, argv, &a, &rc)) return rc;
  ir_model m;
  lt_error err = {{0}};
  char folder[1024], device[256], program[160];
  if (load_model(&a, &m, folder, sizeof folder, &err)) {
    fprintf(stderr, "lisa tune: %s\n", err.msg);
    return 1;
  }
  tuner t = {&a, &m, a.weights_path ? a.weights_path : folder, NULL, NULL, 1, NULL, 0, 0};
  unsigned char *trains = NULL;
  gen_tuning *table = NULL;
  dev_provider p = {0};
  gen_program prog;
  int have_prog = 0;
  rc = !(trains = trains_of(&a, &m)) ? lt_fail(&err, "out of memory")
       : gen_tune_load(&table, a.tune_path, &err) ||
               open_device(&a, &p, device, sizeof device, &t.slack, &err);
  gen_config cfg = config_of(&a, trains, table, &p);
  /* the database's key: the program with the default tunables */
  if (rc == 0) rc = tdb_signature(&m, &cfg, program, sizeof program, &err);
  if (rc == 0 && a.report) rc = report(p.tune_device, program, a.json, &err);
  else if (rc == 0) { /* the program says which kernels the model launches */
    rc = gen_build(&prog, &m, &cfg, &err);
    have_prog = rc == 0;
    t.trains = trains, t.p = &p;
    if (rc == 0) rc = tune_all(&t, table, &prog, device, program, &err);
  }
  if (rc) fprintf(stderr, "lisa tune: %s\n", err.msg);
  if (have_prog) gen_free(&prog);
  if (p.close) p.close(p.ctx);
  gen_tune_free(table);
  free(trains), free(t.rows);
  ir_model_free(&m);
  return rc ? 1 : 0;
}
