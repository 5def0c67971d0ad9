/* nvrtc_driver.h: CUDA C++ source -> CUBIN through NVRTC, with a disk cache.
 *
 * NVRTC needs no GPU and no driver, so kernels compile (and cache) on any
 * machine with the toolkit. A compile takes tens of milliseconds, so every
 * CUBIN is kept under the cache folder, keyed by a hash of the source, the
 * options, the arch and the NVRTC version; a hit reads the file and skips
 * NVRTC. Cache files carry a header (sizes and a checksum), so a truncated or
 * corrupted file is detected and recompiled instead of handed to the driver. */
#ifndef LT_NVRTC_DRIVER_H
#define LT_NVRTC_DRIVER_H

#include <stddef.h>

#include "err.h"

typedef struct {
  char arch[16];         /* a real arch, "sm_90" (CUBIN, not PTX) */
  const char *cache_dir; /* NULL: $XDG_CACHE_HOME/lisa, else ~/.cache/lisa */
} nv_options;

typedef struct {
  void *cubin;       /* ELF image, malloc'ed; nv_result_free releases it */
  size_t size;
  int cache_hit;     /* 1: read from the cache, NVRTC did not run */
  double compile_ms; /* NVRTC's compile, or the cache read on a hit */
  char log[65536];   /* NVRTC's log: ptxas registers and spills, or errors */
} nv_result;

/* Compiles `source` (kernel `name`: letters, digits, '_', '-'; it names the
 * cache file <cache_dir>/<name>-<16 hex>.cubin and the errors). On a compile
 * error the message names the kernel and quotes each failing source line
 * ("name.cu:12: error: ...\n   12 | <line>"); out->log holds NVRTC's log. */
int nv_compile(const char *name, const char *source, const nv_options *o, nv_result *out,
               lt_error *err);

void nv_result_free(nv_result *r);

/* One source of a batch: name and source in, the rest out. */
typedef struct {
  const char *name, *source;
  nv_result result;
  lt_error err;
  int rc;
} nv_job;

/* Compiles n sources at once (a thread per core, at most n); each job gets
 * its own result or error. Returns how many failed; *n_threads (if not
 * NULL) gets the threads used. */
int nv_compile_batch(nv_job *jobs, int n, const nv_options *o, int *n_threads);

/* One kernel's line in ptxas's report (--ptxas-options=-v). */
typedef struct {
  char name[128];
  int registers;
  int spill_stores, spill_loads; /* bytes */
  int stack;                     /* bytes of stack frame */
  int smem;                      /* bytes of static shared memory */
} nv_kernel_stats;

/* Reads every kernel's statistics from a compile log into out[0, cap);
 * returns how many kernels the log reports (may exceed cap). */
int nv_parse_stats(const char *log, nv_kernel_stats *out, int cap);

/* NVRTC's version (13.0 for CUDA 13). */
int nv_version(int *major, int *minor, lt_error *err);

#endif
