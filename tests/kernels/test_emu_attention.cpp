// test_emu_attention: templates/attention.cuh under the host CUDA emulator,
// against cpu_attention_forward / cpu_attention_backward. Odd head sizes and
// sequence lengths, causal and not, grouped-query, q/k/v (and dq/dk/dv)
// strided inside one fused buffer or each with its own padded row stride;
// fp32 and bf16 (inputs rounded to bf16 for the kernel and the reference).
#include "cuda_emu.h"
#include "emu_check.h"

#include "lisa_common.cuh"
#include "attention.cuh"

#include <type_traits>
#include <vector>

#include "cpu_ops.h"

// Tunables of one case: forward/dq (BQ rows, BK keys, THREADS, TC) and dkdv
// (KB keys per block, KQ query tile, THREADS, TC).
template <int BQ_, int BK_, int KB_, int KQ_, int THREADS_, int TC_> struct Tun {
  static constexpr int BQ = BQ_, BK = BK_, KB = KB_, KQ = KQ_, THREADS = THREADS_, TC = TC_;
};
// The templates' defaults, as the generator gets them when it passes only the
// first tunable: the wrappers then call the templates without tunables, and
// these numbers only size the grid and the block.
struct Defaults : Tun<32, 16, 32, 16, 128, 8> {};

// The generated wrappers, as the generator would write them.
template <class T, int HD, int H, int KV, int S, bool C, class P>
__global__ void fwd_kernel(T *y, int ys, float *lse, const T *q, int qs, const T *k, int ks,
                           const T *v, int vs, int B, float scale, float cap, int window) {
  if constexpr (std::is_same_v<P, Defaults>)
    lisa::attention_forward<T, HD, H, KV, S, C>(y, ys, lse, q, qs, k, ks, v, vs, B, scale, cap, window);
  else
    lisa::attention_forward<T, HD, H, KV, S, C, P::BQ, P::BK, P::THREADS, P::TC>(
        y, ys, lse, q, qs, k, ks, v, vs, B, scale, cap, window);
}
template <class T, int HD, int H, int KV, int S, bool C, class P>
__global__ void dq_kernel(T *dq, int dqs, float *dsum, const T *dy, int dys, const T *y, int ys,
                          const T *q, int qs, const T *k, int ks, const T *v, int vs,
                          const float *lse, int B, float scale, float cap, int window) {
  if constexpr (std::is_same_v<P, Defaults>)
    lisa::attention_backward_dq<T, HD, H, KV, S, C>(dq, dqs, dsum, dy, dys, y, ys, q, qs, k, ks,
                                                    v, vs, lse, B, scale, cap, window);
  else
    lisa::attention_backward_dq<T, HD, H, KV, S, C, P::BQ, P::BK, P::THREADS, P::TC>(
        dq, dqs, dsum, dy, dys, y, ys, q, qs, k, ks, v, vs, lse, B, scale, cap, window);
}
template <class T, int HD, int H, int KV, int S, bool C, class P>
__global__ void dkdv_kernel(T *dk, int dks, T *dv, int dvs, const T *dy, int dys, const T *q,
                            int qs, const T *k, int ks, const T *v, int vs, const float *lse,
                            const float *dsum, int B, float scale, float cap, int window) {
  if constexpr (std::is_same_v<P, Defaults>)
    lisa::attention_backward_dkdv<T, HD, H, KV, S, C>(dk, dks, dv, dvs, dy, dys, q, qs, k, ks, v,
                                                      vs, lse, dsum, B, scale, cap, window);
  else
    lisa::attention_backward_dkdv<T, HD, H, KV, S, C, P::KB, P::KQ, P::THREADS, P::TC>(
        dk, dks, dv, dvs, dy, dys, q, qs, k, ks, v, vs, lse, dsum, B, scale, cap, window);
}

static float to_host_f32(float v) { return v; }
static float to_host_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class T> static T from_host_f32(float v);
template <> float from_host_f32<float>(float v) { return v; }
template <> __nv_bfloat16 from_host_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

