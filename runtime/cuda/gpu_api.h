/* gpu_api.h: the CUDA driver API and cuBLASLt, loaded at run time with
 * dlopen, so the binary starts (and trains on the CPU) on machines without
 * an NVIDIA driver. The headers give only types; no symbol is linked.
 *
 * gpu_open finds the driver, the first device and cuBLASLt and says what is
 * missing in words ("no NVIDIA driver: libcuda.so.1 not found"). */
#ifndef LT_GPU_API_H
#define LT_GPU_API_H

#include <cublasLt.h>
#include <cuda.h>

#include "err.h"

typedef struct {
  void *libcuda, *liblt;
  /* driver */
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
  CUresult (*cuDeviceTotalMem)(size_t *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuModuleLoadData)(CUmodule *, const void *);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncSetAttribute)(CUfunction, CUfunction_attribute, int);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, CUstream, void **, void **);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*cuMemGetInfo)(size_t *, size_t *);
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamDestroy)(CUstream);
  CUresult (*cuStreamSynchronize)(CUstream);
  CUresult (*cuMemHostAlloc)(void **, size_t, unsigned);
  CUresult (*cuMemFreeHost)(void *);
  CUresult (*cuEventCreate)(CUevent *, unsigned);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuStreamWaitEvent)(CUstream, CUevent, unsigned);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  CUresult (*cuDriverGetVersion)(int *);
  /* cuBLASLt */
  cublasStatus_t (*ltCreate)(cublasLtHandle_t *);
  cublasStatus_t (*ltDestroy)(cublasLtHandle_t);
  cublasStatus_t (*ltMatmulDescCreate)(cublasLtMatmulDesc_t *, cublasComputeType_t, cudaDataType_t);
  cublasStatus_t (*ltMatmulDescDestroy)(cublasLtMatmulDesc_t);
  cublasStatus_t (*ltMatmulDescSetAttribute)(cublasLtMatmulDesc_t, cublasLtMatmulDescAttributes_t,
                                             const void *, size_t);
  cublasStatus_t (*ltMatrixLayoutCreate)(cublasLtMatrixLayout_t *, cudaDataType, uint64_t, uint64_t,
                                         int64_t);
  cublasStatus_t (*ltMatrixLayoutDestroy)(cublasLtMatrixLayout_t);
  cublasStatus_t (*ltMatmulPreferenceCreate)(cublasLtMatmulPreference_t *);
  cublasStatus_t (*ltMatmulPreferenceDestroy)(cublasLtMatmulPreference_t);
  cublasStatus_t (*ltMatmulPreferenceSetAttribute)(cublasLtMatmulPreference_t,
                                                   cublasLtMatmulPreferenceAttributes_t,
                                                   const void *, size_t);
  cublasStatus_t (*ltMatmulAlgoGetHeuristic)(cublasLtHandle_t, cublasLtMatmulDesc_t,
                                             cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                             cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                             cublasLtMatmulPreference_t, int,
                                             cublasLtMatmulHeuristicResult_t *, int *);
  cublasStatus_t (*ltMatmul)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void *, const void *,
                             cublasLtMatrixLayout_t, const void *, cublasLtMatrixLayout_t,
                             const void *, const void *, cublasLtMatrixLayout_t, void *,
                             cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t *, void *, size_t,
                             cudaStream_t);
  /* the device */
  CUdevice device;
  CUcontext ctx;
  char name[128];
  int sm_major, sm_minor, n_sms;
  int driver_version; /* cuDriverGetVersion: 12040 = CUDA 12.4 */
  size_t total_mem;
} gpu_api;

/* Loads both libraries, initialises the driver and makes the first
 * device's primary context current. -1 with the reason otherwise. */
int gpu_open(gpu_api *g, lt_error *err);
/* The same for device ordinal % the devices there are (a rank's own GPU:
 * its local rank under mpirun). */
int gpu_open_nth(gpu_api *g, int ordinal, lt_error *err);
void gpu_close(gpu_api *g);

/* "sm_90" for the opened device. */
void gpu_arch(const gpu_api *g, char *out, size_t cap);
/* The tuning database's key for the device (tune_db.h): its name, SM
 * version, multiprocessors and the driver's CUDA version. */
void gpu_tune_key(const gpu_api *g, char *out, size_t cap);

/* A driver error as words; returns -1 (for `return gpu_check(...)`). */
int gpu_fail(const gpu_api *g, CUresult rc, const char *what, lt_error *err);

#endif
