// emu_fiber.h: user-space threads (fibers) for the CUDA emulator: stacks and
// the context switch. One emulated CUDA thread is one fiber; all fibers of a
// launch run on the OS thread that called emu::launch.
//
// The switch is a few hand-written instructions on x86-64 and aarch64 (save
// the callee-saved registers on the old stack, swap stack pointers, pop them
// from the new one): a block of 128 threads crosses a __syncthreads with 256
// switches, and swapcontext's sigprocmask system call per switch would
// dominate. Other targets, or -DEMU_FIBER_UCONTEXT, use <ucontext.h>.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(EMU_FIBER_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define EMU_FIBER_UCONTEXT 1
#endif
#ifdef EMU_FIBER_UCONTEXT
#include <ucontext.h>
#endif

#pragma GCC visibility push(hidden)

#ifndef EMU_FIBER_UCONTEXT
// emu_fiber_switch(save, sp): pushes the callee-saved registers, stores the
// stack pointer in *save, loads sp and pops the registers saved there.
// emu_fiber_start: where a new fiber's first switch "returns" to; it calls
// fn(arg) from the registers fiber_init put in its frame. The COMDAT group
// lets every translation unit that includes this header define the symbols.
extern "C" void emu_fiber_switch(void **save, void *sp);
extern "C" void emu_fiber_start();
#if defined(__x86_64__)
__asm__(R"(
  .pushsection .text.emu_fiber_switch,"axG",@progbits,emu_fiber_switch,comdat
  .globl emu_fiber_switch
  .hidden emu_fiber_switch
  .type emu_fiber_switch,@function
emu_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_fiber_switch, .-emu_fiber_switch
  .globl emu_fiber_start
  .hidden emu_fiber_start
  .type emu_fiber_start,@function
emu_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size emu_fiber_start, .-emu_fiber_start
  .popsection
)");
#elif defined(__aarch64__)
// Untested on hardware here (no aarch64 machine); -DEMU_FIBER_UCONTEXT is
// the fallback if it misbehaves.
__asm__(R"(
  .pushsection .text.emu_fiber_switch,"axG",%progbits,emu_fiber_switch,comdat
  .globl emu_fiber_switch
  .hidden emu_fiber_switch
  .type emu_fiber_switch,%function
emu_fiber_switch:
  sub sp, sp, #160
  stp x19, x20, [sp, #0]
  stp x21, x22, [sp, #16]
  stp x23, x24, [sp, #32]
  stp x25, x26, [sp, #48]
  stp x27, x28, [sp, #64]
  stp x29, x30, [sp, #80]
  stp d8, d9, [sp, #96]
  stp d10, d11, [sp, #112]
  stp d12, d13, [sp, #128]
  stp d14, d15, [sp, #144]
  mov x2, sp
  str x2, [x0]
  mov sp, x1
  ldp x19, x20, [sp, #0]
  ldp x21, x22, [sp, #16]
  ldp x23, x24, [sp, #32]
  ldp x25, x26, [sp, #48]
  ldp x27, x28, [sp, #64]
  ldp x29, x30, [sp, #80]
  ldp d8, d9, [sp, #96]
  ldp d10, d11, [sp, #112]
  ldp d12, d13, [sp, #128]
  ldp d14, d15, [sp, #144]
  add sp, sp, #160
  ret
  .size emu_fiber_switch, .-emu_fiber_switch
  .globl emu_fiber_start
  .hidden emu_fiber_start
  .type emu_fiber_start,%function
emu_fiber_start:
  mov x0, x20
  blr x19
  brk #0
  .size emu_fiber_start, .-emu_fiber_start
  .popsection
)");
#endif
#endif  // !EMU_FIBER_UCONTEXT

namespace emu {
namespace fiber {

// A suspended fiber (or the scheduler, while a fiber runs).
struct Context {
#ifdef EMU_FIBER_UCONTEXT
  ucontext_t uc;
#else
  void *sp = nullptr;
#endif
};

#ifdef EMU_FIBER_UCONTEXT
inline void ucontext_entry(unsigned fn_hi, unsigned fn_lo, unsigned arg_hi, unsigned arg_lo) {
  auto join = [](unsigned hi, unsigned lo) { return (uintptr_t(hi) << 16 << 16) | lo; };
  auto fn = reinterpret_cast<void (*)(void *)>(join(fn_hi, fn_lo));
  fn(reinterpret_cast<void *>(join(arg_hi, arg_lo)));
  abort();  // fibers never return: the scheduler abandons them
}
#endif

// Prepares c so that the first switch to it runs fn(arg) on [lo, lo + size).
// fn must never return.
inline void init(Context &c, void *lo, size_t size, void (*fn)(void *), void *arg) {
#ifdef EMU_FIBER_UCONTEXT
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = lo;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  uintptr_t f = reinterpret_cast<uintptr_t>(fn), a = reinterpret_cast<uintptr_t>(arg);
  makecontext(&c.uc, reinterpret_cast<void (*)()>(ucontext_entry), 4, unsigned(f >> 16 >> 16),
              unsigned(f), unsigned(a >> 16 >> 16), unsigned(a));
#else
  uintptr_t top = (reinterpret_cast<uintptr_t>(lo) + size) & ~uintptr_t(15);
  void **frame;
#if defined(__x86_64__)
  // r15 r14 r13=fn r12=arg rbx rbp=0 ret=emu_fiber_start, 2 words of
  // padding: emu_fiber_start then calls with a 16-byte aligned stack.
  frame = reinterpret_cast<void **>(top - 72);
  for (int i = 0; i < 9; i++) frame[i] = nullptr;
  frame[2] = reinterpret_cast<void *>(fn);
  frame[3] = arg;
  frame[6] = reinterpret_cast<void *>(emu_fiber_start);
#else
  // x19=fn x20=arg ... x29=0 x30=emu_fiber_start, d8-d15.
  frame = reinterpret_cast<void **>(top - 160);
  for (int i = 0; i < 20; i++) frame[i] = nullptr;
  frame[0] = reinterpret_cast<void *>(fn);
  frame[1] = arg;
  frame[11] = reinterpret_cast<void *>(emu_fiber_start);
#endif
  c.sp = frame;
#endif
}

// Saves the running context in from and resumes to.
inline void switch_to(Context &from, Context &to) {
#ifdef EMU_FIBER_UCONTEXT
  swapcontext(&from.uc, &to.uc);
#else
  emu_fiber_switch(&from.sp, to.sp);
#endif
}

// n stacks of size bytes each (a multiple of the page size), each with an
// inaccessible page below it, so an overflow faults instead of silently
// writing into the neighbouring thread's stack.
class Stacks {
 public:
  Stacks() = default;
  Stacks(const Stacks &) = delete;
  Stacks &operator=(const Stacks &) = delete;
  ~Stacks() { release(); }

  bool allocate(size_t n, size_t size) {
    release();
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    size_ = (size + page - 1) / page * page;
    stride_ = size_ + page;
    void *p = mmap(nullptr, n * stride_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    base_ = static_cast<unsigned char *>(p);
    n_ = n;
    for (size_t i = 0; i < n; i++) mprotect(base_ + i * stride_, page, PROT_NONE);
    return true;
  }

  // Lowest usable address of stack i.
  void *lo(size_t i) const { return base_ + i * stride_ + (stride_ - size_); }
  size_t size() const { return size_; }
  size_t count() const { return n_; }

  void release() {
    if (base_) munmap(base_, n_ * stride_);
    base_ = nullptr;
    n_ = 0;
  }

  // Forgets what ASan knew about frames on stack i (an abandoned fiber
  // leaves poisoned redzones behind).
  void unpoison(size_t i) const {
#ifdef EMU_ASAN
    __asan_unpoison_memory_region(lo(i), size_);
#else
    (void)i;
#endif
  }

 private:
  unsigned char *base_ = nullptr;
  size_t n_ = 0, size_ = 0, stride_ = 0;
};

// ASan must be told when the stack changes, or it sees a frame far from the
// last one and reports a stack overflow. start() before a switch names the
// stack being entered; finish() right after, on the new stack, returns the
// bounds of the stack that was left. fake is ASan's per-fiber state; null in
// start() means the fiber being left will never run again.
struct Asan {
  static void start(void **fake, const void *lo, size_t size) {
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(fake, lo, size);
#else
    (void)fake, (void)lo, (void)size;
#endif
  }
  static void finish(void *fake, const void **old_lo, size_t *old_size) {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, old_lo, old_size);
#else
    (void)fake, (void)old_lo, (void)old_size;
#endif
  }
};

}  // namespace fiber
}  // namespace emu

#pragma GCC visibility pop
