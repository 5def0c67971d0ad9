/* Saving and resuming a run: 4 steps, save, a fresh trainer, resume, 6 more
 * steps give the losses, gradient norms, parameters and AdamW moments of 10
 * straight steps bit for bit (full fine-tuning, LISA uniform, a Lua policy
 * that reads the saved gradient norms); wrong settings, a truncated file and
 * a bad `latest` are errors that say so; a crash before `latest` is replaced
 * leaves the previous state loadable. */
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "data.h"
#include "weights.h"

#define N_LAYER 6
#define N_STEPS 10
#define SPLIT 4 /* mid-period: 4 % 3 != 0 */

static char model_path[128], dir[] = "/tmp/lisa-ckpt-XXXXXX";

static int write_model(void) {
  if (!mkdtemp(dir)) return -1;
  snprintf(model_path, sizeof model_path, "%s/gpt2-tiny6.yaml", dir);
  return write_tiny_gpt2(model_path, N_LAYER);
}

/* Warmup and cosine, so the learning rate depends on the absolute step. */
static train_config config(int method, int mode) {
  train_config c = {0};
  c.model_path = model_path;
  c.data_path = src_path("tests/fixtures/tokens-67.bin");
  c.method = method;
  c.steps = N_STEPS;
  c.batch = 2, c.seq = 8, c.seed = 5;
  c.opt = opt_defaults();
  c.opt.lr = 1e-2f, c.opt.warmup = 2, c.opt.schedule = OPT_COSINE, c.opt.total_steps = N_STEPS;
  c.train_embed = c.train_head = 1;
  c.lisa = (lisa_sampler_config){.mode = mode, .gamma = 2, .interval = 3};
  if (mode == LISA_SAMPLE_LUA) c.lisa.lua_path = src_path("models/policies/top_grad_norm.lua");
  return c;
}

static int create(trainer *t, const train_config *c) {
  lt_error err;
  if (trainer_create(t, c, &err) == 0) return 0;
  fprintf(stderr, "trainer_create: %s\n", err.msg);
  check_failures++;
  trainer_free(t);
  return -1;
}

static int run_steps(trainer *t, int64_t until, train_step_stats *log) {
  while (t->step < until) {
    lt_error err;
    int64_t s = t->step;
    if (trainer_step(t, &log[s], &err)) {
      fprintf(stderr, "trainer_step %lld: %s\n", (long long)s, err.msg);
      check_failures++;
      return -1;
    }
  }
  return 0;
}

static void state_dir(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
}

static int save(const trainer *t, const char *path) {
  lt_error err;
  if (ckpt_save(t, path, &err) == 0) return 0;
  fprintf(stderr, "ckpt_save: %s\n", err.msg);
  check_failures++;
  return -1;
}

/* A fresh trainer resumed from path; the error message if it fails. */
static int resume(trainer *t, const train_config *c, const char *path, lt_error *err) {
  if (create(t, c)) return -1;
  if (ckpt_resume(t, path, NULL, err) == 0) return 0;
  trainer_free(t);
  return -1;
}

static void check_same_state(const trainer *a, const trainer *b) {
  CHECK(memcmp(a->state.params, b->state.params, a->state.bytes_params) == 0);
  CHECK(memcmp(a->opt.m, b->opt.m, a->state.bytes_grads) == 0);
  CHECK(memcmp(a->opt.v, b->opt.v, a->state.bytes_grads) == 0);
  CHECK(memcmp(a->opt.t, b->opt.t, sizeof(int64_t) * (size_t)a->opt.n_regions) == 0);
  CHECK(memcmp(a->state.grad_slot, b->state.grad_slot, sizeof(int) * N_LAYER) == 0);
  CHECK(a->sched.n_active == b->sched.n_active &&
        memcmp(a->sched.active, b->sched.active, sizeof(int) * (size_t)a->sched.n_active) == 0);
  CHECK(memcmp(a->grad_norms, b->grad_norms, sizeof(double) * N_LAYER) == 0);
  CHECK(memcmp(a->weight_norms, b->weight_norms, sizeof(double) * N_LAYER) == 0);
}

