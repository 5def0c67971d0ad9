// test_emu_classifier.cpp: templates/cross_entropy.cuh and
// templates/embedding.cuh on the CUDA emulator against runtime/cpu/cpu_ops.c,
// at odd shapes, fp32 and bf16 storage.
#include "cuda_emu.h"
#include "emu_check.h"

#include "lisa_common.cuh"
#include "cross_entropy.cuh"
#include "embedding.cuh"

#include <vector>

#include "cpu_ops.h"

using bf16 = __nv_bfloat16;

// ---- __global__ wrappers, as the generator writes them -------------------

#define CE_WRAP(NAME, T, V, TH)                                                              \
  extern "C" __global__ void NAME(T *d, float *l, const T *x, const int *t, int N, float s) { \
    lisa::cross_entropy_fused<T, V, TH>(d, l, x, t, N, s);                                   \
  }
CE_WRAP(ce_f67, float, 67, 64)
CE_WRAP(ce_b67, bf16, 67, 64)
CE_WRAP(ce_f1000, float, 1000, 128)
CE_WRAP(ce_b1000, bf16, 1000, 128)
CE_WRAP(ce_f1000_t1024, float, 1000, 1024)
CE_WRAP(ce_f50257, float, 50257, 256)
CE_WRAP(ce_b50257, bf16, 50257, 256)
CE_WRAP(ce_b5, bf16, 5, 32)
// rows at the device's padded stride (codegen/ir/ir.h IR_VOCAB_PAD)
#define CE_WRAP_LD(NAME, T, V, TH, LD)                                                       \
  extern "C" __global__ void NAME(T *d, float *l, const T *x, const int *t, int N, float s) { \
    lisa::cross_entropy_fused<T, V, TH, LD>(d, l, x, t, N, s);                               \
  }
CE_WRAP_LD(ce_f67_ld128, float, 67, 64, 128)
CE_WRAP_LD(ce_b50257_ld50304, bf16, 50257, 256, 50304)

// V only bounds the targets the mean counts: any target in [0, 2^30) counts here.
extern "C" __global__ void ce_mean_k(float *out, const float *l, const int *t, int N) {
  lisa::cross_entropy_mean<1 << 30, 64>(out, l, t, N);
}

#define EMB_WRAP(S, T, C, V, TH)                                                                   \
  extern "C" __global__ void ef_##S(T *y, const int *ids, const T *w, int N) {                     \
    lisa::embedding_forward<T, C, V, TH>(y, ids, w, N);                                            \
  }                                                                                                \
  extern "C" __global__ void pf_##S(T *y, const T *p, int N, int seq) {                            \
    lisa::pos_embedding_forward<T, C, TH>(y, p, N, seq);                                           \
  }                                                                                                \
  extern "C" __global__ void epf_##S(T *y, const int *ids, const T *w, const T *p, int N,          \
                                     int seq) {                                                    \
    lisa::embedding_pos_forward<T, C, V, TH>(y, ids, w, p, N, seq);                                \
  }                                                                                                \
  extern "C" __global__ void eb_##S(float *d, const int *ids, const T *dy, int N) {                \
    lisa::embedding_backward<T, C, V, TH>(d, ids, dy, N);                                          \
  }                                                                                                \
  extern "C" __global__ void pb_##S(float *d, const T *dy, int N, int seq) {                       \
    lisa::pos_embedding_backward<T, C, TH>(d, dy, N, seq);                                         \
  }                                                                                                \
  extern "C" __global__ void epb_##S(float *a, float *b, const int *ids, const T *dy, int N,       \
                                     int seq) {                                                    \
    lisa::embedding_pos_backward<T, C, V, TH>(a, b, ids, dy, N, seq);                              \
  }
EMB_WRAP(f24, float, 24, 67, 32)
EMB_WRAP(b24, bf16, 24, 67, 32)
EMB_WRAP(f37, float, 37, 1000, 64)
EMB_WRAP(b37, bf16, 37, 1000, 64)
EMB_WRAP(f768, float, 768, 1000, 256)
EMB_WRAP(b768, bf16, 768, 1000, 256)

// ---- helpers ---------------------------------------------------------------

template <class T> static void store(T *dst, const float *src, size_t n);
template <> void store<float>(float *dst, const float *src, size_t n) {
  memcpy(dst, src, n * sizeof(float));
}
template <> void store<bf16>(bf16 *dst, const float *src, size_t n) { emu::to_bf16(src, dst, n); }

