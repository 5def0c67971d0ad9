/* test_extra_op.c: an element-wise op added through the op table alone
 * trains on the CPU. Built only in the variant of the libraries compiled with
 * -DLISA_EXTRA_OPS=tests/fixtures/extra_ops.def, whose one line defines
 * softplus(x) = log(1 + exp(x)); gpt2-tiny-softplus.yaml uses it as the MLP
 * activation. Checks: the table has it (and its backward), the YAML front
 * end, autodiff and the executor take it with no code of its own, its
 * forward is softplus (against libm), the gradients of the loss match
 * central differences (so its derivative is right), and the loss falls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "executor.h"
#include "ir_ops.h"
#include "train.h"

#define STEPS 8

static train_config config(void) {
  train_config c = {0};
  c.model_path = src_path("tests/fixtures/yaml/gpt2-tiny-softplus.yaml");
  c.data_path = src_path("tests/fixtures/tokens-67.bin");
  c.method = TRAIN_FT;
  c.steps = STEPS;
  c.batch = 2, c.seq = 8, c.seed = 5;
  c.opt = opt_defaults();
  c.opt.lr = 1e-2f;
  c.train_embed = c.train_head = 1;
  return c;
}

static void test_table_entry(void) {
  CHECK(ir_op_from_name("softplus") == IR_OP_SOFTPLUS);
  const ir_op_entry *e = &ir_op_info[IR_OP_SOFTPLUS];
  CHECK(ir_op_is_forward(IR_OP_SOFTPLUS) && !ir_op_is_forward(IR_OP_SOFTPLUS_BWD));
  CHECK(e->tree == IR_TREE_FN && e->grad_kind == IR_OP_SOFTPLUS_BWD);
  CHECK(strcmp(ir_op_name(IR_OP_SOFTPLUS_BWD), "softplus_bwd") == 0);
  for (int k = 0; k < IR_OP_COUNT; k++)
    CHECK_MSG(exec_supports((ir_opkind)k), "no CPU kernel for %s", ir_op_name((ir_opkind)k));
}

/* The block's softplus op and, in its backward, softplus_bwd reading fc. */
static const ir_op *find_softplus(const ir_model *m) {
  const ir_graph *g = &m->sections[IR_BLOCK];
  const ir_op *fwd = NULL;
  int n_bwd = 0;
  for (int i = 0; i < g->n_fwd; i++)
    if (g->fwd[i].kind == IR_OP_SOFTPLUS) fwd = &g->fwd[i];
  for (int i = 0; i < g->n_bwd; i++)
    n_bwd += g->bwd[i].kind == IR_OP_SOFTPLUS_BWD &&
             strcmp(g->values[g->bwd[i].in[1]].name, "fc") == 0;
  CHECK(fwd != NULL && n_bwd == 1);
  return fwd;
}

/* Block 0's softplus output against log1p(exp(x)) of its input. */
static void check_forward(trainer *t, const ir_op *op) {
  ms_state *s = &t->state;
  exec_forward(s, 0);
  exec_forward(s, 1);
  const float *x = s->bufs[1][op->in[0]], *y = s->bufs[1][op->out[0]];
  int64_t n = (int64_t)s->N * t->ir.sections[IR_BLOCK].values[op->out[0]].cols;
  double worst = 0;
  for (int64_t i = 0; i < n; i++) {
    double want = log1p(exp((double)x[i]));
    worst = fmax(worst, fabs(y[i] - want) / fmax(1.0, fabs(want)));
  }
  CHECK_MSG(worst < 1e-6, "softplus forward off by %g", worst);
}

/* Multiplies param `key` of block 0 by f. */
static void amplify(trainer *t, const char *key, float f) {
  int p = ir_find_param(&t->ir, key);
  float *w = ms_param(&t->state, p, 0);
  for (int64_t i = 0; i < ir_param_numel(&t->ir.params[p]); i++) w[i] *= f;
}

/* (loss(w + h u) - loss(w - h u)) / 2h: the loss's slope along u. */
static double slope(trainer *t, float *w, const float *u, int64_t n, float h) {
  float *saved = malloc((size_t)n * sizeof *saved);
  memcpy(saved, w, (size_t)n * sizeof *w);
  for (int64_t i = 0; i < n; i++) w[i] = saved[i] + h * u[i];
  double up = train_forward(&t->state);
  for (int64_t i = 0; i < n; i++) w[i] = saved[i] - h * u[i];
  double down = train_forward(&t->state);
  memcpy(w, saved, (size_t)n * sizeof *w);
  free(saved);
  return (up - down) / (2.0 * h);
}

/* d(loss)/d(block 0's fc_b) (the bias right before softplus, so every term
 * goes through softplus' derivative) against central differences: per
 * element, and along the gradient itself, where the loss changes most and
 * the float loss's rounding matters least. The MLP's output projection is
 * scaled up first, so these gradients are not tiny. */
static void check_gradients(trainer *t) {
  ms_state *s = &t->state;
  amplify(t, "mproj_w", 20.0f);
  int p = ir_find_param(&t->ir, "fc_b");
  float *w = ms_param(s, p, 0), *grad = ms_grad(s, p, 0);
  int64_t n = ir_param_numel(&t->ir.params[p]);
  train_zero_grads(s);
  train_forward(s);
  train_backward(s, NULL, 1.0f);
  float *u = calloc((size_t)n, sizeof *u);
  double err2 = 0, norm2 = 0;
  for (int64_t i = 0; i < n; i++) {
    u[i] = 1.0f;
    double fd = slope(t, w, u, n, 0.2f);
    u[i] = 0.0f;
    err2 += (grad[i] - fd) * (grad[i] - fd);
    norm2 += (double)grad[i] * grad[i];
  }
  CHECK_MSG(norm2 > 0 && sqrt(err2 / norm2) < 0.05,
            "fc_b gradient vs finite differences: relative error %g (|grad| %g)",
            sqrt(err2 / norm2), sqrt(norm2));
  for (int64_t i = 0; i < n; i++) u[i] = (float)(grad[i] / sqrt(norm2));
  double along = slope(t, w, u, n, 0.5f);
  CHECK_MSG(fabs(along - sqrt(norm2)) < 0.01 * sqrt(norm2),
            "slope along the gradient %g, its norm %g", along, sqrt(norm2));
  free(u);
}

static void test_trains_on_cpu(void) {
  trainer t;
  lt_error err;
  train_config c = config();
  if (trainer_create(&t, &c, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    trainer_free(&t);
    return;
  }
  float losses[STEPS];
  for (int i = 0; i < STEPS; i++) {
    train_step_stats st;
    if (trainer_step(&t, &st, &err)) {
      CHECK_MSG(0, "step %d: %s", i, err.msg);
      trainer_free(&t);
      return;
    }
    losses[i] = st.loss;
  }
  CHECK_MSG(losses[STEPS - 1] < losses[0] - 0.1f, "loss %g -> %g", losses[0],
            losses[STEPS - 1]);
  const ir_op *op = find_softplus(&t.ir);
  if (op) check_forward(&t, op);
  check_gradients(&t);
  trainer_free(&t);
}

int main(void) {
  RUN(test_table_entry);
  RUN(test_trains_on_cpu);
  return check_exit();
}
