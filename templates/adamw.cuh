// adamw.cuh: AdamW over many tensors in one launch (multi-tensor apply) and
// the global gradient norm with its clip factor, both driven by one device
// table of tensor descriptors. Reference: opt_adamw_update, opt_sum_squares
// and opt_clip_scale in runtime/train/optim.c (PyTorch's AdamW and
// clip_grad_norm_).
//
// A step on the GPU, with no host synchronisation:
//   global_norm  -> writes the norm and clip = min(1, max_norm/(norm+1e-6))
//   adamw_multi  -> reads clip from the device float global_norm wrote
//
// The descriptor table (device memory, `count` entries). The host fills a C
// struct with the same layout (64-bit: 56 bytes, 8-aligned):
//   struct { float *w; const float *g; float *m, *v; void *w_copy;
//            int64_t numel; int32_t decay; int32_t step; };
// step + step_base (a kernel argument, default 0) is the tensor's own AdamW
// step count t >= 1 for this update (with LISA a block entering the active
// set restarts at 1, as PyTorch does for a new parameter); an entry whose
// t < 1 is skipped by both kernels. With step = 1 - (the global step the
// tensor started at) and step_base = the global step, a table need not
// change between LISA switches.
//
// Two precisions (docs/codegen.md, "bf16-mixed and bf16-true"):
//   adamw_multi       bf16-mixed: fp32 master weights, gradients and moments
//                     (AdamWTensor), optionally a bf16 copy of the weights
//   adamw_multi_bf16  bf16-true: the bf16 weights themselves, bf16 gradients,
//                     bf16 moments (AdamWTensorBf16), no fp32 copy anywhere
// global_norm takes either table.
//
// Every element is handled by a fixed thread (grid-stride over each tensor in
// turn), so the order of every sum is fixed by grid and block sizes alone.
#pragma once
#include "lisa_common.cuh"

