/* cli_tune.c: `lisa tune`, every variant of a kernel's tunables (the cross
 * product of its spaces in tuning.lua, or what a user's Lua search asks
 * for) built, checked against the CPU backend as lisa check does, and
 * timed alternately with the default (the default is timed again after
 * each variant, and the variant judged against the mean of the default's
 * times before and after it, so a device that drifts (clocks, heat) moves
 * both sides alike); each kernel's variant fastest against its default
 * that checked out goes into the device's tuning database (tune_db.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cli.h"
#include "cli_check.h"
#include "clock_ms.h"
#include "gen_tune.h"
#include "json_out.h"
#include "lua_sandbox.h"
#include "sbuf.h"
#include "tune_db.h"
#include "tune_prune.h"
#ifdef LISA_HAVE_NVRTC
#include "nvrtc_driver.h"
#endif

/* The smallest section path of prog that launches the tunable kernel
 * `name`, and its first such step; NULL when none does (the optimizer
 * path's kernels are not checked by dev_check, so not tuned here). */
static const gen_path *find_launch(const gen_program *prog, const char *name,
                                   const gen_step **step) {
  const gen_path *path = NULL;
  for (int i = 0; i < prog->n_paths; i++)
    for (int k = 0; prog->paths[i].section != IR_NSECTIONS && k < prog->paths[i].n_steps; k++) {
      const gen_step *s = &prog->paths[i].steps[k];
      if (s->kind == GEN_STEP_KERNEL && dev_check_is_kernel(s->kernel, name) &&
          (!path || prog->paths[i].n_steps < path->n_steps)) {
        path = &prog->paths[i], *step = s;
        break;
      }
    }
  return path;
}

typedef struct {
  char kernel[64], variant[160];
  int idx[TDB_MAX_VALUES]; /* the variant: its values' places in their spaces */
  int is_default, built, failed, checked;
  int pruned;     /* its compile statistics ruled it out (why says how) */
  int has_stats;  /* stats holds ptxas's report (NVRTC for the device's arch) */
  tp_stats stats;
  double ms; /* the kernel's time over the checked passes (dev_check_options) */
  double base_ms; /* the default's time around it (mean of the timings before and
                     after it); the default's own for the default; 0: not ok */
  char why[200];
  tdb_entry entry; /* its kernel and values, as the database would hold them */
} tune_row;

enum { ROW_OK, ROW_WRONG, ROW_REJECTED, ROW_PRUNED, ROW_NSTATES };
static const char *const row_states[] = {"ok", "WRONG", "rejected", "pruned"};
static const char *const row_states_json[] = {"ok", "wrong", "rejected", "pruned"};

static int row_state(const tune_row *r) {
  return r->pruned ? ROW_PRUNED : !r->built ? ROW_REJECTED : r->failed ? ROW_WRONG : ROW_OK;
}

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
      snprintf(row->entry.names[j], sizeof row->entry.names[j], "%s", param);
      row->entry.values[j] = v, row->entry.n_values = j + 1;
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

/* Kernel k's own setting in the table as places in its spaces. */
static void default_variant(const gen_tuning *t, int k, int *idx) {
  for (int j = 0; j < gen_tune_n_params(t, k); j++) {
    int value, n;
    const int *space;
    gen_tune_param(t, k, j, &value, &space, &n);
    for (idx[j] = 0; idx[j] < n - 1 && space[idx[j]] != value; idx[j]++) {}
  }
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
  int from;        /* the current kernel's first row */
  int dflt;        /* its default's row, -1 before it is measured */
  tp_limits limits;  /* the device's, for occupancy */
  int prune;         /* by compile statistics (not --no-prune; NVRTC here) */
  double deadline; /* lt_now_ms() past which the kernel's budget is spent; 0: none */
  double last_default_ms; /* the kernel's default, as last timed (0: not yet, or failed) */
  int default_timings;    /* the defaults timed, every kernel: 1 + one per ok variant */
  int out_of_budget; /* variants not measured for the budget, this kernel */
} tuner;

/* Launches timed per step of the kernel (the median counts). */
#define TUNE_REPEATS 5

enum { MEASURE_FAILED = -1, MEASURE_BUDGET = -2 };

/* The kernel's compile statistics in the program tuning v builds: ptxas's
 * report on the smallest section path that launches it, compiled by NVRTC
 * for the device's arch (cached by source). 1 when known, 0 when this build
 * has no NVRTC, -1 when the compile failed (err says why). */
