// attention_mma.cuh: attention.cuh's three kernels on tensor cores
// (mma.cuh: bf16 m16n8k16, fp32 accumulators), flash-attention 2 style.
// Same arguments, layout, outputs and references (cpu_attention_forward,
// cpu_attention_backward) as attention_forward, attention_backward_dq and
// attention_backward_dkdv; bf16 only, HD a multiple of 16. The generator
// takes them where those hold (tunable USE).
//
// A block: 16*WARPS query rows of one (batch, query head); warp w owns rows
// [16w, 16w+16). Its Q fragments stay in registers for the whole key loop.
// Per key tile of BK rows, staged once in shared memory for all warps as
// they lie in memory (K and V by row, bf16 pairs, 16-byte copies); ldmatrix
// makes B fragments of K, ldmatrix.trans of V (no transposed staging):
//   S = Q K^T        BK/8 x HD/16 mma, fp32 accumulators in registers
//   online softmax   in the log2 domain, row max and sum over the 4 lanes
//                    that hold a row (two shuffles)
//   O += P V         P's accumulators re-packed as A fragments (bf16), HD/8
//                    x BK/16 mma
// P is rounded to bf16 for P V while the row sum l adds the fp32 p, as
// FlashAttention does. Row strides of the tiles are padded (+4 words) so the
// 8 rows an ldmatrix phase reads hit 32 different banks.
//
// The backward (dq, then dk and dv) works the same way; see each kernel.
//
// Global memory: tiles come in with 16-byte loads (stage_rows), A fragments
// (Q, dY, K, V held in registers) with 32-bit loads; every row must start at
// a multiple of 8 bf16 (the generator checks). The tiles are double-buffered: tile i+1 is in flight (cp.async)
// while the warps work on tile i. Outputs leave through the tiles' shared
// memory in 16-byte stores where it holds 16 rows a warp (store_acc_wide).
#pragma once
#include "lisa_common.cuh"
#include "mma.cuh"

