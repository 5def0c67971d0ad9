// cuda_emu.h: CUDA semantics on the host, for testing kernels without a GPU.
// Include it first (or -include it) in a CUDA source compiled by g++ with
// -DLISA_EMU -std=c++17; then launch kernels with emu::launch or, from
// generated code, emu_launch_raw. See README.md for flags.
//
// What it emulates: blocks run one after another; a block's threads are
// fibers on the calling OS thread (emu_fiber.h), scheduled round-robin by
// emu_sched.h. __syncthreads waits for every thread that has not returned;
// a warp operation (__shfl*_sync, __ballot_sync, __syncwarp, ...) waits for
// every lane of its mask. Errors (a mask naming an exited lane, lanes that
// disagree on a mask, barriers in divergent code, deadlocks) fail the launch
// with a message naming the block and thread.
//
// Everything is header-only with state in inline variables, compiled with
// hidden visibility: a dlopen'ed .so built from a generated .cu has its own
// emulator, which its exported emu_launch_raw drives.
#pragma once

#define LISA_EMU_ACTIVE 1

#include "emu_atomic.h"
#include "emu_bf16.h"
#include "emu_math.h"
#include "emu_sched.h"
#include "emu_types.h"

#pragma GCC visibility push(hidden)

// --- The thread's coordinates -------------------------------------------------

namespace emu {
namespace detail {
inline const uint3 &thread_idx() { return current().tid; }
inline const uint3 &block_idx() { return launch_ctx().block_idx; }
inline const dim3 &block_dim() { return launch_ctx().block; }
inline const dim3 &grid_dim() { return launch_ctx().grid; }
}  // namespace detail

// This block's dynamic shared memory: the size given to emu::launch, filled
// with 0xff bytes before each block; null if the size is 0.
inline void *dynamic_smem() { return detail::launch_ctx().dyn.get(); }
}  // namespace emu

// A vector access (templates/lisa_common.cuh's vec_*) at an address not
// aligned to its width: a GPU faults ("misaligned address"); so does this.
namespace emu {
inline void check_vec_align(const void *p, unsigned long long bytes) {
  if (reinterpret_cast<unsigned long long>(p) % bytes != 0)
    detail::fail("misaligned address: a %llu-byte vector access at %p", bytes, p);
}
}  // namespace emu
#define LISA_CHECK_VEC_ALIGN(p, bytes) ::emu::check_vec_align((p), (bytes))

#define threadIdx (::emu::detail::thread_idx())
#define blockIdx (::emu::detail::block_idx())
#define blockDim (::emu::detail::block_dim())
#define gridDim (::emu::detail::grid_dim())

#define LISA_DYNAMIC_SMEM(type, name) type *name = reinterpret_cast<type *>(::emu::dynamic_smem())

// --- Barriers and warp operations ----------------------------------------------
// __builtin_FILE/LINE as default arguments give the call site, so barriers
// reached at different places in the source are reported.