static int compile_stats(tuner *t, const gen_tuning *v, const char *kernel, tp_stats *out,
                         lt_error *err) {
#ifndef LISA_HAVE_NVRTC
  (void)t, (void)v, (void)kernel, (void)out, (void)err;
  return 0;
#else
  gen_config cfg = check_config_of(t->a, t->trains, v, t->p);
  gen_program prog;
  if (gen_build(&prog, t->m, &cfg, err)) return -1;
  const gen_step *step = NULL;
  const gen_path *path = find_launch(&prog, kernel, &step);
  nv_options o = {.cache_dir = NULL};
  snprintf(o.arch, sizeof o.arch, "%s", t->p->arch);
  nv_result *r = calloc(1, sizeof *r); /* a 64 KiB log */
  int rc = !r ? lt_fail(err, "out of memory") : !path ? 0
           : nv_compile(path->name, sb_str(&path->source), &o, r, err) ? -1 : 0;
  nv_kernel_stats ks[64];
  const int n = rc == 0 && path ? nv_parse_stats(r->log, ks, 64) : 0;
  for (int i = 0; i < n && i < 64; i++) {
    if (strcmp(ks[i].name, step->kernel)) continue;
    *out = (tp_stats){.registers = ks[i].registers, .spill_bytes = ks[i].spill_stores,
                      .smem = ks[i].smem + (int)step->smem,
                      .threads = (int)(step->block[0] * step->block[1] * step->block[2])};
    tp_occupancy(out, &t->limits);
    rc = 1;
  }
  if (r) nv_result_free(r);
  free(r);
  gen_free(&prog);
  return rc;
#endif
}

/* Kernel k's default timed again (and checked: it is the same program):
 * its time into *ms, 0 where it did not run; -1 only when out of memory. */
static int time_default(tuner *t, const gen_tuning *table, int k, double *ms, lt_error *err) {
  tune_row scratch = {0};
  int idx[TDB_MAX_VALUES] = {0};
  default_variant(table, k, idx);
  snprintf(scratch.kernel, sizeof scratch.kernel, "%s", gen_tune_kernel(table, k));
  sbuf lua = {0};
  variant_text(table, k, idx, &scratch, &lua);
  gen_tuning *v = NULL;
  dev_check_report rep = {0};
  lt_error why = {{0}};
  dev_check_options o = {t->slack, scratch.kernel, TUNE_REPEATS};
  int built;
  *ms = !lua.failed && gen_tune_load_text(&v, sb_str(&lua), "lisa tune", &why) == 0 &&
                check_verify(t->a, t->m, t->weights, t->trains, v, t->p, &o, &rep, &built, &why) == 0 &&
                rep.failed == 0
            ? rep.kernel_ms : 0;
  t->default_timings++;
  dev_check_report_free(&rep);
  gen_tune_free(v);
  const int oom = lua.failed;
  sb_free(&lua);
  return oom ? lt_fail(err, "out of memory") : 0;
}

/* The row's base: the default's own time, or for an ok variant the mean of
 * the default's times before and after it (timed again now). */
static int alternate(tuner *t, const gen_tuning *table, int k, tune_row *row, lt_error *err) {
  if (row->is_default) {
    t->default_timings++;
    row->base_ms = t->last_default_ms = row_state(row) == ROW_OK ? row->ms : 0;
    return 0;
  }
  if (row_state(row) != ROW_OK || t->last_default_ms <= 0) return 0;
  double after;
  if (time_default(t, table, k, &after, err)) return -1;
  row->base_ms = after > 0 ? (t->last_default_ms + after) / 2 : t->last_default_ms;
  if (after > 0) t->last_default_ms = after;
  return 0;
}

/* The row of kernel k's variant idx[]: built, checked and timed now, or
 * before (a search may ask twice); MEASURE_BUDGET once the budget is spent,
 * MEASURE_FAILED when out of memory. */
