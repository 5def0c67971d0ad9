/* gpu_host.h: run generated paths on the device with host buffers, for
 * tests and checks (copies every buffer in, runs, copies them back). Opaque
 * and free of CUDA's headers, so code that also includes the emulator's
 * CUDA definitions can use it. */
#ifndef LT_GPU_HOST_H
#define LT_GPU_HOST_H

#include <stddef.h>

#include "err.h"
#include "gen.h"
#include "path_exec.h"

typedef struct gpu_host gpu_host;

/* Opens the first device; name gets "NVIDIA H200 (sm_90)". */
int gpu_host_open(gpu_host **h, char *name, size_t cap, lt_error *err);
/* Compiles and loads every path of prog (the previous program's go). */
int gpu_host_load(gpu_host *h, const gen_program *prog, lt_error *err);
/* Steps [from, to) of p; host_bufs[b] has bytes[b] bytes (NULL: none). */
int gpu_host_run(gpu_host *h, const gen_path *p, int from, int to, void *const *host_bufs,
                 const size_t *bytes, const path_exec_scalars *sc, lt_error *err);
void gpu_host_close(gpu_host *h);

#endif
