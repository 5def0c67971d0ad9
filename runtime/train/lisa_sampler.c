/* lisa_sampler.c: the LISA active-set draw (see lisa_sampler.h). */
#include "lisa_sampler.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_sandbox.h"
#include "rng.h"

struct lisa_sampler {
  lisa_sampler_config cfg; /* cfg.lua_path points at our own copy */
  int *perm;               /* [n_layers] Fisher-Yates scratch */
  int *chosen;             /* [n_layers] 0, or the block's 1-based place */
  int *cached;             /* [n_layers] the last period's set, ascending */
  int n_cached;
  int64_t cached_start;    /* first step of that period; -1: none yet */
  rng_state rng;           /* the period's stream; ctx.random draws from it */
  lua_State *L;            /* lua mode: the state of the draw under way, else NULL */
  lsb_box box;             /* its limits */
  char *policy;            /* lua mode: the policy file's text, read once */
  size_t policy_len;
  const lisa_layer_stats *stats; /* handed to the protected policy call */
  int64_t period_start;
};

int lisa_sample_mode_from_name(const char *name) {
  static const char *const names[] = {"uniform", "bernoulli", "lua"};
  for (int m = 0; m < 3; m++)
    if (strcmp(name, names[m]) == 0) return m;
  return -1;
}

static int check_config(const lisa_sampler_config *c, lt_error *err) {
  if (c->mode < LISA_SAMPLE_UNIFORM || c->mode > LISA_SAMPLE_LUA)
    return lt_fail(err, "unknown layer sampling mode %d", c->mode);
  if (c->n_layers < 1)
    return lt_fail(err, "LISA needs at least one middle block (the model has %d)",
                   c->n_layers);
  if (c->gamma < 0) return lt_fail(err, "--gamma %d must be at least 0", c->gamma);
  if (c->gamma > c->n_layers)
    return lt_fail(err, "--gamma %d exceeds the model's %d middle blocks", c->gamma,
                   c->n_layers);
  if (c->interval < 1)
    return lt_fail(err, "--interval %lld must be at least 1", (long long)c->interval);
  if (c->mode == LISA_SAMPLE_LUA && (!c->lua_path || !c->lua_path[0]))
    return lt_fail(err, "lua layer sampling needs a policy file");
  return 0;
}

/* ---- Lua: the sandbox, ctx, and checking what the policy returns ---- */

static int lua_no_math_random(lua_State *L) {
  return luaL_error(L, "math.random is not seeded by the run's seed; "
                       "use ctx.random() or ctx.randint(n)");
}

static int ctx_random(lua_State *L) {
  lua_pushnumber(L, rng_uniform(lua_touserdata(L, lua_upvalueindex(1))));
  return 1;
}

static int ctx_randint(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1, 1, "must be at least 1");
  lua_pushinteger(L, (lua_Integer)rng_below(lua_touserdata(L, lua_upvalueindex(1)),
                                            (uint64_t)n));
  return 1;
}

static void no_math_random(lua_State *L) {
  /* Lua seeds its own generator from the clock: a policy using it would
   * make runs irreproducible, so it must use ctx.random instead. */
  lua_getglobal(L, LUA_MATHLIBNAME);
  lua_pushcfunction(L, lua_no_math_random);
  lua_setfield(L, -2, "random");
  lua_pushcfunction(L, lua_no_math_random);
  lua_setfield(L, -2, "randomseed");
  lua_pop(L, 1);
}

/* Protected (every Lua error, out-of-memory included, is caught): runs the
 * policy's text, checks it defines sample_layers. */
static int policy_open(lua_State *L) {
  const lisa_sampler *s = lua_touserdata(L, 1);
  const char *path = s->cfg.lua_path;
  no_math_random(L);
  if (lsb_load_text(L, s->policy, s->policy_len) != LUA_OK) return lua_error(L);
  lua_call(L, 0, 0);
  int type = lua_getglobal(L, "sample_layers");
  if (type == LUA_TNIL)
    return luaL_error(L, "%s: defines no function sample_layers(ctx)", path);
  if (type != LUA_TFUNCTION)
    return luaL_error(L, "%s: sample_layers is a %s, not a function", path,
                      lua_typename(L, type));
  return 0;
}

static void push_norms(lua_State *L, const double *norms, int n, const char *name) {
  if (!norms) return;
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushnumber(L, norms[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, name);
}

static void push_ctx(lua_State *L, lisa_sampler *s) {
  const lisa_sampler_config *c = &s->cfg;
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, s->period_start);
  lua_setfield(L, -2, "step");
  lua_pushinteger(L, c->n_layers);
  lua_setfield(L, -2, "n_layers");
  lua_pushinteger(L, c->gamma);
  lua_setfield(L, -2, "gamma");
  lua_pushinteger(L, c->interval);
  lua_setfield(L, -2, "interval");
  lua_pushlightuserdata(L, &s->rng);
  lua_pushcclosure(L, ctx_random, 1);
  lua_setfield(L, -2, "random");
  lua_pushlightuserdata(L, &s->rng);
  lua_pushcclosure(L, ctx_randint, 1);
  lua_setfield(L, -2, "randint");
  if (s->stats) {
    push_norms(L, s->stats->weight_norms, c->n_layers, "weight_norms");
    push_norms(L, s->stats->grad_norms, c->n_layers, "grad_norms");
  }
}

