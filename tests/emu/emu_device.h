// emu_device.h: the CUDA emulator as a dt_device (runtime/device/dev_train.h)
// for the device trainer's and decoder's tests: host memory that starts as
// NaN (0xff bytes), copies, timers from the host clock (the emulator runs each
// launch before returning), and copies back ordered as a stream orders them.
// LISA_TEST_DEVICE=cuda swaps in the CUDA device instead (device_from_env).
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vector>

#include "emu_paths.h"

extern "C" {
#include "dev_train.h"
}

namespace emu_device {

// Memory starts as NaN: a kernel that reads what nothing wrote shows it.
inline int alloc(void *, size_t bytes, void **out, lt_error *err) {
  size_t n = (bytes + 255) / 256 * 256;
  *out = aligned_alloc(256, n);
  if (!*out) return lt_fail(err, "out of memory for %zu bytes", bytes);
  memset(*out, 0xff, n);
  return 0;
}
inline void release(void *, void *mem) { free(mem); }
inline int copy(void *, void *dst, const void *src, size_t bytes, lt_error *) {
  memcpy(dst, src, bytes);
  return 0;
}
inline int zero(void *, void *dst, size_t bytes, lt_error *) {
  memset(dst, 0, bytes);
  return 0;
}

// Timers: the host clock at a mark is when the stream got there.
inline std::vector<double> marks;
inline int timers_create(void *, int n, lt_error *) {
  marks.assign((size_t)n, 0.0);
  return 0;
}
inline int mark(void *, int i, lt_error *) {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  marks[(size_t)i] = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  return 0;
}
inline int elapsed(void *, int from, int to, float *ms, lt_error *) {
  *ms = (float)(marks[(size_t)to] - marks[(size_t)from]);
  return 0;
}
inline void timers_destroy(void *) { marks.clear(); }

// Copies back as a stream orders them: the source is read when the copy is
// enqueued, the destination written only when a fence after it is waited
// for, so a trainer that read its stats before waiting would read stale ones.
struct CopyBack {
  void *dst;
  std::vector<char> bytes;
};
inline std::vector<CopyBack> copies;
inline size_t fence_at[2];
inline int host_alloc(void *, size_t bytes, void **out, lt_error *err) {
  *out = malloc(bytes);
  return *out ? 0 : lt_fail(err, "out of memory");
}
inline void host_free(void *, void *p) { free(p); }
inline int download_async(void *, void *dst, const void *src, size_t bytes, lt_error *) {
  copies.push_back({dst, std::vector<char>((const char *)src, (const char *)src + bytes)});
  memset(dst, 0xff, bytes); /* not there yet: NaN if read */
  return 0;
}
inline int fence(void *, int i, lt_error *) {
  fence_at[i] = copies.size();
  return 0;
}
inline int fence_wait(void *, int i, lt_error *) {
  size_t n = fence_at[i];
  for (size_t k = 0; k < n; k++) memcpy(copies[k].dst, copies[k].bytes.data(), copies[k].bytes.size());
  copies.erase(copies.begin(), copies.begin() + (long)n);
  for (size_t &at : fence_at) at = at > n ? at - n : 0;
  return 0;
}

inline dt_device device(const emu_paths::Module *mod) {
  return dt_device{nullptr, emu_paths::backend(mod), alloc, release, copy, copy, zero,
                   {nullptr, timers_create, mark, elapsed, timers_destroy},
                   host_alloc, host_free, download_async, fence, fence_wait};
}

// LISA_TEST_DEVICE=cuda: *on_device set (and the tolerance factor *slack,
// for cuBLASLt's other summation orders); false if this build cannot.
inline bool from_env(bool *on_device, double *slack) {
  const char *want = getenv("LISA_TEST_DEVICE");
  if (!want || strcmp(want, "cuda")) return true;
#ifdef LISA_HAVE_GPU
  *on_device = true, *slack = 10;
  printf("on the CUDA device\n");
  return true;
#else
  (void)on_device, (void)slack;
  fprintf(stderr, "LISA_TEST_DEVICE=cuda: this build has no CUDA support\n");
  return false;
#endif
}

}  // namespace emu_device
