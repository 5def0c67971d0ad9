// emu_sched.h: the emulator's one piece of state, the current launch, and
// what runs it: blocks one after another, a block's threads as fibers
// scheduled round-robin on the calling OS thread, __syncthreads as a block
// barrier and warp operations as rendezvous of the lanes in their mask.
//
// A fiber runs until it waits (barrier, warp operation) or returns; then
// the scheduler resumes the next ready fiber. Whoever completes a barrier
// or a warp operation computes every participant's result and makes them
// ready again. When no fiber is ready but some have not returned, nothing
// can ever complete: a deadlock, reported as an error.
//
// Errors inside a fiber (a mask naming an exited lane, barriers at different
// places) end the launch at once: the fiber records the message and switches
// to the scheduler for good. Its stack is abandoned, not unwound: kernels
// hold no resources that need destructors.
#pragma once

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "emu_fiber.h"
#include "emu_types.h"

#pragma GCC visibility push(hidden)

// The linker's bounds of the emu_smem section (emu_types.h's __shared__):
// weak, for a module with no shared variable.
extern "C" char __start_emu_smem[] __attribute__((weak));
extern "C" char __stop_emu_smem[] __attribute__((weak));

namespace emu {
namespace detail {

// LISA_EMU_SCHEDULE: the order ready fibers run in (each runs until it waits).
//   fifo     the order they became ready (blocks in grid order): the default
//   reverse  the last to become ready first (blocks in reverse grid order)
//   random   a uniform pick among the ready (blocks in a random order),
//            seeded by LISA_EMU_SEED (default 1)
//   greedy   a lane of the warp that ran last, while one is ready: one warp
//            runs as far as it can before another starts
// A kernel whose result depends on the order has a race a GPU may show.
enum class Schedule : unsigned char { Fifo, Reverse, Random, Greedy };

struct Policy {
  Schedule schedule = Schedule::Fifo;
  uint64_t rng = 1;
};

// A schedule's name; false for none of them.
inline bool schedule_named(const char *name, Schedule *out) {
  static const char *const names[] = {"fifo", "reverse", "random", "greedy"};
  for (int i = 0; i < 4; i++)
    if (!strcmp(name, names[i])) return *out = Schedule(i), true;
  return false;
}

// The random schedule's state from a seed.
inline uint64_t seed_state(uint64_t seed) { return seed * 0x9e3779b97f4a7c15ull + 1; }

inline Policy read_policy() {
  Policy p;
  const char *s = getenv("LISA_EMU_SCHEDULE"), *seed = getenv("LISA_EMU_SEED");
  if (s && *s && !schedule_named(s, &p.schedule)) {
    fprintf(stderr, "emu: LISA_EMU_SCHEDULE=%s: not fifo, reverse, random or greedy\n", s);
    abort();
  }
  p.rng = seed_state(seed ? strtoull(seed, nullptr, 10) : 1);
  return p;
}

inline Policy &policy() {
  static Policy p = read_policy();
  return p;
}

// xorshift64*: the random schedule's draws.
inline uint64_t next_random() {
  uint64_t &x = policy().rng;
  x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
  return x * 0x2545f4914f6cdd1dull;
}

enum class State : unsigned char { Ready, Barrier, Warp, Exited };
enum class WarpOp : unsigned char { Sync, ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All };

inline const char *op_name(WarpOp op) {
  static const char *const names[] = {"__syncwarp",      "__shfl_sync",     "__shfl_up_sync",
                                      "__shfl_down_sync", "__shfl_xor_sync", "__ballot_sync",
                                      "__any_sync",       "__all_sync"};
  return names[int(op)];
}

// Where a __syncthreads is in the source: threads of a block must all wait
// at the same one.
struct Site {
  const char *file = "";
  int line = 0;
  bool operator==(const Site &o) const {
    return line == o.line && (file == o.file || strcmp(file, o.file) == 0);
  }
};

// A cp.async copy in flight: issued, not yet waited for (group 0: not yet
// committed; else the commit_group count that closed its group).
struct AsyncCopy {
  void *dst;
  const void *src;
  unsigned bytes, src_bytes;
  unsigned group;
};

struct Thread {
  fiber::Context ctx;
  void *asan_fake = nullptr;
  uint3 tid{0, 0, 0};
  unsigned index = 0, lane = 0, warp = 0;
  State state = State::Ready;
  // The barrier or warp operation it waits at, and its operands.
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  int param = 0, width = 32;
  uint64_t value = 0, result = 0;
  Site site;
  std::vector<AsyncCopy> copies;  // cp.async in flight
  unsigned groups = 0;            // commit_groups so far
};

struct Launch {
  explicit Launch(fiber::Stacks &s) : stacks(s) {}
  dim3 grid, block;
  uint3 block_idx{0, 0, 0};
  unsigned nthreads = 0;
  void (*body)(void *) = nullptr;
  void *body_arg = nullptr;
  size_t dyn_size = 0;
  std::unique_ptr<unsigned char[]> dyn;  // exact size: ASan sees overruns
  std::vector<Thread> threads;
  fiber::Stacks &stacks;
  // Ready fibers, FIFO; each is in it at most once, so n slots suffice.
  std::vector<unsigned> ready;
  unsigned head = 0, count = 0;
  // The block barrier: how many wait, where, how many of them had pred != 0.
  unsigned live = 0, arrived = 0, barrier_first = 0;
  int barrier_count = 0;
  Site barrier_site;
  // The scheduler's side of every switch.
  fiber::Context sched;
  void *sched_fake = nullptr;
  const void *sched_lo = nullptr;
  size_t sched_size = 0;
  Thread *cur = nullptr;
  int last_warp = -1;  // the greedy schedule's warp
  bool failed = false;
  std::string error;
};

// The one current launch (null outside emu::launch) and the last message.
inline Launch *g_launch = nullptr;
inline std::string g_last_error;
inline size_t g_stack_size = 0;  // 0: the default
// Fiber stacks, kept from launch to launch: mapping and guarding them anew
// cost a small launch about 1 ms, most of its time.
inline fiber::Stacks g_stacks;

inline Launch &launch_ctx() {
  if (__builtin_expect(g_launch == nullptr || g_launch->cur == nullptr, 0)) {
    fprintf(stderr, "emu: a CUDA built-in was used outside a kernel launched by emu::launch\n");
    abort();
  }
  return *g_launch;
}

inline Thread &current() { return *launch_ctx().cur; }

inline std::string vformat(const char *fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  return buf;
}

inline std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = vformat(fmt, ap);
  va_end(ap);
  return s;
}

inline std::string thread_name(const Thread &t) {
  return format("thread (%u,%u,%u)", t.tid.x, t.tid.y, t.tid.z);
}

inline std::string block_name(const Launch &L) {
  return format("block (%u,%u,%u)", L.block_idx.x, L.block_idx.y, L.block_idx.z);
}

inline void push_ready(Launch &L, Thread &t) {
  L.ready[(L.head + L.count++) % L.nthreads] = t.index;
}

// The next fiber to run, as the schedule picks it: the head (fifo), the
// tail (reverse), or another swapped with the head.
inline Thread &pop_ready(Launch &L) {
  const unsigned n = L.nthreads;
  unsigned pick = 0;
  switch (policy().schedule) {
    case Schedule::Fifo: break;
    case Schedule::Reverse: {
      Thread &t = L.threads[L.ready[(L.head + --L.count) % n]];
      L.last_warp = int(t.warp);
      return t;
    }
    case Schedule::Random: pick = unsigned(next_random() % L.count); break;
    case Schedule::Greedy:
      for (unsigned k = 0; k < L.count && L.last_warp >= 0; k++)
        if (L.threads[L.ready[(L.head + k) % n]].warp == unsigned(L.last_warp)) {
          pick = k;
          break;
        }
      break;
  }
  unsigned &a = L.ready[L.head], &b = L.ready[(L.head + pick) % n];
  const unsigned chosen = b;
  b = a, a = chosen;
  Thread &t = L.threads[chosen];
  L.head = (L.head + 1) % n;
  L.count--;
  L.last_warp = int(t.warp);
  return t;
}

// Fiber side: back to the scheduler; returns when resumed. A final switch
// (the fiber returned, or failed) tells ASan the stack is done with.
inline void suspend(Launch &L, Thread &t, bool final_switch) {
  fiber::Asan::start(final_switch ? nullptr : &t.asan_fake, L.sched_lo, L.sched_size);
  fiber::switch_to(t.ctx, L.sched);
  fiber::Asan::finish(t.asan_fake, &L.sched_lo, &L.sched_size);
}

// Scheduler side: runs t until it waits or returns.
inline void resume(Launch &L, Thread &t) {
  L.cur = &t;
  fiber::Asan::start(&L.sched_fake, L.stacks.lo(t.index), L.stacks.size());
  fiber::switch_to(L.sched, t.ctx);
  fiber::Asan::finish(L.sched_fake, nullptr, nullptr);
  L.cur = nullptr;
}

// Ends the launch with "block (..) thread (..): message". Never returns.
[[noreturn]] inline void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] inline void fail(const char *fmt, ...) {
  Launch &L = launch_ctx();
  Thread &t = *L.cur;
  va_list ap;
  va_start(ap, fmt);
  L.error = block_name(L) + " " + thread_name(t) + ": " + vformat(fmt, ap);
  va_end(ap);
  L.failed = true;
  suspend(L, t, true);
  abort();  // the scheduler never resumes a failed fiber
}

