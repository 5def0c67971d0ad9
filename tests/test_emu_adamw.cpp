// test_emu_adamw.cpp: templates/adamw.cuh on the CUDA emulator against
// runtime/optim.c (opt_adamw_update, opt_sum_squares, opt_clip_scale):
// several tensors of odd sizes with their own step counts and decay flags,
// several steps, clipping on and off; the bf16 copy (nearest and stochastic).
#include "cuda_emu.h"
#include "emu_check.h"

#include "lisa_common.cuh"
#include "adamw.cuh"

#include <vector>

#include "optim.h"

using bf16 = __nv_bfloat16;
using lisa::AdamWTensor;

// ---- __global__ wrappers, as the generator writes them -------------------

#define ADAMW_WRAP(NAME, T, TH, SR)                                                           \
  extern "C" __global__ void NAME(const AdamWTensor *t, int n, const float *clip, float lr,   \
                                  float b1, float b2, float eps, float wd, unsigned seed) {   \
    lisa::adamw_multi<T, TH, SR>(t, n, clip, lr, b1, b2, eps, wd, seed);                      \
  }
ADAMW_WRAP(adamw_b64, bf16, 64, false)
ADAMW_WRAP(adamw_b64_sr, bf16, 64, true)
ADAMW_WRAP(adamw_f32, float, 32, false)

#define NORM_WRAP(NAME, TH)                                                                  \
  extern "C" __global__ void NAME(float *norm, float *clip, double *part, unsigned *counter, \
                                  const AdamWTensor *t, int n, float max_norm) {             \
    lisa::global_norm<TH>(norm, clip, part, counter, t, n, max_norm);                        \
  }
NORM_WRAP(norm64, 64)
NORM_WRAP(norm32, 32)

#define LAUNCH(grid, block, ...)                                    \
  do {                                                              \
    int rc_ = emu::launch(dim3(grid), dim3(block), 0, __VA_ARGS__); \
    CHECK_MSG(rc_ == 0, "launch: %s", emu::last_error());           \
  } while (0)

static bool same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * 4) == 0; }

namespace {
// One tensor on the "device" (guarded) and its CPU reference copy.
struct Tensor {
  int64_t n;
  int decay, step;
  bool copy;
  emu::Guarded<float> w, g, m, v;
  emu::Guarded<bf16> wc;
  std::vector<float> rw, rm, rv;
  Tensor(int64_t n_, int decay_, int step_, bool copy_, uint64_t seed)
      : n(n_), decay(decay_), step(step_), copy(copy_), w(n_), g(n_), m(n_), v(n_), wc(n_),
        rw(n_), rm(n_, 0.0f), rv(n_, 0.0f) {
    emu::fill_uniform(w.data(), n, -1.0f, 1.0f, seed);
    memcpy(rw.data(), w.data(), n * 4);
    if (step > 1) {  // a tensor already some steps in: non-zero moments
      emu::fill_uniform(rm.data(), n, -0.01f, 0.01f, seed + 1);
      emu::fill_uniform(rv.data(), n, 0.0f, 1e-4f, seed + 2);
    }
    memcpy(m.data(), rm.data(), n * 4);
    memcpy(v.data(), rv.data(), n * 4);
  }
  AdamWTensor desc() {
    return AdamWTensor{w.data(), g.data(), m.data(), v.data(), copy ? (void *)wc.data() : nullptr,
                       (long long)n, decay, step};
  }
};
}  // namespace

