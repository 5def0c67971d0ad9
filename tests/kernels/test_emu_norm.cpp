// LayerNorm and RMSNorm kernels (templates/norm.cuh) in the emulator against
// cpu_ops: every output, saved statistic, input gradient and weight
// gradient, at odd shapes, in fp32 and bf16, with guarded buffers. The fused
// residual variants are checked against the CPU's unfused sequence
// (cpu_add then the norm; the norm's backward then cpu_add).
#include "cuda_emu.h"
#include "emu_check.h"

#include "lisa_common.cuh"
#include "norm.cuh"

#include <vector>

#include "cpu_ops.h"

// --- wrappers, as the generator writes them (templated here over configs) ---

template <class T, int C, int TH, int R>
__global__ void k_ln_fwd(T *y, float *m, float *r, const T *x, const T *w, const T *b, int N,
                         float eps) {
  lisa::layernorm_forward<T, C, TH, R>(y, m, r, x, w, b, N, eps);
}
template <class T, int C, int TH, int R>
__global__ void k_add_ln_fwd(T *s, T *y, float *m, float *r, const T *a, const T *b2,
                             const T *w, const T *b, int N, float eps) {
  lisa::add_layernorm_forward<T, C, TH, R>(s, y, m, r, a, b2, w, b, N, eps);
}
template <class T, int C, int TH, int R>
__global__ void k_ln_bwd_x(T *dx, const T *dy, const T *x, const T *w, const float *m,
                           const float *r, const T *dres, int N) {
  lisa::layernorm_backward_x<T, C, TH, R>(dx, dy, x, w, m, r, dres, N);
}
template <class T, int C, int BX, int BY>
__global__ void k_ln_bwd_wb(float *part, const T *dy, const T *x, const float *m,
                            const float *r, int N) {
  lisa::layernorm_backward_wb_partial<T, C, BX, BY>(part, dy, x, m, r, N);
}
template <class T, int C, int TH, int R>
__global__ void k_rms_fwd(T *y, float *r, const T *x, const T *w, int N, float eps,
                          float off) {
  lisa::rmsnorm_forward<T, C, TH, R>(y, r, x, w, N, eps, off);
}
template <class T, int C, int TH, int R>
__global__ void k_add_rms_fwd(T *s, T *y, float *r, const T *a, const T *b, const T *w, int N,
                              float eps, float off) {
  lisa::add_rmsnorm_forward<T, C, TH, R>(s, y, r, a, b, w, N, eps, off);
}
template <class T, int C, int TH, int R>
__global__ void k_rms_bwd_x(T *dx, const T *dy, const T *x, const T *w, const float *r,
                            const T *dres, int N, float off) {
  lisa::rmsnorm_backward_x<T, C, TH, R>(dx, dy, x, w, r, dres, N, off);
}
template <class T, int C, int BX, int BY>
__global__ void k_rms_bwd_w(float *part, const T *dy, const T *x, const float *r, int N) {
  lisa::rmsnorm_backward_w_partial<T, C, BX, BY>(part, dy, x, r, N);
}
template <int C>
__global__ void k_w_finish(float *dw, float *db, const float *part, int parts) {
  lisa::norm_backward_w_finish<C>(dw, db, part, parts);
}

// --- host helpers ---------------------------------------------------------------

using Vec = std::vector<float>;

template <class T> struct Tname;
template <> struct Tname<float> { static constexpr const char *s = "f32"; };
template <> struct Tname<__nv_bfloat16> { static constexpr const char *s = "bf16"; };

// Random values, rounded to bf16 when T is (so both sides see the same).
template <class T> Vec rnd(size_t n, float lo, float hi, uint64_t seed) {
  Vec v(n);
  emu::fill_uniform(v.data(), n, lo, hi, seed);
  if (sizeof(T) == 2) emu::round_bf16(v.data(), n);
  return v;
}
template <class T> void put(emu::Guarded<T> &g, const Vec &v) {
  for (size_t i = 0; i < v.size(); i++) g[i] = T(v[i]);
}
template <class T> Vec get(const emu::Guarded<T> &g) {
  Vec v(g.size());
  for (size_t i = 0; i < g.size(); i++) v[i] = float(g[i]);
  return v;
}

static int launch_failures;
#define LAUNCH(...)                                                      \
  do {                                                                   \
    int rc_ = emu::launch(__VA_ARGS__);                                  \
    CHECK_MSG(rc_ == 0, "launch failed: %s", emu::last_error());         \
    if (rc_ != 0) launch_failures++;                                     \
  } while (0)

