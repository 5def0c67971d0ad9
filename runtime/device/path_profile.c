/* path_profile.c: timed launches and GEMMs, added up by path step. */
#include "path_profile.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  int row;   /* index into the table's rows */
  int timer; /* its marks: timer, timer + 1 */
} path_exec_call;

struct path_profile {
  const gen_program *prog;
  path_exec_backend inner;
  path_profile_timers timers;
  int *first_row; /* [n_paths]: the row of each path's step 0 */
  prof_table table;
  path_exec_call *calls; /* of the step being timed */
  int n_calls, max_calls;
};

/* A kernel's entry without the path's prefix ("02_attention_forward"); a
 * GEMM's index, op, output and shape ("05 gemm linear -> qkv [16x24x72]"). */
static void describe(const gen_path *p, int step, char *out, size_t cap) {
  const gen_step *st = &p->steps[step];
  if (st->kind == GEN_STEP_GEMM) {
    const gen_gemm *g = &st->gemm;
    snprintf(out, cap, "%02d gemm %.64s -> %.48s [%lldx%lldx%lld]", step, st->label,
             p->bufs[g->d.buf].name, (long long)g->rows, (long long)g->in, (long long)g->out);
    return;
  }
  size_t pre = strlen(p->name);
  snprintf(out, cap, "%s", strncmp(st->kernel, p->name, pre) ? st->kernel : st->kernel + pre + 1);
}

static void label_rows(path_profile *pf) {
  for (int i = 0; i < pf->prog->n_paths; i++) {
    const gen_path *p = &pf->prog->paths[i];
    for (int s = 0; s < p->n_steps; s++) {
      prof_row *r = &pf->table.rows[pf->first_row[i] + s];
      snprintf(r->path, sizeof r->path, "%s", p->name);
      snprintf(r->pass, sizeof r->pass, "%s",
               !strcmp(p->name, "optimizer") ? "opt" : s < p->n_fwd_steps ? "fwd" : "bwd");
      describe(p, s, r->what, sizeof r->what);
      r->index = s;
    }
  }
}

int path_profile_create(path_profile **out, const gen_program *prog, int max_calls,
                        const path_exec_backend *inner, const path_profile_timers *timers,
                        lt_error *err) {
  if (!timers->create) return lt_fail(err, "this device has no timers to profile with");
  path_profile *pf = calloc(1, sizeof *pf);
  if (!pf) return lt_fail(err, "out of memory");
  *pf = (path_profile){.prog = prog, .inner = *inner, .timers = *timers, .max_calls = max_calls};
  int n_rows = 0;
  pf->first_row = malloc(sizeof *pf->first_row * (size_t)(prog->n_paths + 1));
  for (int i = 0; pf->first_row && i < prog->n_paths; i++) {
    pf->first_row[i] = n_rows;
    n_rows += prog->paths[i].n_steps;
  }
  pf->calls = malloc(sizeof *pf->calls * (size_t)(max_calls + 1));
  if (!pf->first_row || !pf->calls || prof_init(&pf->table, n_rows, err)) {
    pf->timers.destroy = NULL; /* no timers were made */
    path_profile_free(pf);
    return lt_fail(err, "out of memory");
  }
  label_rows(pf);
  if (timers->create(timers->ctx, 2 * max_calls, err)) {
    pf->timers.destroy = NULL;
    path_profile_free(pf);
    return -1;
  }
  *out = pf;
  return 0;
}

void path_profile_free(path_profile *pf) {
  if (!pf) return;
  if (pf->timers.destroy) pf->timers.destroy(pf->timers.ctx);
  free(pf->first_row);
  prof_free(&pf->table);
  free(pf->calls);
  free(pf);
}

/* The call's row, its first timer marked before the inner call runs. */
static int begin_call(path_profile *pf, const gen_path *p, int step, lt_error *err) {
  long idx = p - pf->prog->paths;
  if (idx < 0 || idx >= pf->prog->n_paths)
    return lt_fail(err, "profile: %s is not in the program", p->name);
  if (pf->n_calls == pf->max_calls)
    return lt_fail(err, "profile: more than %d launches and GEMMs in one step", pf->max_calls);
  path_exec_call *c = &pf->calls[pf->n_calls];
  *c = (path_exec_call){pf->first_row[idx] + step, 2 * pf->n_calls};
  return pf->timers.mark(pf->timers.ctx, c->timer, err);
}

static int end_call(path_profile *pf, lt_error *err) {
  return pf->timers.mark(pf->timers.ctx, pf->calls[pf->n_calls++].timer + 1, err);
}

static int timed_launch(void *ctx, const gen_path *p, int step, void **args, lt_error *err) {
  path_profile *pf = ctx;
  if (begin_call(pf, p, step, err) || pf->inner.launch(pf->inner.ctx, p, step, args, err)) return -1;
  return end_call(pf, err);
}

static int timed_gemm(void *ctx, const gen_path *p, int step, const path_exec_gemm *g, lt_error *err) {
  path_profile *pf = ctx;
  if (begin_call(pf, p, step, err) || pf->inner.gemm(pf->inner.ctx, p, step, g, err)) return -1;
  return end_call(pf, err);
}

path_exec_backend path_profile_backend(path_profile *pf) { return (path_exec_backend){pf, timed_launch, timed_gemm}; }

int path_profile_collect(path_profile *pf, lt_error *err) {
  for (int i = 0; i < pf->n_calls; i++) {
    const path_exec_call *c = &pf->calls[i];
    float ms;
    if (pf->timers.elapsed(pf->timers.ctx, c->timer, c->timer + 1, &ms, err)) return -1;
    prof_add(&pf->table, c->row, ms);
  }
  pf->n_calls = 0;
  prof_end_step(&pf->table);
  return 0;
}

prof_table *path_profile_table(path_profile *pf) { return &pf->table; }
