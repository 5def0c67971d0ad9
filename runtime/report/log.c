#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "json_out.h"
#include "memory_plan.h"

/* The step a JSONL line belongs to: a step row's own step, or an event's
 * (a checkpoint event's step is the next step to run). -1: none found. */
static long long line_step(const char *line, int *is_row) {
  *is_row = !strncmp(line, "{\"step\":", 8);
  const char *k = strstr(line, "\"step\":");
  return k ? strtoll(k + 7, NULL, 10) : -1;
}

/* A resumed run from step `from` keeps what the log says of the steps
 * before it (rows of steps < from, events up to from) and cuts the rest,
 * and a torn last line, which the resumed run writes again. */
static int cut_for_resume(log_sink *l, const char *path, int64_t from, lt_error *err) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  off_t keep = 0;
  while ((n = getline(&line, &cap, l->jsonl)) > 0) {
    int is_row;
    long long step = line_step(line, &is_row);
    if (line[n - 1] != '\n' || (is_row ? step >= from : step > from)) break;
    keep += n;
  }
  free(line);
  if (ferror(l->jsonl) || ftruncate(fileno(l->jsonl), keep) || fseeko(l->jsonl, keep, SEEK_SET))
    return lt_fail(err, "%s: cannot cut the log back to step %lld: %s", path, (long long)from,
                   strerror(errno));
  return 0;
}

/* Never through a symlink (it could point at any file of the user's); a
 * fresh run starts the file, a resumed one continues it. */
static int open_jsonl(log_sink *l, const char *path, int64_t from, lt_error *err) {
  int flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (from > 0 ? 0 : O_TRUNC);
  int fd = open(path, flags, 0644);
  if (fd < 0 && errno == ELOOP)
    return lt_fail(err, "%s: is a symbolic link; --log-jsonl writes only a file of its own",
                   path);
  if (fd < 0) return lt_fail(err, "%s: cannot open for writing: %s", path, strerror(errno));
  l->jsonl = fdopen(fd, "r+");
  if (!l->jsonl) {
    close(fd);
    return lt_fail(err, "%s: cannot open for writing: %s", path, strerror(errno));
  }
  snprintf(l->path, sizeof l->path, "%s", path);
  return from > 0 ? cut_for_resume(l, path, from, err) : 0;
}

int log_open(log_sink *l, const char *jsonl_path, int quiet, int64_t total_steps, int64_t first_step,
             int n_layer, lt_error *err) {
  memset(l, 0, sizeof *l);
  l->total_steps = total_steps;
  l->n_norms = n_layer + 2;
  l->weight_norms = calloc((size_t)l->n_norms, sizeof(double));
  l->grad_norms = calloc((size_t)l->n_norms, sizeof(double));
  if (!l->weight_norms || !l->grad_norms) return lt_fail(err, "out of memory");
  if (jsonl_path && open_jsonl(l, jsonl_path, first_step, err)) return -1;
  if (!quiet) {
    l->term = stderr;
    l->tty = isatty(fileno(stderr));
  }
  return 0;
}

/* Each row reaches the file as it is written: a full disk is an error now,
 * not a torn file found later. */
static int flushed(log_sink *l, lt_error *err) {
  if (fflush(l->jsonl) == 0 && !ferror(l->jsonl)) return 0;
  return lt_fail(err, "%s: cannot write the log: %s", l->path, strerror(errno));
}

int log_sync(log_sink *l, lt_error *err) {
  if (!l->jsonl) return 0;
  if (flushed(l, err)) return -1;
  if (fsync(fileno(l->jsonl)))
    return lt_fail(err, "%s: cannot sync the log: %s", l->path, strerror(errno));
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
    json_write_number(f, v[i], 9); /* NaN: nothing trained there */
  }
  fputc(']', f);
}

/* ,"key":value with value null when not finite */
static void write_field(FILE *f, const char *key, double v, int digits) {
  fprintf(f, ",\"%s\":", key);
  json_write_number(f, v, digits);
}

