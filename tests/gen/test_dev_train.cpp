// test_dev_train: the device trainer (runtime/device/dev_train.h) on the emulator
// against the CPU trainer. Both train the tiny GPT-2 for 20 steps from the
// same weights on the same batches; every step's loss and gradient norm, the
// LISA active sets, and the final weights must agree: closely in fp32
// (the kernels only sum in other orders), within bf16's rounding in
// bf16-mixed and bf16-true.
//
// The generated program (all paths and the optimizer) is compiled for the
// host with the CUDA emulator; the device's memory is host memory. With
// LISA_TEST_DEVICE=cuda (scripts/gpu-check.sh) the same runs go through the
// CUDA device instead (NVRTC, cuBLASLt), with the bounds below widened for
// cuBLASLt's other summation orders.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "emu_check.h"
#include "emu_device.h"
#include "emu_paths.h"

extern "C" {
#include "checkpoint.h"
#include "data.h"
#include "dev_train.h"
#include "gen.h"
#ifdef LISA_HAVE_GPU
#include "gpu_device.h"
#endif
#include "lora.h"
#include "memory_plan.h"
#include "train.h"
#include "weights.h"
#include "safetensors.h"
}

namespace {

std::string tmp_dir;
bool on_device = false;  // LISA_TEST_DEVICE=cuda
double slack = 1;        // tolerance factor: 1 on the emulator

// ---- runs ----------------------------------------------------------------

struct Run {
  std::vector<float> loss, norm;
  double step_ms = 0;                    // summed
  int64_t last_step = -1;
  std::vector<std::vector<int>> active;  // per step
  std::vector<float> params;             // after the last step
  float eval_loss = NAN;                 // a masked batch's loss, forward only, after the last step
};

// A batch with ignored targets in the trainer's state, for the validation check.
void masked_batch(trainer &t) {
  ms_state *s = &t.state;
  const int V = s->ir->vocab_size;
  for (int n = 0; n < s->N; n++)
    s->ids[n] = (n * 7 + 3) % V, s->targets[n] = n % 4 == 1 ? DATA_IGNORE : (n * 5 + 1) % V;
}

std::string model_path, data_path;

train_config config(int method, int accum = 1) {
  train_config c = {};
  c.grad_accum = accum;
  c.model_path = model_path.c_str();
  c.data_path = data_path.c_str();
  c.method = method;
  c.steps = 20;
  c.batch = 2, c.seq = 8, c.seed = 7;
  c.opt = opt_defaults();
  c.opt.lr = 3e-3f;  // large enough that 20 steps move every weight
  c.opt.grad_clip = 1.0f;
  c.train_embed = c.train_head = 1;
  c.lisa = lisa_sampler_config{};
  c.lisa.mode = LISA_SAMPLE_UNIFORM, c.lisa.gamma = 1, c.lisa.interval = 3;
  c.lora_rank = 3, c.lora_alpha = 6;
  return c;
}

// st.active: the set a pipelined device step trained (the trainer has moved on).
void record(Run *r, const trainer &t, const train_step_stats &st) {
  CHECK_MSG(r->loss.empty() || st.step == r->last_step + 1, "stats of step %lld after %lld",
            (long long)st.step, (long long)r->last_step);
  r->last_step = st.step;
  r->loss.push_back(st.loss);
  r->step_ms += st.step_ms;
  r->norm.push_back((float)st.grad_norm);
  if (st.active) r->active.emplace_back(st.active, st.active + st.n_active);
  else r->active.emplace_back(t.sched.active, t.sched.active + t.sched.n_active);
}

bool cpu_run(int method, Run *r, int accum = 1) {
  train_config c = config(method, accum);
  trainer t;
  lt_error err = {};
  if (trainer_create(&t, &c, &err)) return fprintf(stderr, "%s\n", err.msg), check_failures++, false;
  for (int i = 0; i < c.steps; i++) {
    train_step_stats st;
    if (trainer_step(&t, &st, &err)) {
      fprintf(stderr, "cpu step %d: %s\n", i, err.msg);
      check_failures++;
      break;
    }
    record(r, t, st);
  }
  r->params.assign(t.state.params, t.state.params + t.state.n_param_scalars);
  masked_batch(t);
  r->eval_loss = train_forward(&t.state);
  trainer_free(&t);
  return true;
}

// A generated program for the trainer's model, compiled for the emulator.
struct Program {
  gen_program prog = {};
  emu_paths::Module mod;
  bool ok = false;
  ~Program() {
    if (ok) gen_free(&prog);
  }
};

// The program's settings for t (cfg.trains points into a static table).
bool program_config(const trainer &t, int dtype, int grad_dtype, bool nearest, gen_config *cfg) {
  static unsigned char trains[256];  /* LoRA: only the adapters */
  *cfg = gen_config{};
  if (t.cfg.method == TRAIN_LORA) {
    if (t.ir.n_params > (int)sizeof trains) return fprintf(stderr, "too many params\n"), false;
    lora_trains(&t.ir, trains);
    cfg->trains = trains;
  }
  cfg->B = t.state.B, cfg->T = t.state.T, cfg->dtype = dtype, cfg->grad_dtype = grad_dtype;
  cfg->grad_accum = trainer_grad_accum(&t);
  cfg->opt_nearest = nearest;
  cfg->opt_blocks = 3;  // odd on purpose: the norm's ticket and partial sums
  return true;
}

// The program for the emulator, compiled for the host as `tag`.
bool build_program(const trainer &t, int dtype, int grad_dtype, const char *tag, Program *p,
                   bool nearest = false) {
  gen_config cfg;
  lt_error err = {};
  if (!program_config(t, dtype, grad_dtype, nearest, &cfg)) return false;
  if (gen_build(&p->prog, &t.ir, &cfg, &err)) return fprintf(stderr, "%s\n", err.msg), false;
  p->ok = true;
  std::string why;
  if (!emu_paths::compile_module(&p->prog, tmp_dir, tag, src_path("templates/emu/cuda_emu.h"),
                                 &p->mod, &why))
    return fprintf(stderr, "%s\n", why.c_str()), false;
  return true;
}

// `lisa plan` for the GPU is this arena: every category but the workspace
// byte for byte (the test's optimizer grid is smaller than the plan's).
void check_plan(const trainer &t, const dev_trainer *d, int grad_dtype) {
  memory_plan_settings ps = {};
  ps.method = t.cfg.method, ps.gamma = t.cfg.lisa.gamma, ps.lora_rank = t.cfg.lora_rank;
  ps.batch = t.cfg.batch, ps.seq = t.cfg.seq;
  ps.precision = grad_dtype == GEN_BF16 ? PRECISION_BF16_TRUE : PRECISION_BF16_MIXED;
  memory_breakdown pm;
  lt_error err = {};
  if (memory_plan_compute(&t.ir, &ps, &pm, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    check_failures++;
    return;
  }
  uint64_t arena[MEMORY_NCATEGORIES];
  dt_arena_categories(d, arena);
  for (int c = 0; c < MEMORY_NCATEGORIES; c++) {
    if (c == MEMORY_WORKSPACE) continue;
    CHECK_MSG(pm.bytes[c] == arena[c], "%s: plan %llu, device arena %llu",
              memory_category_name(c), (unsigned long long)pm.bytes[c],
              (unsigned long long)arena[c]);
  }
  /* the params_only trainer holds no values (test_host_memory measures the rest) */
  CHECK(t.state.params == nullptr && t.state.grads == nullptr && t.opt.m == nullptr);
  CHECK(pm.host_bytes > 0);
  uint64_t ws = pm.bytes[MEMORY_WORKSPACE] - (32u << 20);
  CHECK_MSG(ws >= arena[MEMORY_WORKSPACE] && ws - arena[MEMORY_WORKSPACE] < 8192,
            "workspace: plan %llu + 32 MiB, device %llu", (unsigned long long)ws,
            (unsigned long long)arena[MEMORY_WORKSPACE]);
}

// What a device run does besides 20 steps from the start.
struct Segment {
  int accum = 1;
  int64_t steps = 20;               // train up to this step
  const char *resume_dir = nullptr; // start from the state saved there
  const char *save_dir = nullptr;   // save the state there at the end
  bool nearest = false;             // --rounding nearest
  bool profile = false;             // time every launch and GEMM (check_profile)
};

// A profile of a LISA run (E and H train, so every block is ACTIVE or
// FROZEN) counts each path step once per instance that ran it: the
// active sets say how often; the optimizer runs once a step. Its time is
// inside the steps' time.
void check_profile(path_profile *pf, const gen_program &prog, const Run &r) {
  int n_layer = prog.m->n_layer, steps = (int)r.active.size();
  int active = 0;
  for (const auto &a : r.active) active += (int)a.size();
  int n;
  prof_table *table = path_profile_table(pf);
  const prof_row *rows = prof_sorted(table, &n);
  int seen_active = 0, seen_frozen = 0, seen_opt = 0;
  for (int i = 0; i < n; i++) {
    const char *name = rows[i].path;
    int want = !strcmp(name, "block_active")   ? active
               : !strcmp(name, "block_frozen") ? steps * n_layer - active
                                               : steps;
    if (!strcmp(name, "optimizer") && rows[i].index == GEN_OPT_STEP_WIDEN) continue; /* at switches */
    CHECK_MSG(rows[i].calls == want, "profile: %s step %d ran %d times, want %d", name, rows[i].index,
              rows[i].calls, want);
    CHECK_MSG(rows[i].ms >= 0 && (i == 0 || rows[i].ms <= rows[i - 1].ms),
              "profile: rows not slowest first");
    seen_active += !strcmp(name, "block_active");
    seen_frozen += !strcmp(name, "block_frozen");
    seen_opt += !strcmp(name, "optimizer");
  }
  const gen_path *pa = gen_find_path(&prog, "block_active"), *pz = gen_find_path(&prog, "block_frozen");
  CHECK_MSG(pa && seen_active == pa->n_steps, "profile: %d block_active rows, want %d", seen_active,
            pa ? pa->n_steps : -1);
  CHECK_MSG(pz && seen_frozen == pz->n_steps, "profile: %d block_frozen rows, want %d", seen_frozen,
            pz ? pz->n_steps : -1);
  CHECK_MSG(seen_opt >= GEN_OPT_STEP_ADAMW, "profile: %d optimizer rows", seen_opt);
  double total = table->total_ms;
  CHECK_MSG(table->steps == steps, "profile: %d steps collected, want %d", table->steps, steps);
  CHECK_MSG(total > 0 && total <= r.step_ms, "profile: %.3f ms of launches in %.3f ms of steps",
            total, r.step_ms);
  printf("     profile: %d path steps, %.1f of %.1f ms in launches and GEMMs\n", n, total, r.step_ms);
}

// The trainer's parameters through its store, in the host layout (the
// padding between tensors stays zero), as the CPU run's arena holds them.
bool read_params(const trainer &t, Run *r, lt_error *err) {
  const ir_model *m = &t.ir;
  r->params.assign((size_t)t.state.n_param_scalars, 0.0f);
  for (int p = 0; p < m->n_params; p++)
    for (int l = 0; l < ps_param_layers(m, p); l++)
      if (t.store.get(t.store.ctx, p, l, r->params.data() + ms_param_index(&t.state, p, l), err))
        return false;
  return true;
}

bool device_run(int method, int dtype, int grad_dtype, const char *tag, Run *r,
                Segment seg = Segment()) {
  train_config c = config(method, seg.accum);
  c.params_only = 1;
  int accum = seg.accum;
  trainer t;
  lt_error err = {};
  if (trainer_create(&t, &c, &err)) return fprintf(stderr, "%s\n", err.msg), check_failures++, false;
  std::unique_ptr<Program> p(new Program);
  dev_trainer *d = nullptr;
  dt_device dev;
  bool ok;
#ifdef LISA_HAVE_GPU
  gpu_device *gpu = nullptr;
  if (on_device) {
    char name[256];
    gen_config cfg;
    unsigned unfused = 0;
    ok = gpu_device_open(&gpu, 0, name, sizeof name, &err) == 0 &&
         program_config(t, dtype, grad_dtype, seg.nearest, &cfg) &&
         gpu_device_build(gpu, &t.ir, &cfg, &p->prog, &unfused, &err) == 0; /* as cuda_run */
    p->ok = ok;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    else dev = gpu_device_iface(gpu);
    if (unfused)
      fprintf(stderr, "cuBLASLt has no algorithm for epilogues 0x%x fused: generated unfused\n",
              unfused);
  } else
#endif
  {
    ok = build_program(t, dtype, grad_dtype, tag, p.get(), seg.nearest);
    dev = emu_device::device(&p->mod);
  }
  if (ok && dt_create(&d, &t, &p->prog, &dev, &err)) {
    fprintf(stderr, "dt_create: %s\n", err.msg);
    ok = false;
  }
  /* as cuda_run: the weights load through the device's store, then a resume */
  param_store ps;
  if (ok) ps = dt_store(d), trainer_use_store(&t, &ps);
  if (ok && trainer_load_weights(&t, &err)) fprintf(stderr, "loading: %s\n", err.msg), ok = false;
  if (ok && seg.resume_dir && ckpt_resume(&t, seg.resume_dir, NULL, &err)) {
    fprintf(stderr, "ckpt_resume: %s\n", err.msg);
    ok = false;
  }
  if (ok && dtype == GEN_BF16 && accum == 1) check_plan(t, d, grad_dtype);
  path_profile *pf = nullptr;
  path_exec_backend timed;
  if (ok && seg.profile) {
    ok = path_profile_create(&pf, &p->prog, dt_max_calls(d), &dev.exec, &dev.timers, &err) == 0;
    if (!ok) fprintf(stderr, "path_profile_create: %s\n", err.msg);
    else timed = path_profile_backend(pf), dt_use_exec(d, &timed);
  }
  /* pipelined: each dt_step returns the step before it; dt_finish the last */
  const int64_t seg_start = t.step;
  while (ok && t.step < seg.steps) {
    train_step_stats st;
    int ready;
    if (dt_step(d, &st, &ready, &err) || (pf && path_profile_collect(pf, &err))) {
      fprintf(stderr, "device step %lld: %s\n", (long long)t.step, err.msg);
      ok = false;
      break;
    }
    CHECK_MSG(ready == (t.step > seg_start + 1), "step %lld: ready %d", (long long)t.step - 1, ready);
    if (ready) record(r, t, st);
  }
  if (ok) {
    train_step_stats st;
    int ready;
    ok = dt_finish(d, &st, &ready, &err) == 0;
    if (!ok) fprintf(stderr, "dt_finish: %s\n", err.msg);
    CHECK_MSG(!ok || ready == (t.step > seg_start), "dt_finish: ready %d", ready);
    if (ok && ready) record(r, t, st);
  }
  if (ok && pf) check_profile(pf, p->prog, *r);
  path_profile_free(pf);
  if (ok && seg.save_dir && (dt_sync_counts(d), ckpt_save(&t, seg.save_dir, &err)))
    fprintf(stderr, "saving: %s\n", err.msg), ok = false;
  if (ok) { /* validation: forward only on the device's weights, a masked batch */
    masked_batch(t);
    if (dt_eval_batch(d, &r->eval_loss, &err)) fprintf(stderr, "dt_eval_batch: %s\n", err.msg), ok = false;
  }
  if (ok && !read_params(t, r, &err)) fprintf(stderr, "%s\n", err.msg), ok = false;
  dt_free(d);
#ifdef LISA_HAVE_GPU
  gpu_device_close(gpu);
#endif
  trainer_free(&t);
  if (!ok) check_failures++;
  return ok;
}

// Every step's loss within rel and gradient norm within norm_rel of the
// CPU's, the same active sets, and the final weights within nmse.
void compare(const char *what, const Run &cpu, const Run &dev, double rel, double norm_rel,
             double nmse) {
  CHECK_MSG(dev.loss.size() == cpu.loss.size(), "%s: %zu steps, want %zu", what, dev.loss.size(),
            cpu.loss.size());
  if (dev.loss.size() != cpu.loss.size()) return;
  rel *= slack, norm_rel *= slack, nmse *= slack * slack;
  double worst_loss = 0, worst_norm = 0;
  for (size_t i = 0; i < cpu.loss.size(); i++) {
    double el = fabs(dev.loss[i] - cpu.loss[i]) / fabs(cpu.loss[i]);
    double en = fabs(dev.norm[i] - cpu.norm[i]) / fabs(cpu.norm[i]);
    worst_loss = el > worst_loss ? el : worst_loss;
    worst_norm = en > worst_norm ? en : worst_norm;
    CHECK_MSG(std::isfinite(dev.loss[i]) && el <= rel, "%s step %zu: loss %.7f, cpu %.7f", what, i,
              dev.loss[i], cpu.loss[i]);
    CHECK_MSG(std::isfinite(dev.norm[i]) && en <= norm_rel, "%s step %zu: grad norm %.7f, cpu %.7f",
              what, i, dev.norm[i], cpu.norm[i]);
    CHECK_MSG(dev.active[i] == cpu.active[i], "%s step %zu: another active set", what, i);
  }
  const double ev = fabs(dev.eval_loss - cpu.eval_loss) / fabs(cpu.eval_loss);
  CHECK_MSG(std::isfinite(dev.eval_loss) && ev <= rel, "%s: validation loss %.7f, cpu %.7f", what,
            dev.eval_loss, cpu.eval_loss);
  double e = emu::nmse(dev.params.data(), cpu.params.data(), cpu.params.size());
  CHECK_MSG(e <= nmse, "%s: final weights nmse %.3g > %.3g", what, e, nmse);
  printf("     %s: worst loss rel %.2e, grad norm rel %.2e, weights nmse %.2e (loss %.4f -> %.4f)\n",
         what, worst_loss, worst_norm, e, dev.loss.front(), dev.loss.back());
}

// The loss must also fall: the device trains, it does not only agree.
void check_learns(const char *what, const Run &r) {
  CHECK_MSG(!r.loss.empty() && r.loss.back() < r.loss.front() - 0.1f, "%s: loss %.4f -> %.4f",
            what, r.loss.empty() ? 0.0f : r.loss.front(), r.loss.empty() ? 0.0f : r.loss.back());
}

Run cpu_ft, cpu_lisa, cpu_lora;
Run dev_lisa_fp32, dev_lisa_mixed;  // the uninterrupted device runs resume_case continues

// fp32: the paths sum in other orders than cpu_ops (measured: loss 7e-8,
// grad norm 2e-7, weights 2e-11). A 1% error in the learning rate moves
// the loss by 2e-3.
void test_fp32() {
  Run ft, lisa, lora;
  if (device_run(TRAIN_FT, GEN_F32, GEN_F32, "fp32-ft", &ft)) {
    compare("fp32 ft", cpu_ft, ft, 1e-5, 1e-5, 1e-9);
    check_learns("fp32 ft", ft);
  }
  if (device_run(TRAIN_LISA, GEN_F32, GEN_F32, "fp32-lisa", &lisa)) {
    compare("fp32 lisa", cpu_lisa, lisa, 1e-5, 1e-5, 1e-9);
    dev_lisa_fp32 = lisa;
  }
  if (device_run(TRAIN_LORA, GEN_F32, GEN_F32, "fp32-lora", &lora)) {
    compare("fp32 lora", cpu_lora, lora, 1e-5, 1e-5, 1e-9);
    check_learns("fp32 lora", lora);
  }
}

// Gradient accumulation: 3 micro-batches a step, each at 1/3 of the loss
// (bias gradients by the generated kernel, not cuBLASLt's BGRAD).
void test_grad_accum() {
  Run cpu, ft;
  if (!cpu_run(TRAIN_LISA, &cpu, 3)) return;
  Segment seg;
  seg.accum = 3;
  if (!device_run(TRAIN_LISA, GEN_F32, GEN_F32, "fp32-accum", &ft, seg)) return;
  compare("fp32 lisa accum 3", cpu, ft, 1e-5, 1e-5, 1e-9);
  check_learns("fp32 lisa accum 3", ft);
}

// --save-state / --resume on the device: 8 steps, save, a new trainer
// resumes and runs 12 more. fp32 continues the 20-step run bit for bit;
// bf16-mixed re-rounds its bf16 weights from the masters (to nearest, where
// the uninterrupted run rounded stochastically).
void resume_case(int dtype, const char *name, const char *tag, Run *whole, double rel,
                 double norm_rel, double nmse) {
  std::string dir = tmp_dir + "/state-" + tag;
  Segment first, rest;
  first.steps = 8, first.save_dir = dir.c_str();
  rest.resume_dir = dir.c_str();
  Run a, b;
  std::string tag_a = std::string(tag) + "-save", tag_b = std::string(tag) + "-resume";
  if (!device_run(TRAIN_LISA, dtype, GEN_F32, tag_a.c_str(), &a, first) ||
      !device_run(TRAIN_LISA, dtype, GEN_F32, tag_b.c_str(), &b, rest))
    return;
  Run joined = a;
  joined.loss.insert(joined.loss.end(), b.loss.begin(), b.loss.end());
  joined.norm.insert(joined.norm.end(), b.norm.begin(), b.norm.end());
  joined.active.insert(joined.active.end(), b.active.begin(), b.active.end());
  joined.params = b.params;
  joined.eval_loss = b.eval_loss;
  compare(name, *whole, joined, rel, norm_rel, nmse);
}

// ---- host memory of a device run -------------------------------------------

// /proc/self/status's field (kB) in bytes; 0 if absent.
uint64_t status_bytes(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  uint64_t kb = 0;
  size_t n = strlen(field);
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, field, n) && line[n] == ':') kb = strtoull(line + n + 1, nullptr, 10);
  if (f) fclose(f);
  return kb * 1024;
}

