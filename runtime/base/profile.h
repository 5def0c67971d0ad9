/* profile.h: a table of timed steps for `lisa train --profile`, shared by
 * the CPU executor (one row per IR op of a section and path) and the device
 * profiler (path_profile.h: one row per path step). The owner makes the rows
 * and their labels before the loop; timing only adds into them. */
#ifndef LT_PROFILE_H
#define LT_PROFILE_H

#include <stdio.h>

#include "err.h"

typedef struct {
  char path[32];  /* "block_frozen" */
  char pass[4];   /* "fwd", "bwd", "opt" */
  char what[200]; /* "07 linear_bwd_x -> d_fc [256x3072x768]" */
  int index;      /* the op's or path step's index */
  int calls;      /* over the steps collected */
  double ms;
} prof_row;

typedef struct prof_table {
  prof_row *rows, *sorted;
  int n_rows;
  int steps;
  double total_ms;
} prof_table;

int prof_init(prof_table *t, int n_rows, lt_error *err);
void prof_free(prof_table *t);

static inline void prof_add(prof_table *t, int row, double ms) {
  t->rows[row].calls++;
  t->rows[row].ms += ms;
  t->total_ms += ms;
}
static inline void prof_end_step(prof_table *t) { t->steps++; }
/* Forgets what was collected (a warm-up step's). */
void prof_clear(prof_table *t);

/* The rows with calls, slowest first, summed over the steps; valid until
 * the next call. */
const prof_row *prof_sorted(prof_table *t, int *n);

/* Per step: a table (time, share, calls, path, pass, what), and one JSONL
 * "profile" row each (step: the run's last). */
void prof_print(prof_table *t, FILE *out);
void prof_write_jsonl(prof_table *t, FILE *out, long long step);

#endif