// got vs ref: NMSE below tol, no NaN/inf, guards intact.
template <class T>
static void expect(const char *what, const char *cfg, const emu::Guarded<T> &got, const Vec &ref,
                   double tol) {
  const Vec g = get(got);
  const double e = emu::nmse(g.data(), ref.data(), ref.size());
  CHECK_MSG(!emu::has_nan_or_inf(g.data(), g.size()), "%s %s: NaN or inf", cfg, what);
  CHECK_MSG(e < tol, "%s %s: nmse %.3g >= %.3g", cfg, what, e, tol);
  ::emu::GuardReport r = got.check(what);
  CHECK_MSG(r.ok, "%s %s", cfg, r.message.c_str());
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

// One configuration: T, C, the row kernels' THREADS x ROWS, the weight
// kernels' BX x BY; N rows; `parts` blocks down the rows for dw.
template <class T, int C, int TH = lisa::norm_threads<T, C>(), int R = lisa::norm_rows<T, C>(),
          int BX = lisa::norm_wb_bx<T, C>(), int BY = lisa::norm_wb_by<T, C>()>
static void norm_case(int N, int parts) {
  char cfg[128];
  snprintf(cfg, sizeof cfg, "[%s C=%d N=%d TH=%d R=%d BX=%d BY=%d parts=%d]", Tname<T>::s, C, N,
           TH, R, BX, BY, parts);
  const double tol = sizeof(T) == 4 ? 1e-7 : 1e-4;
  const float eps = 1e-5f;
  const size_t nc = (size_t)N * C;
  const uint64_t seed = 1000u * C + N;
  constexpr int VEC = lisa::norm_vec<T, C>();

  // Inputs (a mean away from 0 so the LayerNorm's centring matters).
  Vec x = rnd<T>(nc, -1.5f, 2.5f, seed + 1), a = rnd<T>(nc, -1.f, 2.f, seed + 2),
      b2 = rnd<T>(nc, -1.f, 1.f, seed + 3), w = rnd<T>(C, 0.5f, 1.5f, seed + 4),
      bias = rnd<T>(C, -0.5f, 0.5f, seed + 5), dy = rnd<T>(nc, -1.f, 1.f, seed + 6),
      dres = rnd<T>(nc, -1.f, 1.f, seed + 7), dw0 = rnd<float>(C, -1.f, 1.f, seed + 8),
      db0 = rnd<float>(C, -1.f, 1.f, seed + 9);

  emu::Guarded<T> gx(nc), ga(nc), gb2(nc), gw(C), gbias(C), gdy(nc), gdres(nc);
  put(gx, x), put(ga, a), put(gb2, b2), put(gw, w), put(gbias, bias), put(gdy, dy),
      put(gdres, dres);
  const dim3 rgrid(ceil_div(N, R)), rblock(TH * R);
  const dim3 wgrid(ceil_div(C, BX * VEC), parts), wblock(BX, BY);

  // kind 0: LayerNorm, 1: RMSNorm, 2: RMSNorm applying 1 + w (Gemma's)
  for (int kind = 0; kind < 3; kind++) {
    const bool rms = kind > 0;
    const float off = kind == 2 ? 1.f : 0.f;
    const char *nm = kind == 2 ? "rmsnorm (1 + w)" : rms ? "rmsnorm" : "layernorm";
    char c2[192];
    snprintf(c2, sizeof c2, "%s %s", nm, cfg);

    // forward
    Vec y(nc), mean(N), rstd(N);
    emu::Guarded<T> gy(nc);
    emu::Guarded<float> gmean(N), grstd(N);
    if (rms) {
      cpu_rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, eps, off);
      LAUNCH(rgrid, rblock, 0, k_rms_fwd<T, C, TH, R>, gy.data(), grstd.data(),
             (const T *)gx.data(), (const T *)gw.data(), N, eps, off);
    } else {
      cpu_layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), bias.data(),
                            N, C, eps);
      LAUNCH(rgrid, rblock, 0, k_ln_fwd<T, C, TH, R>, gy.data(), gmean.data(), grstd.data(),
             (const T *)gx.data(), (const T *)gw.data(), (const T *)gbias.data(), N, eps);
      expect("mean", c2, gmean, mean, 1e-10);
    }
    expect("y", c2, gy, y, tol);
    expect("rstd", c2, grstd, rstd, 1e-10);

    // fused residual add + norm: s = a + b2 (stored as T), y = norm(s)
    Vec s(nc), ys(nc), means(N), rstds(N);
    cpu_add(s.data(), a.data(), b2.data(), (int64_t)nc);
    if (sizeof(T) == 2) emu::round_bf16(s.data(), nc);  // the stored residual stream
    emu::Guarded<T> gs(nc), gys(nc);
    emu::Guarded<float> gmeans(N), grstds(N);
    if (rms) {
      cpu_rmsnorm_forward(ys.data(), rstds.data(), s.data(), w.data(), N, C, eps, off);
      LAUNCH(rgrid, rblock, 0, k_add_rms_fwd<T, C, TH, R>, gs.data(), gys.data(), grstds.data(),
             (const T *)ga.data(), (const T *)gb2.data(), (const T *)gw.data(), N, eps, off);
    } else {
      cpu_layernorm_forward(ys.data(), means.data(), rstds.data(), s.data(), w.data(),
                            bias.data(), N, C, eps);
      LAUNCH(rgrid, rblock, 0, k_add_ln_fwd<T, C, TH, R>, gs.data(), gys.data(), gmeans.data(),
             grstds.data(), (const T *)ga.data(), (const T *)gb2.data(), (const T *)gw.data(),
             (const T *)gbias.data(), N, eps);
      expect("fused mean", c2, gmeans, means, 1e-10);
    }
    expect("fused s", c2, gs, s, sizeof(T) == 4 ? 1e-14 : 1e-12);
    expect("fused y", c2, gys, ys, tol);
    expect("fused rstd", c2, grstds, rstds, 1e-10);
    // in place: s written over a (a copy of a, so the others stay intact)
    {
      emu::Guarded<T> gsa(nc), gya(nc);
      emu::Guarded<float> gm2(N), gr2(N);
      put(gsa, a);
      if (rms)
        LAUNCH(rgrid, rblock, 0, k_add_rms_fwd<T, C, TH, R>, gsa.data(), gya.data(), gr2.data(),
               (const T *)gsa.data(), (const T *)gb2.data(), (const T *)gw.data(), N, eps, off);
      else
        LAUNCH(rgrid, rblock, 0, k_add_ln_fwd<T, C, TH, R>, gsa.data(), gya.data(), gm2.data(),
               gr2.data(), (const T *)gsa.data(), (const T *)gb2.data(), (const T *)gw.data(),
               (const T *)gbias.data(), N, eps);
      expect("fused s (s = a in place)", c2, gsa, s, sizeof(T) == 4 ? 1e-14 : 1e-12);
      expect("fused y (s = a in place)", c2, gya, ys, tol);
    }

    // backward dx, from the kernel's own statistics (CPU: its own)
    Vec dx(nc);
    if (rms)
      cpu_rmsnorm_backward_x(dx.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C, off);
    else
      cpu_layernorm_backward_x(dx.data(), dy.data(), x.data(), w.data(), mean.data(),
                               rstd.data(), N, C);
    Vec dxr(nc);
    cpu_add(dxr.data(), dres.data(), dx.data(), (int64_t)nc);  // the unfused sum
    emu::Guarded<T> gdx(nc), gdxr(nc), gacc(nc);
    put(gacc, dres);  // dx written over dres: the in-place accumulation
    T *targets[3] = {gdx.data(), gdxr.data(), gacc.data()};
    const T *dres_arg[3] = {nullptr, gdres.data(), gacc.data()};
    for (int v = 0; v < 3; v++) {
      if (rms)
        LAUNCH(rgrid, rblock, 0, k_rms_bwd_x<T, C, TH, R>, targets[v], (const T *)gdy.data(),
               (const T *)gx.data(), (const T *)gw.data(), (const float *)grstd.data(),
               dres_arg[v], N, off);
      else
        LAUNCH(rgrid, rblock, 0, k_ln_bwd_x<T, C, TH, R>, targets[v], (const T *)gdy.data(),
               (const T *)gx.data(), (const T *)gw.data(), (const float *)gmean.data(),
               (const float *)grstd.data(), dres_arg[v], N);
    }
    expect("dx", c2, gdx, dx, tol);
    expect("dx + dres", c2, gdxr, dxr, tol);
    expect("dx + dres (dx = dres in place)", c2, gacc, dxr, tol);

    // dw (db) accumulated onto nonzero starting values
    Vec dw = dw0, db = db0;
    if (rms)
      cpu_rmsnorm_backward_w(dw.data(), dy.data(), x.data(), rstd.data(), N, C);
    else
      cpu_layernorm_backward_wb(dw.data(), db.data(), dy.data(), x.data(), mean.data(),
                                rstd.data(), N, C);
    emu::Guarded<float> gdw(C), gdb(C), gpart((size_t)(rms ? 1 : 2) * parts * C);
    put(gdw, dw0), put(gdb, db0);
    if (rms) {
      LAUNCH(wgrid, wblock, 0, k_rms_bwd_w<T, C, BX, BY>, gpart.data(), (const T *)gdy.data(),
             (const T *)gx.data(), (const float *)grstd.data(), N);
      LAUNCH(dim3(ceil_div(C, 256)), dim3(256), 0, k_w_finish<C>, gdw.data(), (float *)nullptr,
             (const float *)gpart.data(), parts);
    } else {
      LAUNCH(wgrid, wblock, 0, k_ln_bwd_wb<T, C, BX, BY>, gpart.data(), (const T *)gdy.data(),
             (const T *)gx.data(), (const float *)gmean.data(), (const float *)grstd.data(), N);
      LAUNCH(dim3(ceil_div(C, 256)), dim3(256), 0, k_w_finish<C>, gdw.data(), gdb.data(),
             (const float *)gpart.data(), parts);
      expect("db", c2, gdb, db, 1e-10);
    }
    expect("dw", c2, gdw, dw, 1e-10);
    ::emu::GuardReport pr = gpart.check("partial");
    CHECK_MSG(pr.ok, "%s %s", c2, pr.message.c_str());
  }
  CHECK_GUARD(gx);
  CHECK_GUARD(ga);
  CHECK_GUARD(gb2);
  CHECK_GUARD(gw);
  CHECK_GUARD(gbias);
  CHECK_GUARD(gdy);
  CHECK_GUARD(gdres);
}

