/* test_tune_db: the tuning database (runtime/run/tune_db.c). Entries round
 * trip through the file; another device's file, a file that is not JSON,
 * malformed entries and stale ones (values the spaces refuse) are ignored
 * with a warning naming the file; the program signature changes with what
 * the generated code depends on and not with the tunables. */
#include <unistd.h>

#include "autodiff.h"
#include "check.h"
#include "gen_tune.h"
#include "model_yaml.h"
#include "tune_db.h"
#include "tune_prune.h"

#define DEVICE "Test GPU|sm_90|132 SMs|cuda 12040"

static char tmp_dir[64];

static const char *tmp_file(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
  FILE *f = fopen(path, "w");
  if (f) fputs(text, f), fclose(f);
  return path;
}

static tdb_entry entry(const char *kernel, const char *program, const char *p1, int v1,
                       const char *p2, int v2, double ms) {
  tdb_entry e = {.ms = ms, .default_ms = 2 * ms, .variants = 7};
  snprintf(e.kernel, sizeof e.kernel, "%s", kernel);
  snprintf(e.program, sizeof e.program, "%s", program);
  snprintf(e.names[0], sizeof e.names[0], "%s", p1);
  e.values[0] = v1, e.n_values = 1;
  if (p2) snprintf(e.names[1], sizeof e.names[1], "%s", p2), e.values[1] = v2, e.n_values = 2;
  return e;
}

static int same_entry(const tdb_entry *a, const tdb_entry *b) {
  int same = !strcmp(a->kernel, b->kernel) && !strcmp(a->program, b->program) &&
             a->n_values == b->n_values && a->ms == b->ms && a->default_ms == b->default_ms &&
             a->variants == b->variants;
  for (int i = 0; same && i < a->n_values; i++)
    same = !strcmp(a->names[i], b->names[i]) && a->values[i] == b->values[i];
  return same;
}

static void test_round_trip(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/db.json", tmp_dir);
  lt_error err = {{0}};
  tune_db db;
  CHECK(tdb_open_path(&db, DEVICE, path, &err) == 0 && db.n == 0 && !*sb_str(&db.warnings));
  tdb_entry a = entry("attention_forward", "m B2 T8 fp32 01", "BQ", 64, "THREADS", 128, 0.0123456789),
            b = entry("elementwise", "m B2 T8 fp32 01", "THREADS", 512, NULL, 0, 1.0 / 3),
            c = entry("elementwise", "m B4 T8 fp32 02", "THREADS", 64, NULL, 0, 5e-5);
  CHECK(tdb_put(&db, &a, &err) == 0 && tdb_put(&db, &b, &err) == 0 && tdb_put(&db, &c, &err) == 0);
  b.values[0] = 1024; /* the same kernel and program replaces */
  CHECK(tdb_put(&db, &b, &err) == 0 && db.n == 3);
  CHECK(tdb_save(&db, &err) == 0);
  tdb_free(&db);

  CHECK(tdb_open_path(&db, DEVICE, path, &err) == 0 && db.n == 3);
  CHECK_MSG(!*sb_str(&db.warnings), "%s", sb_str(&db.warnings));
  const tdb_entry *got = tdb_find(&db, "elementwise", "m B2 T8 fp32 01");
  CHECK(got && same_entry(got, &b) && got->values[0] == 1024);
  CHECK((got = tdb_find(&db, "attention_forward", "m B2 T8 fp32 01")) && same_entry(got, &a));
  CHECK((got = tdb_find(&db, "elementwise", "m B4 T8 fp32 02")) && same_entry(got, &c));
  CHECK(!tdb_find(&db, "attention_forward", "m B4 T8 fp32 02"));
  char values[64];
  tdb_values_text(&a, values, sizeof values);
  CHECK(!strcmp(values, "BQ=64 THREADS=128"));

  /* the program's tunables: its entries over the defaults */
  gen_tuning *t = NULL;
  sbuf applied = {0};
  int v = 0;
  CHECK(tdb_tuning(&db, "m B2 T8 fp32 01", &t, &applied, &err) == 0 && t);
  CHECK(gen_tune_get(t, "attention_forward", "BQ", &v) == 0 && v == 64);
  CHECK(gen_tune_get(t, "elementwise", "THREADS", &v) == 0 && v == 1024);
  CHECK(gen_tune_get(t, "cross_entropy_mean", "THREADS", &v) == 0 && v == 256); /* a default */
  CHECK_MSG(strstr(sb_str(&applied), "attention_forward(BQ=64 THREADS=128)") &&
                strstr(sb_str(&applied), "elementwise(THREADS=1024)"), "%s", sb_str(&applied));
  gen_tune_free(t);
  sb_free(&applied);
  CHECK(tdb_tuning(&db, "another program", &t, NULL, &err) == 0 && !t);
  tdb_free(&db);

  /* another device's file is not read */
  CHECK(tdb_open_path(&db, "Other GPU|sm_80|108 SMs|cuda 12040", path, &err) == 0 && db.n == 0);
  CHECK_MSG(strstr(sb_str(&db.warnings), "db.json: for device 'Test GPU|sm_90") != NULL, "%s",
            sb_str(&db.warnings));
  tdb_free(&db);
}

