/* gpu_device.c: dt_device over the driver API and cuBLASLt. */
#include "gpu_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_paths.h"

struct gpu_device {
  gpu_api api;
  gpu_runtime rt;
  gpu_path *paths;
  int n_paths;
  gpu_backend_ctx be;
  CUevent *events; /* path_profile's timers */
  int n_events;
  CUevent fences[2]; /* dev_train's pipelined steps */
  CUstream comm;     /* data parallel: NCCL's sums (NULL: alone) */
  CUevent computed, summed; /* comm waits for the stream at computed; the stream for comm at summed */
};

int gpu_device_open(gpu_device **out, int ordinal, char *name, size_t cap, lt_error *err) {
  gpu_device *g = calloc(1, sizeof *g);
  if (!g) return lt_fail(err, "out of memory");
  if (gpu_open_nth(&g->api, ordinal, err)) return free(g), -1;
  if (gpu_runtime_open(&g->rt, &g->api, err)) {
    gpu_close(&g->api);
    free(g);
    return -1;
  }
  snprintf(name, cap, "%s (%s, %d SMs)", g->api.name, g->rt.arch, g->api.n_sms);
  for (int i = 0; i < 2; i++) {
    CUresult rc = g->api.cuEventCreate(&g->fences[i], CU_EVENT_DISABLE_TIMING);
    if (rc != CUDA_SUCCESS) {
      gpu_fail(&g->api, rc, "creating the step fences", err);
      gpu_device_close(g);
      return -1;
    }
  }
  *out = g;
  return 0;
}

void gpu_device_unload(gpu_device *g) {
  for (int i = 0; i < g->n_paths; i++) gpu_path_free(&g->rt, &g->paths[i]);
  free(g->paths);
  g->paths = NULL, g->n_paths = 0;
  g->be = (gpu_backend_ctx){&g->rt, NULL, 0};
}

unsigned gpu_device_no_algo(const gpu_device *g) { return g->rt.no_algo; }

int gpu_device_build(gpu_device *g, const ir_model *m, const gen_config *cfg, gen_program *prog,
                     unsigned *unfused, lt_error *err) {
  gen_config c = *cfg;
  for (int round = 0;; round++) {
    if (gen_build(prog, m, &c, err)) return -1;
    if (gpu_device_load(g, prog, err) == 0) return *unfused = c.no_epilogues, 0;
    unsigned more = gpu_device_no_algo(g) & ~c.no_epilogues;
    gpu_device_unload(g); /* its paths point into the program freed next */
    gen_free(prog);
    if (!more || round >= 8) return -1;
    c.no_epilogues |= more;
  }
}

int gpu_device_load(gpu_device *g, const gen_program *prog, lt_error *err) {
  gpu_device_unload(g);
  g->rt.no_algo = 0;
  g->paths = calloc((size_t)prog->n_paths + 1, sizeof *g->paths);
  if (!g->paths) return lt_fail(err, "out of memory");
  if (gpu_compile_all(&g->rt, prog, err)) return -1;
  for (int i = 0; i < prog->n_paths; i++, g->n_paths++)
    if (gpu_path_load(&g->rt, &prog->paths[i], &g->paths[i], err)) return -1;
  g->be = (gpu_backend_ctx){&g->rt, g->paths, g->n_paths};
  return 0;
}

static int dev_alloc(void *ctx, size_t bytes, void **out, lt_error *err) {
  gpu_device *g = ctx;
  CUdeviceptr p = 0;
  CUresult rc = g->api.cuMemAlloc(&p, bytes);
  if (rc != CUDA_SUCCESS) {
    size_t free_b = 0, total = 0;
    g->api.cuMemGetInfo(&free_b, &total);
    return lt_fail(err, "the device has %.2f GiB free of %.2f GiB; the run asked for %.2f GiB "
                        "in one allocation (lisa plan shows where it goes)",
                   free_b / 1073741824.0, total / 1073741824.0, bytes / 1073741824.0);
  }
  *out = (void *)p;
  return 0;
}

