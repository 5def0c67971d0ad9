// norm.cuh: LayerNorm and RMSNorm (LLaMA's), forward and backward, and the
// fused "residual add + norm" variants. Reference: cpu_layernorm_* and
// cpu_rmsnorm_* in runtime/cpu/cpu_ops.c (same formulas, same order of
// operations per element; only the summation order of the row reductions
// differs, a fixed tree here).
//
// Row kernels (forward, backward dx): a group of THREADS threads owns one row
// of C columns and keeps it in registers, so every row is read once and
// written once. A block holds ROWS such groups (rows blockIdx.x*ROWS + g).
// Loads and stores are VEC wide, VEC = the widest of 16/8/4/2 bytes that
// divides C (norm_vec<T, C>()), decided at compile time: C = 37 runs scalar,
// C = 24 float runs float4. T pointers must be aligned to VEC * sizeof(T)
// bytes (16 bytes always suffices; cudaMalloc and the activation arena give
// more). Requirements on the tunables (static_assert'ed): THREADS a multiple
// of 32, at most 1024; THREADS * ROWS at most 1024; at most 64 vectors per
// thread (ceil(C / VEC / THREADS) <= 64; the search space below keeps <= 32).
//
// Weight gradients: two kernels, deterministic (fixed-order, no atomics):
// *_backward_w*_partial writes per-block column sums into a float scratch
// [parts, C] (LayerNorm: dw partials, then db partials, [2, parts, C]), and
// norm_backward_w_finish sums the parts in order and ADDS them to dw (db).
//
// Aliasing: y may alias x (forward); s may alias a or b (fused forward);
// dx may alias dy or dres (backward): every element is read before the
// row's first reduction and written after its last one, by the same thread.
#pragma once
#include "lisa_common.cuh"