static int measure(tuner *t, const gen_tuning *table, int k, const int *idx, lt_error *err) {
  const int np = gen_tune_n_params(table, k);
  for (int i = t->from; i < t->n; i++)
    if (!memcmp(t->rows[i].idx, idx, sizeof(int) * (size_t)np)) return i;
  if (t->deadline > 0 && lt_now_ms() > t->deadline) return t->out_of_budget++, MEASURE_BUDGET;
  if (t->n == t->cap) {
    tune_row *rows = realloc(t->rows, sizeof *rows * (size_t)(t->cap = t->cap ? 2 * t->cap : 32));
    if (!rows) return lt_fail(err, "out of memory"), MEASURE_FAILED;
    t->rows = rows;
  }
  tune_row *row = &t->rows[t->n];
  memset(row, 0, sizeof *row);
  memcpy(row->idx, idx, sizeof(int) * (size_t)np);
  snprintf(row->kernel, sizeof row->kernel, "%s", gen_tune_kernel(table, k));
  sbuf lua = {0};
  variant_text(table, k, idx, row, &lua);
  gen_tuning *v = NULL;
  dev_check_report rep = {0};
  lt_error why = {{0}};
  dev_check_options o = {t->slack, row->kernel, TUNE_REPEATS};
  int stats = gen_tune_load_text(&v, sb_str(&lua), "lisa tune", &why) ? -1
              : t->prune ? compile_stats(t, v, row->kernel, &row->stats, &why) : 0;
  row->has_stats = stats == 1;
  if (row->is_default) t->dflt = t->n;
  const char *pruned = stats == 1 && t->dflt >= 0 && !row->is_default
                           ? tp_prune_reason(&row->stats, &t->rows[t->dflt].stats, row->why,
                                             sizeof row->why)
                           : NULL;
  if (pruned) {
    row->pruned = row->built = 1;
  } else if (stats >= 0 &&
             check_verify(t->a, t->m, t->weights, t->trains, v, t->p, &o, &rep, &row->built, &why) == 0) {
    row->failed = rep.failed, row->checked = rep.n, row->ms = rep.kernel_ms;
  } else {
    snprintf(row->why, sizeof row->why, "%.199s", why.msg);
    row->failed += row->built; /* built, then broke: as wrong as a wrong value */
  }
  for (char *c = row->why; *c; c++) /* one line in the table */
    if (*c == '\n') *c = ' ';
  dev_check_report_free(&rep);
  gen_tune_free(v);
  const int oom = lua.failed;
  sb_free(&lua);
  if (oom || alternate(t, table, k, row, err)) return lt_fail(err, "out of memory"), MEASURE_FAILED;
  return t->n++;
}

/* The exhaustive search: the default first (the budget may end the rest),
 * then every point of the cross product. */
static int search_all(tuner *t, const gen_tuning *table, int k, lt_error *err) {
  int idx[TDB_MAX_VALUES] = {0};
  default_variant(table, k, idx);
  if (measure(t, table, k, idx, err) == MEASURE_FAILED) return -1;
  memset(idx, 0, sizeof idx);
  do {
    if (measure(t, table, k, idx, err) == MEASURE_FAILED) return -1;
  } while (next_variant(table, k, idx));
  return 0;
}

/* ---- a user's search in Lua (--search FILE) ------------------------------ */

typedef struct {
  tuner *t;
  const gen_tuning *table;
  int k;
  lt_error *err;
  int failed; /* measure failed (err says why): the search stops */
} search_job;

/* measure(point): point's values (the default for a tunable it leaves out)
 * as places in their spaces; a name the kernel lacks is the search's error,
 * a value outside its space an answer (nil, "not in the space: ..."). */
static int point_of(lua_State *L, const search_job *j, int *idx) {
  int np = gen_tune_n_params(j->table, j->k);
  default_variant(j->table, j->k, idx);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "(not a string)";
    int p = 0, isnum = 0, value, n;
    const int *space;
    while (p < np && strcmp(gen_tune_param(j->table, j->k, p, &value, &space, &n), key)) p++;
    if (p == np)
      return luaL_error(L, "measure: %s has no tunable '%s'", gen_tune_kernel(j->table, j->k), key);
    const lua_Integer v = lua_tointegerx(L, -1, &isnum);
    for (idx[p] = 0; isnum && idx[p] < n && space[idx[p]] != v; idx[p]++) {}
    if (!isnum || idx[p] == n) {
      const char *what = lua_pushfstring(L, "not in the space: %s = %s", key,
                                         luaL_tolstring(L, -1, NULL));
      lua_pushnil(L);
      lua_pushstring(L, what);
      return -1; /* nil and why at the top */
    }
    lua_pop(L, 1);
  }
  return 0;
}

static int lua_measure(lua_State *L) {
  search_job *j = lua_touserdata(L, lua_upvalueindex(1));
  int idx[TDB_MAX_VALUES];
  if (point_of(L, j, idx)) return 2;
  const int i = measure(j->t, j->table, j->k, idx, j->err);
  if (i == MEASURE_FAILED) return j->failed = 1, luaL_error(L, "%s", j->err->msg);
  lua_pushnil(L);
  if (i == MEASURE_BUDGET) return lua_pushstring(L, "budget"), 2;
  const tune_row *r = &j->t->rows[i];
  if (row_state(r) != ROW_OK) return lua_pushstring(L, row_states_json[row_state(r)]), 2;
  lua_pop(L, 1);
  /* its time as the default's first timing would see it: judged against the
   * default timed around it, as the winner is */
  const double first = j->t->dflt >= 0 ? j->t->rows[j->t->dflt].ms : 0;
  lua_pushnumber(L, first > 0 && r->base_ms > 0 ? r->ms * first / r->base_ms : r->ms);
  return 1;
}