static void dev_release(void *ctx, void *mem) {
  gpu_device *g = ctx;
  g->api.cuMemFree((CUdeviceptr)mem);
}

static int dev_upload(void *ctx, void *dst, const void *src, size_t bytes, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuMemcpyHtoDAsync((CUdeviceptr)dst, src, bytes, g->rt.stream);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "copy to the device", err);
}

/* Waits for the stream: what it reads is the result of every step before. */
static int dev_download(void *ctx, void *dst, const void *src, size_t bytes, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuMemcpyDtoHAsync(dst, (CUdeviceptr)src, bytes, g->rt.stream);
  if (rc == CUDA_SUCCESS) rc = g->api.cuStreamSynchronize(g->rt.stream);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "the device's step (or the copy back)", err);
}

static int dev_zero(void *ctx, void *dst, size_t bytes, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuMemsetD8Async((CUdeviceptr)dst, 0, bytes, g->rt.stream);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "clearing device memory", err);
}

/* ---- pipelined steps: page-locked staging, async copies back, fences ---- */

static int host_alloc(void *ctx, size_t bytes, void **out, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuMemHostAlloc(out, bytes, 0);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "page-locked host memory", err);
}

static void host_free(void *ctx, void *p) {
  gpu_device *g = ctx;
  g->api.cuMemFreeHost(p);
}

static int download_async(void *ctx, void *dst, const void *src, size_t bytes, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuMemcpyDtoHAsync(dst, (CUdeviceptr)src, bytes, g->rt.stream);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "copy from the device", err);
}

static int fence(void *ctx, int i, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuEventRecord(g->fences[i], g->rt.stream);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "marking a step's end", err);
}

static int fence_wait(void *ctx, int i, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuEventSynchronize(g->fences[i]);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "the device's step", err);
}

/* ---- timers: CUDA events ------------------------------------------------ */

static void timers_destroy(void *ctx) {
  gpu_device *g = ctx;
  for (int i = 0; i < g->n_events; i++) g->api.cuEventDestroy(g->events[i]);
  free(g->events);
  g->events = NULL, g->n_events = 0;
}

static int timers_create(void *ctx, int n, lt_error *err) {
  gpu_device *g = ctx;
  timers_destroy(g);
  if (!(g->events = calloc((size_t)n, sizeof *g->events))) return lt_fail(err, "out of memory");
  for (; g->n_events < n; g->n_events++) {
    CUresult rc = g->api.cuEventCreate(&g->events[g->n_events], CU_EVENT_DEFAULT);
    if (rc != CUDA_SUCCESS) return gpu_fail(&g->api, rc, "creating the profile's events", err);
  }
  return 0;
}

static int timer_mark(void *ctx, int i, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuEventRecord(g->events[i], g->rt.stream);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "recording a profile event", err);
}

static int timer_elapsed(void *ctx, int from, int to, float *ms, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuEventSynchronize(g->events[to]);
  if (rc == CUDA_SUCCESS) rc = g->api.cuEventElapsedTime(ms, g->events[from], g->events[to]);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "reading a profile event", err);
}

/* ---- data parallel: NCCL's stream, ordered with the device's ---------- */

static int comm_after_compute(void *ctx, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuEventRecord(g->computed, g->rt.stream);
  if (rc == CUDA_SUCCESS) rc = g->api.cuStreamWaitEvent(g->comm, g->computed, 0);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "ordering a sum after the backward", err);
}

static int compute_waits_comm(void *ctx, lt_error *err) {
  gpu_device *g = ctx;
  CUresult rc = g->api.cuEventRecord(g->summed, g->comm);
  if (rc == CUDA_SUCCESS) rc = g->api.cuStreamWaitEvent(g->rt.stream, g->summed, 0);
  return rc == CUDA_SUCCESS ? 0 : gpu_fail(&g->api, rc, "ordering AdamW after the sums", err);
}