/* 10 straight steps against 4, save, free, resume, 6 more. */
static void check_resume_is_exact(int method, int mode, const char *name) {
  train_config c = config(method, mode);
  trainer straight, first, resumed;
  train_step_stats want[N_STEPS], got[N_STEPS];
  char path[256];
  lt_error err;
  state_dir(path, sizeof path, name);
  if (create(&straight, &c)) return;
  run_steps(&straight, N_STEPS, want);
  if (create(&first, &c)) return;
  run_steps(&first, SPLIT, got);
  save(&first, path);
  trainer_free(&first);
  if (resume(&resumed, &c, path, &err)) {
    CHECK_MSG(0, "%s: ckpt_resume: %s", name, err.msg);
    trainer_free(&straight);
    return;
  }
  CHECK(resumed.step == SPLIT);
  run_steps(&resumed, N_STEPS, got);
  for (int s = SPLIT; s < N_STEPS; s++)
    CHECK_MSG(got[s].step == s && got[s].loss == want[s].loss &&
                  got[s].grad_norm == want[s].grad_norm && got[s].lr == want[s].lr,
              "%s step %d: loss %.9g vs %.9g, grad norm %.17g vs %.17g", name, s, got[s].loss,
              want[s].loss, got[s].grad_norm, want[s].grad_norm);
  check_same_state(&straight, &resumed);
  trainer_free(&straight);
  trainer_free(&resumed);
}

static void test_resume_ft(void) { check_resume_is_exact(TRAIN_FT, LISA_SAMPLE_UNIFORM, "ft"); }

static void test_resume_lisa_uniform(void) {
  check_resume_is_exact(TRAIN_LISA, LISA_SAMPLE_UNIFORM, "lisa");
}

/* top_grad_norm's draw at step 9 depends on the norms of blocks trained
 * before the save, so this fails unless grad_norms are restored. */
static void test_resume_lisa_lua_policy(void) {
  check_resume_is_exact(TRAIN_LISA, LISA_SAMPLE_LUA, "lua");
}

/* The state's weights are an ordinary checkpoint: --weights loads them. */
static void test_state_weights_load_as_weights(void) {
  train_config c = config(TRAIN_LISA, LISA_SAMPLE_UNIFORM);
  trainer t, loaded;
  train_step_stats log[N_STEPS];
  char path[256], weights[300];
  state_dir(path, sizeof path, "weights");
  if (create(&t, &c)) return;
  run_steps(&t, 2, log);
  save(&t, path);
  snprintf(weights, sizeof weights, "%s/step-2/model.safetensors", path);
  c.weights_path = weights;
  if (create(&loaded, &c) == 0) {
    CHECK(memcmp(t.state.params, loaded.state.params, t.state.bytes_params) == 0);
    trainer_free(&loaded);
  }
  trainer_free(&t);
}

static void expect_resume_error(const train_config *c, const char *path, const char *want) {
  trainer t;
  lt_error err;
  if (resume(&t, c, path, &err) == 0) {
    CHECK_MSG(0, "resume from %s succeeded; expected: %s", path, want);
    trainer_free(&t);
    return;
  }
  CHECK_MSG(strstr(err.msg, want) != NULL, "message: %s\nexpected: %s", err.msg, want);
}

static void test_mismatched_settings(void) {
  train_config c = config(TRAIN_LISA, LISA_SAMPLE_UNIFORM);
  trainer t;
  train_step_stats log[N_STEPS];
  char path[256], want[512];
  state_dir(path, sizeof path, "mismatch");
  if (create(&t, &c)) return;
  run_steps(&t, 1, log);
  save(&t, path);
  trainer_free(&t);
  train_config other = c;
  other.lisa.gamma = 3;
  snprintf(want, sizeof want, "%s/step-1/optimizer.safetensors: the state was saved with "
           "gamma 2, this run has gamma 3", path);
  expect_resume_error(&other, path, want);
  other = c, other.seed = 6;
  expect_resume_error(&other, path, "the state was saved with seed 5, this run has seed 6");
  other = c, other.method = TRAIN_FT;
  expect_resume_error(&other, path, "the state was saved with method lisa, this run has method ft");
  other = c, other.lisa.mode = LISA_SAMPLE_BERNOULLI;
  expect_resume_error(&other, path,
                      "the state was saved with sampling uniform, this run has sampling bernoulli");
}

