/* cli_opts.c: one parser and one usage printer over a cliopt table. */
#include "cli_opts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memory_plan.h"
#include "train.h"

const char *const cliopt_method_names[] = {"ft", "lisa", "lora", NULL};
_Static_assert(TRAIN_FT == 0 && TRAIN_LISA == 1 && TRAIN_LORA == 2, "the method is the index");
const char *const cliopt_dtype_names[] = {"fp32", "bf16", "bf16-mixed", "bf16-true", NULL};
const int cliopt_dtype_values[] = {PRECISION_FP32, PRECISION_BF16_MIXED, PRECISION_BF16_MIXED, PRECISION_BF16_TRUE};
const char *const cliopt_rounding_names[] = {"stochastic", "nearest", NULL};
const char *const cliopt_device_names[] = {"auto", "cpu", "cuda", "emu", NULL};

/* "a, b or c" (sep ", ") or "a|b|c" (sep "|", last "|"). */
static void join_names(const char *const *names, const char *sep, const char *last, char *out,
                       size_t cap) {
  size_t len = 0;
  out[0] = 0;
  for (int i = 0; names[i] && len < cap; i++) {
    const char *between = i == 0 ? "" : names[i + 1] ? sep : last;
    len += (size_t)snprintf(out + len, cap - len, "%s%s", between, names[i]);
  }
}

/* strtod's whole-string parse; integers go through it too, so 1e6 is one. */
static int parse_double(const char *text, double *v) {
  char *end;
  errno = 0;
  *v = strtod(text, &end);
  return errno || end == text || *end ? -1 : 0;
}

static int bad_number(const cliopt *o, const char *text, int integer, lt_error *err) {
  if (integer)
    return lt_fail(err, "%s: '%s' is not an integer in [%.0f, %.0f]", o->name, text, o->lo, o->hi);
  return lt_fail(err, "%s: '%s' is not a number in %c%g, %g]", o->name, text,
                 o->lo_open ? '(' : '[', o->lo, o->hi);
}

static int set_number(const cliopt *o, char *dest, const char *text, lt_error *err) {
  int integer = o->kind == CLIOPT_INT || o->kind == CLIOPT_INT64;
  double v;
  if (parse_double(text, &v)) return bad_number(o, text, integer, err);
  int in_range = (o->lo_open ? v > o->lo : v >= o->lo) && v <= o->hi; /* false for NaN */
  if (!in_range || (integer && v != (double)(int64_t)v)) return bad_number(o, text, integer, err);
  switch (o->kind) {
  case CLIOPT_INT: *(int *)dest = (int)v; break;
  case CLIOPT_INT64: *(int64_t *)dest = (int64_t)v; break;
  case CLIOPT_FLOAT: *(float *)dest = (float)v; break;
  default: *(double *)dest = v; break;
  }
  return 0;
}

/* All 64 bits: not through a double. */
static int set_uint64(const cliopt *o, char *dest, const char *text, lt_error *err) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || text[0] < '0' || text[0] > '9' || *end)
    return lt_fail(err, "%s: '%s' is not an integer in [0, %llu]", o->name, text,
                   (unsigned long long)UINT64_MAX);
  *(uint64_t *)dest = v;
  return 0;
}

static int set_enum(const cliopt *o, char *dest, const char *text, lt_error *err) {
  for (int i = 0; o->names[i]; i++)
    if (!strcmp(text, o->names[i])) {
      *(int *)dest = o->values ? o->values[i] : i;
      return 0;
    }
  char words[256];
  join_names(o->names, ", ", " or ", words, sizeof words);
  return lt_fail(err, "%s: '%s' is not %s", o->name, text, words);
}

static int set_value(const cliopt *o, void *args, const char *text, lt_error *err) {
  char *dest = (char *)args + o->off;
  switch (o->kind) {
  case CLIOPT_STRING: *(const char **)dest = text; return 0;
  case CLIOPT_ENUM: return set_enum(o, dest, text, err);
  case CLIOPT_UINT64: return set_uint64(o, dest, text, err);
  default: return set_number(o, dest, text, err);
  }
}

static const cliopt *find_option(const cliopt_cmd *c, const char *name) {
  for (size_t i = 0; i < c->n_opts; i++)
    if (!strcmp(name, c->opts[i].name)) return &c->opts[i];
  return NULL;
}

int cliopt_parse(const cliopt_cmd *c, int argc, char **argv, void *args, cliopt_result *r,
                 lt_error *err) {
  memset(r, 0, sizeof *r);
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return CLIOPT_HELP;
    if (arg[0] != '-' || !arg[1]) {
      if (r->positional) return lt_fail(err, "unexpected argument '%s'", arg), CLIOPT_BAD_USAGE;
      r->positional = arg;
      continue;
    }
    const cliopt *o = find_option(c, arg);
    if (!o) return lt_fail(err, "unknown option '%s'", arg), CLIOPT_BAD_USAGE;
    if (o->kind == CLIOPT_FLAG) *(int *)((char *)args + o->off) = 1;
    else if (i + 1 >= argc) return lt_fail(err, "%s needs a value", arg), CLIOPT_BAD_USAGE;
    else if (set_value(o, args, argv[++i], err)) return CLIOPT_BAD_VALUE;
    if (o->tag > 0 && o->tag < CLIOPT_NTAGS) r->tagged[o->tag] = o->name;
  }
  return CLIOPT_OK;
}

/* One row: the name and meta in the column, the help beside it; a name too
 * long for the column pushes the help two spaces past it. */
static void usage_row(const cliopt_cmd *c, const cliopt *o, FILE *f) {
  char left[256], words[200];
  const char *meta = o->meta;
  if (!meta && o->kind == CLIOPT_ENUM) {
    join_names(o->names, "|", "|", words, sizeof words);
    meta = words;
  }
  int n = snprintf(left, sizeof left, "%s%s%s", o->name, meta ? " " : "", meta ? meta : "");
  fprintf(f, "  %-*s%s", c->width, left, n <= c->width ? " " : "  ");
  for (const char *h = o->help; *h; h++) {
    fputc(*h, f);
    if (*h == '\n') fprintf(f, "%*s", c->width + 3, "");
  }
  fputc('\n', f);
}

void cliopt_usage(const cliopt_cmd *c, FILE *f) {
  fputs(c->usage, f);
  for (size_t i = 0; i < c->n_opts; i++)
    if (c->opts[i].help) usage_row(c, &c->opts[i], f);
}

int cliopt_fail_usage(const cliopt_cmd *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", c->prog);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  cliopt_usage(c, stderr);
  return 2;
}

int cliopt_finish(const cliopt_cmd *c, int rc, const lt_error *err) {
  if (rc == CLIOPT_HELP) return cliopt_usage(c, stdout), 0;
  if (rc == CLIOPT_BAD_USAGE) return cliopt_fail_usage(c, "%s", err->msg);
  fprintf(stderr, "%s: %s\n", c->prog, err->msg);
  return 2;
}