inline void __syncthreads(const char *file = __builtin_FILE(), int line = __builtin_LINE()) {
  emu::detail::syncthreads({file, line}, 0);
}
inline int __syncthreads_count(int pred, const char *file = __builtin_FILE(),
                               int line = __builtin_LINE()) {
  return emu::detail::syncthreads({file, line}, pred);
}
inline int __syncthreads_and(int pred, const char *file = __builtin_FILE(),
                             int line = __builtin_LINE()) {
  return emu::detail::syncthreads({file, line}, !pred) == 0;
}
inline int __syncthreads_or(int pred, const char *file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
  return emu::detail::syncthreads({file, line}, pred) != 0;
}

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  emu::detail::warp_op(emu::detail::WarpOp::Sync, mask, 0, 0, 32);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return unsigned(emu::detail::warp_op(emu::detail::WarpOp::Ballot, mask, 0, pred != 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
  return int(emu::detail::warp_op(emu::detail::WarpOp::Any, mask, 0, pred != 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
  return int(emu::detail::warp_op(emu::detail::WarpOp::All, mask, 0, pred != 0, 32));
}

// --- cp.async (PTX ISA: cp.async, cp.async.commit_group, cp.async.wait_group) --
// As an adversary: a copy lands only when a wait_group covers it, and until
// then its destination reads as 0xff bytes (NaN in bf16 and fp32), so a
// read before the wait, or a wait that leaves the wrong group pending, shows
// up in the results. Both addresses must be 16-byte aligned; src_bytes < 16
// fills the rest with zeros (0: a zero row).
namespace emu {
inline void cp_async_16(void *dst, const void *src, unsigned src_bytes) {
  check_vec_align(dst, 16);
  if (src_bytes) check_vec_align(src, 16);
  if (src_bytes > 16) detail::fail("cp.async of %u source bytes into 16", src_bytes);
  memset(dst, 0xff, 16);
  detail::current().copies.push_back({dst, src, 16, src_bytes, 0});
}
inline void cp_async_commit() {
  detail::Thread &t = detail::current();
  t.groups++;
  for (detail::AsyncCopy &c : t.copies)
    if (!c.group) c.group = t.groups;
}
// Every committed group but the newest n lands.
inline void cp_async_wait(unsigned n) {
  detail::Thread &t = detail::current();
  size_t kept = 0;  // the copies still in flight move to the front, in order
  for (const detail::AsyncCopy &c : t.copies) {
    if (!c.group || c.group + n > t.groups) {
      t.copies[kept++] = c;
      continue;
    }
    memcpy(c.dst, c.src, c.src_bytes);
    memset(static_cast<char *>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
  }
  t.copies.resize(kept);
}
}  // namespace emu

// Ends the launch with an error, like a device-side trap.
[[noreturn]] inline void __trap() { emu::detail::fail("__trap()"); }

namespace emu {
namespace detail {
// A shuffle of any value of up to 8 bytes, carried as its bits.
template <class T> inline T shfl(WarpOp op, unsigned mask, T v, int param, int width) {
  static_assert(sizeof(T) <= 8, "shuffles move at most 8 bytes");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  const uint64_t r = warp_op(op, mask, bits, param, width);
  T out;
  memcpy(&out, &r, sizeof(T));
  return out;
}
}  // namespace detail
}  // namespace emu

#define EMU_SHFL(T)                                                                      \
  inline T __shfl_sync(unsigned mask, T v, int src, int width = warpSize) {             \
    return emu::detail::shfl(emu::detail::WarpOp::ShflIdx, mask, v, src, width);        \
  }                                                                                      \
  inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {   \
    return emu::detail::shfl(emu::detail::WarpOp::ShflUp, mask, v, int(delta), width);  \
  }                                                                                      \
  inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize) { \
    return emu::detail::shfl(emu::detail::WarpOp::ShflDown, mask, v, int(delta), width); \
  }                                                                                      \
  inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) {   \
    return emu::detail::shfl(emu::detail::WarpOp::ShflXor, mask, v, lane_mask, width);  \
  }
EMU_SHFL(float)
EMU_SHFL(double)
EMU_SHFL(int)
EMU_SHFL(unsigned)
EMU_SHFL(long)
EMU_SHFL(unsigned long)
EMU_SHFL(long long)
EMU_SHFL(unsigned long long)
EMU_SHFL(__nv_bfloat16)
EMU_SHFL(__nv_bfloat162)
#undef EMU_SHFL

// --- Launching --------------------------------------------------------------------

namespace emu {

// Fiber stack size for later launches (default 64 KiB, 256 KiB under ASan;
// also EMU_STACK_KIB in the environment). 0 restores the default.
inline void set_stack_size(size_t bytes) { detail::g_stack_size = bytes; }

// The schedule of later launches in this module, as LISA_EMU_SCHEDULE names
// it (fifo, reverse, random, greedy; emu_sched.h) with the random one's
// seed; false for an unknown name. The environment sets the first.
inline bool set_schedule(const char *name, uint64_t seed) {
  detail::Schedule s;
  if (!detail::schedule_named(name, &s)) return false;
  detail::policy() = detail::Policy{s, detail::seed_state(seed)};
  return true;
}

// Why the last launch failed ("" if it did not).
inline const char *last_error() { return detail::g_last_error.c_str(); }
// Gives back what launches keep between them (the fibers' stacks: two
// mappings per thread). A host that dlopens generated code calls it before
// dlclose: GCC makes inline variables STB_GNU_UNIQUE, which keeps the .so,
// and its destructors, from ever unloading, and a tuner loading hundreds of
// programs would run out of mappings (vm.max_map_count).
inline void release() {
  detail::g_stacks.release();
  std::string().swap(detail::g_last_error);
}

// Runs kernel(args...) as every thread of a grid x block launch with
// dyn_smem bytes of dynamic shared memory. Each thread gets its own copy of
// the arguments, as kernel parameters are. 0, or -1 with last_error().
template <class K, class... A> int launch(dim3 grid, dim3 block, size_t dyn_smem, K kernel, A... args) {
  auto call = [&]() { kernel(args...); };
  using Call = decltype(call);
  return detail::run(grid, block, dyn_smem, [](void *p) { (*static_cast<Call *>(p))(); }, &call);
}

// The raw form below, for calls from inside the same .so: a hidden symbol,
// so it cannot bind to another module's emulator by interposition.
inline int launch_raw(void (*entry)(void **args), void **args, dim3 grid, dim3 block,
                      size_t dyn_smem);

}  // namespace emu

#pragma GCC visibility pop

// For generated code: entry is a trampoline that unpacks args as
// cuLaunchKernel's kernelParams (args[i] points at the i-th argument).
// Exported, so a test can find it with dlsym in the .so it belongs to.
struct emu_raw_call {
  void (*entry)(void **);
  void **args;
};
inline int emu::launch_raw(void (*entry)(void **args), void **args, dim3 grid, dim3 block,
                           size_t dyn_smem) {
  emu_raw_call c{entry, args};
  return emu::detail::run(grid, block, dyn_smem,
                          [](void *p) {
                            auto *rc = static_cast<emu_raw_call *>(p);
                            rc->entry(rc->args);
                          },
                          &c);
}
extern "C" __attribute__((visibility("default"), used)) inline int emu_launch_raw(
    void (*entry)(void **args), void **args, dim3 grid, dim3 block, size_t dyn_smem) {
  return emu::launch_raw(entry, args, grid, block, dyn_smem);
}
// Its message, also exported for dlsym.
extern "C" __attribute__((visibility("default"), used)) inline const char *emu_last_error() {
  return emu::last_error();
}