namespace lisa {

namespace attn_mma_detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// max and sum over the 4 lanes of a fragment row (lanes 4g..4g+3)
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// The bf16 pair at row r, columns c and c+1 (c even) of a slice with row
// stride st, in one 32-bit load (the generator's slices start rows at a
// multiple of 8 bf16); 0 past nrows.
__device__ __forceinline__ unsigned pair_at(const __nv_bfloat16 *base, long long st, int r, int c,
                                            int nrows) {
  if (r >= nrows) return 0u;
  return *reinterpret_cast<const unsigned *>(base + (long long)r * st + c);
}

// A fragments of rows r..r+15 of a [*, HD] slice; f[c] spans columns
// 16c..16c+15.
template <int HD>
__device__ __forceinline__ void load_a(unsigned (&f)[HD / 16][4], const __nv_bfloat16 *base,
                                       long long st, int r, int nrows) {
  const int g = (threadIdx.x & 31) / 4, t = threadIdx.x & 3;
LISA_MMA_UNROLL
  for (int c = 0; c < HD / 16; ++c) {
    f[c][0] = pair_at(base, st, r + g, 16 * c + 2 * t, nrows);
    f[c][1] = pair_at(base, st, r + g + 8, 16 * c + 2 * t, nrows);
    f[c][2] = pair_at(base, st, r + g, 16 * c + 8 + 2 * t, nrows);
    f[c][3] = pair_at(base, st, r + g + 8, 16 * c + 8 + 2 * t, nrows);
  }
}

// Rows [r0, r0+ROWS) of a [*, COLS] slice into smem as pairs along the row:
// dst[j*W + p] = columns 2p, 2p+1 of row r0+j (0 past nrows), by cp.async,
// 16 bytes (4 pairs) a copy: in flight until the caller's cp_async_wait and
// a barrier. The slice's rows must start 16-byte aligned (its base and its
// stride a multiple of 8; the generator checks; a GPU faults, and so does
// the emulator, where they are not), and dst is (W a multiple of 4, the
// array __align__(16)).
template <int ROWS, int COLS, int W, int THREADS>
__device__ __forceinline__ void stage_rows(unsigned *dst, const __nv_bfloat16 *src, long long st,
                                           int r0, int nrows) {
  static_assert(COLS % 8 == 0 && W % 4 == 0, "rows of 16-byte chunks");
  constexpr int CHUNKS = COLS / 8;  // 16-byte chunks a row
  for (int i = threadIdx.x; i < ROWS * CHUNKS; i += THREADS) {
    const int j = i / CHUNKS, q = i % CHUNKS;
    const bool in = r0 + j < nrows;
    cp_async_16(dst + j * W + 4 * q, in ? src + (long long)(r0 + j) * st + 8 * q : src, in);
  }
}

// acc[n] += A B for the NT 8-column tiles of B, K = 16*KC, where column
// 8n+j of B is row 8n+j of the smem tile (pairs along k, W words a row,
// rows 16-byte aligned). ldmatrix brings two k-chunks' B fragments at once:
// lane L points at row 8n + L%8, words 8c + 4*(L/8); an odd last chunk
// takes two 32-bit loads.
template <int KC, int NT, int W>
__device__ __forceinline__ void mma_tile(float (&acc)[NT][4], const unsigned (&a)[KC][4],
                                         const unsigned *tile) {
  static_assert(W % 4 == 0, "tile rows of whole 16-byte chunks");
  const int lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
LISA_MMA_UNROLL
  for (int n = 0; n < NT; ++n) {
LISA_MMA_UNROLL
    for (int c = 0; c + 1 < KC; c += 2) {
      unsigned r[4];
      ldmatrix_x4(r, tile + (8 * n + lane % 8) * W + 8 * c + 4 * (lane / 8));
      const unsigned b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
      mma_bf16_16816(acc[n], a[c], b0);
      mma_bf16_16816(acc[n], a[c + 1], b1);
    }
    if (KC % 2) {
      const unsigned *r = tile + (8 * n + g) * W + 8 * (KC - 1) + t;
      const unsigned b[2] = {r[0], r[4]};
      mma_bf16_16816(acc[n], a[KC - 1], b);
    }
  }
}

// acc[n] += P B where P [16 x 16*KC] is accumulators of 2*KC 8-column tiles
// (a product's output, such as the probabilities) rounded to bf16 A
// fragments, and B [16*KC x 8*NT] lies in smem as it does in memory: row k
// holds pairs along n (W words a row, rows 16-byte aligned; stage_rows).
// ldmatrix.trans turns it into B fragments, two n-tiles at once: lane L
// points at row 16c + 8*(L/8 % 2) + L%8, words 4*(n + L/16).
template <int KC, int NT, int W>
__device__ __forceinline__ void mma_acc_tile(float (&acc)[NT][4], const float (&p)[2 * KC][4],
                                             const unsigned *tile) {
  static_assert(NT % 2 == 0 && W % 4 == 0, "pairs of n-tiles, rows of 16-byte chunks");
  const int lane = threadIdx.x & 31;
LISA_MMA_UNROLL
  for (int c = 0; c < KC; ++c) {
    const unsigned a[4] = {pack_bf16x2(p[2 * c][0], p[2 * c][1]), pack_bf16x2(p[2 * c][2], p[2 * c][3]),
                           pack_bf16x2(p[2 * c + 1][0], p[2 * c + 1][1]),
                           pack_bf16x2(p[2 * c + 1][2], p[2 * c + 1][3])};
    const unsigned *rows = tile + (16 * c + 8 * ((lane / 8) % 2) + lane % 8) * W + 4 * (lane / 16);
LISA_MMA_UNROLL
    for (int n = 0; n < NT; n += 2) {
      unsigned r[4];
      ldmatrix_x4_trans(r, rows + 4 * n);
      const unsigned b0[2] = {r[0], r[1]}, b1[2] = {r[2], r[3]};
      mma_bf16_16816(acc[n], a, b0);
      mma_bf16_16816(acc[n + 1], a, b1);
    }
  }
}

template <int NT> __device__ __forceinline__ void zero(float (&acc)[NT][4]) {
LISA_MMA_UNROLL
  for (int n = 0; n < NT; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
}

// Rows r and r+8 (this lane's g) of accumulators [16 x 8*NT] times scale,
// stored as bf16 pairs into a slice with row stride st (rows past nrows
// skipped; rows start at a multiple of 8 bf16, as pair_at's).
template <int NT>
__device__ __forceinline__ void store_acc(__nv_bfloat16 *base, long long st, int r, int nrows,
                                          const float (&acc)[NT][4], float s_lo, float s_hi) {
  const int g = (threadIdx.x & 31) / 4, t = threadIdx.x & 3;
LISA_MMA_UNROLL
  for (int n = 0; n < NT; ++n) {
    const int d = 8 * n + 2 * t;  // even: a pair is one 32-bit store
    if (r + g < nrows)
      *reinterpret_cast<unsigned *>(base + (long long)(r + g) * st + d) =
          pack_bf16x2(acc[n][0] * s_lo, acc[n][1] * s_lo);
    if (r + g + 8 < nrows)
      *reinterpret_cast<unsigned *>(base + (long long)(r + g + 8) * st + d) =
          pack_bf16x2(acc[n][2] * s_hi, acc[n][3] * s_hi);
  }
}

// store_acc with 16-byte stores: the warp's 16 rows go through its own
// 16 x W-word region of shared memory (stage: W = HD/2 + 4 words a row, so
// the pair writes hit 32 banks), then each lane stores 16-byte chunks of
// whole rows. The region must be free (every warp past the tiles' last
// barrier) and 16-byte aligned; so must the slice's rows.
template <int NT>
__device__ __forceinline__ void store_acc_wide(__nv_bfloat16 *base, long long st, int r, int nrows,
                                               const float (&acc)[NT][4], float s_lo, float s_hi,
                                               unsigned *stage) {
  constexpr int W = 4 * NT + 4;
  const int lane = threadIdx.x & 31, g = lane / 4, t = lane & 3;
  __syncwarp();  // a previous call's chunks are read
LISA_MMA_UNROLL
  for (int n = 0; n < NT; ++n) {
    stage[g * W + 4 * n + t] = pack_bf16x2(acc[n][0] * s_lo, acc[n][1] * s_lo);
    stage[(g + 8) * W + 4 * n + t] = pack_bf16x2(acc[n][2] * s_hi, acc[n][3] * s_hi);
  }
  __syncwarp();
  for (int i = lane; i < 16 * NT; i += 32) {  // NT chunks of 8 bf16 a row
    const int j = i / NT, q = i % NT;
    if (r + j < nrows)
      vec_copy<__nv_bfloat16, 8>(base + (long long)(r + j) * st + 8 * q,
                                 reinterpret_cast<const __nv_bfloat16 *>(stage + j * W + 4 * q));
  }
}

// A warp's output rows, the wide way where the kernel's two freed tile
// buffers (tiles: TILE_ROWS rows of 4*NT + 4 words, contiguous) hold 16
// rows for each of its WARPS warps, else as 32-bit pairs.
template <int NT, int WARPS, int TILE_ROWS>
__device__ __forceinline__ void store_out(__nv_bfloat16 *base, long long st, int r, int nrows,
                                          const float (&acc)[NT][4], float s_lo, float s_hi,
                                          unsigned *tiles) {
  if constexpr (16 * WARPS <= TILE_ROWS)
    store_acc_wide<NT>(base, st, r, nrows, acc, s_lo, s_hi,
                       tiles + (threadIdx.x / 32) * 16 * (4 * NT + 4));
  else
    store_acc<NT>(base, st, r, nrows, acc, s_lo, s_hi);
}

}  // namespace attn_mma_detail

// ---------------------------------------------------------------------------
// Forward on tensor cores: y = softmax(scale q k^T [+ causal mask]) v, lse.
//
// Constraints: HD % 16 == 0; smem 4*4*BK*(HD/2+4) bytes (K and V, double-
// buffered) <= 48 KiB (HD 64, BK 64: 36 KiB; HD 128 needs BK 32: 34 KiB);
// registers about HD/4 (Q) + HD/2 (O) + BK/2 (S) per thread.
//
// launch: grid (ceil(SEQ/(16*WARPS)), HEADS, B), block (32*WARPS), dynamic smem: 0 bytes
// tunables: USE {0,1} default 1; WARPS {2,4,8} default 4; BK {32,64} default 64
// (USE 0: the generator keeps attention_forward)
// scratch: none
template <int HD, int HEADS, int KV_HEADS, int SEQ, bool CAUSAL, int WARPS = 4, int BK = 64>
__device__ __forceinline__ void attention_forward_mma(
    __nv_bfloat16 *__restrict__ y, int ys, float *__restrict__ lse,
    const __nv_bfloat16 *__restrict__ q, int qs, const __nv_bfloat16 *__restrict__ k, int ks,
    const __nv_bfloat16 *__restrict__ v, int vs, int B) {
  namespace D = attn_mma_detail;
  static_assert(HD % 16 == 0, "HD: a multiple of 16 for m16n8k16");
  static_assert(BK % 16 == 0, "BK: a multiple of 16");
  static_assert(HEADS % KV_HEADS == 0, "HEADS: a multiple of KV_HEADS");
  constexpr int BQ = 16 * WARPS, THREADS = 32 * WARPS;
  constexpr int KW = HD / 2 + 4;  // words per K or V row in smem (+4: ldmatrix conflict-free)
  constexpr int NT = BK / 8, KC = HD / 16, OT = HD / 8;
  // two of each: tile i+1 lands (cp.async) while tile i is in use
  __shared__ __align__(16) unsigned Ks[2][BK * KW];  // K[k0+j][2p..2p+1] at j*KW + p
  __shared__ __align__(16) unsigned Vs[2][BK * KW];  // V likewise (P V: ldmatrix.trans)
  static_assert(sizeof Ks + sizeof Vs == lisa_attention_mma_smem(LISA_ATT_MMA_FWD, HD, BK),
                "launch.cuh's shared memory formula");
  static_assert(sizeof Ks + sizeof Vs <= LISA_MAX_STATIC_SMEM, "K/V tiles exceed 48 KiB: lower BK");

  if (blockDim.x != THREADS) __trap();  // the launch must match the template
  const int b = blockIdx.z;
  if (b >= B) return;
  const int qt = (int)gridDim.x - 1 - (int)blockIdx.x;  // heavy causal tiles first
  const int h = blockIdx.y, gk = h / (HEADS / KV_HEADS);
  const int warp = threadIdx.x / 32, t = threadIdx.x % 4, g = (threadIdx.x % 32) / 4;
  const int r0 = qt * BQ + 16 * warp;  // the warp's first row
  const int rlo = r0 + g, rhi = r0 + g + 8;
  const float sl2 = D::kLog2e / sqrtf((float)HD);
  const long long row0 = (long long)b * SEQ;
  const __nv_bfloat16 *kb = k + row0 * ks + gk * HD, *vb = v + row0 * vs + gk * HD;

  unsigned qf[KC][4];
  D::load_a<HD>(qf, q + row0 * qs + h * HD, qs, r0, SEQ);
  float o[OT][4];
  D::zero(o);
  float m_lo = kNegBig, m_hi = kNegBig, l_lo = 0.f, l_hi = 0.f;  // l: this lane's share

  const int nkeys = CAUSAL ? (SEQ < qt * BQ + BQ ? SEQ : qt * BQ + BQ) : SEQ;
  const int ntiles = (nkeys + BK - 1) / BK;
  D::stage_rows<BK, HD, KW, THREADS>(Ks[0], kb, ks, 0, SEQ);
  D::stage_rows<BK, HD, KW, THREADS>(Vs[0], vb, vs, 0, SEQ);
  cp_async_commit();
  for (int i = 0; i < ntiles; ++i) {
    const int k0 = i * BK, cur = i & 1;
    if (i + 1 < ntiles) {  // into the buffer tile i-1 used (consumed: the barrier below)
      D::stage_rows<BK, HD, KW, THREADS>(Ks[cur ^ 1], kb, ks, k0 + BK, SEQ);
      D::stage_rows<BK, HD, KW, THREADS>(Vs[cur ^ 1], vb, vs, k0 + BK, SEQ);
    }
    cp_async_commit();  // an empty group at the end keeps the count uniform
    cp_async_wait<1>();  // tile i's copies have landed (this thread's)
    __syncthreads();     // and everyone's
    if (!(CAUSAL && k0 > r0 + 15)) {  // some row of this warp sees these keys
      float s[NT][4];
      D::zero(s);
      D::mma_tile<KC, NT, KW>(s, qf, Ks[cur]);
      float mt_lo = kNegBig, mt_hi = kNegBig;
LISA_MMA_UNROLL
      for (int n = 0; n < NT; ++n)
LISA_MMA_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + n * 8 + 2 * t + (e & 1), row = e < 2 ? rlo : rhi;
          const bool ok = key < SEQ && (!CAUSAL || key <= row);
          s[n][e] = ok ? s[n][e] * sl2 : kNegBig;
          if (e < 2) mt_lo = fmaxf(mt_lo, s[n][e]);
          else mt_hi = fmaxf(mt_hi, s[n][e]);
        }
      const float mn_lo = fmaxf(m_lo, D::quad_max(mt_lo)), mn_hi = fmaxf(m_hi, D::quad_max(mt_hi));
      const float a_lo = exp2f(m_lo - mn_lo), a_hi = exp2f(m_hi - mn_hi);
      m_lo = mn_lo, m_hi = mn_hi;
      l_lo *= a_lo, l_hi *= a_hi;
LISA_MMA_UNROLL
      for (int n = 0; n < OT; ++n) o[n][0] *= a_lo, o[n][1] *= a_lo, o[n][2] *= a_hi, o[n][3] *= a_hi;
LISA_MMA_UNROLL
      for (int n = 0; n < NT; ++n)
LISA_MMA_UNROLL
        for (int e = 0; e < 4; ++e) {
          const float mn = e < 2 ? mn_lo : mn_hi;
          const float p = s[n][e] == kNegBig ? 0.f : exp2f(s[n][e] - mn);
          s[n][e] = p;
          if (e < 2) l_lo += p;
          else l_hi += p;
        }
      D::mma_acc_tile<BK / 16, OT, KW>(o, s, Vs[cur]);
    }
    __syncthreads();  // tile i consumed: iteration i+1 stages tile i+2 into its buffer
  }

