// Extreme inputs: the templates against cpu_ops where values are large, tiny,
// signed zeros, infinite or NaN. Table-driven: each op's inputs come from one
// table (plus ordinary values around them), and every output element must be
// NaN exactly where the CPU's is, the same infinity where the CPU's is one,
// and otherwise finite and close (relative to the largest ordinary value of
// its row). A kernel may compute in another order than the CPU, never
// produce a NaN or an inf the CPU does not.
//   activations  GELU and SiLU, forward and backward (LLaMA's SwiGLU and GPT-2's
//                MLP take these kernels), over the tails where exp overflows
//   norms        LayerNorm and RMSNorm rows of +-1e4, constant rows, -0, a NaN
//   cross entropy  logits of +-1e4, +-88/89, all equal, a NaN in one row
//   attention    scores of +-1e4 (a saturated softmax), -0 queries
//   rope         every table value in every rotated pair, positions to 4100
//   adamw        weights, gradients and moments from the table, bit for bit
//                against optim.c where the result is not NaN
//   embedding    +-0, +-inf, NaN and extreme values copied bit for bit
#include "cuda_emu.h"
#include "emu_check.h"

#include "lisa_common.cuh"
#include "elementwise.cuh"
#include "norm.cuh"
#include "attention.cuh"
#include "cross_entropy.cuh"
#include "embedding.cuh"
#include "rope.cuh"
#include "adamw.cuh"

#include <cmath>
#include <vector>

#include "cpu_ops.h"
#include "optim.h"

using Vec = std::vector<float>;

static const float kInf = INFINITY, kNaN = NAN;

// The table every op draws from.
static const float kExtreme[] = {0.f,    -0.f,   1e-30f, -1e-30f, 1.f,     -1.f,   10.f,
                                 -10.f,  10.1f,  -10.1f, 20.f,    -20.f,   88.f,   -88.f,
                                 89.f,   -89.f,  1e4f,   -1e4f,   3e38f,   -3e38f, kInf,
                                 -kInf,  kNaN};
static const int kNExtreme = sizeof kExtreme / sizeof kExtreme[0];

#define LAUNCH(grid, block, ...)                                       \
  do {                                                                 \
    int rc_ = emu::launch(dim3(grid), dim3(block), 0, __VA_ARGS__);    \
    CHECK_MSG(rc_ == 0, "launch: %s", emu::last_error());              \
  } while (0)

// got[i] against ref[i]: NaN where ref is NaN, the same infinity, else
// finite and within rel * scale (+ abs) of ref. Reports the first miss.
static void agree(const char *what, const Vec &got, const Vec &ref, double rel, double abs_tol,
                  double scale, const float *input = nullptr) {
  for (size_t i = 0; i < ref.size(); i++) {
    const float g = got[i], r = ref[i];
    bool ok;
    if (std::isnan(r)) ok = std::isnan(g);
    else if (std::isinf(r)) ok = g == r;
    else ok = std::isfinite(g) && std::fabs((double)g - r) <= rel * scale + abs_tol;
    if (!ok) {
      CHECK_MSG(0, "%s [%zu]%s%g: kernel %.9g, cpu %.9g", what, i, input ? " at x = " : "",
                input ? input[i] : 0.0, g, r);
      return;
    }
  }
}

// ---- activations -------------------------------------------------------------

__global__ void act_kernel(float *gf, float *gb, float *sf, float *sb, const float *x,
                           const float *dy, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  gf[i] = lisa::gelu_forward(x[i]);
  gb[i] = lisa::gelu_backward(dy[i], x[i]);
  sf[i] = lisa::silu_forward(x[i]);
  sb[i] = lisa::silu_backward(dy[i], x[i]);
}

static void test_activations() {
  // every table value, and a sweep through both tails, times three dy
  Vec x(kExtreme, kExtreme + kNExtreme);
  for (float v = -120.f; v <= 120.f; v += 0.37f) x.push_back(v);
  const float dys[] = {1.f, -3.f, 1e-3f};
  Vec xs, dy;
  for (float d : dys)
    for (float v : x) xs.push_back(v), dy.push_back(d);
  const int n = (int)xs.size();
  Vec gf(n), gb(n), sf(n), sb(n), rgf(n), rgb(n), rsf(n), rsb(n);
  LAUNCH((n + 127) / 128, 128, act_kernel, gf.data(), gb.data(), sf.data(), sb.data(),
         (const float *)xs.data(), (const float *)dy.data(), n);
  cpu_gelu_forward(rgf.data(), xs.data(), n);
  cpu_gelu_backward(rgb.data(), dy.data(), xs.data(), n);
  cpu_silu_forward(rsf.data(), xs.data(), n);
  cpu_silu_backward(rsb.data(), dy.data(), xs.data(), n);
  // relative to each value (expf against cpu_ops' polynomial: a few ulps)
  for (int i = 0; i < n; i++) {
    struct { const char *name; float g, r; } outs[] = {
        {"gelu forward", gf[i], rgf[i]}, {"gelu backward", gb[i], rgb[i]},
        {"silu forward", sf[i], rsf[i]}, {"silu backward", sb[i], rsb[i]}};
    for (const auto &o : outs) {
      Vec g1 = {o.g}, r1 = {o.r};
      char what[96];
      snprintf(what, sizeof what, "%s (dy %g)", o.name, dy[i]);
      agree(what, g1, r1, 4e-6, 1e-30, std::fabs(o.r), &xs[i]);
    }
  }
}

