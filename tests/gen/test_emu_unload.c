/* test_emu_unload: the emulator device gives back what a loaded program
 * held once it is unloaded. lisa tune builds, runs and unloads a program
 * per variant; each launch of 1024 threads maps 1024 guarded fiber stacks
 * (two mappings each), and GCC's STB_GNU_UNIQUE inline variables keep a
 * dlclose'd .so loaded, so without emu::release a process ran out of
 * mappings (vm.max_map_count) after some thirty programs. */
#include "autodiff.h"
#include "check.h"
#include "dev_check.h"
#include "emu_device.h"
#include "gen_tune.h"
#include "model_yaml.h"
#include "weights.h"

static int count_maps(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  int n = 0, c;
  if (!f) return -1;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

/* Builds m's program with cross_entropy_fused at `threads` (1024: the
 * widest launch), checks every path on the emulator, unloads. */
static void run_once(const dev_provider *p, ir_model *m, ms_state *s, int threads) {
  char lua[96];
  snprintf(lua, sizeof lua, "return {cross_entropy_fused = {THREADS = %d}}", threads);
  gen_tuning *t = NULL;
  lt_error err = {{0}};
  CHECK(gen_tune_load_text(&t, lua, "test", &err) == 0);
  gen_config cfg = {.B = 2, .T = 8, .grad_accum = 1, .dtype = GEN_F32, .grad_dtype = GEN_F32,
                    .tuning = t, .sms = p->sms};
  gen_program prog;
  unsigned unfused;
  if (p->build(p->ctx, m, &cfg, &prog, &unfused, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    gen_tune_free(t);
    return;
  }
  dt_device dev = p->iface(p->ctx);
  dev_check_options o = {1, NULL, 0};
  dev_check_report rep = {0};
  CHECK_MSG(dev_check_program(&prog, s, &dev, &o, &rep, &err) == 0 && rep.n > 0 && !rep.failed,
            "%s (%d of %d failed)", err.msg, rep.failed, rep.n);
  dev_check_report_free(&rep);
  p->unload(p->ctx);
  gen_free(&prog);
  gen_tune_free(t);
}

int main(void) {
  ir_model m;
  ms_state s;
  dev_provider p;
  char name[128];
  lt_error err = {{0}};
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err) || ad_build_backward(&m, &err) ||
      ms_create_trains(&s, &m, 2, 8, m.n_layer, 0, NULL, &err) ||
      emu_provider_open(&p, name, sizeof name, &err)) {
    fprintf(stderr, "setup: %s\n", err.msg);
    return 1;
  }
  wt_init_random(&s, 7);
  for (int n = 0; n < s.N; n++) s.ids[n] = (n * 7) % m.vocab_size, s.targets[n] = (n * 5) % m.vocab_size;
  run_once(&p, &m, &s, 1024); /* the first load maps the libraries' own pieces too */
  const int before = count_maps();
  run_once(&p, &m, &s, 512);
  run_once(&p, &m, &s, 1024);
  const int after = count_maps();
  /* a leak is 2 mappings per thread of the widest launch: 2048 per program */
  CHECK_MSG(after - before < 200, "%d mappings before, %d after two more programs", before, after);
  printf("%s mappings: %d, then %d after two more programs\n",
         check_failures ? "FAIL" : "ok  ", before, after);
  p.close(p.ctx);
  ms_free(&s);
  ir_model_free(&m);
  return check_exit();
}
