/* nccl_lib.c: NCCL loaded at run time (nccl_lib.h). */
#include "nccl_lib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#define NCCL_LIB_OLDEST 21800 /* 2.18: ncclCommInitRank, ncclAllReduce in bf16 as today */

int nccl_lib_load(nccl_lib *lib, lt_error *err) {
  memset(lib, 0, sizeof *lib);
  static const char *const names[] = {"libnccl.so.2", "libnccl.so"};
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib->lib; i++)
    lib->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!lib->lib)
    return lt_fail(err, "several CUDA ranks sum their gradients with NCCL, and libnccl.so.2 does "
                        "not load (%s); install NCCL (Debian: libnccl2 from NVIDIA's CUDA "
                        "repository) or put it on LD_LIBRARY_PATH", dlerror());
  struct { const char *name; void **to; } syms[] = {
      {"ncclGetVersion", (void **)&lib->GetVersion}, {"ncclGetUniqueId", (void **)&lib->GetUniqueId},
      {"ncclCommInitRank", (void **)&lib->CommInitRank},
      {"ncclCommDestroy", (void **)&lib->CommDestroy}, {"ncclCommAbort", (void **)&lib->CommAbort},
      {"ncclAllReduce", (void **)&lib->AllReduce}, {"ncclBroadcast", (void **)&lib->Broadcast},
      {"ncclGroupStart", (void **)&lib->GroupStart}, {"ncclGroupEnd", (void **)&lib->GroupEnd},
      {"ncclGetErrorString", (void **)&lib->GetErrorString},
  };
  for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
    if (!(*syms[i].to = dlsym(lib->lib, syms[i].name))) {
      nccl_lib_close(lib);
      return lt_fail(err, "libnccl.so.2 has no %s", syms[i].name);
    }
  if (lib->GetVersion(&lib->version) != NCCL_LIB_SUCCESS || lib->version < NCCL_LIB_OLDEST) {
    int v = lib->version;
    nccl_lib_close(lib);
    return lt_fail(err, "NCCL %d.%d is too old: 2.18 or later", v / 10000, v / 100 % 100);
  }
  snprintf(lib->name, sizeof lib->name, "NCCL %d.%d.%d", lib->version / 10000,
           lib->version / 100 % 100, lib->version % 100);
  return 0;
}

/* The library stays loaded: ncclGetUniqueId starts a bootstrap thread that
 * outlives every call, and unmapping its code under it crashes the process. */
void nccl_lib_close(nccl_lib *lib) { memset(lib, 0, sizeof *lib); }

int nccl_lib_fail(const nccl_lib *lib, int rc, const char *what, lt_error *err) {
  const char *s = lib->GetErrorString ? lib->GetErrorString(rc) : NULL;
  return lt_fail(err, "%s: NCCL error %d (%s)", what, rc, s ? s : "unknown");
}
