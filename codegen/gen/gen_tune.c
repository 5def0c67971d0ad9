/* gen_tune.c: the tunables table (gen_tune.h), read with Lua 5.4 from the
 * embedded templates/tuning.lua and an optional user file over it. */
#include "gen_tune.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_sandbox.h"

/* templates/tuning.lua, embedded at build time (codegen/gen/embed_files.c) */
extern const struct { const char *name, *text; } gen_tuning_files[];

#define MAX_KERNELS 64
#define MAX_PARAMS 8
#define MAX_SPACE 32
#define MAX_INSTRUCTIONS 10000000

typedef struct {
  char name[32];
  int value, n_space;
  int space[MAX_SPACE];
} tparam;

typedef struct {
  char name[64];
  int n_params;
  tparam params[MAX_PARAMS];
} tkernel;

struct gen_tuning {
  int n;
  tkernel k[MAX_KERNELS];
};

typedef struct {
  gen_tuning *t;
  const char *file; /* for messages */
  int user;         /* 0: the defaults (they declare); 1: overrides */
  int extend;       /* declaring: kernels may exist already (new parameters) */
  lt_error *err;
  int failed;
} load_job;

static tkernel *find_kernel(gen_tuning *t, const char *name) {
  for (int i = 0; i < t->n; i++)
    if (!strcmp(t->k[i].name, name)) return &t->k[i];
  return NULL;
}

static tparam *find_param(tkernel *k, const char *name) {
  for (int i = 0; i < k->n_params; i++)
    if (!strcmp(k->params[i].name, name)) return &k->params[i];
  return NULL;
}

static int in_space(const int *space, int n, int v) {
  for (int i = 0; i < n; i++)
    if (space[i] == v) return 1;
  return 0;
}

static void space_text(char *buf, size_t cap, const int *space, int n) {
  size_t len = (size_t)snprintf(buf, cap, "{");
  for (int i = 0; i < n && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", space[i]);
  if (len < cap) snprintf(buf + len, cap - len, "}");
}

static int job_fail(load_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int job_fail(load_job *j, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  j->failed = 1;
  return lt_fail(j->err, "%s: %s", j->file, msg);
}

/* The integer at idx into *v: 0, or -1 when it is no integer. */
static int to_int(lua_State *L, int idx, int *v) {
  if (lua_type(L, idx) != LUA_TNUMBER) return -1;
  int isnum = 0;
  lua_Integer x = lua_tointegerx(L, idx, &isnum);
  if (!isnum || x < -(1 << 30) || x > (1 << 30)) return -1;
  *v = (int)x;
  return 0;
}

/* The table at the top: an array of integers into space[]. */
static int read_space(lua_State *L, load_job *j, const char *kn, const char *pn, int *space,
                      int *n) {
  if (lua_type(L, -1) != LUA_TTABLE)
    return job_fail(j, "%s.%s: space must be a list of integers, not a %s", kn, pn,
                    luaL_typename(L, -1));
  lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
  if (len < 1 || len > MAX_SPACE)
    return job_fail(j, "%s.%s: space must hold 1 to %d values, not %lld", kn, pn, MAX_SPACE,
                    (long long)len);
  /* no keys besides 1..len */
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 ||
        lua_tointeger(L, -1) > len) {
      return job_fail(j, "%s.%s: space must be a list of integers, not a table with other keys",
                      kn, pn);
    }
  }
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, -1, i);
    int v;
    /* USE (whether the generator takes that kernel) and the tests' FLIP
     * are switches, 0 or 1; every other tunable is a size */
    int is_switch = !strcmp(pn, "USE") || !strcmp(pn, "FLIP");
    if (to_int(L, -1, &v) || (is_switch ? v != 0 && v != 1 : v < 1)) {
      lua_pop(L, 1);
      return job_fail(j, "%s.%s: space entry %lld must be %s", kn, pn, (long long)i,
                      is_switch ? "0 or 1" : "a positive integer");
    }
    lua_pop(L, 1);
    if (in_space(space, (int)i - 1, v))
      return job_fail(j, "%s.%s: space lists %d twice", kn, pn, v);
    space[i - 1] = v;
  }
  *n = (int)len;
  return 0;
}

