/* test_gen_tune: the tunables table (codegen/gen/gen_tune.c). The embedded
 * defaults equal the `// tunables:` comments of the templates; a user
 * file changes the generated template arguments and launches together; bad
 * files are errors that name the file. */
#include <unistd.h>

#include "autodiff.h"
#include "check.h"
#include "gen.h"
#include "gen_tune.h"
#include "model_yaml.h"

static char tmp_dir[64];

static const char *tmp_file(const char *name, const char *text) {
  static char path[4][256];
  static int next;
  char *p = path[next++ % 4];
  snprintf(p, sizeof path[0], "%s/%s", tmp_dir, name);
  FILE *f = fopen(p, "w");
  if (f) fputs(text, f), fclose(f);
  return p;
}

/* The `// tunables:` line documenting kernel k in one of the templates
 * (the last such comment above "void k("), copied into out. */
static int tunables_comment(const char *kernel, char *out, size_t cap) {
  static const char *files[] = {"elementwise.cuh", "norm.cuh", "attention.cuh", "attention_mma.cuh",
                                "attention_decode.cuh",
                                "cross_entropy.cuh", "embedding.cuh", "rope.cuh",
                                "copy.cuh", "adamw.cuh"};
  char needle[128];
  snprintf(needle, sizeof needle, "void %s(", kernel);
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char rel[64];
    snprintf(rel, sizeof rel, "templates/%s", files[i]);
    char *text = read_all(src_path(rel));
    if (!text) continue;
    char *decl = strstr(text, needle);
    if (decl) {
      char *best = NULL;
      for (char *s = strstr(text, "// tunables:"); s && s < decl; s = strstr(s + 1, "// tunables:"))
        best = s;
      if (best) {
        size_t n = strcspn(best, "\n");
        snprintf(out, cap, "%.*s", (int)n, best + strlen("// tunables:"));
        free(text);
        return 0;
      }
    }
    free(text);
  }
  return -1;
}

/* "NAME {a,b,c} default x" for param in the comment: space and default. */
static int comment_param(const char *comment, const char *param, int *space, int *n, int *def) {
  char key[48];
  snprintf(key, sizeof key, " %s {", param);
  const char *s = strstr(comment, key);
  if (!s) return -1;
  s += strlen(key);
  *n = 0;
  while (*s && *s != '}') {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s) return -1;
    space[(*n)++] = (int)v;
    s = end;
    if (*s == ',') s++;
  }
  if (*s != '}' || strncmp(s, "} default ", 10)) return -1;
  char *end;
  *def = (int)strtol(s + 10, &end, 10);
  return end == s + 10 ? -1 : 0;
}

