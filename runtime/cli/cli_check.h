/* cli_check.h: what `lisa check` and `lisa tune` share (cli_check.c): their
 * options, the device, the model and one checked build of its program. */
#ifndef LT_CLI_CHECK_H
#define LT_CLI_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "dev_check.h"
#include "dev_run.h"
#include "gen.h"

typedef struct {
  const char *model_path, *weights_path, *tune_path, *kernels, *search_path;
  int method, lora_rank, batch, seq, grad_accum, dtype, device, json, no_tune_db, report;
  int no_prune; /* lisa tune: check every variant, whatever its compile statistics */
  int steps;    /* lisa check: training steps on the device against the CPU trainer */
  double budget; /* lisa tune: seconds of checking and timing per kernel (0: no limit) */
  int64_t seed;
} check_args;

/* 0 to go on, else -1 with the exit status (0 after --help); tune: lisa
 * tune's usage and options. */
int check_parse_args(int tune, int argc, char **argv, check_args *a, int *exit_status);
/* The device: emu, or the GPU; *slack: the bounds' factor. */
int check_open_device(const check_args *a, dev_provider *p, char *name, size_t cap, double *slack,
                      lt_error *err);
/* MODEL opened, LoRA applied where asked, backward built; on failure m is
 * freed and err says why. */
int check_load_model(const check_args *a, ir_model *m, char *folder, size_t cap, lt_error *err);
/* What trains: the adapters for LoRA, else everything (malloc'ed). */
unsigned char *check_trains_of(const check_args *a, const ir_model *m);
/* The program's settings: the arguments' shape and precision, the device's
 * SMs and tensor cores. */
gen_config check_config_of(const check_args *a, const unsigned char *trains,
                           const gen_tuning *tuning, const dev_provider *p);
/* The program for the model with `tuning`, as the device p builds it, and
 * the CPU state beside it, checked into rep. *built: 0 when the generator
 * or the device refused the program (err says why). */
int check_verify(const check_args *a, ir_model *m, const char *weights,
                 const unsigned char *trains, const gen_tuning *tuning, const dev_provider *p,
                 const dev_check_options *o, dev_check_report *rep, int *built, lt_error *err);

#endif
