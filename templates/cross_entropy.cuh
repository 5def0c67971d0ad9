// cross_entropy.cuh: softmax + cross-entropy fused, chunked over the
// vocabulary (as llm.c's fused classifier), and the deterministic mean of the
// per-row losses. Reference: cpu_cross_entropy_forward / _backward in
// runtime/cpu/cpu_ops.c.
//
// One block per row of logits [N, V] (T storage):
//   pass 1 reads the row in 16-byte chunks (8 bf16 or 4 floats per thread per
//          step) and keeps an online (max, sum of exp) per thread, merged over
//          the block: no fp32 probabilities and no fp32 copy of the row are
//          ever stored;
//   then   loss[n] = log(sum) + max - logits[n, target] (float per row);
//   pass 2 (when dlogits is not null) reads the row again and writes
//          dlogits = (softmax - onehot(target)) * row_scale, over the logits
//          in place (dlogits == logits) or into a separate [N, V] buffer.
// Each element is read by the thread that then overwrites it, and the target
// logit is read before the first barrier, so in place is safe.
//
// `row_scale` is a kernel argument (a float on the host), not a device
// pointer: the loss gradient of each counted row, scale / counted rows in the
// CPU reference's terms. The host knows the counted rows when it builds the
// batch, so no block has to count them.
//
// A target of -1 (DATA_IGNORE: transformers' labels -100) does not count:
// its row gets loss 0 and a zero gradient, and the mean leaves it out.
//
// Rows need no alignment: each row's unaligned head and tail (fewer than 16
// bytes each) are read element by element, the rest as aligned 16-byte
// vectors, so V = 50257 (unpadded) works. A separate dlogits whose rows are
// aligned differently from logits falls back to element-wise pass 2.
//
// Any target outside [0, V) is treated as ignored, so none reads or writes
// out of bounds.
#pragma once
#include "lisa_common.cuh"

