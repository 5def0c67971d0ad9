/* cli_opts.h: the option table the three commands parse with, and the usage
 * text printed from the same table, so each option is described once. */
#ifndef LT_CLI_OPTS_H
#define LT_CLI_OPTS_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef enum {
  CLIOPT_INT,    /* int, within [lo, hi] */
  CLIOPT_INT64,  /* int64_t, within [lo, hi] */
  CLIOPT_UINT64, /* uint64_t, any 64-bit value (seeds) */
  CLIOPT_FLOAT,  /* float, within [lo, hi] */
  CLIOPT_DOUBLE, /* double, within [lo, hi] */
  CLIOPT_STRING, /* const char *, the argument itself */
  CLIOPT_ENUM,   /* int: values[i] (or i) for the word names[i] */
  CLIOPT_FLAG,   /* int set to 1; takes no value */
} cliopt_kind;

enum { CLIOPT_NTAGS = 4 };

/* Tables are static: each option says where its value goes as an offset
 * into the command's argument struct. */
typedef struct {
  const char *name; /* "--batch", "-o" */
  cliopt_kind kind;
  size_t off;               /* offsetof(the argument struct, the field) */
  double lo, hi;            /* numbers: the valid range, both ends included */
  int lo_open;              /* 1: lo itself is not (a positive size) */
  const char *const *names; /* enum: the accepted words, NULL-terminated */
  const int *values;        /* enum: what each word stores; NULL: its index */
  const char *meta; /* usage: what follows the name ("B --seq T"); enum: NULL = a|b|c */
  const char *help; /* usage: '\n' continues the column; NULL: not listed */
  int tag;          /* the command's own grouping (1 .. CLIOPT_NTAGS - 1); 0: none */
} cliopt;

typedef struct {
  const char *positional;             /* the one argument that is no option */
  const char *tagged[CLIOPT_NTAGS];   /* per tag, the last option given with it */
} cliopt_result;

typedef struct {
  const char *prog;  /* "lisa gen": the start of every message */
  const char *usage; /* the lines above the option list */
  int width;         /* the option column's width in the usage text */
  const cliopt *opts;
  size_t n_opts;
} cliopt_cmd;

enum { CLIOPT_OK = 0, CLIOPT_HELP = 1, CLIOPT_BAD_VALUE = -1, CLIOPT_BAD_USAGE = -2 };

/* Fills the fields of args from argv; *r says what else was seen. Returns a
 * CLIOPT_ code; on errors err says what, naming the option and the value. */
int cliopt_parse(const cliopt_cmd *c, int argc, char **argv, void *args, cliopt_result *r,
                 lt_error *err);

/* The usage line(s) and one row per listed option. */
void cliopt_usage(const cliopt_cmd *c, FILE *f);

/* The exit status of a parse that did not return CLIOPT_OK: help on stdout
 * (0), or the message on stderr (2), with the usage for usage mistakes. */
int cliopt_finish(const cliopt_cmd *c, int rc, const lt_error *err);

/* "prog: message" and the usage on stderr; returns 2, the usage-error
 * status, for the checks a command makes across its options. */
int cliopt_fail_usage(const cliopt_cmd *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Word lists all three commands accept. */
extern const char *const cliopt_method_names[];  /* ft lisa lora: enum train_method */
extern const char *const cliopt_dtype_names[];   /* fp32 bf16 bf16-mixed bf16-true */
extern const int cliopt_dtype_values[];          /* their enum precision */
extern const char *const cliopt_rounding_names[]; /* stochastic nearest: 1 = nearest */
/* --device of lisa train and lisa sample: the index is the enum. */
enum cliopt_device { CLIOPT_DEVICE_AUTO, CLIOPT_DEVICE_CPU, CLIOPT_DEVICE_CUDA, CLIOPT_DEVICE_EMU };
extern const char *const cliopt_device_names[];  /* auto cpu cuda */

#endif
