// test_emu_attention_mma: templates/mma.cuh and attention_mma.cuh under the
// host CUDA emulator. The m16n8k16 product against a host matmul from
// fragments laid out as the PTX ISA documents them; ldmatrix (plain and
// .trans) against the ISA's fragment tables; the tensor-core
// attention forward against cpu_attention_forward at odd sequence lengths
// (partial query and key tiles), causal and not, grouped-query, q/k/v inside
// one fused buffer or each with its own padded stride, several tile shapes.
#include "cuda_emu.h"
#include "emu_check.h"

#include "lisa_common.cuh"
#include "attention_mma.cuh"

#include <vector>

#include "cpu_ops.h"

using bf16 = __nv_bfloat16;

// ---- the product -----------------------------------------------------------

// One warp: lane (g, t) builds its fragments from A [16x16] and B [16x8]
// (row-major, host bf16) by the documented layout and writes D's.
__global__ void mma_kernel(float *d, const bf16 *a, const bf16 *b, const float *c) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  auto A = [&](int r, int k) { return a[r * 16 + k]; };
  auto Bk = [&](int k, int n) { return b[k * 8 + n]; };
  const unsigned af[4] = {lisa::pack_bf16x2(A(g, 2 * t), A(g, 2 * t + 1)),
                          lisa::pack_bf16x2(A(g + 8, 2 * t), A(g + 8, 2 * t + 1)),
                          lisa::pack_bf16x2(A(g, 8 + 2 * t), A(g, 9 + 2 * t)),
                          lisa::pack_bf16x2(A(g + 8, 8 + 2 * t), A(g + 8, 9 + 2 * t))};
  const unsigned bfr[2] = {lisa::pack_bf16x2(Bk(2 * t, g), Bk(2 * t + 1, g)),
                           lisa::pack_bf16x2(Bk(8 + 2 * t, g), Bk(9 + 2 * t, g))};
  float acc[4] = {c[g * 8 + 2 * t], c[g * 8 + 2 * t + 1], c[(g + 8) * 8 + 2 * t],
                  c[(g + 8) * 8 + 2 * t + 1]};
  lisa::mma_bf16_16816(acc, af, bfr);
  d[g * 8 + 2 * t] = acc[0], d[g * 8 + 2 * t + 1] = acc[1];
  d[(g + 8) * 8 + 2 * t] = acc[2], d[(g + 8) * 8 + 2 * t + 1] = acc[3];
}

static void test_mma_product() {
  emu::Rng r(11);
  emu::Guarded<bf16> a(256), b(128);
  emu::Guarded<float> c(128), d(128);
  for (int i = 0; i < 256; i++) a[i] = __float2bfloat16_rn(r.uniform(-2.f, 2.f));
  for (int i = 0; i < 128; i++) b[i] = __float2bfloat16_rn(r.uniform(-2.f, 2.f));
  for (int i = 0; i < 128; i++) c[i] = r.uniform(-1.f, 1.f);
  int rc = emu::launch(dim3(1), dim3(32), 0, mma_kernel, d.data(), a.data(), b.data(), c.data());
  CHECK_MSG(rc == 0, "launch: %s", emu::last_error());
  double worst = 0;
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 8; j++) {
      double want = c[i * 8 + j];
      for (int k = 0; k < 16; k++)
        want += (double)__bfloat162float(a[i * 16 + k]) * __bfloat162float(b[k * 8 + j]);
      worst = fmax(worst, fabs(d[i * 8 + j] - want));
    }
  CHECK_MSG(worst < 1e-5, "D = C + A B: worst error %g", worst);
  CHECK_GUARD(d);
}

// ---- ldmatrix ----------------------------------------------------------------

