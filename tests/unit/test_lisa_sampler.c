/* test_lisa_sampler: the LISA active-set draw. Sets have the right size and
 * change only at period boundaries; draws are a pure function of (seed,
 * period start), so a resumed sampler agrees; uniform draws pass chi-square
 * tests per block and per pair; bernoulli sizes average gamma; Lua policies
 * see the right ctx and the run's random stream, and every bad policy gives
 * its exact message. */
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "lisa_sampler.h"
#include "rng.h"

#define MAX_LAYERS 1000

static char tmp_dir[64];

/* Writes text to tmp_dir/name and returns the path (4 rotating buffers). */
static const char *write_policy(const char *name, const char *text) {
  static char buf[4][128];
  static int next;
  char *path = buf[next++ % 4];
  snprintf(path, sizeof buf[0], "%s/%s", tmp_dir, name);
  FILE *fp = fopen(path, "w");
  if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
  return path;
}

static lisa_sampler_config config(int mode, int n, int gamma, int64_t k, uint64_t seed) {
  lisa_sampler_config c = {mode, n, gamma, k, seed, NULL};
  return c;
}

static lisa_sampler *make(const lisa_sampler_config *c) {
  lisa_sampler *s = NULL;
  lt_error err = {{0}};
  if (lisa_sampler_create(&s, c, &err)) {
    fprintf(stderr, "lisa_sampler_create: %s\n", err.msg);
    exit(1);
  }
  return s;
}

static lisa_sampler *make_lua(const char *path, int n, int gamma, int64_t k, uint64_t seed) {
  lisa_sampler_config c = config(LISA_SAMPLE_LUA, n, gamma, k, seed);
  c.lua_path = path;
  return make(&c);
}

/* Samples at step; fails the test (and returns 0 entries) on an error. */
static int sample(lisa_sampler *s, int64_t step, const lisa_layer_stats *st, int *active) {
  lt_error err = {{0}};
  int n = 0;
  CHECK_MSG(lisa_sampler_sample(s, step, st, active, &n, &err) == 0, "%s", err.msg);
  return n;
}

static int same_set(const int *a, int na, const int *b, int nb) {
  return na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0;
}

static int strictly_ascending_in_range(const int *a, int n, int n_layers) {
  for (int i = 0; i < n; i++)
    if (a[i] < 0 || a[i] >= n_layers || (i > 0 && a[i] <= a[i - 1])) return 0;
  return 1;
}

/* The first 200 steps' sets of a uniform sampler: sets[step][0..2). */
static void record_uniform(uint64_t seed, int sets[200][2]) {
  lisa_sampler_config c = config(LISA_SAMPLE_UNIFORM, 6, 2, 5, seed);
  lisa_sampler *s = make(&c);
  int active[6];
  for (int step = 0; step < 200; step++) {
    CHECK(sample(s, step, NULL, active) == 2);
    CHECK(strictly_ascending_in_range(active, 2, 6));
    memcpy(sets[step], active, sizeof sets[step]);
  }
  lisa_sampler_free(s);
}

static void test_uniform_periods(void) {
  static int a[200][2], b[200][2], other[200][2];
  record_uniform(7, a);
  record_uniform(7, b);
  record_uniform(8, other);
  int changes = 0, differs = 0;
  for (int step = 1; step < 200; step++) {
    int changed = !same_set(a[step], 2, a[step - 1], 2);
    if (step % 5 != 0) CHECK_MSG(!changed, "set changed inside a period at step %d", step);
    changes += changed;
  }
  /* 39 boundaries, each keeps the same pair with probability 1/15. */
  CHECK_MSG(changes >= 30, "only %d of 39 boundaries changed the set", changes);
  CHECK(memcmp(a, b, sizeof a) == 0);
  for (int step = 0; step < 200; step++) differs += !same_set(a[step], 2, other[step], 2);
  CHECK(differs > 100);

  lisa_sampler_config c = config(LISA_SAMPLE_UNIFORM, 6, 2, 5, 7);
  lisa_sampler *s = make(&c);
  for (int step = 0; step < 12; step++)
    CHECK(lisa_sampler_is_boundary(s, step) == (step % 5 == 0));
  lisa_sampler_free(s);
}

