/* test_data: llm.c .bin token files. Round trips in both versions, the
 * exact error messages for bad files, and batches: reproducible from
 * (seed, step, b) alone, windows inside the file, targets shifted by one. */
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "data.h"
#include "rng.h"

static char tmp_dir[64];

static const char *tmp_file(const char *name) {
  static char buf[4][128];
  static int next;
  char *out = buf[next++ % 4];
  snprintf(out, sizeof buf[0], "%s/%s", tmp_dir, name);
  return out;
}

static long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void write_header(const char *path, int32_t magic, int32_t version,
                         int32_t n, const void *ids, size_t id_bytes) {
  int32_t h[256] = {magic, version, n};
  FILE *fp = fopen(path, "wb");
  if (!fp || fwrite(h, 4, 256, fp) != 256 ||
      fwrite(ids, 1, id_bytes, fp) != id_bytes || fclose(fp) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* data_open on path must fail with exactly "<path>: <tail>". */
static void expect_open_error(const char *path, int vocab, const char *tail) {
  data_file d;
  lt_error err = {{0}};
  char want[1200];
  snprintf(want, sizeof want, "%s: %s", path, tail);
  CHECK(data_open(&d, path, vocab, &err) == -1);
  CHECK_MSG(strcmp(err.msg, want) == 0, "got '%s', want '%s'", err.msg, want);
  CHECK(d.tokens == NULL && d.n_tokens == 0);
}

static void check_round_trip(const uint32_t *ids, int64_t n, int version,
                             int vocab) {
  const char *path = tmp_file("rt.bin");
  lt_error err = {{0}};
  CHECK_MSG(data_write(path, ids, n, &err) == 0, "%s", err.msg);
  CHECK(file_size(path) == 1024 + n * (version == 1 ? 2 : 4));
  int32_t h[3] = {0};
  FILE *fp = fopen(path, "rb");
  CHECK(fp && fread(h, 4, 3, fp) == 3);
  if (fp) fclose(fp);
  CHECK(h[0] == DATA_MAGIC && h[1] == version && h[2] == n);
  data_file d;
  CHECK_MSG(data_open(&d, path, vocab, &err) == 0, "%s", err.msg);
  CHECK(d.n_tokens == n && memcmp(d.tokens, ids, (size_t)n * 4) == 0);
  data_close(&d);
}

static void test_round_trip(void) {
  /* more than one 4096-id write chunk, and ids up to 65535 */
  static uint32_t ids[5000];
  for (int i = 0; i < 5000; i++) ids[i] = (uint32_t)(i * 7919) % 65536;
  ids[4999] = 65535;
  check_round_trip(ids, 5000, 1, 65536);
  ids[3] = 70000; /* one id past uint16 forces version 2 */
  check_round_trip(ids, 5000, 2, 70001);
  check_round_trip(ids, 0, 1, 1);
}

static void test_bad_files(void) {
  const char *path = tmp_file("bad.bin");
  uint16_t ids[100] = {0};
  write_header(path, 123, 1, 100, ids, 200);
  expect_open_error(path, 256, "bad magic 123 (expected 20240520; not an "
                    "llm.c token file?)");
  write_header(path, DATA_MAGIC, 3, 100, ids, 200);
  expect_open_error(path, 256, "unknown version 3 (expected 1: uint16 ids "
                    "or 2: uint32 ids)");
  write_header(path, DATA_MAGIC, 1, 100, ids, 180);
  expect_open_error(path, 256, "header promises 100 tokens but the file "
                    "holds 90 (truncated?)");
  write_header(path, DATA_MAGIC, 2, 100, ids, 200); /* 4-byte ids: 50 */
  expect_open_error(path, 256, "header promises 100 tokens but the file "
                    "holds 50 (truncated?)");
  write_header(path, DATA_MAGIC, 1, 10, ids, 22);
  expect_open_error(path, 256, "header promises 10 tokens but the file "
                    "holds 11 and trailing bytes");
  write_header(path, DATA_MAGIC, 1, 0, ids, 0);
  CHECK(truncate(path, 1000) == 0);
  expect_open_error(path, 256, "file is 1000 bytes, shorter than the "
                    "1024-byte header");
  expect_open_error(tmp_file("none.bin"), 256,
                    "cannot open: No such file or directory");
}

static void test_vocab(void) {
  const char *path = tmp_file("vocab.bin");
  uint32_t ids[2000] = {0};
  ids[1234] = 70000;
  lt_error err = {{0}};
  CHECK(data_write(path, ids, 2000, &err) == 0);
  expect_open_error(path, 50257, "token id 70000 at position 1234 is beyond "
                    "the vocabulary size 50257");
  ids[1234] = 0;
  ids[7] = 256; /* the boundary: vocab 256 holds ids 0..255 */
  CHECK(data_write(path, ids, 2000, &err) == 0);
  expect_open_error(path, 256, "token id 256 at position 7 is beyond the "
                    "vocabulary size 256");
  data_file d;
  CHECK(data_open(&d, path, 257, &err) == 0);
  data_close(&d);
}

/* A file whose token at position i is i, so a window shows its start. */
static void open_counting(data_file *d, int64_t n) {
  uint32_t *ids = malloc((size_t)n * 4);
  for (int64_t i = 0; i < n; i++) ids[i] = (uint32_t)i;
  lt_error err = {{0}};
  const char *path = tmp_file("count.bin");
  CHECK(data_write(path, ids, n, &err) == 0);
  CHECK_MSG(data_open(d, path, (int)n, &err) == 0, "%s", err.msg);
  free(ids);
}

static void test_batch(void) {
  enum { B = 4, T = 16 };
  data_file d;
  open_counting(&d, 1000);
  int32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
  lt_error err = {{0}};
  CHECK(data_batch(&d, 42, 7, B, T, in, tg, &err) == 0);
  for (int b = 0; b < B; b++) {
    rng_state r; /* the contract: start from (seed, step, b) alone */
    rng_seed_stream(&r, 42, 7, (uint64_t)b);
    int32_t start = (int32_t)rng_below(&r, 1000 - T);
    for (int t = 0; t < T; t++) {
      CHECK(in[b * T + t] == start + t);
      CHECK(tg[b * T + t] == start + t + 1);
    }
  }
  CHECK(data_batch(&d, 42, 7, B, T, in2, tg2, &err) == 0);
  CHECK(memcmp(in, in2, sizeof in) == 0 && memcmp(tg, tg2, sizeof tg) == 0);
  CHECK(data_batch(&d, 42, 8, B, T, in2, tg2, &err) == 0);
  CHECK(memcmp(in, in2, sizeof in) != 0);
  CHECK(data_batch(&d, 43, 7, B, T, in2, tg2, &err) == 0);
  CHECK(memcmp(in, in2, sizeof in) != 0);
  /* batch size 1 reproduces row 0 of the larger batch */
  CHECK(data_batch(&d, 42, 7, 1, T, in2, tg2, &err) == 0);
  CHECK(memcmp(in, in2, T * sizeof in[0]) == 0);
  data_close(&d);
}

/* With T+2 tokens the only starts are 0 and 1: both occur, nothing else. */
static void test_window_range(void) {
  enum { T = 8 };
  data_file d;
  open_counting(&d, T + 2);
  int seen[2] = {0, 0};
  lt_error err = {{0}};
  for (int step = 0; step < 64; step++) {
    int32_t in[2 * T], tg[2 * T];
    CHECK(data_batch(&d, 1, step, 2, T, in, tg, &err) == 0);
    for (int b = 0; b < 2; b++) {
      CHECK(in[b * T] == 0 || in[b * T] == 1);
      CHECK(tg[b * T + T - 1] <= T + 1);
      if (in[b * T] == 0 || in[b * T] == 1) seen[in[b * T]]++;
    }
  }
  CHECK(seen[0] > 0 && seen[1] > 0);
  data_close(&d);
}

static void test_too_short(void) {
  data_file d;
  open_counting(&d, 9);
  int32_t in[16], tg[16];
  lt_error err = {{0}};
  CHECK(data_batch(&d, 1, 0, 2, 8, in, tg, &err) == 0); /* T+1 = 9: fits */
  for (int t = 0; t < 8; t++) CHECK(in[8 + t] == t && tg[8 + t] == t + 1);
  char want[1200];
  snprintf(want, sizeof want, "%s: holds 9 tokens; one window of sequence "
           "length 9 needs 10", d.path);
  CHECK(data_batch(&d, 1, 0, 1, 9, in, tg, &err) == -1);
  CHECK_MSG(strcmp(err.msg, want) == 0, "got '%s'", err.msg);
  data_close(&d);
}

static void test_write_failure(void) {
  lt_error err = {{0}};
  uint32_t ids[4] = {1, 2, 3, 4};
  const char *path = tmp_file("no/such/dir.bin");
  CHECK(data_write(path, ids, 4, &err) == -1);
  CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "cannot create "
            "temporary file"), "got '%s'", err.msg);
  /* rename onto a directory fails after the write: no temp file left */
  const char *sub = tmp_file("a_dir.bin");
  CHECK(mkdir(sub, 0755) == 0);
  CHECK(data_write(sub, ids, 4, &err) == -1);
  CHECK_MSG(strstr(err.msg, "rename from temporary file failed"), "got '%s'",
            err.msg);
  CHECK(rmdir(sub) == 0); /* a temp file beside it fails main's rmdir */
}

