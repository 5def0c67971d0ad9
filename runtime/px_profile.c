/* px_profile.c: timed launches and GEMMs, added up by path step. */
#include "px_profile.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  int row;   /* index into rows */
  int timer; /* its marks: timer, timer + 1 */
} px_call;

struct px_profile {
  const gen_program *prog;
  px_backend inner;
  px_timers timers;
  int *first_row;       /* [n_paths]: the row of each path's step 0 */
  px_profile_row *rows; /* one per step of every path */
  px_profile_row *sorted;
  int n_rows;
  px_call *calls;       /* of the step being timed */
  int n_calls, max_calls;
  int steps;            /* collected */
  double total_ms;
};

int px_profile_create(px_profile **out, const gen_program *prog, int max_calls,
                      const px_backend *inner, const px_timers *timers, lt_error *err) {
  if (!timers->create) return lt_fail(err, "this device has no timers to profile with");
  px_profile *pf = calloc(1, sizeof *pf);
  if (!pf) return lt_fail(err, "out of memory");
  *pf = (px_profile){.prog = prog, .inner = *inner, .timers = *timers, .max_calls = max_calls};
  pf->first_row = malloc(sizeof *pf->first_row * (size_t)(prog->n_paths + 1));
  for (int i = 0; i < prog->n_paths; i++) {
    pf->first_row[i] = pf->n_rows;
    pf->n_rows += prog->paths[i].n_steps;
  }
  pf->rows = calloc((size_t)pf->n_rows + 1, sizeof *pf->rows);
  pf->sorted = calloc((size_t)pf->n_rows + 1, sizeof *pf->sorted);
  pf->calls = malloc(sizeof *pf->calls * (size_t)(max_calls + 1));
  if (!pf->first_row || !pf->rows || !pf->sorted || !pf->calls) {
    px_profile_free(pf);
    return lt_fail(err, "out of memory");
  }
  for (int i = 0; i < prog->n_paths; i++)
    for (int s = 0; s < prog->paths[i].n_steps; s++)
      pf->rows[pf->first_row[i] + s] = (px_profile_row){&prog->paths[i], s, 0, 0};
  if (timers->create(timers->ctx, 2 * max_calls, err)) {
    pf->timers.destroy = NULL; /* nothing was made */
    px_profile_free(pf);
    return -1;
  }
  *out = pf;
  return 0;
}

void px_profile_free(px_profile *pf) {
  if (!pf) return;
  if (pf->timers.destroy) pf->timers.destroy(pf->timers.ctx);
  free(pf->first_row);
  free(pf->rows);
  free(pf->sorted);
  free(pf->calls);
  free(pf);
}

/* The call's row, its timers marked around `run`. */
static int begin_call(px_profile *pf, const gen_path *p, int step, lt_error *err) {
  long idx = p - pf->prog->paths;
  if (idx < 0 || idx >= pf->prog->n_paths) return lt_fail(err, "profile: %s is not in the program", p->name);
  if (pf->n_calls == pf->max_calls)
    return lt_fail(err, "profile: more than %d launches and GEMMs in one step", pf->max_calls);
  px_call *c = &pf->calls[pf->n_calls];
  *c = (px_call){pf->first_row[idx] + step, 2 * pf->n_calls};
  return pf->timers.mark(pf->timers.ctx, c->timer, err);
}

static int end_call(px_profile *pf, lt_error *err) {
  return pf->timers.mark(pf->timers.ctx, pf->calls[pf->n_calls++].timer + 1, err);
}

static int timed_launch(void *ctx, const gen_path *p, int step, void **args, lt_error *err) {
  px_profile *pf = ctx;
  if (begin_call(pf, p, step, err) || pf->inner.launch(pf->inner.ctx, p, step, args, err)) return -1;
  return end_call(pf, err);
}

static int timed_gemm(void *ctx, const gen_path *p, int step, const px_gemm *g, lt_error *err) {
  px_profile *pf = ctx;
  if (begin_call(pf, p, step, err) || pf->inner.gemm(pf->inner.ctx, p, step, g, err)) return -1;
  return end_call(pf, err);
}

px_backend px_profile_backend(px_profile *pf) { return (px_backend){pf, timed_launch, timed_gemm}; }