// Resets VmHWM to the current RSS (Linux 4.0+); false where it cannot.
bool reset_peak_rss() {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  bool ok = f && fputs("5", f) >= 0;
  if (f) ok = fclose(f) == 0 && ok;
  return ok;
}

// Every tensor of two safetensors files equal bit for bit.
bool same_tensors(const std::string &a, const std::string &b) {
  st_file fa, fb;
  lt_error err = {};
  if (st_open(&fa, a.c_str(), &err)) return fprintf(stderr, "%s\n", err.msg), false;
  if (st_open(&fb, b.c_str(), &err)) return st_close(&fa), fprintf(stderr, "%s\n", err.msg), false;
  bool same = fa.n == fb.n;
  for (int i = 0; same && i < fa.n; i++) {
    const st_tensor *ta = &fa.tensors[i], *tb = st_find(&fb, ta->name);
    std::vector<float> va((size_t)st_numel(ta)), vb(va.size());
    same = tb && st_numel(tb) == st_numel(ta) && st_read_f32(&fa, ta, va.data(), &err) == 0 &&
           st_read_f32(&fb, tb, vb.data(), &err) == 0 &&
           memcmp(va.data(), vb.data(), va.size() * 4) == 0;
    if (!same) fprintf(stderr, "%s: '%s' differs from %s\n", a.c_str(), ta->name, b.c_str());
  }
  st_close(&fa), st_close(&fb);
  return same;
}