template <class T> static std::vector<float> load(const T *src, size_t n);
template <> std::vector<float> load<float>(const float *src, size_t n) {
  return std::vector<float>(src, src + n);
}
template <> std::vector<float> load<bf16>(const bf16 *src, size_t n) {
  std::vector<float> out(n);
  emu::to_float(src, out.data(), n);
  return out;
}

template <class T> static bool is_bf16() { return sizeof(T) == 2; }

// Host data as the kernel sees it: bf16-rounded where T is bf16.
template <class T> static void round_like(std::vector<float> &v) {
  if (is_bf16<T>()) emu::round_bf16(v.data(), v.size());
}

static bool finite(const std::vector<float> &v) { return !emu::has_nan_or_inf(v.data(), v.size()); }

#define LAUNCH(grid, block, ...)                                       \
  do {                                                                 \
    int rc_ = emu::launch(dim3(grid), dim3(block), 0, __VA_ARGS__);    \
    CHECK_MSG(rc_ == 0, "launch: %s", emu::last_error());              \
  } while (0)

// ---- cross entropy -----------------------------------------------------------

typedef void (*ce_fn_f)(float *, float *, const float *, const int *, int, float);
typedef void (*ce_fn_b)(bf16 *, float *, const bf16 *, const int *, int, float);

// mode 0: in place, 1: separate buffer (aligned as logits), 2: separate and
// misaligned by one element, 3: loss only (dlogits null)
template <class T, class K>
static void ce_case(K kernel, int V, int threads, int N, int mode, uint64_t seed) {
  const double tol = is_bf16<T>() ? 1e-4 : 1e-7;
  const size_t n = (size_t)N * V;
  std::vector<float> x(n);
  emu::fill_uniform(x.data(), n, -4.0f, 4.0f, seed);
  for (int i = 0; i < V; i++) x[(size_t)(N - 1) * V + i] += 60.0f;  // a row far from 0
  round_like<T>(x);
  std::vector<int> tgt(N);
  emu::fill_int(tgt.data(), N, 0, V - 1, seed + 1);
  tgt[0] = V - 1, tgt[N > 1 ? 1 : 0] = 0;
  if (N > 3) tgt[3] = -1;  // an ignored row (labels -100)
  const float scale = 0.75f;
  // the kernel takes each counted row's factor, as the host computes it
  const float row_scale = scale / (float)cpu_counted_rows(tgt.data(), N);

  emu::Guarded<T> logits(n), dsep(n + 1);
  emu::Guarded<float> loss(N), mean(1);
  emu::Guarded<int> targets(N);
  store<T>(logits.data(), x.data(), n);
  memcpy(targets.data(), tgt.data(), N * sizeof(int));
  T *d = mode == 0 ? logits.data() : mode == 1 ? dsep.data() : mode == 2 ? dsep.data() + 1 : nullptr;
  LAUNCH(N, threads, kernel, d, loss.data(), logits.data(), targets.data(), N, row_scale);
  LAUNCH(1, 64, ce_mean_k, mean.data(), loss.data(), targets.data(), N);

  // reference
  std::vector<float> ref_loss(N), ref_d(n);
  for (int r = 0; r < N; r++)
    ref_loss[r] = cpu_cross_entropy_forward(x.data() + (size_t)r * V, tgt.data() + r, 1, V);
  if (N > 3) CHECK(ref_loss[3] == 0.0f);
  const float ref_mean = cpu_cross_entropy_forward(x.data(), tgt.data(), N, V);
  cpu_cross_entropy_backward(ref_d.data(), x.data(), tgt.data(), N, V, scale);

  std::vector<float> got_loss(loss.data(), loss.data() + N);
  CHECK(finite(got_loss));
  const double e_loss = emu::nmse(got_loss.data(), ref_loss.data(), N);
  CHECK_MSG(e_loss < 1e-7, "V=%d mode=%d loss nmse %g", V, mode, e_loss);
  CHECK(isfinite(mean[0]));
  CHECK_CLOSE(mean[0], ref_mean, 0.0, is_bf16<T>() ? 1e-6 : 1e-6);
  if (d) {
    std::vector<float> got = load<T>(d, n);
    CHECK(finite(got));
    const double e = emu::nmse(got.data(), ref_d.data(), n);
    CHECK_MSG(e < tol, "V=%d mode=%d dlogits nmse %g", V, mode, e);
    // the gradient of a row sums to 0
    double rs = 0;
    for (int i = 0; i < V; i++) rs += got[i];
    CHECK_CLOSE(rs, 0.0, is_bf16<T>() ? 1e-2 * row_scale : 1e-5 * row_scale, 0.0);
    for (int i = 0; N > 3 && i < V; i++) CHECK(got[(size_t)3 * V + i] == 0.0f);
  }
  if (mode != 0) {  // logits untouched
    std::vector<float> back = load<T>(logits.data(), n);
    CHECK(memcmp(back.data(), x.data(), n * sizeof(float)) == 0);
  }
  CHECK_GUARD(logits);
  CHECK_GUARD(dsep);
  CHECK_GUARD(loss);
  CHECK_GUARD(mean);
}

