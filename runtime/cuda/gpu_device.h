/* gpu_device.h: the CUDA device behind the device trainer (dev_train.h).
 * Opening finds the driver, the first device and cuBLASLt (dlopen, so the
 * binary starts where there is none) and says why when it cannot; loading
 * compiles every path of a program (NVRTC, through the CUBIN cache), looks
 * up its kernels and picks each GEMM's cuBLASLt algorithm (each run once on
 * probe memory: one cuBLASLt refuses is dropped), all before step 0. Memory
 * and copies are in order on one stream. */
#ifndef LT_GPU_DEVICE_H
#define LT_GPU_DEVICE_H

#include <stddef.h>

#include "dev_train.h"
#include "gen.h"
#include "nccl_comm.h"

typedef struct gpu_device gpu_device;

/* Device ordinal (modulo the count; 0: the first); name gets "NVIDIA H200
 * (sm_90, 132 SMs)". */
int gpu_device_open(gpu_device **out, int ordinal, char *name, size_t cap, lt_error *err);
/* Loads prog's paths (what an earlier load left is unloaded first). On
 * failure gpu_device_no_algo says which fused epilogues (bits 1u << enum
 * gen_epilogue) cuBLASLt had no algorithm for: a program generated with
 * them in gen_config.no_epilogues may load. */
int gpu_device_load(gpu_device *g, const gen_program *prog, lt_error *err);
unsigned gpu_device_no_algo(const gpu_device *g);
void gpu_device_unload(gpu_device *g);
/* Generates *prog from m and cfg and loads it. A fused GEMM cuBLASLt has no
 * algorithm for (an epilogue this version or these shapes do not support)
 * runs unfused: the program again with that epilogue in no_epilogues, its op
 * a kernel of its own, up to 8 times. On success *prog is built (gen_free it)
 * and *unfused holds the epilogues generated unfused. */
int gpu_device_build(gpu_device *g, const ir_model *m, const gen_config *cfg, gen_program *prog,
                     unsigned *unfused, lt_error *err);
/* Data parallel: NCCL (loaded) and a stream of its own for the sums,
 * ordered after the device's stream by an event each way. */
int gpu_device_collectives(gpu_device *g, nccl_lib *lib, ncomm_streams *streams, lt_error *err);
/* The device trainer's view; valid while g is open and loaded. */
dt_device gpu_device_iface(gpu_device *g);
/* "sm_90"; the number of SMs; bytes in use on the device now (cuMemGetInfo:
 * total - free, so what this process holds, its CUDA context included, and
 * what any other process on the same GPU holds). */
const char *gpu_device_arch(const gpu_device *g);
int gpu_device_sms(const gpu_device *g);
/* Compute capability as 10 * major + minor (90 for sm_90). */
int gpu_device_sm(const gpu_device *g);
void gpu_device_tune_key(const gpu_device *g, char *out, size_t cap); /* gpu_tune_key */
size_t gpu_device_used_bytes(const gpu_device *g);
/* The device's dense bf16 peak in FLOP/s, 0 if not known (for MFU): by
 * the exact device name and SM count (gpu_bf16_peak_of), or
 * LISA_BF16_PEAK_TFLOPS from the environment. */
double gpu_device_bf16_peak(const gpu_device *g);
double gpu_bf16_peak_of(const char *name, int sms);
void gpu_device_close(gpu_device *g);

#endif