// A model of ~100 MB (GPT-2's graph at n_embd 512, 8 layers; its largest
// tensor 4 MB): gpt2-tiny.yaml with a bigger config.
std::string write_big_model() {
  FILE *in = fopen(model_path.c_str(), "r");
  std::string text, path = tmp_dir + "/gpt2-host-memory.yaml";
  char buf[4096];
  size_t n;
  while (in && (n = fread(buf, 1, sizeof buf, in)) > 0) text.append(buf, n);
  if (in) fclose(in);
  const char *edits[][2] = {{"n_embd: 24", "n_embd: 512"}, {"n_head: 3", "n_head: 8"},
                            {"n_layer: 2", "n_layer: 8"}};
  for (auto &e : edits) {
    size_t at = text.find(e[0]);
    if (at == std::string::npos) return fprintf(stderr, "no '%s' in %s\n", e[0], model_path.c_str()), "";
    text.replace(at, strlen(e[0]), e[1]);
  }
  FILE *out = fopen(path.c_str(), "w");
  bool ok = out && fwrite(text.data(), 1, text.size(), out) == text.size();
  if (out) ok = fclose(out) == 0 && ok;
  return ok ? path : "";
}

// What a device run does on the host besides steps, all through the
// device's store: load the weights, save a checkpoint and resume it, save
// the weights, read the norms.
bool store_round_trip(trainer &t, dev_trainer *d, const std::string &saved, lt_error *err) {
  std::vector<double> w(t.ir.n_layer + 2), g(t.ir.n_layer + 2);
  std::string state = tmp_dir + "/host-memory-state";
  if (trainer_load_weights(&t, err)) return false;
  dt_sync_counts(d);
  return ckpt_save(&t, state.c_str(), err) == 0 && ckpt_resume(&t, state.c_str(), NULL, err) == 0 &&
         wt_save_into(&t.ir, &t.store, saved.c_str(), 0, ST_F32, err) == 0 &&
         trainer_norms(&t, w.data(), g.data(), err) == 0;
}