static void test_ce_fp32() {
  for (int mode = 0; mode < 4; mode++) {
    ce_case<float>(ce_f67, 67, 64, 7, mode, 11 + mode);
    ce_case<float>(ce_f1000, 1000, 128, 7, mode, 21 + mode);
  }
  ce_case<float>(ce_f1000_t1024, 1000, 1024, 7, 0, 31);
  ce_case<float>(ce_f50257, 50257, 256, 7, 0, 41);
  ce_case<float>(ce_f50257, 50257, 256, 3, 2, 42);
}

static void test_ce_bf16() {
  for (int mode = 0; mode < 4; mode++) {
    ce_case<bf16>(ce_b67, 67, 64, 7, mode, 51 + mode);
    ce_case<bf16>(ce_b1000, 1000, 128, 7, mode, 61 + mode);
  }
  ce_case<bf16>(ce_b50257, 50257, 256, 7, 0, 71);
  ce_case<bf16>(ce_b50257, 50257, 256, 3, 1, 72);
  ce_case<bf16>(ce_b5, 5, 32, 7, 0, 73);  // V smaller than one 16-byte pack
}

// Rows at a padded stride LD: the pad columns of the logits are never read
// (NaN there changes nothing), those of the gradient come out 0, in place or
// not (the head's input-gradient GEMM runs over them).
template <class T, class K>
static void ce_padded_case(K kernel, int V, int LD, int threads, int N, bool in_place) {
  const size_t n = (size_t)N * V, nld = (size_t)N * LD;
  std::vector<float> x(n), xld(nld, NAN);
  emu::fill_uniform(x.data(), n, -4.0f, 4.0f, 17);
  round_like<T>(x);
  for (int r = 0; r < N; r++) memcpy(&xld[(size_t)r * LD], &x[(size_t)r * V], V * sizeof(float));
  std::vector<int> tgt(N);
  emu::fill_int(tgt.data(), N, 0, V - 1, 18);
  const float row_scale = 1.0f / (float)N;
  emu::Guarded<T> logits(nld), dsep(nld);
  emu::Guarded<float> loss(N);
  emu::Guarded<int> targets(N);
  store<T>(logits.data(), xld.data(), nld);
  store<T>(dsep.data(), xld.data(), nld);  // NaN in the pads until the kernel writes them
  memcpy(targets.data(), tgt.data(), N * sizeof(int));
  T *d = in_place ? logits.data() : dsep.data();
  LAUNCH(N, threads, kernel, d, loss.data(), logits.data(), targets.data(), N, row_scale);
  std::vector<float> ref_d(n);
  cpu_cross_entropy_backward(ref_d.data(), x.data(), tgt.data(), N, V, 1.0f);
  std::vector<float> got = load<T>(d, nld), got_v(n);
  for (int r = 0; r < N; r++) {
    memcpy(&got_v[(size_t)r * V], &got[(size_t)r * LD], V * sizeof(float));
    for (int i = V; i < LD; i++) CHECK_MSG(got[(size_t)r * LD + i] == 0.0f, "row %d pad %d", r, i);
    const float ref_loss = cpu_cross_entropy_forward(x.data() + (size_t)r * V, &tgt[r], 1, V);
    CHECK_CLOSE(loss[r], ref_loss, 0.0, 1e-6);
  }
  const double e = emu::nmse(got_v.data(), ref_d.data(), n);
  CHECK_MSG(e < (is_bf16<T>() ? 1e-4 : 1e-7), "V=%d LD=%d dlogits nmse %g", V, LD, e);
  CHECK_GUARD(logits);
  CHECK_GUARD(dsep);
}