/* space = {kernel = NAME, params = {P = {values...}, ...}, default = {P = v, ...}} */
static void push_space(lua_State *L, const gen_tuning *table, int k) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, gen_tune_kernel(table, k));
  lua_setfield(L, -2, "kernel");
  lua_newtable(L); /* params */
  lua_newtable(L); /* default */
  for (int p = 0; p < gen_tune_n_params(table, k); p++) {
    int value, n;
    const int *space;
    const char *name = gen_tune_param(table, k, p, &value, &space, &n);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) lua_pushinteger(L, space[i]), lua_rawseti(L, -2, i + 1);
    lua_setfield(L, -3, name);
    lua_pushinteger(L, value);
    lua_setfield(L, -2, name);
  }
  lua_setfield(L, -3, "default");
  lua_setfield(L, -2, "params");
}

/* --search FILE returns function(space, measure); it runs once per kernel.
 * The default is measured first so that the report has it. */
static int search_lua(tuner *t, const gen_tuning *table, int k, lt_error *err) {
  int idx[TDB_MAX_VALUES];
  default_variant(table, k, idx);
  if (measure(t, table, k, idx, err) == MEASURE_FAILED) return -1;
  lsb_box box = lsb_defaults(t->a->search_path);
  lua_State *L = lsb_new(&box, err);
  if (!L) return -1;
  search_job j = {t, table, k, err, 0};
  int rc = 0;
  if (lsb_load_file(L) != LUA_OK || lsb_pcall(L, 0, 1) != LUA_OK) rc = lsb_fail(L, "", err);
  else if (lua_type(L, -1) != LUA_TFUNCTION)
    rc = lt_fail(err, "%s: must return a function(space, measure), not a %s", t->a->search_path,
                 luaL_typename(L, -1));
  else {
    push_space(L, table, k);
    lua_pushlightuserdata(L, &j);
    lua_pushcclosure(L, lua_measure, 1);
    if (lsb_pcall(L, 2, 0) != LUA_OK) {
      if (j.failed) rc = -1; /* err holds measure's own failure */
      else rc = lsb_fail(L, "", err);
    }
  }
  lua_close(L);
  return rc;
}

/* Kernel k's variants into t's rows, by --search's strategy or all of them,
 * within --budget. */
static int tune_kernel(tuner *t, const gen_tuning *table, int k, lt_error *err) {
  if (gen_tune_n_params(table, k) > TDB_MAX_VALUES)
    return lt_fail(err, "%s: too many tunables", gen_tune_kernel(table, k));
  t->from = t->n, t->out_of_budget = 0, t->dflt = -1;
  t->deadline = t->a->budget > 0 ? lt_now_ms() + 1e3 * t->a->budget : 0;
  int rc = t->a->search_path ? search_lua(t, table, k, err) : search_all(t, table, k, err);
  if (rc == 0 && t->out_of_budget)
    fprintf(stderr, "lisa tune: %s: the budget of %g s ended the search after %d variants\n",
            gen_tune_kernel(table, k), t->a->budget, t->n - t->from);
  return rc;
}

/* The ok variant of the kernel whose rows start at `from` fastest against
 * the default timed around it, and its default's row; *end: past its rows. */
static void best_of(const tuner *t, int from, int *end, int *best, int *dflt) {
  *best = *dflt = -1;
  int i = from;
  for (; i < t->n && !strcmp(t->rows[i].kernel, t->rows[from].kernel); i++) {
    const tune_row *r = &t->rows[i];
    if (r->is_default) *dflt = i;
    if (row_state(r) == ROW_OK && r->base_ms > 0 &&
        (*best < 0 || r->ms / r->base_ms < t->rows[*best].ms / t->rows[*best].base_ms))
      *best = i;
  }
  *end = i;
}

