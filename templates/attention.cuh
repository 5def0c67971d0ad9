// attention.cuh: scaled dot-product attention (causal or not, grouped-query),
// forward and backward, flash-attention style: nothing of size T x T is ever
// stored; the forward saves only lse, the backward recomputes probabilities.
// Reference: cpu_attention_forward / cpu_attention_backward (runtime/cpu/cpu_ops.c).
//
// Layout (as the CPU reference). Row n = b*SEQ + t. Every tensor pointer comes
// with its own row stride (elements between consecutive rows), so q, k and v
// may point straight into one fused qkv buffer [N, (HEADS+2*KV_HEADS)*HD]:
//   q = qkv, k = qkv + HEADS*HD, v = qkv + (HEADS+KV_HEADS)*HD,
//   qs = ks = vs = (HEADS+2*KV_HEADS)*HD
// and dq/dk/dv straight into one dqkv buffer the same way. Query head h sits
// in columns [h*HD, (h+1)*HD) from its pointer (q, y, dy, dq); kv head g in
// columns [g*HD, (g+1)*HD) from k, v, dk, dv. Query head h reads kv head
// h / (HEADS / KV_HEADS). lse is float [N, HEADS]: lse[n*HEADS + h] is the
// natural-log log-sum-exp of the scores of row n, head h, over the keys it
// sees (t' <= t when CAUSAL). A score is s = scale q.k (the last arguments:
// scale 0 means 1/sqrt(HD)), soft-capped to softcap * tanh(s / softcap) when
// softcap > 0 (Gemma 2); the backward multiplies ds by 1 - tanh^2. window > 0
// (causal only): query t sees keys t - window < key <= t (Mistral); the
// masked keys are still visited, so a window saves no time here.
//
// Backward: two kernels, in this order on one stream:
//   1. attention_backward_dq   writes dq and the scratch dsum[n*HEADS + h] =
//                              rowsum(dy * y) (the "D" of flash attention);
//   2. attention_backward_dkdv reads dsum and writes dk, dv.
// Both are deterministic: no atomics; every output element is accumulated by
// one thread in a fixed order (dk/dv sum the query heads of a group in head
// order, then query rows in order).
//
// Performance sketch (SIMT fp32 math; no tensor cores, so that the host
// emulator runs the same code):
//  - Thread layout, all kernels: a block's THREADS threads form TR = THREADS/TC
//    "thread rows" of TC lanes (TC divides 32, so a group is inside one warp).
//    A group owns R rows of the block's tile (strided by TR) and each lane owns
//    the columns d = lane_in_group + TC*c of HD, c < ceil(HD/TC). The block's
//    own operand rows (q for forward/dq, k and v for dkdv) and the output
//    accumulators live in registers, split over the group by column.
//  - The streamed operand (key/value tiles of BK rows in forward/dq, query/dy
//    tiles in dkdv) is staged in shared memory as fp32, loaded coalesced
//    (consecutive threads read consecutive columns of a row). Reads from it are
//    conflict-free: the TC lanes of a group read TC consecutive words and the
//    other groups of the warp read the same words (broadcast).
//  - A score is a dot product over HD split across the group's lanes: each
//    lane sums its columns, then shuffles combine the TC partial sums.
//    Forward: per chunk of TC keys a reduce-scatter (TC-1 shuffles) leaves
//    lane tc with the score of key tc of the chunk, so exp2f runs once per
//    score (not TC times) and only R*(TC + BK/TC) scores are live; P*V then
//    broadcasts each p from its owner lane (one shuffle per key and row).
//    Backward: p needs no running maximum (lse is known), so keys (dq) or
//    query rows (dkdv) are taken one at a time: a butterfly all-reduce
//    (log2(TC) shuffles, bit-identical on every lane) gives s and dy.v, and
//    ds feeds the rank-1 updates at once; nothing of size BK is kept.
//    Per streamed element loaded from smem a thread does R FMAs (register
//    micro-tile R rows x ceil(HD/TC) columns).
//  - Forward: online softmax in the log2 domain (q pre-scaled by
//    log2(e)/sqrt(HD), exp2f); y = o / l and lse written once at the end.
//  - Causal: a query tile stops at its last key tile and a key block (dkdv)
//    starts at its first query row; the heaviest blocks start first (the last
//    query tiles in forward/dq, blockIdx.x in reverse; the first key blocks in
//    dkdv).
//  - The tensor-core version (bf16, HD a multiple of 16) is attention_mma.cuh,
//    with the same interfaces.
#pragma once
#include "lisa_common.cuh"