/* Protected: builds ctx and calls sample_layers; leaves its one result. */
static int policy_call(lua_State *L) {
  lisa_sampler *s = lua_touserdata(L, 1);
  lua_getglobal(L, "sample_layers");
  push_ctx(L, s);
  lua_call(L, 1, 1);
  return 1;
}

/* Checks entry i (1-based) of the result table and marks its block. */
static int take_entry(lisa_sampler *s, int t, int i, lt_error *err) {
  lua_State *L = s->L;
  const char *path = s->cfg.lua_path;
  int n = s->cfg.n_layers, isint = 0;
  int type = lua_rawgeti(L, t, i);
  if (type != LUA_TNUMBER)
    return lt_fail(err, "%s: sample_layers returned a %s at position %d, not an integer",
                   path, lua_typename(L, type), i);
  lua_Integer b = lua_tointegerx(L, -1, &isint); /* 2.0 counts as 2 */
  if (!isint)
    return lt_fail(err, "%s: sample_layers returned %.14g at position %d, not an integer",
                   path, lua_tonumber(L, -1), i);
  lua_pop(L, 1);
  if (b < 0 || b >= n)
    return lt_fail(err, "%s: sample_layers returned %lld at position %d, outside [0, %d)",
                   path, (long long)b, i, n);
  if (s->chosen[b])
    return lt_fail(err, "%s: sample_layers returned %lld twice (positions %d and %d)",
                   path, (long long)b, s->chosen[b], i);
  s->chosen[b] = i;
  return 0;
}

/* The result at the top of the stack must be a sequence of distinct block
 * indices. Raw accesses only: none of these calls can raise a Lua error. */
static int take_result(lisa_sampler *s, lt_error *err) {
  lua_State *L = s->L;
  const char *path = s->cfg.lua_path;
  int t = lua_gettop(L);
  if (!lua_istable(L, t))
    return lt_fail(err, "%s: sample_layers returned a %s, expected a table of block indices",
                   path, luaL_typename(L, t));
  lua_Unsigned len = lua_rawlen(L, t);
  if (len > (lua_Unsigned)s->cfg.n_layers)
    return lt_fail(err, "%s: sample_layers returned %llu entries, more than the %d middle blocks",
                   path, (unsigned long long)len, s->cfg.n_layers);
  for (int i = 1; i <= (int)len; i++)
    if (take_entry(s, t, i, err)) return -1;
  lua_Unsigned keys = 0;
  for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) keys++;
  if (keys != len)
    return lt_fail(err, "%s: sample_layers returned a table with keys other than 1..%llu",
                   path, (unsigned long long)len);
  return 0;
}

/* A fresh state with the policy loaded and checked: nothing a draw leaves
 * in it (globals, upvalues) reaches the next one, so each period's draw is a
 * function of its ctx alone and a resumed run draws what a straight one did. */
static int policy_state(lisa_sampler *s, const char *where, lt_error *err) {
  s->box = lsb_defaults(s->cfg.lua_path);
  if (!(s->L = lsb_new(&s->box, err))) return -1;
  lua_pushcfunction(s->L, policy_open);
  lua_pushlightuserdata(s->L, s);
  if (lsb_pcall(s->L, 1, 0) == LUA_OK) return 0;
  return lsb_fail(s->L, where, err);
}

static void close_state(lisa_sampler *s) {
  if (s->L) lua_close(s->L);
  s->L = NULL;
}

static int draw_lua(lisa_sampler *s, const lisa_layer_stats *stats, lt_error *err) {
  char where[64];
  snprintf(where, sizeof where, " (sample_layers at step %lld)", (long long)s->period_start);
  int rc = policy_state(s, where, err);
  if (rc == 0) {
    s->stats = stats;
    lua_pushcfunction(s->L, policy_call);
    lua_pushlightuserdata(s->L, s);
    rc = lsb_pcall(s->L, 1, 1) == LUA_OK ? take_result(s, err) : lsb_fail(s->L, where, err);
    s->stats = NULL;
  }
  close_state(s);
  return rc;
}

/* Reads the policy once (a file edited during the run does not change it)
 * and checks it loads and defines sample_layers. */
