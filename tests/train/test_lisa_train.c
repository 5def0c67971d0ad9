/* LISA in the trainer: every step trains E, H and exactly gamma middle
 * blocks; the set changes only at multiples of K; sampled blocks change and
 * frozen ones keep every bit; the FROZEN path's dX equals the ACTIVE path's;
 * LISA with every block active and K = 1 is full fine-tuning, bit for bit;
 * a Lua policy's sets train as the uniform sampler's. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "executor.h"
#include "train.h"

#define N_LAYER 6

static char model_path[128], dir[] = "/tmp/lisa-train-XXXXXX";

static int write_model(void) {
  if (!mkdtemp(dir)) return -1;
  snprintf(model_path, sizeof model_path, "%s/gpt2-tiny6.yaml", dir);
  return write_tiny_gpt2(model_path, N_LAYER);
}

static train_config config(int method, int gamma, int interval) {
  train_config c = {0};
  c.model_path = model_path;
  c.data_path = src_path("tests/fixtures/tokens-67.bin");
  c.method = method;
  c.steps = 40;
  c.batch = 2, c.seq = 8, c.seed = 5;
  c.opt = opt_defaults();
  c.opt.lr = 1e-2f;
  c.train_embed = c.train_head = 1;
  c.lisa = (lisa_sampler_config){.mode = LISA_SAMPLE_UNIFORM, .gamma = gamma, .interval = interval};
  return c;
}

static int create(trainer *t, const train_config *c) {
  lt_error err;
  if (trainer_create(t, c, &err)) {
    fprintf(stderr, "trainer_create: %s\n", err.msg);
    check_failures++;
    trainer_free(t);
    return -1;
  }
  return 0;
}

static int step(trainer *t, train_step_stats *st) {
  lt_error err;
  if (trainer_step(t, st, &err)) {
    fprintf(stderr, "trainer_step: %s\n", err.msg);
    check_failures++;
    return -1;
  }
  return 0;
}

static void test_gamma_blocks_switch_at_k(void) {
  trainer a, b;
  train_config c = config(TRAIN_LISA, 2, 5);
  if (create(&a, &c) || create(&b, &c)) return;
  int prev[2] = {-1, -1}, changes = 0;
  for (int s = 0; s < 40; s++) {
    train_step_stats st, st_b;
    if (step(&a, &st) || step(&b, &st_b)) break;
    CHECK(a.sched.n_active == 2 && a.sched.active[0] < a.sched.active[1]);
    CHECK(a.opt.on[TRAIN_REGION_EMBED] && a.opt.on[TRAIN_REGION_HEAD]);
    CHECK(st.switched == (s % 5 == 0));
    int same = a.sched.active[0] == prev[0] && a.sched.active[1] == prev[1];
    if (s % 5 != 0) CHECK(same);
    changes += !same;
    CHECK(memcmp(a.sched.active, b.sched.active, 2 * sizeof(int)) == 0); /* same seed, same sets */
    CHECK(st.loss == st_b.loss);
    prev[0] = a.sched.active[0], prev[1] = a.sched.active[1];
  }
  CHECK_MSG(changes >= 4, "the set changed only %d times in 8 periods", changes);
  trainer_free(&a);
  trainer_free(&b);
}

/* Snapshot of one block's parameters. */
static float *copy_block(const trainer *t, int layer) {
  size_t bytes = (size_t)t->state.block_stride * sizeof(float);
  float *copy = malloc(bytes);
  memcpy(copy, ms_block_params(&t->state, layer), bytes);
  return copy;
}

static void test_frozen_blocks_keep_every_bit(void) {
  trainer t;
  train_config c = config(TRAIN_LISA, 2, 5);
  if (create(&t, &c)) return;
  train_step_stats st;
  if (step(&t, &st)) return; /* draws the first set, trains step 0 */
  float *before[N_LAYER];
  for (int l = 0; l < N_LAYER; l++) before[l] = copy_block(&t, l);
  float wte_before = ms_param(&t.state, 0, 0)[3];
  for (int s = 1; s < 5; s++) step(&t, &st); /* rest of the period */
  size_t bytes = (size_t)t.state.block_stride * sizeof(float);
  for (int l = 0; l < N_LAYER; l++) {
    int active = l == t.sched.active[0] || l == t.sched.active[1];
    int same = memcmp(before[l], ms_block_params(&t.state, l), bytes) == 0;
    CHECK_MSG(active ? !same : same, "block %d (%s) %s", l, active ? "active" : "frozen",
              same ? "unchanged" : "changed");
    free(before[l]);
  }
  CHECK(ms_param(&t.state, 0, 0)[3] != wte_before); /* E trains */
  /* only gamma gradient slots exist */
  CHECK(t.state.n_grad_slots == 2);
  trainer_free(&t);
}

