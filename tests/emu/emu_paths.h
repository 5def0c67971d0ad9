// emu_paths.h: generated programs in the CUDA emulator, as a plan_exec
// backend. The program's single translation unit is compiled for the host
// with the emulator's CUDA definitions and dlopen'ed; a kernel step runs its
// `<kernel>_emu` trampoline in the emulator, a GEMM step runs on the CPU as
// cuBLASLt would with fp32 compute (the epilogue, then one rounding to the
// output's storage type).
#pragma once

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "emu_bf16.h"

extern "C" {
#include "emu_gemm.h"
#include "gen.h"
#include "path_exec.h"
}

namespace emu_paths {

typedef int (*launch_fn)(void (*)(void **), void **, unsigned, unsigned, unsigned, unsigned,
                         unsigned, unsigned, unsigned);

struct Module {
  void *so = nullptr;
  launch_fn launch = nullptr;
  const char *(*error)(void) = nullptr;
  Module() = default;
  Module(const Module &) = delete;
  Module &operator=(const Module &) = delete;
  ~Module() {
    if (so) dlclose(so);
  }
};

// Compiles prog for the host into dir/tag.so and loads it; false with the
// reason in *why.
inline bool compile_module(const gen_program *prog, const std::string &dir, const char *tag,
                           const char *emu_header, Module *mod, std::string *why) {
  sbuf src = {};
  lt_error err = {};
  if (gen_emit_program(prog, &src, &err)) return *why = err.msg, false;
  std::string cu = dir + "/" + tag + ".cu", so = dir + "/" + tag + ".so";
  FILE *f = fopen(cu.c_str(), "w");
  if (!f) return sb_free(&src), *why = "cannot write " + cu, false;
  fputs(sb_str(&src), f);
  fclose(f);
  sb_free(&src);
  const char *cxx = getenv("CXX") ? getenv("CXX") : "c++";
  std::string cmd = std::string(cxx) + " -std=c++17 -O1 -shared -fPIC -w -DLISA_EMU -x c++ -include " +
                    emu_header + " " + cu + " -o " + so;
  if (system(cmd.c_str()) != 0) return *why = "host compile failed: " + cmd, false;
  mod->so = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!mod->so) return *why = std::string("dlopen: ") + dlerror(), false;
  mod->launch = (launch_fn)dlsym(mod->so, "lisa_emu_launch");
  mod->error = (const char *(*)(void))dlsym(mod->so, "lisa_emu_error");
  if (!mod->launch || !mod->error) return *why = "no emulator entry in " + so, false;
  return true;
}

// rows x cols at a row stride of ld elements, as floats (path_exec.h).
inline std::vector<float> read_at(const void *base, int dt, int64_t ld, int64_t rows, int64_t cols) {
  std::vector<float> out((size_t)(rows * cols));
  path_read_floats(base, dt, ld, rows, cols, out.data());
  return out;
}

inline void write_at(void *base, int dt, int64_t ld, int64_t rows, int64_t cols, const float *src) {
  path_write_floats(base, dt, ld, rows, cols, src);
}

// GEMMs as the product's emulator device runs them (runtime/emu/emu_gemm.c).
inline int gemm(void *ctx, const gen_path *p, int step, const path_exec_gemm *pg, lt_error *err) {
  (void)ctx, (void)step;
  return emu_gemm_run(p, pg, err);
}

inline int launch(void *ctx, const gen_path *p, int step, void **args, lt_error *err) {
  const Module &mod = *(const Module *)ctx;
  const gen_step &st = p->steps[step];
  char sym[128];
  snprintf(sym, sizeof sym, "%s_emu", st.kernel);
  void (*entry)(void **) = (void (*)(void **))dlsym(mod.so, sym);
  if (!entry) return lt_fail(err, "no entry %s", sym);
  if (mod.launch(entry, args, st.grid[0], st.grid[1], st.grid[2], st.block[0], st.block[1],
                 st.block[2], st.smem))
    return lt_fail(err, "%s: %s", st.kernel, mod.error());
  return 0;
}

inline path_exec_backend backend(const Module *mod) { return path_exec_backend{(void *)mod, launch, gemm}; }

}  // namespace emu_paths
