/* cli_eval.c: `lisa eval`, a model's loss on a token file, no training.
 *
 * The file is read as consecutive, non-overlapping windows of T + 1 tokens
 * (window k starts at k (T + 1)); each window predicts its last T tokens
 * from the ones before, as one row of a batch. Batches take B windows in
 * order; windows that do not fill a last batch are left out and the output
 * says how many tokens counted. A loss mask beside the file (FILE.mask,
 * data.h) leaves its masked targets out. The loss is the mean cross entropy
 * over every counted prediction (accumulated in double), the perplexity its
 * exp. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "cli.h"
#include "cli_opts.h"
#include "data.h"
#include "json_out.h"
#include "model_source.h"
#include "train.h"
#include "weights.h"

typedef struct {
  const char *model_path, *weights_path, *data_path;
  int batch, seq;
  int64_t max_batches; /* 0: every full batch */
  int ignore_unused;
} eval_args;

#define AT(field) offsetof(eval_args, field)

static const cliopt eval_opts[] = {
    {"--data", CLIOPT_STRING, AT(data_path), .help = NULL /* in the usage line */},
    {"--weights", CLIOPT_STRING, AT(weights_path), .meta = "FILE",
     .help = "safetensors or a folder (default: MODEL's folder)"},
    {"--batch", CLIOPT_INT, AT(batch), 1, 1 << 20, .meta = "B --seq T",
     .help = "windows of T + 1 tokens, B at a time (4, 64)"},
    {"--seq", CLIOPT_INT, AT(seq), 1, 1 << 24, .help = NULL /* with --batch */},
    {"--batches", CLIOPT_INT64, AT(max_batches), 1, 1e12, .meta = "M",
     .help = "only the first M batches (all)"},
    {"--ignore-unused", CLIOPT_FLAG, AT(ignore_unused),
     .help = "load weights holding tensors the model does not use"},
};

static const cliopt_cmd eval_cmd = {
    "lisa eval", "usage: lisa eval MODEL --data FILE [options]\n"
                 "  one JSON object: loss, perplexity, tokens (cpu backend)\n",
    20, eval_opts, sizeof eval_opts / sizeof eval_opts[0]};

/* 0 to evaluate, else -1 with the exit status (0 after --help). */
static int parse_eval_args(int argc, char **argv, eval_args *a, int *exit_status) {
  memset(a, 0, sizeof *a);
  a->batch = 4, a->seq = 64;
  cliopt_result r;
  lt_error err;
  int rc = cliopt_parse(&eval_cmd, argc, argv, a, &r, &err);
  a->model_path = r.positional;
  if (rc) *exit_status = cliopt_finish(&eval_cmd, rc, &err);
  else if (!a->model_path) *exit_status = cliopt_fail_usage(&eval_cmd, "missing MODEL");
  else if (!a->data_path) *exit_status = cliopt_fail_usage(&eval_cmd, "missing --data FILE");
  else return 0;
  return -1;
}

/* The weights: --weights, else the folder's; a model without either has
 * nothing to evaluate. Unused tensors are an error, as in lisa train. */
static int load_weights(ms_state *s, const eval_args *a, const char *folder, lt_error *err) {
  const char *path = a->weights_path ? a->weights_path : folder[0] ? folder : NULL;
  if (!path) return lt_fail(err, "%s: a YAML model needs --weights", a->model_path);
  char note[512];
  return wt_load_strict(s, path, a->ignore_unused, note, sizeof note, err);
}

static int evaluate(const eval_args *a, const ir_model *m, const char *folder, lt_error *err) {
  data_file d;
  ms_state s;
  if (ir_check_seq(m, a->seq, err)) return -1;
  if (data_open(&d, a->data_path, m->vocab_size, err)) return -1;
  int64_t batches = d.n_tokens / ((int64_t)a->seq + 1) / a->batch;
  if (a->max_batches && batches > a->max_batches) batches = a->max_batches;
  if (batches == 0) {
    lt_fail(err, "%s: %lld tokens, fewer than one batch of %d windows of %d", a->data_path,
            (long long)d.n_tokens, a->batch, a->seq + 1);
    data_close(&d);
    return -1;
  }
  unsigned char *none = calloc((size_t)m->n_params + 1, 1); /* nothing trains */
  int rc = none ? ms_create_trains(&s, m, a->batch, a->seq, 0, 1, none, err)
                : lt_fail(err, "out of memory");
  free(none);
  if (rc) return data_close(&d), -1;
  if (load_weights(&s, a, folder, err)) rc = -1;
  /* each batch's mean weighted by its counted targets: the mean over all */
  double sum = 0, tokens = 0;
  for (int64_t b = 0; rc == 0 && b < batches; b++) {
    if (data_batch_sequential(&d, b, s.B, s.T, s.ids, s.targets, err)) rc = -1;
    else {
      const double counted = (double)data_count_targets(s.targets, s.N);
      sum += (double)train_forward(&s) * counted, tokens += counted;
    }
  }
  if (rc == 0 && tokens == 0)
    rc = lt_fail(err, "%s: no counted target in %lld batches (its mask leaves every one out)",
                 a->data_path, (long long)batches);
  if (rc == 0) {
    const double loss = sum / tokens;
    printf("{\"model\":");
    json_write_string(stdout, a->model_path);
    printf(",\"data\":");
    json_write_string(stdout, a->data_path);
    printf(",\"loss\":");
    json_write_number(stdout, loss, 9);
    printf(",\"perplexity\":");
    json_write_number(stdout, exp(loss), 9);
    printf(",\"tokens\":%.0f,\"batches\":%lld,\"batch\":%d,\"seq\":%d}\n", tokens,
           (long long)batches, a->batch, a->seq);
    if (fflush(stdout) != 0) rc = lt_fail(err, "stdout: write failed");
  }
  ms_free(&s);
  data_close(&d);
  return rc;
}

int cli_eval(int argc, char **argv) {
  eval_args a;
  int rc;
  if (parse_eval_args(argc, argv, &a, &rc)) return rc;
  ir_model m;
  lt_error err;
  char folder[1024];
  rc = model_open(a.model_path, &m, folder, sizeof folder, &err) || ad_build_backward(&m, &err) ||
       evaluate(&a, &m, folder, &err);
  if (rc) fprintf(stderr, "lisa: %s\n", err.msg);
  ir_model_free(&m);
  return rc ? 1 : 0;
}