/* One parameter: the value at the top of the stack, its name pn. */
static int read_param(lua_State *L, load_job *j, tkernel *k, const char *pn) {
  tparam *p = find_param(k, pn);
  if (j->user && !p) {
    char known[256] = "";
    for (int i = 0; i < k->n_params; i++)
      snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
               k->params[i].name);
    return job_fail(j, "kernel '%s' has no tunable '%s' (it has: %s)", k->name, pn, known);
  }
  if (!j->user && p) return job_fail(j, "%s.%s: declared twice", k->name, pn);
  int value = 0, has_value = 0, space[MAX_SPACE], n_space = 0;
  if (j->user && lua_type(L, -1) == LUA_TNUMBER) {
    if (to_int(L, -1, &value))
      return job_fail(j, "%s.%s: must be an integer, not %s", k->name, pn, lua_tostring(L, -1));
    has_value = 1;
  } else if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      const char *field = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      if (field && !strcmp(field, "default")) {
        if (to_int(L, -1, &value))
          return job_fail(j, "%s.%s: default must be an integer, not a %s", k->name, pn,
                          luaL_typename(L, -1));
        has_value = 1;
      } else if (field && !strcmp(field, "space")) {
        if (read_space(L, j, k->name, pn, space, &n_space)) return -1;
      } else {
        return job_fail(j, "%s.%s: unknown field '%s' (a parameter has default and space)",
                        k->name, pn, field ? field : "(not a string)");
      }
      lua_pop(L, 1);
    }
  } else {
    return job_fail(j, "%s.%s: must be %s, not a %s", k->name, pn,
                    j->user ? "an integer or {default = x, space = {...}}"
                            : "{default = x, space = {...}}",
                    luaL_typename(L, -1));
  }
  char sp[200];
  if (!j->user) {
    if (!has_value || !n_space)
      return job_fail(j, "%s.%s: needs both default and space", k->name, pn);
    if (k->n_params == MAX_PARAMS) return job_fail(j, "%s: more than %d tunables", k->name, MAX_PARAMS);
    p = &k->params[k->n_params++];
    snprintf(p->name, sizeof p->name, "%s", pn);
    if (strlen(pn) >= sizeof p->name) return job_fail(j, "%s.%s: name too long", k->name, pn);
  } else if (n_space) {
    /* a narrower search space: only values the template accepts */
    for (int i = 0; i < n_space; i++)
      if (!in_space(p->space, p->n_space, space[i]))
        return space_text(sp, sizeof sp, p->space, p->n_space),
               job_fail(j, "%s.%s: space value %d is outside the template's space %s", k->name,
                        pn, space[i], sp);
  }
  if (n_space) memcpy(p->space, space, sizeof space), p->n_space = n_space;
  if (has_value) p->value = value;
  if (!in_space(p->space, p->n_space, p->value)) {
    space_text(sp, sizeof sp, p->space, p->n_space);
    return job_fail(j, "%s.%s: %s %d is not in its space %s", k->name, pn,
                    has_value ? (j->user ? "value" : "default") : "the default", p->value, sp);
  }
  return 0;
}

/* lua_pcall'ed: the chunk's result (upvalue-free: the job is a light
 * userdata at index 1, the table at 2). Lua errors (memory) are caught. */
static int read_table(lua_State *L) {
  load_job *j = lua_touserdata(L, 1);
  if (lua_type(L, 2) != LUA_TTABLE)
    return job_fail(j, "must return a table of kernels, not a %s", luaL_typename(L, 2)), 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return job_fail(j, "kernel names must be strings, not a %s", luaL_typename(L, -2)), 0;
    const char *kn = lua_tostring(L, -2);
    tkernel *k = find_kernel(j->t, kn);
    if (j->user && !k) {
      char known[1024] = "";
      for (int i = 0; i < j->t->n; i++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                 j->t->k[i].name);
      return job_fail(j, "unknown kernel '%s' (tunable: %s)", kn, known), 0;
    }
    if (!j->user) {
      if (k && !j->extend) return job_fail(j, "kernel '%s' declared twice", kn), 0;
      if (!k && j->t->n == MAX_KERNELS) return job_fail(j, "more than %d kernels", MAX_KERNELS), 0;
      if (strlen(kn) >= sizeof k->name) return job_fail(j, "kernel name '%s' too long", kn), 0;
      if (!k) k = &j->t->k[j->t->n++], snprintf(k->name, sizeof k->name, "%s", kn);
    }
    if (lua_type(L, -1) != LUA_TTABLE)
      return job_fail(j, "%s: must be a table of parameters, not a %s", kn, luaL_typename(L, -1)),
             0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        return job_fail(j, "%s: parameter names must be strings, not a %s", kn,
                        luaL_typename(L, -2)),
               0;
      if (read_param(L, j, k, lua_tostring(L, -2))) return 0;
      lua_pop(L, 1);
    }
    if (!j->user && !k->n_params) return job_fail(j, "%s: no parameters", kn), 0;
    lua_pop(L, 1);
  }
  return 0;
}

