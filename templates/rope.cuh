// rope.cuh: rotary position embedding, forward and backward, as
// cpu_rope_forward / cpu_rope_backward (runtime/cpu/cpu_ops.c): Hugging Face's
// rotate_half convention. Row n of x holds HEADS heads of HD columns (head h
// in columns [h*HD, (h+1)*HD) from the row's start); in every head, dims i and
// i + ROT/2 (i < ROT/2) turn by the angle pos * inv_freq[i], pos = n % seq;
// dims ROT..HD-1 pass through. The backward turns by the negated angle.
//
// Rows have strides (elements between consecutive rows), separately for x
// and y, so q and k can be rotated in place inside a fused qkv buffer:
//   q: x = y = qkv,             x_stride = y_stride = (H + 2*KV) * HD, HEADS = H
//   k: x = y = qkv + H * HD,    same strides,                          HEADS = KV
// y may equal x (in place; the pass-through dims are then left alone); any
// other overlap between x and y is not allowed.
//
// Angles. The CPU forms them in float, as Hugging Face does:
//   inv_freq[i] = 1.0f / powf((float)theta, (float)(2*i) / (float)ROT)
//   angle = (float)pos * inv_freq[i];  cosf(angle), sinf(angle)
// At pos up to 4096 an ulp of inv_freq moves the angle by up to ~5e-4 rad,
// so inv_freq must be the same float on both sides. Two ways, per launch:
//  - inv_freq_table != nullptr: a float[ROT/2] table the host computed with
//    the CPU's expression above (bit-identical to the CPU by construction);
//  - inv_freq_table == nullptr: the kernel computes powf's value as
//    (float)pow((double)theta, (double)e) with e = (float)(2*i) / (float)ROT,
//    the correctly rounded powf, which glibc's powf (< 1 ulp) matches except
//    in rare ties; then 1.0f / p in IEEE float division.
// Then angle = (float)pos * inv_freq (one rounding, as the CPU) and sincosf
// (CUDA: <= 2 ulp, full range reduction). Do not compile with
// -use_fast_math / --ftz / --prec-div=false: the angles would drift (the
// defaults of nvcc and NVRTC are right). Max angle error vs the CPU is then a
// few ulp of cos/sin: NMSE ~1e-13, far below 1e-7 at seq 4096.
//
// Vector width: VEC = the widest of 16/8/4/2 bytes dividing ROT/2 and HD
// (rope_vec<T, HD, ROT>()). A launch whose pointers or strides are not VEC
// aligned takes the scalar path (checked at run time, one uniform branch).
#pragma once
#include "lisa_common.cuh"

