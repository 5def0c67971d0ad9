// mma.cuh: one warp-wide tensor-core product, mma.sync m16n8k16 with bf16
// inputs and fp32 accumulators (sm_80 and later), the bf16 pairs its
// fragments are made of, ldmatrix to load them and cp.async to stage tiles. On the GPU it is the PTX instruction; in the host
// emulator (LISA_EMU) the same product from the same fragments, gathered
// with shuffles, so a kernel written against it is tested on the CPU.
//
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16", bf16). In a warp,
// lane = 4*g + t (g = lane / 4 in 0..7, t = lane % 4 in 0..3). A word holds
// two bf16: the lower column (or row, for B) in its low half.
//   A, 16x16 row-major, 4 words: a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..],
//     a[2] = A[g][8+2t..], a[3] = A[g+8][8+2t..]
//   B, 16x8 (k x n), 2 words: b[0] = B[2t..2t+1][g], b[1] = B[8+2t..8+2t+1][g]
//   C and D, 16x8 fp32: c[0], c[1] = C[g][2t], C[g][2t+1]; c[2], c[3] =
//     C[g+8][2t], C[g+8][2t+1]
// So an accumulator pair of two neighbouring 8-column tiles is an A fragment
// of the next product (as P = softmax(S) feeds P V in flash attention).
//
// ldmatrix (PTX ISA, "Warp-level matrix load instruction: ldmatrix"),
// .m8n8.x4.b16 from shared memory: lane L gives the address of row L % 8
// of matrix L / 8 (16 bytes, 16-byte aligned); lane (g, t) receives word i
// = matrix i's row g, bf16 columns 2t, 2t+1. With .trans the matrix comes
// transposed: word i = matrix i's rows 2t and 2t+1 (low half) of column g.
// So a [n][k] tile of pairs gives B fragments of mma, and a [k][n] one (the
// operand as it lies in memory) gives them with .trans, without staging it
// transposed.
#pragma once
#include "lisa_common.cuh"

// Fragment arrays must stay in registers: every loop over them unrolled
// (the emulator's host compiler warns on unknown pragmas, hence a macro).
#ifdef LISA_EMU
#define LISA_MMA_UNROLL
#else
#define LISA_MMA_UNROLL _Pragma("unroll")
#endif

namespace lisa {

// Two floats as a bf16 pair (lo in the low half), rounded to nearest even.
__device__ __forceinline__ unsigned pack_bf16x2(float lo, float hi) {
  return (unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(lo)) |
         ((unsigned)__bfloat16_as_ushort(__float2bfloat16_rn(hi)) << 16);
}
__device__ __forceinline__ unsigned pack_bf16x2(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return (unsigned)__bfloat16_as_ushort(lo) | ((unsigned)__bfloat16_as_ushort(hi) << 16);
}
__device__ __forceinline__ float bf16_lo(unsigned w) {
  return __bfloat162float(__ushort_as_bfloat16((unsigned short)(w & 0xffffu)));
}
__device__ __forceinline__ float bf16_hi(unsigned w) {
  return __bfloat162float(__ushort_as_bfloat16((unsigned short)(w >> 16)));
}

// d += A b, for the whole warp (every lane must call it, converged).
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const unsigned (&a)[4],
                                               const unsigned (&b)[2]) {
#if !defined(LISA_EMU) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif !defined(LISA_EMU)
  __trap();  // before sm_80: the generator does not launch this (gen_config.no_mma)
#else
  // Lane (g, t) needs rows g and g+8 of A, held by lanes 4g..4g+3, and
  // columns 2t, 2t+1 of B, held by lanes 4(2t)+s and 4(2t+1)+s.
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  for (int s = 0; s < 4; ++s) {  // k = 2s, 2s+1 and 8+2s, 8+2s+1
    unsigned ar[4], b0[2], b1[2];
    for (int i = 0; i < 4; ++i) ar[i] = __shfl_sync(0xffffffffu, a[i], 4 * g + s);
    for (int i = 0; i < 2; ++i) {
      b0[i] = __shfl_sync(0xffffffffu, b[i], 4 * (2 * t) + s);
      b1[i] = __shfl_sync(0xffffffffu, b[i], 4 * (2 * t + 1) + s);
    }
    for (int half = 0; half < 2; ++half) {  // k < 8, then k >= 8
      const unsigned lo_row = ar[2 * half], hi_row = ar[2 * half + 1];
      const unsigned c0 = b0[half], c1 = b1[half];
      d[0] += bf16_lo(lo_row) * bf16_lo(c0) + bf16_hi(lo_row) * bf16_hi(c0);
      d[1] += bf16_lo(lo_row) * bf16_lo(c1) + bf16_hi(lo_row) * bf16_hi(c1);
      d[2] += bf16_lo(hi_row) * bf16_lo(c0) + bf16_hi(hi_row) * bf16_hi(c0);
      d[3] += bf16_lo(hi_row) * bf16_lo(c1) + bf16_hi(hi_row) * bf16_hi(c1);
    }
  }
#endif
}

#ifdef LISA_EMU
// The emulator's ldmatrix: each lane reads its row, the warp trades words.
__device__ __forceinline__ void ldmatrix_emu(unsigned (&r)[4], const unsigned *row, bool trans) {
  if (reinterpret_cast<unsigned long long>(row) & 15u) __trap();  // misaligned: a GPU faults
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const unsigned w[4] = {row[0], row[1], row[2], row[3]};
  for (int i = 0; i < 4; ++i) {
    unsigned lo[4], hi[4];  // !trans: row g of matrix i; trans: rows 2t, 2t+1
    for (int k = 0; k < 4; ++k) {
      lo[k] = __shfl_sync(0xffffffffu, w[k], trans ? 8 * i + 2 * t : 8 * i + g);
      hi[k] = __shfl_sync(0xffffffffu, w[k], 8 * i + 2 * t + 1);
    }
    const int sh = 16 * (g & 1);
    r[i] = !trans ? lo[t]
                  : ((lo[g >> 1] >> sh) & 0xffffu) | (((hi[g >> 1] >> sh) & 0xffffu) << 16);
  }
}
#endif

// Four 8x8 bf16 matrices from shared memory into fragments; row: this
// lane's row (see above). Every lane must call it, converged.
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const unsigned *row) {
#ifdef LISA_EMU
  ldmatrix_emu(r, row, false);
#else
  const unsigned addr = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const unsigned *row) {
#ifdef LISA_EMU
  ldmatrix_emu(r, row, true);
#else
  const unsigned addr = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#endif
}

// cp.async (sm_80): 16 bytes from global to shared memory that land only
// when a cp_async_wait covers their group; in_range false writes 16 zero
// bytes (src is then not read). Both addresses 16-byte aligned.
__device__ __forceinline__ void cp_async_16(void *smem, const void *gmem, bool in_range) {
#ifdef LISA_EMU
  ::emu::cp_async_16(smem, gmem, in_range ? 16u : 0u);
#else
  const unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(addr), "l"(gmem),
               "r"(in_range ? 16 : 0));
#endif
}

// Closes the group of the copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#ifdef LISA_EMU
  ::emu::cp_async_commit();
#else
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N of this thread's committed groups are in flight
// (the others have landed; other threads' copies need a barrier after).
template <int N> __device__ __forceinline__ void cp_async_wait() {
#ifdef LISA_EMU
  ::emu::cp_async_wait(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace lisa