static int run_chunk(gen_tuning *t, const char *text, const char *file, int user, int extend,
                     lt_error *err) {
  lsb_box box = lsb_defaults(file);
  box.max_instructions = MAX_INSTRUCTIONS;
  lua_State *L = lsb_new(&box, err);
  if (!L) return -1;
  /* a tuning table is data: no loading of code at all */
  static const char *const unsafe[] = {"load", "collectgarbage"};
  lsb_remove(L, unsafe, 2);
  int rc = 0;
  if (lsb_load_text(L, text, strlen(text)) != LUA_OK || lsb_pcall(L, 0, 1) != LUA_OK) {
    rc = lsb_fail(L, "", err);
  } else {
    load_job j = {t, file, user, extend, err, 0};
    lua_pushcfunction(L, read_table);
    lua_pushlightuserdata(L, &j);
    lua_pushvalue(L, -3);
    if (lsb_pcall(L, 2, 0) != LUA_OK) rc = lsb_fail(L, "", err);
    else if (j.failed) rc = -1;
  }
  lua_close(L);
  return rc;
}

static int by_kernel(const void *a, const void *b) {
  return strcmp(((const tkernel *)a)->name, ((const tkernel *)b)->name);
}
static int by_param(const void *a, const void *b) {
  return strcmp(((const tparam *)a)->name, ((const tparam *)b)->name);
}

static const char *embedded(const char *name) {
  for (int i = 0; gen_tuning_files[i].name; i++)
    if (!strcmp(gen_tuning_files[i].name, name)) return gen_tuning_files[i].text;
  return NULL;
}

/* LISA_TEST_TUNABLES=1: tuning_test.lua's deliberately wrong variants too */
static int test_tunables(void) {
  const char *e = getenv("LISA_TEST_TUNABLES");
  return e && !strcmp(e, "1");
}

static int load_defaults(gen_tuning **out, lt_error *err) {
  *out = NULL;
  const char *text = embedded("tuning.lua"), *test = embedded("tuning_test.lua");
  if (!text || !test) return lt_fail(err, "gen: templates/tuning.lua is not embedded");
  gen_tuning *t = calloc(1, sizeof *t);
  if (!t) return lt_fail(err, "gen: out of memory");
  if (run_chunk(t, text, "templates/tuning.lua", 0, 0, err) ||
      (test_tunables() && run_chunk(t, test, "templates/tuning_test.lua", 0, 1, err)))
    return free(t), -1;
  qsort(t->k, (size_t)t->n, sizeof t->k[0], by_kernel);
  for (int i = 0; i < t->n; i++)
    qsort(t->k[i].params, (size_t)t->k[i].n_params, sizeof(tparam), by_param);
  *out = t;
  return 0;
}

int gen_tune_load_text(gen_tuning **out, const char *text, const char *name, lt_error *err) {
  if (load_defaults(out, err)) return -1;
  if (text && run_chunk(*out, text, name ? name : "(tuning)", 1, 0, err)) {
    gen_tune_free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

int gen_tune_load(gen_tuning **out, const char *user_path, lt_error *err) {
  *out = NULL;
  if (!user_path) return gen_tune_load_text(out, NULL, NULL, err);
  FILE *f = fopen(user_path, "rb");
  if (!f) return lt_fail(err, "%s: cannot open the tuning file", user_path);
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? 2 * cap : 8192;
      char *nt = realloc(text, cap);
      if (!nt) return free(text), fclose(f), lt_fail(err, "%s: out of memory", user_path);
      text = nt;
    }
    size_t got = fread(text + len, 1, 4096, f);
    len += got;
    if (got < 4096) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) return free(text), lt_fail(err, "%s: read error", user_path);
  text[len] = 0;
  if (strlen(text) != len)
    return free(text), lt_fail(err, "%s: not a text file (NUL bytes)", user_path);
  int rc = gen_tune_load_text(out, text, user_path, err);
  free(text);
  return rc;
}

void gen_tune_free(gen_tuning *t) { free(t); }

int gen_tune_get(const gen_tuning *t, const char *kernel, const char *param, int *value) {
  if (!t) return -1;
  tkernel *k = find_kernel((gen_tuning *)t, kernel);
  tparam *p = k ? find_param(k, param) : NULL;
  if (!p) return -1;
  *value = p->value;
  return 0;
}

int gen_tune_n_kernels(const gen_tuning *t) { return t ? t->n : 0; }

const char *gen_tune_kernel(const gen_tuning *t, int k) {
  return t && k >= 0 && k < t->n ? t->k[k].name : NULL;
}

int gen_tune_n_params(const gen_tuning *t, int k) {
  return t && k >= 0 && k < t->n ? t->k[k].n_params : 0;
}

const char *gen_tune_param(const gen_tuning *t, int k, int j, int *value, const int **space,
                           int *n_space) {
  if (!t || k < 0 || k >= t->n || j < 0 || j >= t->k[k].n_params) return NULL;
  const tparam *p = &t->k[k].params[j];
  if (value) *value = p->value;
  if (space) *space = p->space;
  if (n_space) *n_space = p->n_space;
  return p->name;
}