/* A fresh sampler asked about any step, in any order, draws what a sampler
 * that went through every step drew: resume needs no saved state. */
static void test_resume(void) {
  static int sets[200][2];
  record_uniform(7, sets);
  lisa_sampler_config c = config(LISA_SAMPLE_UNIFORM, 6, 2, 5, 7);
  const int steps[] = {199, 137, 3, 135, 0, 64, 65, 199};
  int active[6];
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    lisa_sampler *s = make(&c);
    int n = sample(s, steps[i], NULL, active);
    CHECK_MSG(same_set(active, n, sets[steps[i]], 2), "step %d", steps[i]);
    lisa_sampler_free(s);
  }
  lisa_sampler *s = make(&c);
  for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
    int n = sample(s, steps[i], NULL, active);
    CHECK_MSG(same_set(active, n, sets[steps[i]], 2), "step %d", steps[i]);
  }
  lt_error err = {{0}};
  int n = 5;
  CHECK(lisa_sampler_sample(s, -1, NULL, active, &n, &err) == -1 && n == 0);
  CHECK(strcmp(err.msg, "layer sampling at step -1: steps start at 0") == 0);
  lisa_sampler_free(s);
}

static double chi_square(const long *observed, int k, double expected) {
  double x = 0;
  for (int i = 0; i < k; i++) x += (observed[i] - expected) * (observed[i] - expected) / expected;
  return x;
}

/* Per-block counts of D uniform draws of g out of n. Drawing without
 * replacement makes the counts negatively correlated: sum (O-E)^2/E is
 * (n-g)/(n-1) times a chi-square with n-1 dof, so rescale before comparing. */
static void check_block_frequencies(int n, int g, double crit_p001) {
  enum { D = 20000 };
  lisa_sampler_config c = config(LISA_SAMPLE_UNIFORM, n, g, 1, 12345);
  lisa_sampler *s = make(&c);
  long count[16] = {0};
  int active[16];
  for (int d = 0; d < D; d++) {
    CHECK(sample(s, d, NULL, active) == g);
    for (int i = 0; i < g; i++) count[active[i]]++;
  }
  double x = chi_square(count, n, (double)D * g / n) * (n - 1) / (n - g);
  CHECK_MSG(x < crit_p001, "n=%d g=%d: chi-square %.2f >= %.3f", n, g, x, crit_p001);
  lisa_sampler_free(s);
}

static void test_uniform_chi_square(void) {
  check_block_frequencies(6, 2, 20.515); /* chi2(5) at p = 0.001 */
  check_block_frequencies(7, 3, 22.458); /* chi2(6) */
  check_block_frequencies(6, 1, 20.515);

  /* Every one of the C(6,2) = 15 pairs equally likely: chi2(14). */
  enum { D = 20000 };
  lisa_sampler_config c = config(LISA_SAMPLE_UNIFORM, 6, 2, 1, 777);
  lisa_sampler *s = make(&c);
  long pair[36] = {0}, packed[15];
  int active[6];
  for (int d = 0; d < D; d++) {
    CHECK(sample(s, d, NULL, active) == 2);
    pair[active[0] * 6 + active[1]]++;
  }
  int k = 0;
  for (int i = 0; i < 6; i++)
    for (int j = i + 1; j < 6; j++) packed[k++] = pair[i * 6 + j];
  double x = chi_square(packed, 15, D / 15.0);
  CHECK_MSG(x < 36.123, "pairs: chi-square %.2f >= 36.123", x);
  lisa_sampler_free(s);
}

