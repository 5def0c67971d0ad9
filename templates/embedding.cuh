// embedding.cuh: token embedding, learned position embedding, and the two
// fused (GPT-2's embed section: embedding + position_embedding + add), with
// their backward passes into the gradient tables (float, or bf16 for
// bf16-true training: G, deduced from the pointer). Reference: cpu_embedding_*,
// cpu_pos_embedding_* and cpu_add in runtime/cpu/cpu_ops.c.
//
//   forward:  y[n] = wte[ids[n]]                 embedding_forward
//             y[n] = wpe[n % seq]                pos_embedding_forward
//             y[n] = wte[ids[n]] + wpe[n % seq]  embedding_pos_forward
//             (the add in fp32, rounded once to T)
//   backward: dwte[ids[n]] += dy[n]              embedding_backward
//             dwpe[t] += sum_b dy[b*seq + t]     pos_embedding_backward
//             both in one launch                 embedding_pos_backward
//
// Determinism: no float atomics anywhere. Every element of dwte / dwpe is
// read, summed (in fp32 registers) and written by exactly one thread, which
// adds the dy rows in increasing n starting from the table's old value: the
// same order as the CPU reference, so fp32 results are bit-identical to it;
// a bf16 table is rounded once, on the store.
//  - dwpe: thread (t, c) owns dwpe[t, c] and walks n = t, t+seq, ... .
//  - dwte: block n takes token n. If an earlier token has the same id it exits
//    (that token's block owns the row); otherwise it owns row ids[n]: it scans
//    ids[n..N) THREADS at a time (a warp ballot per chunk lists the matches in
//    order) and adds each matching dy row into per-thread column registers,
//    then writes the row once. Cost: every block reads all N ids (N^2/THREADS
//    coalesced int loads in total, L2-resident; ~0.1 ms at N = 16k), against
//    a sort/bucket scheme's extra kernels and scratch; dy is read once.
//    Chosen over "a thread per column walking all rows" (only C threads of
//    parallelism, one dependent read-modify-write per row).
//
// Ids are int32. An id outside [0, V) never reads or writes out of bounds:
// forward writes zeros for the token part of that row (so y = wpe[n % seq] in
// the fused form), backward skips the row. The runtime validates ids on load.
#pragma once
#include "lisa_common.cuh"