namespace lisa {

namespace ce_detail {

// Elements before the first 16-byte boundary of a row starting at p.
template <typename T> __device__ __forceinline__ int head_len(const T *p, int V) {
  const unsigned mis = (unsigned)(reinterpret_cast<unsigned long long>(p) & 15ull);
  const int h = (int)(((16u - mis) & 15u) / sizeof(T));
  return h < V ? h : V;
}

// Online softmax state: m is the running max, s = sum exp(x - m).
__device__ __forceinline__ void online_add(float &m, float &s, float x) {
  if (x > m) {
    s = s * expf(m - x) + 1.0f;
    m = x;
  } else {
    s += expf(x - m);
  }
}

// dlogits[i] = exp(x - max) * f, minus sn at the target
__device__ __forceinline__ float grad(float x, int i, float row_max, float f, float sn, int hit) {
  const float d = expf(x - row_max) * f;
  return i == hit ? d - sn : d;
}

}  // namespace ce_detail

// launch: grid (N), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {256,512,1024} default 1024
// scratch: none (loss is the caller's float [N] of per-row losses)
// The __global__ wrapper should carry __launch_bounds__(THREADS).
//   logits  [N, V] T at row stride LD (the device pads rows to a multiple of
//           128, codegen/ir/ir.h IR_VOCAB_PAD; columns V.. are not read),
//           read (and overwritten when dlogits == logits)
//   targets [N] int32
//   loss    [N] float, written: -log softmax(logits[n])[targets[n]]
//   dlogits [N, LD] T or nullptr (loss only), written:
//           (softmax - onehot) * row_scale (0 on ignored rows), and 0 in the
//           pad columns V..LD (the head's input-gradient GEMM runs over them);
//           may equal logits
template <typename T, int V, int THREADS, int LD = V>
__device__ void cross_entropy_fused(T *dlogits, float *loss, const T *logits,
                                    const int *targets, int N, float row_scale) {
  static_assert(V >= 1 && LD >= V, "V: at least one class; LD: a row stride >= V");
  constexpr int VEC = vec16<T>();
  const int n = blockIdx.x;
  if (n >= N) return;
  const int tid = threadIdx.x;
  const T *row = logits + (long long)n * LD;
  const int target = targets[n];
  const bool valid = target >= 0 && target < V;

  // The target logit, read before any barrier (so before any write).
  float x_target = 0.0f;
  if (tid == 0 && valid) x_target = to_f32(row[target]);

  // pass 1: online max / sum of exp
  const int head = ce_detail::head_len(row, V);
  const int nvec = (V - head) / VEC;
  const int tail = head + nvec * VEC;
  float m = kNegBig, s = 0.0f;
  if (tid < head) ce_detail::online_add(m, s, to_f32(row[tid]));
  for (int k = tid; k < nvec; k += THREADS) {
    float x[VEC];
    vec_load<T, VEC>(x, row + head + (long long)k * VEC);
    float mx = x[0];
    for (int j = 1; j < VEC; j++) mx = fmaxf(mx, x[j]);
    if (mx > m) {
      s *= expf(m - mx);
      m = mx;
    }
    for (int j = 0; j < VEC; j++) s += expf(x[j] - m);
  }
  for (int i = tail + tid; i < V; i += THREADS) ce_detail::online_add(m, s, to_f32(row[i]));

  const float row_max = block_max<THREADS>(m);
  const float sum = block_sum<THREADS>(s * expf(m - row_max));

  if (tid == 0)
    loss[n] = valid ? (float)(log((double)sum) + (double)row_max - (double)x_target) : 0.0f;
  if (dlogits == nullptr) return;

  // pass 2: dlogits = exp(x - max) * (row_scale / sum), minus row_scale at
  // the target (the CPU reference's order of operations).
  T *drow = dlogits + (long long)n * LD;
  const float sn = valid ? row_scale : 0.0f;
  const float f = valid ? (float)((double)sn / (double)sum) : 0.0f;
  const int hit = valid ? target : -1;
  const bool same_align =
      ((reinterpret_cast<unsigned long long>(drow) ^ reinterpret_cast<unsigned long long>(row)) &
       15ull) == 0;
  if (same_align) {
    if (tid < head)
      drow[tid] = from_f32<T>(ce_detail::grad(to_f32(row[tid]), tid, row_max, f, sn, hit));
    for (int k = tid; k < nvec; k += THREADS) {
      const int i0 = head + k * VEC;
      float x[VEC];
      vec_load<T, VEC>(x, row + i0);
      for (int j = 0; j < VEC; j++) x[j] = ce_detail::grad(x[j], i0 + j, row_max, f, sn, hit);
      vec_store<T, VEC>(drow + i0, x);
    }
    for (int i = tail + tid; i < V; i += THREADS)
      drow[i] = from_f32<T>(ce_detail::grad(to_f32(row[i]), i, row_max, f, sn, hit));
  } else {
    for (int i = tid; i < V; i += THREADS)
      drow[i] = from_f32<T>(ce_detail::grad(to_f32(row[i]), i, row_max, f, sn, hit));
  }
  for (int i = V + tid; i < LD; i += THREADS) drow[i] = from_f32<T>(0.0f);
}

// launch: grid (1), block (THREADS), dynamic smem: 0 bytes
// tunables: THREADS {128,256,512,1024} default 256
//   loss    [N] float: cross_entropy_fused's per-row losses
//   targets [N] int32: rows with a target outside [0, V) are not counted
// scratch: none
// mean_loss[0] = sum(loss[0..N)) / counted rows (0 when none counts), in
// double, in an order fixed by THREADS alone (thread t sums rows t,
// t+THREADS, ... in order, then a fixed tree over threads): bit-identical
// from run to run. Ignored rows hold loss 0 and are not counted. The CPU
// reference also sums in double (in 64 chunks), so the two agree to double
// rounding.
template <int V, int THREADS>
__device__ void cross_entropy_mean(float *mean_loss, const float *loss, const int *targets,
                                   int N) {
  static_assert(THREADS >= 32 && THREADS <= 1024 && (THREADS & (THREADS - 1)) == 0,
                "THREADS: a power of two in [32, 1024]");
  // Two arrays: with one, thread 0's read of the count raced the second
  // sum's writes, since ptxas loads part[0] in every thread and selects
  // (compute-sanitizer racecheck on an H200 reported it).
  __shared__ double count_part[THREADS], loss_part[THREADS];
  const int tid = threadIdx.x;
  double s = 0.0, c = 0.0;
  for (int i = tid; i < N; i += THREADS) {
    s += (double)loss[i];
    c += targets[i] >= 0 && targets[i] < V ? 1.0 : 0.0;
  }
  tree_sum<THREADS>(count_part, c);
  tree_sum<THREADS>(loss_part, s);
  if (tid == 0) {
    const double counted = count_part[0];
    mean_loss[0] = counted > 0 ? (float)(loss_part[0] / counted) : 0.0f;
  }
}

}  // namespace lisa
