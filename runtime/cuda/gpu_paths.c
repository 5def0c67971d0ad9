/* gpu_paths.c: load generated paths on the device; run their steps. */
#include "gpu_paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_cublaslt.h"
#include "nvrtc_driver.h"

int gpu_runtime_open(gpu_runtime *rt, gpu_api *api, lt_error *err) {
  memset(rt, 0, sizeof *rt);
  rt->api = api;
  gpu_arch(api, rt->arch, sizeof rt->arch);
  CUresult rc;
  cublasStatus_t lst = api->ltCreate(&rt->lt);
  if (lst != CUBLAS_STATUS_SUCCESS) /* e.g. a cuBLASLt newer than the driver */
    return lt_fail(err, "cublasLtCreate failed (status %d; the driver supports CUDA %d.%d)",
                   (int)lst, api->driver_version / 1000, api->driver_version % 1000 / 10);
  if ((rc = api->cuStreamCreate(&rt->stream, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS ||
      (rc = api->cuMemAlloc(&rt->workspace, GPU_WORKSPACE_BYTES)) != CUDA_SUCCESS) {
    gpu_runtime_close(rt);
    return gpu_fail(api, rc, "stream and cuBLASLt workspace", err);
  }
  return 0;
}

void gpu_runtime_close(gpu_runtime *rt) {
  if (!rt->api) return;
  if (rt->workspace) rt->api->cuMemFree(rt->workspace);
  if (rt->stream) rt->api->cuStreamDestroy(rt->stream);
  if (rt->lt) rt->api->ltDestroy(rt->lt);
  memset(rt, 0, sizeof *rt);
}

/* ---------------------------------------------------------------------- */
/* GEMM descriptors */

static cudaDataType_t lt_type(int dtype) { return dtype == GEN_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

static cublasLtEpilogue_t lt_epilogue(int e) {
  switch (e) {
  case GEN_LT_BIAS: return CUBLASLT_EPILOGUE_BIAS;
  case GEN_LT_GELU: return CUBLASLT_EPILOGUE_GELU;
  case GEN_LT_GELU_AUX: return CUBLASLT_EPILOGUE_GELU_AUX;
  case GEN_LT_GELU_BIAS: return CUBLASLT_EPILOGUE_GELU_BIAS;
  case GEN_LT_GELU_AUX_BIAS: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
  case GEN_LT_DGELU: return CUBLASLT_EPILOGUE_DGELU;
  case GEN_LT_BGRADA: return CUBLASLT_EPILOGUE_BGRADA;
  case GEN_LT_BGRADB: return CUBLASLT_EPILOGUE_BGRADB;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

static int set_attr(const gpu_api *api, cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a,
                    const void *v, size_t n) {
  return api->ltMatmulDescSetAttribute(d, a, v, n) == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

/* Layouts of op-less storage: a (rows x cols) column-major matrix. */
static int layout(const gpu_api *api, cublasLtMatrixLayout_t *l, int dtype, long long rows,
                  long long cols, long long ld) {
  return api->ltMatrixLayoutCreate(l, lt_type(dtype), (uint64_t)rows, (uint64_t)cols, ld) ==
                 CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

/* The matmul descriptor and the four layouts; 0 or -1. */
static int make_descriptors(const gpu_api *api, const gen_gemm *g, const gen_lt *lt,
                            const gen_lt_types *ty, gpu_gemm_setup *gp) {
  cublasOperation_t opa = lt->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opb = lt->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtEpilogue_t epi = lt_epilogue(lt->epilogue);
  int64_t aux_ld = lt->ldd;
  int bad = api->ltMatmulDescCreate(&gp->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS;
  bad = bad || set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa) ||
        set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb) ||
        set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  if (!bad && (g->aux.buf >= 0))
    bad = set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld);
  if (!bad && ty->bias >= 0) { /* = Dtype, cuBLASLt's default; said explicitly (gen_cublaslt.h) */
    int32_t bt = (int32_t)lt_type(ty->bias);
    bad = set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt);
  }
  int ta = ty->a, tb = ty->b, td = ty->d;
  bad = bad ||
        layout(api, &gp->a, ta, lt->trans_a ? lt->k : lt->m, lt->trans_a ? lt->m : lt->k, lt->lda) ||
        layout(api, &gp->b, tb, lt->trans_b ? lt->n : lt->k, lt->trans_b ? lt->k : lt->n, lt->ldb) ||
        layout(api, &gp->c, td, lt->m, lt->n, lt->ldd) || layout(api, &gp->d, td, lt->m, lt->n, lt->ldd);
  return bad ? -1 : 0;
}

/* The heuristic's algorithm for alignment tier t, into gp->algo[t]. The
 * heuristic assumes 256-byte operands unless told less, and reads the bias
 * and aux alignment from the pointer values on the descriptor (cublasLt.h:
 * "routines that don't dereference this pointer ... depend on its value to
 * determine expected pointer alignment"), so the tier sets stand-in
 * pointers of its alignment; every call sets the real ones. -1 if cuBLASLt
 * cannot make a preference; else 0, the heuristic's status in *st. */
static int setup_tier(gpu_runtime *rt, gpu_gemm_setup *gp, int t, cublasStatus_t *st) {
  const gpu_api *api = rt->api;
  cublasLtMatmulPreference_t pref;
  size_t ws = GPU_WORKSPACE_BYTES; /* without it no algorithm may use a workspace */
  if (api->ltMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return -1;
  static const cublasLtMatmulPreferenceAttributes_t min_align[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  int pbad = api->ltMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &ws, sizeof ws) != CUBLAS_STATUS_SUCCESS;
  for (int i = 0; i < 4 && !pbad; i++) {
    uint32_t a = gen_lt_tier_align(t, gp->elem[i]);
    pbad = api->ltMatmulPreferenceSetAttribute(pref, min_align[i], &a, sizeof a) !=
           CUBLAS_STATUS_SUCCESS;
  }
  if (!pbad && gp->elem[4]) {
    void *stand_in = (void *)(uintptr_t)gen_lt_tier_align(t, gp->elem[4]);
    pbad = set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &stand_in, sizeof stand_in);
  }
  if (!pbad && gp->elem[5]) {
    void *stand_in = (void *)(uintptr_t)gen_lt_tier_align(t, gp->elem[5]);
    pbad = set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &stand_in,
                    sizeof stand_in);
  }
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  *st = pbad ? CUBLAS_STATUS_INVALID_VALUE
             : api->ltMatmulAlgoGetHeuristic(rt->lt, gp->desc, gp->a, gp->b, gp->c, gp->d, pref,
                                             1, &res, &found);
  api->ltMatmulPreferenceDestroy(pref);
  if (*st == CUBLAS_STATUS_SUCCESS && found >= 1) gp->algo[t] = res.algo, gp->have[t] = 1;
  return 0;
}

/* Bytes of the GEMM's largest operand (column-major storage: A is lda x k,
 * or lda x m transposed; B ldb x n or ldb x k; C, D and aux ldd x n). */
static size_t largest_operand(const gen_lt *lt, const gpu_gemm_setup *gp) {
  size_t a = (size_t)lt->lda * (size_t)(lt->trans_a ? lt->m : lt->k) * (size_t)gp->elem[0];
  size_t b = (size_t)lt->ldb * (size_t)(lt->trans_b ? lt->k : lt->n) * (size_t)gp->elem[1];
  size_t d = (size_t)lt->ldd * (size_t)lt->n * (size_t)gp->elem[3];
  size_t most = a > b ? a : b;
  return most > d ? most : d;
}

/* Every algorithm the heuristic found is run once before step 0, on probe
 * memory holding the largest operand (which the run's arena holds anyway)
 * at the tier's weakest alignment: one cublasLtMatmul refuses is dropped as
 * if it had not been found, so a fused epilogue left without any runs
 * unfused (rt->no_algo) instead of ending the run at its first step. The
 * operands share the memory: the values are garbage, only the status
 * counts. Without probe memory the algorithms stay as found. */
static void probe_tiers(gpu_runtime *rt, gpu_gemm_setup *gp, const gen_lt *lt) {
  const gpu_api *api = rt->api;
  CUdeviceptr mem;
  if (api->cuMemAlloc(&mem, largest_operand(lt, gp) + 256) != CUDA_SUCCESS) return;
  const float one = 1.0f, beta = gp->beta ? 1.0f : 0.0f;
  for (int t = 0; t < GEN_LT_NTIERS; t++) {
    if (!gp->have[t]) continue;
    void *at[6];
    for (int i = 0; i < 6; i++)
      at[i] = (void *)(uintptr_t)(mem + (gp->elem[i] ? gen_lt_tier_align(t, gp->elem[i]) : 0));
    if ((gp->elem[4] && set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &at[4],
                                 sizeof at[4])) ||
        (gp->elem[5] && set_attr(api, gp->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &at[5],
                                 sizeof at[5])) ||
        api->ltMatmul(rt->lt, gp->desc, &one, at[0], gp->a, at[1], gp->b, &beta, at[2], gp->c,
                      at[3], gp->d, &gp->algo[t], (void *)rt->workspace, GPU_WORKSPACE_BYTES,
                      (cudaStream_t)rt->stream) != CUBLAS_STATUS_SUCCESS)
      gp->have[t] = 0;
  }
  api->cuStreamSynchronize(rt->stream);
  api->cuMemFree(mem);
}

static int setup_gemm(gpu_runtime *rt, const gen_path *p, int s, gpu_gemm_setup *gp, lt_error *err) {
  const gen_gemm *g = &p->steps[s].gemm;
  gen_lt lt;
  gen_lt_of(g, &lt);
  gen_lt_types ty;
  gen_lt_types_of(p, g, &ty);
  if (make_descriptors(rt->api, g, &lt, &ty, gp))
    return lt_fail(err, "%s step %d: cuBLASLt rejected the GEMM's descriptors", p->name, s);
  int types[6] = {ty.a, ty.b, ty.d, ty.d, ty.bias, ty.aux};
  for (int i = 0; i < 6; i++) gp->elem[i] = types[i] < 0 ? 0 : gen_dtype_bytes(types[i]);
  int any = 0;
  cublasStatus_t last = CUBLAS_STATUS_SUCCESS;
  for (int t = 0; t < GEN_LT_NTIERS; t++) {
    cublasStatus_t st;
    if (setup_tier(rt, gp, t, &st)) return lt_fail(err, "cuBLASLt: no preference");
    if (st != CUBLAS_STATUS_SUCCESS) last = st;
  }
  gp->beta = lt.beta;
  probe_tiers(rt, gp, &lt);
  for (int t = 0; t < GEN_LT_NTIERS; t++) any |= gp->have[t];
  if (!any && g->epilogue != GEN_EPI_NONE && g->epilogue != GEN_EPI_BIAS)
    rt->no_algo |= 1u << g->epilogue; /* the generator can run it unfused */
  if (!any)
    return lt_fail(err, "%s step %d (%s): cuBLASLt has no algorithm it can run (m=%lld n=%lld "
                        "k=%lld, %s, status %d)",
                   p->name, s, p->steps[s].label, lt.m, lt.n, lt.k,
                   gen_lt_epilogue_name(lt.epilogue), (int)last);
  gp->a_from = lt.a_from, gp->b_from = lt.b_from;
  gp->ready = 1;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* paths */

/* The most dynamic shared memory any step launching `kernel` asks for. */
static unsigned max_smem(const gen_path *p, const char *kernel) {
  unsigned m = 0;
  for (int s = 0; s < p->n_steps; s++)
    if (p->steps[s].kind != GEN_STEP_GEMM && !strcmp(p->steps[s].kernel, kernel) &&
        p->steps[s].smem > m)
      m = p->steps[s].smem;
  return m;
}

int gpu_compile_all(const gpu_runtime *rt, const gen_program *prog, lt_error *err) {
  nv_options o = {.cache_dir = NULL};
  snprintf(o.arch, sizeof o.arch, "%s", rt->arch);
  nv_job *jobs = calloc((size_t)prog->n_paths + 1, sizeof *jobs);
  if (!jobs) return lt_fail(err, "out of memory");
  for (int i = 0; i < prog->n_paths; i++)
    jobs[i].name = prog->paths[i].name, jobs[i].source = sb_str(&prog->paths[i].source);
  int failed = nv_compile_batch(jobs, prog->n_paths, &o, NULL), rc = 0;
  for (int i = 0; i < prog->n_paths; i++) {
    if (jobs[i].rc && rc == 0) rc = -1, *err = jobs[i].err; /* the first failure */
    nv_result_free(&jobs[i].result);
  }
  free(jobs);
  return failed ? rc : 0;
}

int gpu_path_load(gpu_runtime *rt, const gen_path *p, gpu_path *out, lt_error *err) {
  memset(out, 0, sizeof *out);
  out->p = p, out->n_steps = p->n_steps;
  out->fn = calloc((size_t)p->n_steps + 1, sizeof *out->fn);
  out->gemm = calloc((size_t)p->n_steps + 1, sizeof *out->gemm);
  if (!out->fn || !out->gemm) {
    gpu_path_free(rt, out);
    return lt_fail(err, "out of memory");
  }
  nv_options o = {.cache_dir = NULL};
  snprintf(o.arch, sizeof o.arch, "%s", rt->arch);
  nv_result r;
  if (nv_compile(p->name, sb_str(&p->source), &o, &r, err)) {
    gpu_path_free(rt, out);
    return -1;
  }
  CUresult rc = rt->api->cuModuleLoadData(&out->module, r.cubin);
  nv_result_free(&r);
  int bad = 0;
  if (rc != CUDA_SUCCESS) { /* a CUBIN from an NVRTC newer than the driver does not load */
    char what[160];
    snprintf(what, sizeof what, "%s: loading its %s CUBIN (the driver supports CUDA %d.%d)",
             p->name, rt->arch, rt->api->driver_version / 1000,
             rt->api->driver_version % 1000 / 10);
    bad = gpu_fail(rt->api, rc, what, err);
  }
  for (int s = 0; s < p->n_steps && !bad; s++) {
    if (p->steps[s].kind == GEN_STEP_GEMM) {
      unsigned before = rt->no_algo;
      bad = setup_gemm(rt, p, s, &out->gemm[s], err);
      /* no algorithm for a fused epilogue: plan the rest, to name them all */
      for (int t = s + 1; bad && rt->no_algo != before && t < p->n_steps; t++) {
        lt_error more = {0};
        if (p->steps[t].kind == GEN_STEP_GEMM) setup_gemm(rt, p, t, &out->gemm[t], &more);
      }
    } else if ((rc = rt->api->cuModuleGetFunction(&out->fn[s], out->module, p->steps[s].kernel)) !=
               CUDA_SUCCESS) {
      bad = gpu_fail(rt->api, rc, p->steps[s].kernel, err);
    } else if (p->steps[s].smem > 48u * 1024u &&
               (rc = rt->api->cuFuncSetAttribute(out->fn[s],
                                                 CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                                 (int)max_smem(p, p->steps[s].kernel))) !=
                   CUDA_SUCCESS) {
      /* above 48 KiB of dynamic shared memory a launch needs the opt-in */
      bad = gpu_fail(rt->api, rc, p->steps[s].kernel, err);
    }
  }
  if (bad) gpu_path_free(rt, out); /* what a failed load made: the module, descriptors */
  return bad ? -1 : 0;
}

void gpu_path_free(gpu_runtime *rt, gpu_path *gp) {
  const gpu_api *api = rt->api;
  for (int s = 0; gp->gemm && s < gp->n_steps; s++) {
    gpu_gemm_setup *g = &gp->gemm[s];
    if (g->desc) api->ltMatmulDescDestroy(g->desc);
    cublasLtMatrixLayout_t ls[] = {g->a, g->b, g->c, g->d};
    for (int i = 0; i < 4; i++)
      if (ls[i]) api->ltMatrixLayoutDestroy(ls[i]);
  }
  if (gp->module) api->cuModuleUnload(gp->module);
  free(gp->fn);
  free(gp->gemm);
  memset(gp, 0, sizeof *gp);
}

/* ---------------------------------------------------------------------- */
/* the backend: launches and matmuls on the runtime's stream */

static gpu_path *find(gpu_backend_ctx *c, const gen_path *p) {
  for (int i = 0; i < c->n_paths; i++)
    if (c->paths[i].p == p) return &c->paths[i];
  return NULL;
}

static int gpu_launch(void *ctx, const gen_path *p, int step, void **args, lt_error *err) {
  gpu_backend_ctx *c = ctx;
  gpu_path *gp = find(c, p);
  if (!gp || !gp->fn[step]) return lt_fail(err, "%s step %d: not loaded", p->name, step);
  const gen_step *st = &p->steps[step];
  CUresult rc = c->rt->api->cuLaunchKernel(gp->fn[step], st->grid[0], st->grid[1], st->grid[2],
                                           st->block[0], st->block[1], st->block[2], st->smem,
                                           c->rt->stream, args, NULL);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(c->rt->api, rc, st->kernel, err);
}

static int gpu_gemm(void *ctx, const gen_path *p, int step, const path_exec_gemm *pg, lt_error *err) {
  gpu_backend_ctx *c = ctx;
  const gpu_api *api = c->rt->api;
  gpu_path *gp = find(c, p);
  if (!gp || !gp->gemm[step].ready) return lt_fail(err, "%s step %d: not loaded", p->name, step);
  gpu_gemm_setup *g = &gp->gemm[step];
  const float one = 1.0f, beta = g->beta ? 1.0f : 0.0f;
  const void *A = g->a_from == GEN_LT_A ? pg->a : pg->w, *B = g->b_from == GEN_LT_A ? pg->a : pg->w;
  const void *C = g->beta ? pg->c : pg->d;
  /* the algorithm of the first alignment tier these pointers meet */
  uintptr_t ptrs[6] = {(uintptr_t)A, (uintptr_t)B, (uintptr_t)C, (uintptr_t)pg->d,
                       g->elem[4] ? (uintptr_t)pg->bias : 0, g->elem[5] ? (uintptr_t)pg->aux : 0};
  int tier = gen_lt_pick_tier(g->have, 6, ptrs, g->elem);
  if (tier < 0)
    return lt_fail(err, "%s step %d: no cuBLASLt algorithm for operands this misaligned "
                        "(A %u, B %u, C %u, D %u bytes)",
                   p->name, step, gen_lt_ptr_align(ptrs[0]), gen_lt_ptr_align(ptrs[1]),
                   gen_lt_ptr_align(ptrs[2]), gen_lt_ptr_align(ptrs[3]));
  /* operands change per instance: pointers are per-call attributes (read
   * when cublasLtMatmul enqueues, so resetting them for the next call is
   * safe while this one runs) */
  if ((g->elem[4] &&
       set_attr(api, g->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &pg->bias, sizeof pg->bias)) ||
      (g->elem[5] &&
       set_attr(api, g->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &pg->aux, sizeof pg->aux)))
    return lt_fail(err, "%s step %d: cuBLASLt rejected the bias or aux pointer", p->name, step);
  if ((g->elem[4] && !pg->bias) || (g->elem[5] && !pg->aux))
    return lt_fail(err, "%s step %d: the epilogue's bias or aux has no memory", p->name, step);
  cublasStatus_t st = api->ltMatmul(c->rt->lt, g->desc, &one, A, g->a, B, g->b, &beta, C, g->c,
                                    pg->d, g->d, &g->algo[tier], (void *)c->rt->workspace,
                                    GPU_WORKSPACE_BYTES, (cudaStream_t)c->rt->stream);
  if (st != CUBLAS_STATUS_SUCCESS)
    return lt_fail(err, "%s step %d: cublasLtMatmul failed (status %d)", p->name, step, (int)st);
  return 0;
}

path_exec_backend gpu_backend(gpu_backend_ctx *ctx) { return (path_exec_backend){ctx, gpu_launch, gpu_gemm}; }