// Steps of AdamW over tensors of odd sizes, against the CPU step by step.
// clip_mode 0: max_norm 1 (clipping active), 1: max_norm 0 (off), 2: clip
// pointer null (adamw_multi without a norm kernel). grid: adamw's grid.
static void run_steps(int clip_mode, int grid, uint64_t seed) {
  const int64_t sizes[] = {37, 1, 1000, 4099, 129, 24};
  const int decays[] = {1, 0, 1, 0, 1, 1};
  const int steps[] = {1, 3, 10, 1, 0, 7};  // entry 4 is inactive (step 0)
  const bool copies[] = {true, false, true, true, true, false};
  const int K = 6;
  std::vector<Tensor *> ts;
  for (int k = 0; k < K; k++) ts.push_back(new Tensor(sizes[k], decays[k], steps[k], copies[k], seed + 10 * k));
  opt_config c = opt_defaults();
  c.lr = 1e-3f;
  c.weight_decay = 0.1f;
  c.grad_clip = clip_mode == 0 ? 1.0f : 0.0f;
  emu::Guarded<AdamWTensor> table(K);
  const int NG = 5;  // norm grid
  emu::Guarded<double> partials(NG);
  emu::Guarded<unsigned> counter(1);
  emu::Guarded<float> norm(1), clip(1);
  counter[0] = 0;
  int exact_clip = 0;
  for (int s = 0; s < 4; s++) {
    const float lr = c.lr * (1.0f - 0.1f * s);
    double ref_sq = 0.0;
    for (int k = 0; k < K; k++) {
      Tensor &t = *ts[k];
      emu::fill_uniform(t.g.data(), t.n, -0.2f, 0.2f, seed + 1000 * s + k);
      if (k == 2 && s == 1) t.g[0] = 30.0f;  // a spike: clipping bites hard
      table[k] = t.desc();
      if (t.step >= 1) ref_sq += opt_sum_squares(t.g.data(), t.n);
    }
    const double ref_norm = sqrt(ref_sq);
    const float ref_clip = opt_clip_scale(&c, ref_norm);
    const float *clip_ptr = nullptr;
    if (clip_mode != 2) {
      LAUNCH(NG, 64, norm64, norm.data(), clip.data(), partials.data(), counter.data(), table.data(), K,
             c.grad_clip);
      CHECK(counter[0] == 0u);
      CHECK_CLOSE(norm[0], ref_norm, 0.0, 1e-6);
      CHECK_CLOSE(clip[0], ref_clip, 0.0, 1e-6);
      exact_clip += clip[0] == ref_clip;
      if (clip_mode == 0 && s == 1) CHECK(ref_clip < 0.1f);
      if (clip_mode == 1) CHECK(clip[0] == 1.0f);
      clip_ptr = clip.data();
    }
    LAUNCH(grid, 64, adamw_b64, table.data(), K, clip_ptr, lr, c.beta1, c.beta2, c.eps, c.weight_decay,
           123u);
    const float scale = clip_mode == 2 ? 1.0f : clip[0];
    for (int k = 0; k < K; k++) {
      Tensor &t = *ts[k];
      if (t.step >= 1)
        opt_adamw_update(t.rw.data(), t.g.data(), t.rm.data(), t.rv.data(), t.n, lr,
                         t.decay ? c.weight_decay : 0.0f, &c, t.step, scale);
      // the emulator runs the same float operations in the same order (and
      // the host's pow): bit-exact
      CHECK_MSG(same_bits(t.w.data(), t.rw.data(), t.n), "step %d tensor %d: w", s, k);
      CHECK_MSG(same_bits(t.m.data(), t.rm.data(), t.n), "step %d tensor %d: m", s, k);
      CHECK_MSG(same_bits(t.v.data(), t.rv.data(), t.n), "step %d tensor %d: v", s, k);
      CHECK(emu::nmse(t.w.data(), t.rw.data(), t.n) < 1e-7);
      CHECK(!emu::has_nan_or_inf(t.w.data(), t.n));
      if (t.copy && t.step >= 1)
        for (int64_t i = 0; i < t.n; i++) CHECK(t.wc[i].__x == __float2bfloat16_rn(t.rw[i]).__x);
      if (t.step >= 1) t.step++;
    }
  }
  if (clip_mode != 2) CHECK(exact_clip >= 3);  // clip factors agree bit for bit (almost always)
  for (Tensor *t : ts) {
    CHECK_GUARD(t->w);
    CHECK_GUARD(t->m);
    CHECK_GUARD(t->v);
    CHECK_GUARD(t->wc);
    delete t;
  }
  CHECK_GUARD(partials);
  CHECK_GUARD(norm);
  CHECK_GUARD(clip);
}

