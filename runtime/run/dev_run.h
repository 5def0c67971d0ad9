/* dev_run.h: `lisa train` on a device (cuda, emu): the generated program
 * for the run, the device trainer over it, set up before step 0, as one
 * run_backend. What differs between devices (building and loading the
 * program, memory, copies, launches, GEMMs) comes in a dev_provider. */
#ifndef LT_DEV_RUN_H
#define LT_DEV_RUN_H

#include <stddef.h>

#include "dev_train.h"
#include "gen.h"
#include "nccl_comm.h"
#include "path_profile.h"
#include "run.h"

typedef struct {
  void *ctx;
  /* Generates *prog from m and cfg and loads it for the device; *unfused:
   * GEMM epilogues it had to generate as kernels of their own (0 normally). */
  int (*build)(void *ctx, const ir_model *m, const gen_config *cfg, gen_program *prog,
               unsigned *unfused, lt_error *err);
  dt_device (*iface)(void *ctx); /* valid while built */
  size_t (*used_bytes)(void *ctx); /* what the process holds on the device now; NULL */
  void (*unload)(void *ctx);       /* before the program is freed */
  void (*close)(void *ctx);
  /* Data parallel: the NCCL this device's ranks sum with (nccl_lib_load's,
   * or the emulator's over world's MPI) and its streams for it, made before
   * step 0; NULL: the device trains alone. */
  int (*collectives)(void *ctx, dist_comm *world, nccl_lib *lib, ncomm_streams *streams,
                     lt_error *err);
  int sms;                 /* gen_config.sms */
  int no_mma;              /* gen_config.no_mma */
  double bf16_peak;        /* dense bf16 FLOP/s for MFU; 0: unknown */
  size_t workspace_bytes;  /* beside the arena (the GEMMs') */
  char arch[16];           /* NVRTC's target ("sm_90"): lisa tune's compile statistics */
  char tune_device[160];   /* the tuning database's key (tune_db.h): what the
                              kernels' times depend on, "name|sm_XY|cuda V" */
} dev_provider;

/* A training program's settings on p: shapes, the precision's dtypes, the
 * bf16 rounding (nearest), p's SMs and tensor cores, what trains (LoRA's
 * adapters; NULL: every param) and the tunables (NULL: the defaults). */
gen_config dev_program_config(const dev_provider *p, int B, int T, int grad_accum, int precision,
                              int nearest, const unsigned char *trains, const gen_tuning *tuning);

typedef struct dev_run dev_run;

/* Takes p (closed with the run, also on failure). */
int dev_run_open(dev_run **out, const dev_provider *p, lt_error *err);
/* The run loop's backend over an opened dev_run (the context): prepare
 * generates, loads and uploads (and profiles with o->profile). */
const run_backend *dev_run_backend(void);
/* After prepare: the GEMM epilogues run as kernels of their own. */
unsigned dev_run_unfused(const dev_run *r);
void dev_run_close(dev_run *r);

#endif