// ---- norms -------------------------------------------------------------------

template <int C, int TH, int R>
__global__ void ln_kernel(float *y, float *m, float *r, const float *x, const float *w,
                          const float *b, int N, float eps) {
  lisa::layernorm_forward<float, C, TH, R>(y, m, r, x, w, b, N, eps);
}
template <int C, int TH, int R>
__global__ void rms_kernel(float *y, float *r, const float *x, const float *w, int N, float eps,
                           float off) {
  lisa::rmsnorm_forward<float, C, TH, R>(y, r, x, w, N, eps, off);
}

static void test_norms() {
  constexpr int C = 40, TH = lisa::norm_threads<float, C>(), R = lisa::norm_rows<float, C>();
  // one row per case: ordinary values with the case's value in some columns
  std::vector<Vec> rows;
  for (int k = 0; k < kNExtreme; k++) {
    Vec r(C);
    emu::fill_uniform(r.data(), C, -1.f, 1.f, 100 + k);
    for (int c = 3; c < C; c += 7) r[c] = kExtreme[k];
    rows.push_back(r);
  }
  rows.push_back(Vec(C, 88.f));     // constant: variance 0
  rows.push_back(Vec(C, -0.f));     // all -0
  rows.push_back(Vec(C, 1e4f));     // constant and large
  Vec big(C);
  for (int c = 0; c < C; c++) big[c] = c % 2 ? 1e4f : -1e4f;
  rows.push_back(big);
  const int N = (int)rows.size();
  Vec x, w(C), b(C);
  for (auto &r : rows) x.insert(x.end(), r.begin(), r.end());
  emu::fill_uniform(w.data(), C, 0.5f, 1.5f, 7);
  emu::fill_uniform(b.data(), C, -0.5f, 0.5f, 8);
  const float eps = 1e-5f;
  Vec y(x.size()), m(N), rs(N), ry(x.size()), rm(N), rrs(N);
  const int grid = (N + R - 1) / R;
  LAUNCH(grid, TH * R, ln_kernel<C, TH, R>, y.data(), m.data(), rs.data(), (const float *)x.data(),
         (const float *)w.data(), (const float *)b.data(), N, eps);
  cpu_layernorm_forward(ry.data(), rm.data(), rrs.data(), x.data(), w.data(), b.data(), N, C, eps);
  for (int n = 0; n < N; n++) {
    char what[64];
    snprintf(what, sizeof what, "layernorm row %d", n);
    const size_t o = (size_t)n * C;
    agree(what, Vec(y.begin() + o, y.begin() + o + C), Vec(ry.begin() + o, ry.begin() + o + C),
          1e-4, 1e-6, 4.0);
    agree("layernorm mean", {m[n]}, {rm[n]}, 1e-6, 0, std::fabs(rm[n]) + 1e-6);
  }
  for (float off : {0.f, 1.f}) {
    LAUNCH(grid, TH * R, rms_kernel<C, TH, R>, y.data(), rs.data(), (const float *)x.data(),
           (const float *)w.data(), N, eps, off);
    cpu_rmsnorm_forward(ry.data(), rrs.data(), x.data(), w.data(), N, C, eps, off);
    for (int n = 0; n < N; n++) {
      char what[64];
      snprintf(what, sizeof what, "rmsnorm (offset %g) row %d", off, n);
      const size_t o = (size_t)n * C;
      agree(what, Vec(y.begin() + o, y.begin() + o + C), Vec(ry.begin() + o, ry.begin() + o + C),
            1e-4, 1e-6, 8.0);
    }
  }
}

// ---- cross entropy -----------------------------------------------------------

