/* gpu_api.c: dlopen the driver and cuBLASLt; find the device. */
#include "gpu_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

/* Every symbol either loads or the open fails naming it. */
static int load(void *lib, const char *lib_name, const char *sym, void *slot, lt_error *err) {
  void *p = dlsym(lib, sym);
  if (!p) return lt_fail(err, "%s has no %s (too old a version?)", lib_name, sym);
  memcpy(slot, &p, sizeof p);
  return 0;
}

#define LOAD_CU(field, sym) \
  if (load(g->libcuda, "libcuda.so.1", sym, &g->field, err)) return -1
#define LOAD_LT(field, sym) \
  if (load(g->liblt, "libcublasLt", sym, &g->field, err)) return -1

static int load_driver(gpu_api *g, lt_error *err) {
  LOAD_CU(cuInit, "cuInit");
  LOAD_CU(cuDeviceGetCount, "cuDeviceGetCount");
  LOAD_CU(cuDeviceGet, "cuDeviceGet");
  LOAD_CU(cuDeviceGetName, "cuDeviceGetName");
  LOAD_CU(cuDeviceGetAttribute, "cuDeviceGetAttribute");
  LOAD_CU(cuDeviceTotalMem, "cuDeviceTotalMem_v2");
  LOAD_CU(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  LOAD_CU(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  LOAD_CU(cuCtxSetCurrent, "cuCtxSetCurrent");
  LOAD_CU(cuModuleLoadData, "cuModuleLoadData");
  LOAD_CU(cuModuleUnload, "cuModuleUnload");
  LOAD_CU(cuModuleGetFunction, "cuModuleGetFunction");
  LOAD_CU(cuFuncSetAttribute, "cuFuncSetAttribute");
  LOAD_CU(cuLaunchKernel, "cuLaunchKernel");
  LOAD_CU(cuMemAlloc, "cuMemAlloc_v2");
  LOAD_CU(cuMemFree, "cuMemFree_v2");
  LOAD_CU(cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  LOAD_CU(cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  LOAD_CU(cuMemsetD8, "cuMemsetD8_v2");
  LOAD_CU(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2");
  LOAD_CU(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2");
  LOAD_CU(cuMemsetD8Async, "cuMemsetD8Async");
  LOAD_CU(cuMemGetInfo, "cuMemGetInfo_v2");
  LOAD_CU(cuStreamCreate, "cuStreamCreate");
  LOAD_CU(cuStreamDestroy, "cuStreamDestroy_v2");
  LOAD_CU(cuStreamSynchronize, "cuStreamSynchronize");
  LOAD_CU(cuMemHostAlloc, "cuMemHostAlloc");
  LOAD_CU(cuMemFreeHost, "cuMemFreeHost");
  LOAD_CU(cuEventCreate, "cuEventCreate");
  LOAD_CU(cuEventDestroy, "cuEventDestroy_v2");
  LOAD_CU(cuEventRecord, "cuEventRecord");
  LOAD_CU(cuStreamWaitEvent, "cuStreamWaitEvent");
  LOAD_CU(cuEventSynchronize, "cuEventSynchronize");
  /* _v2 (CUDA 12.8) where the driver has it; the same signature before */
  if (load(g->libcuda, "libcuda.so.1", "cuEventElapsedTime_v2", &g->cuEventElapsedTime, err))
    LOAD_CU(cuEventElapsedTime, "cuEventElapsedTime");
  LOAD_CU(cuGetErrorString, "cuGetErrorString");
  LOAD_CU(cuDriverGetVersion, "cuDriverGetVersion");
  return 0;
}

static int load_cublaslt(gpu_api *g, lt_error *err) {
  LOAD_LT(ltCreate, "cublasLtCreate");
  LOAD_LT(ltDestroy, "cublasLtDestroy");
  LOAD_LT(ltMatmulDescCreate, "cublasLtMatmulDescCreate");
  LOAD_LT(ltMatmulDescDestroy, "cublasLtMatmulDescDestroy");
  LOAD_LT(ltMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
  LOAD_LT(ltMatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
  LOAD_LT(ltMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
  LOAD_LT(ltMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
  LOAD_LT(ltMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
  LOAD_LT(ltMatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
  LOAD_LT(ltMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
  LOAD_LT(ltMatmul, "cublasLtMatmul");
  return 0;
}

int gpu_fail(const gpu_api *g, CUresult rc, const char *what, lt_error *err) {
  const char *s = NULL;
  if (g->cuGetErrorString) g->cuGetErrorString(rc, &s);
  return lt_fail(err, "%s: CUDA error %d (%s)", what, (int)rc, s ? s : "unknown");
}

static int open_device(gpu_api *g, int ordinal, lt_error *err) {
  int n = 0;
  CUresult rc = g->cuInit(0);
  if (rc != CUDA_SUCCESS) return gpu_fail(g, rc, "the NVIDIA driver did not start (cuInit)", err);
  if ((rc = g->cuDeviceGetCount(&n)) != CUDA_SUCCESS || n < 1)
    return lt_fail(err, "the NVIDIA driver sees no CUDA device");
  char what[64];
  snprintf(what, sizeof what, "opening device %d", ordinal % n);
  if ((rc = g->cuDeviceGet(&g->device, ordinal % n)) != CUDA_SUCCESS ||
      (rc = g->cuDevicePrimaryCtxRetain(&g->ctx, g->device)) != CUDA_SUCCESS ||
      (rc = g->cuCtxSetCurrent(g->ctx)) != CUDA_SUCCESS)
    return gpu_fail(g, rc, what, err);
  g->cuDeviceGetName(g->name, sizeof g->name, g->device);
  g->cuDeviceGetAttribute(&g->sm_major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, g->device);
  g->cuDeviceGetAttribute(&g->sm_minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, g->device);
  g->cuDeviceGetAttribute(&g->n_sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, g->device);
  g->cuDeviceTotalMem(&g->total_mem, g->device);
  g->cuDriverGetVersion(&g->driver_version);
  return 0;
}

int gpu_open(gpu_api *g, lt_error *err) { return gpu_open_nth(g, 0, err); }

int gpu_open_nth(gpu_api *g, int ordinal, lt_error *err) {
  memset(g, 0, sizeof *g);
  g->libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!g->libcuda) return lt_fail(err, "no NVIDIA driver: libcuda.so.1 not found");
  if (load_driver(g, err) || open_device(g, ordinal < 0 ? 0 : ordinal, err)) {
    gpu_close(g);
    return -1;
  }
  static const char *lt_names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
                                   "/usr/local/cuda/lib64/libcublasLt.so.13"};
  for (size_t i = 0; i < sizeof lt_names / sizeof lt_names[0] && !g->liblt; i++)
    g->liblt = dlopen(lt_names[i], RTLD_NOW | RTLD_LOCAL);
  if (!g->liblt) {
    gpu_close(g);
    return lt_fail(err, "cuBLASLt not found (libcublasLt.so.13 from the CUDA toolkit)");
  }
  if (load_cublaslt(g, err)) {
    gpu_close(g);
    return -1;
  }
  return 0;
}

void gpu_close(gpu_api *g) {
  if (g->ctx && g->cuDevicePrimaryCtxRelease) g->cuDevicePrimaryCtxRelease(g->device);
  if (g->liblt) dlclose(g->liblt);
  if (g->libcuda) dlclose(g->libcuda);
  memset(g, 0, sizeof *g);
}

void gpu_arch(const gpu_api *g, char *out, size_t cap) {
  snprintf(out, cap, "sm_%d%d", g->sm_major, g->sm_minor);
}

void gpu_tune_key(const gpu_api *g, char *out, size_t cap) {
  snprintf(out, cap, "%s|sm_%d%d|%d SMs|cuda %d", g->name, g->sm_major, g->sm_minor, g->n_sms,
           g->driver_version);
}