namespace lisa {

struct AdamWTensor {
  float *w;           // fp32 master weights [numel], updated
  const float *g;     // fp32 gradient [numel]
  float *m;           // fp32 first moment [numel], updated
  float *v;           // fp32 second moment [numel], updated
  void *w_copy;       // T copy of the updated weights [numel], or nullptr
  long long numel;
  int decay;          // nonzero: apply weight decay
  int step;           // t >= 1 for bias correction; < 1: skip the tensor
};

// bf16-true (adamw_multi_bf16): everything in bf16, the same layout with
// 16-bit pointers: struct { bf16 *w; const bf16 *g; bf16 *m, *v;
// int64_t numel; int32_t decay; int32_t step; } (64-bit: 48 bytes).
struct AdamWTensorBf16 {
  __nv_bfloat16 *w;        // bf16 weights [numel], updated in place
  const __nv_bfloat16 *g;  // bf16 gradient [numel]
  __nv_bfloat16 *m;        // bf16 first moment [numel], updated
  __nv_bfloat16 *v;        // bf16 second moment [numel], updated
  long long numel;
  int decay;
  int step;
};

namespace adamw_detail {

// Chris Wellons' lowbias32: a 32-bit integer hash with full avalanche.
__device__ __forceinline__ unsigned hash32(unsigned x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The random word of element i of table entry `tensor` under `seed`:
// key = H(seed ^ H(tensor + golden)), r = H(H(lo32(i) ^ key) + hi32(i)).
// Counter-based: the same (seed, tensor, element) always gives the same word.
__device__ __forceinline__ unsigned tensor_key(unsigned seed, int tensor) {
  return hash32(seed ^ hash32((unsigned)tensor + 0x9e3779b9u));
}
__device__ __forceinline__ unsigned element_bits(unsigned key, long long i) {
  const unsigned long long u = (unsigned long long)i;
  return hash32(hash32((unsigned)u ^ key) + (unsigned)(u >> 32));
}

// Stochastic rounding to bf16: add 16 random bits below the kept 16 and
// truncate. x rounds away from zero with probability (dropped bits) / 2^16,
// so E[result] = x exactly for every finite x (values beyond the largest
// bf16 may round to inf). Inf and NaN go through round-to-nearest.
__device__ __forceinline__ __nv_bfloat16 bf16_stochastic(float x, unsigned r) {
  unsigned u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x);
  u = (u + (r & 0xffffu)) & 0xffff0000u;
  return __float2bfloat16_rn(__uint_as_float(u));  // exact: u is a bf16
}

template <typename T, bool STOCHASTIC> struct Copy {
  static __device__ __forceinline__ void store(void *dst, long long i, float w, unsigned) {
    static_cast<T *>(dst)[i] = from_f32<T>(w);
  }
};
template <> struct Copy<__nv_bfloat16, true> {
  static __device__ __forceinline__ void store(void *dst, long long i, float w, unsigned key) {
    static_cast<__nv_bfloat16 *>(dst)[i] = bf16_stochastic(w, element_bits(key, i));
  }
};

}  // namespace adamw_detail

// launch: grid (4*SMs), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Any grid G >= 1 works (grid-stride over each tensor).
// The __global__ wrapper should carry __launch_bounds__(THREADS).
// For each entry with step >= 1, element by element, in opt_adamw_update's
// order of operations (the *_rn intrinsics keep nvcc from fusing into FMAs):
//   grad = g * clip
//   w    = w * decay,   decay = (float)(1 - (double)lr * wd) if decay else 1
//   m    = m + (grad - m) * (1 - beta1)
//   v    = v * beta2 + (1 - beta2) * grad * grad
//   w    = w - step_size * m / (sqrt(v) / bias2_sqrt + eps)
// with bias2_sqrt = (float)sqrt(1 - beta2^t), step_size = (float)(lr / (1 -
// beta1^t)) in double, as PyTorch. fp32 results are bit-identical to the CPU
// when the device's double pow rounds as the host's (it has at most 2 ulp of
// double error, which moves the float scalars only in rare ties).
//   clip      device float written by global_norm, or nullptr for 1 (no
//             clipping)
//   w_copy    per entry: T weights rounded from the new fp32 w (nearest even;
//             with STOCHASTIC and T = bf16, stochastic rounding keyed by
//             (seed, table index, element): pass a new seed every step)
// T: the copy's type (float or __nv_bfloat16); STOCHASTIC: bf16 only.
template <typename T, int THREADS, bool STOCHASTIC>
__device__ void adamw_multi(const AdamWTensor *tensors, int count, const float *clip, float lr,
                            float beta1, float beta2, float eps, float weight_decay,
                            unsigned seed, int step_base = 0) {
  __shared__ float s_step_size[THREADS], s_bias2[THREADS], s_decay[THREADS];
  const int tid = threadIdx.x;
  const float gs = clip != nullptr ? *clip : 1.0f;
  const float omb1 = __fsub_rn(1.0f, beta1), omb2 = __fsub_rn(1.0f, beta2);
  const float decay_on = (float)(1.0 - (double)lr * (double)weight_decay);
  const long long stride = (long long)gridDim.x * THREADS;
  const long long first = (long long)blockIdx.x * THREADS + tid;
  for (int base = 0; base < count; base += THREADS) {
    const int group = count - base < THREADS ? count - base : THREADS;
    __syncthreads();  // the previous group's scalars are consumed
    if (tid < group) {
      const AdamWTensor &d = tensors[base + tid];
      const double t = (double)(d.step + step_base);
      s_bias2[tid] = (float)sqrt(1.0 - pow((double)beta2, t));
      s_step_size[tid] = (float)((double)lr / (1.0 - pow((double)beta1, t)));
      s_decay[tid] = d.decay ? decay_on : 1.0f;
    }
    __syncthreads();
    for (int k = 0; k < group; k++) {
      const AdamWTensor d = tensors[base + k];
      if (d.step + step_base < 1) continue;
      const float bias2 = s_bias2[k], step_size = s_step_size[k], decay = s_decay[k];
      const unsigned key = adamw_detail::tensor_key(seed, base + k);
      for (long long i = first; i < d.numel; i += stride) {
        const float grad = __fmul_rn(d.g[i], gs);
        float w = __fmul_rn(d.w[i], decay);
        float m = d.m[i];
        m = __fadd_rn(m, __fmul_rn(__fsub_rn(grad, m), omb1));
        const float v = __fadd_rn(__fmul_rn(d.v[i], beta2), __fmul_rn(__fmul_rn(omb2, grad), grad));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bias2), eps);
        w = __fsub_rn(w, __fdiv_rn(__fmul_rn(step_size, m), denom));
        d.w[i] = w;
        d.m[i] = m;
        d.v[i] = v;
        if (d.w_copy != nullptr) adamw_detail::Copy<T, STOCHASTIC>::store(d.w_copy, i, w, key);
      }
    }
  }
}

