/* dev_check.h: every path of a model's program run on a device, section
 * instance by instance, against the CPU backend, value by value: what
 * `lisa check` prints. Each instance's inputs (and parameters) come from
 * the CPU state, rounded to bf16 there first in a bf16 program so both
 * sides see the same numbers; every value the path keeps (outputs, saved
 * activations, scratch, parameter gradients) is compared with the CPU's.
 * Bounds (NMSE): fp32 1e-7; bf16 forward 3e-4, backward 2e-3, times
 * `slack` on a real device (other summation orders). fp32 is the exact
 * check; bf16's bounds hold over every bundled model and family (a dozen
 * roundings in a row; Qwen2's key-bias gradient, a column sum of bf16 dK
 * that cancels, reached 1.3e-3) and catch gross errors, not a subtle one. */
#ifndef LT_DEV_CHECK_H
#define LT_DEV_CHECK_H

#include "dev_run.h"
#include "dev_train.h"
#include "gen.h"
#include "model_state.h"
#include "train.h"

typedef struct {
  char path[32];
  int inst;          /* the section instance: 0 embed, 1.. blocks, last head */
  char value[72];
  int backward;
  double max_abs, nmse, limit;
  int pass;          /* finite and nmse <= limit */
  int info;          /* shown, not judged (limit 0): no bound holds for it */
} dev_check_row;

typedef struct {
  dev_check_row *rows;
  int n, cap, failed;
  double kernel_ms; /* dev_check_options.time_kernel: its time, else 0 */
} dev_check_report;

typedef struct {
  double slack;            /* the bounds' factor: 1 on the emulator, 10 on a GPU */
  /* NULL, or a kernel (tuning.lua's name: steps named <path>_<nn>_<name>)
   * to time after each of its steps is checked: `repeats` launches between
   * the device's timers, after one to warm up; kernel_ms is the sum over
   * its steps of the median launch (the device's timers: CUDA events on a
   * GPU, the host clock on the emulator). */
  const char *time_kernel;
  int repeats;
} dev_check_options;

/* Runs prog's paths (active, frozen and forward-only blocks, each with its
 * embed and head) on dev against s (created with prog's trains; weights,
 * ids and targets set; its values are overwritten). */
int dev_check_program(const gen_program *prog, ms_state *s, const dt_device *dev,
                      const dev_check_options *o, dev_check_report *out, lt_error *err);
/* tc's training (its method, batch, sequence, seed, optimizer and LISA
 * settings; tc->steps of them, at most DEV_CHECK_MAX_STEPS) on the CPU
 * trainer and on the device trainer over the program p builds (precision,
 * tuning) from the same weights and batches, as lisa train runs them: rows
 * of path "steps", each step's loss and gradient norm (nmse: the relative
 * error squared) and every parameter after the last (NMSE). What the
 * section paths leave out: the optimizer path (global norm, clip, AdamW,
 * the widening copy) and the step around it. Bounds as
 * tests/gen/test_dev_train.cpp measured over 20 steps (fp32: 1e-5 relative,
 * 1e-9 NMSE; bf16: 5e-3 loss, 3e-2 gradient norm, 3e-4 weights, 6e-4
 * bf16-true), times slack (slack squared for NMSE). */
#define DEV_CHECK_MAX_STEPS 64
int dev_check_steps(const train_config *tc, int precision, const gen_tuning *tuning,
                    const dev_provider *p, double slack, dev_check_report *rep, lt_error *err);

/* A row into r (its pass counted); -1 when out of memory. */
int dev_check_add(dev_check_report *r, const dev_check_row *row);
/* max_abs, nmse and pass of row (its limit set) for got against want. */
void dev_check_measure(const float *got, const float *want, int64_t n, dev_check_row *row);

/* Whether a step's kernel is tuning.lua's `name` (<path>_<nn>_<name>). */
int dev_check_is_kernel(const char *step_kernel, const char *name);
void dev_check_report_free(dev_check_report *r);

#endif
