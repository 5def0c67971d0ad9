/* profile.c: the profile table, sorted and printed. */
#include "profile.h"

#include <stdlib.h>
#include <string.h>

#include "json_out.h"

int prof_init(prof_table *t, int n_rows, lt_error *err) {
  memset(t, 0, sizeof *t);
  t->rows = calloc((size_t)n_rows + 1, sizeof *t->rows);
  t->sorted = calloc((size_t)n_rows + 1, sizeof *t->sorted);
  if (!t->rows || !t->sorted) {
    prof_free(t);
    return lt_fail(err, "out of memory");
  }
  t->n_rows = n_rows;
  return 0;
}

void prof_free(prof_table *t) {
  free(t->rows);
  free(t->sorted);
  memset(t, 0, sizeof *t);
}

void prof_clear(prof_table *t) {
  for (int i = 0; i < t->n_rows; i++) t->rows[i].calls = 0, t->rows[i].ms = 0;
  t->steps = 0, t->total_ms = 0;
}

static int slower_first(const void *a, const void *b) {
  double x = ((const prof_row *)a)->ms, y = ((const prof_row *)b)->ms;
  return x < y ? 1 : x > y ? -1 : 0;
}

const prof_row *prof_sorted(prof_table *t, int *n) {
  int k = 0;
  for (int i = 0; i < t->n_rows; i++)
    if (t->rows[i].calls) t->sorted[k++] = t->rows[i];
  qsort(t->sorted, (size_t)k, sizeof *t->sorted, slower_first);
  *n = k;
  return t->sorted;
}

void prof_print(prof_table *t, FILE *out) {
  int n;
  const prof_row *rows = prof_sorted(t, &n);
  double per = t->steps > 0 ? 1.0 / t->steps : 0.0;
  fprintf(out, "profile of %d steps: ms per step, by path step (calls per step)\n", t->steps);
  fprintf(out, "%10s %6s %6s  %-16s %-4s %s\n", "ms", "share", "calls", "path", "pass", "step");
  for (int i = 0; i < n; i++)
    fprintf(out, "%10.3f %5.1f%% %6.1f  %-16s %-4s %s\n", rows[i].ms * per,
            t->total_ms > 0 ? 100.0 * rows[i].ms / t->total_ms : 0.0, rows[i].calls * per,
            rows[i].path, rows[i].pass, rows[i].what);
  fprintf(out, "%10.3f 100.0%%  timed\n", t->total_ms * per);
}

void prof_write_jsonl(prof_table *t, FILE *out, long long step) {
  int n;
  const prof_row *rows = prof_sorted(t, &n);
  double per = t->steps > 0 ? 1.0 / t->steps : 0.0;
  for (int i = 0; i < n; i++) {
    fprintf(out, "{\"event\":\"profile\",\"step\":%lld,\"steps\":%d,\"path\":", step, t->steps);
    json_write_string(out, rows[i].path);
    fprintf(out, ",\"index\":%d,\"pass\":", rows[i].index);
    json_write_string(out, rows[i].pass);
    fputs(",\"what\":", out);
    json_write_string(out, rows[i].what);
    fprintf(out, ",\"calls_per_step\":%g,\"ms_per_step\":%.6g}\n", rows[i].calls * per,
            rows[i].ms * per);
  }
}