static bool all_ff(const void *p, size_t bytes) {
  const unsigned char *c = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < bytes; i++)
    if (c[i] != 0xff) return false;
  return true;
}

// A [N, cols] slice at column col0 of a buffer with row stride st.
struct View {
  size_t off;  // element offset of row 0, column 0
  int st, cols;
};

// Random values for the slice (rounded to T), and its contiguous fp32 copy.
template <class T>
static void fill_view(emu::Guarded<T> &buf, View vw, int N, std::vector<float> &host, float lo,
                      float hi, uint64_t seed) {
  emu::Rng r(seed);
  host.assign((size_t)N * vw.cols, 0.f);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < vw.cols; c++) {
      const T x = from_host_f32<T>(r.uniform(lo, hi));
      buf[vw.off + (size_t)n * vw.st + c] = x;
      host[(size_t)n * vw.cols + c] = to_host_f32(x);
    }
}

template <class T>
static std::vector<float> read_view(const emu::Guarded<T> &buf, View vw, int N, bool *bad) {
  std::vector<float> out((size_t)N * vw.cols);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < vw.cols; c++) {
      const float x = to_host_f32(buf[vw.off + (size_t)n * vw.st + c]);
      if (!isfinite(x)) *bad = true;
      out[(size_t)n * vw.cols + c] = x;
    }
  return out;
}

// Everything outside a set of views of buf still 0xff (nothing written there).
template <class T>
static bool untouched_outside(const emu::Guarded<T> &buf, const std::vector<View> &views, int N) {
  std::vector<char> mine(buf.size(), 0);
  for (const View &vw : views)
    for (int n = 0; n < N; n++)
      for (int c = 0; c < vw.cols; c++) mine[vw.off + (size_t)n * vw.st + c] = 1;
  for (size_t i = 0; i < buf.size(); i++)
    if (!mine[i] && !all_ff(&buf[i], sizeof(T))) return false;
  return true;
}

static double max_nmse_seen[2];  // fp32, bf16