// Every thread waiting at the barrier gets the count and runs again; self
// (the thread completing it, if any) just continues.
inline void release_barrier(Launch &L, Thread *self) {
  for (Thread &u : L.threads) {
    if (u.state != State::Barrier) continue;
    u.state = State::Ready;
    u.result = uint64_t(L.barrier_count);
    if (&u != self) push_ready(L, u);
  }
  L.arrived = 0;
}

// __syncthreads: threads that returned count as arrived (as on sm_70+).
inline int syncthreads(Site site, int pred) {
  Launch &L = launch_ctx();
  Thread &t = *L.cur;
  if (L.arrived == 0) {
    L.barrier_site = site;
    L.barrier_first = t.index;
    L.barrier_count = 0;
  } else if (!(site == L.barrier_site)) {
    fail("__syncthreads at %s:%d while %s waits at the one at %s:%d (a barrier in divergent code)",
         site.file, site.line, thread_name(L.threads[L.barrier_first]).c_str(), L.barrier_site.file,
         L.barrier_site.line);
  }
  t.state = State::Barrier;
  t.site = site;
  L.arrived++;
  L.barrier_count += pred != 0;
  if (L.arrived == L.live) release_barrier(L, &t);
  else suspend(L, t, false);
  return int(t.result);
}

// Lane j of t's warp, which t's mask names: checks it can take part.
// Returns whether it already waits at the same operation.
inline bool lane_arrived(Launch &L, const Thread &t, unsigned j) {
  const unsigned idx = t.warp * 32 + j;
  const char *op = op_name(t.op);
  if (idx >= L.nthreads)
    fail("%s with mask 0x%08x names lane %u, which does not exist (the block has %u threads)", op,
         t.mask, j, L.nthreads);
  const Thread &u = L.threads[idx];
  if (u.state == State::Exited)
    fail("%s with mask 0x%08x names lane %u, which has exited", op, t.mask, j);
  if (u.state != State::Warp) return false;
  if (u.mask != t.mask) {
    if (!(u.mask >> t.lane & 1u)) return false;  // u waits for another group first
    fail("lanes disagree on the mask: %s with 0x%08x, while lane %u waits at %s with 0x%08x", op,
         t.mask, j, op_name(u.op), u.mask);
  }
  if (u.op != t.op)
    fail("lanes disagree on the operation: %s with mask 0x%08x, while lane %u waits at %s", op,
         t.mask, j, op_name(u.op));
  return true;
}

