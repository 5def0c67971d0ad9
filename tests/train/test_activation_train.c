/* A custom activation trains like the ops it spells out: the tiny GPT-2 with
 * its MLP activation written as the tanh-GELU expression matches the same
 * model with the built-in gelu, and quick GELU from a Lua file matches
 * scale(1.702) -> silu -> scale(1/1.702), step by step, within fp32
 * tolerance. LISA with one of three blocks active, so FROZEN blocks run the
 * activation's dX too. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "train.h"

#define STEPS 8

static char dir[] = "/tmp/lisa-activation-XXXXXX";

/* Copies src to dst with the op line starting `op` (plus `extra` lines after
 * it) replaced by `with`. */
static int derive(const char *src, const char *dst, const char *op, int extra,
                  const char *with) {
  FILE *in = fopen(src_path(src), "r"), *out = fopen(dst, "w");
  int found = 0, skip = 0;
  char line[512];
  while (in && out && fgets(line, sizeof line, in)) {
    if (skip > 0) {
      skip--;
    } else if (strncmp(line, op, strlen(op)) == 0) {
      fputs(with, out);
      found = 1, skip = extra;
    } else {
      fputs(line, out);
    }
  }
  if (in) fclose(in);
  if (out && fclose(out) != 0) found = 0;
  return found ? 0 : -1;
}

static train_config config(const char *model) {
  train_config c = {0};
  c.model_path = model;
  c.data_path = src_path("tests/fixtures/tokens-67.bin");
  c.method = TRAIN_LISA;
  c.steps = STEPS;
  c.batch = 2, c.seq = 8, c.seed = 11;
  c.opt = opt_defaults();
  c.opt.lr = 1e-2f;
  c.train_embed = c.train_head = 1;
  c.lisa = (lisa_sampler_config){.mode = LISA_SAMPLE_UNIFORM, .gamma = 1, .interval = 2};
  return c;
}

/* Losses of STEPS training steps, or -1 after a failed check. */
static int train(const char *model, float *losses, trainer *t) {
  lt_error err;
  train_config c = config(model);
  if (trainer_create(t, &c, &err)) {
    CHECK_MSG(0, "%s: %s", model, err.msg);
    trainer_free(t);
    return -1;
  }
  for (int s = 0; s < STEPS; s++) {
    train_step_stats st;
    if (trainer_step(t, &st, &err)) {
      CHECK_MSG(0, "%s step %d: %s", model, s, err.msg);
      return -1;
    }
    losses[s] = st.loss;
  }
  return 0;
}

/* The block's activation_bwd reads x (the pre-activation fc), which FROZEN
 * blocks need for dX: saved and saved_dx, as for gelu. */
static void check_backward_graph(const ir_model *m) {
  const ir_graph *g = &m->sections[IR_BLOCK];
  int found = 0;
  for (int i = 0; i < g->n_bwd; i++) {
    const ir_op *op = &g->bwd[i];
    if (op->kind != IR_OP_ACTIVATION_BWD) continue;
    found++;
    const ir_value *x = &g->values[op->in[1]];
    CHECK(strcmp(x->name, "fc") == 0 && x->saved && x->saved_dx && !op->param_grad);
    CHECK(op->activation == 0 && m->activations[0].dfn != NULL);
  }
  CHECK(found == 1);
}

static void compare(const char *model, const char *reference, double tol) {
  trainer a, b;
  float la[STEPS], lb[STEPS];
  if (train(model, la, &a)) return;
  check_backward_graph(&a.ir);
  if (train(reference, lb, &b) == 0) {
    CHECK(memcmp(a.sched.active, b.sched.active, (size_t)a.sched.n_active * sizeof *a.sched.active) == 0);
    for (int s = 0; s < STEPS; s++)
      CHECK_MSG(fabs(la[s] - lb[s]) <= tol * fabs(lb[s]), "%s step %d: loss %.9g, "
                "reference %.9g", model, s, la[s], lb[s]);
    CHECK_MSG(la[STEPS - 1] < la[0], "loss %g -> %g", la[0], la[STEPS - 1]);
    trainer_free(&b);
  }
  trainer_free(&a);
}

static char gelu_ref[128], quick_ref[128];

static void test_tanh_gelu_expression_is_gelu(void) {
  compare(src_path("tests/fixtures/yaml/gpt2-tiny-activation.yaml"), gelu_ref, 1e-5);
}

static void test_lua_quick_gelu(void) {
  compare(src_path("tests/fixtures/yaml/gpt2-tiny-lua-activation.yaml"), quick_ref, 1e-5);
}

int main(void) {
  if (!mkdtemp(dir)) return 1;
  snprintf(gelu_ref, sizeof gelu_ref, "%s/gelu.yaml", dir);
  snprintf(quick_ref, sizeof quick_ref, "%s/quick.yaml", dir);
  const char *op = "    - {op: activation, in: [fc], out: fc_act,";
  CHECK(derive("tests/fixtures/yaml/gpt2-tiny-activation.yaml", gelu_ref, op, 1,
               "    - {op: gelu, in: [fc], out: fc_act}\n") == 0);
  CHECK(derive("tests/fixtures/yaml/gpt2-tiny-lua-activation.yaml", quick_ref, op, 0,
               "    - {op: scale, in: [fc], out: fc_s, factor: 1.702}\n"
               "    - {op: silu, in: [fc_s], out: fc_silu}\n"
               "    - {op: scale, in: [fc_silu], out: fc_act, factor: 1 / 1.702}\n") == 0);
  if (check_failures == 0) {
    RUN(test_tanh_gelu_expression_is_gelu);
    RUN(test_lua_quick_gelu);
  }
  unlink(gelu_ref), unlink(quick_ref), rmdir(dir);
  return check_exit();
}