extern "C" __global__ void ce_kernel(float *d, float *l, const float *x, const int *t, int N,
                                     float s) {
  lisa::cross_entropy_fused<float, 37, 64>(d, l, x, t, N, s);
}

static void test_cross_entropy() {
  constexpr int V = 37;
  std::vector<Vec> rows;
  std::vector<int> tgt;
  for (int k = 0; k < kNExtreme; k++) {
    Vec r(V);
    emu::fill_uniform(r.data(), V, -2.f, 2.f, 300 + k);
    r[5] = kExtreme[k], r[20] = kExtreme[k];
    rows.push_back(r), tgt.push_back(5);
    rows.push_back(r), tgt.push_back(6);
  }
  rows.push_back(Vec(V, 1e4f)), tgt.push_back(3);   // all equal and large
  Vec sep(V, -89.f);
  sep[9] = 89.f;
  rows.push_back(sep), tgt.push_back(9);            // a margin of 178
  rows.push_back(sep), tgt.push_back(0);            // the target far below
  const int N = (int)rows.size();
  Vec x;
  for (auto &r : rows) x.insert(x.end(), r.begin(), r.end());
  Vec d(x.size()), loss(N), rd(x.size());
  LAUNCH(N, 64, ce_kernel, d.data(), loss.data(), (const float *)x.data(),
         (const int *)tgt.data(), N, 1.0f);
  cpu_cross_entropy_backward(rd.data(), x.data(), tgt.data(), N, V, (float)N);
  for (int n = 0; n < N; n++) {
    const float want = cpu_cross_entropy_forward(x.data() + (size_t)n * V, &tgt[n], 1, V);
    char what[64];
    snprintf(what, sizeof what, "cross entropy loss row %d", n);
    agree(what, {loss[n]}, {want}, 1e-5, 1e-5, std::fabs(want));
    snprintf(what, sizeof what, "cross entropy dlogits row %d", n);
    const size_t o = (size_t)n * V;
    agree(what, Vec(d.begin() + o, d.begin() + o + V), Vec(rd.begin() + o, rd.begin() + o + V),
          1e-5, 1e-7, 1.0);
  }
}

// ---- attention -----------------------------------------------------------------

template <int HD, int S>
__global__ void att_kernel(float *y, float *lse, const float *q, const float *k, const float *v,
                           int B) {
  lisa::attention_forward<float, HD, 2, 1, S, true>(y, 2 * HD, lse, q, 2 * HD, k, HD, v, HD, B);
}

static void test_attention() {
  constexpr int HD = 8, S = 12, H = 2;
  // q, k scaled so the scores reach +-1e4: a softmax saturated to one key;
  // one batch with -0 queries (every score -0: uniform weights)
  const float scales[] = {1.f, 60.f, 250.f};
  for (float sc : scales) {
    const int B = 2;
    Vec q((size_t)B * S * H * HD), k((size_t)B * S * HD), v((size_t)B * S * HD);
    emu::fill_uniform(q.data(), q.size(), -sc, sc, 11);
    emu::fill_uniform(k.data(), k.size(), -sc, sc, 12);
    emu::fill_uniform(v.data(), v.size(), -1.f, 1.f, 13);
    for (size_t i = 0; i < (size_t)S * H * HD; i++) q[i] = -0.f;  // batch 0
    Vec y(q.size()), lse((size_t)B * S * H), ry(q.size()), rlse(lse.size());
    LAUNCH(dim3((S + 31) / 32, H, B), 128, att_kernel<HD, S>, y.data(), lse.data(),
           (const float *)q.data(), (const float *)k.data(), (const float *)v.data(), B);
    cpu_attention_forward(ry.data(), rlse.data(), q.data(), k.data(), v.data(), B, S, H, 1, HD, 1,
                          nullptr);
    char what[64];
    snprintf(what, sizeof what, "attention y (q, k up to %g)", sc);
    agree(what, y, ry, 2e-5, 1e-6, 1.0);
    double lmax = 0;
    for (float l : rlse) lmax = std::fmax(lmax, std::fabs(l));
    snprintf(what, sizeof what, "attention lse (q, k up to %g)", sc);
    agree(what, lse, rlse, 2e-6, 1e-5, lmax);
  }
}

// ---- rope ----------------------------------------------------------------------

__global__ void rope_kernel(float *y, const float *x, int N, int seq, int pos0) {
  lisa::rope_forward<float, 2, 8, 8>(y, 16, x, 16, N, seq, 10000.0f, nullptr, pos0);
}

