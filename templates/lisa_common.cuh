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
//    __nv_bfloat16. Arithmetic is fp32. Saved statistics (mean, rstd, lse)
//    are float; parameter gradients and optimizer state are float
//    (bf16-mixed) or bf16 (bf16-true): gradient kernels take their type as a
//    deduced template parameter G and round once on the store.
//  - Parameter gradients accumulate (+=); everything else is overwritten,
//    as in runtime/cpu/cpu_ops.h, which is the reference for every kernel.
//  - Each kernel's comment gives its launch: grid, block, dynamic shared
//    memory, and its tunables with their search space.
#pragma once

#ifndef LISA_EMU
#include <cuda_bf16.h>
#endif

#include "launch.cuh"

// Dynamic shared memory as a typed pointer (the emulator defines its own).
#ifndef LISA_DYNAMIC_SMEM
#define LISA_DYNAMIC_SMEM(type, name)                                  \
  extern __shared__ __align__(16) unsigned char lisa_dynamic_smem_[]; \
  type *name = reinterpret_cast<type *>(lisa_dynamic_smem_)
#endif

// The emulator checks that every vector access is aligned to its width, as
// the GPU requires (it faults otherwise); on the device this is nothing.
#ifndef LISA_CHECK_VEC_ALIGN
#define LISA_CHECK_VEC_ALIGN(p, bytes) ((void)0)
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

// part[0] = the sum of every thread's v, in double, by a fixed pairwise tree
// over part[THREADS] (shared memory; THREADS a power of two), so the result
// is bit-identical from run to run. Every thread may read part[0] on return.
template <int THREADS> __device__ __forceinline__ void tree_sum(double *part, double v) {
  static_assert(THREADS >= 1 && THREADS <= 1024 && (THREADS & (THREADS - 1)) == 0,
                "THREADS: a power of two");
  const int tid = threadIdx.x;
  part[tid] = v;
  __syncthreads();
  for (int w = THREADS / 2; w > 0; w >>= 1) {
    if (tid < w) part[tid] += part[tid + w];
    __syncthreads();
  }
}

// ---------------------------------------------------------------------------
// Vector access: V elements of T (V * sizeof(T) a power of two, at most 16
// bytes) read or written in one access at an address aligned to
// V * sizeof(T) bytes. vec_load / vec_store convert to and from float (bf16
// to float is exact; float to bf16 rounds to nearest even, as from_f32);
// vec_copy / vec_zero move raw bits (bit-exact, NaN payloads too).

template <typename T, int V> struct alignas(sizeof(T) * V) VecIO { T v[V]; };

// Elements of T in 16 bytes: the widest vector (4 floats or 8 bf16).
template <typename T> __host__ __device__ constexpr int vec16() { return 16 / (int)sizeof(T); }

// The widest vector of at most 16 bytes whose element count divides n.
template <typename T> __host__ __device__ constexpr int vec_width_for(long long n) {
  return lisa_vec_width((int)sizeof(T), n);
}

__device__ __forceinline__ bool is_aligned(const void *p, unsigned long long bytes) {
  return reinterpret_cast<unsigned long long>(p) % bytes == 0;
}

// out[0..V) = p[0..V) as floats.
template <typename T, int V> __device__ __forceinline__ void vec_load(float *out, const T *p) {
  LISA_CHECK_VEC_ALIGN(p, sizeof(T) * V);
  const VecIO<T, V> r = *reinterpret_cast<const VecIO<T, V> *>(p);
#pragma unroll
  for (int k = 0; k < V; k++) out[k] = to_f32(r.v[k]);
}

// p[0..V) = in[0..V) rounded to T.
template <typename T, int V> __device__ __forceinline__ void vec_store(T *p, const float *in) {
  LISA_CHECK_VEC_ALIGN(p, sizeof(T) * V);
  VecIO<T, V> r;
#pragma unroll
  for (int k = 0; k < V; k++) r.v[k] = from_f32<T>(in[k]);
  *reinterpret_cast<VecIO<T, V> *>(p) = r;
}

template <typename T, int V> __device__ __forceinline__ void vec_copy(T *d, const T *s) {
  LISA_CHECK_VEC_ALIGN(d, sizeof(T) * V);
  LISA_CHECK_VEC_ALIGN(s, sizeof(T) * V);
  *reinterpret_cast<VecIO<T, V> *>(d) = *reinterpret_cast<const VecIO<T, V> *>(s);
}

template <typename T, int V> __device__ __forceinline__ void vec_zero(T *d) {
  LISA_CHECK_VEC_ALIGN(d, sizeof(T) * V);
  VecIO<T, V> z;
#pragma unroll
  for (int k = 0; k < V; k++) z.v[k] = from_f32<T>(0.f);
  *reinterpret_cast<VecIO<T, V> *>(d) = z;
}

// What a float becomes after a round trip through T (bf16 rounding).
template <typename T> __device__ __forceinline__ float round_through(float v) {
  return to_f32(from_f32<T>(v));
}

}  // namespace lisa
