/* lua_expr.h: activation expressions defined in a Lua file.
 *
 * The file returns a table from names to expression strings, or to
 * functions that return one; such a function is called with the model's
 * config as a table (name -> number), so it can build an expression from
 * config values:
 *
 *   return {
 *     quick_gelu = "x * sigmoid(1.702 * x)",
 *     scaled = function(cfg) return string.format("%g * tanh(x)", cfg.k) end,
 *   }
 *
 * The file runs in a sandbox (base, math, string, table; no io, os, dofile,
 * loadfile) with an instruction budget, so a model file cannot touch the
 * machine or hang the loader. */
#ifndef LT_LUA_EXPR_H
#define LT_LUA_EXPR_H

#include "err.h"
#include "ir.h"

enum { LUA_EXPR_FILE_ERROR = -1, LUA_EXPR_NO_NAME = -2 };

/* Runs the file at path and sets *text (malloc'd, the caller frees) to the
 * expression named `name`. Returns 0, LUA_EXPR_NO_NAME when the table has no
 * such entry, or LUA_EXPR_FILE_ERROR for anything else (Lua's message names
 * path:line). */
int lua_expr_load(const char *path, const char *name, const ir_config_entry *config,
                  int n_config, char **text, lt_error *err);

#endif
