// launch.cuh: the launch facts the templates and the generator share, written
// once, in the common subset of C and C++: the templates use them as their
// defaults and in their static_asserts (constexpr, host and device), and
// codegen/gen (C) includes this file to size the launches it plans. What the
// generator may tune lives in tuning.lua; these are the rules around it.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define LISA_LAUNCH_FN __host__ __device__ constexpr inline
#elif defined(__cplusplus)
#define LISA_LAUNCH_FN constexpr inline
#else
#define LISA_LAUNCH_FN static inline
#endif

// Static shared memory one block may declare (more needs a dynamic opt-in).
enum { LISA_MAX_STATIC_SMEM = 48 * 1024 };

// The widest vector of at most 16 bytes whose element count divides n.
LISA_LAUNCH_FN int lisa_vec_width(int elem_bytes, long long n) {
  int v = 16 / elem_bytes;
  while (v > 1 && n % v != 0) v /= 2;
  return v;
}

// Norm row kernels: rows of at most 128 vectors on one warp (4 rows a block);
// wider rows on enough threads for at most 512 a row, each with the same
// number of vectors (C = 768 float: 192 x 1 float4; C = 8192 bf16: 512 x 2).
LISA_LAUNCH_FN int lisa_norm_threads(int elem_bytes, long long C) {
  const long long nv = C / lisa_vec_width(elem_bytes, C);
  if (nv <= 128) return 32;
  const long long vpt = (nv + 511) / 512, t = (nv + vpt - 1) / vpt;
  return (int)((t + 31) / 32 * 32);
}
LISA_LAUNCH_FN int lisa_norm_rows(int threads) { return threads == 32 ? 4 : 1; }

// The generator's dX kernel: bf16 rows of 65..128 vectors on one warp spill
// (C = 768: 8 bytes, sm_90), so two warps a row halve what each thread holds.
LISA_LAUNCH_FN int lisa_norm_bwd_x_threads(int elem_bytes, long long C) {
  const int t = lisa_norm_threads(elem_bytes, C);
  return t == 32 && elem_bytes == 2 && C / lisa_vec_width(2, C) > 64 ? 64 : t;
}
LISA_LAUNCH_FN int lisa_norm_bwd_x_rows(int elem_bytes, long long C) {
  const int t = lisa_norm_bwd_x_threads(elem_bytes, C);
  return t == 64 && lisa_norm_threads(elem_bytes, C) == 32 ? 2 : lisa_norm_rows(t);
}

// Norm weight-gradient partial sums: BX threads across columns (each a
// vector wide), BY across rows, BX * BY = 256; `parts` row blocks, about two
// blocks per multiprocessor over the gx column blocks, at most 1024.
LISA_LAUNCH_FN int lisa_norm_wb_bx(int elem_bytes, long long C) {
  const long long nv = C / lisa_vec_width(elem_bytes, C);
  return nv > 16 ? 32 : nv > 8 ? 16 : 8;
}
LISA_LAUNCH_FN int lisa_norm_wb_by(int elem_bytes, long long C) {
  return 256 / lisa_norm_wb_bx(elem_bytes, C) > 32 ? 32 : 256 / lisa_norm_wb_bx(elem_bytes, C);
}
LISA_LAUNCH_FN long long lisa_norm_wb_parts(long long N, int by, long long gx, int sms) {
  long long parts = (N + 4 * by - 1) / (4 * by), cap = 2 * sms / gx;
  if (cap < 1) cap = 1;
  if (parts > cap) parts = cap;
  return parts > 1024 ? 1024 : parts;
}

// elementwise.cuh's bias_grad: row parts of at least 16 rows, at most two
// blocks per multiprocessor over the gx column blocks, at most 1024.
LISA_LAUNCH_FN long long lisa_bias_grad_parts(long long N, long long gx, int sms) {
  long long parts = (N + 15) / 16, cap = 2 * sms / gx;
  if (cap < 1) cap = 1;
  if (parts > cap) parts = cap;
  return parts > 1024 ? 1024 : parts;
}

// attention.cuh's tiles the generator does not tune: the keys per step of
// the forward (BK) and dq (BK), the queries per step of dkdv (BQ).
enum { LISA_ATTENTION_FWD_BK = 16, LISA_ATTENTION_DQ_BK = 32, LISA_ATTENTION_DKDV_BQ = 16 };
// Such a tile at head size hd: halved until its two staged tiles of hd
// floats (and dkdv's two per-row floats) fit 48 KiB of static shared memory
// (Gemma's head size 256 takes dq's BK from 32 to 16).
LISA_LAUNCH_FN int lisa_attention_tile(int tile, int hd) {
  while (tile > 1 && (2 * tile * hd + 2 * tile) * 4 > 48 * 1024) tile /= 2;
  return tile;
}
// attention_backward_dkdv's key rows a block (BKV), halved while its live
// registers, about R*4*D + 2*D with D = ceil(hd/8) and R = BKV*8/threads
// rows a lane group, pass 200 (at head size 256, BKV 32 spills; 16 does not).
LISA_LAUNCH_FN int lisa_attention_dkdv_bkv(int bkv, int threads, int hd) {
  const int d = (hd + 7) / 8;
  while (bkv * 8 / threads > 1 && (bkv * 8 / threads) * 4 * d + 2 * d > 200) bkv /= 2;
  return bkv;
}

// attention_mma.cuh's static shared memory for a tile of `tile` rows (keys
// for the forward and dq, queries for dkdv) at head size hd: two tiles
// staged by row as bf16 pairs (hd/2 + 4 words a row), each double-buffered
// (cp.async), and dkdv's per-row lse and dsum.
enum { LISA_ATT_MMA_FWD, LISA_ATT_MMA_DQ, LISA_ATT_MMA_DKDV };
LISA_LAUNCH_FN int lisa_attention_mma_smem(int kernel, int hd, int tile) {
  const int rows = tile * (hd / 2 + 4); /* words of a tile staged by row */
  if (kernel == LISA_ATT_MMA_FWD || kernel == LISA_ATT_MMA_DQ) return 4 * 4 * rows;
  return 4 * (4 * rows + 2 * tile);
}
// The largest tile whose registers fit (ptxas, sm_90: at HD 128 dkdv spills
// with 32 query rows and fits in 254 registers with 16).
LISA_LAUNCH_FN int lisa_attention_mma_most_tile(int kernel, int hd) {
  return kernel == LISA_ATT_MMA_DKDV && hd > 64 ? 16 : 64;
}
