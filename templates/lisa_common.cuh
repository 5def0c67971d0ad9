// lisa_common.cuh: what every kernel template shares. The generator pastes
// this file (and the templates a translation unit needs) into each generated
// .cu, so the file compiles on its own under NVRTC, nvcc, and the host-side
// CUDA emulator of the tests (which defines LISA_EMU and provides the CUDA
// built-ins before this file).
//
// Conventions of every template in templates/:
//  - A kernel is a __device__ function template in namespace lisa, called by
//    a generated `extern "C" __global__` wrapper with the same arguments.
//    Widths (columns, head size, vocabulary) are template parameters, so the
//    compiler sees them as constants; the row count N = B*T is an argument.
//  - T is the storage type of activations and weights: float or
//    __nv_bfloat16. Arithmetic is fp32. Saved statistics (mean, rstd, lse),
//    parameter gradients and optimizer state are float.
//  - Parameter gradients accumulate (+=); everything else is overwritten,
//    as in runtime/cpu_ops.h, which is the reference for every kernel.
//  - Each kernel's comment gives its launch: grid, block, dynamic shared
//    memory, and its tunables with their search space.
#pragma once

#ifndef LISA_EMU
#include <cuda_bf16.h>
#endif

// Dynamic shared memory as a typed pointer (the emulator defines its own).
#ifndef LISA_DYNAMIC_SMEM
#define LISA_DYNAMIC_SMEM(type, name)                                  \
  extern __shared__ __align__(16) unsigned char lisa_dynamic_smem_[]; \
  type *name = reinterpret_cast<type *>(lisa_dynamic_smem_)
#endif

namespace lisa {

// A large negative number instead of -inf: exp(m - m) stays 1 where a row
// has seen nothing yet, and no inf - inf turns into NaN.
constexpr float kNegBig = -1e30f;

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
// Round to nearest even, as torch's .to(torch.bfloat16).
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block, returned to every thread. THREADS is a multiple of 32.
// The order is fixed by THREADS, so results do not depend on scheduling.
template <int THREADS> __device__ __forceinline__ float block_sum(float v) {
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "THREADS: a multiple of 32");
  if (THREADS == 32) return warp_sum(v);
  __shared__ float part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // part may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < THREADS / 32 ? part[lane] : 0.f;
  return warp_sum(v);
}

template <int THREADS> __device__ __forceinline__ float block_max(float v) {
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "THREADS: a multiple of 32");
  if (THREADS == 32) return warp_max(v);
  __shared__ float part[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = lane < THREADS / 32 ? part[lane] : kNegBig;
  return warp_max(v);
}

}  // namespace lisa