// The lane a shuffle reads, by PTX's shfl.sync rules: idx wraps within the
// width-lane segment; up, down and xor past the segment read their own
// value (xor may read an earlier segment, as the CUDA guide says).
inline unsigned shfl_source(WarpOp op, unsigned lane, int param, int width) {
  const unsigned first = lane & ~unsigned(width - 1), last = first + unsigned(width) - 1;
  const long long l = lane, p = (long long)(unsigned)param;
  switch (op) {
    case WarpOp::ShflIdx: return first + (unsigned(param) & unsigned(width - 1));
    case WarpOp::ShflUp: return l - p < (long long)first ? lane : unsigned(l - p);
    case WarpOp::ShflDown: return l + p > (long long)last ? lane : unsigned(l + p);
    case WarpOp::ShflXor: {
      const unsigned j = lane ^ (unsigned(param) & 31u);
      return j > last ? lane : j;
    }
    default: return lane;
  }
}

// What a lane reads from a lane outside the mask: undefined in CUDA; all
// ones here (a NaN as float or bf16, -1 as int) so that using it shows.
inline constexpr uint64_t kPoison = ~uint64_t(0);

// Called by the last lane of t's group to arrive: every lane's result.
inline void complete_warp_op(Launch &L, Thread &t) {
  Thread *w = &L.threads[t.warp * 32];
  unsigned ballot = 0;
  for (unsigned m = t.mask; m; m &= m - 1) {
    const unsigned i = unsigned(__builtin_ctz(m));
    if (w[i].param) ballot |= 1u << i;
  }
  for (unsigned m = t.mask; m; m &= m - 1) {
    Thread &u = w[unsigned(__builtin_ctz(m))];
    switch (t.op) {
      case WarpOp::Sync: u.result = 0; break;
      case WarpOp::Ballot: u.result = ballot; break;
      case WarpOp::Any: u.result = ballot != 0; break;
      case WarpOp::All: u.result = ballot == t.mask; break;
      default: {
        const unsigned j = shfl_source(t.op, u.lane, u.param, u.width);
        u.result = (t.mask >> j & 1u) ? w[j].value : kPoison;
      }
    }
    u.state = State::Ready;
    if (&u != &t) push_ready(L, u);
  }
}