  l_lo = D::quad_sum(l_lo), l_hi = D::quad_sum(l_hi);
  // K's two buffers are free (the loop's last barrier)
  D::store_out<OT, WARPS, 2 * BK>(y + row0 * ys + h * HD, ys, r0, SEQ, o, 1.f / l_lo, 1.f / l_hi,
                                  &Ks[0][0]);
  if (t == 0 && rlo < SEQ) lse[(row0 + rlo) * HEADS + h] = (m_lo + log2f(l_lo)) * D::kLn2;
  if (t == 0 && rhi < SEQ) lse[(row0 + rhi) * HEADS + h] = (m_hi + log2f(l_hi)) * D::kLn2;
}

// ---------------------------------------------------------------------------
// Backward, kernel 1 of 2, on tensor cores: dq, and dsum = rowsum(dy * y)
// for kernel 2 (attention.cuh's attention_backward_dq, same arguments).
// A warp's 16 query rows of Q and dY stay in registers as A fragments; per
// key tile (K and V by row in smem; K also read transposed, by ldmatrix.trans):
//   S = Q K^T, dP = dY V^T            (mma)
//   P = exp2(S log2e/sqrt(HD) - lse log2e), dS = P (dP - dsum)
//   dQ += dS K                        (dS re-packed as A fragments)
// dq = dQ / sqrt(HD) written once at the end.
//
// Constraints: HD % 16 == 0; smem 4*4*BK*(HD/2+4) bytes (K and V, double-
// buffered) <= 48 KiB (HD 64, BK 64: 36 KiB; HD 128 needs BK 32: 34 KiB).
//
// launch: grid (ceil(SEQ/(16*WARPS)), HEADS, B), block (32*WARPS), dynamic smem: 0 bytes
// tunables: USE {0,1} default 1; WARPS {2,4,8} default 4; BK {32,64} default 64
// (USE 0: the generator keeps attention_backward_dq)
// scratch: dsum, float [B*SEQ*HEADS] (written here, read by attention_backward_dkdv_mma)
template <int HD, int HEADS, int KV_HEADS, int SEQ, bool CAUSAL, int WARPS = 4, int BK = 64>
__device__ __forceinline__ void attention_backward_dq_mma(
    __nv_bfloat16 *__restrict__ dq, int dqs, float *__restrict__ dsum,
    const __nv_bfloat16 *__restrict__ dy, int dys, const __nv_bfloat16 *__restrict__ y, int ys,
    const __nv_bfloat16 *__restrict__ q, int qs, const __nv_bfloat16 *__restrict__ k, int ks,
    const __nv_bfloat16 *__restrict__ v, int vs, const float *__restrict__ lse, int B) {
  namespace D = attn_mma_detail;
  static_assert(HD % 16 == 0 && BK % 16 == 0, "HD, BK: multiples of 16");
  static_assert(HEADS % KV_HEADS == 0, "HEADS: a multiple of KV_HEADS");
  constexpr int BQ = 16 * WARPS, THREADS = 32 * WARPS;
  constexpr int KW = HD / 2 + 4;
  constexpr int NT = BK / 8, KC = HD / 16, OT = HD / 8;
  // two of each: tile i+1 lands (cp.async) while tile i is in use
  __shared__ __align__(16) unsigned Ks[2][BK * KW];  // K by row (S = Q K^T; dQ = dS K: .trans)
  __shared__ __align__(16) unsigned Vs[2][BK * KW];  // V by row (dP = dY V^T)
  static_assert(sizeof Ks + sizeof Vs == lisa_attention_mma_smem(LISA_ATT_MMA_DQ, HD, BK),
                "launch.cuh's shared memory formula");
  static_assert(sizeof Ks + sizeof Vs <= LISA_MAX_STATIC_SMEM, "K/V tiles exceed 48 KiB: lower BK");

  if (blockDim.x != THREADS) __trap();
  const int b = blockIdx.z;
  if (b >= B) return;
  const int qt = (int)gridDim.x - 1 - (int)blockIdx.x;
  const int h = blockIdx.y, gk = h / (HEADS / KV_HEADS);
  const int warp = threadIdx.x / 32, t = threadIdx.x % 4, g = (threadIdx.x % 32) / 4;
  const int r0 = qt * BQ + 16 * warp, rlo = r0 + g, rhi = r0 + g + 8;
  const float scale = 1.f / sqrtf((float)HD), sl2 = D::kLog2e * scale;
  const long long row0 = (long long)b * SEQ;
  const __nv_bfloat16 *kb = k + row0 * ks + gk * HD, *vb = v + row0 * vs + gk * HD;

  unsigned qf[KC][4], dyf[KC][4];
  D::load_a<HD>(qf, q + row0 * qs + h * HD, qs, r0, SEQ);
  D::load_a<HD>(dyf, dy + row0 * dys + h * HD, dys, r0, SEQ);
  // dsum of rows rlo, rhi: this lane's columns of dY (its fragments) times y's
  const __nv_bfloat16 *yb = y + row0 * ys + h * HD;
  float ds_lo = 0.f, ds_hi = 0.f;
LISA_MMA_UNROLL
  for (int c = 0; c < KC; ++c)
LISA_MMA_UNROLL
    for (int half = 0; half < 2; ++half) {
      const int col = 16 * c + 8 * half + 2 * t;
      const unsigned ylo = D::pair_at(yb, ys, rlo, col, SEQ), yhi = D::pair_at(yb, ys, rhi, col, SEQ);
      const unsigned dlo = dyf[c][2 * half], dhi = dyf[c][2 * half + 1];
      ds_lo += bf16_lo(dlo) * bf16_lo(ylo) + bf16_hi(dlo) * bf16_hi(ylo);
      ds_hi += bf16_lo(dhi) * bf16_lo(yhi) + bf16_hi(dhi) * bf16_hi(yhi);
    }
  ds_lo = D::quad_sum(ds_lo), ds_hi = D::quad_sum(ds_hi);
  if (t == 0 && rlo < SEQ) dsum[(row0 + rlo) * HEADS + h] = ds_lo;
  if (t == 0 && rhi < SEQ) dsum[(row0 + rhi) * HEADS + h] = ds_hi;
  const float l2_lo = rlo < SEQ ? lse[(row0 + rlo) * HEADS + h] * D::kLog2e : 0.f;
  const float l2_hi = rhi < SEQ ? lse[(row0 + rhi) * HEADS + h] * D::kLog2e : 0.f;

  float acc[OT][4];
  D::zero(acc);
  const int nkeys = CAUSAL ? (SEQ < qt * BQ + BQ ? SEQ : qt * BQ + BQ) : SEQ;
  const int ntiles = (nkeys + BK - 1) / BK;
  D::stage_rows<BK, HD, KW, THREADS>(Ks[0], kb, ks, 0, SEQ);
  D::stage_rows<BK, HD, KW, THREADS>(Vs[0], vb, vs, 0, SEQ);
  cp_async_commit();
  for (int i = 0; i < ntiles; ++i) {  // as the forward's loop
    const int k0 = i * BK, cur = i & 1;
    if (i + 1 < ntiles) {
      D::stage_rows<BK, HD, KW, THREADS>(Ks[cur ^ 1], kb, ks, k0 + BK, SEQ);
      D::stage_rows<BK, HD, KW, THREADS>(Vs[cur ^ 1], vb, vs, k0 + BK, SEQ);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    if (!(CAUSAL && k0 > r0 + 15)) {
      float s[NT][4], dp[NT][4];
      D::zero(s);
      D::zero(dp);
      D::mma_tile<KC, NT, KW>(s, qf, Ks[cur]);
      D::mma_tile<KC, NT, KW>(dp, dyf, Vs[cur]);
LISA_MMA_UNROLL
      for (int n = 0; n < NT; ++n)
LISA_MMA_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + n * 8 + 2 * t + (e & 1), row = e < 2 ? rlo : rhi;
          const bool ok = key < SEQ && (!CAUSAL || key <= row);
          const float p = ok ? exp2f(s[n][e] * sl2 - (e < 2 ? l2_lo : l2_hi)) : 0.f;
          s[n][e] = p * (dp[n][e] - (e < 2 ? ds_lo : ds_hi));  // dS
        }
      D::mma_acc_tile<BK / 16, OT, KW>(acc, s, Ks[cur]);
    }
    __syncthreads();
  }
  D::store_out<OT, WARPS, 2 * BK>(dq + row0 * dqs + h * HD, dqs, r0, SEQ, acc, scale, scale,
                                  &Ks[0][0]);  // as the forward
}

