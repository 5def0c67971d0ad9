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

// Stage 1 of db += sum over rows of dy[r, c] (the bias gradient), split
// like the norms' weight gradients so that more than C threads work on it:
// block (x, p) writes partial[p][c] = the sum of dy's rows
// [p * R, (p + 1) * R), R = ceil(N / parts), in row order, one thread per
// column (a warp reads 32 consecutive columns of a row). Stage 2 is
// norm.cuh's norm_backward_w_finish<C>(db, nullptr, partial, parts): the
// parts in order, added to db once. Deterministic for a given parts.
// launch: grid (ceil(C / THREADS), parts), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {64,128,256} default 128
// scratch: partial: parts * C floats
template <typename T, int C, int THREADS>
__device__ void bias_grad(float *partial, const T *dy, int N, int parts) {
  const int col = blockIdx.x * THREADS + threadIdx.x, p = blockIdx.y;
  if (col >= C || p >= parts) return;
  const int per = (N + parts - 1) / parts, r0 = p * per, r1 = r0 + per < N ? r0 + per : N;
  float s = 0.f;
  for (int r = r0; r < r1; r++) s += to_f32(dy[(long long)r * C + col]);
  partial[(long long)p * C + col] = s;
}

}  // namespace lisa