static void test_bernoulli(void) {
  enum { D = 20000, N = 6, G = 2 };
  lisa_sampler_config c = config(LISA_SAMPLE_BERNOULLI, N, G, 1, 99);
  lisa_sampler *s = make(&c);
  long count[N] = {0}, total = 0, empty = 0, above_gamma = 0;
  int active[N];
  for (int d = 0; d < D; d++) {
    int n = sample(s, d, NULL, active);
    CHECK(strictly_ascending_in_range(active, n, N));
    for (int i = 0; i < n; i++) count[active[i]]++;
    total += n;
    empty += n == 0;
    above_gamma += n > G;
  }
  double p = (double)G / N;
  double size_sd = sqrt(N * p * (1 - p) / D); /* std of the mean set size */
  CHECK_CLOSE((double)total / D, G, 4 * size_sd, 0);
  /* Independent blocks: sum (O-E)^2 / (D p (1-p)) is chi2(6). */
  double x = chi_square(count, N, D * p) / (1 - p);
  CHECK_MSG(x < 22.458, "chi-square %.2f >= 22.458", x);
  /* P(empty) = (2/3)^6 = 0.088; P(more than 2) = 0.32. */
  CHECK(empty > 0.07 * D && empty < 0.1 * D);
  CHECK(above_gamma > 0.28 * D && above_gamma < 0.36 * D);
  lisa_sampler_free(s);
}

static void test_empty_and_full(void) {
  for (int mode = LISA_SAMPLE_UNIFORM; mode <= LISA_SAMPLE_BERNOULLI; mode++) {
    lisa_sampler_config none = config(mode, 5, 0, 2, 1), all = config(mode, 5, 5, 2, 1);
    lisa_sampler *s0 = make(&none), *s5 = make(&all);
    int active[5];
    for (int step = 0; step < 40; step += 2) {
      CHECK(sample(s0, step, NULL, active) == 0);
      CHECK(sample(s5, step, NULL, active) == 5);
      CHECK(strictly_ascending_in_range(active, 5, 5));
    }
    lisa_sampler_free(s0);
    lisa_sampler_free(s5);
  }
}

static void expect_create_error(const lisa_sampler_config *c, const char *want) {
  lisa_sampler *s = (lisa_sampler *)&s;
  lt_error err = {{0}};
  CHECK(lisa_sampler_create(&s, c, &err) == -1);
  CHECK(s == NULL);
  CHECK_MSG(strcmp(err.msg, want) == 0, "got '%s', want '%s'", err.msg, want);
}

static void test_config_errors(void) {
  lisa_sampler_config c = config(LISA_SAMPLE_UNIFORM, 4, 5, 20, 1);
  expect_create_error(&c, "--gamma 5 exceeds the model's 4 middle blocks");
  c.mode = LISA_SAMPLE_BERNOULLI;
  expect_create_error(&c, "--gamma 5 exceeds the model's 4 middle blocks");
  c.gamma = -1;
  expect_create_error(&c, "--gamma -1 must be at least 0");
  c = config(LISA_SAMPLE_UNIFORM, 4, 2, 0, 1);
  expect_create_error(&c, "--interval 0 must be at least 1");
  c = config(LISA_SAMPLE_UNIFORM, 0, 0, 1, 1);
  expect_create_error(&c, "LISA needs at least one middle block (the model has 0)");
  c = config(LISA_SAMPLE_LUA, 4, 2, 1, 1);
  expect_create_error(&c, "lua layer sampling needs a policy file");
  c = config(7, 4, 2, 1, 1);
  expect_create_error(&c, "unknown layer sampling mode 7");

  CHECK(lisa_sample_mode_from_name("uniform") == LISA_SAMPLE_UNIFORM);
  CHECK(lisa_sample_mode_from_name("bernoulli") == LISA_SAMPLE_BERNOULLI);
  CHECK(lisa_sample_mode_from_name("lua") == LISA_SAMPLE_LUA);
  CHECK(lisa_sample_mode_from_name("Uniform") == -1);
  lisa_sampler_free(NULL);
}