namespace lisa {

template <typename T, int HD, int ROT> __host__ __device__ constexpr int rope_vec() {
  int v = vec_width_for<T>(ROT / 2);
  while (v > 1 && HD % v != 0) v /= 2;
  return v;
}
// Threads across a row: one per VEC pairs, at most 32 (power of two).
template <typename T, int HD, int ROT> __host__ __device__ constexpr int rope_tx() {
  const int nj = ROT / 2 / rope_vec<T, HD, ROT>();
  int tx = 1;
  while (tx < nj && tx < 32) tx *= 2;
  return tx;
}
template <typename T, int HD, int ROT> __host__ __device__ constexpr int rope_ty() {
  return 256 / rope_tx<T, HD, ROT>();
}

namespace rope_detail {

template <typename T, int HEADS, int HD, int ROT, int TX, int TY, int V, bool BWD>
__device__ __forceinline__ void rotate_rows(T *y, long long y_stride, const T *x,
                                            long long x_stride, int N, int seq,
                                            const float *inv_s, int pos0, float scale) {
  constexpr int HALF = ROT / 2, NJ = HALF / V;
  const long long row = (long long)blockIdx.x * TY + threadIdx.y;
  if (row >= N) return;
  const float pos = (float)(int)(row % seq + pos0);
  const T *xr = x + row * x_stride;
  T *yr = y + row * y_stride;
  for (int j = threadIdx.x; j < NJ; j += TX) {
    float cs[V], sn[V];
#pragma unroll
    for (int k = 0; k < V; k++) {
      const float angle = pos * inv_s[j * V + k];
      sincosf(angle, &sn[k], &cs[k]);
      cs[k] *= scale;  // YaRN's attention factor (1: exact, no change)
      sn[k] *= scale;
      if (BWD) sn[k] = -sn[k];
    }
#pragma unroll 4
    for (int h = 0; h < HEADS; h++) {
      const int o = h * HD + j * V;
      float a[V], c[V], y1[V], y2[V];
      vec_load<T, V>(a, xr + o);
      vec_load<T, V>(c, xr + o + HALF);
#pragma unroll
      for (int k = 0; k < V; k++) {
        y1[k] = a[k] * cs[k] - c[k] * sn[k];
        y2[k] = c[k] * cs[k] + a[k] * sn[k];
      }
      vec_store<T, V>(yr + o, y1);
      vec_store<T, V>(yr + o + HALF, y2);
    }
  }
  if constexpr (ROT < HD) {
    constexpr int PASS = HD - ROT;
    if (static_cast<const void *>(y) != static_cast<const void *>(x)) {
      for (int u = threadIdx.x; u < HEADS * PASS; u += TX) {
        const int o = (u / PASS) * HD + ROT + u % PASS;
        yr[o] = xr[o];
      }
    }
  }
}

template <typename T, int HEADS, int HD, int ROT, int TX, int TY, bool BWD>
__device__ __forceinline__ void rope(T *y, long long y_stride, const T *x,
                                     long long x_stride, int N, int seq,
                                     float theta, const float *inv_freq_table, int pos0,
                                     float scale) {
  static_assert(ROT >= 2 && ROT % 2 == 0 && ROT <= HD, "ROT: even, 2..HD");
  static_assert(TX >= 1 && TY >= 1 && TX * TY <= 1024, "TX * TY <= 1024");
  constexpr int HALF = ROT / 2, VEC = rope_vec<T, HD, ROT>();
  __shared__ float inv_s[HALF];
  for (int i = threadIdx.y * TX + threadIdx.x; i < HALF; i += TX * TY) {
    if (inv_freq_table) {
      inv_s[i] = inv_freq_table[i];
    } else {
      const float e = (float)(2 * i) / (float)ROT;
      const float p = (float)pow((double)theta, (double)e);  // = correctly rounded powf
      inv_s[i] = 1.0f / p;
    }
  }
  __syncthreads();
  if constexpr (VEC > 1) {
    constexpr unsigned long long A = VEC * sizeof(T);
    const bool aligned = (reinterpret_cast<unsigned long long>(x) % A) == 0 &&
                         (reinterpret_cast<unsigned long long>(y) % A) == 0 &&
                         x_stride % VEC == 0 && y_stride % VEC == 0;
    if (aligned) {
      rotate_rows<T, HEADS, HD, ROT, TX, TY, VEC, BWD>(y, y_stride, x, x_stride, N, seq,
                                                       inv_s, pos0, scale);
      return;
    }
  }
  rotate_rows<T, HEADS, HD, ROT, TX, TY, 1, BWD>(y, y_stride, x, x_stride, N, seq, inv_s, pos0,
                                                 scale);
}

}  // namespace rope_detail

// Host-side helper (and reference) for the optional table: what the CPU
// computes for inv_freq[i]. Call it on the host with the same powf as
// cpu_ops.c to get a bit-identical table.
//   for (i = 0; i < ROT/2; i++)
//     table[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)ROT);

// y = rope(x): rows n < N of HEADS heads of HD dims, the first ROT of each
// head rotated by pos = n % seq + pos0 (decoding's first position; 0 in
// training). theta: the base (10000 for LLaMA 2,
// 500000 for LLaMA 3), as a float (the CPU rounds it to float too).
// inv_freq_table: nullptr, or float[ROT/2] (see above; scaled RoPE always
// passes the table ir_rope_inv_freq made). scale: cos and sin are multiplied
// by it after sincosf (YaRN's attention factor; 1 otherwise), as the CPU does.
// launch: grid (ceil(N / TY)), block (TX, TY), dynamic smem: 0 bytes (static: ROT/2 * 4 bytes)
// tunables: TX {1,2,4,8,16,32} default rope_tx<T,HD,ROT>() (ROT/2/VEC rounded up to a power of two, at most 32); TY {1,2,4,8,16,32,64,128,256} default rope_ty<T,HD,ROT>() (256 / TX); TX*TY <= 1024
// scratch: none
template <typename T, int HEADS, int HD, int ROT, int TX = rope_tx<T, HD, ROT>(),
          int TY = rope_ty<T, HD, ROT>()>
__device__ __forceinline__ void rope_forward(T *y, long long y_stride, const T *x,
                                             long long x_stride, int N, int seq,
                                             float theta,
                                             const float *inv_freq_table, int pos0 = 0,
                                             float scale = 1.0f) {
  rope_detail::rope<T, HEADS, HD, ROT, TX, TY, false>(y, y_stride, x, x_stride, N, seq,
                                                      theta, inv_freq_table, pos0, scale);
}

// dx = rope^T(dy): the same rotation by the negated angles, the same scale
// (the inverse when scale is 1); dx may equal dy.
// launch: grid (ceil(N / TY)), block (TX, TY), dynamic smem: 0 bytes (static: ROT/2 * 4 bytes)
// tunables: TX {1,2,4,8,16,32} default rope_tx<T,HD,ROT>(); TY {1,2,4,8,16,32,64,128,256} default rope_ty<T,HD,ROT>(); TX*TY <= 1024
// scratch: none
template <typename T, int HEADS, int HD, int ROT, int TX = rope_tx<T, HD, ROT>(),
          int TY = rope_ty<T, HD, ROT>()>
__device__ __forceinline__ void rope_backward(T *dx, long long dx_stride, const T *dy,
                                              long long dy_stride, int N, int seq,
                                              float theta,
                                              const float *inv_freq_table,
                                              float scale = 1.0f) {
  rope_detail::rope<T, HEADS, HD, ROT, TX, TY, true>(dx, dx_stride, dy, dy_stride, N,
                                                     seq, theta, inv_freq_table, 0, scale);
}

}  // namespace lisa