// A warp operation: waits until every lane of mask has arrived at it.
inline uint64_t warp_op(WarpOp op, unsigned mask, uint64_t value, int param, int width) {
  Launch &L = launch_ctx();
  Thread &t = *L.cur;
  t.op = op;
  t.mask = mask;
  if (!(mask >> t.lane & 1u))
    fail("%s with mask 0x%08x, which does not name the calling lane %u", op_name(op), mask, t.lane);
  if (width < 1 || width > 32 || (width & (width - 1)))
    fail("%s with width %d (a power of 2 from 1 to 32)", op_name(op), width);
  t.value = value;
  t.param = param;
  t.width = width;
  t.state = State::Warp;
  bool all = true;
  for (unsigned m = mask & ~(1u << t.lane); m; m &= m - 1)
    all = lane_arrived(L, t, unsigned(__builtin_ctz(m))) && all;
  if (all) complete_warp_op(L, t);
  else suspend(L, t, false);
  return t.result;
}

// A returning thread: it no longer holds up a barrier, and a warp operation
// whose mask names it can never complete.
inline void thread_exit(Launch &L, Thread &t) {
  if (!t.copies.empty())
    fail("returned with %zu cp.async copies it never waited for", t.copies.size());
  t.state = State::Exited;
  L.live--;
  if (L.arrived > 0 && L.arrived == L.live) release_barrier(L, nullptr);
  Thread *w = &L.threads[t.warp * 32];
  const unsigned n = L.nthreads - t.warp * 32 < 32 ? L.nthreads - t.warp * 32 : 32;
  for (unsigned i = 0; i < n; i++)
    if (w[i].state == State::Warp && (w[i].mask >> t.lane & 1u))
      fail("returned while lane %u waits at %s with mask 0x%08x, which names this lane", i,
           op_name(w[i].op), w[i].mask);
}

inline void thread_main(void *arg) {
  Launch &L = *g_launch;
  Thread &t = *static_cast<Thread *>(arg);
  fiber::Asan::finish(nullptr, &L.sched_lo, &L.sched_size);
  L.body(L.body_arg);
  thread_exit(L, t);
  suspend(L, t, true);
  abort();
}

// What every waiting thread waits for, for the deadlock message.
inline std::string describe_deadlock(const Launch &L) {
  unsigned at_barrier = 0, at_warp = 0, exited = 0;
  const Thread *first_warp = nullptr;
  for (const Thread &u : L.threads) {
    if (u.state == State::Barrier) at_barrier++;
    if (u.state == State::Exited) exited++;
    if (u.state == State::Warp && at_warp++ == 0) first_warp = &u;
  }
  std::string s = block_name(L) + ": deadlock: " +
                  format("%u thread(s) wait at __syncthreads", at_barrier);
  if (at_barrier) s += format(" (%s:%d)", L.barrier_site.file, L.barrier_site.line);
  s += format(", %u at warp operations, %u returned", at_warp, exited);
  if (first_warp) {
    const Thread &u = *first_warp;
    s += "; " + thread_name(u) + format(" waits at %s with mask 0x%08x", op_name(u.op), u.mask);
    for (unsigned m = u.mask; m; m &= m - 1) {
      const Thread &v = L.threads[u.warp * 32 + unsigned(__builtin_ctz(m))];
      if (v.state == State::Barrier) {
        s += format(" for lane %u, which waits at __syncthreads", v.lane);
        break;
      }
      if (v.state == State::Warp && v.mask != u.mask) {
        s += format(" for lane %u, which waits at %s with mask 0x%08x", v.lane, op_name(v.op), v.mask);
        break;
      }
    }
  }
  return s;
}

// Runs one block to completion; false on an error.
inline bool run_block(Launch &L, uint3 b) {
  L.block_idx = b;
  if (L.dyn_size) memset(L.dyn.get(), 0xff, L.dyn_size);  // unwritten reads give NaN
  char *smem = __start_emu_smem, *smem_end = __stop_emu_smem;  // and the static ones
  if (smem != smem_end) memset(smem, 0xff, size_t(smem_end - smem));
  L.live = L.nthreads;
  L.arrived = 0;
  L.head = L.count = 0;
  L.last_warp = -1;
  for (Thread &t : L.threads) {
    t.state = State::Ready;
    t.copies.clear(), t.groups = 0;
    fiber::init(t.ctx, L.stacks.lo(t.index), L.stacks.size(), thread_main, &t);
    push_ready(L, t);
  }
  while (L.count && !L.failed) resume(L, pop_ready(L));
  if (!L.failed && L.live) {
    L.error = describe_deadlock(L);
    L.failed = true;
  }
  return !L.failed;
}