static void test_malformed(void) {
  lt_error err = {{0}};
  tune_db db;
  const char *path = tmp_file("junk.json", "{\"format\": \"lisa-tune 1\", \"entries\": [1, 2");
  CHECK(tdb_open_path(&db, DEVICE, path, &err) == 0 && db.n == 0);
  CHECK_MSG(strstr(sb_str(&db.warnings), "junk.json: not JSON") != NULL, "%s", sb_str(&db.warnings));
  /* lisa tune's next save replaces it with a good file */
  tdb_entry a = entry("elementwise", "p", "THREADS", 128, NULL, 0, 1);
  CHECK(tdb_put(&db, &a, &err) == 0 && tdb_save(&db, &err) == 0);
  tdb_free(&db);
  CHECK(tdb_open_path(&db, DEVICE, path, &err) == 0 && db.n == 1 && !*sb_str(&db.warnings));
  tdb_free(&db);

  path = tmp_file("old.json", "{\"format\": \"lisa-tune 0\", \"device\": \"" DEVICE "\", \"entries\": []}");
  CHECK(tdb_open_path(&db, DEVICE, path, &err) == 0 && db.n == 0);
  CHECK(strstr(sb_str(&db.warnings), "old.json: not a tuning database") != NULL);
  tdb_free(&db);

  static const char *const bad[] = {
      "{\"program\": \"p\", \"values\": {\"THREADS\": 64}, \"ms\": 1}",               /* no kernel */
      "{\"kernel\": \"a b\", \"program\": \"p\", \"values\": {\"X\": 1}, \"ms\": 1}", /* bad name */
      "{\"kernel\": \"k\", \"values\": {\"THREADS\": 64}, \"ms\": 1}",                /* no program */
      "{\"kernel\": \"k\", \"program\": \"p\", \"values\": {\"THREADS\": 1.5}, \"ms\": 1}",
      "{\"kernel\": \"k\", \"program\": \"p\", \"values\": {\"THREADS\": \"64\"}, \"ms\": 1}",
      "{\"kernel\": \"k\", \"program\": \"p\", \"values\": {}, \"ms\": 1}",
      "{\"kernel\": \"k\", \"program\": \"p\", \"values\": {\"THREADS\": 64}, \"ms\": -1}",
      "{\"kernel\": \"k\", \"program\": \"p\", \"values\": {\"THREADS\": 64}}",
      "{\"kernel\": \"k\", \"program\": \"p\", \"values\": {\"T-X\": 64}, \"ms\": 1}",
      "[\"kernel\", \"k\"]",
  };
  sbuf text = {0};
  sb_puts(&text, "{\"format\": \"lisa-tune 1\", \"device\": \"" DEVICE "\", \"entries\": [");
  sb_puts(&text, "{\"kernel\": \"elementwise\", \"program\": \"p\", \"values\": {\"THREADS\": 64}, \"ms\": 1}");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) sb_printf(&text, ", %s", bad[i]);
  sb_puts(&text, "]}");
  path = tmp_file("bad.json", sb_str(&text));
  sb_free(&text);
  CHECK(tdb_open_path(&db, DEVICE, path, &err) == 0 && db.n == 1 &&
        tdb_find(&db, "elementwise", "p"));
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char want[64];
    snprintf(want, sizeof want, "bad.json: entry %zu: ", i + 1);
    CHECK_MSG(strstr(sb_str(&db.warnings), want) != NULL, "%s missing from:\n%s", want,
              sb_str(&db.warnings));
  }
  tdb_free(&db);
}

