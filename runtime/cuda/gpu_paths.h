/* gpu_paths.h: generated paths on a CUDA device. Before step 0 every path
 * is compiled (NVRTC, through the CUBIN cache), loaded, its kernels looked
 * up and a cuBLASLt descriptor and algorithm chosen for each GEMM; running a
 * path is then only launches and matmuls on one stream: no compilation, no
 * allocation, no host sync. path_exec.h drives it through gpu_backend. */
#ifndef LT_GPU_PATHS_H
#define LT_GPU_PATHS_H

#include "gen.h"
#include "gen_cublaslt.h"
#include "gpu_api.h"
#include "path_exec.h"

#define GPU_WORKSPACE_BYTES (32u << 20) /* cuBLASLt's on Hopper */

typedef struct {
  gpu_api *api;
  cublasLtHandle_t lt;
  CUstream stream;
  CUdeviceptr workspace;
  char arch[16];
  unsigned no_algo; /* bits 1u << enum gen_epilogue: fused GEMMs cuBLASLt had no
                       algorithm for (regenerate with gen_config.no_epilogues) */
} gpu_runtime;

typedef struct {
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a, b, c, d;
  cublasLtMatmulAlgo_t algo[GEN_LT_NTIERS]; /* per alignment tier (gen_cublaslt.h) */
  int have[GEN_LT_NTIERS];                  /* the heuristic found one for the tier */
  int elem[6];        /* bytes per element of A, B, C, D, bias, aux (0: none) */
  int a_from, b_from; /* enum gen_lt_operand: which plan operand is A, B */
  int beta;
  int ready;
} gpu_gemm_setup;

typedef struct {
  const gen_path *p;    /* the backend's key; gpu_path_free does not read it */
  int n_steps;          /* p's, so the path frees after its program is gone */
  CUmodule module;
  CUfunction *fn;       /* [n_steps]: kernel steps */
  gpu_gemm_setup *gemm;  /* [n_steps]: GEMM steps */
} gpu_path;

int gpu_runtime_open(gpu_runtime *rt, gpu_api *api, lt_error *err);
void gpu_runtime_close(gpu_runtime *rt);

/* Compiles every path of prog at once (a thread per core) into the CUBIN
 * cache, so the loads that follow are cache hits. */
int gpu_compile_all(const gpu_runtime *rt, const gen_program *prog, lt_error *err);

/* Compiles (or finds in the cache) and loads p for the device. A GEMM with
 * a fused epilogue (GELU*, DGELU, BGRAD) that cuBLASLt has no algorithm for
 * fails the load and sets its bit in rt->no_algo; the others are still
 * planned, so one load names every such epilogue of the path. */
int gpu_path_load(gpu_runtime *rt, const gen_path *p, gpu_path *out, lt_error *err);
void gpu_path_free(gpu_runtime *rt, gpu_path *gp);

/* A plan_exec backend over loaded paths; ctx must outlive it. */
typedef struct {
  gpu_runtime *rt;
  gpu_path *paths;
  int n_paths;
} gpu_backend_ctx;

path_exec_backend gpu_backend(gpu_backend_ctx *ctx);

#endif