static void test_ce_padded_rows() {
  ce_padded_case<float>(ce_f67_ld128, 67, 128, 64, 5, true);
  ce_padded_case<float>(ce_f67_ld128, 67, 128, 64, 5, false);
  ce_padded_case<bf16>(ce_b50257_ld50304, 50257, 50304, 256, 3, true);
}

// Out-of-range targets: loss 0, zero gradient, nothing out of bounds.
static void test_ce_bad_target() {
  const int N = 4, V = 67;
  std::vector<float> x((size_t)N * V);
  emu::fill_uniform(x.data(), x.size(), -2.0f, 2.0f, 5);
  emu::Guarded<float> logits(x.size()), loss(N);
  emu::Guarded<int> t(N);
  memcpy(logits.data(), x.data(), x.size() * sizeof(float));
  t[0] = -1, t[1] = V, t[2] = 3, t[3] = 1 << 30;
  LAUNCH(N, 64, ce_f67, logits.data(), loss.data(), logits.data(), t.data(), N, 1.0f);
  CHECK(loss[0] == 0.0f && loss[1] == 0.0f && loss[3] == 0.0f);
  const float ref2 = cpu_cross_entropy_forward(x.data() + 2 * V, &t[2], 1, V);
  CHECK_CLOSE(loss[2], ref2, 0.0, 1e-6);
  for (int i = 0; i < V; i++) CHECK(logits[i] == 0.0f && logits[V + i] == 0.0f && logits[3 * V + i] == 0.0f);
  CHECK_GUARD(logits);
  CHECK_GUARD(loss);
}

// The mean is the same bits whatever the order rows finished in (it only
// depends on N), N larger than the block works, ignored rows are left out,
// and a batch where nothing counts has mean 0, not NaN.
static void test_ce_mean() {
  const int N = 1001;
  emu::Guarded<float> l(N), out(1);
  emu::Guarded<int> t(N);
  emu::fill_uniform(l.data(), N, 0.0f, 11.0f, 9);
  double s = 0;
  int counted = 0;
  for (int i = 0; i < N; i++) {
    t[i] = i % 7 == 3 ? -1 : i;
    if (t[i] < 0) l[i] = 0.0f;  // as cross_entropy_fused leaves an ignored row
    s += l[i], counted += t[i] >= 0;
  }
  LAUNCH(1, 64, ce_mean_k, out.data(), l.data(), t.data(), N);
  CHECK_CLOSE(out[0], s / counted, 0.0, 1e-7);
  const float first = out[0];
  LAUNCH(1, 64, ce_mean_k, out.data(), l.data(), t.data(), N);
  CHECK(memcmp(&first, out.data(), 4) == 0);
  for (int i = 0; i < N; i++) t[i] = -1;
  LAUNCH(1, 64, ce_mean_k, out.data(), l.data(), t.data(), N);
  CHECK(out[0] == 0.0f);
  CHECK_GUARD(out);
  CHECK_GUARD(t);
}

// ---- embedding ---------------------------------------------------------------