/* Entries the current spaces refuse are skipped; the rest still apply. */
static void test_stale(void) {
  lt_error err = {{0}};
  tune_db db;
  char path[300];
  snprintf(path, sizeof path, "%s/stale.json", tmp_dir); /* no file: an empty database */
  CHECK(tdb_open_path(&db, DEVICE, path, &err) == 0);
  tdb_entry ok = entry("elementwise", "p", "THREADS", 64, NULL, 0, 1),
            off_space = entry("attention_forward", "p", "BQ", 48, "THREADS", 128, 1),
            gone = entry("no_such_kernel", "p", "THREADS", 64, NULL, 0, 1),
            renamed = entry("cross_entropy_mean", "p", "WARPS", 4, NULL, 0, 1);
  CHECK(!tdb_put(&db, &ok, &err) && !tdb_put(&db, &off_space, &err) && !tdb_put(&db, &gone, &err) &&
        !tdb_put(&db, &renamed, &err));
  gen_tuning *t = NULL;
  sbuf applied = {0};
  int v = 0;
  CHECK(tdb_tuning(&db, "p", &t, &applied, &err) == 0 && t);
  CHECK(gen_tune_get(t, "elementwise", "THREADS", &v) == 0 && v == 64);
  CHECK(gen_tune_get(t, "attention_forward", "BQ", &v) == 0 && v == 32);
  CHECK(!strcmp(sb_str(&applied), "elementwise(THREADS=64)"));
  const char *w = sb_str(&db.warnings);
  CHECK_MSG(strstr(w, "stale.json: entry attention_forward (BQ=48 THREADS=128): stale") &&
                strstr(w, "entry no_such_kernel (THREADS=64): stale") &&
                strstr(w, "entry cross_entropy_mean (WARPS=4): stale"), "%s", w);
  gen_tune_free(t);
  sb_free(&applied);
  tdb_free(&db);
}

static void test_signature(void) {
  ir_model m;
  lt_error err = {{0}};
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err) || ad_build_backward(&m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    return;
  }
  gen_tuning *t = NULL;
  CHECK(gen_tune_load_text(&t, "return {elementwise = {THREADS = 64}}", "t", &err) == 0);
  gen_config base = {.B = 2, .T = 8, .grad_accum = 1, .dtype = GEN_F32, .grad_dtype = GEN_F32};
  gen_config tuned = base, b3 = base, t16 = base, bf16 = base, accum = base;
  tuned.tuning = t, b3.B = 3, t16.T = 16, bf16.dtype = GEN_BF16, accum.grad_accum = 4;
  unsigned char *frozen = calloc((size_t)m.n_params + 1, 1);
  gen_config lora = base;
  lora.trains = frozen;
  char s0[160], s1[160], s[160];
  CHECK(tdb_signature(&m, &base, s0, sizeof s0, &err) == 0);
  CHECK(tdb_signature(&m, &base, s1, sizeof s1, &err) == 0 && !strcmp(s0, s1));
  CHECK_MSG(!strncmp(s0, "gpt2-tiny B2 T8 fp32 ", 21), "%s", s0);
  CHECK(tdb_signature(&m, &tuned, s, sizeof s, &err) == 0 && !strcmp(s, s0));
  const gen_config *differ[] = {&b3, &t16, &bf16, &accum, &lora};
  for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
    CHECK(tdb_signature(&m, differ[i], s, sizeof s, &err) == 0);
    CHECK_MSG(strcmp(s, s0), "config %zu: %s", i, s);
  }
  free(frozen);
  gen_tune_free(t);
  ir_model_free(&m);
}

