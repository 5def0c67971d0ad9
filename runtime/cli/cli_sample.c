/* cli_sample.c: `lisa sample`, text from a model on the CPU backend, with a
 * KV cache (runtime/train/decode.h) and a Hugging Face tokenizer
 * (runtime/tok/tokenizer.h).
 *
 * The prompt is text through the tokenizer (--chat wraps it as one user
 * turn: ChatML where the tokenizer has <|im_start|>, else the Alpaca prompt,
 * the built-in templates of scripts/make-data.py), or ids (--prompt-ids).
 * New tokens stream to stdout as text; generation stops at the tokenizer's
 * EOS (and <|im_end|> in ChatML) or after --max-new-tokens. --json prints one
 * object instead: the prompt's ids, the new ids, their text, tokens/s. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "clock_ms.h"
#include "cli.h"
#include "cli_opts.h"
#include "decode.h"
#include "json_out.h"
#include "model_source.h"
#include "tokenizer.h"
#include "train.h"
#include "weights.h"

typedef struct {
  const char *model_path, *weights_path, *tokenizer_path, *prompt, *prompt_ids;
  int max_new, top_k, chat, json, ignore_unused;
  float temperature, top_p;
  uint64_t seed;
} sample_args;

#define AT(field) offsetof(sample_args, field)

static const cliopt sample_opts[] = {
    {"--prompt", CLIOPT_STRING, AT(prompt), .meta = "TEXT", .help = "the text to continue"},
    {"--prompt-ids", CLIOPT_STRING, AT(prompt_ids), .meta = "\"ID ...\"",
     .help = "the prompt as token ids instead (no tokenizer needed)"},
    {"--weights", CLIOPT_STRING, AT(weights_path), .meta = "FILE",
     .help = "safetensors or a folder (default: MODEL's folder)"},
    {"--tokenizer", CLIOPT_STRING, AT(tokenizer_path), .meta = "PATH",
     .help = "tokenizer.json or its folder (default: MODEL's folder)"},
    {"--max-new-tokens", CLIOPT_INT, AT(max_new), 1, 1 << 24, .meta = "N",
     .help = "at most N new tokens (64)"},
    {"--temperature", CLIOPT_FLOAT, AT(temperature), 0, 100, .meta = "X",
     .help = "0: greedy (default); else sample from softmax(logits / X)"},
    {"--top-k", CLIOPT_INT, AT(top_k), 0, 1 << 30, .meta = "K",
     .help = "sample among the K most likely (0: all)"},
    {"--top-p", CLIOPT_FLOAT, AT(top_p), 0, 1, .lo_open = 1, .meta = "P",
     .help = "sample among the most likely holding mass P (1: all)"},
    {"--seed", CLIOPT_UINT64, AT(seed), .meta = "S", .help = "the sampling seed (0)"},
    {"--chat", CLIOPT_FLAG, AT(chat), .help = "the prompt is a user turn (ChatML or Alpaca)"},
    {"--json", CLIOPT_FLAG, AT(json), .help = "one JSON object: ids, text, tokens/s"},
    {"--ignore-unused", CLIOPT_FLAG, AT(ignore_unused),
     .help = "load weights holding tensors the model does not use"},
};

static const cliopt_cmd sample_cmd = {
    "lisa sample", "usage: lisa sample MODEL (--prompt TEXT | --prompt-ids \"ID ...\") [options]\n"
                   "  generates text with a KV cache (cpu backend)\n",
    22, sample_opts, sizeof sample_opts / sizeof sample_opts[0]};

static int parse_sample_args(int argc, char **argv, sample_args *a, int *exit_status) {
  memset(a, 0, sizeof *a);
  a->max_new = 64, a->top_p = 1.0f;
  cliopt_result r;
  lt_error err;
  int rc = cliopt_parse(&sample_cmd, argc, argv, a, &r, &err);
  a->model_path = r.positional;
  if (rc) *exit_status = cliopt_finish(&sample_cmd, rc, &err);
  else if (!a->model_path) *exit_status = cliopt_fail_usage(&sample_cmd, "missing MODEL");
  else if (!a->prompt == !a->prompt_ids)
    *exit_status = cliopt_fail_usage(&sample_cmd, "give one of --prompt TEXT and --prompt-ids");
  else if (a->chat && a->prompt_ids)
    *exit_status = cliopt_fail_usage(&sample_cmd, "--chat wraps --prompt TEXT, not ids");
  else return 0;
  return -1;
}

/* "1 2 3" -> ids. */
static int parse_ids(const char *s, int32_t **ids, int *n, lt_error *err) {
  int cap = 16;
  *n = 0;
  if (!(*ids = malloc(sizeof **ids * (size_t)cap))) return lt_fail(err, "out of memory");
  for (char *end; *s;) {
    while (*s == ' ' || *s == ',') s++;
    if (!*s) break;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0 || v > INT32_MAX)
      return lt_fail(err, "--prompt-ids: \"%.20s\" is not a token id", s);
    if (*n == cap && !(*ids = realloc(*ids, sizeof **ids * (size_t)(cap *= 2))))
      return lt_fail(err, "out of memory");
    (*ids)[(*n)++] = (int32_t)v, s = end;
  }
  return *n ? 0 : lt_fail(err, "--prompt-ids: no ids");
}

