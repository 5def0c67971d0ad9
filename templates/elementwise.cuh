// elementwise.cuh: the scalar functions generated element-wise kernels call,
// and the bias gradient (column sums). The generator writes each fused
// element-wise kernel itself (codegen/gen/gen_elementwise.c); these are the
// pieces it calls, matching runtime/cpu/cpu_ops.c's formulas.
#pragma once
#include "lisa_common.cuh"

namespace lisa {

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

// exp over cpu_ops.c's domain: the argument clamped to [-87.3, 88.37], so the
// result is finite and nonzero (exp(88.37) ~ 2.5e38). The backwards below
// multiply s^2 by e; an unclamped e = inf (GELU below x ~ -10.1, SiLU below
// ~ -88.7) made that 0 * inf = NaN where the CPU stays finite.
__device__ __forceinline__ float exp_clamped(float x) {
  return expf(fminf(fmaxf(x, -87.3f), 88.37f));
}

// GELU, tanh form, written as x * sigmoid(2u): no cancellation for x < 0.
__device__ __forceinline__ float gelu_forward(float x) {
  const float e = exp_clamped(-2.f * kGeluK * (x + kGeluA * x * x * x));
  return x / (1.f + e);
}

__device__ __forceinline__ float gelu_backward(float dy, float x) {
  const float e = exp_clamped(-2.f * kGeluK * (x + kGeluA * x * x * x));
  const float s = 1.f / (1.f + e);
  const float du = 2.f * kGeluK * (1.f + 3.f * kGeluA * x * x);
  return (s + x * s * s * e * du) * dy;
}

__device__ __forceinline__ float silu_forward(float x) { return x / (1.f + exp_clamped(-x)); }

__device__ __forceinline__ float silu_backward(float dy, float x) {
  const float e = exp_clamped(-x);
  const float s = 1.f / (1.f + e);
  return (s + x * s * s * e) * dy;
}

// db[c] += sum over rows of dy[r, c]. One thread per column walks the rows in
// order: deterministic, and each warp reads 32 consecutive columns per row.
// G (deduced): the gradient's type, float or __nv_bfloat16 (bf16-true); the
// sum and the add are fp32, rounded once to G.
// launch: grid (ceil(C / THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {64,128,256} default 128
// scratch: none
template <typename T, int C, int THREADS, typename G>
__device__ void bias_grad(G *db, const T *dy, int N) {
  const int col = blockIdx.x * THREADS + threadIdx.x;
  if (col >= C) return;
  float s = 0.f;
  for (int r = 0; r < N; r++) s += to_f32(dy[(long long)r * C + col]);
  db[col] = from_f32<G>(to_f32(db[col]) + s);
}

}  // namespace lisa