// ---------------------------------------------------------------------------
// Backward, kernel 2 of 2, on tensor cores: dk and dv (attention.cuh's
// attention_backward_dkdv, same arguments). A block: 16*WARPS key rows of
// one (batch, kv head); a warp's 16 rows of K and V stay in registers as A
// fragments. For each query head of the group and each query tile of BQ
// rows (Q and dY by row in smem, also read transposed; lse and dsum):
//   S^T = K Q^T, dP^T = V dY^T          (mma)
//   P^T = exp2(S^T log2e/sqrt(HD) - lse log2e), dS^T = P^T (dP^T - dsum)
//   dV += P^T dY, dK += dS^T Q          (re-packed as A fragments)
// dk = dK / sqrt(HD) and dv written once. Deterministic: no atomics.
//
// Constraints: HD % 16 == 0; smem 4*(4*BQ*(HD/2+4) + 2*BQ) bytes <= 48 KiB
// (HD 64, BQ 64: 37 KiB; HD 128, BQ 32: 35 KiB).
//
// launch: grid (ceil(SEQ/(16*WARPS)), KV_HEADS, B), block (32*WARPS), dynamic smem: 0 bytes
// tunables: USE {0,1} default 1; WARPS {2,4,8} default 4; BQ {16,32,64} default 64
// (USE 0: the generator keeps attention_backward_dkdv)
// scratch: reads dsum, float [B*SEQ*HEADS], as written by attention_backward_dq_mma
template <int HD, int HEADS, int KV_HEADS, int SEQ, bool CAUSAL, int WARPS = 4, int BQ = 64>
__device__ __forceinline__ void attention_backward_dkdv_mma(
    __nv_bfloat16 *__restrict__ dk, int dks, __nv_bfloat16 *__restrict__ dv, int dvs,
    const __nv_bfloat16 *__restrict__ dy, int dys, const __nv_bfloat16 *__restrict__ q, int qs,
    const __nv_bfloat16 *__restrict__ k, int ks, const __nv_bfloat16 *__restrict__ v, int vs,
    const float *__restrict__ lse, const float *__restrict__ dsum, int B) {
  namespace D = attn_mma_detail;
  static_assert(HD % 16 == 0 && BQ % 16 == 0, "HD, BQ: multiples of 16");
  static_assert(HEADS % KV_HEADS == 0, "HEADS: a multiple of KV_HEADS");
  constexpr int BKV = 16 * WARPS, THREADS = 32 * WARPS, GROUP = HEADS / KV_HEADS;
  constexpr int RW = HD / 2 + 4;
  constexpr int NT = BQ / 8, KC = HD / 16, OT = HD / 8;
  // two of each: tile i+1 lands (cp.async) while tile i is in use
  __shared__ __align__(16) unsigned Qs[2][BQ * RW];   // Q by row (S^T = K Q^T; dK += dS^T Q: .trans)
  __shared__ __align__(16) unsigned dYs[2][BQ * RW];  // dY by row (dP^T = V dY^T; dV += P^T dY)
  __shared__ float Ls[BQ];           // lse * log2(e)
  __shared__ float Ds[BQ];           // dsum
  constexpr int smem = sizeof Qs + sizeof dYs + sizeof Ls + sizeof Ds;
  static_assert(smem == lisa_attention_mma_smem(LISA_ATT_MMA_DKDV, HD, BQ),
                "launch.cuh's shared memory formula");
  static_assert(smem <= LISA_MAX_STATIC_SMEM, "Q/dY tiles exceed 48 KiB: lower BQ");

  if (blockDim.x != THREADS) __trap();
  const int b = blockIdx.z;
  if (b >= B) return;
  const int kt = blockIdx.x;  // causal: the first keys see the most queries
  const int gk = blockIdx.y;
  const int warp = threadIdx.x / 32, t = threadIdx.x % 4, g = (threadIdx.x % 32) / 4;
  const int c0 = kt * BKV + 16 * warp, klo = c0 + g, khi = c0 + g + 8;
  const float scale = 1.f / sqrtf((float)HD), sl2 = D::kLog2e * scale;
  const long long row0 = (long long)b * SEQ;

  unsigned kf[KC][4], vf[KC][4];
  D::load_a<HD>(kf, k + row0 * ks + gk * HD, ks, c0, SEQ);
  D::load_a<HD>(vf, v + row0 * vs + gk * HD, vs, c0, SEQ);
  float dka[OT][4], dva[OT][4];
  D::zero(dka);
  D::zero(dva);

  // the tiles of every query head of the group, in turn: tile i is head
  // gk*GROUP + i / per_head, query rows qstart + (i % per_head) * BQ
  const int qstart = CAUSAL ? kt * BKV / BQ * BQ : 0;
  const int per_head = (SEQ - qstart + BQ - 1) / BQ, ntiles = GROUP * per_head;
  auto head_of = [&](int i) { return gk * GROUP + i / per_head; };
  auto q0_of = [&](int i) { return qstart + (i % per_head) * BQ; };
  auto stage = [&](int i, int buf) {
    const int h = head_of(i), q0 = q0_of(i);
    D::stage_rows<BQ, HD, RW, THREADS>(Qs[buf], q + row0 * qs + h * HD, qs, q0, SEQ);
    D::stage_rows<BQ, HD, RW, THREADS>(dYs[buf], dy + row0 * dys + h * HD, dys, q0, SEQ);
  };
  stage(0, 0);
  cp_async_commit();
  for (int i = 0; i < ntiles; ++i) {  // as the forward's loop
    const int h = head_of(i), q0 = q0_of(i), cur = i & 1;
    if (i + 1 < ntiles) stage(i + 1, cur ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    for (int j = threadIdx.x; j < BQ; j += THREADS) {  // tile i-1's were read before the barrier
      const bool in = q0 + j < SEQ;
      Ls[j] = in ? lse[(row0 + q0 + j) * HEADS + h] * D::kLog2e : 0.f;
      Ds[j] = in ? dsum[(row0 + q0 + j) * HEADS + h] : 0.f;
    }
    __syncthreads();
    if (!(CAUSAL && q0 + BQ - 1 < c0)) {  // some query at or after this warp's keys
      float st[NT][4], dpt[NT][4];
      D::zero(st);
      D::zero(dpt);
      D::mma_tile<KC, NT, RW>(st, kf, Qs[cur]);
      D::mma_tile<KC, NT, RW>(dpt, vf, dYs[cur]);
LISA_MMA_UNROLL
      for (int n = 0; n < NT; ++n)
LISA_MMA_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int j = n * 8 + 2 * t + (e & 1), query = q0 + j, key = e < 2 ? klo : khi;
          const bool ok = query < SEQ && key < SEQ && (!CAUSAL || key <= query);
          const float p = ok ? exp2f(st[n][e] * sl2 - Ls[j]) : 0.f;
          st[n][e] = p;
          dpt[n][e] = p * (dpt[n][e] - Ds[j]);  // dS^T
        }
      D::mma_acc_tile<BQ / 16, OT, RW>(dva, st, dYs[cur]);
      D::mma_acc_tile<BQ / 16, OT, RW>(dka, dpt, Qs[cur]);
    }
    __syncthreads();
  }
  // as the forward, in Q's buffers (store_acc_wide waits for the warp's
  // dk chunks before the dv pairs overwrite them)
  D::store_out<OT, WARPS, 2 * BQ>(dk + row0 * dks + gk * HD, dks, c0, SEQ, dka, scale, scale,
                                  &Qs[0][0]);
  D::store_out<OT, WARPS, 2 * BQ>(dv + row0 * dvs + gk * HD, dvs, c0, SEQ, dva, 1.f, 1.f,
                                  &Qs[0][0]);
}

}  // namespace lisa
