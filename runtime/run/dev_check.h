/* dev_check.h: every path of a model's program run on a device, section
 * instance by instance, against the CPU backend, value by value: what
 * `lisa check` prints. Each instance's inputs (and parameters) come from
 * the CPU state, rounded to bf16 there first in a bf16 program so both
 * sides see the same numbers; every value the path keeps (outputs, saved
 * activations, scratch, parameter gradients) is compared with the CPU's.
 * Bounds (NMSE): fp32 1e-7; bf16 forward 1e-4, backward 5e-4 (a dozen
 * roundings in a row: tests/gen/test_emu_gen.cpp measured them); times
 * `slack` on a real device (other summation orders). */
#ifndef LT_DEV_CHECK_H
#define LT_DEV_CHECK_H

#include "dev_train.h"
#include "gen.h"
#include "model_state.h"

typedef struct {
  char path[32];
  int inst;          /* the section instance: 0 embed, 1.. blocks, last head */
  char value[72];
  int backward;
  double max_abs, nmse, limit;
  int pass;          /* finite and nmse <= limit */
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
/* Whether a step's kernel is tuning.lua's `name` (<path>_<nn>_<name>). */
int dev_check_is_kernel(const char *step_kernel, const char *name);
void dev_check_report_free(dev_check_report *r);

#endif