static void write_row(log_sink *l, const trainer *t, const train_step_stats *st, int with_norms) {
  FILE *f = l->jsonl;
  train_memory mem = trainer_memory(t);
  fprintf(f, "{\"step\":%lld", (long long)st->step);
  write_field(f, "loss", st->loss, 9);
  write_field(f, "lr", st->lr, 9);
  fputs(",\"active\":[", f);
  int n_active = st->n_active;
  const int *active = st->active ? st->active : sched_active(trainer_schedule(t), &n_active);
  for (int i = 0; i < n_active; i++) fprintf(f, i ? ",%d" : "%d", active[i]);
  fputc(']', f);
  write_field(f, "grad_norm", st->grad_norm, 9);
  fprintf(f,
          ",\"step_ms\":%.3f,\"tokens_per_s\":%.1f,\"peak_bytes\":%llu,"
          "\"peak_rss_bytes\":%llu,\"memory\":{\"weights\":%llu,\"grads\":%llu,"
          "\"optimizer\":%llu,\"activations\":%llu,\"data\":%llu}",
          st->step_ms, st->tokens_per_s,
          (unsigned long long)(st->peak_bytes ? st->peak_bytes : trainer_bytes(t)),
          (unsigned long long)peak_rss_bytes(), (unsigned long long)mem.weights,
          (unsigned long long)mem.grads, (unsigned long long)mem.optimizer,
          (unsigned long long)mem.activations, (unsigned long long)mem.data);
  if (st->ranks > 1)
    fprintf(f, ",\"ranks\":%d,\"comm_bytes\":%llu", st->ranks, (unsigned long long)st->comm_bytes);
  if (st->mfu >= 0) fprintf(f, ",\"mfu\":%.4f", st->mfu);
  else fputs(",\"mfu\":null", f);
  if (st->device_used_bytes)
    fprintf(f, ",\"device_used_bytes\":%llu", (unsigned long long)st->device_used_bytes);
  for (int c = 0; st->device_memory && c < MEMORY_NCATEGORIES; c++)
    fprintf(f, "%s\"%s\":%llu", c ? "," : ",\"device_memory\":{", memory_category_name(c),
            (unsigned long long)st->device_memory[c]);
  if (st->device_memory) fputc('}', f);
  if (with_norms) { /* log_step computed them */
    write_norms(f, "weight_norms", l->weight_norms, l->n_norms);
    write_norms(f, "grad_norms", l->grad_norms, l->n_norms);
  }
  fputs("}\n", f);
}

int log_step(log_sink *l, const trainer *t, const train_step_stats *st, int with_norms,
             lt_error *err) {
  l->ms_total += st->step_ms;
  l->steps_seen++;
  if (l->term) print_progress(l, st);
  if (!l->jsonl) return 0;
  if (with_norms && trainer_norms(t, l->weight_norms, l->grad_norms, err)) return -1;
  write_row(l, t, st, with_norms);
  return flushed(l, err);
}

int log_event(log_sink *l, int64_t step, const char *event, const char *key, const char *value,
              lt_error *err) {
  if (!l->jsonl) return 0;
  /* values here are paths and names from the command line */
  fprintf(l->jsonl, "{\"event\":\"%s\",\"step\":%lld,\"%s\":", event, (long long)step, key);
  json_write_string(l->jsonl, value);
  fputs("}\n", l->jsonl);
  return flushed(l, err);
}

int log_val(log_sink *l, int64_t step, double loss, int64_t tokens, lt_error *err) {
  if (l->term)
    fprintf(l->term, "%sval   %lld | loss %.4f | %lld tokens\n", l->tty ? "\r\033[K" : "",
            (long long)step, loss, (long long)tokens), fflush(l->term);
  if (!l->jsonl) return 0;
  fprintf(l->jsonl, "{\"event\":\"val\",\"step\":%lld,\"val_loss\":", (long long)step);
  json_write_number(l->jsonl, loss, 9);
  fprintf(l->jsonl, ",\"val_perplexity\":");
  json_write_number(l->jsonl, exp(loss), 9);
  fprintf(l->jsonl, ",\"val_tokens\":%lld}\n", (long long)tokens);
  return flushed(l, err);
}

void log_close(log_sink *l) {
  if (l->jsonl) fclose(l->jsonl);
  free(l->weight_norms);
  free(l->grad_norms);
  memset(l, 0, sizeof *l);
}