// Four 8x8 matrices of 16-bit codes (matrix i, row r, column c: 0x1000 * (i
// + 1) + 16 r + c) at scattered 16-byte aligned rows of shared memory
// (stride 12 words, matrices out of order); every lane's words out.
__global__ void ldmatrix_kernel(unsigned *out, int trans) {
  __shared__ __align__(16) unsigned smem[4 * 8 * 12];
  const int lane = threadIdx.x;
  const int where[4] = {2, 0, 3, 1};  // matrix i's rows start at row 8 * where[i]
  for (int w = lane; w < 4 * 8 * 12; w += 32) smem[w] = 0xdeadbeefu;
  __syncwarp();
  for (int i = 0; i < 4; ++i)
    if (lane < 8)
      for (int c = 0; c < 8; c += 2) {
        const unsigned lo = 0x1000u * (i + 1) + 16u * lane + c;
        smem[(8 * where[i] + lane) * 12 + c / 2] = lo | ((lo + 1) << 16);
      }
  __syncwarp();
  const unsigned *row = smem + (8 * where[lane / 8] + lane % 8) * 12;
  unsigned r[4];
  if (trans) lisa::ldmatrix_x4_trans(r, row);
  else lisa::ldmatrix_x4(r, row);
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r[i];
}

// The PTX ISA's fragment tables: lane (g, t), word i = matrix i's row g,
// columns 2t and 2t+1; with .trans, column g of rows 2t and 2t+1.
static void test_ldmatrix() {
  for (int trans = 0; trans < 2; trans++) {
    emu::Guarded<unsigned> out(128);
    int rc = emu::launch(dim3(1), dim3(32), 0, ldmatrix_kernel, out.data(), trans);
    CHECK_MSG(rc == 0, "launch: %s", emu::last_error());
    int bad = 0;
    for (int lane = 0; lane < 32; lane++)
      for (int i = 0; i < 4; i++) {
        const int g = lane / 4, t = lane % 4;
        auto code = [&](int r, int c) { return 0x1000u * (i + 1) + 16u * r + c; };
        const unsigned want = trans ? code(2 * t, g) | (code(2 * t + 1, g) << 16)
                                    : code(g, 2 * t) | (code(g, 2 * t + 1) << 16);
        if (out[lane * 4 + i] != want && bad++ < 4)
          fprintf(stderr, "%s lane %d word %d: %08x, want %08x\n", trans ? "trans" : "plain", lane,
                  i, out[lane * 4 + i], want);
      }
    CHECK_MSG(bad == 0, "ldmatrix%s: %d words off the ISA's layout", trans ? ".trans" : "", bad);
    CHECK_GUARD(out);
  }
}

// ---- attention ----------------------------------------------------------------

template <int HD, int H, int KV, int S, bool C, int WARPS, int BK>
__global__ void fwd_kernel(bf16 *y, int ys, float *lse, const bf16 *q, int qs, const bf16 *k,
                           int ks, const bf16 *v, int vs, int B) {
  lisa::attention_forward_mma<HD, H, KV, S, C, WARPS, BK>(y, ys, lse, q, qs, k, ks, v, vs, B);
}
template <int HD, int H, int KV, int S, bool C, int WARPS, int BK>
__global__ void dq_kernel(bf16 *dq, int dqs, float *dsum, const bf16 *dy, int dys, const bf16 *y,
                          int ys, const bf16 *q, int qs, const bf16 *k, int ks, const bf16 *v,
                          int vs, const float *lse, int B) {
  lisa::attention_backward_dq_mma<HD, H, KV, S, C, WARPS, BK>(dq, dqs, dsum, dy, dys, y, ys, q, qs,
                                                              k, ks, v, vs, lse, B);
}
template <int HD, int H, int KV, int S, bool C, int WARPS, int BQ>
__global__ void dkdv_kernel(bf16 *dk, int dks, bf16 *dv, int dvs, const bf16 *dy, int dys,
                            const bf16 *q, int qs, const bf16 *k, int ks, const bf16 *v, int vs,
                            const float *lse, const float *dsum, int B) {
  lisa::attention_backward_dkdv_mma<HD, H, KV, S, C, WARPS, BQ>(dk, dks, dv, dvs, dy, dys, q, qs, k,
                                                                ks, v, vs, lse, dsum, B);
}