static void test_lua_top_grad_norm(void) {
  const char *path = src_path("models/policies/top_grad_norm.lua");
  double grads[6] = {0.5, 3, 1, 7, 0.2, 2}, weights[6] = {1, 1, 1, 1, 1, 1};
  lisa_layer_stats st = {weights, grads};
  int active[6];
  lisa_sampler *s = make_lua(path, 6, 2, 4, 1);
  int n = sample(s, 0, &st, active);
  CHECK(n == 2 && active[0] == 1 && active[1] == 3);
  /* Never-trained blocks (norm 0) come first. */
  grads[1] = grads[4] = 0;
  n = sample(s, 4, &st, active);
  CHECK(n == 2 && active[0] == 1 && active[1] == 4);
  /* Inside a period the set holds, whatever the stats say. */
  grads[1] = grads[4] = 1;
  n = sample(s, 7, &st, active);
  CHECK(n == 2 && active[0] == 1 && active[1] == 4);
  n = sample(s, 8, &st, active);
  CHECK(n == 2 && active[0] == 3 && active[1] == 5);
  /* No stats: all blocks tie, the draw is random but well formed. */
  n = sample(s, 12, NULL, active);
  CHECK(n == 2 && strictly_ascending_in_range(active, 2, 6));
  lisa_sampler_free(s);
}

/* The shipped uniform.lua draws from the same stream as the built-in mode
 * with the same algorithm, so their sets must agree exactly. */
static void test_lua_uniform_matches_builtin(void) {
  for (uint64_t seed = 1; seed <= 3; seed++) {
    lisa_sampler_config c = config(LISA_SAMPLE_UNIFORM, 8, 3, 3, seed);
    lisa_sampler *builtin = make(&c);
    lisa_sampler *lua = make_lua(src_path("models/policies/uniform.lua"), 8, 3, 3, seed);
    int a[8], b[8];
    for (int step = 0; step < 150; step++) {
      int na = sample(builtin, step, NULL, a), nb = sample(lua, step, NULL, b);
      int agree = na == 3 && same_set(a, na, b, nb);
      CHECK_MSG(agree, "seed %llu step %d", (unsigned long long)seed, step);
      if (!agree) break;
    }
    lisa_sampler_free(builtin);
    lisa_sampler_free(lua);
  }
}

static void test_lua_ctx(void) {
  const char *path = write_policy("ctx.lua",
      "function sample_layers(ctx)\n"
      "  local out = {ctx.n_layers - 1, ctx.gamma, ctx.interval, ctx.step // ctx.interval + 5}\n"
      "  if ctx.weight_norms then\n"
      "    for b = 0, ctx.n_layers - 1 do\n"
      "      if ctx.weight_norms[b + 1] > 10 and ctx.grad_norms[b + 1] == 0 then\n"
      "        out[#out + 1] = b\n"
      "      end\n"
      "    end\n"
      "  end\n"
      "  return out\n"
      "end\n");
  lisa_sampler *s = make_lua(path, 12, 2, 4, 1);
  int active[12];
  int n = sample(s, 13, NULL, active); /* period start 12 */
  CHECK(n == 4 && active[0] == 2 && active[1] == 4 && active[2] == 8 && active[3] == 11);
  double w[12] = {0, 11, 0, 0, 0, 0, 0, 12, 0, 0, 20, 0}, g[12] = {0};
  g[10] = 1;
  lisa_layer_stats st = {w, g};
  n = sample(s, 0, &st, active); /* ctx.step // 4 + 5 = 5; blocks 1 and 7 */
  CHECK(n == 6 && active[0] == 1 && active[1] == 2 && active[2] == 4 && active[3] == 5 &&
        active[4] == 7 && active[5] == 11);
  lisa_sampler_free(s);
}

/* ctx.random and ctx.randint are the period's stream: checked against
 * rng_seed_stream directly, over many periods and two samplers. */