namespace lisa {

// ---------------------------------------------------------------------------
// Defaults of the row kernels' tunables, as functions of T and C.

template <typename T, int C> __host__ __device__ constexpr int norm_vec() {
  return vec_width_for<T>(C);
}
// Rows of at most 128 vectors: a warp per row (4 rows per block). Wider
// rows: enough threads for at most 512 per row (launch.cuh).
template <typename T, int C> __host__ __device__ constexpr int norm_threads() {
  return lisa_norm_threads((int)sizeof(T), C);
}
template <typename T, int C> __host__ __device__ constexpr int norm_rows() {
  return lisa_norm_rows(norm_threads<T, C>());
}
// Weight-gradient partial kernels: BX threads across columns (each VEC
// wide), BY across rows; BX * BY = 256 by default.
template <typename T, int C> __host__ __device__ constexpr int norm_wb_bx() {
  return lisa_norm_wb_bx((int)sizeof(T), C);
}
template <typename T, int C> __host__ __device__ constexpr int norm_wb_by() {
  return lisa_norm_wb_by((int)sizeof(T), C);
}

namespace norm_detail {

// Sum of K values over the THREADS threads of a row group (ROWS groups per
// block), returned to every thread of the group. Fixed order. With
// THREADS > 32 every thread of the block must call it (it has barriers).
template <int THREADS, int ROWS, int K>
__device__ __forceinline__ void group_sum(float (&v)[K]) {
#pragma unroll
  for (int k = 0; k < K; k++) v[k] = warp_sum(v[k]);
  if constexpr (THREADS > 32) {
    constexpr int W = THREADS / 32;
    __shared__ float part[ROWS][W][K];
    const int g = threadIdx.x / THREADS;
    const int w = (threadIdx.x % THREADS) / 32, lane = threadIdx.x % 32;
    __syncthreads();  // part may still be read by a previous call
    if (lane == 0) {
#pragma unroll
      for (int k = 0; k < K; k++) part[g][w][k] = v[k];
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < K; k++) v[k] = warp_sum(lane < W ? part[g][lane][k] : 0.f);
  }
}

template <typename T, int C, int THREADS, int ROWS> struct RowShape {
  static constexpr int VEC = norm_vec<T, C>();
  static constexpr int NV = C / VEC;                       // vectors per row
  static constexpr int VPT = (NV + THREADS - 1) / THREADS;  // per thread
  static constexpr bool FULL = NV % THREADS == 0;          // no ragged tail
  static_assert(THREADS % 32 == 0 && THREADS >= 32 && THREADS <= 1024,
                "THREADS: a multiple of 32, at most 1024");
  static_assert(ROWS >= 1 && THREADS * ROWS <= 1024, "THREADS * ROWS <= 1024");
  static_assert(VPT <= 64, "too many vectors per thread: raise THREADS");
  __device__ static bool has(int i, int t) { return FULL || i * THREADS + t < NV; }
  __device__ static int col(int i, int t) { return (i * THREADS + t) * VEC; }
};

// Forward of one row group. RMS: RMSNorm, else LayerNorm. ADD: x = a + b,
// stored to s (as T), and the norm is taken of the stored (rounded) s, which
// is what the backward reads.
template <typename T, int C, int THREADS, int ROWS, bool RMS, bool ADD>
__device__ __forceinline__ void forward(T *s, T *y, float *mean, float *rstd,
                                        const T *a, const T *b, const T *w,
                                        const T *bias, int N, float eps,
                                        float w_offset) {
  using S = RowShape<T, C, THREADS, ROWS>;
  constexpr int VEC = S::VEC, VPT = S::VPT;
  const int g = threadIdx.x / THREADS, t = threadIdx.x % THREADS;
  const long long row = (long long)blockIdx.x * ROWS + g;
  const bool live = row < N;
  const long long off = (live ? row : 0) * (long long)C;

  float x[VPT][VEC];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    if (live && S::has(i, t)) {
      const int c = S::col(i, t);
      vec_load<T, VEC>(x[i], a + off + c);
      if constexpr (ADD) {
        float bv[VEC];
        vec_load<T, VEC>(bv, b + off + c);
#pragma unroll
        for (int k = 0; k < VEC; k++) x[i][k] += bv[k];
        vec_store<T, VEC>(s + off + c, x[i]);
#pragma unroll
        for (int k = 0; k < VEC; k++) x[i][k] = round_through<T>(x[i][k]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < VEC; k++) x[i][k] = 0.f;
    }
#pragma unroll
    for (int k = 0; k < VEC; k++) sum += RMS ? x[i][k] * x[i][k] : x[i][k];
  }
  float r1[1] = {sum};
  group_sum<THREADS, ROWS, 1>(r1);

  float m = 0.f, rs;
  if constexpr (RMS) {
    rs = 1.0f / sqrtf(r1[0] / (float)C + eps);
  } else {
    m = r1[0] / (float)C;
    float var = 0.f;  // two passes, as the CPU: no cancellation
#pragma unroll
    for (int i = 0; i < VPT; i++)
      if (S::has(i, t)) {
#pragma unroll
        for (int k = 0; k < VEC; k++) var += (x[i][k] - m) * (x[i][k] - m);
      }
    float r2[1] = {var};
    group_sum<THREADS, ROWS, 1>(r2);
    rs = 1.0f / sqrtf(r2[0] / (float)C + eps);
  }
  if (!live) return;  // after the last barrier
  if (t == 0) {
    if constexpr (!RMS) mean[row] = m;
    rstd[row] = rs;
  }
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    if (!S::has(i, t)) continue;
    const int c = S::col(i, t);
    float wv[VEC], out[VEC];
    vec_load<T, VEC>(wv, w + c);
    if constexpr (RMS) {
#pragma unroll
      for (int k = 0; k < VEC; k++) out[k] = (w_offset + wv[k]) * (x[i][k] * rs);
    } else {
      float bv[VEC];
      vec_load<T, VEC>(bv, bias + c);
#pragma unroll
      for (int k = 0; k < VEC; k++) out[k] = (x[i][k] - m) * rs * wv[k] + bv[k];
    }
    vec_store<T, VEC>(y + off + c, out);
  }
}

// dx of one row group, plus dres when it is not null.
template <typename T, int C, int THREADS, int ROWS, bool RMS>
__device__ __forceinline__ void backward_x(T *dx, const T *dy, const T *x,
                                           const T *w, const float *mean,
                                           const float *rstd, const T *dres,
                                           int N, float w_offset) {
  using S = RowShape<T, C, THREADS, ROWS>;
  constexpr int VEC = S::VEC, VPT = S::VPT;
  const int g = threadIdx.x / THREADS, t = threadIdx.x % THREADS;
  const long long row = (long long)blockIdx.x * ROWS + g;
  const bool live = row < N;
  const long long off = (live ? row : 0) * (long long)C;
  const float m = (!RMS && live) ? mean[row] : 0.f;
  const float rs = live ? rstd[row] : 0.f;

  float nrm[VPT][VEC], dn[VPT][VEC];  // norm and dnorm = dy * w
  float acc[2] = {0.f, 0.f};          // sum dnorm, sum dnorm * norm
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    if (live && S::has(i, t)) {
      const int c = S::col(i, t);
      float xv[VEC], dyv[VEC], wv[VEC];
      vec_load<T, VEC>(xv, x + off + c);
      vec_load<T, VEC>(dyv, dy + off + c);
      vec_load<T, VEC>(wv, w + c);
#pragma unroll
      for (int k = 0; k < VEC; k++) {
        nrm[i][k] = RMS ? xv[k] * rs : (xv[k] - m) * rs;
        dn[i][k] = dyv[k] * (w_offset + wv[k]);
      }
    } else {
#pragma unroll
      for (int k = 0; k < VEC; k++) nrm[i][k] = dn[i][k] = 0.f;
    }
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      acc[0] += dn[i][k];
      acc[1] += dn[i][k] * nrm[i][k];
    }
  }
  if constexpr (RMS) {
    float r[1] = {acc[1]};
    group_sum<THREADS, ROWS, 1>(r);
    acc[1] = r[0];
  } else {
    group_sum<THREADS, ROWS, 2>(acc);
  }
  if (!live) return;
  const float dn_mean = RMS ? 0.f : acc[0] / (float)C;
  const float dnn_mean = acc[1] / (float)C;