// Determinism: the weight gradients are bit-identical across runs and do not
// depend on how many rows a launch has in flight (fixed-order sums).
static void test_wb_deterministic() {
  constexpr int C = 300;
  const int N = 33, parts = 5;
  Vec x = rnd<float>((size_t)N * C, -2, 2, 7), dy = rnd<float>((size_t)N * C, -1, 1, 8);
  Vec mean(N), rstd(N), y((size_t)N * C), w(C, 1.f), b(C, 0.f);
  cpu_layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C,
                        1e-5f);
  emu::Guarded<float> gx((size_t)N * C), gdy((size_t)N * C), gm(N), gr(N);
  put(gx, x), put(gdy, dy), put(gm, mean), put(gr, rstd);
  unsigned bits[2][C];
  for (int run = 0; run < 2; run++) {
    emu::Guarded<float> gpart((size_t)2 * parts * C), gdw(C), gdb(C);
    for (int c = 0; c < C; c++) gdw[c] = gdb[c] = 0.f;
    LAUNCH(dim3(ceil_div(C, 32 * 4), parts), dim3(32, 8), 0, k_ln_bwd_wb<float, C, 32, 8>,
           gpart.data(), (const float *)gdy.data(), (const float *)gx.data(),
           (const float *)gm.data(), (const float *)gr.data(), N);
    LAUNCH(dim3(ceil_div(C, 256)), dim3(256), 0, k_w_finish<C>, gdw.data(), gdb.data(),
           (const float *)gpart.data(), parts);
    for (int c = 0; c < C; c++) memcpy(&bits[run][c], &gdw[c], 4);
  }
  CHECK(memcmp(bits[0], bits[1], sizeof bits[0]) == 0);
}