static int lua_setup(lisa_sampler *s, lt_error *err) {
  const char *path = s->cfg.lua_path;
  FILE *fp = fopen(path, "rb");
  if (!fp) return lt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0, got;
  s->policy = malloc(cap);
  int bad = !s->policy;
  while (!bad && (got = fread(s->policy + n, 1, cap - n, fp)) > 0) {
    char *more = (n += got) == cap && cap < LSB_MAX_BYTES ? realloc(s->policy, cap *= 2) : s->policy;
    if (more) s->policy = more;
    bad = !more || n >= LSB_MAX_BYTES;
  }
  bad = bad || ferror(fp);
  fclose(fp);
  if (bad) return lt_fail(err, "%s: cannot read (or larger than %u MiB)", path, LSB_MAX_BYTES >> 20);
  s->policy_len = n;
  int rc = policy_state(s, "", err);
  close_state(s);
  return rc;
}

/* ---- the built-in draws ---- */

/* Partial Fisher-Yates: the first gamma places of a uniform permutation. */
static void draw_uniform(lisa_sampler *s) {
  int n = s->cfg.n_layers;
  for (int i = 0; i < n; i++) s->perm[i] = i;
  for (int i = 0; i < s->cfg.gamma; i++) {
    int j = i + (int)rng_below(&s->rng, (uint64_t)(n - i));
    int tmp = s->perm[i];
    s->perm[i] = s->perm[j];
    s->perm[j] = tmp;
    s->chosen[s->perm[i]] = 1;
  }
}

static void draw_bernoulli(lisa_sampler *s) {
  double p = (double)s->cfg.gamma / s->cfg.n_layers;
  for (int i = 0; i < s->cfg.n_layers; i++) s->chosen[i] = rng_uniform(&s->rng) < p;
}

static int draw_period(lisa_sampler *s, const lisa_layer_stats *stats, lt_error *err) {
  memset(s->chosen, 0, (size_t)s->cfg.n_layers * sizeof *s->chosen);
  rng_seed_stream(&s->rng, s->cfg.seed, LISA_SAMPLER_STREAM, (uint64_t)s->period_start);
  if (s->cfg.mode == LISA_SAMPLE_UNIFORM) draw_uniform(s);
  else if (s->cfg.mode == LISA_SAMPLE_BERNOULLI) draw_bernoulli(s);
  else if (draw_lua(s, stats, err)) return -1;
  s->n_cached = 0;
  for (int i = 0; i < s->cfg.n_layers; i++)
    if (s->chosen[i]) s->cached[s->n_cached++] = i;
  return 0;
}

/* ---- public ---- */

int lisa_sampler_create(lisa_sampler **out, const lisa_sampler_config *cfg,
                        lt_error *err) {
  *out = NULL;
  if (check_config(cfg, err)) return -1;
  lisa_sampler *s = calloc(1, sizeof *s);
  if (!s) return lt_fail(err, "out of memory creating the layer sampler");
  s->cfg = *cfg;
  s->cfg.lua_path = NULL;
  s->cached_start = -1;
  size_t n = (size_t)cfg->n_layers;
  s->perm = malloc(n * sizeof *s->perm);
  s->chosen = malloc(n * sizeof *s->chosen);
  s->cached = malloc(n * sizeof *s->cached);
  if (cfg->mode == LISA_SAMPLE_LUA) s->cfg.lua_path = strdup(cfg->lua_path);
  if (!s->perm || !s->chosen || !s->cached ||
      (cfg->mode == LISA_SAMPLE_LUA && !s->cfg.lua_path)) {
    lisa_sampler_free(s);
    return lt_fail(err, "out of memory creating the layer sampler");
  }
  if (cfg->mode == LISA_SAMPLE_LUA && lua_setup(s, err)) {
    lisa_sampler_free(s);
    return -1;
  }
  *out = s;
  return 0;
}

void lisa_sampler_free(lisa_sampler *s) {
  if (!s) return;
  close_state(s);
  free(s->policy);
  free((char *)s->cfg.lua_path);
  free(s->perm);
  free(s->chosen);
  free(s->cached);
  free(s);
}

int lisa_sampler_is_boundary(const lisa_sampler *s, int64_t step) {
  return step >= 0 && step % s->cfg.interval == 0;
}

int lisa_sampler_sample(lisa_sampler *s, int64_t step,
                        const lisa_layer_stats *stats, int *active,
                        int *n_active, lt_error *err) {
  *n_active = 0;
  if (step < 0) return lt_fail(err, "layer sampling at step %lld: steps start at 0",
                               (long long)step);
  int64_t start = step - step % s->cfg.interval;
  if (start != s->cached_start) {
    s->cached_start = -1;
    s->period_start = start;
    if (draw_period(s, stats, err)) return -1;
    s->cached_start = start;
  }
  memcpy(active, s->cached, (size_t)s->n_cached * sizeof *active);
  *n_active = s->n_cached;
  return 0;
}