/* The prompt's ids: the text (as a user turn with --chat), or the ids. */
static int prompt_ids(const sample_args *a, const tokenizer *tok, int32_t **ids, int *n,
                      lt_error *err) {
  if (a->prompt_ids) return parse_ids(a->prompt_ids, ids, n, err);
  if (!a->chat) return tok_encode(tok, a->prompt, strlen(a->prompt), 1, ids, n, err);
  int chatml = tok_id(tok, "<|im_start|>") >= 0;
  size_t len = strlen(a->prompt) + 64;
  char *text = malloc(len);
  if (!text) return lt_fail(err, "out of memory");
  snprintf(text, len, chatml ? "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n"
                             : "### Instruction:\n%s\n\n### Response:\n", a->prompt);
  int rc = tok_encode(tok, text, strlen(text), 0, ids, n, err);
  free(text);
  return rc;
}

typedef struct {
  const sample_args *a;
  const tokenizer *tok;
  int32_t *out;
  int n_out;
  size_t printed; /* bytes of the decoded text already on stdout */
} stream;

/* Streams the text the new ids add (decoding all of them: a character may
 * span tokens, so a partial one waits for the next). */
static int show(stream *st, int final, lt_error *err) {
  if (st->a->json || !st->tok) return 0;
  char *text;
  size_t len;
  if (tok_decode(st->tok, st->out, st->n_out, 1, &text, &len, err)) return -1;
  if (!final && len >= 3 && !memcmp(text + len - 3, "\xef\xbf\xbd", 3)) len -= 3;
  if (len > st->printed) fwrite(text + st->printed, 1, len - st->printed, stdout), st->printed = len;
  fflush(stdout);
  free(text);
  return 0;
}

static int is_stop(const stream *st, int id) {
  if (!st->tok) return 0;
  return id == tok_eos(st->tok) || (st->a->chat && id == tok_id(st->tok, "<|im_end|>"));
}

static void print_json(const stream *st, const int32_t *prompt, int n_prompt, double tps) {
  printf("{\"prompt_ids\":[");
  for (int i = 0; i < n_prompt; i++) printf("%s%d", i ? "," : "", prompt[i]);
  printf("],\"ids\":[");
  for (int i = 0; i < st->n_out; i++) printf("%s%d", i ? "," : "", st->out[i]);
  printf("],\"text\":");
  char *text = NULL;
  size_t len = 0;
  lt_error err;
  if (st->tok && tok_decode(st->tok, st->out, st->n_out, 1, &text, &len, &err) == 0)
    json_write_string(stdout, text);
  else
    printf("null");
  free(text);
  printf(",\"tokens_per_s\":");
  json_write_number(stdout, tps, 6);
  printf("}\n");
}