static void test_frozen_dx_equals_active_dx(void) {
  trainer t;
  train_config c = config(TRAIN_FT, 0, 1);
  if (create(&t, &c)) return;
  ms_state *s = &t.state;
  lt_error err;
  CHECK(data_batch(&t.data, 1, 0, s->B, s->T, s->ids, s->targets, &err) == 0);
  /* block 0's input gradient is what reaches the embedding */
  const ir_graph *g = &t.ir.sections[IR_BLOCK];
  const float *dx = s->bufs[1][g->values[g->input].grad];
  size_t bytes = (size_t)s->N * (size_t)g->values[g->input].cols * sizeof(float);
  int paths[N_LAYER + 2];
  float *want = malloc(bytes);
  train_zero_grads(s);
  train_forward(s);
  train_backward(s, NULL, 1.0f);
  memcpy(want, dx, bytes);
  for (int i = 0; i < N_LAYER + 2; i++) paths[i] = i == 0 ? PATH_ACTIVE : PATH_FROZEN;
  train_zero_grads(s);
  train_forward(s);
  train_backward(s, paths, 1.0f);
  CHECK(memcmp(want, dx, bytes) == 0);
  /* and the frozen blocks wrote no parameter gradient */
  for (int l = 0; l < N_LAYER; l++) {
    const float *gb = ms_grad(s, ir_find_param(&t.ir, "fc_w"), l);
    float worst = 0;
    for (int i = 0; i < 24 * 96; i++) worst = fmaxf(worst, fabsf(gb[i]));
    CHECK(worst == 0.0f);
  }
  free(want);
  trainer_free(&t);
}

static void test_all_blocks_every_step_is_ft(void) {
  trainer ft, lisa;
  train_config cf = config(TRAIN_FT, 0, 1), cl = config(TRAIN_LISA, N_LAYER, 1);
  if (create(&ft, &cf) || create(&lisa, &cl)) return;
  for (int s = 0; s < 12; s++) {
    train_step_stats a, b;
    if (step(&ft, &a) || step(&lisa, &b)) break;
    CHECK_MSG(a.loss == b.loss && a.grad_norm == b.grad_norm, "step %d: ft %.9g, lisa %.9g", s,
              a.loss, b.loss);
  }
  CHECK(memcmp(ft.state.params, lisa.state.params, ft.state.bytes_params) == 0);
  trainer_free(&ft);
  trainer_free(&lisa);
}

/* With E frozen, no gradient has to go below the lowest active block. */
static void test_frozen_embedding_skips_lower_blocks(void) {
  trainer t;
  train_config c = config(TRAIN_LISA, 1, 3);
  c.train_embed = 0;
  if (create(&t, &c)) return;
  float wte = ms_param(&t.state, 0, 0)[7];
  for (int s = 0; s < 9; s++) {
    train_step_stats st;
    if (step(&t, &st)) break;
    int lowest = t.sched.active[0];
    CHECK(t.sched.path[0] == PATH_FORWARD);
    for (int l = 0; l < N_LAYER; l++)
      CHECK(t.sched.path[1 + l] == (l == lowest ? PATH_ACTIVE : l < lowest ? PATH_FORWARD : PATH_FROZEN));
  }
  CHECK(ms_param(&t.state, 0, 0)[7] == wte);
  trainer_free(&t);
}

static double sum_sq(const float *x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
  return s;
}

/* Per-layer norms against sums over the named tensors, param by param. */
static void test_layer_norms(void) {
  trainer t;
  train_config c = config(TRAIN_LISA, 2, 5);
  if (create(&t, &c)) return;
  train_step_stats st;
  if (step(&t, &st)) return;
  double w[N_LAYER + 2], g[N_LAYER + 2], want_w[N_LAYER + 2] = {0}, want_g[N_LAYER + 2] = {0};
  lt_error err;
  CHECK_MSG(trainer_norms(&t, w, g, &err) == 0, "%s", err.msg);
  const ir_model *m = &t.ir;
  for (int p = 0; p < m->n_params; p++) {
    int sec = m->params[p].section, layers = sec == IR_BLOCK ? N_LAYER : 1;
    for (int l = 0; l < layers; l++) {
      int k = sec == IR_EMBED ? 0 : sec == IR_HEAD ? N_LAYER + 1 : 1 + l;
      int64_t n = ir_param_numel(&m->params[p]);
      want_w[k] += sum_sq(ms_param(&t.state, p, l), n);
      if (ms_grad(&t.state, p, l)) want_g[k] += sum_sq(ms_grad(&t.state, p, l), n);
    }
  }
  double total = 0;
  for (int k = 0; k < N_LAYER + 2; k++) {
    CHECK_CLOSE(w[k], sqrt(want_w[k]), 0, 1e-5);
    int trained = k == 0 || k == N_LAYER + 1 || k - 1 == t.sched.active[0] || k - 1 == t.sched.active[1];
    if (trained) {
      CHECK_CLOSE(g[k], sqrt(want_g[k]), 0, 1e-5);
      total += g[k] * g[k];
    } else {
      CHECK(isnan(g[k]));
    }
  }
  CHECK_CLOSE(sqrt(total), st.grad_norm, 0, 1e-6); /* the clipped norm is these parts' */
  trainer_free(&t);
}

/* --grad-accum 2: a step's gradient is the sum of micro-batches 2s and 2s+1
 * at half the loss each, and its loss their mean: the same, bit for bit, as
 * running those two batches by hand on a trainer without accumulation. */