// A [N, cols] slice at element off of a buffer with row stride st.
struct View {
  size_t off;
  int st, cols;
};

static void fill(emu::Guarded<bf16> &buf, View vw, int N, std::vector<float> &host, float lo,
                 float hi, uint64_t seed) {
  emu::Rng r(seed);
  host.assign((size_t)N * vw.cols, 0.f);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < vw.cols; c++) {
      const bf16 x = __float2bfloat16_rn(r.uniform(lo, hi));
      buf[vw.off + (size_t)n * vw.st + c] = x;
      host[(size_t)n * vw.cols + c] = __bfloat162float(x);
    }
}

// The slice's values as floats; false if anything outside it was written
// (the buffer starts as 0xff bytes) or it holds NaN/inf.
static bool read_slice(const emu::Guarded<bf16> &buf, View vw, int N, std::vector<float> &out,
                       const std::vector<View> &others = {}) {
  out.assign((size_t)N * vw.cols, 0.f);
  bool ok = true;
  for (size_t i = 0; i < buf.size(); i++) {
    bool mine = false;
    for (const View &o : others)
      mine = mine || (i >= o.off && (i - o.off) / o.st < (size_t)N && (int)((i - o.off) % o.st) < o.cols);
    size_t rel = i - vw.off;
    if (i >= vw.off && rel / vw.st < (size_t)N && (int)(rel % vw.st) < vw.cols) {
      const float x = __bfloat162float(buf[i]);
      ok = ok && isfinite(x);
      out[(rel / vw.st) * vw.cols + rel % vw.st] = x;
    } else if (!mine) {
      ok = ok && __bfloat16_as_ushort(buf[i]) == 0xffff;
    }
  }
  return ok;
}

static double worst_nmse = 0;

// Tiles: the forward's and dq's warps and key tile; dkdv's warps and query tile.
template <int WF, int BK, int WB, int BQ> struct Tiles {
  static constexpr int fwd_warps = WF, bk = BK, kv_warps = WB, bq = BQ;
};
using Default = Tiles<4, 64, 4, 64>;