/* ---- loss masks ---------------------------------------------------------- */

/* count.bin (token i is i) with a mask that counts token i when i % 3 != 0. */
static void open_masked(data_file *d, int64_t n) {
  uint8_t *mask = malloc((size_t)n);
  for (int64_t i = 0; i < n; i++) mask[i] = i % 3 != 0;
  lt_error err = {{0}};
  char path[256];
  snprintf(path, sizeof path, "%s.mask", tmp_file("count.bin"));
  CHECK_MSG(data_write_mask(path, mask, n, &err) == 0, "%s", err.msg);
  open_counting(d, n);
  remove(path);
  free(mask);
}

static void test_mask_batches(void) {
  enum { B = 3, T = 10 };
  data_file d;
  open_masked(&d, 500);
  CHECK(d.mask != NULL && d.n_counted == 500 - 167);
  int32_t in[B * T], tg[B * T];
  lt_error err = {{0}};
  CHECK(data_batch(&d, 5, 9, B, T, in, tg, &err) == 0);
  int64_t counted = 0;
  for (int i = 0; i < B * T; i++) {
    const int32_t next = in[i] + 1; /* the token a target predicts */
    CHECK(tg[i] == (next % 3 ? next : DATA_IGNORE));
    counted += tg[i] != DATA_IGNORE;
  }
  CHECK(data_count_targets(tg, B * T) == counted);
  CHECK(data_batch_counted(&d, 5, 9, B, T) == counted);
  /* the sweep: window w starts at w * (T + 1), masked as batches are */
  CHECK(data_batch_sequential(&d, 2, B, T, in, tg, &err) == 0);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const int32_t at = (2 * B + b) * (T + 1) + t;
      CHECK(in[b * T + t] == at);
      CHECK(tg[b * T + t] == ((at + 1) % 3 ? at + 1 : DATA_IGNORE));
    }
  CHECK(data_batch_sequential(&d, 500 / (B * (T + 1)), B, T, in, tg, &err) == -1);
  CHECK_MSG(strstr(err.msg, "is beyond its 500 tokens"), "got '%s'", err.msg);
  data_close(&d);
  /* without a mask every target counts */
  open_counting(&d, 500);
  CHECK(d.mask == NULL && d.n_counted == 500);
  CHECK(data_batch_counted(&d, 5, 9, B, T) == B * T);
  data_close(&d);
}