static void test_adamw_clip() { run_steps(0, 3, 1); }
static void test_adamw_noclip() { run_steps(1, 1, 2); }
static void test_adamw_null_clip() { run_steps(2, 40, 3); }  // more threads than elements

// More table entries than THREADS (the per-group scalars), a float copy,
// and the norm over a grid of one block and of many.
static void test_many_tensors() {
  const int K = 45;
  std::vector<std::vector<float>> w(K), g(K), m(K), v(K), rw(K), rm(K), rv(K), wc(K);
  emu::Guarded<AdamWTensor> table(K);
  opt_config c = opt_defaults();
  double ref_sq = 0;
  for (int k = 0; k < K; k++) {
    const int n = 1 + (k * 37) % 101;
    w[k].resize(n), g[k].resize(n), m[k].assign(n, 0.0f), v[k].assign(n, 0.0f), wc[k].assign(n, 0.0f);
    emu::fill_uniform(w[k].data(), n, -1, 1, 500 + k);
    emu::fill_uniform(g[k].data(), n, -1, 1, 600 + k);
    rw[k] = w[k], rm[k] = m[k], rv[k] = v[k];
    table[k] = AdamWTensor{w[k].data(), g[k].data(), m[k].data(), v[k].data(), wc[k].data(), n, k % 2,
                           1 + k % 4};
    ref_sq += opt_sum_squares(g[k].data(), n);
  }
  emu::Guarded<double> partials(7);
  emu::Guarded<unsigned> counter(1);
  emu::Guarded<float> norm(1), clip(1);
  counter[0] = 0;
  LAUNCH(1, 32, norm32, norm.data(), clip.data(), partials.data(), counter.data(), table.data(), K, 1.0f);
  const float n1 = norm[0], c1 = clip[0];
  LAUNCH(7, 32, norm32, norm.data(), clip.data(), partials.data(), counter.data(), table.data(), K, 1.0f);
  CHECK_CLOSE(n1, sqrt(ref_sq), 0.0, 1e-6);
  CHECK_CLOSE(norm[0], sqrt(ref_sq), 0.0, 1e-6);
  CHECK(c1 == clip[0]);
  const float f = opt_clip_scale(&c, sqrt(ref_sq));
  CHECK(clip[0] == f);
  // the same launch twice: the same bits
  const float n2 = norm[0];
  LAUNCH(7, 32, norm32, norm.data(), clip.data(), partials.data(), counter.data(), table.data(), K, 1.0f);
  CHECK(memcmp(&n2, norm.data(), 4) == 0);
  CHECK(counter[0] == 0u);

  LAUNCH(2, 32, adamw_f32, table.data(), K, clip.data(), c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, 0u);
  for (int k = 0; k < K; k++) {
    const int n = (int)w[k].size();
    opt_adamw_update(rw[k].data(), g[k].data(), rm[k].data(), rv[k].data(), n, c.lr,
                     k % 2 ? c.weight_decay : 0.0f, &c, 1 + k % 4, f);
    CHECK_MSG(same_bits(w[k].data(), rw[k].data(), n), "tensor %d", k);
    CHECK(same_bits(m[k].data(), rm[k].data(), n) && same_bits(v[k].data(), rv[k].data(), n));
    CHECK(same_bits(wc[k].data(), rw[k].data(), n));  // a float copy is the weights
  }
  CHECK_GUARD(table);
  CHECK_GUARD(partials);
}

