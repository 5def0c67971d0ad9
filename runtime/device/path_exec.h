/* path_exec.h: runs the steps of a generated path (codegen/gen/gen.h) on a
 * backend. The executor resolves every step's buffer references to
 * pointers and hands kernel launches and GEMMs to the backend; it knows
 * nothing of CUDA. The tests' emulator backend (kernels in the host CUDA
 * emulator, GEMMs on the CPU) and the CUDA backend (cuLaunchKernel,
 * cuBLASLt) both sit behind it, so the emulator tests check the same code
 * path the GPU runs.
 *
 * Buffers: bufs[b] is the memory of path buffer b (NULL for unused ones and
 * views, which resolve through their base). */
#ifndef LT_PATH_EXEC_H
#define LT_PATH_EXEC_H

#include <stddef.h>

#include "err.h"
#include "gen.h"

/* A GEMM with its operands resolved (NULL where the plan has none). */
typedef struct {
  const gen_gemm *g;
  void *a, *w, *d, *c, *bias, *aux;
} path_exec_gemm;

typedef struct {
  void *ctx;
  /* Runs kernel step st (index `step` of path p) with args as
   * cuLaunchKernel's kernelParams. */
  int (*launch)(void *ctx, const gen_path *p, int step, void **args, lt_error *err);
  int (*gemm)(void *ctx, const gen_path *p, int step, const path_exec_gemm *g, lt_error *err);
} path_exec_backend;

/* The optimizer path's scalars: count is the table's entries (the widening
 * copy: its elements), step is added to each entry's own step. */
typedef struct {
  int count, step;
  float lr, beta1, beta2, eps, weight_decay, max_norm;
  unsigned seed;
} path_exec_opt;

/* Scalars every path's kernels take. */
typedef struct {
  int N, B;          /* rows (B*T) and batch */
  float loss_scale;  /* each counted target's loss gradient: the micro-batch's
                      * share of the step's loss over its counted targets */
  path_exec_opt opt;        /* the optimizer path */
  int layer;         /* a block path's layer (per-layer variants: Gemma 2's windows) */
  int pos0;          /* decoding: the position of row 0 */
} path_exec_scalars;

/* rows x cols of a path buffer's dtype (GEN_F32 or GEN_BF16) at a row
 * stride of ld elements, to and from dense floats (bf16 widened exactly,
 * rounded to nearest even). */
void path_read_floats(const void *base, int dtype, int64_t ld, int64_t rows, int64_t cols,
                      float *out);
void path_write_floats(void *base, int dtype, int64_t ld, int64_t rows, int64_t cols,
                       const float *src);

/* Runs steps [from, to) of p. */
int path_exec_run(const gen_path *p, int from, int to, void *const *bufs,
                  const path_exec_scalars *sc, const path_exec_backend *be, lt_error *err);

/* Pointer to a reference's first element (NULL if it has no buffer). */
void *path_exec_ref(const gen_path *p, void *const *bufs, gen_ref r);

#endif