// The unroll pragma as a macro: the emulator's host compiler warns on every
// unknown pragma (and GCC cannot silence that from a header).
#ifdef LISA_EMU
#define LISA_ATT_UNROLL
#define LISA_ATT_UNROLL_2
#define LISA_ATT_UNROLL_4
#else
#define LISA_ATT_UNROLL _Pragma("unroll")
#define LISA_ATT_UNROLL_2 _Pragma("unroll 2")
#define LISA_ATT_UNROLL_4 _Pragma("unroll 4")
#endif

namespace lisa {

namespace attn_detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// A score x in the log2 domain (scale * log2(e) * q.k), soft-capped when
// cap > 0: cap * tanh(s / cap) of the natural score s = x * ln 2 (Gemma 2's
// attn_logit_softcapping), back in the log2 domain. *dcap: d capped /
// d uncapped = 1 - tanh^2, which the backward multiplies ds by.
__device__ __forceinline__ float soft_cap(float x, float cap, float *dcap) {
  if (cap <= 0.f) {
    *dcap = 1.f;
    return x;
  }
  const float t = tanhf(x * kLn2 / cap);
  *dcap = 1.f - t * t;
  return t * cap * kLog2e;
}

// A sliding window (window > 0, causal): query t sees keys t - window < key.
__device__ __forceinline__ bool in_window(int t, int key, int window) {
  return window <= 0 || t - key < window;
}

// The scores' scale: the given one, or 1/sqrt(HD) when it is 0.
template <int HD> __device__ __forceinline__ float score_scale(float scale) {
  return scale > 0.f ? scale : 1.f / sqrtf((float)HD);
}

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }

// Sum of v over the TC lanes of an aligned lane group (TC divides 32); every
// lane of the group gets the same bits (each butterfly step adds the same two
// numbers on both partners).
template <int TC> __device__ __forceinline__ float group_sum(float v) {
LISA_ATT_UNROLL
  for (int o = TC / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Reduce-scatter over an aligned group of TC lanes: a[e] are this lane's
// partial sums of TC numbers; lane tc of the group gets the group's total of
// number tc. TC-1 shuffles (an all-reduce of all TC would take TC*log2(TC)).
// The summation tree is fixed, so the result is deterministic.
template <int TC, int O> struct rs_step {  // one butterfly step, offset O
  static __device__ __forceinline__ void run(float (&a)[TC], int tc) {
    const bool up = (tc & O) != 0;
LISA_ATT_UNROLL
    for (int e = 0; e < O; ++e) {
      const float keep = up ? a[e + O] : a[e];
      const float send = up ? a[e] : a[e + O];
      a[e] = keep + __shfl_xor_sync(0xffffffffu, send, O);
    }
    rs_step<TC, O / 2>::run(a, tc);
  }
};
template <int TC> struct rs_step<TC, 0> {
  static __device__ __forceinline__ void run(float (&)[TC], int) {}
};
template <int TC> __device__ __forceinline__ float group_reduce_scatter(float (&a)[TC], int tc) {
  rs_step<TC, TC / 2>::run(a, tc);
  return a[0];
}

template <int TC> __device__ __forceinline__ float group_max(float v) {
LISA_ATT_UNROLL
  for (int o = TC / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Stage rows [r0, r0+ROWS) of a [*, HD] slice (row stride st, rows past nrows
// read as 0) into smem dst[ROWS*HD] as fp32; coalesced along columns.
template <typename T, int HD, int ROWS, int THREADS>
__device__ __forceinline__ void stage_rows(float *dst, const T *src, long long st, int r0,
                                           int nrows) {
  constexpr int E = ROWS * HD, IT = (E + THREADS - 1) / THREADS;
LISA_ATT_UNROLL_4
  for (int it = 0; it < IT; ++it) {
    const int idx = threadIdx.x + it * THREADS;
    if (E % THREADS == 0 || idx < E) {
      const int r = idx / HD, d = idx - r * HD;
      dst[idx] = r0 + r < nrows ? to_f32(src[(long long)(r0 + r) * st + d]) : 0.f;
    }
  }
}

template <int HD, int HEADS, int KV_HEADS, int SEQ, int ROWS, int THREADS, int TC>
struct cfg {
  static_assert(HD >= 1 && SEQ >= 1, "HD, SEQ: positive");
  static_assert(HEADS >= 1 && KV_HEADS >= 1 && HEADS % KV_HEADS == 0,
                "HEADS: a multiple of KV_HEADS");
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "THREADS: a multiple of 32, <= 1024");
  static_assert(TC >= 1 && TC <= 32 && 32 % TC == 0, "TC: a power of two <= 32");
  static constexpr int TR = THREADS / TC;      // lane groups ("thread rows")
  static_assert(ROWS % TR == 0, "rows per block: a multiple of THREADS/TC");
  static constexpr int R = ROWS / TR;          // rows per lane group
  static constexpr int D = (HD + TC - 1) / TC; // columns per lane
  static constexpr int GROUP = HEADS / KV_HEADS;
  // column c of a lane is real (compile-time true except maybe the last one)
  static __device__ __forceinline__ bool col_ok(int c, int d) { return c < HD / TC || d < HD; }
};

}  // namespace attn_detail

// ---------------------------------------------------------------------------
// Forward: y = softmax(scale q k^T [+ causal mask]) v, lse = logsumexp rows.
// One block: BQ query rows of one (batch, query head); loops over key tiles of
// BK rows with an online softmax. Writes y [N, *] (stride ys) and lse.
//
// Constraints: valid when BQ % (THREADS/TC) == 0 and BK % TC == 0; static smem 2*BK*HD*4
// bytes must be <= 48 KiB, so BK=64 needs HD <= 96; live registers about
// R*(2*ceil(HD/TC) + TC + BK/TC) with R = BQ*TC/THREADS rows per lane group.
//
// launch: grid (ceil(SEQ/BQ), HEADS, B), block (THREADS), dynamic smem: 0 bytes
// tunables: BQ {16,32,64,128} default 32; BK {16,32,64} default 16; THREADS {64,128,256} default 128; TC {4,8,16} default 8
// scratch: none
template <typename T, int HD, int HEADS, int KV_HEADS, int SEQ, bool CAUSAL, int BQ = 32,
          int BK = LISA_ATTENTION_FWD_BK, int THREADS = 128, int TC = 8>
__device__ __forceinline__ void attention_forward(T *__restrict__ y, int ys,
                                                  float *__restrict__ lse,
                                                  const T *__restrict__ q, int qs,
                                                  const T *__restrict__ k, int ks,
                                                  const T *__restrict__ v, int vs, int B,
                                                  float scale = 0.f, float softcap = 0.f,
                                                  int window = 0) {
  using C = attn_detail::cfg<HD, HEADS, KV_HEADS, SEQ, BQ, THREADS, TC>;
  constexpr int TR = C::TR, R = C::R, D = C::D;
  static_assert(2 * BK * HD * 4 <= 48 * 1024, "K/V tiles exceed 48 KiB static smem: lower BK");
  static_assert(BK % TC == 0, "BK: a multiple of TC");
  constexpr int NC = BK / TC;  // keys of a tile per lane
  __shared__ float Ks[BK * HD];
  __shared__ float Vs[BK * HD];

  if (blockDim.x != THREADS) __trap();  // the launch must match the template
  const int b = blockIdx.z;
  if (b >= B) return;
  const int qt = (int)gridDim.x - 1 - (int)blockIdx.x;  // heavy causal tiles first
  const int h = blockIdx.y, g = h / C::GROUP;
  const int q0 = qt * BQ;
  const int tc = threadIdx.x % TC, tr = threadIdx.x / TC;
  const float sl2 = attn_detail::kLog2e * attn_detail::score_scale<HD>(scale);
  const long long row0 = (long long)b * SEQ;
  const T *kb = k + row0 * ks + g * HD, *vb = v + row0 * vs + g * HD;

  float qr[R][D], o[R][D], m[R], l[R];
LISA_ATT_UNROLL
  for (int i = 0; i < R; ++i) {
    const int t = q0 + tr + TR * i;
LISA_ATT_UNROLL
    for (int c = 0; c < D; ++c) {
      const int d = tc + TC * c;
      qr[i][c] = t < SEQ && C::col_ok(c, d)
                     ? to_f32(q[(row0 + t) * qs + h * HD + d]) * sl2
                     : 0.f;
      o[i][c] = 0.f;
    }
    m[i] = kNegBig;
    l[i] = 0.f;
  }

  const int nkeys = CAUSAL ? attn_detail::imin(SEQ, q0 + BQ) : SEQ;
  for (int k0 = 0; k0 < nkeys; k0 += BK) {
    __syncthreads();  // the previous tile is consumed
    attn_detail::stage_rows<T, HD, BK, THREADS>(Ks, kb, ks, k0, SEQ);
    attn_detail::stage_rows<T, HD, BK, THREADS>(Vs, vb, vs, k0, SEQ);
    __syncthreads();

    // Scores in chunks of TC keys: each lane sums its columns for the TC keys,
    // a reduce-scatter leaves lane tc with the score of key k0 + cc*TC + tc.
    float s[R][NC];  // scores (log2 domain), then p
LISA_ATT_UNROLL
    for (int cc = 0; cc < NC; ++cc) {
      float a[R][TC];
LISA_ATT_UNROLL
      for (int jj = 0; jj < TC; ++jj) {
        const int j = cc * TC + jj;
LISA_ATT_UNROLL
        for (int i = 0; i < R; ++i) a[i][jj] = 0.f;
LISA_ATT_UNROLL
        for (int c = 0; c < D; ++c) {
          const int d = tc + TC * c;
          const float kv = C::col_ok(c, d) ? Ks[j * HD + d] : 0.f;
LISA_ATT_UNROLL
          for (int i = 0; i < R; ++i) a[i][jj] += qr[i][c] * kv;
        }
      }
LISA_ATT_UNROLL
      for (int i = 0; i < R; ++i) {
        float unused;
        s[i][cc] = attn_detail::soft_cap(attn_detail::group_reduce_scatter<TC>(a[i], tc),
                                         softcap, &unused);
      }
    }

LISA_ATT_UNROLL
    for (int i = 0; i < R; ++i) {
      const int t = q0 + tr + TR * i;
      float mt = kNegBig;
LISA_ATT_UNROLL
      for (int cc = 0; cc < NC; ++cc) {
        const int key = k0 + cc * TC + tc;
        const bool ok = key < SEQ && (!CAUSAL || key <= t) && attn_detail::in_window(t, key, window);
        s[i][cc] = ok ? s[i][cc] : kNegBig;
        mt = fmaxf(mt, s[i][cc]);
      }
      mt = attn_detail::group_max<TC>(mt);  // exact: the same on every lane
      const float mn = fmaxf(m[i], mt);
      const float alpha = exp2f(m[i] - mn);
      m[i] = mn;
      l[i] *= alpha;  // this lane's share of the row sum
LISA_ATT_UNROLL
      for (int c = 0; c < D; ++c) o[i][c] *= alpha;
LISA_ATT_UNROLL
      for (int cc = 0; cc < NC; ++cc) {
        const float p = s[i][cc] == kNegBig ? 0.f : exp2f(s[i][cc] - mn);
        s[i][cc] = p;
        l[i] += p;
      }
    }

    // o += p v: p of key j is broadcast from the lane that owns it.
    const int gbase = (threadIdx.x & 31) & ~(TC - 1);
LISA_ATT_UNROLL
    for (int j = 0; j < BK; ++j) {
      float pj[R];
LISA_ATT_UNROLL
      for (int i = 0; i < R; ++i)
        pj[i] = __shfl_sync(0xffffffffu, s[i][j / TC], gbase + j % TC);
LISA_ATT_UNROLL
      for (int c = 0; c < D; ++c) {
        const int d = tc + TC * c;
        const float vv = C::col_ok(c, d) ? Vs[j * HD + d] : 0.f;
LISA_ATT_UNROLL
        for (int i = 0; i < R; ++i) o[i][c] += pj[i] * vv;
      }
    }
  }

LISA_ATT_UNROLL
  for (int i = 0; i < R; ++i) l[i] = attn_detail::group_sum<TC>(l[i]);
LISA_ATT_UNROLL
  for (int i = 0; i < R; ++i) {
    const int t = q0 + tr + TR * i;
    if (t < SEQ) {
      const float inv = 1.f / l[i];
LISA_ATT_UNROLL
      for (int c = 0; c < D; ++c) {
        const int d = tc + TC * c;
        if (C::col_ok(c, d)) y[(row0 + t) * ys + h * HD + d] = from_f32<T>(o[i][c] * inv);
      }
      if (tc == 0) lse[(row0 + t) * HEADS + h] = (m[i] + log2f(l[i])) * attn_detail::kLn2;
    }
  }
}

// ---------------------------------------------------------------------------
// Backward, kernel 1 of 2: dq, and dsum = rowsum(dy * y) for kernel 2.
// One block: BQ query rows of one (batch, query head); loops over key tiles of
// BK rows, recomputing p = exp(scale q.k - lse), ds = p (dy.v - dsum), and
// accumulates dq = scale sum_j ds_j k_j in registers (no atomics).
//
// Constraints: valid when BQ % (THREADS/TC) == 0 and 2*BK*HD*4 <= 48 KiB; live registers
// about R*(3*ceil(HD/TC)) + ceil(HD/TC) with R = BQ*TC/THREADS; BK only sets the smem
// tile.
//
// launch: grid (ceil(SEQ/BQ), HEADS, B), block (THREADS), dynamic smem: 0 bytes
// tunables: BQ {16,32,64,128} default 32; BK {16,32,64} default 32; THREADS {64,128,256} default 128; TC {4,8,16} default 8
// scratch: dsum, float [B*SEQ*HEADS] (written here, read by attention_backward_dkdv)
template <typename T, int HD, int HEADS, int KV_HEADS, int SEQ, bool CAUSAL, int BQ = 32,
          int BK = LISA_ATTENTION_DQ_BK, int THREADS = 128, int TC = 8>
__device__ __forceinline__ void attention_backward_dq(
    T *__restrict__ dq, int dqs, float *__restrict__ dsum, const T *__restrict__ dy, int dys,
    const T *__restrict__ y, int ys, const T *__restrict__ q, int qs, const T *__restrict__ k,
    int ks, const T *__restrict__ v, int vs, const float *__restrict__ lse, int B,
    float scale_arg = 0.f, float softcap = 0.f, int window = 0) {
  using C = attn_detail::cfg<HD, HEADS, KV_HEADS, SEQ, BQ, THREADS, TC>;
  constexpr int TR = C::TR, R = C::R, D = C::D;
  static_assert(2 * BK * HD * 4 <= 48 * 1024, "K/V tiles exceed 48 KiB static smem: lower BK");
  __shared__ float Ks[BK * HD];
  __shared__ float Vs[BK * HD];

  if (blockDim.x != THREADS) __trap();  // the launch must match the template
  const int b = blockIdx.z;
  if (b >= B) return;
  const int qt = (int)gridDim.x - 1 - (int)blockIdx.x;
  const int h = blockIdx.y, g = h / C::GROUP;
  const int q0 = qt * BQ;
  const int tc = threadIdx.x % TC, tr = threadIdx.x / TC;
  const float scale = attn_detail::score_scale<HD>(scale_arg);
  const float sl2 = attn_detail::kLog2e * scale;
  const long long row0 = (long long)b * SEQ;
  const T *kb = k + row0 * ks + g * HD, *vb = v + row0 * vs + g * HD;

  float qr[R][D], dyr[R][D], acc[R][D], l2[R], Dr[R];
LISA_ATT_UNROLL
  for (int i = 0; i < R; ++i) {
    const int t = q0 + tr + TR * i;
    const bool rok = t < SEQ;
    const long long n = row0 + t;
    float part = 0.f;
LISA_ATT_UNROLL
    for (int c = 0; c < D; ++c) {
      const int d = tc + TC * c;
      const bool ok = rok && C::col_ok(c, d);
      qr[i][c] = ok ? to_f32(q[n * qs + h * HD + d]) * sl2 : 0.f;
      dyr[i][c] = ok ? to_f32(dy[n * dys + h * HD + d]) : 0.f;
      const float yv = ok ? to_f32(y[n * ys + h * HD + d]) : 0.f;
      part += dyr[i][c] * yv;
      acc[i][c] = 0.f;
    }
    Dr[i] = attn_detail::group_sum<TC>(part);
    l2[i] = rok ? lse[n * HEADS + h] * attn_detail::kLog2e : 0.f;
    if (rok && tc == 0) dsum[n * HEADS + h] = Dr[i];
  }

  const int nkeys = CAUSAL ? attn_detail::imin(SEQ, q0 + BQ) : SEQ;
  for (int k0 = 0; k0 < nkeys; k0 += BK) {
    __syncthreads();
    attn_detail::stage_rows<T, HD, BK, THREADS>(Ks, kb, ks, k0, SEQ);
    attn_detail::stage_rows<T, HD, BK, THREADS>(Vs, vb, vs, k0, SEQ);
    __syncthreads();

    // One key at a time: p needs no row maximum (lse is known), so nothing of
    // size BK is kept; k_j and v_j are read once each into registers.
LISA_ATT_UNROLL_2
    for (int j = 0; j < BK; ++j) {
      float kj[D], sp[R], dp[R];
LISA_ATT_UNROLL
      for (int i = 0; i < R; ++i) sp[i] = dp[i] = 0.f;
LISA_ATT_UNROLL
      for (int c = 0; c < D; ++c) {
        const int d = tc + TC * c;
        const bool cok = C::col_ok(c, d);
        kj[c] = cok ? Ks[j * HD + d] : 0.f;
        const float vv = cok ? Vs[j * HD + d] : 0.f;
LISA_ATT_UNROLL
        for (int i = 0; i < R; ++i) {
          sp[i] += qr[i][c] * kj[c];
          dp[i] += dyr[i][c] * vv;
        }
      }
      const int key = k0 + j;
LISA_ATT_UNROLL
      for (int i = 0; i < R; ++i) {
        const int t = q0 + tr + TR * i;
        const bool ok = t < SEQ && key < SEQ && (!CAUSAL || key <= t) &&
                        attn_detail::in_window(t, key, window);
        float dcap;
        const float x = attn_detail::soft_cap(attn_detail::group_sum<TC>(sp[i]), softcap, &dcap);
        const float pd = attn_detail::group_sum<TC>(dp[i]);
        const float ds = ok ? exp2f(x - l2[i]) * (pd - Dr[i]) * dcap : 0.f;
LISA_ATT_UNROLL
        for (int c = 0; c < D; ++c) acc[i][c] += ds * kj[c];
      }
    }
  }

LISA_ATT_UNROLL
  for (int i = 0; i < R; ++i) {
    const int t = q0 + tr + TR * i;
    if (t < SEQ) {
LISA_ATT_UNROLL
      for (int c = 0; c < D; ++c) {
        const int d = tc + TC * c;
        if (C::col_ok(c, d))
          dq[(row0 + t) * dqs + h * HD + d] = from_f32<T>(acc[i][c] * scale);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Backward, kernel 2 of 2 (after attention_backward_dq): dk and dv.
// One block: BKV key rows of one (batch, kv head); loops over the group's
// query heads in order, and for each over query tiles of BQ rows (from the
// block's first key when CAUSAL), recomputing p and ds from q, k, lse, dsum:
//   dv_j = sum p_ij dy_i,  dk_j = scale sum ds_ij q_i.
// Each dk/dv element is owned by one thread: deterministic, no atomics.
//
// Constraints: valid when BKV % (THREADS/TC) == 0; static smem (2*BQ*HD + 2*BQ)*4 bytes
// <= 48 KiB; live registers about R*(4*ceil(HD/TC)) + 2*ceil(HD/TC) with R =
// BKV*TC/THREADS.
//
// launch: grid (ceil(SEQ/BKV), KV_HEADS, B), block (THREADS), dynamic smem: 0 bytes
// tunables: BKV {16,32,64,128} default 32; BQ {16,32,64} default 16; THREADS {64,128,256} default 128; TC {4,8,16} default 8
// scratch: reads dsum, float [B*SEQ*HEADS], as written by attention_backward_dq
template <typename T, int HD, int HEADS, int KV_HEADS, int SEQ, bool CAUSAL, int BKV = 32,
          int BQ = LISA_ATTENTION_DKDV_BQ, int THREADS = 128, int TC = 8>
__device__ __forceinline__ void attention_backward_dkdv(
    T *__restrict__ dk, int dks, T *__restrict__ dv, int dvs, const T *__restrict__ dy, int dys,
    const T *__restrict__ q, int qs, const T *__restrict__ k, int ks, const T *__restrict__ v,
    int vs, const float *__restrict__ lse, const float *__restrict__ dsum, int B,
    float scale_arg = 0.f, float softcap = 0.f, int window = 0) {
  using C = attn_detail::cfg<HD, HEADS, KV_HEADS, SEQ, BKV, THREADS, TC>;
  constexpr int TR = C::TR, R = C::R, D = C::D;
  static_assert((2 * BQ * HD + 2 * BQ) * 4 <= 48 * 1024,
                "q/dy tiles exceed 48 KiB static smem: lower BQ");
  __shared__ float Qs[BQ * HD];
  __shared__ float dYs[BQ * HD];
  __shared__ float Ls[BQ];  // lse * log2(e)
  __shared__ float Ds[BQ];  // dsum

  if (blockDim.x != THREADS) __trap();  // the launch must match the template
  const int b = blockIdx.z;
  if (b >= B) return;
  const int kt = blockIdx.x;  // causal: early keys see the most queries: they start first
  const int g = blockIdx.y;
  const int k0 = kt * BKV;
  const int tc = threadIdx.x % TC, tr = threadIdx.x / TC;
  const float scale = attn_detail::score_scale<HD>(scale_arg);
  const float sl2 = attn_detail::kLog2e * scale;
  const long long row0 = (long long)b * SEQ;

  float kr[R][D], vr[R][D], dka[R][D], dva[R][D];
LISA_ATT_UNROLL
  for (int i = 0; i < R; ++i) {
    const int key = k0 + tr + TR * i;
LISA_ATT_UNROLL
    for (int c = 0; c < D; ++c) {
      const int d = tc + TC * c;
      const bool ok = key < SEQ && C::col_ok(c, d);
      kr[i][c] = ok ? to_f32(k[(row0 + key) * ks + g * HD + d]) * sl2 : 0.f;
      vr[i][c] = ok ? to_f32(v[(row0 + key) * vs + g * HD + d]) : 0.f;
      dka[i][c] = 0.f;
      dva[i][c] = 0.f;
    }
  }

  const int tstart = CAUSAL ? k0 : 0;
  for (int hh = 0; hh < C::GROUP; ++hh) {
    const int h = g * C::GROUP + hh;
    const T *qb = q + row0 * qs + h * HD, *dyb = dy + row0 * dys + h * HD;
    for (int t0 = tstart; t0 < SEQ; t0 += BQ) {
      __syncthreads();
      attn_detail::stage_rows<T, HD, BQ, THREADS>(Qs, qb, qs, t0, SEQ);
      attn_detail::stage_rows<T, HD, BQ, THREADS>(dYs, dyb, dys, t0, SEQ);
      for (int j = threadIdx.x; j < BQ; j += THREADS) {
        const bool ok = t0 + j < SEQ;
        const long long n = row0 + t0 + j;
        Ls[j] = ok ? lse[n * HEADS + h] * attn_detail::kLog2e : 0.f;
        Ds[j] = ok ? dsum[n * HEADS + h] : 0.f;
      }
      __syncthreads();

      // One query row at a time (p needs no row maximum): q_j and dy_j are
      // read once each into registers and feed all four products.
LISA_ATT_UNROLL_2
      for (int j = 0; j < BQ; ++j) {
        float qj[D], gj[D], sp[R], dp[R];
LISA_ATT_UNROLL
        for (int i = 0; i < R; ++i) sp[i] = dp[i] = 0.f;
LISA_ATT_UNROLL
        for (int c = 0; c < D; ++c) {
          const int d = tc + TC * c;
          const bool cok = C::col_ok(c, d);
          qj[c] = cok ? Qs[j * HD + d] : 0.f;
          gj[c] = cok ? dYs[j * HD + d] : 0.f;
LISA_ATT_UNROLL
          for (int i = 0; i < R; ++i) {
            sp[i] += kr[i][c] * qj[c];
            dp[i] += vr[i][c] * gj[c];
          }
        }
        const int t = t0 + j;
        const float lj = Ls[j], dj = Ds[j];
LISA_ATT_UNROLL
        for (int i = 0; i < R; ++i) {
          const int key = k0 + tr + TR * i;
          const bool ok = t < SEQ && key < SEQ && (!CAUSAL || key <= t) &&
                          attn_detail::in_window(t, key, window);
          float dcap;
          const float x =
              attn_detail::soft_cap(attn_detail::group_sum<TC>(sp[i]), softcap, &dcap);
          const float pd = attn_detail::group_sum<TC>(dp[i]);
          const float p = ok ? exp2f(x - lj) : 0.f;
          const float ds = p * (pd - dj) * dcap;
LISA_ATT_UNROLL
          for (int c = 0; c < D; ++c) {
            dva[i][c] += p * gj[c];
            dka[i][c] += ds * qj[c];
          }
        }
      }
    }
  }

LISA_ATT_UNROLL
  for (int i = 0; i < R; ++i) {
    const int key = k0 + tr + TR * i;
    if (key < SEQ) {
LISA_ATT_UNROLL
      for (int c = 0; c < D; ++c) {
        const int d = tc + TC * c;
        if (C::col_ok(c, d)) {
          dk[(row0 + key) * dks + g * HD + d] = from_f32<T>(dka[i][c] * scale);
          dv[(row0 + key) * dvs + g * HD + d] = from_f32<T>(dva[i][c]);
        }
      }
    }
  }
}

}  // namespace lisa