/* Writes count.bin (n tokens) and a raw mask file beside it. */
static const char *masked_with(int32_t magic, int32_t version, int32_t count,
                               const uint8_t *body, size_t bytes, int64_t n) {
  static char path[256];
  snprintf(path, sizeof path, "%s.mask", tmp_file("count.bin"));
  remove(path); /* the last case's, which open_counting would read */
  data_file d;
  open_counting(&d, n);
  data_close(&d);
  write_header(path, magic, version, count, body, bytes);
  return tmp_file("count.bin");
}

static void test_mask_errors(void) {
  uint8_t ones[64], mixed[64];
  memset(ones, 1, sizeof ones);
  memset(mixed, 1, sizeof mixed);
  char mask_path[256];
  snprintf(mask_path, sizeof mask_path, "%s.mask", tmp_file("count.bin"));
  struct { const uint8_t *body; size_t bytes; int32_t magic, version, count; const char *tail; } cases[] = {
      {ones, 64, 20240520, 1, 64, "bad magic 20240520 (expected 20240801; not a loss mask?)"},
      {ones, 64, 20240801, 2, 64, "unknown version 2 (expected 1)"},
      {ones, 64, 20240801, 1, 63, "masks 63 tokens but %s holds 64"},
      {ones, 60, 20240801, 1, 64, "header promises 64 mask bytes but the file holds 60 (truncated?)"},
      {ones, 0, 20240801, 1, 64, "header promises 64 mask bytes but the file holds 0 (truncated?)"},
      {mixed, 64, 20240801, 1, 64, "value 2 at position 17 (a mask holds 0 or 1)"},
      {NULL, 64, 20240801, 1, 64, "no token counts in the loss"},
  };
  mixed[17] = 2;
  uint8_t zeros[64] = {0};
  cases[6].body = zeros;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *bin = masked_with(cases[i].magic, cases[i].version, cases[i].count, cases[i].body,
                                  cases[i].bytes, 64);
    data_file d;
    lt_error err = {{0}};
    char tail[512], want[1200];
    snprintf(tail, sizeof tail, cases[i].tail, bin);
    snprintf(want, sizeof want, "%s: %s", mask_path, tail);
    CHECK(data_open(&d, bin, 64, &err) == -1);
    CHECK_MSG(strcmp(err.msg, want) == 0, "case %zu: got '%s', want '%s'", i, err.msg, want);
    CHECK(d.tokens == NULL && d.mask == NULL);
  }
  /* a header shorter than 1024 bytes */
  FILE *fp = fopen(mask_path, "wb");
  CHECK(fp && fwrite("abc", 1, 3, fp) == 3 && fclose(fp) == 0);
  data_file d;
  lt_error err = {{0}};
  CHECK(data_open(&d, tmp_file("count.bin"), 64, &err) == -1);
  CHECK_MSG(strstr(err.msg, "file is 3 bytes, shorter than the 1024-byte header"), "got '%s'",
            err.msg);
  /* data_write_mask refuses what data_open would */
  CHECK(data_write_mask(mask_path, mixed, 64, &err) == -1);
  CHECK_MSG(strstr(err.msg, "value 2 at position 17"), "got '%s'", err.msg);
  remove(mask_path);
}

