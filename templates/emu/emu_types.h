// emu_types.h: CUDA's qualifiers and built-in vector types for host builds.
#pragma once

#include <stddef.h>

// Qualifiers mean nothing on the host.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
// Empty, not noinline: system headers spell __attribute__((__noinline__)).
#define __noinline__
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n))) /* anywhere alignas may not be */
#define __constant__
// Blocks run one after another on one OS thread, so a function-local static
// is exactly one block's shared memory. Every one lives in the section
// emu_smem, which the scheduler fills with 0xff bytes before each block
// (NaN as float and bf16, -1 as int): a kernel that reads shared memory this
// block has not written (the GPU's is undefined there) sees it. (The
// `extern __shared__ T a[];` form does not work: use LISA_DYNAMIC_SMEM.)
#define __shared__ static __attribute__((section("emu_smem")))

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

inline constexpr int warpSize = 32;

// The vector types kernels use for wide loads; alignments as in CUDA.
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };

inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
