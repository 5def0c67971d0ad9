// copy.cuh: column-slice copies (split, concat) and a strided 2-D copy/cast.
// Reference: cpu_split / cpu_concat in runtime/cpu/cpu_ops.c.
//
//  - split<T, TX, TY, W...>(x, x_stride, N, outs...): x is [N, sum W] with a
//    row stride (elements between rows, >= sum W); piece i, [N, W_i]
//    contiguous, gets columns [W_0 + .. + W_{i-1}, .. + W_i). One launch for
//    all pieces.
//  - concat<T, TX, TY, W...>(x, x_stride, N, pieces...): the inverse; a null
//    piece writes zeros.
//  - copy_cols<T, W, TX, TY>(dst, dst_stride, src, src_stride, N): one
//    [N, W] slice between two strided buffers (src null: zeros), for pieces
//    that are themselves strided.
//  - copy2d<TO, TI, THREADS>(dst, dst_stride, src, src_stride, rows, cols):
//    the runtime's strided copy with conversion (float <-> bf16, or same
//    type), widths at run time; float -> bf16 rounds to nearest even.
//
// Vector width: VEC = the widest of 16/8/4/2 bytes dividing every width
// (compile time); each launch checks at run time that its pointers and
// strides are VEC aligned and otherwise takes the scalar path.
#pragma once
#include "lisa_common.cuh"