// The measure: a device run holds on the host no more than a few
// tensors' worth beyond the data, and no more than `lisa plan` says. The device here is the emulator, whose
// arena is host memory too: it is resident before the measure starts (the
// arena is filled at creation), so the peak RSS over the loads and saves
// less the RSS before them is the host side's. The weights come back bit
// for bit (fp32, no step).
void test_host_memory() {
  std::string big = write_big_model(), weights = tmp_dir + "/host-memory-in.safetensors",
              saved = tmp_dir + "/host-memory-out.safetensors";
  CHECK(!big.empty());
  if (big.empty()) return;
  train_config c = config(TRAIN_LISA);
  c.model_path = big.c_str();
  c.batch = 1;
  trainer t;
  lt_error err = {};
  // the weights file, from a CPU trainer (freed before the measure)
  if (trainer_create(&t, &c, &err) || wt_save(&t.state, weights.c_str(), &err))
    return fprintf(stderr, "%s\n", err.msg), (void)check_failures++;
  trainer_free(&t);
  c.params_only = 1, c.weights_path = weights.c_str();
  if (trainer_create(&t, &c, &err)) return fprintf(stderr, "%s\n", err.msg), (void)check_failures++;
  CHECK(t.state.params == nullptr && t.state.grads == nullptr && t.opt.m == nullptr);
  Program p;
  dev_trainer *d = nullptr;
  bool ok = build_program(t, GEN_F32, GEN_F32, "host-memory", &p);
  dt_device dev = emu_device::device(&p.mod);
  if (ok && dt_create(&d, &t, &p.prog, &dev, &err)) fprintf(stderr, "%s\n", err.msg), ok = false;
  param_store ps;
  if (ok) ps = dt_store(d), trainer_use_store(&t, &ps);
  const uint64_t before = status_bytes("VmRSS");
#ifdef __SANITIZE_ADDRESS__
  const bool asan = true;  // its quarantine and shadow keep what was freed
#else
  const bool asan = false;
#endif
  bool measured = ok && !asan && reset_peak_rss() && before > 0;
  if (ok && !store_round_trip(t, d, saved, &err)) fprintf(stderr, "%s\n", err.msg), ok = false;
  const uint64_t peak = status_bytes("VmHWM");
  const uint64_t model = (uint64_t)t.state.n_param_scalars * 4;
  // `lisa plan`'s host side for this run, and room for the allocator's and
  // stdio's own
  memory_plan_settings mps = {};
  mps.method = TRAIN_LISA, mps.gamma = c.lisa.gamma, mps.batch = c.batch, mps.seq = c.seq;
  mps.precision = PRECISION_BF16_MIXED;
  memory_breakdown plan = {};
  if (memory_plan_compute(&t.ir, &mps, &plan, &err)) fprintf(stderr, "%s\n", err.msg), ok = false;
  const uint64_t bound = plan.host_bytes + (2u << 20);
  if (ok && measured) {
    uint64_t host = peak > before ? peak - before : 0;
    printf("     host side of a device run: %.1f MB at peak for a %.1f MB model (lisa plan: "
           "%.1f MB)\n", host / 1e6, model / 1e6, plan.host_bytes / 1e6);
    CHECK_MSG(host <= bound, "the host held %llu bytes beyond its start, over %llu",
              (unsigned long long)host, (unsigned long long)bound);
    CHECK(model > 4 * bound); /* or the bound would not tell the model apart */
  } else if (ok) {
    printf("     host side of a device run: not measured (%s)\n",
           asan ? "AddressSanitizer holds freed memory" : "no /proc/self/clear_refs");
  }
  if (ok) CHECK(same_tensors(weights, saved));
  dt_free(d);
  trainer_free(&t);
  if (!ok) check_failures++;
}