static void test_grad_accum_sums_micro_batches(void) {
  trainer a, b;
  train_config c = config(TRAIN_LISA, 2, 3);
  train_config ca = c;
  ca.grad_accum = 2;
  if (create(&a, &ca)) return;
  if (create(&b, &c)) {
    trainer_free(&a);
    return;
  }
  lt_error err;
  for (int s = 0; s < 7; s++) {
    train_step_stats st;
    if (step(&a, &st)) break;
    int switched;
    float lr;
    /* b: the same switch and learning rate, then batches 2s and 2s + 1 */
    b.step = s;
    CHECK(trainer_begin_step(&b, &switched, &lr, &err) == 0);
    train_zero_grads(&b.state);
    double loss = 0;
    for (int i = 0; i < 2; i++) {
      b.step = 2 * s + i;
      CHECK(trainer_micro_batch(&b, 0, &err) == 0);
      loss += train_forward(&b.state);
      train_backward(&b.state, b.sched.path, 0.5f);
    }
    b.step = s;
    double norm = train_adamw(&b.state, &b.cfg.opt, lr, &b.opt);
    CHECK_MSG(st.grad_norm == norm, "step %d: grad norm %.9g, by hand %.9g", s, st.grad_norm, norm);
    CHECK_MSG(st.loss == (float)(loss / 2), "step %d: loss %.9g, by hand %.9g", s, st.loss,
              loss / 2);
    CHECK(!memcmp(a.state.params, b.state.params, a.state.bytes_params));
  }
  trainer_free(&a);
  trainer_free(&b);
}

/* A Lua policy may leave any block out, so it gets a slot for every block
 * and the blocks it leaves out run FROZEN with no slot: what their forward
 * writes for dW must go to scratch of its own (it once aliased the start of
 * the activation arena, and LLaMA's losses moved). The same sets drawn by
 * the uniform sampler (gamma slots) must train bit for bit alike. */
static void test_policy_matches_uniform_sets(void) {
  char data[160], policy[160];
  snprintf(data, sizeof data, "%s/ids53.bin", dir);
  snprintf(policy, sizeof policy, "%s/same_sets.lua", dir);
  FILE *f = fopen(data, "wb");
  int32_t header[256] = {20240520, 1, 2048};
  uint16_t ids[2048];
  for (int i = 0; i < 2048; i++) ids[i] = (uint16_t)((i * 37 + i / 7) % 53);
  CHECK(f && fwrite(header, sizeof header, 1, f) == 1 && fwrite(ids, sizeof ids, 1, f) == 1);
  if (f) fclose(f);
  train_config c = config(TRAIN_LISA, 1, 1);
  c.model_path = src_path("models/llama-tiny.yaml");
  c.data_path = data;
  enum { STEPS = 8 };
  trainer u, p;
  float loss[STEPS];
  int set[STEPS];
  if (create(&u, &c)) return;
  for (int s = 0; s < STEPS; s++) {
    train_step_stats st;
    if (step(&u, &st)) break;
    loss[s] = st.loss, set[s] = u.sched.active[0];
  }
  trainer_free(&u);
  f = fopen(policy, "w");
  CHECK(f != NULL);
  if (!f) return;
  fprintf(f, "local sets = {");
  for (int s = 0; s < STEPS; s++) fprintf(f, "%d, ", set[s]);
  fprintf(f, "}\nfunction sample_layers(ctx) return {sets[ctx.step + 1]} end\n");
  fclose(f);
  c.lisa.mode = LISA_SAMPLE_LUA, c.lisa.lua_path = policy;
  if (create(&p, &c)) return;
  CHECK(p.state.n_grad_slots == p.ir.n_layer);
  for (int s = 0; s < STEPS; s++) {
    train_step_stats st;
    if (step(&p, &st)) break;
    CHECK(p.sched.n_active == 1 && p.sched.active[0] == set[s]);
    CHECK_MSG(st.loss == loss[s], "step %d: policy %.9g, uniform %.9g", s, st.loss, loss[s]);
  }
  trainer_free(&p);
  unlink(policy), unlink(data);
}

static void test_gamma_beyond_layers_is_an_error(void) {
  trainer t;
  train_config c = config(TRAIN_LISA, N_LAYER + 1, 5);
  lt_error err;
  CHECK(trainer_create(&t, &c, &err) != 0);
  CHECK_MSG(strstr(err.msg, "gamma") != NULL, "message: %s", err.msg);
  trainer_free(&t);
}

int main(void) {
  if (write_model()) {
    fprintf(stderr, "cannot write the test model\n");
    return 1;
  }
  RUN(test_gamma_blocks_switch_at_k);
  RUN(test_frozen_blocks_keep_every_bit);
  RUN(test_frozen_dx_equals_active_dx);
  RUN(test_all_blocks_every_step_is_ft);
  RUN(test_frozen_embedding_skips_lower_blocks);
  RUN(test_layer_norms);
  RUN(test_grad_accum_sums_micro_batches);
  RUN(test_gamma_beyond_layers_is_an_error);
  RUN(test_policy_matches_uniform_sets);
  unlink(model_path);
  rmdir(dir);
  return check_exit();
}