static void test_f32() {
  for (int N : {1, 7, 33}) {
    norm_case<float, 24>(N, 1);
    norm_case<float, 37>(N, 3);
    norm_case<float, 300>(N, 4);
  }
}

static void test_bf16() {
  for (int N : {1, 7, 33}) {
    norm_case<__nv_bfloat16, 24>(N, 2);
    norm_case<__nv_bfloat16, 37>(N, 1);
    norm_case<__nv_bfloat16, 300>(N, 4);
  }
}

// Block-wide row groups (THREADS > 32, barriers), several per block, ragged
// tails; and weight kernels at other BX x BY (BY = 1: no shared memory).
static void test_tunables() {
  norm_case<float, 300, 64, 2, 16, 4>(7, 3);
  norm_case<float, 37, 64, 4, 8, 1>(33, 2);
  norm_case<__nv_bfloat16, 300, 96, 1, 32, 1>(7, 2);
  norm_case<__nv_bfloat16, 37, 32, 1, 64, 16>(33, 5);
  norm_case<float, 24, 32, 8, 8, 4>(33, 1);
}

// The production widths' defaults (THREADS > 32, one row per block).
static void test_wide() {
  norm_case<float, 768>(3, 2);
  norm_case<__nv_bfloat16, 768>(3, 2);
  norm_case<float, 4096>(2, 1);
  norm_case<__nv_bfloat16, 5120>(2, 2);
}

int main() {
  RUN(test_f32);
  RUN(test_bf16);
  RUN(test_tunables);
  RUN(test_wide);
  RUN(test_wb_deterministic);
  return check_failures ? 1 : 0;
}