int px_profile_collect(px_profile *pf, lt_error *err) {
  for (int i = 0; i < pf->n_calls; i++) {
    const px_call *c = &pf->calls[i];
    float ms;
    if (pf->timers.elapsed(pf->timers.ctx, c->timer, c->timer + 1, &ms, err)) return -1;
    pf->rows[c->row].calls++;
    pf->rows[c->row].ms += ms;
    pf->total_ms += ms;
  }
  pf->n_calls = 0;
  pf->steps++;
  return 0;
}

void px_profile_clear(px_profile *pf) {
  for (int i = 0; i < pf->n_rows; i++) pf->rows[i].calls = 0, pf->rows[i].ms = 0;
  pf->steps = 0, pf->total_ms = 0;
}

static int slower_first(const void *a, const void *b) {
  double x = ((const px_profile_row *)a)->ms, y = ((const px_profile_row *)b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

const px_profile_row *px_profile_rows(px_profile *pf, int *n) {
  int k = 0;
  for (int i = 0; i < pf->n_rows; i++)
    if (pf->rows[i].calls) pf->sorted[k++] = pf->rows[i];
  qsort(pf->sorted, (size_t)k, sizeof *pf->sorted, slower_first);
  *n = k;
  return pf->sorted;
}

double px_profile_total_ms(const px_profile *pf) { return pf->total_ms; }
int px_profile_steps(const px_profile *pf) { return pf->steps; }

static const char *pass_of(const px_profile_row *r) {
  if (!strcmp(r->path->name, "optimizer")) return "opt";
  return r->step < r->path->n_fwd_steps ? "fwd" : "bwd";
}

/* A kernel's entry without the path's prefix ("02_attention_forward"); a
 * GEMM's index, op, output and shape ("05 gemm linear -> qkv [16x24x72]"). */
static void describe(const px_profile_row *r, char *out, size_t cap) {
  const gen_step *st = &r->path->steps[r->step];
  if (st->kind == GEN_STEP_GEMM) {
    const gen_gemm *g = &st->gemm;
    snprintf(out, cap, "%02d gemm %s -> %s [%lldx%lldx%lld]", r->step, st->label,
             r->path->bufs[g->d.buf].name, (long long)g->rows, (long long)g->in, (long long)g->out);
    return;
  }
  size_t pre = strlen(r->path->name);
  const char *name = strncmp(st->kernel, r->path->name, pre) ? st->kernel : st->kernel + pre + 1;
  snprintf(out, cap, "%s", name);
}

void px_profile_print(px_profile *pf, FILE *out) {
  int n;
  const px_profile_row *rows = px_profile_rows(pf, &n);
  double per = pf->steps > 0 ? 1.0 / pf->steps : 0.0;
  fprintf(out, "profile of %d steps: ms per step, by path step (calls per step)\n", pf->steps);
  fprintf(out, "%10s %6s %6s  %-16s %-4s %s\n", "ms", "share", "calls", "path", "pass", "step");
  for (int i = 0; i < n; i++) {
    char what[320];
    describe(&rows[i], what, sizeof what);
    fprintf(out, "%10.3f %5.1f%% %6.1f  %-16s %-4s %s\n", rows[i].ms * per,
            pf->total_ms > 0 ? 100.0 * rows[i].ms / pf->total_ms : 0.0, rows[i].calls * per,
            rows[i].path->name, pass_of(&rows[i]), what);
  }
  fprintf(out, "%10.3f 100.0%%  launches and GEMMs\n", pf->total_ms * per);
}

void px_profile_write_jsonl(px_profile *pf, FILE *out, long long step) {
  int n;
  const px_profile_row *rows = px_profile_rows(pf, &n);
  double per = pf->steps > 0 ? 1.0 / pf->steps : 0.0;
  for (int i = 0; i < n; i++) {
    char what[320];
    describe(&rows[i], what, sizeof what);
    for (char *c = what; *c; c++)
      if (*c == '"' || *c == '\\') *c = '\'';
    fprintf(out,
            "{\"event\":\"profile\",\"step\":%lld,\"steps\":%d,\"path\":\"%s\",\"index\":%d,"
            "\"pass\":\"%s\",\"what\":\"%s\",\"calls_per_step\":%g,\"ms_per_step\":%.6g}\n",
            step, pf->steps, rows[i].path->name, rows[i].step, pass_of(&rows[i]), what,
            rows[i].calls * per, rows[i].ms * per);
  }
}