template <class T, int C, int V, int TH>
static void emb_case(void (*ef)(T *, const int *, const T *, int),
                     void (*pf)(T *, const T *, int, int),
                     void (*epf)(T *, const int *, const T *, const T *, int, int),
                     void (*eb)(float *, const int *, const T *, int),
                     void (*pb)(float *, const T *, int, int),
                     void (*epb)(float *, float *, const int *, const T *, int, int), int N, int seq,
                     int id_hi, int offset, uint64_t seed) {
  const int P = seq + 2;  // position table rows (more than used)
  std::vector<float> wte((size_t)V * C), wpe((size_t)P * C), dy((size_t)N * C);
  emu::fill_uniform(wte.data(), wte.size(), -1.0f, 1.0f, seed);
  emu::fill_uniform(wpe.data(), wpe.size(), -1.0f, 1.0f, seed + 1);
  emu::fill_uniform(dy.data(), dy.size(), -1.0f, 1.0f, seed + 2);
  round_like<T>(wte), round_like<T>(wpe), round_like<T>(dy);
  std::vector<int> ids(N);
  emu::fill_int(ids.data(), N, 0, id_hi, seed + 3);  // small id_hi: many repeats
  ids[N - 1] = V - 1;

  // offset = 1 shifts every T buffer by one element (rows unaligned): the
  // element-wise paths.
  emu::Guarded<T> g_wte(wte.size() + 1), g_wpe(wpe.size() + 1), g_dy(dy.size() + 1),
      g_y(dy.size() + 1);
  emu::Guarded<int> g_ids(N);
  T *d_wte = g_wte.data() + offset, *d_wpe = g_wpe.data() + offset, *d_dy = g_dy.data() + offset,
    *d_y = g_y.data() + offset;
  store<T>(d_wte, wte.data(), wte.size());
  store<T>(d_wpe, wpe.data(), wpe.size());
  store<T>(d_dy, dy.data(), dy.size());
  memcpy(g_ids.data(), ids.data(), N * sizeof(int));
  const size_t ny = (size_t)N * C;
  const int grid = (int)((ny + TH - 1) / TH);

  std::vector<float> ref(ny), ref2(ny), got;
  // token embedding (a small grid: grid-stride)
  LAUNCH(grid > 2 ? 2 : grid, TH, ef, d_y, g_ids.data(), (const T *)d_wte, N);
  cpu_embedding_forward(ref.data(), ids.data(), wte.data(), N, C);
  got = load<T>(d_y, ny);
  CHECK_MSG(memcmp(got.data(), ref.data(), ny * 4) == 0, "C=%d embedding_forward", C);
  // position embedding
  LAUNCH(grid, TH, pf, d_y, (const T *)d_wpe, N, seq);
  cpu_pos_embedding_forward(ref2.data(), wpe.data(), N, seq, C);
  got = load<T>(d_y, ny);
  CHECK_MSG(memcmp(got.data(), ref2.data(), ny * 4) == 0, "C=%d pos_embedding_forward", C);
  // fused: embedding + position + add, one rounding
  LAUNCH(grid, TH, epf, d_y, g_ids.data(), (const T *)d_wte, (const T *)d_wpe, N, seq);
  cpu_add(ref.data(), ref.data(), ref2.data(), (int64_t)ny);
  round_like<T>(ref);
  got = load<T>(d_y, ny);
  CHECK(finite(got));
  CHECK_MSG(memcmp(got.data(), ref.data(), ny * 4) == 0, "C=%d embedding_pos_forward", C);
  const double e = emu::nmse(got.data(), ref.data(), ny);
  CHECK(e < (is_bf16<T>() ? 1e-4 : 1e-7));

  // backward: accumulate into non-zero tables
  std::vector<float> dwte((size_t)V * C), dwpe((size_t)P * C);
  emu::fill_uniform(dwte.data(), dwte.size(), -0.5f, 0.5f, seed + 4);
  emu::fill_uniform(dwpe.data(), dwpe.size(), -0.5f, 0.5f, seed + 5);
  emu::Guarded<float> g_dwte(dwte.size() + 1), g_dwpe(dwpe.size() + 1), g_dwte2(dwte.size() + 1),
      g_dwpe2(dwpe.size() + 1);
  float *a = g_dwte.data() + offset, *b = g_dwpe.data() + offset;
  float *a2 = g_dwte2.data() + offset, *b2 = g_dwpe2.data() + offset;
  memcpy(a, dwte.data(), dwte.size() * 4);
  memcpy(b, dwpe.data(), dwpe.size() * 4);
  memcpy(a2, dwte.data(), dwte.size() * 4);
  memcpy(b2, dwpe.data(), dwpe.size() * 4);
  LAUNCH(N, TH, eb, a, g_ids.data(), (const T *)d_dy, N);
  LAUNCH((seq * C + TH - 1) / TH, TH, pb, b, (const T *)d_dy, N, seq);
  LAUNCH(N + (seq * C + TH - 1) / TH, TH, epb, a2, b2, g_ids.data(), (const T *)d_dy, N, seq);
  cpu_embedding_backward(dwte.data(), ids.data(), dy.data(), N, C);
  cpu_pos_embedding_backward(dwpe.data(), dy.data(), N, seq, C);
  // fp32 accumulation in the CPU's order: bit-identical
  CHECK_MSG(memcmp(a, dwte.data(), dwte.size() * 4) == 0, "C=%d embedding_backward", C);
  CHECK_MSG(memcmp(b, dwpe.data(), dwpe.size() * 4) == 0, "C=%d pos_embedding_backward", C);
  CHECK_MSG(memcmp(a2, dwte.data(), dwte.size() * 4) == 0, "C=%d embedding_pos_backward (wte)", C);
  CHECK_MSG(memcmp(b2, dwpe.data(), dwpe.size() * 4) == 0, "C=%d embedding_pos_backward (wpe)", C);
  CHECK(emu::nmse(a, dwte.data(), dwte.size()) < 1e-7);
  CHECK(!emu::has_nan_or_inf(a, dwte.size()) && !emu::has_nan_or_inf(b2, dwpe.size()));

  // ids out of range: forward writes the position part only, backward skips
  std::vector<int> bad = ids;
  bad[0] = -1;
  bad[N / 2] = V;
  bad[1] = 1 << 30;
  memcpy(g_ids.data(), bad.data(), N * sizeof(int));
  LAUNCH(grid, TH, epf, d_y, g_ids.data(), (const T *)d_wte, (const T *)d_wpe, N, seq);
  got = load<T>(d_y, ny);
  for (int c = 0; c < C; c++) {
    CHECK(got[c] == wpe[c]);
    CHECK(got[(size_t)(N / 2) * C + c] == wpe[(size_t)((N / 2) % seq) * C + c]);
  }
  memcpy(a, dwte.data(), dwte.size() * 4);
  LAUNCH(N, TH, eb, a, g_ids.data(), (const T *)d_dy, N);
  std::vector<int> kept;
  std::vector<float> kept_dy;
  for (int r = 0; r < N; r++)
    if (bad[r] >= 0 && bad[r] < V) {
      kept.push_back(bad[r]);
      kept_dy.insert(kept_dy.end(), dy.begin() + (size_t)r * C, dy.begin() + (size_t)(r + 1) * C);
    }
  cpu_embedding_backward(dwte.data(), kept.data(), kept_dy.data(), (int)kept.size(), C);
  CHECK_MSG(memcmp(a, dwte.data(), dwte.size() * 4) == 0, "C=%d backward with bad ids", C);

  CHECK_GUARD(g_wte);
  CHECK_GUARD(g_wpe);
  CHECK_GUARD(g_dy);
  CHECK_GUARD(g_y);
  CHECK_GUARD(g_dwte);
  CHECK_GUARD(g_dwpe);
  CHECK_GUARD(g_dwte2);
  CHECK_GUARD(g_dwpe2);
}