// Stochastic rounding: with lr = 0 and g = 0 the weights stay put, so the
// copy is just the rounding of a known value. Every result is one of the two
// bf16 neighbours; the mean over many elements (and over many seeds of one
// element) is the value; the same seed gives the same bits.
static void test_stochastic_rounding() {
  const int n = 8192;
  const float values[] = {1.0f + 0.25f / 128, -3.0f - 0.5f * 3 / 128 * 2, 0.1f, 1.0f + 0.9f / 128,
                          1e-30f, 65504.0f * 1.3f};
  for (float x : values) {
    // the two bf16 neighbours of x
    unsigned u;
    memcpy(&u, &x, 4);
    const unsigned down = u & 0xffff0000u, up = down + 0x10000u;
    float fd, fu;
    memcpy(&fd, &down, 4), memcpy(&fu, &up, 4);
    const double p = (double(x) - fd) / (double(fu) - fd);  // chance of rounding up (in magnitude)
    std::vector<float> w(n, x), g(n, 0.0f), m(n, 0.0f), v(n, 0.0f);
    emu::Guarded<bf16> wc(n), wc2(n);
    emu::Guarded<AdamWTensor> table(1);
    table[0] = AdamWTensor{w.data(), g.data(), m.data(), v.data(), wc.data(), n, 1, 1};
    LAUNCH(4, 64, adamw_b64_sr, table.data(), 1, nullptr, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 77u);
    double mean = 0;
    int ups = 0;
    bool neighbours = true;
    for (int i = 0; i < n; i++) {
      const float r = __bfloat162float(wc[i]);
      neighbours = neighbours && (r == fd || r == fu);
      ups += r == fu;
      mean += r;
    }
    mean /= n;
    CHECK_MSG(neighbours, "x=%g", x);
    CHECK(w[0] == x);
    const double sigma = fabs(double(fu) - fd) * sqrt(p * (1 - p) / n);
    CHECK_MSG(fabs(mean - x) <= 5 * sigma, "x=%g mean %.9g (%d of %d up, p %g)", x,
              mean, ups, n, p);
    // deterministic for a seed; a different seed changes some roundings
    table[0].w_copy = wc2.data();
    LAUNCH(3, 64, adamw_b64_sr, table.data(), 1, nullptr, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 77u);
    CHECK(memcmp(wc.data(), wc2.data(), n * 2) == 0);
    LAUNCH(3, 64, adamw_b64_sr, table.data(), 1, nullptr, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 78u);
    if (p > 0.01 && p < 0.99) CHECK(memcmp(wc.data(), wc2.data(), n * 2) != 0);
    CHECK_GUARD(wc);
    CHECK_GUARD(wc2);
  }
  // one element over many seeds
  {
    const float x = 2.0f + 0.3f * (2.0f / 128);
    unsigned u;
    memcpy(&u, &x, 4);
    const unsigned down = u & 0xffff0000u, up = down + 0x10000u;
    float fd, fu;
    memcpy(&fd, &down, 4), memcpy(&fu, &up, 4);
    const double p = (double(x) - fd) / (double(fu) - fd);
    float w = x, g = 0, m = 0, v = 0;
    bf16 out;
    emu::Guarded<AdamWTensor> table(1);
    table[0] = AdamWTensor{&w, &g, &m, &v, &out, 1, 0, 1};
    const int seeds = 2000;
    double mean = 0;
    for (int s = 0; s < seeds; s++) {
      LAUNCH(1, 64, adamw_b64_sr, table.data(), 1, nullptr, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, (unsigned)s);
      mean += __bfloat162float(out);
    }
    mean /= seeds;
    const double sigma = fabs(double(fu) - fd) * sqrt(p * (1 - p) / seeds);
    CHECK_MSG(fabs(mean - x) <= 5 * sigma, "mean over seeds %.9g, x %.9g", mean, x);
  }
  // inf and NaN pass through round-to-nearest
  {
    float w[2] = {INFINITY, NAN}, g[2] = {0, 0}, m[2] = {0, 0}, v[2] = {0, 0};
    bf16 out[2];
    emu::Guarded<AdamWTensor> table(1);
    table[0] = AdamWTensor{w, g, m, v, out, 2, 0, 1};
    LAUNCH(1, 64, adamw_b64_sr, table.data(), 1, nullptr, 0.0f, 0.9f, 0.999f, 1e-8f, 0.0f, 5u);
    CHECK(out[0].__x == 0x7f80u);
    CHECK((out[1].__x & 0x7fffu) > 0x7f80u);
  }
}

int main() {
  RUN(test_adamw_clip);
  RUN(test_adamw_noclip);
  RUN(test_adamw_null_clip);
  RUN(test_many_tensors);
  RUN(test_stochastic_rounding);
  return check_exit();
}