// One shape. fused: q/k/v in one qkv buffer [N, (H+2KV)*HD] and dq/dk/dv in
// one dqkv buffer; else each tensor in its own buffer with a padded stride.
template <class T, int HD, int H, int KV, int S, bool C, class P = Defaults>
static void check_case(int B, bool fused, uint64_t seed, float scale = 0.f, float cap = 0.f,
                       int window = 0) {
  const cpu_att_opts opts = {scale, cap, window};
  constexpr bool bf = sizeof(T) == 2;
  const double tol = bf ? 1e-4 : 1e-7;
  const int N = B * S, QW = H * HD, KW = KV * HD, W = (H + 2 * KV) * HD;
  const char *name = bf ? "bf16" : "fp32";

  // Inputs.
  View vq, vk, vv, vy, vdy, vdq, vdk, vdv;
  size_t in_n, y_n, dy_n, dq_n, dk_n, dv_n;
  if (fused) {
    vq = {0, W, QW}, vk = {(size_t)QW, W, KW}, vv = {(size_t)(QW + KW), W, KW};
    vdq = vq, vdk = vk, vdv = vv;
    in_n = (size_t)N * W;
    dq_n = in_n, dk_n = dv_n = 0;
  } else {
    vq = {1, QW + 1, QW}, vk = {2, KW + 2, KW}, vv = {0, KW + 5, KW};
    vdq = {0, QW + 4, QW}, vdk = {3, KW + 1, KW}, vdv = {1, KW + 3, KW};
    in_n = 0;
    dq_n = (size_t)N * vdq.st + 1, dk_n = (size_t)N * vdk.st + 3, dv_n = (size_t)N * vdv.st + 1;
  }
  vy = {2, QW + 3, QW}, vdy = {0, QW + 2, QW};
  y_n = (size_t)N * vy.st + 2, dy_n = (size_t)N * vdy.st;

  emu::Guarded<T> qkv(fused ? in_n : 1), qb(fused ? 1 : (size_t)N * vq.st + 1),
      kb(fused ? 1 : (size_t)N * vk.st + 2), vb(fused ? 1 : (size_t)N * vv.st);
  emu::Guarded<T> &Q = fused ? qkv : qb, &K = fused ? qkv : kb, &V = fused ? qkv : vb;
  std::vector<float> hq, hk, hv, hdy;
  fill_view(Q, vq, N, hq, -1.5f, 1.5f, seed + 1);
  fill_view(K, vk, N, hk, -1.5f, 1.5f, seed + 2);
  fill_view(V, vv, N, hv, -1.f, 1.f, seed + 3);
  emu::Guarded<T> dyb(dy_n);
  fill_view(dyb, vdy, N, hdy, -1.f, 1.f, seed + 4);

  // Forward.
  emu::Guarded<T> yb(y_n);
  emu::Guarded<float> lse((size_t)N * H);
  const dim3 fgrid((S + P::BQ - 1) / P::BQ, H, B), block(P::THREADS);
  int rc = emu::launch(fgrid, block, 0, fwd_kernel<T, HD, H, KV, S, C, P>, yb.data() + vy.off, vy.st,
                       lse.data(), Q.data() + vq.off, vq.st, K.data() + vk.off, vk.st,
                       V.data() + vv.off, vv.st, B, scale, cap, window);
  CHECK_MSG(rc == 0, "forward launch: %s", emu::last_error());
  if (rc) return;

  std::vector<float> ry((size_t)N * QW), rlse((size_t)N * H);
  cpu_attention_forward(ry.data(), rlse.data(), hq.data(), hk.data(), hv.data(), B, S, H, KV, HD,
                        C, &opts);
  bool bad = false;
  std::vector<float> gy = read_view(yb, vy, N, &bad);
  CHECK_MSG(!bad, "%s: y has NaN/inf or unwritten elements", name);
  CHECK_MSG(!emu::has_nan_or_inf(lse.data(), lse.size()), "%s: lse NaN/inf or unwritten", name);
  CHECK_MSG(untouched_outside(yb, {vy}, N), "%s: y written outside its columns", name);
  CHECK_GUARD(yb);
  CHECK_GUARD(lse);
  const double e_y = emu::nmse(gy.data(), ry.data(), gy.size());
  const double e_lse = emu::nmse(lse.data(), rlse.data(), rlse.size());

  // Backward: the kernels get the kernel's y (as stored, T) and lse; the
  // reference gets the same y and its own lse.
  emu::Guarded<float> dsum((size_t)N * H);
  emu::Guarded<T> dqkv(fused ? in_n : 1), dqb(fused ? 1 : dq_n), dkb(fused ? 1 : dk_n),
      dvb(fused ? 1 : dv_n);
  emu::Guarded<T> &DQ = fused ? dqkv : dqb, &DK = fused ? dqkv : dkb, &DV = fused ? dqkv : dvb;
  rc = emu::launch(fgrid, block, 0, dq_kernel<T, HD, H, KV, S, C, P>, DQ.data() + vdq.off,
                   vdq.st, dsum.data(), dyb.data() + vdy.off, vdy.st, yb.data() + vy.off,
                   vy.st, Q.data() + vq.off, vq.st, K.data() + vk.off, vk.st, V.data() + vv.off,
                   vv.st, lse.data(), B, scale, cap, window);
  CHECK_MSG(rc == 0, "dq launch: %s", emu::last_error());
  if (rc) return;
  const dim3 kgrid((S + P::KB - 1) / P::KB, KV, B);
  rc = emu::launch(kgrid, block, 0, dkdv_kernel<T, HD, H, KV, S, C, P>, DK.data() + vdk.off,
                   vdk.st, DV.data() + vdv.off, vdv.st, dyb.data() + vdy.off, vdy.st,
                   Q.data() + vq.off, vq.st, K.data() + vk.off, vk.st, V.data() + vv.off, vv.st,
                   lse.data(), dsum.data(), B, scale, cap, window);
  CHECK_MSG(rc == 0, "dkdv launch: %s", emu::last_error());
  if (rc) return;

  std::vector<float> rdq((size_t)N * QW), rdk((size_t)N * KW), rdv((size_t)N * KW);
  cpu_attention_backward(rdq.data(), rdk.data(), rdv.data(), hdy.data(), hq.data(), hk.data(),
                         hv.data(), gy.data(), rlse.data(), B, S, H, KV, HD, C, &opts);
  std::vector<float> gdq = read_view(DQ, vdq, N, &bad), gdk = read_view(DK, vdk, N, &bad),
                     gdv = read_view(DV, vdv, N, &bad);
  CHECK_MSG(!bad, "%s: dq/dk/dv have NaN/inf or unwritten elements", name);
  CHECK_MSG(!emu::has_nan_or_inf(dsum.data(), dsum.size()), "%s: dsum NaN/inf or unwritten",
            name);
  if (fused) {
    CHECK_MSG(untouched_outside(dqkv, {vdq, vdk, vdv}, N), "%s: dqkv written outside", name);
    CHECK_GUARD(dqkv);
  } else {
    CHECK_MSG(untouched_outside(dqb, {vdq}, N), "%s: dq written outside its columns", name);
    CHECK_MSG(untouched_outside(dkb, {vdk}, N), "%s: dk written outside its columns", name);
    CHECK_MSG(untouched_outside(dvb, {vdv}, N), "%s: dv written outside its columns", name);
    CHECK_GUARD(dqb);
    CHECK_GUARD(dkb);
    CHECK_GUARD(dvb);
  }
  CHECK_GUARD(dsum);
  CHECK_GUARD(qkv);
  CHECK_GUARD(qb);
  CHECK_GUARD(kb);
  CHECK_GUARD(vb);
  CHECK_GUARD(dyb);
  const double e_dq = emu::nmse(gdq.data(), rdq.data(), gdq.size());
  const double e_dk = emu::nmse(gdk.data(), rdk.data(), gdk.size());
  const double e_dv = emu::nmse(gdv.data(), rdv.data(), gdv.size());

  printf("  %s HD=%d heads=%d kv=%d T=%d B=%d %s %s tiles(%d,%d|%d,%d) thr=%d tc=%d: nmse y %.2e "
         "lse %.2e dq %.2e dk %.2e dv %.2e\n",
         name, HD, H, KV, S, B, C ? "causal" : "full", fused ? "fused" : "strided", P::BQ,
         P::BK, P::KB, P::KQ, P::THREADS, P::TC, e_y, e_lse, e_dq, e_dk, e_dv);
  const double worst = fmax(fmax(fmax(e_y, e_lse), fmax(e_dq, e_dk)), e_dv);
  if (worst > max_nmse_seen[bf]) max_nmse_seen[bf] = worst;
  CHECK_MSG(e_y < tol, "%s y nmse %g", name, e_y);
  CHECK_MSG(e_lse < tol, "%s lse nmse %g", name, e_lse);
  CHECK_MSG(e_dq < tol, "%s dq nmse %g", name, e_dq);
  CHECK_MSG(e_dk < tol, "%s dk nmse %g", name, e_dk);
  CHECK_MSG(e_dv < tol, "%s dv nmse %g", name, e_dv);
}