void test_resume() {
  if (!dev_lisa_fp32.loss.empty()) resume_case(GEN_F32, "fp32 resume", "fp32", &dev_lisa_fp32, 0, 0, 0);
  if (!dev_lisa_mixed.loss.empty())
    /* measured: loss 1.2e-4, grad norm 6e-3, weights 3e-5 */
    resume_case(GEN_BF16, "bf16-mixed resume", "mixed", &dev_lisa_mixed, 1e-3, 3e-2, 1e-4);
}

// bf16 weights and activations: a relative 2^-9 per rounding, through 20
// steps of training (measured: loss 9e-4, grad norm 1.1e-2, weights
// 2.1e-4 at worst; the 1% learning-rate error above gives loss 1.8e-3).
void test_bf16_mixed() {
  Run ft, lisa;
  if (device_run(TRAIN_FT, GEN_BF16, GEN_F32, "mixed-ft", &ft)) {
    compare("bf16-mixed ft", cpu_ft, ft, 1.5e-3, 3e-2, 3e-4);
    check_learns("bf16-mixed ft", ft);
  }
  Segment profiled;
  profiled.profile = true;  /* timing must not change what runs */
  if (device_run(TRAIN_LISA, GEN_BF16, GEN_F32, "mixed-lisa", &lisa, profiled)) {
    compare("bf16-mixed lisa", cpu_lisa, lisa, 1.5e-3, 3e-2, 3e-4);
    dev_lisa_mixed = lisa;
  }
  Run nearest;
  Segment seg;
  seg.nearest = true;
  if (device_run(TRAIN_FT, GEN_BF16, GEN_F32, "mixed-nearest", &nearest, seg)) {
    compare("bf16-mixed ft, nearest", cpu_ft, nearest, 1.5e-3, 3e-2, 3e-4);
    check_learns("bf16-mixed ft, nearest", nearest);
  }
}

