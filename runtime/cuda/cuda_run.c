/* cuda_run.c: the CUDA device as a dev_provider. */
#include "cuda_run.h"

#include <stdio.h>

#include "gpu_device.h"
#include "gpu_paths.h"

static int build(void *ctx, const ir_model *m, const gen_config *cfg, gen_program *prog,
                 unsigned *unfused, lt_error *err) {
  return gpu_device_build(ctx, m, cfg, prog, unfused, err);
}

static dt_device iface(void *ctx) { return gpu_device_iface(ctx); }
static size_t used_bytes(void *ctx) { return gpu_device_used_bytes(ctx); }
static void unload(void *ctx) { gpu_device_unload(ctx); }
static void close_device(void *ctx) { gpu_device_close(ctx); }
static int collectives(void *ctx, dist_comm *world, nccl_lib *lib, ncomm_streams *streams,
                       lt_error *err) {
  (void)world;
  return gpu_device_collectives(ctx, lib, streams, err);
}

int cuda_provider_open(dev_provider *out, int ordinal, char *name, size_t cap, lt_error *err) {
  gpu_device *g;
  if (gpu_device_open(&g, ordinal, name, cap, err)) return -1;
  *out = (dev_provider){.ctx = g, .build = build, .iface = iface, .used_bytes = used_bytes,
                        .unload = unload, .close = close_device, .collectives = collectives,
                        .sms = gpu_device_sms(g),
                        .no_mma = gpu_device_sm(g) < 80, .bf16_peak = gpu_device_bf16_peak(g),
                        .workspace_bytes = GPU_WORKSPACE_BYTES};
  gpu_device_tune_key(g, out->tune_device, sizeof out->tune_device);
  snprintf(out->arch, sizeof out->arch, "%s", gpu_device_arch(g));
  return 0;
}