template <int HD, int H, int KV, int S, bool C, class P = Default>
static void check_case(int B, bool fused, uint64_t seed) {
  const int N = B * S, QW = H * HD, KW = KV * HD, W = (H + 2 * KV) * HD;
  View vq, vk, vv, vdq, vdk, vdv;
  if (fused) {
    vq = {0, W, QW}, vk = {(size_t)QW, W, KW}, vv = {(size_t)(QW + KW), W, KW};
    vdq = vq, vdk = vk, vdv = vv;
  } else {
    // every row starts at a multiple of 8 elements (16-byte copies in and
    // out, as the generator checks), with strides and offsets of their own
    vq = {8, QW + 8, QW}, vk = {16, KW + 24, KW}, vv = {0, KW + 8, KW};
    vdq = {8, QW + 8, QW}, vdk = {0, KW + 16, KW}, vdv = {8, KW + 8, KW};
  }
  const View vy = {8, QW + 8, QW}, vdy = {0, QW + 8, QW};
  emu::Guarded<bf16> qkv(fused ? (size_t)N * W : 1), qb(fused ? 1 : (size_t)N * vq.st + 8),
      kb(fused ? 1 : (size_t)N * vk.st + 16), vb(fused ? 1 : (size_t)N * vv.st);
  emu::Guarded<bf16> &Q = fused ? qkv : qb, &K = fused ? qkv : kb, &V = fused ? qkv : vb;
  std::vector<float> hq, hk, hv, hdy;
  fill(Q, vq, N, hq, -1.5f, 1.5f, seed + 1);
  fill(K, vk, N, hk, -1.5f, 1.5f, seed + 2);
  fill(V, vv, N, hv, -1.f, 1.f, seed + 3);
  emu::Guarded<bf16> dyb((size_t)N * vdy.st);
  fill(dyb, vdy, N, hdy, -1.f, 1.f, seed + 4);

  emu::Guarded<bf16> yb((size_t)N * vy.st + 8);
  emu::Guarded<float> lse((size_t)N * H), dsum((size_t)N * H);
  constexpr int BQF = 16 * P::fwd_warps, BKV = 16 * P::kv_warps;
  const dim3 qgrid((S + BQF - 1) / BQF, H, B), qblock(32 * P::fwd_warps);
  int rc = emu::launch(qgrid, qblock, 0, fwd_kernel<HD, H, KV, S, C, P::fwd_warps, P::bk>,
                       yb.data() + vy.off, vy.st, lse.data(), Q.data() + vq.off, vq.st,
                       K.data() + vk.off, vk.st, V.data() + vv.off, vv.st, B);
  CHECK_MSG(rc == 0, "forward launch: %s", emu::last_error());
  if (rc) return;
  std::vector<float> ry((size_t)N * QW), rlse((size_t)N * H), gy;
  cpu_attention_forward(ry.data(), rlse.data(), hq.data(), hk.data(), hv.data(), B, S, H, KV, HD, C, nullptr);
  CHECK_MSG(read_slice(yb, vy, N, gy), "y: NaN/inf, unwritten, or written outside its columns");
  CHECK_MSG(!emu::has_nan_or_inf(lse.data(), lse.size()), "lse NaN/inf or unwritten");

  // Backward: the kernels get the kernel's y (as stored) and lse; the
  // reference the same y and its own lse.
  emu::Guarded<bf16> dqkv(fused ? (size_t)N * W : 1), dqb(fused ? 1 : (size_t)N * vdq.st + 8),
      dkb(fused ? 1 : (size_t)N * vdk.st), dvb(fused ? 1 : (size_t)N * vdv.st + 8);
  emu::Guarded<bf16> &DQ = fused ? dqkv : dqb, &DK = fused ? dqkv : dkb, &DV = fused ? dqkv : dvb;
  rc = emu::launch(qgrid, qblock, 0, dq_kernel<HD, H, KV, S, C, P::fwd_warps, P::bk>,
                   DQ.data() + vdq.off, vdq.st, dsum.data(), dyb.data() + vdy.off, vdy.st,
                   yb.data() + vy.off, vy.st, Q.data() + vq.off, vq.st, K.data() + vk.off, vk.st,
                   V.data() + vv.off, vv.st, lse.data(), B);
  CHECK_MSG(rc == 0, "dq launch: %s", emu::last_error());
  if (rc) return;
  rc = emu::launch(dim3((S + BKV - 1) / BKV, KV, B), dim3(32 * P::kv_warps), 0,
                   dkdv_kernel<HD, H, KV, S, C, P::kv_warps, P::bq>, DK.data() + vdk.off, vdk.st,
                   DV.data() + vdv.off, vdv.st, dyb.data() + vdy.off, vdy.st, Q.data() + vq.off,
                   vq.st, K.data() + vk.off, vk.st, V.data() + vv.off, vv.st, lse.data(),
                   dsum.data(), B);
  CHECK_MSG(rc == 0, "dkdv launch: %s", emu::last_error());
  if (rc) return;
  std::vector<float> rdq((size_t)N * QW), rdk((size_t)N * KW), rdv((size_t)N * KW);
  cpu_attention_backward(rdq.data(), rdk.data(), rdv.data(), hdy.data(), hq.data(), hk.data(),
                         hv.data(), gy.data(), rlse.data(), B, S, H, KV, HD, C, nullptr);
  std::vector<float> gdq, gdk, gdv;
  const std::vector<View> all = {vdq, vdk, vdv};
  CHECK_MSG(read_slice(DQ, vdq, N, gdq, fused ? all : std::vector<View>{}), "dq: bad or stray writes");
  CHECK_MSG(read_slice(DK, vdk, N, gdk, fused ? all : std::vector<View>{}), "dk: bad or stray writes");
  CHECK_MSG(read_slice(DV, vdv, N, gdv, fused ? all : std::vector<View>{}), "dv: bad or stray writes");
  CHECK_MSG(!emu::has_nan_or_inf(dsum.data(), dsum.size()), "dsum NaN/inf or unwritten");
  CHECK_GUARD(yb);
  CHECK_GUARD(lse);
  CHECK_GUARD(dsum);
  CHECK_GUARD(dqkv);
  CHECK_GUARD(dqb);
  CHECK_GUARD(dkb);
  CHECK_GUARD(dvb);
  CHECK_GUARD(qkv);
  CHECK_GUARD(qb);
  CHECK_GUARD(kb);
  CHECK_GUARD(vb);
  CHECK_GUARD(dyb);

  const double e_y = emu::nmse(gy.data(), ry.data(), gy.size());
  const double e_lse = emu::nmse(lse.data(), rlse.data(), rlse.size());
  const double e_dq = emu::nmse(gdq.data(), rdq.data(), gdq.size());
  const double e_dk = emu::nmse(gdk.data(), rdk.data(), gdk.size());
  const double e_dv = emu::nmse(gdv.data(), rdv.data(), gdv.size());
  printf("  HD=%d heads=%d kv=%d T=%d B=%d %s %s tiles (%d,%d|%d,%d): nmse y %.2e lse %.2e "
         "dq %.2e dk %.2e dv %.2e\n",
         HD, H, KV, S, B, C ? "causal" : "full", fused ? "fused" : "strided", P::fwd_warps, P::bk,
         P::kv_warps, P::bq, e_y, e_lse, e_dq, e_dk, e_dv);
  worst_nmse = fmax(worst_nmse, fmax(fmax(e_y, e_dq), fmax(e_dk, e_dv)));
  /* inputs are bf16 on both sides; outputs are stored in bf16, and P and dS
   * are rounded to bf16 for their products */
  CHECK_MSG(e_y < 1e-4, "y nmse %g", e_y);
  CHECK_MSG(e_lse < 1e-6, "lse nmse %g", e_lse);
  CHECK_MSG(e_dq < 1e-4, "dq nmse %g", e_dq);
  CHECK_MSG(e_dk < 1e-4, "dk nmse %g", e_dk);
  CHECK_MSG(e_dv < 1e-4, "dv nmse %g", e_dv);
}

