/* cli_sample.c: `lisa sample`, text from a model with a KV cache, on the
 * CPU backend (runtime/train/decode.h) or a device, CUDA or the emulator
 * (the generated decoding program, runtime/run/dev_sample.h), and a Hugging Face
 * tokenizer (runtime/tok/tokenizer.h).
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
#include "dev_sample.h"
#include "emu_device.h"
#include "weights.h"
#ifdef LISA_HAVE_GPU
#include "cuda_run.h"
#endif

static const char *const dtype_names[] = {"fp32", "bf16", NULL};

typedef struct {
  const char *model_path, *weights_path, *tokenizer_path, *prompt, *prompt_ids;
  int max_new, top_k, chat, json, ignore_unused, device, bf16;
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
    {"--device", CLIOPT_ENUM, AT(device), .names = cliopt_device_names,
     .help = "cuda: the generated decoding kernels; auto: cuda where\n"
             "a device is found, else the cpu backend (auto)"},
    {"--dtype", CLIOPT_ENUM, AT(bf16), .names = dtype_names, .meta = "P",
     .help = "cuda: fp32 (default) or bf16 weights and activations"},
};

static const cliopt_cmd sample_cmd = {
    "lisa sample", "usage: lisa sample MODEL (--prompt TEXT | --prompt-ids \"ID ...\") [options]\n"
                   "  generates text with a KV cache (cpu backend or cuda)\n",
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
  else if (a->bf16 && a->device == CLIOPT_DEVICE_CPU)
    *exit_status = cliopt_fail_usage(&sample_cmd, "the cpu backend runs fp32; --dtype bf16 "
                                                  "needs --device cuda or emu");
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

/* Where the model runs: the CPU decoder, or the device's. */
typedef struct {
  decoder cpu;
  dev_sampler *dev; /* NULL: the cpu */
} feeder;

static int feed(feeder *f, const int32_t *ids, int n, const float **logits, lt_error *err) {
  if (f->dev) return dev_sampler_feed(f->dev, ids, n, logits, err);
  return decoder_feed(&f->cpu, ids, n, logits, err);
}

static int generate(const sample_args *a, feeder *f, int vocab, const tokenizer *tok,
                    const int32_t *prompt, int n_prompt, lt_error *err) {
  stream st = {a, tok, malloc(sizeof(int32_t) * (size_t)a->max_new), 0, 0};
  float *scratch = malloc(sizeof(float) * 2 * (size_t)vocab);
  rng_state r;
  rng_seed(&r, a->seed);
  sampling o = {a->temperature, a->top_k, a->top_p};
  const float *logits;
  int rc = st.out && scratch ? feed(f, prompt, n_prompt, &logits, err)
                             : lt_fail(err, "out of memory");
  double t0 = lt_now_ms();
  while (rc == 0 && st.n_out < a->max_new) {
    int id = sample_token(logits, vocab, &o, &r, scratch);
    if (is_stop(&st, id)) break;
    st.out[st.n_out++] = id;
    rc = show(&st, 0, err);
    if (rc == 0 && st.n_out < a->max_new) rc = feed(f, &id, 1, &logits, err);
  }
  double tps = st.n_out / ((lt_now_ms() - t0) / 1e3 + 1e-9);
  if (rc == 0 && a->json) print_json(&st, prompt, n_prompt, tps);
  else if (rc == 0 && (rc = show(&st, 1, err)) == 0 && tok) putchar('\n');
  free(st.out);
  free(scratch);
  return rc;
}

/* A device's sampler for f, saying where on stderr (stdout is the text). */
static int open_sampler(const sample_args *a, const dev_provider *p, const char *name, feeder *f,
                        lt_error *err) {
  if (dev_sampler_open(&f->dev, p, err)) return -1;
  fprintf(stderr, "lisa sample: on %s (%s)\n", name, a->bf16 ? "bf16" : "fp32");
  return 0;
}

/* auto: CUDA where a device opens, else the CPU, saying why on stderr;
 * cuda, emu: the device or an error. */
static int choose_device(const sample_args *a, feeder *f, lt_error *err) {
  memset(f, 0, sizeof *f);
  if (a->device == CLIOPT_DEVICE_CPU) return 0;
  char name[256];
  dev_provider p;
  char why[sizeof err->msg];
  if (a->device == CLIOPT_DEVICE_EMU) {
    if (emu_provider_open(&p, name, sizeof name, err) == 0 && open_sampler(a, &p, name, f, err) == 0)
      return 0;
    snprintf(why, sizeof why, "%s", err->msg);
    return lt_fail(err, "--device emu: %.900s", why);
  }
#ifdef LISA_HAVE_GPU
  if (cuda_provider_open(&p, 0, name, sizeof name, err) == 0 && open_sampler(a, &p, name, f, err) == 0)
    return 0;
#else
  lt_fail(err, "this build has no CUDA support (no toolkit when it was built)");
#endif
  snprintf(why, sizeof why, "%s", err->msg);
  if (a->device == CLIOPT_DEVICE_CUDA) return lt_fail(err, "--device cuda: %.900s", why);
  if (a->bf16) return lt_fail(err, "--dtype bf16 needs a CUDA device: %.900s", why);
  fprintf(stderr, "lisa sample: device auto: %s; using the cpu backend\n", why);
  return 0;
}

/* The model for one sequence of the prompt plus the new tokens, with its
 * weights, nothing training; its decoder on the device or the cpu. */
static int open_model(const sample_args *a, const ir_model *m, const char *folder, int positions,
                      ms_state *s, feeder *f, lt_error *err) {
  if (m->max_seq > 0 && positions > m->max_seq)
    return lt_fail(err, "the prompt and --max-new-tokens %d need %d positions; %s allows %d",
                   a->max_new, positions, m->path, m->max_seq);
  const int on_device = f->dev != NULL;
  if (wt_open_frozen(s, m, 1, positions, a->weights_path, folder, a->ignore_unused, on_device,
                     err))
    return -1;
  int rc = on_device ? dev_sampler_prepare(f->dev, s, wt_frozen_source(a->weights_path, folder),
                                            a->ignore_unused, positions, a->bf16, err)
                     : decoder_create(&f->cpu, s, err);
  if (rc) ms_free(s);
  return rc;
}

static void close_feeder(feeder *f) {
  if (f->dev) return dev_sampler_close(f->dev);
  decoder_free(&f->cpu);
}

static int run(const sample_args *a, const ir_model *m, const char *folder, feeder *f,
               lt_error *err) {
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
  if (rc == 0 && (rc = open_model(a, m, folder, n_prompt + a->max_new, &s, f, err)) == 0) {
    rc = generate(a, f, m->vocab_size, tok, prompt, n_prompt, err);
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
  ir_model m = {0};
  lt_error err;
  char folder[1024];
  feeder f;
  rc = choose_device(&a, &f, &err) ||
       model_open(a.model_path, &m, folder, sizeof folder, &err) || ad_build_backward(&m, &err) ||
       run(&a, &m, folder, &f, &err);
  if (rc) fprintf(stderr, "lisa sample: %s\n", err.msg);
  close_feeder(&f);
  ir_model_free(&m);
  return rc ? 1 : 0;
}
