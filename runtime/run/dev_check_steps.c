/* dev_check_steps.c: a few training steps on a device against the CPU
 * trainer (dev_check.h, dev_check_steps): what the section paths' check
 * leaves out, the optimizer path (global norm, clip, AdamW, the widening
 * copy) and the step as lisa train runs it (LISA's switches, LoRA's frozen
 * base, pipelining). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev_check.h"
#include "lora.h"
#include "memory_plan.h"

/* Bounds after a few steps, as tests/gen/test_dev_train.cpp measured them
 * over 20: fp32 rounding only; bf16's weights and activations move the loss
 * by 1e-3 (2.7e-3 on the llama and olmo2 family fixtures: 5e-3 here) and
 * the gradient norm by a few percent. */
typedef struct {
  double loss_rel, norm_rel, weights_nmse;
  double frozen_nmse, update_nmse; /* param_rows'; update 0: shown, not judged */
} step_bounds;

static step_bounds bounds_of(int precision, double slack) {
  step_bounds b = precision == PRECISION_FP32 ? (step_bounds){1e-5, 1e-5, 1e-9, 0, 1e-4}
                  : precision == PRECISION_BF16_TRUE ? (step_bounds){5e-3, 3e-2, 6e-4, 1e-5, 0}
                                                     : (step_bounds){5e-3, 3e-2, 3e-4, 1e-5, 0};
  b.loss_rel *= slack, b.norm_rel *= slack;
  b.weights_nmse *= slack * slack, b.update_nmse *= slack * slack;
  return b;
}

typedef struct {
  float loss[DEV_CHECK_MAX_STEPS];
  double norm[DEV_CHECK_MAX_STEPS];
  int n;
} step_log;

static void record(step_log *l, const train_step_stats *st) {
  if (l->n < DEV_CHECK_MAX_STEPS) l->loss[l->n] = st->loss, l->norm[l->n] = st->grad_norm, l->n++;
}

/* The CPU trainer's steps; *start: its weights before them. */
static int cpu_steps(const train_config *tc, trainer *t, step_log *log, float **start,
                     lt_error *err) {
  if (trainer_create(t, tc, err)) return -1;
  const size_t n = (size_t)t->state.n_param_scalars;
  if (!(*start = malloc(sizeof **start * n))) return lt_fail(err, "out of memory");
  memcpy(*start, t->state.params, sizeof **start * n);
  for (int64_t i = 0; i < tc->steps; i++) {
    train_step_stats st;
    if (trainer_step(t, &st, err)) return -1;
    record(log, &st);
  }
  return 0;
}

/* The device trainer as lisa train sets it up (dev_run.c): program, arena,
 * weights through its store; then the steps, pipelined one deep. */
static int device_steps(const train_config *tc, int precision, const gen_tuning *tuning,
                        const dev_provider *p, trainer *t, step_log *log, float **weights,
                        lt_error *err) {
  train_config c = *tc;
  c.params_only = 1;
  if (trainer_create(t, &c, err)) return -1;
  unsigned char *trains = NULL;
  if (c.method == TRAIN_LORA) {
    if (!(trains = malloc((size_t)t->ir.n_params + 1))) return lt_fail(err, "out of memory");
    lora_trains(&t->ir, trains);
  }
  gen_config cfg = dev_program_config(p, c.batch, c.seq, trainer_grad_accum(t), precision, 0,
                                      trains, tuning);
  gen_program prog;
  unsigned unfused;
  dev_trainer *d = NULL;
  int rc = p->build(p->ctx, &t->ir, &cfg, &prog, &unfused, err);
  free(trains);
  if (rc) return -1;
  dt_device dev = p->iface(p->ctx);
  rc = dt_create(&d, t, &prog, &dev, err);
  if (rc == 0) {
    param_store ps = dt_store(d);
    trainer_use_store(t, &ps);
    rc = trainer_load_weights(t, err);
  }
  train_step_stats st;
  int ready;
  for (int64_t i = 0; rc == 0 && i < c.steps; i++)
    if ((rc = dt_step(d, &st, &ready, err)) == 0 && ready) record(log, &st);
  if (rc == 0 && (rc = dt_finish(d, &st, &ready, err)) == 0 && ready) record(log, &st);
  /* the weights, read back before the arena goes (params_only: the state
   * has the layout, not the values) */
  if (rc == 0 && !(*weights = calloc((size_t)t->state.n_param_scalars, sizeof **weights)))
    rc = lt_fail(err, "out of memory");
  for (int q = 0; rc == 0 && q < t->ir.n_params; q++)
    for (int l = 0; rc == 0 && l < ps_param_layers(&t->ir, q); l++)
      rc = t->store.get(t->store.ctx, q, l, *weights + ms_param_index(&t->state, q, l), err);
  dt_free(d);
  if (p->unload) p->unload(p->ctx);
  gen_free(&prog);
  return rc;
}

static int scalar_row(dev_check_report *rep, const char *what, int step, double got, double want,
                      double rel) {
  dev_check_row row = {.path = "steps", .inst = step, .limit = rel * rel};
  snprintf(row.value, sizeof row.value, "%s", what);
  row.max_abs = fabs(got - want);
  row.nmse = want != 0 ? (row.max_abs / fabs(want)) * (row.max_abs / fabs(want)) : row.max_abs;
  row.pass = isfinite(got) && row.nmse <= row.limit;
  return dev_check_add(rep, &row);
}

