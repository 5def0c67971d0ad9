// attention_decode.cuh: attention over a KV cache, for generation. The rows
// of a call are new positions pos0 .. pos0 + N - 1 of one sequence (a chunk
// of the prompt, or one token); their keys and values join the cache first
// (kv_cache_append), then each row attends causally over every cached
// position up to its own (attention_decode).
// Reference: cpu_attention_cached (runtime/cpu/cpu_ops.c), which the
// executor's decoding path (exec_forward_cached) runs.
//
// The cache is one buffer [CTX, 2*KVW] per block, KVW = KV_HEADS*HD: row t
// holds position t's keys in columns [0, KVW) and its values in [KVW, 2*KVW)
// (one buffer keeps a block's cache in one allocation; a row's keys and values
// are read together). Query head h reads kv head h / (HEADS / KV_HEADS).
//
// Scores as attention.cuh: s = scale q.k (scale 0: 1/sqrt(HD)), soft-capped to
// softcap * tanh(s / softcap) when softcap > 0; window > 0: query t sees keys
// t - window < key <= t.
//
// One block per (row, query head). The keys go by in tiles of THREADS: thread
// i scores key k0 + i (a dot product over HD from the cache row), the block
// takes the tile's maximum and sum (block_max, block_sum: a fixed order), and
// the online softmax rescales the running output, which the threads hold split
// by column (d = tid, tid + THREADS, ...), each adding p_j v_j[d] over the
// tile's keys in key order. Deterministic: no atomics, one order per launch
// shape. Decoding reads the whole cache once per head group and token; the
// arithmetic is small beside it, so this is simple rather than tiled.
#pragma once
#include "lisa_common.cuh"

namespace lisa {

// cache rows pos0 .. pos0 + N - 1 = [k | v] of the N new rows.
// launch: grid (ceil(N*2*KVW/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Any grid works (grid-stride loop).
template <typename T, int KVW, int THREADS>
__device__ void kv_cache_append(T *cache, const T *k, int ks, const T *v, int vs, int N,
                                int pos0) {
  const long long total = (long long)N * 2 * KVW;
  for (long long e = (long long)blockIdx.x * THREADS + threadIdx.x; e < total;
       e += (long long)gridDim.x * THREADS) {
    const int r = (int)(e / (2 * KVW)), c = (int)(e % (2 * KVW));
    const T val = c < KVW ? k[(long long)r * ks + c] : v[(long long)r * vs + c - KVW];
    cache[(long long)(pos0 + r) * 2 * KVW + c] = val;
  }
}

// y rows [0, N) = attention of q's rows (positions pos0 + row) over the cache.
// launch: grid (N, HEADS), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {64,128,256} default 128
// scratch: none
template <typename T, int HD, int HEADS, int KV_HEADS, int THREADS>
__device__ void attention_decode(T *__restrict__ y, int ys, const T *__restrict__ q, int qs,
                                 const T *__restrict__ cache, int N, int pos0,
                                 float scale = 0.f, float softcap = 0.f, int window = 0) {
  static_assert(HEADS % KV_HEADS == 0, "HEADS: a multiple of KV_HEADS");
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "THREADS: a multiple of 32");
  constexpr int KVW = KV_HEADS * HD, D = (HD + THREADS - 1) / THREADS;
  __shared__ float qsh[HD];
  __shared__ float p[THREADS];
  if (blockDim.x != THREADS) __trap();  // the launch must match the template
  const int row = blockIdx.x, h = blockIdx.y, g = h / (HEADS / KV_HEADS), tid = threadIdx.x;
  if (row >= N) return;
  const int t = pos0 + row;
  const int first = window > 0 && t - window + 1 > 0 ? t - window + 1 : 0;
  const float sc = scale > 0.f ? scale : 1.f / sqrtf((float)HD);
  for (int d = tid; d < HD; d += THREADS) qsh[d] = to_f32(q[(long long)row * qs + h * HD + d]);
  const T *kc = cache + g * HD, *vc = cache + KVW + g * HD;

  float o[D], m = kNegBig, l = 0.f;
#pragma unroll
  for (int i = 0; i < D; i++) o[i] = 0.f;
  for (int k0 = first; k0 <= t; k0 += THREADS) {
    __syncthreads();  // qsh written (first tile); p consumed (the others)
    const int j = k0 + tid;
    float s = kNegBig;
    if (j <= t) {
      const T *kr = kc + (long long)j * 2 * KVW;
      float dot = 0.f;
      for (int d = 0; d < HD; d++) dot += qsh[d] * to_f32(kr[d]);
      s = sc * dot;
      if (softcap > 0.f) s = softcap * tanhf(s / softcap);
    }
    const float mn = fmaxf(m, block_max<THREADS>(s));
    const float pj = j <= t ? expf(s - mn) : 0.f;
    const float alpha = expf(m - mn);
    l = l * alpha + block_sum<THREADS>(pj);
    m = mn;
    p[tid] = pj;
    __syncthreads();  // the tile's p visible to every thread
    const int nk = t - k0 + 1 < THREADS ? t - k0 + 1 : THREADS;
#pragma unroll
    for (int i = 0; i < D; i++) {
      const int d = tid + i * THREADS;
      if (HD % THREADS == 0 || d < HD) {
        float acc = o[i] * alpha;
        for (int jj = 0; jj < nk; jj++)
          acc += p[jj] * to_f32(vc[(long long)(k0 + jj) * 2 * KVW + d]);
        o[i] = acc;
      }
    }
  }
#pragma unroll
  for (int i = 0; i < D; i++) {
    const int d = tid + i * THREADS;
    if (d < HD) y[(long long)row * ys + h * HD + d] = from_f32<T>(o[i] / l);
  }
}

}  // namespace lisa