static void print_tune_json(const tuner *t, const int counts[ROW_NSTATES]) {
  printf("{\"variants\":[");
  for (int i = 0; i < t->n; i++) {
    const tune_row *r = &t->rows[i];
    printf("%s{\"kernel\":\"%s\",\"variant\":\"%s\",\"default\":%s,\"status\":\"%s\",\"checked\":%d,"
           "\"failed\":%d,\"ms\":%.6g,\"default_ms\":%.6g,", i ? "," : "", r->kernel, r->variant,
           r->is_default ? "true" : "false", row_states_json[row_state(r)], r->checked, r->failed,
           r->ms, r->base_ms);
    if (r->has_stats)
      printf("\"registers\":%d,\"spill_bytes\":%d,\"smem\":%d,\"threads\":%d,\"occupancy\":%.4g,",
             r->stats.registers, r->stats.spill_bytes, r->stats.smem, r->stats.threads,
             r->stats.occupancy);
    printf("\"why\":");
    json_write_string(stdout, r->why);
    printf("}");
  }
  printf("],\"ok\":%d,\"wrong\":%d,\"rejected\":%d,\"pruned\":%d,\"default_timings\":%d}\n",
         counts[ROW_OK], counts[ROW_WRONG], counts[ROW_REJECTED], counts[ROW_PRUNED],
         t->default_timings);
}

static void print_row(const tune_row *r, int best) {
  char stats[32] = "     -     -    -";
  if (r->has_stats)
    snprintf(stats, sizeof stats, "%6d %5d %4.0f%%", r->stats.registers, r->stats.spill_bytes,
             100 * r->stats.occupancy);
  char against[16] = "       -";
  if (r->ms > 0 && r->base_ms > 0) snprintf(against, sizeof against, "%7.2fx", r->base_ms / r->ms);
  printf("%-28s %-32s %-8s %s %10.4f %s %s%s%s\n", r->kernel, r->variant, row_states[row_state(r)],
         stats, r->ms, against, r->is_default ? "(default) " : "", best ? "(fastest) " : "", r->why);
}

static void print_tune(const tuner *t, const char *device, int json) {
  int counts[ROW_NSTATES] = {0};
  for (int i = 0; i < t->n; i++) counts[row_state(&t->rows[i])]++;
  if (json) return print_tune_json(t, counts);
  printf("%-28s %-32s %-8s %6s %5s %5s %10s %8s\n", "kernel", "variant", "", "regs", "spill", "occ",
         "ms", "speed");
  for (int from = 0, end, best, dflt; from < t->n; from = end) {
    best_of(t, from, &end, &best, &dflt);
    for (int i = from; i < end; i++) print_row(&t->rows[i], i == best);
    if (best >= 0 && t->rows[best].ms > 0)
      printf("%s: fastest %s, %.2fx the default's speed (timed alternately with it)\n",
             t->rows[from].kernel, t->rows[best].variant, t->rows[best].base_ms / t->rows[best].ms);
  }
  printf("%d variants: %d ok, %d wrong, %d rejected, %d pruned; times on %s%s\n", t->n,
         counts[ROW_OK], counts[ROW_WRONG], counts[ROW_REJECTED], counts[ROW_PRUNED], device,
         t->slack == 1 ? " (an emulator's, not a GPU's)" : "");
  if (t->n && !t->rows[0].has_stats)
    printf("no compile statistics: %s\n", t->prune ? "NVRTC reported none" :
#ifdef LISA_HAVE_NVRTC
           "--no-prune"
#else
           "this build has no NVRTC"
#endif
    );
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
    e.default_ms = t->rows[best].base_ms; /* the default timed around the winner */
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
    const gen_step *step;
    if ((!a->kernels || strstr(name, a->kernels)) && find_launch(prog, name, &step) &&
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
  if (check_parse_args(1, argc, argv, &a, &rc)) return rc;
  ir_model m;
  lt_error err = {{0}};
  char folder[1024], device[256], program[160];
  if (check_load_model(&a, &m, folder, sizeof folder, &err)) {
    fprintf(stderr, "lisa tune: %s\n", err.msg);
    return 1;
  }
  tuner t = {.a = &a, .m = &m, .weights = a.weights_path ? a.weights_path : folder, .slack = 1};
  unsigned char *trains = NULL;
  gen_tuning *table = NULL;
  dev_provider p = {0};
  gen_program prog;
  int have_prog = 0;
  rc = !(trains = check_trains_of(&a, &m)) ? lt_fail(&err, "out of memory")
       : gen_tune_load(&table, a.tune_path, &err) ||
               check_open_device(&a, &p, device, sizeof device, &t.slack, &err);
  t.prune = !a.no_prune && tp_limits_of(p.arch, &t.limits) == 0;
  gen_config cfg = check_config_of(&a, trains, table, &p);
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
