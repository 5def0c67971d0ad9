/* gen_tune.h: the kernels' tunable parameters (block sizes, rows per block)
 * as a table: per kernel, per parameter, the value used and its search
 * space. templates/tuning.lua (embedded into the binary) holds the defaults;
 * a user file of the same shape overrides entries of it:
 *
 *   return {
 *     attention_forward = {BQ = 16, THREADS = 64},          -- a value
 *     elementwise = {THREADS = {default = 128, space = {64, 128}}},
 *   }
 *
 * A user value must lie in the parameter's space; a user space must be a
 * subset of the default one (the values the template accepts). Kernels and
 * parameters the defaults do not name are errors. Lua runs sandboxed (base,
 * math, string, table; no file access). */
#ifndef LT_GEN_TUNE_H
#define LT_GEN_TUNE_H

#include "err.h"

typedef struct gen_tuning gen_tuning;

/* The embedded defaults, then user_path (NULL: none) over them. Errors name
 * the file (and the line for Lua errors). *out is NULL on failure. */
int gen_tune_load(gen_tuning **out, const char *user_path, lt_error *err);
/* The same with the user file's text given (name: how errors call it). */
int gen_tune_load_text(gen_tuning **out, const char *text, const char *name, lt_error *err);
void gen_tune_free(gen_tuning *t);

/* The value of kernel's param: 0 and *value, or -1 when the table lacks it. */
int gen_tune_get(const gen_tuning *t, const char *kernel, const char *param, int *value);

/* Walking the table (sorted by kernel, then parameter name). */
int gen_tune_n_kernels(const gen_tuning *t);
const char *gen_tune_kernel(const gen_tuning *t, int k);
int gen_tune_n_params(const gen_tuning *t, int k);
/* Parameter j of kernel k: its name, value and space (n_space values). */
const char *gen_tune_param(const gen_tuning *t, int k, int j, int *value, const int **space,
                           int *n_space);

#endif