/* data/tinyshakespeare.bin must hold exactly the bytes of the .txt beside it
 * (both are committed; scripts/make-data.py makes one from the other). */
static void test_bundled_corpus(void) {
  FILE *fp = fopen(src_path("data/tinyshakespeare.txt"), "rb");
  CHECK_MSG(fp != NULL, "cannot open %s", src_path("data/tinyshakespeare.txt"));
  if (!fp) return;
  static unsigned char text[200000];
  size_t n = fread(text, 1, sizeof text, fp);
  fclose(fp);
  data_file d;
  lt_error err = {{0}};
  CHECK_MSG(data_open(&d, src_path("data/tinyshakespeare.bin"), 256, &err) == 0,
            "%s", err.msg);
  CHECK(n > 90000 && d.n_tokens == (int64_t)n);
  int64_t same = 0;
  for (int64_t i = 0; i < d.n_tokens && i < (int64_t)n; i++)
    same += d.tokens[i] == text[i];
  CHECK(same == (int64_t)n);
  data_close(&d);
}

int main(void) {
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lisa-data-XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_round_trip);
  RUN(test_bad_files);
  RUN(test_mask_batches);
  RUN(test_mask_errors);
  RUN(test_vocab);
  RUN(test_batch);
  RUN(test_window_range);
  RUN(test_too_short);
  RUN(test_write_failure);
  RUN(test_bundled_corpus);
  const char *files[] = {"rt.bin", "bad.bin", "vocab.bin", "count.bin"};
  for (int i = 0; i < 4; i++) unlink(tmp_file(files[i]));
  CHECK_MSG(rmdir(tmp_dir) == 0, "stray files left in %s", tmp_dir);
  return check_exit();
}