inline size_t stack_size() {
  if (g_stack_size) return g_stack_size;
  if (const char *env = getenv("EMU_STACK_KIB")) return size_t(atol(env)) * 1024;
#ifdef EMU_ASAN
  return 256 * 1024;  // ASan's redzones make frames several times larger
#else
  return 64 * 1024;
#endif
}

// The limits of a real launch (sm_80 and later), or "" if within them.
inline std::string check_limits(dim3 g, dim3 b, size_t dyn) {
  const unsigned long long n = 1ull * b.x * b.y * b.z;
  if (!g.x || !g.y || !g.z) return format("grid (%u,%u,%u) has a zero dimension", g.x, g.y, g.z);
  if (!b.x || !b.y || !b.z) return format("block (%u,%u,%u) has a zero dimension", b.x, b.y, b.z);
  if (g.x > 2147483647u || g.y > 65535 || g.z > 65535)
    return format("grid (%u,%u,%u) exceeds (2^31-1, 65535, 65535)", g.x, g.y, g.z);
  if (b.x > 1024 || b.y > 1024 || b.z > 64 || n > 1024)
    return format("block (%u,%u,%u) has %llu threads; at most 1024 (z at most 64)", b.x, b.y, b.z, n);
  if (dyn > 227 * 1024)
    return format("%zu bytes of dynamic shared memory; at most 227 KiB (232448)", dyn);
  return "";
}

// Sets up the threads' fibers and stacks.
inline bool setup(Launch &L, dim3 block, size_t dyn) {
  L.block = block;
  L.nthreads = block.x * block.y * block.z;
  L.dyn_size = dyn;
  if (dyn) L.dyn.reset(new unsigned char[dyn]);
  L.threads.resize(L.nthreads);
  L.ready.resize(L.nthreads);
  const size_t size = stack_size();
  if (L.stacks.count() < L.nthreads || L.stacks.size() < size || L.stacks.size() > 4 * size)
    if (!L.stacks.allocate(L.nthreads, size)) return false;
  for (unsigned i = 0; i < L.nthreads; i++) {
    Thread &t = L.threads[i];
    t.index = i;
    t.lane = i % 32;
    t.warp = i / 32;
    t.tid = uint3{i % block.x, i / block.x % block.y, i / block.x / block.y};
    L.stacks.unpoison(i);
  }
  return true;
}

// Runs body(arg) as every thread of every block, blocks in x-fastest order.
inline int run(dim3 grid, dim3 block, size_t dyn, void (*body)(void *), void *arg) {
  std::string bad = check_limits(grid, block, dyn);
  if (g_launch) bad = "emu::launch inside a kernel, or from two OS threads at once";
  if (!bad.empty()) {
    g_last_error = "emu::launch: " + bad;
    return -1;
  }
  Launch L(g_stacks);
  L.grid = grid;
  L.body = body;
  L.body_arg = arg;
  if (!setup(L, block, dyn)) {
    g_last_error = "emu::launch: cannot allocate fiber stacks";
    return -1;
  }
  g_launch = &L;
  // blocks in grid order (fifo, greedy), reversed, or shuffled (random)
  const unsigned long long nblocks = 1ull * grid.x * grid.y * grid.z;
  std::vector<unsigned long long> order(nblocks);
  for (unsigned long long i = 0; i < nblocks; i++) order[i] = i;
  if (policy().schedule == Schedule::Reverse)
    for (unsigned long long i = 0; i < nblocks / 2; i++) std::swap(order[i], order[nblocks - 1 - i]);
  if (policy().schedule == Schedule::Random)
    for (unsigned long long i = nblocks; i > 1; i--) std::swap(order[i - 1], order[next_random() % i]);
  for (unsigned long long i = 0; i < nblocks && !L.failed; i++) {
    const unsigned long long k = order[i];
    run_block(L, uint3{unsigned(k % grid.x), unsigned(k / grid.x % grid.y),
                       unsigned(k / grid.x / grid.y)});
  }
  g_launch = nullptr;
  g_last_error = L.error;
  return L.failed ? -1 : 0;
}

}  // namespace detail
}  // namespace emu

#pragma GCC visibility pop