namespace lisa {

namespace emb_detail {

// Items of the forward: packs of 16 bytes when every row starts 16-aligned
// (C a multiple of the pack and all three pointers aligned), else elements.
template <typename T, int C, int V, int THREADS, bool TOK, bool POS>
__device__ __forceinline__ void forward(T *y, const int *ids, const T *wte, const T *wpe, int N,
                                        int seq) {
  constexpr int VEC = vec16<T>();
  const long long stride = (long long)gridDim.x * THREADS;
  const long long first = (long long)blockIdx.x * THREADS + threadIdx.x;
  bool vec = C % VEC == 0 && is_aligned(y, 16);
  if (TOK) vec = vec && is_aligned(wte, 16);
  if (POS) vec = vec && is_aligned(wpe, 16);
  if (vec) {
    constexpr int CV = C / VEC;  // packs per row
    const long long total = (long long)N * CV;
    for (long long p = first; p < total; p += stride) {
      const int n = (int)(p / CV), cv = (int)(p % CV);
      int id = 0;
      bool ok = true;
      if (TOK) {
        id = ids[n];
        ok = id >= 0 && id < V;
      }
      const T *tp = wte + (long long)id * C + cv * VEC;
      const T *pp = POS ? wpe + (long long)(n % seq) * C + cv * VEC : nullptr;
      T *yp = y + (long long)n * C + cv * VEC;
      if (TOK && POS) {
        float a[VEC], b[VEC];
        if (ok) {
          vec_load<T, VEC>(a, tp);
        } else {
          for (int j = 0; j < VEC; j++) a[j] = 0.0f;
        }
        vec_load<T, VEC>(b, pp);
        for (int j = 0; j < VEC; j++) a[j] += b[j];
        vec_store<T, VEC>(yp, a);
      } else if (TOK) {
        if (ok) {
          vec_copy<T, VEC>(yp, tp);
        } else {
          vec_zero<T, VEC>(yp);
        }
      } else {
        vec_copy<T, VEC>(yp, pp);
      }
    }
  } else {
    const long long total = (long long)N * C;
    for (long long e = first; e < total; e += stride) {
      const int n = (int)(e / C), c = (int)(e % C);
      float v = 0.0f;
      if (TOK) {
        const int id = ids[n];
        if (id >= 0 && id < V) v = to_f32(wte[(long long)id * C + c]);
      }
      if (POS) v += to_f32(wpe[(long long)(n % seq) * C + c]);
      y[e] = from_f32<T>(v);
    }
  }
}

// The warp's ballot of p (lane i's predicate in bit i).
__device__ __forceinline__ unsigned ballot(bool p) { return __ballot_sync(0xffffffffu, p); }

// f(r) for every token r in [n, N) with ids[r] == id, in increasing r, on
// every thread of the block (all of them must call it). The ids are scanned
// THREADS at a time; a warp ballot per chunk, kept in hits[THREADS / 32]
// (shared), lists the chunk's matches in order.
template <int THREADS, typename F>
__device__ __forceinline__ void for_each_match(unsigned *hits, const int *ids, int id, int n,
                                               int N, F &&f) {
  constexpr int WARPS = THREADS / 32;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  for (int m0 = n; m0 < N; m0 += THREADS) {
    const int m = m0 + tid;
    const unsigned b = ballot(m < N && ids[m] == id);
    __syncthreads();  // the previous chunk's hits are consumed
    if (lane == 0) hits[warp] = b;
    __syncthreads();
    for (int w = 0; w < WARPS; w++) {
      unsigned bits = hits[w];
      while (bits) {  // the matching tokens, in increasing order
        const int r = m0 + w * 32 + (__ffs((int)bits) - 1);
        bits &= bits - 1u;
        f(r);
      }
    }
  }
}

template <typename T, int C, int V, int THREADS, typename G>
__device__ __forceinline__ void token_backward(G *dwte, const int *ids, const T *dy, int N,
                                               int n) {
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "THREADS: a multiple of 32");
  constexpr int WARPS = THREADS / 32, CPT = (C + THREADS - 1) / THREADS;
  const int tid = threadIdx.x;
  const int id = ids[n];
  if (id < 0 || id >= V) return;  // uniform over the block

  // Does an earlier token share the id? Then its block owns the row.
  bool seen = false;
  for (int m = tid; m < n; m += THREADS) seen = seen || ids[m] == id;
  if (block_sum<THREADS>(seen ? 1.0f : 0.0f) > 0.0f) return;

  G *drow = dwte + (long long)id * C;
  __shared__ unsigned hits[WARPS];
  // FV: the table's vector, at most VEC elements (16 bytes of G)
  constexpr int VEC = vec16<T>(), FV = vec16<G>() < VEC ? vec16<G>() : VEC;
  if (C % VEC == 0) {
    // Thread tid owns packs tid, tid + THREADS, ... of VEC columns, read and
    // written as 16-byte vectors when dy and dwte are 16-byte aligned, else
    // element by element (same columns, same order).
    constexpr int CV = C / VEC, PPT = (CV + THREADS - 1) / THREADS;
    const bool al = is_aligned(dy, 16) && is_aligned(dwte, 16);
    float acc[PPT][VEC] = {};
    for (int j = 0; j < PPT; j++) {
      const int p = tid + j * THREADS;
      if (p >= CV) continue;
      if (al) {
        for (int k = 0; k < VEC; k += FV) vec_load<G, FV>(&acc[j][k], drow + p * VEC + k);
      } else {
        for (int k = 0; k < VEC; k++) acc[j][k] = to_f32(drow[p * VEC + k]);
      }
    }
    for_each_match<THREADS>(hits, ids, id, n, N, [&](int r) {
      const T *dyr = dy + (long long)r * C;
      for (int j = 0; j < PPT; j++) {
        const int p = tid + j * THREADS;
        if (p >= CV) continue;
        float x[VEC];
        if (al) {
          vec_load<T, VEC>(x, dyr + p * VEC);
        } else {
          for (int k = 0; k < VEC; k++) x[k] = to_f32(dyr[p * VEC + k]);
        }
        for (int k = 0; k < VEC; k++) acc[j][k] += x[k];
      }
    });
    for (int j = 0; j < PPT; j++) {
      const int p = tid + j * THREADS;
      if (p >= CV) continue;
      if (al) {
        for (int k = 0; k < VEC; k += FV) vec_store<G, FV>(drow + p * VEC + k, &acc[j][k]);
      } else {
        for (int k = 0; k < VEC; k++) drow[p * VEC + k] = from_f32<G>(acc[j][k]);
      }
    }
  } else {
    // C not a multiple of the pack: a column strip at a time (one walk per
    // strip; few registers).
    for (int j = 0; j < CPT; j++) {
      const int c = tid + j * THREADS;
      float acc = c < C ? to_f32(drow[c]) : 0.0f;
      for_each_match<THREADS>(hits, ids, id, n, N, [&](int r) {
        if (c < C) acc += to_f32(dy[(long long)r * C + c]);
      });
      if (c < C) drow[c] = from_f32<G>(acc);
    }
  }
}

// Thread e = block * THREADS + tid of the position part owns dwpe[e / C, e % C].
template <typename T, int C, int THREADS, typename G>
__device__ __forceinline__ void pos_backward(G *dwpe, const T *dy, int N, int seq, int block) {
  const long long e = (long long)block * THREADS + threadIdx.x;
  if (e >= (long long)seq * C) return;
  const int t = (int)(e / C), c = (int)(e % C);
  float acc = to_f32(dwpe[e]);
  for (int n = t; n < N; n += seq) acc += to_f32(dy[(long long)n * C + c]);
  dwpe[e] = from_f32<G>(acc);
}

}  // namespace emb_detail

