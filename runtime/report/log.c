#include "log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "json_out.h"
#include "memory_plan.h"

int log_open(log_sink *l, const char *jsonl_path, int quiet, int64_t total_steps, int n_layer,
             lt_error *err) {
  memset(l, 0, sizeof *l);
  l->total_steps = total_steps;
  l->n_norms = n_layer + 2;
  l->weight_norms = calloc((size_t)l->n_norms, sizeof(double));
  l->grad_norms = calloc((size_t)l->n_norms, sizeof(double));
  if (!l->weight_norms || !l->grad_norms) return lt_fail(err, "out of memory");
  if (jsonl_path) {
    l->jsonl = fopen(jsonl_path, "w");
    if (!l->jsonl) return lt_fail(err, "%s: cannot open for writing: %s", jsonl_path, strerror(errno));
  }
  if (!quiet) {
    l->term = stderr;
    l->tty = isatty(fileno(stderr));
  }
  return 0;
}

static uint64_t peak_rss_bytes(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024 : 0;
}

static void format_eta(char *out, size_t cap, double seconds) {
  long s = (long)(seconds + 0.5);
  if (s >= 3600) snprintf(out, cap, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60) snprintf(out, cap, "%ldm%02lds", s / 60, s % 60);
  else snprintf(out, cap, "%lds", s);
}

static void print_progress(log_sink *l, const train_step_stats *st) {
  int64_t done = st->step + 1;
  int last = done == l->total_steps;
  int64_t every = l->total_steps >= 20 ? l->total_steps / 20 : 1;
  if (!l->tty && !last && done % every != 0) return;
  char eta[32];
  format_eta(eta, sizeof eta, l->ms_total / l->steps_seen * (double)(l->total_steps - done) / 1e3);
  fprintf(l->term, "%sstep %lld/%lld | loss %.4f | %.0f tok/s | ETA %s%s", l->tty ? "\r\033[K" : "",
          (long long)done, (long long)l->total_steps, st->loss, st->tokens_per_s, eta,
          l->tty && !last ? "" : "\n");
  fflush(l->term);
}

static void write_norms(FILE *f, const char *key, const double *v, int n) {
  fprintf(f, ",\"%s\":[", key);
  for (int i = 0; i < n; i++) {
    if (i) fputc(',', f);
    if (isnan(v[i])) fputs("null", f);
    else fprintf(f, "%.9g", v[i]);
  }
  fputc(']', f);
}

static void write_row(log_sink *l, const trainer *t, const train_step_stats *st, int with_norms) {
  FILE *f = l->jsonl;
  train_memory mem = trainer_memory(t);
  fprintf(f, "{\"step\":%lld,\"loss\":%.9g,\"lr\":%.9g,\"active\":[", (long long)st->step,
          st->loss, st->lr);
  int n_active = st->n_active;
  const int *active = st->active ? st->active : sched_active(trainer_schedule(t), &n_active);
  for (int i = 0; i < n_active; i++) fprintf(f, i ? ",%d" : "%d", active[i]);
  fprintf(f,
          "],\"grad_norm\":%.9g,\"step_ms\":%.3f,\"tokens_per_s\":%.1f,\"peak_bytes\":%llu,"
          "\"peak_rss_bytes\":%llu,\"memory\":{\"weights\":%llu,\"grads\":%llu,"
          "\"optimizer\":%llu,\"activations\":%llu,\"data\":%llu}",
          st->grad_norm, st->step_ms, st->tokens_per_s,
          (unsigned long long)(st->peak_bytes ? st->peak_bytes : trainer_bytes(t)),
          (unsigned long long)peak_rss_bytes(), (unsigned long long)mem.weights,
          (unsigned long long)mem.grads, (unsigned long long)mem.optimizer,
          (unsigned long long)mem.activations, (unsigned long long)mem.data);
  if (st->mfu >= 0) fprintf(f, ",\"mfu\":%.4f", st->mfu);
  else fputs(",\"mfu\":null", f);
  if (st->device_used_bytes)
    fprintf(f, ",\"device_used_bytes\":%llu", (unsigned long long)st->device_used_bytes);
  for (int c = 0; st->device_memory && c < MEMORY_NCATEGORIES; c++)
    fprintf(f, "%s\"%s\":%llu", c ? "," : ",\"device_memory\":{", memory_category_name(c),
            (unsigned long long)st->device_memory[c]);
  if (st->device_memory) fputc('}', f);
  if (with_norms) {
    trainer_norms(t, l->weight_norms, l->grad_norms);
    write_norms(f, "weight_norms", l->weight_norms, l->n_norms);
    write_norms(f, "grad_norms", l->grad_norms, l->n_norms);
  }
  fputs("}\n", f);
}

void log_step(log_sink *l, const trainer *t, const train_step_stats *st, int with_norms) {
  l->ms_total += st->step_ms;
  l->steps_seen++;
  if (l->jsonl) write_row(l, t, st, with_norms);
  if (l->term) print_progress(l, st);
}

void log_event(log_sink *l, int64_t step, const char *event, const char *key, const char *value) {
  if (!l->jsonl) return;
  /* values here are paths and names from the command line */
  fprintf(l->jsonl, "{\"event\":\"%s\",\"step\":%lld,\"%s\":", event, (long long)step, key);
  json_write_string(l->jsonl, value);
  fputs("}\n", l->jsonl);
}

void log_close(log_sink *l) {
  if (l->jsonl) fclose(l->jsonl);
  free(l->weight_norms);
  free(l->grad_norms);
  memset(l, 0, sizeof *l);
}