// launch: grid (4*SMs), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: none
// Any grid G >= 1 works (grid-stride over each tensor).
// The __global__ wrapper should carry __launch_bounds__(THREADS).
// bf16-true AdamW: per element, load w, g, m, v (bf16 -> fp32, exact), run
// adamw_multi's arithmetic in fp32 registers in the same order, and store
//   w  stochastically rounded (bf16_stochastic, the low 16 bits of the
//      element's random word): an update below half a bf16 ulp of w (lr
//      1e-5 on |w| ~ 0.02: 1e-5 against 4e-5) would otherwise round back to
//      the old w every step and the weight would never move; stochastic
//      rounding moves it by the update in expectation.
//   m  round to nearest: m moves by (1 - beta1) = 0.1 of (grad - m) a step,
//      far above bf16's half ulp (2^-9 relative), so nearest does not stall
//      it; that is what torch's AdamW does with bf16 state.
//   v  stochastically rounded (the high 16 bits of the word): with
//      beta2 = 0.999, v * beta2 is within 2^-9 of v, so round to nearest
//      returns the old v and v would never decay (only grow on spikes);
//      stochastic rounding keeps it unbiased.
// The denominator uses the fp32 v before its rounding, as adamw_multi does.
// The random word is adamw_multi's: keyed by (seed, table index, element);
// pass a new seed every step. Entries with step + step_base < 1 are skipped.
template <int THREADS>
__device__ void adamw_multi_bf16(const AdamWTensorBf16 *tensors, int count, const float *clip,
                                 float lr, float beta1, float beta2, float eps,
                                 float weight_decay, unsigned seed, int step_base = 0) {
  __shared__ float s_step_size[THREADS], s_bias2[THREADS], s_decay[THREADS];
  const int tid = threadIdx.x;
  const float gs = clip != nullptr ? *clip : 1.0f;
  const float omb1 = __fsub_rn(1.0f, beta1), omb2 = __fsub_rn(1.0f, beta2);
  const float decay_on = (float)(1.0 - (double)lr * (double)weight_decay);
  const long long stride = (long long)gridDim.x * THREADS;
  const long long first = (long long)blockIdx.x * THREADS + tid;
  for (int base = 0; base < count; base += THREADS) {
    const int group = count - base < THREADS ? count - base : THREADS;
    __syncthreads();  // the previous group's scalars are consumed
    if (tid < group) {
      const AdamWTensorBf16 &d = tensors[base + tid];
      const double t = (double)(d.step + step_base);
      s_bias2[tid] = (float)sqrt(1.0 - pow((double)beta2, t));
      s_step_size[tid] = (float)((double)lr / (1.0 - pow((double)beta1, t)));
      s_decay[tid] = d.decay ? decay_on : 1.0f;
    }
    __syncthreads();
    for (int k = 0; k < group; k++) {
      const AdamWTensorBf16 d = tensors[base + k];
      if (d.step + step_base < 1) continue;
      const float bias2 = s_bias2[k], step_size = s_step_size[k], decay = s_decay[k];
      const unsigned key = adamw_detail::tensor_key(seed, base + k);
      for (long long i = first; i < d.numel; i += stride) {
        const float grad = __fmul_rn(to_f32(d.g[i]), gs);
        float w = __fmul_rn(to_f32(d.w[i]), decay);
        float m = to_f32(d.m[i]);
        m = __fadd_rn(m, __fmul_rn(__fsub_rn(grad, m), omb1));
        const float v = __fadd_rn(__fmul_rn(to_f32(d.v[i]), beta2),
                                  __fmul_rn(__fmul_rn(omb2, grad), grad));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bias2), eps);
        w = __fsub_rn(w, __fdiv_rn(__fmul_rn(step_size, m), denom));
        const unsigned r = adamw_detail::element_bits(key, i);
        d.w[i] = adamw_detail::bf16_stochastic(w, r);
        d.m[i] = __float2bfloat16_rn(m);
        d.v[i] = adamw_detail::bf16_stochastic(v, r >> 16);
      }
    }
  }
}