// launch: grid (ceil(N*C/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Any grid works (grid-stride loop); fewer blocks, more work each.
// y [N, C] T = wte[ids[n]]; wte [V, C] T; ids [N] int32.
template <typename T, int C, int V, int THREADS>
__device__ void embedding_forward(T *y, const int *ids, const T *wte, int N) {
  emb_detail::forward<T, C, V, THREADS, true, false>(y, ids, wte, nullptr, N, 1);
}

// launch: grid (ceil(N*C/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Any grid works (grid-stride loop).
// y [N, C] T = wpe[n % seq]; wpe [>= seq, C] T.
template <typename T, int C, int THREADS>
__device__ void pos_embedding_forward(T *y, const T *wpe, int N, int seq) {
  emb_detail::forward<T, C, 1, THREADS, false, true>(y, nullptr, nullptr, wpe, N, seq);
}

// launch: grid (ceil(N*C/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Any grid works (grid-stride loop).
// y [N, C] T = wte[ids[n]] + wpe[n % seq] (fp32 add, one rounding to T).
template <typename T, int C, int V, int THREADS>
__device__ void embedding_pos_forward(T *y, const int *ids, const T *wte, const T *wpe, int N,
                                      int seq) {
  emb_detail::forward<T, C, V, THREADS, true, true>(y, ids, wte, wpe, N, seq);
}

// launch: grid (N), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512,1024} default 256
// scratch: none
// dwte [V, C] G (float or bf16) += dy rows by id (see the top of the file); dy [N, C] T.
template <typename T, int C, int V, int THREADS, typename G>
__device__ void embedding_backward(G *dwte, const int *ids, const T *dy, int N) {
  if ((int)blockIdx.x < N) emb_detail::token_backward<T, C, V, THREADS>(dwte, ids, dy, N, blockIdx.x);
}

// launch: grid (ceil(seq*C/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// dwpe [>= seq, C] G (float or bf16): row t += sum over n = t (mod seq) of dy[n].
template <typename T, int C, int THREADS, typename G>
__device__ void pos_embedding_backward(G *dwpe, const T *dy, int N, int seq) {
  emb_detail::pos_backward<T, C, THREADS>(dwpe, dy, N, seq, blockIdx.x);
}

// launch: grid (N + ceil(seq*C/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Both backward passes of embedding_pos_forward in one launch: blocks [0, N)
// do dwte (as embedding_backward), the rest dwpe (as pos_embedding_backward).
template <typename T, int C, int V, int THREADS, typename G>
__device__ void embedding_pos_backward(G *dwte, G *dwpe, const int *ids, const T *dy,
                                       int N, int seq) {
  const int b = blockIdx.x;
  if (b < N)
    emb_detail::token_backward<T, C, V, THREADS>(dwte, ids, dy, N, b);
  else
    emb_detail::pos_backward<T, C, THREADS>(dwpe, dy, N, seq, b - N);
}

}  // namespace lisa