// bf16 gradients and moments too, weights updated in place with
// stochastic rounding.
void test_bf16_true() {
  Run lisa;
  if (!device_run(TRAIN_LISA, GEN_BF16, GEN_BF16, "true-lisa", &lisa)) return;
  compare("bf16-true lisa", cpu_lisa, lisa, 1.5e-3, 3e-2, 6e-4);
  check_learns("bf16-true lisa", lisa);
}

}  // namespace

int main() {
  char dir[] = "/tmp/lisa-dev-train-XXXXXX";
  if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
  tmp_dir = dir;
  if (!emu_device::from_env(&on_device, &slack)) return 1;
  model_path = src_path("models/gpt2-tiny.yaml");
  data_path = src_path("tests/fixtures/tokens-67.bin");
  cpu_run(TRAIN_FT, &cpu_ft);
  cpu_run(TRAIN_LISA, &cpu_lisa);
  cpu_run(TRAIN_LORA, &cpu_lora);
  RUN(test_fp32);
  RUN(test_grad_accum);
  RUN(test_bf16_mixed);
  RUN(test_bf16_true);
  RUN(test_resume);
  RUN(test_host_memory);
  std::string rm = "rm -rf " + tmp_dir;
  if (system(rm.c_str()) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir.c_str());
  return check_exit();
}