#pragma unroll
  for (int i = 0; i < VPT; i++) {
    if (!S::has(i, t)) continue;
    const int c = S::col(i, t);
    float out[VEC];
#pragma unroll
    for (int k = 0; k < VEC; k++)
      out[k] = RMS ? rs * (dn[i][k] - nrm[i][k] * dnn_mean)
                   : rs * (dn[i][k] - dn_mean - nrm[i][k] * dnn_mean);
    if (dres) {
      float rv[VEC];
      vec_load<T, VEC>(rv, dres + off + c);
#pragma unroll
      for (int k = 0; k < VEC; k++) out[k] += rv[k];
    }
    vec_store<T, VEC>(dx + off + c, out);
  }
}

// Per-block column sums of dy * norm (and of dy unless RMS) over the rows
// p*BY + ty + j*parts*BY, p = blockIdx.y, into partial[p][c] (db partials
// at partial + parts*C).
template <typename T, int C, int BX, int BY, bool RMS>
__device__ __forceinline__ void backward_wb_partial(float *partial, const T *dy,
                                                    const T *x, const float *mean,
                                                    const float *rstd, int N) {
  constexpr int VEC = norm_vec<T, C>();
  static_assert(BX >= 1 && BY >= 1 && BX * BY <= 1024, "BX * BY: at most 1024");
  constexpr int K = RMS ? 1 : 2;
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int parts = gridDim.y, p = blockIdx.y;
  const int c = (blockIdx.x * BX + tx) * VEC;
  const bool col_ok = c < C;
  float aw[VEC], ab[VEC];
#pragma unroll
  for (int k = 0; k < VEC; k++) aw[k] = ab[k] = 0.f;
  if (col_ok) {
#pragma unroll 4
    for (long long n = (long long)p * BY + ty; n < N; n += (long long)parts * BY) {
      float xv[VEC], dyv[VEC];
      vec_load<T, VEC>(xv, x + n * C + c);
      vec_load<T, VEC>(dyv, dy + n * C + c);
      const float m = RMS ? 0.f : mean[n], rs = rstd[n];
#pragma unroll
      for (int k = 0; k < VEC; k++) {
        aw[k] += RMS ? dyv[k] * (xv[k] * rs) : dyv[k] * (xv[k] - m) * rs;
        if constexpr (!RMS) ab[k] += dyv[k];
      }
    }
  }
  if constexpr (BY == 1) {
    if (!col_ok) return;
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      partial[(long long)p * C + c + k] = aw[k];
      if constexpr (!RMS) partial[((long long)parts + p) * C + c + k] = ab[k];
    }
  } else {
    // [K][BY][VEC][BX]: the stores below and the column reads are
    // conflict-free.
    static_assert(K * BY * VEC * BX * 4 <= 32768, "BX * BY * VEC too large");
    __shared__ float red[K][BY][VEC][BX];
#pragma unroll
    for (int k = 0; k < VEC; k++) {
      red[0][ty][k][tx] = aw[k];
      if constexpr (!RMS) red[K - 1][ty][k][tx] = ab[k];
    }
    __syncthreads();
    // Each column of the tile is summed over ty, in order, by one thread.
    for (int j = ty * BX + tx; j < K * VEC * BX; j += BX * BY) {
      const int kk = j / (VEC * BX), k = (j / BX) % VEC, jx = j % BX;
      const int cc = (blockIdx.x * BX + jx) * VEC + k;
      if (cc >= C) continue;
      float s = 0.f;
#pragma unroll 8
      for (int r = 0; r < BY; r++) s += red[kk][r][k][jx];
      partial[((long long)kk * parts + p) * C + cc] = s;
    }
  }
}

}  // namespace norm_detail