#define EMB_CASE(S, T, C, V, TH, N, seq, id_hi, offset, seed)                                 \
  emb_case<T, C, V, TH>(ef_##S, pf_##S, epf_##S, eb_##S, pb_##S, epb_##S, N, seq, id_hi, offset, \
                        seed)

static void test_embedding_fp32() {
  EMB_CASE(f24, float, 24, 67, 32, 7, 5, 3, 0, 100);
  EMB_CASE(f24, float, 24, 67, 32, 7, 5, 3, 1, 101);
  EMB_CASE(f37, float, 37, 1000, 64, 7, 3, 999, 0, 102);
  EMB_CASE(f37, float, 37, 1000, 64, 29, 8, 4, 0, 103);
  EMB_CASE(f768, float, 768, 1000, 256, 7, 4, 2, 0, 104);
  EMB_CASE(f768, float, 768, 1000, 256, 7, 4, 2, 1, 105);
  EMB_CASE(f768, float, 768, 1000, 256, 300, 16, 5, 0, 106);  // N > THREADS
}

static void test_embedding_bf16() {
  EMB_CASE(b24, bf16, 24, 67, 32, 7, 5, 3, 0, 200);
  EMB_CASE(b24, bf16, 24, 67, 32, 7, 5, 3, 1, 201);
  EMB_CASE(b24, bf16, 24, 67, 32, 97, 7, 6, 0, 202);  // N > THREADS: several id chunks
  EMB_CASE(b37, bf16, 37, 1000, 64, 7, 3, 999, 0, 203);
  EMB_CASE(b37, bf16, 37, 1000, 64, 150, 10, 9, 0, 204);
  EMB_CASE(b768, bf16, 768, 1000, 256, 7, 4, 2, 0, 205);
  EMB_CASE(b768, bf16, 768, 1000, 256, 7, 4, 2, 1, 206);
}

int main() {
  RUN(test_ce_fp32);
  RUN(test_ce_bf16);
  RUN(test_ce_bad_target);
  RUN(test_ce_padded_rows);
  RUN(test_ce_mean);
  RUN(test_embedding_fp32);
  RUN(test_embedding_bf16);
  return check_exit();
}