/* Every setting that changes the trajectory is recorded and compared. */
static void test_mismatched_trajectory_settings(void) {
  train_config c = config(TRAIN_LISA, LISA_SAMPLE_LUA);
  trainer t;
  train_step_stats log[N_STEPS];
  char path[256], data[300], policy[300];
  state_dir(path, sizeof path, "trajectory");
  if (create(&t, &c)) return;
  run_steps(&t, 1, log);
  save(&t, path);
  trainer_free(&t);
  train_config o = c;
  o.opt.lr = 2e-2f;
  expect_resume_error(&o, path, "saved with lr 0.00999999978, this run has lr 0.0199999996 "
                                "(--override resumes anyway)");
  o = c, o.opt.schedule = OPT_CONSTANT;
  expect_resume_error(&o, path, "saved with schedule cosine, this run has schedule constant");
  o = c, o.opt.warmup = 3;
  expect_resume_error(&o, path, "saved with warmup 2, this run has warmup 3");
  o = c, o.opt.weight_decay = 0.5f;
  expect_resume_error(&o, path, "saved with weight_decay 0.00999999978, this run has weight_decay 0.5");
  o = c, o.opt.grad_clip = c.opt.grad_clip + 1;
  expect_resume_error(&o, path, "this run has grad_clip ");
  o = c, o.opt.total_steps = 20;
  expect_resume_error(&o, path, "saved with cosine 10 steps to 0, this run has cosine 20 steps");
  o = c, o.numerics = "bf16-mixed/stochastic";
  expect_resume_error(&o, path, "saved with numerics fp32, this run has numerics bf16-mixed");
  /* one token changed is other data */
  data_file d;
  lt_error err;
  CHECK(data_open(&d, c.data_path, 1 << 16, &err) == 0);
  snprintf(data, sizeof data, "%s/tokens32.bin", dir);
  d.tokens[0] = d.tokens[0] ? 0 : 1;
  CHECK(data_write(data, d.tokens, d.n_tokens, &err) == 0);
  o = c, o.data_path = data;
  expect_resume_error(&o, path, "saved with data ");
  expect_resume_error(&o, path, ", 4000 tokens, this run has data ");
  data_close(&d);
  /* the policy file is part of the trajectory: an edited one is another */
  snprintf(policy, sizeof policy, "%s/policy.lua", dir);
  FILE *in = fopen(c.lisa.lua_path, "rb"), *out = fopen(policy, "wb");
  CHECK(in && out);
  for (int ch; in && out && (ch = fgetc(in)) != EOF;) fputc(ch, out);
  if (out) fputs("\n-- edited\n", out);
  if (in) fclose(in);
  if (out) fclose(out);
  o = c, o.lisa.lua_path = policy;
  expect_resume_error(&o, path, "saved with policy ");
}

/* --override lets trajectory settings change (and lists them) and the run
 * continues under the new ones; structural settings stay refused. */
static void test_override(void) {
  train_config c = config(TRAIN_LISA, LISA_SAMPLE_UNIFORM);
  trainer t;
  train_step_stats log[N_STEPS];
  char path[256];
  lt_error err;
  state_dir(path, sizeof path, "override");
  if (create(&t, &c)) return;
  run_steps(&t, SPLIT, log);
  save(&t, path);
  trainer_free(&t);
  train_config o = c;
  o.opt.lr = 2e-2f, o.seed = 9;
  ckpt_overrides ov = {.allow = 1};
  if (create(&t, &o)) return;
  if (ckpt_resume(&t, path, &ov, &err)) {
    CHECK_MSG(0, "resume with --override: %s", err.msg);
  } else {
    CHECK(ov.n_changed == 2);
    CHECK_MSG(strstr(ov.changes, "seed 5 -> 9") && strstr(ov.changes, "lr 0.00999999978 -> "
                                                                       "0.0199999996"),
              "changes: %s", ov.changes);
    run_steps(&t, SPLIT + 1, log);
    CHECK(log[SPLIT].lr == opt_lr_at(&o.opt, SPLIT));
  }
  trainer_free(&t);
  o = c, o.train_embed = 0;
  if (create(&t, &o)) return;
  ov = (ckpt_overrides){.allow = 1};
  CHECK(ckpt_resume(&t, path, &ov, &err) != 0);
  CHECK_MSG(strstr(err.msg, "saved with train_embed 1, this run has train_embed 0") &&
                !strstr(err.msg, "--override"),
            "message: %s", err.msg);
  trainer_free(&t);
}

static void write_text(const char *path, const char *text) {
  FILE *fp = fopen(path, "w");
  if (!fp) {
    CHECK_MSG(0, "cannot write %s", path);
    return;
  }
  fputs(text, fp);
  fclose(fp);
}