static void test_rope() {
  // every table value beside every other in a rotated pair (dims i, i + 4)
  const int N = kNExtreme, C = 16;
  Vec x((size_t)N * C);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) x[(size_t)n * C + c] = kExtreme[(n + 3 * c) % kNExtreme];
  for (int pos0 : {0, 4077}) {
    Vec y(x.size()), ry(x.size());
    const int ty = lisa::rope_ty<float, 8, 8>(), tx = lisa::rope_tx<float, 8, 8>();
    LAUNCH((N + ty - 1) / ty, dim3(tx, ty), rope_kernel, y.data(), (const float *)x.data(), N, N,
           pos0);
    cpu_rope_forward_at(ry.data(), x.data(), N, N, pos0, 2, 8, 8, 10000.0);
    for (int n = 0; n < N; n++) {
      char what[64];
      snprintf(what, sizeof what, "rope row %d (pos0 %d)", n, pos0);
      double scale = 0;
      for (int c = 0; c < C; c++)
        if (std::isfinite(ry[(size_t)n * C + c]))
          scale = std::fmax(scale, std::fabs(ry[(size_t)n * C + c]));
      const size_t o = (size_t)n * C;
      agree(what, Vec(y.begin() + o, y.begin() + o + C), Vec(ry.begin() + o, ry.begin() + o + C),
            2e-5, 1e-30, scale);
    }
  }
}

// ---- adamw ---------------------------------------------------------------------

__global__ void adamw_kernel(const lisa::AdamWTensor *t, int count, const float *clip, float lr,
                             float b1, float b2, float eps, float wd) {
  lisa::adamw_multi<float, 32, false>(t, count, clip, lr, b1, b2, eps, wd, 0u);
}

static void test_adamw() {
  // w, g, m and v drawn from the table in different orders, so each meets
  // many others; v >= 0 as the optimizer keeps it
  const int n = kNExtreme * kNExtreme;
  Vec w(n), g(n), m(n), v(n);
  for (int i = 0; i < n; i++) {
    w[i] = kExtreme[i % kNExtreme], g[i] = kExtreme[i / kNExtreme];
    m[i] = kExtreme[(i * 7) % kNExtreme], v[i] = std::fabs(kExtreme[(i * 11) % kNExtreme]);
  }
  opt_config c = opt_defaults();
  for (int step : {1, 5}) {
    Vec dw = w, dm = m, dv = v, rw = w, rm = m, rv = v;
    lisa::AdamWTensor t{dw.data(), g.data(), dm.data(), dv.data(), nullptr, n, 1, step};
    LAUNCH(2, 32, adamw_kernel, (const lisa::AdamWTensor *)&t, 1, (const float *)nullptr, c.lr,
           c.beta1, c.beta2, c.eps, c.weight_decay);
    opt_adamw_update(rw.data(), g.data(), rm.data(), rv.data(), n, c.lr, c.weight_decay, &c, step,
                     1.0f);
    for (int i = 0; i < n; i++) {
      const float got[3] = {dw[i], dm[i], dv[i]}, want[3] = {rw[i], rm[i], rv[i]};
      for (int k = 0; k < 3; k++) {
        const bool ok = std::isnan(want[k]) ? std::isnan(got[k]) : !memcmp(&got[k], &want[k], 4);
        if (!ok) {
          CHECK_MSG(0, "adamw step %d %c at w %g g %g m %g v %g: kernel %.9g, cpu %.9g", step,
                    "wmv"[k], w[i], g[i], m[i], v[i], got[k], want[k]);
          i = n;
          break;
        }
      }
    }
  }
}

// ---- embedding -------------------------------------------------------------------

__global__ void emb_kernel(float *y, const int *ids, const float *w, int N) {
  lisa::embedding_forward<float, 8, 4, 64>(y, ids, w, N);
}

static void test_embedding() {
  Vec w(32);
  for (int i = 0; i < 32; i++) w[i] = kExtreme[i % kNExtreme];
  std::vector<int> ids = {0, 1, 2, 3, 3, 2, 1, 0};
  Vec y(ids.size() * 8);
  LAUNCH(1, 64, emb_kernel, y.data(), (const int *)ids.data(), (const float *)w.data(),
         (int)ids.size());
  bool same = true;
  for (size_t n = 0; n < ids.size(); n++)
    same &= !memcmp(&y[n * 8], &w[(size_t)ids[n] * 8], 8 * sizeof(float));
  CHECK_MSG(same, "embedding: rows are not the table's bits (signed zeros, NaN, infinities)");
}

int main() {
  RUN(test_activations);
  RUN(test_norms);
  RUN(test_cross_entropy);
  RUN(test_attention);
  RUN(test_rope);
  RUN(test_adamw);
  RUN(test_embedding);
  return check_exit();
}