// ===========================================================================
// LayerNorm: y = (x - mean) * rstd * w + b, mean and rstd saved per row.

// launch: grid (ceil(N / ROWS)), block (THREADS * ROWS), dynamic smem: 0 bytes
// tunables: THREADS {32,64,96,128,192,256,384,512,768,1024} default norm_threads<T,C>() (32 for C/VEC <= 128, else <= 512 threads with equal vectors each); ROWS {1,2,4,8} default norm_rows<T,C>() (4 when THREADS = 32, else 1); keep THREADS*ROWS <= 1024 and ceil(C/VEC/THREADS) <= 32
// scratch: none
template <typename T, int C, int THREADS = norm_threads<T, C>(), int ROWS = norm_rows<T, C>()>
__device__ __forceinline__ void layernorm_forward(T *y, float *mean, float *rstd,
                                                  const T *x, const T *w,
                                                  const T *b, int N, float eps) {
  norm_detail::forward<T, C, THREADS, ROWS, false, false>(nullptr, y, mean, rstd, x,
                                                          nullptr, w, b, N, eps, 0.f);
}

// Residual add + LayerNorm: s = a + b (stored as T, the residual stream),
// y = layernorm(s) with mean, rstd of s; s may alias a or b.
// launch: grid (ceil(N / ROWS)), block (THREADS * ROWS), dynamic smem: 0 bytes
// tunables: THREADS {32,64,96,128,192,256,384,512,768,1024} default norm_threads<T,C>(); ROWS {1,2,4,8} default norm_rows<T,C>(); as layernorm_forward
// scratch: none
template <typename T, int C, int THREADS = norm_threads<T, C>(), int ROWS = norm_rows<T, C>()>
__device__ __forceinline__ void add_layernorm_forward(T *s, T *y, float *mean,
                                                      float *rstd, const T *a,
                                                      const T *b, const T *w,
                                                      const T *bias, int N,
                                                      float eps) {
  norm_detail::forward<T, C, THREADS, ROWS, false, true>(s, y, mean, rstd, a, b, w,
                                                         bias, N, eps, 0.f);
}

// dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) [+ dres],
// norm = (x - mean) * rstd, dnorm = dy * w. dres: the residual branch's
// incoming gradient, added when not null (then no separate add kernel);
// dx may alias dy or dres. For the fused forward, x is its s.
// launch: grid (ceil(N / ROWS)), block (THREADS * ROWS), dynamic smem: 0 bytes
// tunables: THREADS {32,64,96,128,192,256,384,512,768,1024} default norm_threads<T,C>(); ROWS {1,2,4,8} default norm_rows<T,C>(); as layernorm_forward
// scratch: none
template <typename T, int C, int THREADS = norm_threads<T, C>(), int ROWS = norm_rows<T, C>()>
__device__ __forceinline__ void layernorm_backward_x(T *dx, const T *dy, const T *x,
                                                     const T *w, const float *mean,
                                                     const float *rstd,
                                                     const T *dres, int N) {
  norm_detail::backward_x<T, C, THREADS, ROWS, false>(dx, dy, x, w, mean, rstd, dres,
                                                      N, 0.f);
}

// Stage 1 of dw += sum_n dy * (x - mean) * rstd, db += sum_n dy: column sums
// of the rows n = p*BY + ty (mod parts*BY) for p = blockIdx.y, written (not
// added) to partial. Follow with norm_backward_w_finish<C>(dw, db, partial,
// parts). Deterministic for a given parts (the result depends on parts only
// through the summation order).
// launch: grid (ceil(C / (BX * VEC)), parts), block (BX, BY), dynamic smem: 0 bytes (static: 2 * BY * BX * VEC * 4 bytes, <= 32 KB, asserted)
// tunables: BX {8,16,32,64} default norm_wb_bx<T,C>() (32 unless C/VEC < 32); BY {1,2,4,8,16,32} default norm_wb_by<T,C>() (256 / BX, at most 32); BX*BY <= 1024; parts (runtime, = gridDim.y) {1..1024} default min(ceil(N / (4 * BY)), max(1, 2 * SMs / ceil(C / (BX * VEC))))
// scratch: partial: 2 * parts * C floats (dw partials [parts, C], then db partials [parts, C])
template <typename T, int C, int BX = norm_wb_bx<T, C>(), int BY = norm_wb_by<T, C>()>
__device__ __forceinline__ void layernorm_backward_wb_partial(float *partial,
                                                              const T *dy,
                                                              const T *x,
                                                              const float *mean,
                                                              const float *rstd,
                                                              int N) {
  norm_detail::backward_wb_partial<T, C, BX, BY, false>(partial, dy, x, mean, rstd, N);
}

// ===========================================================================
// RMSNorm (Hugging Face's LlamaRMSNorm): y = (w_offset + w) * (x * rstd),
// rstd = 1 / sqrt(mean(x^2) + eps), saved per row. w_offset is 0 but for
// Gemma's (1 + w). A per-head norm launches N * heads rows of C = head size.

// launch: grid (ceil(N / ROWS)), block (THREADS * ROWS), dynamic smem: 0 bytes
// tunables: THREADS {32,64,96,128,192,256,384,512,768,1024} default norm_threads<T,C>(); ROWS {1,2,4,8} default norm_rows<T,C>(); as layernorm_forward
// scratch: none
template <typename T, int C, int THREADS = norm_threads<T, C>(), int ROWS = norm_rows<T, C>()>
__device__ __forceinline__ void rmsnorm_forward(T *y, float *rstd, const T *x,
                                                const T *w, int N, float eps,
                                                float w_offset = 0.f) {
  norm_detail::forward<T, C, THREADS, ROWS, true, false>(nullptr, y, nullptr, rstd, x,
                                                         nullptr, w, nullptr, N, eps,
                                                         w_offset);
}