static int generate(const sample_args *a, ms_state *s, const tokenizer *tok, const int32_t *prompt,
                    int n_prompt, lt_error *err) {
  decoder d;
  if (decoder_create(&d, s, err)) return -1;
  stream st = {a, tok, malloc(sizeof(int32_t) * (size_t)a->max_new), 0, 0};
  float *scratch = malloc(sizeof(float) * 2 * (size_t)d.vocab);
  rng_state r;
  rng_seed(&r, a->seed);
  sampling o = {a->temperature, a->top_k, a->top_p};
  const float *logits;
  int rc = st.out && scratch ? decoder_feed(&d, prompt, n_prompt, &logits, err)
                             : lt_fail(err, "out of memory");
  double t0 = lt_now_ms();
  while (rc == 0 && st.n_out < a->max_new) {
    int id = sample_token(logits, d.vocab, &o, &r, scratch);
    if (is_stop(&st, id)) break;
    st.out[st.n_out++] = id;
    rc = show(&st, 0, err);
    if (rc == 0 && st.n_out < a->max_new) rc = decoder_feed(&d, &id, 1, &logits, err);
  }
  double tps = st.n_out / ((lt_now_ms() - t0) / 1e3 + 1e-9);
  if (rc == 0 && a->json) print_json(&st, prompt, n_prompt, tps);
  else if (rc == 0 && (rc = show(&st, 1, err)) == 0 && tok) putchar('\n');
  free(st.out);
  free(scratch);
  decoder_free(&d);
  return rc;
}

/* The model for one sequence of the prompt plus the new tokens, with its
 * weights, nothing training. */
static int open_state(const sample_args *a, const ir_model *m, const char *folder, int positions,
                      ms_state *s, lt_error *err) {
  if (m->max_seq > 0 && positions > m->max_seq)
    return lt_fail(err, "the prompt and --max-new-tokens %d need %d positions; %s allows %d",
                   a->max_new, positions, m->path, m->max_seq);
  return wt_open_frozen(s, m, 1, positions, a->weights_path, folder, a->ignore_unused, err);
}

static int run(const sample_args *a, const ir_model *m, const char *folder, lt_error *err) {
  tokenizer *tok = NULL;
  const char *tp = a->tokenizer_path ? a->tokenizer_path : folder[0] ? folder : NULL;
  if (a->prompt && !tp) return lt_fail(err, "%s: --prompt needs --tokenizer PATH", a->model_path);
  if (tp && (a->prompt || a->tokenizer_path) && tok_load(&tok, tp, err)) return -1;
  if (tok && tok_vocab_size(tok) > m->vocab_size) {
    lt_fail(err, "%s: %d tokens, more than the model's vocabulary %d", tp, tok_vocab_size(tok),
            m->vocab_size);
    return tok_free(tok), -1;
  }
  int32_t *prompt = NULL;
  int n_prompt = 0, rc = prompt_ids(a, tok, &prompt, &n_prompt, err);
  if (rc == 0 && n_prompt == 0) rc = lt_fail(err, "the prompt is empty (no token)");
  ms_state s;
  if (rc == 0 && (rc = open_state(a, m, folder, n_prompt + a->max_new, &s, err)) == 0) {
    rc = generate(a, &s, tok, prompt, n_prompt, err);
    ms_free(&s);
  }
  free(prompt);
  tok_free(tok);
  return rc;
}

int cli_sample(int argc, char **argv) {
  sample_args a;
  int rc;
  if (parse_sample_args(argc, argv, &a, &rc)) return rc;
  ir_model m;
  lt_error err;
  char folder[1024];
  rc = model_open(a.model_path, &m, folder, sizeof folder, &err) || ad_build_backward(&m, &err) ||
       run(&a, &m, folder, &err);
  if (rc) fprintf(stderr, "lisa sample: %s\n", err.msg);
  ir_model_free(&m);
  return rc ? 1 : 0;
}