static void test_lua_random(void) {
  const char *path = write_policy("random.lua",
      "function sample_layers(ctx)\n"
      "  return {math.floor(ctx.random() * 500), 500 + ctx.randint(500)}\n"
      "end\n");
  lisa_sampler *s1 = make_lua(path, 1000, 2, 10, 42), *s2 = make_lua(path, 1000, 2, 10, 42);
  lisa_sampler *other = make_lua(path, 1000, 2, 10, 43);
  static int a[MAX_LAYERS], b[MAX_LAYERS], o[MAX_LAYERS];
  int distinct_firsts = 0, prev = -1, differs = 0;
  for (int step = 0; step < 500; step += 10) {
    rng_state r;
    rng_seed_stream(&r, 42, LISA_SAMPLER_STREAM, (uint64_t)step);
    int want0 = (int)floor(rng_uniform(&r) * 500), want1 = 500 + (int)rng_below(&r, 500);
    int na = sample(s1, step, NULL, a), nb = sample(s2, step, NULL, b);
    CHECK(na == 2 && a[0] == want0 && a[1] == want1);
    CHECK(same_set(a, na, b, nb));
    int no = sample(other, step, NULL, o);
    differs += !same_set(a, na, o, no);
    distinct_firsts += a[0] != prev;
    prev = a[0];
  }
  CHECK(distinct_firsts > 40 && differs > 40);
  lisa_sampler_free(s1);
  lisa_sampler_free(s2);
  lisa_sampler_free(other);
}

/* A policy whose sample_layers body is `body`, at N_L = 4, must fail at step
 * 0 with "<path>: <tail>" (or "<path>:<tail>" for Lua's file:line ones). */
static void expect_sample_error(const char *body, const char *tail) {
  char text[512], want[1200];
  snprintf(text, sizeof text, "function sample_layers(ctx)\n  %s\nend\n", body);
  const char *path = write_policy("bad.lua", text);
  snprintf(want, sizeof want, "%s%s%s", path, tail[0] == ':' ? "" : ": ", tail);
  lisa_sampler *s = make_lua(path, 4, 2, 1, 1);
  lt_error err = {{0}};
  int active[4], n = 9;
  CHECK(lisa_sampler_sample(s, 0, NULL, active, &n, &err) == -1 && n == 0);
  CHECK_MSG(strcmp(err.msg, want) == 0, "got '%s', want '%s'", err.msg, want);
  lisa_sampler_free(s);
}

static void test_lua_bad_returns(void) {
  expect_sample_error("return {1, 7}", "sample_layers returned 7 at position 2, outside [0, 4)");
  expect_sample_error("return {-1}", "sample_layers returned -1 at position 1, outside [0, 4)");
  expect_sample_error("return {2, 0, 2}", "sample_layers returned 2 twice (positions 1 and 3)");
  expect_sample_error("return {0, 1.5}",
                      "sample_layers returned 1.5 at position 2, not an integer");
  expect_sample_error("return {'1'}",
                      "sample_layers returned a string at position 1, not an integer");
  expect_sample_error("return {0, nil, 2}",
                      "sample_layers returned a nil at position 2, not an integer");
  expect_sample_error("return 3",
                      "sample_layers returned a number, expected a table of block indices");
  expect_sample_error("return",
                      "sample_layers returned a nil, expected a table of block indices");
  expect_sample_error("return {0, 1, 2, 3, 0}",
                      "sample_layers returned 5 entries, more than the 4 middle blocks");
  expect_sample_error("return {0, 1, x = 2}",
                      "sample_layers returned a table with keys other than 1..2");
  expect_sample_error("error('boom')", ":2: boom (sample_layers at step 0)");
  expect_sample_error("return {math.random(4)}",
                      ":2: math.random is not seeded by the run's seed; use ctx.random() "
                      "or ctx.randint(n) (sample_layers at step 0)");
  expect_sample_error("return {os.time()}",
                      ":2: attempt to index a nil value (global 'os') (sample_layers at step 0)");
  expect_sample_error("return {io.read()}",
                      ":2: attempt to index a nil value (global 'io') (sample_layers at step 0)");
  expect_sample_error("return {dofile('x')}",
                      ":2: attempt to call a nil value (global 'dofile') "
                      "(sample_layers at step 0)");
  expect_sample_error("return {ctx.randint(0)}",
                      ":2: bad argument #1 to 'randint' (must be at least 1) "
                      "(sample_layers at step 0)");
  expect_sample_error("error({})", "error object is a table value (sample_layers at step 0)");

  /* 2.0 is the integer 2. */
  const char *path = write_policy("float.lua", "function sample_layers(ctx) return {2.0} end\n");
  lisa_sampler *s = make_lua(path, 4, 2, 1, 1);
  int active[4];
  CHECK(sample(s, 0, NULL, active) == 1 && active[0] == 2);
  lisa_sampler_free(s);
}