// Residual add + RMSNorm: s = a + b (stored as T), y = rmsnorm(s), rstd of s;
// s may alias a or b.
// launch: grid (ceil(N / ROWS)), block (THREADS * ROWS), dynamic smem: 0 bytes
// tunables: THREADS {32,64,96,128,192,256,384,512,768,1024} default norm_threads<T,C>(); ROWS {1,2,4,8} default norm_rows<T,C>(); as layernorm_forward
// scratch: none
template <typename T, int C, int THREADS = norm_threads<T, C>(), int ROWS = norm_rows<T, C>()>
__device__ __forceinline__ void add_rmsnorm_forward(T *s, T *y, float *rstd,
                                                    const T *a, const T *b,
                                                    const T *w, int N, float eps,
                                                    float w_offset = 0.f) {
  norm_detail::forward<T, C, THREADS, ROWS, true, true>(s, y, nullptr, rstd, a, b, w,
                                                        nullptr, N, eps, w_offset);
}

// dx = rstd * (dnorm - norm * mean(dnorm * norm)) [+ dres], norm = x * rstd,
// dnorm = dy * (w_offset + w); dres added when not null; dx may alias dy or dres.
// launch: grid (ceil(N / ROWS)), block (THREADS * ROWS), dynamic smem: 0 bytes
// tunables: THREADS {32,64,96,128,192,256,384,512,768,1024} default norm_threads<T,C>(); ROWS {1,2,4,8} default norm_rows<T,C>(); as layernorm_forward
// scratch: none
template <typename T, int C, int THREADS = norm_threads<T, C>(), int ROWS = norm_rows<T, C>()>
__device__ __forceinline__ void rmsnorm_backward_x(T *dx, const T *dy, const T *x,
                                                   const T *w, const float *rstd,
                                                   const T *dres, int N,
                                                   float w_offset = 0.f) {
  norm_detail::backward_x<T, C, THREADS, ROWS, true>(dx, dy, x, w, nullptr, rstd, dres,
                                                     N, w_offset);
}

// Stage 1 of dw += sum_n dy * (x * rstd): as layernorm_backward_wb_partial
// without db. Follow with norm_backward_w_finish<C>(dw, nullptr, partial, parts).
// launch: grid (ceil(C / (BX * VEC)), parts), block (BX, BY), dynamic smem: 0 bytes (static: BY * BX * VEC * 4 bytes, <= 32 KB, asserted)
// tunables: BX {8,16,32,64} default norm_wb_bx<T,C>(); BY {1,2,4,8,16,32} default norm_wb_by<T,C>(); parts (runtime) as layernorm_backward_wb_partial
// scratch: partial: parts * C floats
template <typename T, int C, int BX = norm_wb_bx<T, C>(), int BY = norm_wb_by<T, C>()>
__device__ __forceinline__ void rmsnorm_backward_w_partial(float *partial, const T *dy,
                                                           const T *x,
                                                           const float *rstd, int N) {
  norm_detail::backward_wb_partial<T, C, BX, BY, true>(partial, dy, x, nullptr, rstd,
                                                       N);
}

// ===========================================================================
// Stage 2 of both: dw[c] += sum_{p < parts} partial[p][c] in order of p, and,
// when db is not null (LayerNorm), db[c] += sum_p partial[parts + p][c].
// G, the gradients' type (deduced): float, or __nv_bfloat16 for bf16-true
// training; the add is fp32 either way, rounded once to G on the store.
// launch: grid (ceil(C / THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {64,128,256,512} default 256
// scratch: reads the partial written by stage 1 (parts * C floats, 2 * parts * C with db)
template <int C, int THREADS = 256, typename G>
__device__ __forceinline__ void norm_backward_w_finish(G *dw, G *db,
                                                       const float *partial,
                                                       int parts) {
  const int c = blockIdx.x * THREADS + threadIdx.x;
  if (c >= C) return;
  float s = 0.f;
  for (int p = 0; p < parts; p++) s += partial[(long long)p * C + c];
  dw[c] = from_f32<G>(to_f32(dw[c]) + s);
  if (db) {
    const float *pb = partial + (long long)parts * C;
    float sb = 0.f;
    for (int p = 0; p < parts; p++) sb += pb[(long long)p * C + c];
    db[c] = from_f32<G>(to_f32(db[c]) + sb);
  }
}

}  // namespace lisa
