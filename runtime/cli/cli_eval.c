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

/* The CPU forward, as train_sweep_loss calls it. */
static int cpu_loss(void *s, float *loss, lt_error *err) {
  (void)err;
  *loss = train_forward(s);
  return 0;
}

static int evaluate(const eval_args *a, const ir_model *m, const char *folder, lt_error *err) {
  data_file d;
  ms_state s;
  if (ir_check_seq(m, a->seq, err)) return -1;
  if (data_open(&d, a->data_path, m->vocab_size, err)) return -1;
  int64_t batches = data_sweep_batches(&d, a->batch, a->seq, a->max_batches, err), tokens = 0;
  if (batches < 0) return data_close(&d), -1;
  if (wt_open_frozen(&s, m, a->batch, a->seq, a->weights_path, folder, a->ignore_unused, 0, err))
    return data_close(&d), -1;
  double loss;
  int rc = train_sweep_loss(&s, &d, batches, cpu_loss, &s, &loss, &tokens, err);
  if (rc == 0 && tokens == 0)
    rc = lt_fail(err, "%s: no counted target in %lld batches (its mask leaves every one out)",
                 a->data_path, (long long)batches);
  if (rc == 0) {
    printf("{\"model\":");
    json_write_string(stdout, a->model_path);
    printf(",\"data\":");
    json_write_string(stdout, a->data_path);
    printf(",\"loss\":");
    json_write_number(stdout, loss, 9);
    printf(",\"perplexity\":");
    json_write_number(stdout, exp(loss), 9);
    printf(",\"tokens\":%lld,\"batches\":%lld,\"batch\":%d,\"seq\":%d}\n", (long long)tokens,
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
