// emu_check.h: host helpers for kernel tests: guarded buffers, seeded
// random fills, bf16 rounding and conversion, error measures, and the
// CHECK/CHECK_MSG/CHECK_CLOSE/RUN harness of tests/unit/check.h.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "check.h"
#include "emu_bf16.h"

namespace emu {

// Where a guarded buffer was written out of bounds.
struct GuardReport {
  bool ok = true;
  bool before = false;  // the first damaged byte is before the data (else after it)
  size_t offset = 0;    // bytes from the data's start (before) or end (after); 0 = adjacent
  std::string message;
};

// n elements with guard bytes on both sides, each guard byte a known
// function of its position. The data starts 0xff-filled (NaN as float and
// bf16) so elements a kernel failed to write show up in the results.
template <class T> class Guarded {
 public:
  explicit Guarded(size_t n, size_t guard = 64) : n_(n), guard_((guard + 63) / 64 * 64) {
    raw_ = static_cast<unsigned char *>(aligned_alloc(64, (2 * guard_ + bytes() + 63) / 64 * 64));
    if (!raw_) abort();
    for (size_t i = 0; i < guard_; i++) raw_[guard_ - 1 - i] = pattern(i, true);
    memset(raw_ + guard_, 0xff, bytes());
    for (size_t i = 0; i < guard_; i++) raw_[guard_ + bytes() + i] = pattern(i, false);
  }
  Guarded(const Guarded &) = delete;
  Guarded &operator=(const Guarded &) = delete;
  ~Guarded() { free(raw_); }

  T *data() { return reinterpret_cast<T *>(raw_ + guard_); }
  const T *data() const { return reinterpret_cast<const T *>(raw_ + guard_); }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }
  T &operator[](size_t i) { return data()[i]; }
  const T &operator[](size_t i) const { return data()[i]; }

  // The damaged guard byte nearest the data, if any.
  GuardReport check(const char *name = "buffer") const {
    GuardReport r;
    for (size_t i = 0; i < guard_ && r.ok; i++) {
      if (raw_[guard_ - 1 - i] != pattern(i, true)) r.ok = false, r.before = true, r.offset = i;
      else if (raw_[guard_ + bytes() + i] != pattern(i, false)) r.ok = false, r.offset = i;
    }
    if (!r.ok) {
      char buf[256];
      snprintf(buf, sizeof buf, "%s (%zu x %zu bytes): guard byte %zu %s the data overwritten", name,
               n_, sizeof(T), r.offset, r.before ? "before" : "after");
      r.message = buf;
    }
    return r;
  }

 private:
  static unsigned char pattern(size_t i, bool before) {
    return (unsigned char)(0xa5u ^ (i * 29u) ^ (before ? 0x5au : 0u));
  }
  size_t n_, guard_;
  unsigned char *raw_;
};

// CHECK that a guarded buffer is intact, printing where it is not.
#define CHECK_GUARD(buf)                                                         \
  do {                                                                           \
    ::emu::GuardReport r_ = (buf).check(#buf);                                   \
    CHECK_MSG(r_.ok, "%s", r_.message.c_str());                                  \
  } while (0)

// splitmix64: the same numbers on every platform and compiler (the
// <random> distributions are not specified bit for bit).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) {  // [lo, hi)
    return lo + (hi - lo) * float(next() >> 40) * (1.0f / 16777216.0f);
  }
};

inline void fill_uniform(float *p, size_t n, float lo, float hi, uint64_t seed) {
  Rng r(seed);
  for (size_t i = 0; i < n; i++) p[i] = r.uniform(lo, hi);
}
inline void fill_uniform(__nv_bfloat16 *p, size_t n, float lo, float hi, uint64_t seed) {
  Rng r(seed);
  for (size_t i = 0; i < n; i++) p[i] = __float2bfloat16_rn(r.uniform(lo, hi));
}
// Integers in [lo, hi] (token ids, indices).
inline void fill_int(int *p, size_t n, int lo, int hi, uint64_t seed) {
  Rng r(seed);
  const uint64_t span = uint64_t(int64_t(hi) - lo + 1);
  for (size_t i = 0; i < n; i++) p[i] = int(lo + int64_t(r.next() % span));
}

// x -> the float value of its bf16 rounding (RNE), in place.
inline void round_bf16(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = __bfloat162float(__float2bfloat16_rn(p[i]));
}
inline void to_bf16(const float *src, __nv_bfloat16 *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = __float2bfloat16_rn(src[i]);
}
inline void to_float(const __nv_bfloat16 *src, float *dst, size_t n) {
  for (size_t i = 0; i < n; i++) dst[i] = __bfloat162float(src[i]);
}

// Normalized mean squared error, sum (g-r)^2 / sum r^2, as ggml's
// test-backend-ops. Where ref is all zero it is sum g^2 (normalized by 1):
// 0 only if got is all zero too. NaN anywhere gives NaN (fails any `<`).
inline double nmse(const float *got, const float *ref, size_t n) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = double(got[i]) - double(ref[i]);
    err += d * d;
    norm += double(ref[i]) * double(ref[i]);
  }
  return norm > 0 ? err / norm : err;
}
inline double nmse(const __nv_bfloat16 *got, const float *ref, size_t n) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < n; i++) {
    const double d = double(__bfloat162float(got[i])) - double(ref[i]);
    err += d * d;
    norm += double(ref[i]) * double(ref[i]);
  }
  return norm > 0 ? err / norm : err;
}

inline bool has_nan_or_inf(const float *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(p[i])) return true;
  return false;
}
inline bool has_nan_or_inf(const __nv_bfloat16 *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((p[i].__x & 0x7f80u) == 0x7f80u) return true;
  return false;
}

}  // namespace emu