// Small tiles, so that one row crosses several key tiles and one block's keys
// several query tiles: TR = THREADS/TC lane groups, R rows each.
using Small = Tun<8, 4, 8, 4, 32, 4>;     // R = 1 (fwd/dq), 1 (dkdv)
using Mid = Tun<16, 8, 16, 8, 64, 8>;     // R = 2, 2
using Wide = Tun<32, 16, 16, 8, 64, 16>;  // TC=16 > HD=8: lanes that own no column

static void test_fp32_gqa_causal() {
  check_case<float, 12, 3, 1, 13, true, Small>(2, true, 100);   // fused qkv
  check_case<float, 12, 3, 1, 13, true, Small>(2, false, 110);  // own strides
}
static void test_fp32_full_gqa() {
  check_case<float, 20, 4, 2, 33, false, Mid>(1, false, 200);
  check_case<float, 20, 4, 2, 33, true, Mid>(1, true, 210);
}
static void test_fp32_narrow_heads() {
  check_case<float, 8, 3, 3, 33, true, Wide>(1, false, 300);
  check_case<float, 8, 3, 3, 5, false, Small>(2, true, 310);
}
static void test_fp32_defaults() {
  check_case<float, 64, 2, 2, 5, true>(2, true, 400);
  check_case<float, 128, 2, 1, 13, false>(1, false, 410);
  check_case<float, 64, 2, 1, 33, true, Mid>(1, true, 420);
}
// Head size 256 (Gemma) at the tiles the generator picks for it
// (lisa_attention_tile, lisa_attention_dkdv_bkv): BK 16, BKV 16, BQ 16.
using Hd256 = Tun<32, 16, 16, 16, 128, 8>;
// Gemma 2: a scale of its own and scores soft-capped by tanh (a cap of 2
// bends most of these scores).
static void test_scale_softcap() {
  check_case<float, 12, 3, 1, 13, true, Small>(2, true, 700, 0.4f, 2.0f);
  check_case<float, 20, 4, 2, 33, false, Mid>(1, false, 710, 0.3f, 2.0f);
  check_case<float, 256, 2, 1, 13, true, Hd256>(1, false, 720, 0.0625f, 5.0f);
  check_case<__nv_bfloat16, 20, 4, 2, 13, true, Mid>(2, true, 730, 0.3f, 2.0f);
}
// Mistral's sliding window: a row sees its last `window` keys; windows that
// end inside a key tile and span several (Mid: 8-key tiles), with a soft cap.
static void test_window() {
  check_case<float, 12, 3, 1, 13, true, Small>(2, true, 800, 0.f, 0.f, 3);
  check_case<float, 20, 4, 2, 33, true, Mid>(1, false, 810, 0.f, 0.f, 11);
  check_case<float, 20, 4, 2, 33, true, Mid>(1, true, 820, 0.3f, 2.0f, 17);
  check_case<__nv_bfloat16, 20, 4, 2, 33, true, Mid>(2, true, 830, 0.f, 0.f, 5);
}
static void test_head_256() {
  check_case<float, 256, 2, 1, 13, true, Hd256>(1, false, 600);
  check_case<__nv_bfloat16, 256, 2, 2, 9, true, Hd256>(1, true, 610);
}
static void test_bf16() {
  check_case<__nv_bfloat16, 12, 3, 1, 33, true, Small>(1, false, 500);
  check_case<__nv_bfloat16, 20, 4, 2, 13, false, Mid>(2, true, 510);
  check_case<__nv_bfloat16, 128, 2, 1, 13, true>(1, true, 520);
  check_case<__nv_bfloat16, 64, 3, 1, 5, false>(1, false, 530);
}

// A block of the wrong size traps (fails the launch) instead of computing
// part of the rows.
static void test_wrong_block_traps() {
  emu::Guarded<float> q(64), y(64), lse(8);
  const int rc = emu::launch(dim3(1, 1, 1), dim3(64), 0, fwd_kernel<float, 8, 1, 1, 8, true, Defaults>,
                             y.data(), 8, lse.data(), q.data(), 8, q.data(), 8, q.data(), 8, 1, 0.f, 0.f, 0);
  CHECK(rc != 0);
}

int main() {
  RUN(test_fp32_gqa_causal);
  RUN(test_fp32_full_gqa);
  RUN(test_fp32_narrow_heads);
  RUN(test_fp32_defaults);
  RUN(test_bf16);
  RUN(test_head_256);
  RUN(test_scale_softcap);
  RUN(test_window);
  RUN(test_wrong_block_traps);
  printf("worst nmse: fp32 %.2e (limit 1e-7), bf16 %.2e (limit 1e-4)\n", max_nmse_seen[0],
         max_nmse_seen[1]);
  return check_exit();
}
