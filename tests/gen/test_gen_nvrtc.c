/* test_gen_nvrtc: every path generated for GPT-2 124M and LLaMA-2-7B, in
 * bf16 (the GPU's storage), compiles with NVRTC for sm_80 and sm_90 with no
 * register spills in any kernel, and a second build of each is a cache
 * hit; GPT-2 124M's gradient-writing paths in bf16-true too (sm_90); the
 * decoding program (lisa sample's) of every model. No GPU is needed: NVRTC
 * and ptxas run on the CPU. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autodiff.h"
#include "check.h"
#include "gen.h"
#include "model_yaml.h"
#include "nvrtc_driver.h"

static char cache_dir[] = "/tmp/lisa_gen_nvrtc_XXXXXX";

/* Kernels in ptxas's report, and the first one that spills (or ""). */
static int scan_report(const char *log, char *spilling, size_t cap) {
  static nv_kernel_stats k[64];
  int n = nv_parse_stats(log, k, 64);
  spilling[0] = 0;
  for (int i = 0; i < n && i < 64 && !spilling[0]; i++) {
    CHECK_MSG(k[i].registers > 0, "%s: no register count parsed", k[i].name);
    if (k[i].spill_stores || k[i].spill_loads) snprintf(spilling, cap, "%.100s", k[i].name);
  }
  return n;
}

/* grad_dtype GEN_BF16 (bf16-true): only the paths that write parameter
 * gradients (the others are the bf16-mixed ones, checked already), sm_90. */
static void check_model(const char *yaml, int B, int T, int grad_dtype, int decode_ctx) {
  ir_model m;
  lt_error err = {{0}};
  if (yml_load_model(src_path(yaml), &m, &err) || ad_build_backward(&m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  /* bf16-true with micro-batches: the bias gradients are bias_grad kernels
   * (storing bf16) rather than GEMM epilogues, so NVRTC sees them too */
  gen_config cfg = {.B = B, .T = T, .dtype = GEN_BF16, .grad_dtype = grad_dtype,
                    .grad_accum = grad_dtype == GEN_BF16 ? 2 : 1,
                    .decode = decode_ctx > 0, .ctx = decode_ctx};
  const int true_bf16 = grad_dtype == GEN_BF16;
  gen_program prog;
  if (gen_build(&prog, &m, &cfg, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ir_model_free(&m);
    return;
  }
  const char *arch[] = {"sm_80", "sm_90"};
  for (int a = true_bf16; a < 2; a++) {
    nv_options o = {.cache_dir = cache_dir};
    snprintf(o.arch, sizeof o.arch, "%s", arch[a]);
    for (int i = 0; i < prog.n_paths; i++) {
      const gen_path *p = &prog.paths[i];
      int grads = 0;
      for (int b = 0; b < p->n_bufs; b++) grads += p->bufs[b].role == GEN_BUF_PARAM_GRAD;
      if (true_bf16 && !grads) continue;
      for (int b = 0; b < p->n_bufs; b++)
        CHECK(p->bufs[b].role != GEN_BUF_PARAM_GRAD || p->bufs[b].dtype == grad_dtype);
      nv_result r, again;
      if (nv_compile(p->name, sb_str(&p->source), &o, &r, &err)) {
        CHECK_MSG(0, "%s %s: %s", yaml, arch[a], err.msg);
        continue;
      }
      char spill[128];
      int kernels = scan_report(r.log, spill, sizeof spill);
      int launched = 0;
      for (int s = 0; s < p->n_steps; s++) launched += p->steps[s].kind == GEN_STEP_KERNEL;
      CHECK_MSG(kernels == launched, "%s %s %s: ptxas reports %d kernels, the plan launches %d",
                yaml, arch[a], p->name, kernels, launched);
      CHECK_MSG(!spill[0], "%s %s %s: kernel %s spills registers", yaml, arch[a], p->name, spill);
      printf("%s %s %s %-14s %2d kernels, %7.1f ms\n", yaml, true_bf16 ? "bf16-true" : "bf16",
             arch[a], p->name, kernels, r.compile_ms);
      if (nv_compile(p->name, sb_str(&p->source), &o, &again, &err) == 0) {
        CHECK_MSG(again.cache_hit && again.size == r.size &&
                      !memcmp(again.cubin, r.cubin, r.size),
                  "%s %s: second build is not the cached CUBIN", yaml, p->name);
        nv_result_free(&again);
      }
      nv_result_free(&r);
    }
  }
  gen_free(&prog);
  ir_model_free(&m);
}

static void test_gpt2_124m(void) {
  check_model("models/gpt2-124m.yaml", 4, 64, GEN_F32, 0);
  check_model("models/gpt2-124m.yaml", 1, 16, GEN_F32, 1024);
}
static void test_llama2_7b(void) {
  check_model("models/llama2-7b.yaml", 1, 256, GEN_F32, 0);
  check_model("models/llama2-7b.yaml", 1, 16, GEN_F32, 4096);
}
/* LLaMA 3's scaled RoPE: the inv_freq tables in the kernels' source */
static void test_llama3_8b(void) {
  check_model("models/llama3-8b.yaml", 1, 256, GEN_F32, 0);
  check_model("models/llama3-8b.yaml", 1, 16, GEN_F32, 8192);
}
/* bf16 gradients: norm, embedding and bias-gradient kernels store bf16 */
static void test_gpt2_124m_bf16_true(void) {
  check_model("models/gpt2-124m.yaml", 4, 64, GEN_BF16, 0);
}

/* The families at their own (7B-class) sizes: Gemma's head_dim 256, Phi's
 * and GPT-NeoX's partial rotary, Qwen3's per-head norms, ... */
static void test_families(void) {
  static const char *const types[] = {"qwen2", "qwen3", "gemma", "phi", "olmo2", "gpt_neox",
                                      "gemma2", "gemma3_text", "mistral", "phi3", "granite",
                                      "starcoder2"};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
    char yaml[64];
    snprintf(yaml, sizeof yaml, "models/%s.yaml", types[i]);
    check_model(yaml, 1, 256, GEN_F32, 0);
    check_model(yaml, 1, 16, GEN_F32, 2048);
  }
}

int main(void) {
  if (!mkdtemp(cache_dir)) return perror("mkdtemp"), 1;
  RUN(test_llama3_8b);
  RUN(test_families);
  RUN(test_gpt2_124m);
  RUN(test_llama2_7b);
  RUN(test_gpt2_124m_bf16_true);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", cache_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", cache_dir);
  return check_exit();
}
