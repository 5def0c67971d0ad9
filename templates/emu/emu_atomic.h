// emu_atomic.h: CUDA atomics. Fibers of a launch share one OS thread and
// switch only inside barriers and warp operations, so a plain
// read-modify-write is already atomic. Each returns the old value.
#pragma once

#pragma GCC visibility push(hidden)

#define EMU_ATOMIC_RMW(NAME, T, EXPR)            \
  inline T NAME(T *addr, T val) {                \
    T old = *addr;                               \
    *addr = (EXPR);                              \
    return old;                                  \
  }
EMU_ATOMIC_RMW(atomicAdd, float, old + val)
EMU_ATOMIC_RMW(atomicAdd, double, old + val)
EMU_ATOMIC_RMW(atomicAdd, int, int(unsigned(old) + unsigned(val)))  // wraps like the GPU
EMU_ATOMIC_RMW(atomicAdd, unsigned, old + val)
EMU_ATOMIC_RMW(atomicAdd, unsigned long long, old + val)
EMU_ATOMIC_RMW(atomicSub, int, int(unsigned(old) - unsigned(val)))
EMU_ATOMIC_RMW(atomicSub, unsigned, old - val)
EMU_ATOMIC_RMW(atomicMax, int, old < val ? val : old)
EMU_ATOMIC_RMW(atomicMax, unsigned, old < val ? val : old)
EMU_ATOMIC_RMW(atomicMin, int, val < old ? val : old)
EMU_ATOMIC_RMW(atomicMin, unsigned, val < old ? val : old)
EMU_ATOMIC_RMW(atomicExch, int, val)
EMU_ATOMIC_RMW(atomicExch, unsigned, val)
EMU_ATOMIC_RMW(atomicExch, unsigned long long, val)
EMU_ATOMIC_RMW(atomicExch, float, val)
EMU_ATOMIC_RMW(atomicOr, int, old | val)
EMU_ATOMIC_RMW(atomicOr, unsigned, old | val)
EMU_ATOMIC_RMW(atomicAnd, int, old & val)
EMU_ATOMIC_RMW(atomicAnd, unsigned, old & val)
#undef EMU_ATOMIC_RMW

#define EMU_ATOMIC_CAS(T)                        \
  inline T atomicCAS(T *addr, T compare, T val) { \
    T old = *addr;                               \
    if (old == compare) *addr = val;             \
    return old;                                  \
  }
EMU_ATOMIC_CAS(int)
EMU_ATOMIC_CAS(unsigned)
EMU_ATOMIC_CAS(unsigned long long)
#undef EMU_ATOMIC_CAS

#pragma GCC visibility pop
