// test_dev_decode: generation on the decoding program (runtime/device/dev_decode.h)
// against the CPU decoder (runtime/train/decode.h), for every family of
// tests/fixtures/families: a 12-token prompt (three calls of the program's
// 5 rows: 5, 5, 2, so chunks start at other positions than 0), then 10
// tokens one at a time (past Mistral's and Gemma 2's sliding windows), the
// logits of every call compared. fp32 for every family; bf16 storage for
// three (the tolerance is bf16's rounding of every activation). Feeding
// past the cache and ids beyond the vocabulary fail with a message.
//
// The emulator compiles the program for the host; LISA_TEST_DEVICE=cuda
// (scripts/gpu-check.sh) runs it on the CUDA device instead.
#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "emu_check.h"
#include "emu_device.h"
#include "emu_paths.h"

extern "C" {
#include "autodiff.h"
#include "decode.h"
#include "dev_decode.h"
#include "gen.h"
#ifdef LISA_HAVE_GPU
#include "gpu_device.h"
#endif
#include "model_source.h"
#include "weights.h"
}

namespace {

std::string tmp_dir;
bool on_device = false;  // LISA_TEST_DEVICE=cuda
double slack = 1;        // tolerance factor: 1 on the emulator

constexpr int kRows = 5, kCtx = 24, kPrompt = 12, kSteps = 10;

struct Model {
  ir_model m = {};
  ms_state s = {};
  bool ok = false;
  ~Model() {
    if (ok) ms_free(&s), ir_model_free(&m);
  }
};

bool open_model(const char *family, Model *md) {
  std::string dir = src_path("tests/fixtures/families/") + std::string(family);
  char folder[1024];
  lt_error err = {};
  if (model_open(dir.c_str(), &md->m, folder, sizeof folder, &err) ||
      ad_build_backward(&md->m, &err))
    return fprintf(stderr, "%s: %s\n", family, err.msg), false;
  if (wt_open_frozen(&md->s, &md->m, 1, kCtx, nullptr, folder, 0, 0, &err)) {
    ir_model_free(&md->m);
    return fprintf(stderr, "%s: %s\n", family, err.msg), false;
  }
  return md->ok = true;
}

// max |a - b| over max |a|: the logits' scale sets the bound.
double rel_diff(const float *a, const float *b, int n) {
  double diff = 0, scale = 1e-6;
  for (int i = 0; i < n; i++) {
    if (!std::isfinite(b[i])) return INFINITY;  // fmax would skip a NaN
    diff = std::fmax(diff, std::fabs((double)a[i] - b[i]));
    scale = std::fmax(scale, std::fabs((double)a[i]));
  }
  return diff / scale;
}

int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

struct Program {
  gen_program prog = {};
  bool ok = false;
  emu_paths::Module mod;
#ifdef LISA_HAVE_GPU
  gpu_device *gpu = nullptr;
#endif
  ~Program() {
#ifdef LISA_HAVE_GPU
    if (gpu) gpu_device_close(gpu);
#endif
    if (ok) gen_free(&prog);
  }
};

// The decoding program for md in dtype, loaded where it runs; its device.
bool load(const Model &md, int dtype, const char *tag, Program *p, dt_device *dev) {
  gen_config cfg = {};
  cfg.B = 1, cfg.T = kRows, cfg.dtype = dtype, cfg.grad_dtype = GEN_F32;
  cfg.decode = 1, cfg.ctx = kCtx;
  lt_error err = {};
#ifdef LISA_HAVE_GPU
  if (on_device) { /* as lisa sample does (dev_sample.c) */
    char name[256];
    unsigned unfused;
    if (gpu_device_open(&p->gpu, 0, name, sizeof name, &err) ||
        gpu_device_build(p->gpu, &md.m, &cfg, &p->prog, &unfused, &err))
      return fprintf(stderr, "%s\n", err.msg), false;
    p->ok = true;
    *dev = gpu_device_iface(p->gpu);
    return true;
  }
#endif
  if (gen_build(&p->prog, &md.m, &cfg, &err)) return fprintf(stderr, "%s\n", err.msg), false;
  p->ok = true;
  std::string why;
  if (!emu_paths::compile_module(&p->prog, tmp_dir, tag, src_path("templates/emu/cuda_emu.h"),
                                 &p->mod, &why))
    return fprintf(stderr, "%s\n", why.c_str()), false;
  *dev = emu_device::device(&p->mod);
  return true;
}

// The same prompt and continuation through both decoders; every call's
// logits within tol of the CPU's.
void check_family(const char *family, int dtype, double tol) {
  Model md;
  if (!open_model(family, &md)) { CHECK_MSG(0, "%s: no model", family); return; }
  Program p;
  dt_device dev;
  std::string tag = std::string("decode_") + family + (dtype == GEN_BF16 ? "_bf16" : "_f32");
  if (!load(md, dtype, tag.c_str(), &p, &dev)) { CHECK_MSG(0, "%s: no program", family); return; }
  decoder cpu;
  dev_decoder *dd = nullptr;
  lt_error err = {};
  if (decoder_create(&cpu, &md.s, &err)) { CHECK_MSG(0, "%s", err.msg); return; }
  /* the weights through the decoder's store, as a checkpoint loads */
  ps_host_arrays host = {&md.s, nullptr, nullptr};
  param_store from = ps_host(&host), to;
  if (dd_create(&dd, &md.s, &p.prog, &dev, &err) ||
      (to = dd_store(dd), ps_copy(&md.m, &from, &to, &err))) {
    CHECK_MSG(0, "%s: %s", family, err.msg);
    dd_free(dd), decoder_free(&cpu);
    return;
  }
  const int V = md.m.vocab_size;
  std::vector<int32_t> prompt(kPrompt);
  for (int i = 0; i < kPrompt; i++) prompt[i] = (int32_t)((i * 7919 + 13) % V);
  const float *want = nullptr, *got = nullptr;
  double worst = 0;
  int tokens_agree = 0;
  bool fed = decoder_feed(&cpu, prompt.data(), kPrompt, &want, &err) == 0 &&
             dd_feed(dd, prompt.data(), kPrompt, &got, &err) == 0;
  for (int step = 0; fed; step++) {
    worst = std::fmax(worst, rel_diff(want, got, V));
    tokens_agree += argmax(want, V) == argmax(got, V);
    if (step == kSteps) break;
    int32_t next = argmax(want, V);  // the CPU's choice feeds both
    fed = decoder_feed(&cpu, &next, 1, &want, &err) == 0 && dd_feed(dd, &next, 1, &got, &err) == 0;
  }
  CHECK_MSG(fed, "%s: %s", family, err.msg);
  CHECK_MSG(worst <= tol * slack, "%s %s: logits differ from the CPU's by %.3g (of the largest), "
            "bound %.3g", family, gen_dtype_name(dtype), worst, tol * slack);
  if (dtype == GEN_F32)  // fp32 agrees on every greedy choice
    CHECK_MSG(tokens_agree == kSteps + 1, "%s: %d of %d greedy tokens agree", family,
              tokens_agree, kSteps + 1);
  printf("%-9s %-4s worst logit difference %.2e, %d/%d greedy tokens agree\n", family,
         gen_dtype_name(dtype), worst, tokens_agree, kSteps + 1);

  // the cache is full after kPrompt + kSteps positions plus the bound's two
  int32_t two[3] = {1, 2, 3};
  CHECK(dd_feed(dd, two, 3, &got, &err) != 0 && strstr(err.msg, "KV cache holds"));
  int32_t bad = V;
  CHECK(dd_feed(dd, &bad, 1, &got, &err) != 0 && strstr(err.msg, "beyond the vocabulary"));
  dd_free(dd);
  decoder_free(&cpu);
}

void test_fp32() {
  static const char *const families[] = {"gpt2", "llama", "mistral", "qwen2", "qwen3",
                                         "gemma", "gemma2", "phi", "gpt_neox", "olmo2",
                                         "llama3", "qwen2-yarn", "gemma3_text", "phi3",
                                         "phi3-longrope", "granite", "starcoder2"};
  for (const char *f : families) check_family(f, GEN_F32, 2e-5);
}

void test_bf16() {
  static const char *const families[] = {"gpt2", "llama", "gemma2"};
  for (const char *f : families) check_family(f, GEN_BF16, 6e-2);
}

// A decoding program refuses what it cannot be.
void test_config_errors() {
  Model md;
  if (!open_model("llama", &md)) { CHECK_MSG(0, "llama: no model"); return; }
  gen_config cfg = {};
  cfg.B = 2, cfg.T = kRows, cfg.dtype = GEN_F32, cfg.grad_dtype = GEN_F32;
  cfg.decode = 1, cfg.ctx = kCtx;
  gen_program p;
  lt_error err = {};
  CHECK(gen_build(&p, &md.m, &cfg, &err) != 0 && strstr(err.msg, "B = 1"));
  cfg.B = 1, cfg.ctx = kRows - 1;
  CHECK(gen_build(&p, &md.m, &cfg, &err) != 0 && strstr(err.msg, "shorter than"));
}

}  // namespace

int main() {
  char dir[] = "/tmp/lisa-dev-decode-XXXXXX";
  if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
  tmp_dir = dir;
  if (!emu_device::from_env(&on_device, &slack)) return 1;
  RUN(test_config_errors);
  RUN(test_fp32);
  RUN(test_bf16);
  std::string rm = "rm -rf " + tmp_dir;
  if (system(rm.c_str()) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir.c_str());
  return check_exit();
}