static void test_defaults_match_templates(void) {
  gen_tuning *t;
  lt_error err = {{0}};
  if (gen_tune_load(&t, NULL, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  int n_checked = 0;
  CHECK(gen_tune_n_kernels(t) >= 13);
  for (int k = 0; k < gen_tune_n_kernels(t); k++) {
    const char *kn = gen_tune_kernel(t, k);
    char comment[1024];
    int found = tunables_comment(kn, comment, sizeof comment) == 0;
    /* the generated element-wise kernel has no template */
    CHECK_MSG(found || !strcmp(kn, "elementwise"), "no // tunables: comment for %s", kn);
    for (int j = 0; j < gen_tune_n_params(t, k); j++) {
      int value, n_space;
      const int *space;
      const char *pn = gen_tune_param(t, k, j, &value, &space, &n_space);
      int in = 0;
      for (int s = 0; s < n_space; s++) in |= space[s] == value;
      CHECK_MSG(in, "%s.%s default %d not in its space", kn, pn, value);
      if (!found) continue;
      int cs[64], cn, cdef;
      if (comment_param(comment, pn, cs, &cn, &cdef)) {
        CHECK_MSG(0, "%s: %s not in the comment '%s'", kn, pn, comment);
        continue;
      }
      CHECK_MSG(cdef == value, "%s.%s: default %d, template says %d", kn, pn, value, cdef);
      int same = cn == n_space;
      for (int s = 0; same && s < cn; s++) same = cs[s] == space[s];
      CHECK_MSG(same, "%s.%s: space differs from the template's", kn, pn);
      n_checked++;
    }
  }
  CHECK(n_checked >= 15);
  int v = 0;
  CHECK(gen_tune_get(t, "attention_forward", "BQ", &v) == 0 && v == 32);
  CHECK(gen_tune_get(t, "cross_entropy_fused", "THREADS", &v) == 0 && v == 1024);
  CHECK(gen_tune_get(t, "attention_forward", "NOPE", &v) == -1);
  CHECK(gen_tune_get(t, "nope", "THREADS", &v) == -1);
  gen_tune_free(t);
}

static int build(gen_program *prog, ir_model *m, const gen_tuning *t, int T) {
  gen_config cfg = {.B = 2, .T = T, .dtype = GEN_F32, .grad_accum = 1, .tuning = t};
  lt_error err = {{0}};
  if (gen_build(prog, m, &cfg, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return -1;
  }
  return 0;
}

static const gen_step *find_step(const gen_path *p, const char *what) {
  for (int i = 0; i < p->n_steps; i++)
    if (p->steps[i].kind == GEN_STEP_KERNEL && strstr(p->steps[i].kernel, what))
      return &p->steps[i];
  return NULL;
}

static void test_override_changes_source(void) {
  ir_model m;
  lt_error err = {{0}};
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err) || ad_build_backward(&m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  const char *file = tmp_file("tune.lua",
                              "-- smaller attention tiles, narrower element-wise blocks\n"
                              "return {\n"
                              "  attention_forward = {BQ = 16, THREADS = 64},\n"
                              "  attention_backward_dkdv = {BKV = {default = 16, space = {16, 32}}},\n"
                              "  elementwise = {THREADS = 64},\n"
                              "  cross_entropy_fused = {THREADS = 512},\n"
                              "}\n");
  gen_tuning *t = NULL;
  if (gen_tune_load(&t, file, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ir_model_free(&m);
    return;
  }
  int v = 0;
  CHECK(gen_tune_get(t, "attention_forward", "BQ", &v) == 0 && v == 16);
  CHECK(gen_tune_get(t, "attention_backward_dq", "BQ", &v) == 0 && v == 32); /* untouched */
  gen_program def, tuned;
  if (build(&def, &m, NULL, 32) == 0) {
    if (build(&tuned, &m, t, 32) == 0) {
      const gen_path *pd = gen_find_path(&def, "block_active"), *pt = gen_find_path(&tuned, "block_active");
      CHECK(pd && pt);
      if (pd && pt) {
        const char *sd = sb_str(&pd->source), *st = sb_str(&pt->source);
        CHECK(strstr(sd, "attention_forward<lisa_t, 8, 3, 3, 32, true, 32, 16, 128>("));
        CHECK(strstr(st, "attention_forward<lisa_t, 8, 3, 3, 32, true, 16, 16, 64>("));
        CHECK(strstr(st, "attention_backward_dkdv<lisa_t, 8, 3, 3, 32, true, 16, 16, 128>("));
        CHECK(strstr(st, "attention_backward_dq<lisa_t, 8, 3, 3, 32, true, 32, 32, 128>("));
        const gen_step *ad = find_step(pd, "attention_forward"), *at = find_step(pt, "attention_forward");
        CHECK(ad && at);
        if (ad && at) {
          CHECK(ad->grid[0] == 1 && at->grid[0] == 2); /* ceil(T / BQ) */
          CHECK(ad->block[0] == 128 && at->block[0] == 64);
        }
        const gen_step *kd = find_step(pd, "attention_backward_dkdv"),
                       *kt = find_step(pt, "attention_backward_dkdv");
        CHECK(kd && kt && kd->grid[0] == 1 && kt->grid[0] == 2);
        CHECK(strstr(st, "__launch_bounds__(64) block_active_02_attention_forward("));
      }
      const gen_path *hd = gen_find_path(&def, "head_train"), *ht = gen_find_path(&tuned, "head_train");
      CHECK(hd && ht);
      if (hd && ht) {
        /* THREADS, then the row stride: 67 classes padded to 128 */
        CHECK(strstr(sb_str(&hd->source), "cross_entropy_fused<lisa_t, 67, 1024, 128>(") &&
              strstr(sb_str(&ht->source), "cross_entropy_fused<lisa_t, 67, 512, 128>("));
        const gen_step *cd = find_step(hd, "cross_entropy_fused"), *ct = find_step(ht, "cross_entropy_fused");
        CHECK(cd && ct && cd->block[0] == 1024 && ct->block[0] == 512);
      }
      gen_free(&tuned);
    }
    gen_free(&def);
  }
  ir_model_free(&m);
  /* LLaMA's SwiGLU is a generated element-wise kernel */
  if (yml_load_model(src_path("models/llama-tiny.yaml"), &m, &err) || ad_build_backward(&m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
  } else if (build(&def, &m, NULL, 16) == 0) {
    if (build(&tuned, &m, t, 16) == 0) {
      const gen_path *pd = gen_find_path(&def, "block_active"), *pt = gen_find_path(&tuned, "block_active");
      const gen_step *ed = pd ? find_step(pd, "elementwise") : NULL,
                     *et = pt ? find_step(pt, "elementwise") : NULL;
      CHECK(ed && et && ed->block[0] == 256 && et->block[0] == 64);
      CHECK(et && ed && et->grid[0] == 4 * ed->grid[0]);
      CHECK(pt && strstr(sb_str(&pt->source), "i += (long long)gridDim.x * 64)"));
      gen_free(&tuned);
    }
    gen_free(&def);
  }
  gen_tune_free(t);
  ir_model_free(&m);
}

/* A bad file: an error that names it and contains `what`. */
static void expect_error(const char *name, const char *text, const char *what) {
  const char *file = tmp_file(name, text);
  gen_tuning *t = (gen_tuning *)1;
  lt_error err = {{0}};
  int rc = gen_tune_load(&t, file, &err);
  CHECK_MSG(rc == -1 && t == NULL, "%s loaded", name);
  CHECK_MSG(strstr(err.msg, file) != NULL, "'%s' does not name %s", err.msg, file);
  CHECK_MSG(strstr(err.msg, what) != NULL, "'%s' does not say '%s'", err.msg, what);
}

static void test_errors(void) {
  expect_error("space.lua", "return {attention_forward = {BQ = 24}}\n", "24 is not in its space");
  expect_error("kernel.lua", "return {attention_fwd = {BQ = 16}}\n", "unknown kernel 'attention_fwd'");
  expect_error("param.lua", "return {bias_grad = {ROWS = 2}}\n", "no tunable 'ROWS'");
  expect_error("syntax.lua", "return {\n  bias_grad = {THREADS = 64,,\n}\n", "syntax.lua:2:");
  expect_error("runtime.lua", "local x = nil\nreturn x.y\n", "runtime.lua:2:");
  expect_error("type.lua", "return {bias_grad = {THREADS = '64'}}\n", "bias_grad.THREADS");
  expect_error("float.lua", "return {bias_grad = {THREADS = 64.5}}\n", "must be an integer");
  expect_error("notable.lua", "return 42\n", "must return a table");
  expect_error("field.lua", "return {bias_grad = {THREADS = {defualt = 64}}}\n", "unknown field 'defualt'");
  expect_error("widen.lua", "return {bias_grad = {THREADS = {space = {64, 96}}}}\n",
               "space value 96 is outside");
  expect_error("narrow.lua", "return {bias_grad = {THREADS = {space = {64, 256}}}}\n",
               "the default 128 is not in its space");
  expect_error("loop.lua", "while true do end\n", "instructions");
  expect_error("sandbox.lua", "return dofile('/etc/passwd')\n", "sandbox.lua:1:");
  gen_tuning *t = (gen_tuning *)1;
  lt_error err = {{0}};
  CHECK(gen_tune_load(&t, "/nonexistent/tune.lua", &err) == -1 && t == NULL);
  CHECK(strstr(err.msg, "/nonexistent/tune.lua") != NULL);
  /* a narrower space with a value in it is fine */
  const char *ok = tmp_file("ok.lua", "return {bias_grad = {THREADS = {default = 64, space = {64}}}}\n");
  CHECK(gen_tune_load(&t, ok, &err) == 0 && t);
  int v = 0;
  CHECK(gen_tune_get(t, "bias_grad", "THREADS", &v) == 0 && v == 64);
  gen_tune_free(t);
}

/* lisa gen --help names --tune; a bad --tune file fails with its name. */
static void test_cli(void) {
  const char *bin = getenv("LISA_BIN");
  if (!bin) return;
  char cmd[1024], out[8192];
  snprintf(cmd, sizeof cmd, "%s gen --help 2>&1", bin);
  FILE *p = popen(cmd, "r");
  size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
  out[n] = 0;
  if (p) pclose(p);
  CHECK_MSG(strstr(out, "--tune FILE") != NULL, "%s", out);
  const char *bad = tmp_file("cli_bad.lua", "return {bias_grad = {THREADS = 100}}\n");
  snprintf(cmd, sizeof cmd, "%s gen %s -o %s/out --no-compile --tune %s 2>&1", bin,
           src_path("models/gpt2-tiny.yaml"), tmp_dir, bad);
  p = popen(cmd, "r");
  n = p ? fread(out, 1, sizeof out - 1, p) : 0;
  out[n] = 0;
  int rc = p ? pclose(p) : -1;
  CHECK_MSG(rc != 0 && strstr(out, bad) && strstr(out, "100 is not in its space"), "%s", out);
  const char *good = tmp_file("cli_good.lua", "return {attention_forward = {BQ = 16}}\n");
  snprintf(cmd, sizeof cmd, "%s gen %s -o %s/out --no-compile --seq 32 --dtype fp32 --tune %s >/dev/null 2>&1",
           bin, src_path("models/gpt2-tiny.yaml"), tmp_dir, good);
  CHECK(system(cmd) == 0);
  char path[256];
  snprintf(path, sizeof path, "%s/out/block_active.cu", tmp_dir);
  char *src = read_all(path);
  CHECK(src && strstr(src, "attention_forward<lisa_t, 8, 3, 3, 32, true, 16, 16, 128>("));
  free(src);
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lisa_gen_tune_XXXXXX");
  if (!mkdtemp(tmp_dir)) return perror("mkdtemp"), 1;
  RUN(test_defaults_match_templates);
  RUN(test_override_changes_source);
  RUN(test_errors);
  RUN(test_cli);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return check_exit();
}