/* Parameter q after the steps, layer by layer. A layer the CPU left alone
 * (frozen, a block LISA did not draw, LoRA's base) must be as it was: the
 * values' NMSE over those layers, 0 in fp32, bf16's rounding of the start in
 * bf16. The layers that trained: their update from the common start against
 * the CPU's, NMSE relative to the CPU's update (a bias that starts at zero
 * is all update). fp32 bounds it by 1e-4: a gradient that is rounding noise
 * (a key bias) still moves its weights a little differently on each side
 * (2.7e-6 on phi's, the worst of the bundled families, with eps 1e-6). In
 * bf16 it is shown, not judged: a weight near 1 has a spacing (2^-7) larger
 * than lr; the weights together are judged ("all weights"). */
static int param_rows(dev_check_report *rep, const ms_state *s, int q, const float *start,
                      const float *dev, const float *cpu, int steps, const step_bounds *b) {
  const int64_t numel = ir_param_numel(&s->ir->params[q]);
  const int layers = ps_param_layers(s->ir, q);
  float *got[2], *want[2]; /* [0] the frozen layers' values, [1] the trained layers' updates */
  int64_t n[2] = {0, 0};
  int rc = 0;
  for (int k = 0; k < 2; k++) got[k] = malloc(sizeof(float) * (size_t)(numel * layers));
  for (int k = 0; k < 2; k++) want[k] = malloc(sizeof(float) * (size_t)(numel * layers));
  if (!got[0] || !got[1] || !want[0] || !want[1]) rc = -1;
  for (int l = 0; rc == 0 && l < layers; l++) {
    const int64_t at = ms_param_index(s, q, l);
    int moved = 0;
    for (int64_t i = 0; i < numel; i++) moved |= cpu[at + i] != start[at + i];
    for (int64_t i = 0; i < numel; i++, n[moved]++) {
      got[moved][n[moved]] = moved ? dev[at + i] - start[at + i] : dev[at + i];
      want[moved][n[moved]] = moved ? cpu[at + i] - start[at + i] : cpu[at + i];
    }
  }
  for (int k = 0; rc == 0 && k < 2; k++) {
    if (!n[k]) continue;
    dev_check_row row = {.path = "steps", .inst = steps, .backward = 1,
                         .info = k && b->update_nmse == 0,
                         .limit = k ? b->update_nmse : b->frozen_nmse};
    snprintf(row.value, sizeof row.value, "%s %s", s->ir->params[q].key, k ? "update" : "(frozen)");
    dev_check_measure(got[k], want[k], n[k], &row);
    if (row.info) row.pass = 1;
    rc = dev_check_add(rep, &row);
  }
  for (int k = 0; k < 2; k++) free(got[k]), free(want[k]);
  return rc;
}

int dev_check_steps(const train_config *tc, int precision, const gen_tuning *tuning,
                    const dev_provider *p, double slack, dev_check_report *rep, lt_error *err) {
  if (tc->steps < 1 || tc->steps > DEV_CHECK_MAX_STEPS)
    return lt_fail(err, "dev_check_steps: 1 to %d steps", DEV_CHECK_MAX_STEPS);
  trainer cpu, dev;
  step_log cl = {0}, dl = {0};
  float *start = NULL, *weights = NULL; /* the CPU's before, the device's after */
  int rc = cpu_steps(tc, &cpu, &cl, &start, err), have_cpu = rc == 0, have_dev = 0;
  if (rc == 0) {
    rc = device_steps(tc, precision, tuning, p, &dev, &dl, &weights, err);
    have_dev = rc == 0 || dev.ir.n_params > 0;
  }
  if (rc == 0 && dl.n != cl.n) rc = lt_fail(err, "the device ran %d steps, the cpu %d", dl.n, cl.n);
  const step_bounds b = bounds_of(precision, slack);
  for (int i = 0; rc == 0 && i < cl.n; i++)
    if (scalar_row(rep, "loss", i + 1, dl.loss[i], cl.loss[i], b.loss_rel) ||
        scalar_row(rep, "grad norm", i + 1, dl.norm[i], cl.norm[i], b.norm_rel))
      rc = lt_fail(err, "out of memory");
  if (rc == 0) { /* every weight at once, as test_dev_train bounds it */
    dev_check_row row = {.path = "steps", .inst = (int)tc->steps, .backward = 1,
                         .limit = b.weights_nmse};
    snprintf(row.value, sizeof row.value, "all weights");
    dev_check_measure(weights, cpu.state.params, cpu.state.n_param_scalars, &row);
    if (dev_check_add(rep, &row)) rc = lt_fail(err, "out of memory");
  }
  for (int q = 0; rc == 0 && q < cpu.ir.n_params; q++)
    if (param_rows(rep, &cpu.state, q, start, weights, cpu.state.params, (int)tc->steps, &b))
      rc = lt_fail(err, "out of memory");
  free(start), free(weights);
  if (have_cpu) trainer_free(&cpu);
  if (have_dev) trainer_free(&dev);
  return rc;
}
