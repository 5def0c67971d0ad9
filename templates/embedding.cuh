// embedding.cuh: token embedding, learned position embedding, and the two
// fused (GPT-2's embed section: embedding + position_embedding + add), with
// their backward passes into float tables. Reference: cpu_embedding_*,
// cpu_pos_embedding_* and cpu_add in runtime/cpu_ops.c.
//
//   forward:  y[n] = wte[ids[n]]                 embedding_forward
//             y[n] = wpe[n % seq]                pos_embedding_forward
//             y[n] = wte[ids[n]] + wpe[n % seq]  embedding_pos_forward
//             (the add in fp32, rounded once to T)
//   backward: dwte[ids[n]] += dy[n]              embedding_backward
//             dwpe[t] += sum_b dy[b*seq + t]     pos_embedding_backward
//             both in one launch                 embedding_pos_backward
//
// Determinism: no float atomics anywhere. Every float of dwte / dwpe is read,
// summed and written by exactly one thread, which adds the dy rows in
// increasing n starting from the table's old value: the same order as the CPU
// reference, so fp32 results are bit-identical to it.
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

namespace lisa {

#ifndef LISA_PACK16_DEFINED_
#define LISA_PACK16_DEFINED_
// 16-byte vector access shared by the templates that stream rows (the same
// text is in cross_entropy.cuh and embedding.cuh; whichever comes first
// defines it).
namespace pk {

// 16 bytes of a row: 4 floats or 8 bf16, as raw bits.
struct alignas(16) Pack16 {
  unsigned int u[4];
};

__device__ __forceinline__ Pack16 load16(const void *p) {
  const uint4 v = *reinterpret_cast<const uint4 *>(p);
  Pack16 r;
  r.u[0] = v.x, r.u[1] = v.y, r.u[2] = v.z, r.u[3] = v.w;
  return r;
}

__device__ __forceinline__ void store16(void *p, const Pack16 &r) {
  uint4 v;
  v.x = r.u[0], v.y = r.u[1], v.z = r.u[2], v.w = r.u[3];
  *reinterpret_cast<uint4 *>(p) = v;
}

// The 16/sizeof(T) values of a pack as floats (bf16 is the top half of a
// float; the element at the lower address is the low half of the word).
template <typename T> struct PackIO;
template <> struct PackIO<float> {
  static constexpr int kVec = 4;
  static __device__ __forceinline__ void unpack(const Pack16 &p, float *x) {
    for (int k = 0; k < 4; k++) x[k] = __uint_as_float(p.u[k]);
  }
  static __device__ __forceinline__ Pack16 pack(const float *x) {
    Pack16 p;
    for (int k = 0; k < 4; k++) p.u[k] = __float_as_uint(x[k]);
    return p;
  }
};
template <> struct PackIO<__nv_bfloat16> {
  static constexpr int kVec = 8;
  static __device__ __forceinline__ void unpack(const Pack16 &p, float *x) {
    for (int k = 0; k < 4; k++) {
      x[2 * k] = __uint_as_float(p.u[k] << 16);
      x[2 * k + 1] = __uint_as_float(p.u[k] & 0xffff0000u);
    }
  }
  static __device__ __forceinline__ Pack16 pack(const float *x) {
    Pack16 p;
    for (int k = 0; k < 4; k++) {
      // round to nearest even, as from_f32 / __float2bfloat16_rn
      const unsigned lo = __bfloat16_as_ushort(__float2bfloat16_rn(x[2 * k]));
      const unsigned hi = __bfloat16_as_ushort(__float2bfloat16_rn(x[2 * k + 1]));
      p.u[k] = lo | (hi << 16);
    }
    return p;
  }
};

__device__ __forceinline__ bool aligned16(const void *p) {
  return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

}  // namespace pk
#endif  // LISA_PACK16_DEFINED_

namespace emb_detail {

// Items of the forward: packs of 16 bytes when every row starts 16-aligned
// (C a multiple of the pack and all three pointers aligned), else elements.
template <typename T, int C, int V, int THREADS, bool TOK, bool POS>
__device__ __forceinline__ void forward(T *y, const int *ids, const T *wte, const T *wpe, int N,
                                        int seq) {
  using IO = pk::PackIO<T>;
  constexpr int VEC = IO::kVec;
  const long long stride = (long long)gridDim.x * THREADS;
  const long long first = (long long)blockIdx.x * THREADS + threadIdx.x;
  bool vec = C % VEC == 0 && pk::aligned16(y);
  if (TOK) vec = vec && pk::aligned16(wte);
  if (POS) vec = vec && pk::aligned16(wpe);
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
      pk::Pack16 out;
      if (TOK && POS) {
        float a[VEC], b[VEC];
        if (ok) {
          IO::unpack(pk::load16(tp), a);
        } else {
          for (int j = 0; j < VEC; j++) a[j] = 0.0f;
        }
        IO::unpack(pk::load16(pp), b);
        for (int j = 0; j < VEC; j++) a[j] += b[j];
        out = IO::pack(a);
      } else if (TOK) {
        if (ok) {
          out = pk::load16(tp);
        } else {
          for (int j = 0; j < 4; j++) out.u[j] = 0u;
        }
      } else {
        out = pk::load16(pp);
      }
      pk::store16(y + (long long)n * C + cv * VEC, out);
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

template <typename T, int C, int V, int THREADS>
__device__ __forceinline__ void token_backward(float *dwte, const int *ids, const T *dy, int N,
                                               int n) {
  static_assert(THREADS % 32 == 0 && THREADS <= 1024, "THREADS: a multiple of 32");
  constexpr int WARPS = THREADS / 32, CPT = (C + THREADS - 1) / THREADS;
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int id = ids[n];
  if (id < 0 || id >= V) return;  // uniform over the block

  // Does an earlier token share the id? Then its block owns the row.
  bool seen = false;
  for (int m = tid; m < n; m += THREADS) seen = seen || ids[m] == id;
  if (block_sum<THREADS>(seen ? 1.0f : 0.0f) > 0.0f) return;

  float *drow = dwte + (long long)id * C;
  __shared__ unsigned hits[WARPS];
  using IO = pk::PackIO<T>;
  constexpr int VEC = IO::kVec;
  if (C % VEC == 0) {
    // Thread tid owns packs tid, tid + THREADS, ... of VEC columns, read and
    // written as 16-byte vectors when dy and dwte are 16-byte aligned, else
    // element by element (same columns, same order).
    constexpr int CV = C / VEC, PPT = (CV + THREADS - 1) / THREADS;
    const bool al = pk::aligned16(dy) && pk::aligned16(dwte);
    float acc[PPT][VEC] = {};
    for (int j = 0; j < PPT; j++) {
      const int p = tid + j * THREADS;
      if (p >= CV) continue;
      if (al) {
        for (int k = 0; k < VEC; k += 4)
          pk::PackIO<float>::unpack(pk::load16(drow + p * VEC + k), &acc[j][k]);
      } else {
        for (int k = 0; k < VEC; k++) acc[j][k] = drow[p * VEC + k];
      }
    }
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
          const T *dyr = dy + (long long)r * C;
          for (int j = 0; j < PPT; j++) {
            const int p = tid + j * THREADS;
            if (p >= CV) continue;
            float x[VEC];
            if (al) {
              IO::unpack(pk::load16(dyr + p * VEC), x);
            } else {
              for (int k = 0; k < VEC; k++) x[k] = to_f32(dyr[p * VEC + k]);
            }
            for (int k = 0; k < VEC; k++) acc[j][k] += x[k];
          }
        }
      }
    }
    for (int j = 0; j < PPT; j++) {
      const int p = tid + j * THREADS;
      if (p >= CV) continue;
      if (al) {
        for (int k = 0; k < VEC; k += 4)
          pk::store16(drow + p * VEC + k, pk::PackIO<float>::pack(&acc[j][k]));
      } else {
        for (int k = 0; k < VEC; k++) drow[p * VEC + k] = acc[j][k];
      }
    }
  } else {
    // C not a multiple of the pack: a column strip at a time (one walk per
    // strip; few registers).
    for (int j = 0; j < CPT; j++) {
      const int c = tid + j * THREADS;
      float acc = c < C ? drow[c] : 0.0f;
      for (int m0 = n; m0 < N; m0 += THREADS) {
        const int m = m0 + tid;
        const unsigned b = ballot(m < N && ids[m] == id);
        __syncthreads();  // the previous chunk's hits are consumed
        if (lane == 0) hits[warp] = b;
        __syncthreads();
        for (int w = 0; w < WARPS; w++) {
          unsigned bits = hits[w];
          while (bits) {
            const int r = m0 + w * 32 + (__ffs((int)bits) - 1);
            bits &= bits - 1u;
            if (c < C) acc += to_f32(dy[(long long)r * C + c]);
          }
        }
      }
      if (c < C) drow[c] = acc;
    }
  }
}

// Thread e = block * THREADS + tid of the position part owns dwpe[e / C, e % C].
template <typename T, int C, int THREADS>
__device__ __forceinline__ void pos_backward(float *dwpe, const T *dy, int N, int seq, int block) {
  const long long e = (long long)block * THREADS + threadIdx.x;
  if (e >= (long long)seq * C) return;
  const int t = (int)(e / C), c = (int)(e % C);
  float acc = dwpe[e];
  for (int n = t; n < N; n += seq) acc += to_f32(dy[(long long)n * C + c]);
  dwpe[e] = acc;
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
// dwte [V, C] float += dy rows by id (see the top of the file); dy [N, C] T.
template <typename T, int C, int V, int THREADS>
__device__ void embedding_backward(float *dwte, const int *ids, const T *dy, int N) {
  if ((int)blockIdx.x < N) emb_detail::token_backward<T, C, V, THREADS>(dwte, ids, dy, N, blockIdx.x);
}

// launch: grid (ceil(seq*C/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// dwpe [>= seq, C] float: row t += sum over n = t (mod seq) of dy[n].
template <typename T, int C, int THREADS>
__device__ void pos_embedding_backward(float *dwpe, const T *dy, int N, int seq) {
  emb_detail::pos_backward<T, C, THREADS>(dwpe, dy, N, seq, blockIdx.x);
}

// launch: grid (N + ceil(seq*C/THREADS)), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Both backward passes of embedding_pos_forward in one launch: blocks [0, N)
// do dwte (as embedding_backward), the rest dwpe (as pos_embedding_backward).
template <typename T, int C, int V, int THREADS>
__device__ void embedding_pos_backward(float *dwte, float *dwpe, const int *ids, const T *dy,
                                       int N, int seq) {
  const int b = blockIdx.x;
  if (b < N)
    emb_detail::token_backward<T, C, V, THREADS>(dwte, ids, dy, N, b);
  else
    emb_detail::pos_backward<T, C, THREADS>(dwpe, dy, N, seq, b - N);
}

}  // namespace lisa