using Narrow = Tiles<2, 32, 2, 32>;
using Mixed = Tiles<8, 64, 2, 16>;

static void test_causal() {
  check_case<16, 2, 2, 5, true>(2, true, 100);            // one partial tile
  check_case<64, 3, 1, 70, true, Narrow>(1, false, 110);   // several tiles each way, GQA
  check_case<64, 2, 2, 130, true>(1, true, 120);          // key tiles past a warp's rows
}
static void test_full() {
  check_case<32, 4, 2, 37, false, Narrow>(2, false, 200);
  check_case<128, 2, 1, 21, false, Tiles<4, 32, 4, 32>>(1, true, 210);
  check_case<80, 2, 1, 33, true, Tiles<2, 32, 2, 16>>(1, false, 220);  // 5 k-chunks, 10 n-tiles
}
// Tiles too small to stage 16 rows a warp for the outputs: the 32-bit stores.
using Unstaged = Tiles<8, 32, 4, 16>;
static void test_mixed_tiles() {
  check_case<64, 2, 1, 150, true, Mixed>(1, false, 300);
  check_case<64, 2, 1, 70, false, Unstaged>(1, false, 310);
}

int main() {
  RUN(test_mma_product);
  RUN(test_ldmatrix);
  RUN(test_causal);
  RUN(test_full);
  RUN(test_mixed_tiles);
  printf("worst nmse %.2e (limit 1e-4)\n", worst_nmse);
  return check_exit();
}
