/* cuda_run.h: `lisa train --device cuda`: the first CUDA device as a
 * dev_provider (runtime/run/dev_run.h): NVRTC-built paths, cuBLASLt GEMMs
 * with the unfused retry (gpu_device_build), the device's SM count and
 * bf16 peak. */
#ifndef LT_CUDA_RUN_H
#define LT_CUDA_RUN_H

#include <stddef.h>

#include "dev_run.h"

/* Opens CUDA device ordinal (modulo the count: a rank's local rank under
 * mpirun, else 0); name gets what it is. -1 with the reason. */
int cuda_provider_open(dev_provider *out, int ordinal, char *name, size_t cap, lt_error *err);

#endif