// launch: grid (G = 4*SMs), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512} default 256
// scratch: partials double[G] + counter unsigned[1] (zero it once at allocation; each launch leaves it 0)
// Any G >= 1 works.
// The __global__ wrapper should carry __launch_bounds__(THREADS).
// Sum of g^2 over every entry with step >= 1, in double: each thread sums its
// grid-stride elements in order, a fixed tree sums the block into
// partials[block]; the last block to finish (a ticket on counter) sums the G
// partials in a fixed order (thread t: partials t, t+THREADS, ...; then a
// tree), so the result does not depend on which block finishes last. It
// writes
//   norm[0] = (float)sqrt(total)              (nullptr: not written)
//   clip[0] = max_norm > 0 ? min(1, max_norm / (sqrt(total) + 1e-6)) : 1
// (opt_clip_scale, in double). The CPU's order differs (64 chunks per tensor),
// so the two agree to double rounding, and clip almost always bit for bit.
// D: AdamWTensor (fp32 gradients) or AdamWTensorBf16 (bf16, widened exactly).
template <int THREADS, typename D>
__device__ void global_norm(float *norm, float *clip, double *partials, unsigned *counter,
                            const D *tensors, int count, float max_norm, int step_base = 0) {
  static_assert(THREADS >= 32 && THREADS <= 1024 && (THREADS & (THREADS - 1)) == 0,
                "THREADS: a power of two in [32, 1024]");
  __shared__ double part[THREADS];
  __shared__ bool last;
  const int tid = threadIdx.x;
  const long long stride = (long long)gridDim.x * THREADS;
  const long long first = (long long)blockIdx.x * THREADS + tid;
  double s = 0.0;
  for (int k = 0; k < count; k++) {
    const D &d = tensors[k];
    if (d.step + step_base < 1) continue;
    const auto *g = d.g;
    const long long n = d.numel;
    for (long long i = first; i < n; i += stride) {
      const double x = (double)to_f32(g[i]);
      s += x * x;
    }
  }
  tree_sum<THREADS>(part, s);
  if (tid == 0) {
    partials[blockIdx.x] = part[0];
    __threadfence();  // the partial is visible before the ticket is taken
    last = atomicAdd(counter, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  const volatile double *vp = partials;  // written by other blocks: skip L1
  s = 0.0;
  for (int b = tid; b < (int)gridDim.x; b += THREADS) s += vp[b];
  tree_sum<THREADS>(part, s);
  if (tid == 0) {
    const double nrm = sqrt(part[0]);
    if (norm != nullptr) norm[0] = (float)nrm;
    double f = 1.0;
    if (max_norm > 0.0f) {
      f = (double)max_norm / (nrm + 1e-6);
      if (f > 1.0) f = 1.0;
    }
    clip[0] = (float)f;
    *counter = 0u;  // ready for the next launch
  }
}

}  // namespace lisa