/* A failed draw is not cached: the same period succeeds once the policy can. */
static void test_lua_retry_after_error(void) {
  const char *path = write_policy("needs_stats.lua",
      "function sample_layers(ctx)\n"
      "  return {ctx.grad_norms[1] > 1 and 0 or 1}\n"
      "end\n");
  lisa_sampler *s = make_lua(path, 4, 1, 5, 1);
  lt_error err = {{0}};
  int active[4], n;
  CHECK(lisa_sampler_sample(s, 7, NULL, active, &n, &err) == -1);
  CHECK(strstr(err.msg, "needs_stats.lua:2: attempt to index a nil value (field 'grad_norms')"));
  double g[4] = {2, 0, 0, 0};
  lisa_layer_stats st = {NULL, g};
  CHECK(sample(s, 7, &st, active) == 1 && active[0] == 0);
  lisa_sampler_free(s);
}

static void expect_load_error(const char *name, const char *text, const char *tail) {
  const char *path = text ? write_policy(name, text) : name;
  char want[1200];
  snprintf(want, sizeof want, "%s%s", path, tail);
  lisa_sampler_config c = config(LISA_SAMPLE_LUA, 4, 2, 1, 1);
  c.lua_path = path;
  expect_create_error(&c, want);
}

static void test_lua_load_errors(void) {
  expect_load_error("syntax.lua", "function sample_layers(ctx)\n  return {1,,}\nend\n",
                    ":2: unexpected symbol near ','");
  expect_load_error("missing.lua", "function sample(ctx) return {} end\n",
                    ": defines no function sample_layers(ctx)");
  expect_load_error("number.lua", "sample_layers = 3\n",
                    ": sample_layers is a number, not a function");
  expect_load_error("toplevel.lua", "local x = 1\nerror('at load')\n", ":2: at load");
  char nope[128];
  snprintf(nope, sizeof nope, "%s/nope.lua", tmp_dir);
  lisa_sampler_config c = config(LISA_SAMPLE_LUA, 4, 2, 1, 1);
  c.lua_path = nope;
  char want[256];
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory", nope);
  expect_create_error(&c, want);
}

static void remove_tmp_files(void) {
  const char *names[] = {"ctx.lua", "random.lua", "bad.lua", "float.lua",
                         "needs_stats.lua", "syntax.lua", "missing.lua", "number.lua",
                         "toplevel.lua"};
  char path[128];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(path, sizeof path, "%s/%s", tmp_dir, names[i]);
    unlink(path);
  }
  rmdir(tmp_dir);
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lisa_sampler_XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_uniform_periods);
  RUN(test_resume);
  RUN(test_uniform_chi_square);
  RUN(test_bernoulli);
  RUN(test_empty_and_full);
  RUN(test_config_errors);
  RUN(test_lua_top_grad_norm);
  RUN(test_lua_uniform_matches_builtin);
  RUN(test_lua_ctx);
  RUN(test_lua_random);
  RUN(test_lua_bad_returns);
  RUN(test_lua_retry_after_error);
  RUN(test_lua_load_errors);
  remove_tmp_files();
  return check_exit();
}
