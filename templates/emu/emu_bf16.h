// emu_bf16.h: __nv_bfloat16 for the host, bit-exact with cuda_bf16.h.
// bf16 is the top half of an IEEE float; float -> bf16 rounds to nearest
// even (RNE) on the dropped 16 bits, which also rounds overflow to inf and
// keeps subnormals (cvt.rn.bf16.f32 does not flush them). Every NaN becomes
// the canonical quiet NaN 0x7fff, as the host path of cuda_bf16.hpp does.
#pragma once

#include <stdint.h>
#include <string.h>

#include "emu_types.h"

#pragma GCC visibility push(hidden)

namespace emu {
namespace bf16 {

inline uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

// The RNE rounding of cuda_bf16.hpp's __float2bfloat16_rn (host path).
inline uint16_t from_float_rn(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  const uint32_t rest = x & 0xffffu, half = 0x8000u;
  uint32_t hi = x >> 16;
  if (rest > half || (rest == half && (hi & 1u))) hi++;  // carries into the exponent: fine
  return uint16_t(hi);
}

inline float to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

}  // namespace bf16
}  // namespace emu

// Storage as in cuda_bf16.h: two bytes, 2-byte aligned, implicit
// conversions to and from float (RNE).
struct alignas(2) __nv_bfloat16 {
  unsigned short __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(emu::bf16::from_float_rn(f)) {}
  __nv_bfloat16(double d) : __x(emu::bf16::from_float_rn(float(d))) {}
  __nv_bfloat16(int i) : __x(emu::bf16::from_float_rn(float(i))) {}
  operator float() const { return emu::bf16::to_float(__x); }
};
static_assert(sizeof(__nv_bfloat16) == 2, "__nv_bfloat16 is two bytes");

struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
};

inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  __nv_bfloat16 h;
  h.__x = u;
  return h;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  return __ushort_as_bfloat16(emu::bf16::from_float_rn(f));
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return emu::bf16::to_float(h.__x); }

inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162{__float2bfloat16_rn(a), __float2bfloat16_rn(b)};
}
inline __nv_bfloat162 __float2bfloat162_rn(float a) { return __floats2bfloat162_rn(a, a); }
inline float __low2float(__nv_bfloat162 v) { return __bfloat162float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return __bfloat162float(v.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 v) {
  return float2{__bfloat162float(v.x), __bfloat162float(v.y)};
}

#pragma GCC visibility pop