/* Occupancy as the CUDA calculator has it, and the pruning rules. */
static void test_prune(void) {
  tp_limits h, a, t;
  CHECK(tp_limits_of("sm_90", &h) == 0 && h.max_warps_per_sm == 64 && h.smem_per_block == 232448);
  CHECK(tp_limits_of("sm_86", &a) == 0 && a.max_warps_per_sm == 48 && a.smem_per_block == 101376);
  CHECK(tp_limits_of("sm_75", &t) == 0 && t.max_warps_per_sm == 32);
  CHECK(tp_limits_of("sm_90a", &t) == 0 && t.smem_per_sm == h.smem_per_sm);
  CHECK(tp_limits_of("compute_90", &t) == -1 && tp_limits_of("sm_", &t) == -1);
  tp_stats s = {.registers = 32, .threads = 128};
  tp_occupancy(&s, &h); /* warps: 64 / 4 = 16 blocks; registers: 65536 / 4096 = 16 */
  CHECK(s.blocks_per_sm == 16 && s.occupancy == 1.0);
  s = (tp_stats){.registers = 48, .threads = 64}; /* 1536 registers a warp: 21 blocks */
  tp_occupancy(&s, &h);
  CHECK(s.blocks_per_sm == 21 && fabs(s.occupancy - 42.0 / 64) < 1e-12);
  s = (tp_stats){.registers = 33, .threads = 256}; /* 33 * 32 rounds up to 1280 a warp */
  tp_occupancy(&s, &h);
  CHECK(s.blocks_per_sm == 6);
  s = (tp_stats){.registers = 32, .threads = 256, .smem = 100000}; /* 101024 a block */
  tp_occupancy(&s, &h);
  CHECK(s.blocks_per_sm == 2);
  tp_occupancy(&s, &a); /* Ampere's 100 KiB: one block */
  CHECK(s.blocks_per_sm == 1);
  s.smem = 110000; /* more than a block may have there */
  tp_occupancy(&s, &a);
  CHECK(s.blocks_per_sm == 0 && s.occupancy == 0);
  char why[160];
  const tp_stats fine = {.registers = 32, .threads = 128, .blocks_per_sm = 16},
                 spills = {.registers = 64, .spill_bytes = 16, .threads = 1024, .blocks_per_sm = 1};
  tp_stats huge = {.registers = 255, .threads = 1024};
  tp_occupancy(&huge, &h); /* 8192 registers a warp x 32 warps */
  CHECK(huge.blocks_per_sm == 0);
  CHECK(tp_prune_reason(&fine, &fine, why, sizeof why) == NULL);
  CHECK(tp_prune_reason(&huge, &fine, why, sizeof why) && strstr(why, "cannot launch (255 registers x 1024 threads"));
  CHECK(tp_prune_reason(&spills, &fine, why, sizeof why) && strstr(why, "spills 16 bytes"));
  CHECK(tp_prune_reason(&spills, &spills, why, sizeof why) == NULL); /* the default spills too */
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lisa_tune_db_XXXXXX");
  if (!mkdtemp(tmp_dir)) return perror("mkdtemp"), 1;
  RUN(test_round_trip);
  RUN(test_malformed);
  RUN(test_stale);
  RUN(test_signature);
  RUN(test_prune);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
  return check_exit();
}