namespace lisa {

namespace copy_detail {

template <typename T, int> using Ptr = T *;
template <typename T, int> using CPtr = const T *;

template <typename T, int V, int TX, int TY, int... W>
__device__ __forceinline__ void split_rows(const T *x, long long x_stride, int N,
                                           T *const (&outs)[sizeof...(W)]) {
  constexpr int K = sizeof...(W);
  constexpr int ws[K] = {W...};
  const long long row = (long long)blockIdx.x * TY + threadIdx.y;
  if (row >= N) return;
  const T *xr = x + row * x_stride;
  int off = 0;
#pragma unroll
  for (int i = 0; i < K; i++) {
    T *o = outs[i] + row * ws[i];
    for (int j = threadIdx.x; j < ws[i] / V; j += TX) vec_copy<T, V>(o + j * V, xr + off + j * V);
    off += ws[i];
  }
}

template <typename T, int V, int TX, int TY, int... W>
__device__ __forceinline__ void concat_rows(T *x, long long x_stride, int N,
                                            const T *const (&pieces)[sizeof...(W)]) {
  constexpr int K = sizeof...(W);
  constexpr int ws[K] = {W...};
  const long long row = (long long)blockIdx.x * TY + threadIdx.y;
  if (row >= N) return;
  T *xr = x + row * x_stride;
  int off = 0;
#pragma unroll
  for (int i = 0; i < K; i++) {
    const T *p = pieces[i];
    if (p) {
      p += row * ws[i];
      for (int j = threadIdx.x; j < ws[i] / V; j += TX) vec_copy<T, V>(xr + off + j * V, p + j * V);
    } else {
      for (int j = threadIdx.x; j < ws[i] / V; j += TX) vec_zero<T, V>(xr + off + j * V);
    }
    off += ws[i];
  }
}

template <typename T, int W, int V, int TX, int TY>
__device__ __forceinline__ void copy_cols_rows(T *dst, long long dst_stride, const T *src,
                                               long long src_stride, int N) {
  const long long row = (long long)blockIdx.x * TY + threadIdx.y;
  if (row >= N) return;
  T *d = dst + row * dst_stride;
  if (src) {
    const T *s = src + row * src_stride;
    for (int j = threadIdx.x; j < W / V; j += TX) vec_copy<T, V>(d + j * V, s + j * V);
  } else {
    for (int j = threadIdx.x; j < W / V; j += TX) vec_zero<T, V>(d + j * V);
  }
}

template <typename TO, typename TI, int V, int THREADS>
__device__ __forceinline__ void copy2d_flat(TO *dst, long long dst_stride, const TI *src,
                                            long long src_stride, int rows, int cols) {
  const long long cv = cols / V, total = (long long)rows * cv;
  const long long step = (long long)gridDim.x * THREADS;
  for (long long u = (long long)blockIdx.x * THREADS + threadIdx.x; u < total; u += step) {
    const long long r = u / cv, c = (u - r * cv) * V;
    float v[V];
    vec_load<TI, V>(v, src + r * src_stride + c);
    vec_store<TO, V>(dst + r * dst_stride + c, v);
  }
}

// The widest vector (of T, at most 16 bytes) dividing every width.
template <typename T, int... W> __host__ __device__ constexpr int common_vec() {
  const long long ws[] = {(long long)W...};  // (no std::initializer_list)
  int v = 16 / (int)sizeof(T);
  for (int i = 0; i < (int)sizeof...(W); i++)
    while (v > 1 && ws[i] % v != 0) v /= 2;
  return v;
}

}  // namespace copy_detail

// Defaults: threads across a row, one per vector, at most 32 (power of two).
template <typename T, int... W> __host__ __device__ constexpr int copy_tx() {
  const long long ws[] = {(long long)W...};
  long long nv = 0;
  for (int i = 0; i < (int)sizeof...(W); i++) nv += ws[i] / copy_detail::common_vec<T, W...>();
  int tx = 1;
  while (tx < nv && tx < 32) tx *= 2;
  return tx;
}

// Split x [N, sum W] (row stride x_stride >= sum W) into K = sizeof...(W)
// contiguous pieces outs[i] [N, W_i], bit-exact. The widths come last so the
// call reads lisa::split<float, 32, 8, 768, 768, 768>(x, 2304, N, q, k, v).
// launch: grid (ceil(N / TY)), block (TX, TY), dynamic smem: 0 bytes
// tunables: TX {1,2,4,8,16,32} default copy_tx<T, W...>() (vectors per row rounded up to a power of two, at most 32); TY {1,2,4,8,16,32,64,128,256} default 256 / TX; TX*TY <= 1024
// scratch: none
template <typename T, int TX, int TY, int... W>
__device__ __forceinline__ void split(const T *x, long long x_stride, int N,
                                      copy_detail::Ptr<T, W>... outs) {
  static_assert(sizeof...(W) >= 1, "split: at least one piece");
  static_assert(TX >= 1 && TY >= 1 && TX * TY <= 1024, "TX * TY <= 1024");
  constexpr int V = copy_detail::common_vec<T, W...>();
  T *const ptrs[sizeof...(W)] = {outs...};
  if constexpr (V > 1) {
    bool ok = is_aligned(x, V * sizeof(T)) && x_stride % V == 0;
    for (int i = 0; i < (int)sizeof...(W); i++)
      ok = ok && is_aligned(ptrs[i], V * sizeof(T));
    if (ok) {
      copy_detail::split_rows<T, V, TX, TY, W...>(x, x_stride, N, ptrs);
      return;
    }
  }
  copy_detail::split_rows<T, 1, TX, TY, W...>(x, x_stride, N, ptrs);
}

// Concat K pieces [N, W_i] (contiguous; nullptr: zeros) into x [N, sum W]
// (row stride x_stride >= sum W), bit-exact.
// launch: grid (ceil(N / TY)), block (TX, TY), dynamic smem: 0 bytes
// tunables: TX {1,2,4,8,16,32} default copy_tx<T, W...>(); TY {1,2,4,8,16,32,64,128,256} default 256 / TX; TX*TY <= 1024
// scratch: none
template <typename T, int TX, int TY, int... W>
__device__ __forceinline__ void concat(T *x, long long x_stride, int N,
                                       copy_detail::CPtr<T, W>... pieces) {
  static_assert(sizeof...(W) >= 1, "concat: at least one piece");
  static_assert(TX >= 1 && TY >= 1 && TX * TY <= 1024, "TX * TY <= 1024");
  constexpr int V = copy_detail::common_vec<T, W...>();
  const T *const ptrs[sizeof...(W)] = {pieces...};
  if constexpr (V > 1) {
    bool ok = is_aligned(x, V * sizeof(T)) && x_stride % V == 0;
    for (int i = 0; i < (int)sizeof...(W); i++)
      ok = ok && is_aligned(ptrs[i], V * sizeof(T));  // null is aligned
    if (ok) {
      copy_detail::concat_rows<T, V, TX, TY, W...>(x, x_stride, N, ptrs);
      return;
    }
  }
  copy_detail::concat_rows<T, 1, TX, TY, W...>(x, x_stride, N, ptrs);
}

// One column slice: dst[n, 0..W) = src[n, 0..W) for n < N, both strided
// (src nullptr: zeros). Split and concat with strided pieces are K of these.
// launch: grid (ceil(N / TY)), block (TX, TY), dynamic smem: 0 bytes
// tunables: TX {1,2,4,8,16,32} default copy_tx<T, W>(); TY {1,2,4,8,16,32,64,128,256} default 256 / TX; TX*TY <= 1024
// scratch: none
template <typename T, int W, int TX = copy_tx<T, W>(), int TY = 256 / copy_tx<T, W>()>
__device__ __forceinline__ void copy_cols(T *dst, long long dst_stride, const T *src,
                                          long long src_stride, int N) {
  static_assert(TX >= 1 && TY >= 1 && TX * TY <= 1024, "TX * TY <= 1024");
  constexpr int V = copy_detail::common_vec<T, W>();
  if constexpr (V > 1) {
    const bool ok = is_aligned(dst, V * sizeof(T)) &&
                    is_aligned(src, V * sizeof(T)) && dst_stride % V == 0 &&
                    src_stride % V == 0;
    if (ok) {
      copy_detail::copy_cols_rows<T, W, V, TX, TY>(dst, dst_stride, src, src_stride, N);
      return;
    }
  }
  copy_detail::copy_cols_rows<T, W, 1, TX, TY>(dst, dst_stride, src, src_stride, N);
}

// dst[r, c] = (TO)src[r, c], r < rows, c < cols; strides in elements of
// each side. float -> bf16 rounds to nearest even; bf16 -> float is exact;
// same-type copies are exact. A grid-stride loop: any grid works.
// launch: grid (min(ceil(rows * cols / (VEC * THREADS)), 8 * SMs)), block (THREADS), dynamic smem: 0 bytes (VEC = 4, or 1 when cols, the strides or the pointers are not 4-aligned)
// tunables: THREADS {128,256,512} default 256
// scratch: none
template <typename TO, typename TI, int THREADS = 256>
__device__ __forceinline__ void copy2d(TO *dst, long long dst_stride, const TI *src,
                                       long long src_stride, int rows, int cols) {
  constexpr int V = 4;
  const bool ok = cols % V == 0 && dst_stride % V == 0 && src_stride % V == 0 &&
                  is_aligned(dst, V * sizeof(TO)) &&
                  is_aligned(src, V * sizeof(TI));
  if (ok)
    copy_detail::copy2d_flat<TO, TI, V, THREADS>(dst, dst_stride, src, src_stride, rows, cols);
  else
    copy_detail::copy2d_flat<TO, TI, 1, THREADS>(dst, dst_stride, src, src_stride, rows, cols);
}

}  // namespace lisa