static void test_truncated_and_bad_latest(void) {
  train_config c = config(TRAIN_FT, LISA_SAMPLE_UNIFORM);
  trainer t;
  train_step_stats log[N_STEPS];
  char path[256], file[400], want[1024];
  state_dir(path, sizeof path, "broken");
  if (create(&t, &c)) return;
  run_steps(&t, 1, log);
  save(&t, path);
  trainer_free(&t);

  snprintf(file, sizeof file, "%s/step-1/optimizer.safetensors", path);
  struct stat st;
  CHECK(stat(file, &st) == 0 && truncate(file, st.st_size - 4) == 0); /* cuts the last tensor */
  snprintf(want, sizeof want, "%s: tensor 'active': data_offsets", file);
  expect_resume_error(&c, path, want);
  expect_resume_error(&c, path, "beyond end of file (data section has ");

  snprintf(file, sizeof file, "%s/latest", path);
  write_text(file, "step-x\n");
  snprintf(want, sizeof want, "%s: expected one line 'step-<N>', found 'step-x'", file);
  expect_resume_error(&c, path, want);
  write_text(file, "step-9\n"); /* names a folder that is not there */
  snprintf(want, sizeof want, "%s/step-9/optimizer.safetensors", path);
  expect_resume_error(&c, path, want);
  unlink(file);
  snprintf(want, sizeof want, "%s: cannot open: No such file or directory (no state saved in %s?)",
           file, path);
  expect_resume_error(&c, path, want);
}

static int count_entries(const char *path) {
  DIR *d = opendir(path);
  int n = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* A crash while saving step 6, before `latest` changed: resume takes step 4
 * and continues exactly; saving step 6 again starts its folder afresh and
 * removes step-4. */
static void test_crash_before_latest_keeps_previous(void) {
  train_config c = config(TRAIN_LISA, LISA_SAMPLE_UNIFORM);
  trainer straight, t;
  train_step_stats want[N_STEPS], got[N_STEPS];
  char path[256], file[600];
  lt_error err;
  state_dir(path, sizeof path, "crash");
  if (create(&straight, &c)) return;
  run_steps(&straight, N_STEPS, want);
  if (create(&t, &c)) return;
  run_steps(&t, SPLIT, got);
  save(&t, path);
  run_steps(&t, 6, got);
  snprintf(file, sizeof file, "%s/step-6", path);
  CHECK(mkdir(file, 0755) == 0);
  snprintf(file, sizeof file, "%s/step-6/lisa-state", path); /* ckpt_save marks it first */
  write_text(file, "ours\n");
  snprintf(file, sizeof file, "%s/step-6/model.safetensors", path);
  CHECK(wt_save(&t.state, file, &err) == 0);
  snprintf(file, sizeof file, "%s/step-6/optimizer.safetensors.tmp.AbCdEf", path);
  write_text(file, "half a file");
  trainer_free(&t);

  if (resume(&t, &c, path, &err)) {
    CHECK_MSG(0, "ckpt_resume after the crash: %s", err.msg);
    trainer_free(&straight);
    return;
  }
  CHECK(t.step == SPLIT);
  run_steps(&t, 6, got);
  CHECK(got[SPLIT].loss == want[SPLIT].loss && got[SPLIT].grad_norm == want[SPLIT].grad_norm);
  save(&t, path);
  CHECK_MSG(count_entries(path) == 2, "%s holds %d entries, expected latest and step-6", path,
            count_entries(path));
  snprintf(file, sizeof file, "%s/step-6", path); /* the crash's leftovers are gone */
  CHECK(count_entries(file) == 3); /* model, optimizer, the marker */
  trainer_free(&t);
  if (resume(&t, &c, path, &err) == 0) {
    CHECK(t.step == 6);
    run_steps(&t, N_STEPS, got);
    check_same_state(&straight, &t);
    trainer_free(&t);
  } else {
    CHECK_MSG(0, "ckpt_resume at step 5: %s", err.msg);
  }
  trainer_free(&straight);
}

static int remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (!d) return unlink(path);
  char child[512];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    remove_tree(child);
  }
  closedir(d);
  return rmdir(path);
}

int main(void) {
  if (write_model()) {
    fprintf(stderr, "cannot write the test model\n");
    return 1;
  }
  RUN(test_resume_ft);
  RUN(test_resume_lisa_uniform);
  RUN(test_resume_lisa_lua_policy);
  RUN(test_state_weights_load_as_weights);
  RUN(test_mismatched_settings);
  RUN(test_mismatched_trajectory_settings);
  RUN(test_override);
  RUN(test_truncated_and_bad_latest);
  RUN(test_crash_before_latest_keeps_previous);
  remove_tree(dir);
  return check_exit();
}