int gpu_device_collectives(gpu_device *g, nccl_lib *lib, ncomm_streams *streams, lt_error *err) {
  CUresult rc = CUDA_SUCCESS;
  if (!g->comm && ((rc = g->api.cuStreamCreate(&g->comm, CU_STREAM_NON_BLOCKING)) != CUDA_SUCCESS ||
                   (rc = g->api.cuEventCreate(&g->computed, CU_EVENT_DISABLE_TIMING)) != CUDA_SUCCESS ||
                   (rc = g->api.cuEventCreate(&g->summed, CU_EVENT_DISABLE_TIMING)) != CUDA_SUCCESS))
    return gpu_fail(&g->api, rc, "creating the collectives' stream", err);
  if (nccl_lib_load(lib, err)) return -1;
  *streams = (ncomm_streams){g, (void *)g->comm, comm_after_compute, compute_waits_comm};
  return 0;
}

dt_device gpu_device_iface(gpu_device *g) {
  return (dt_device){g, gpu_backend(&g->be), dev_alloc, dev_release, dev_upload, dev_download,
                     dev_zero, {g, timers_create, timer_mark, timer_elapsed, timers_destroy},
                     host_alloc, host_free, download_async, fence, fence_wait};
}

const char *gpu_device_arch(const gpu_device *g) { return g->rt.arch; }
int gpu_device_sms(const gpu_device *g) { return g->api.n_sms; }
int gpu_device_sm(const gpu_device *g) { return 10 * g->api.sm_major + g->api.sm_minor; }
void gpu_device_tune_key(const gpu_device *g, char *out, size_t cap) {
  gpu_tune_key(&g->api, out, cap);
}

size_t gpu_device_used_bytes(const gpu_device *g) {
  size_t free_b = 0, total = 0;
  if (((gpu_device *)g)->api.cuMemGetInfo(&free_b, &total) != CUDA_SUCCESS) return 0;
  return total - free_b;
}

/* Dense bf16 tensor-core peaks from the vendor datasheets, keyed by the
 * exact name the driver reports and the SM count: a variant with another
 * clock or SM count (H100 NVL, A10G, ...) is not its namesake, and gets no
 * MFU rather than a wrong one. LISA_BF16_PEAK_TFLOPS names a device the
 * table lacks. */
double gpu_bf16_peak_of(const char *name, int sms) {
  static const struct { const char *name; int sms; double flops; } peaks[] = {
      {"NVIDIA H200", 132, 989.4e12},           {"NVIDIA H100 80GB HBM3", 132, 989.4e12},
      {"NVIDIA H100 PCIe", 114, 756.5e12},      {"NVIDIA A100-SXM4-80GB", 108, 312e12},
      {"NVIDIA A100-SXM4-40GB", 108, 312e12},   {"NVIDIA A100 80GB PCIe", 108, 312e12},
      {"NVIDIA A100-PCIE-40GB", 108, 312e12},   {"NVIDIA L40S", 142, 362.05e12},
      {"NVIDIA A10", 72, 125e12}};
  const char *env = getenv("LISA_BF16_PEAK_TFLOPS");
  if (env && atof(env) > 0) return atof(env) * 1e12;
  for (size_t i = 0; i < sizeof peaks / sizeof peaks[0]; i++)
    if (!strcmp(name, peaks[i].name) && sms == peaks[i].sms) return peaks[i].flops;
  return 0;
}

double gpu_device_bf16_peak(const gpu_device *g) {
  return gpu_bf16_peak_of(g->api.name, g->api.n_sms);
}

void gpu_device_close(gpu_device *g) {
  if (!g) return;
  timers_destroy(g);
  for (int i = 0; i < 2; i++)
    if (g->fences[i]) g->api.cuEventDestroy(g->fences[i]);
  if (g->computed) g->api.cuEventDestroy(g->computed);
  if (g->summed) g->api.cuEventDestroy(g->summed);
  if (g->comm) g->api.cuStreamDestroy(g->comm);
  gpu_device_unload(g);
  gpu_runtime_close(&g->rt);
  gpu_close(&g->api);
  free(g);
}
