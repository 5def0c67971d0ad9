/* test_safetensors: write then read back bit-exact, F16/BF16/I64
 * conversions against hand-built bit patterns, one message per kind of bad
 * file, and st_write failures that must leave the old file alone.
 *
 * `test_safetensors --write PATH` only writes the known file (see
 * write_known) so test_foreign_reader.sh can check it with Python's
 * safetensors reader. */
#include <dirent.h>
#include <float.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "clock_ms.h"
#include "safetensors.h"

static char tmp_dir[64];

static const char *tmp_file(const char *name) {
  static char buf[4][512];
  static int next;
  char *out = buf[next++ % 4];
  snprintf(out, sizeof buf[0], "%s/%s", tmp_dir, name);
  return out;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (!fp || fwrite(data, 1, n, fp) != n || fclose(fp) != 0) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

/* Reads up to cap bytes of path into buf; returns the count or -1. */
static long read_bytes(const char *path, void *buf, size_t cap) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return -1;
  long n = (long)fread(buf, 1, cap, fp);
  fclose(fp);
  return n;
}

/* A file with the given JSON header (unpadded) and data section. */
static void write_raw_st(const char *path, const char *json, const void *data,
                         size_t n) {
  size_t len = strlen(json);
  uint8_t *buf = malloc(8 + len + n + 1);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)len >> (8 * i));
  memcpy(buf + 8, json, len);
  if (n) memcpy(buf + 8 + len, data, n);
  write_bytes(path, buf, 8 + len + n);
  free(buf);
}

static int count_temp_files(void) {
  DIR *dir = opendir(tmp_dir);
  int n = 0;
  for (struct dirent *e; dir && (e = readdir(dir));)
    n += strstr(e->d_name, ".tmp.") != NULL;
  if (dir) closedir(dir);
  return n;
}

static void remove_tmp_dir(void) {
  DIR *dir = opendir(tmp_dir);
  for (struct dirent *e; dir && (e = readdir(dir));) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    const char *p = tmp_file(e->d_name);
    if (unlink(p) != 0) rmdir(p);
  }
  if (dir) closedir(dir);
  rmdir(tmp_dir);
}

static uint32_t f32_bits(float v) {
  uint32_t b;
  memcpy(&b, &v, 4);
  return b;
}

/* ---- the known file (also read by test_foreign_reader.sh) ------------ */

/* Values the Python side recomputes: exact binary fractions, then edge
 * cases (negative zero, smallest subnormal, largest float, -FLT_MIN, 0.1f). */
static float known_wte[7 * 3];
static const float known_bias[5] = {-0.0f, 0x1p-149f, FLT_MAX, -FLT_MIN, 0.1f};
static const int32_t known_step = 123456789;
static const int32_t known_ids[6] = {INT32_MIN, -1, 0, 1, INT32_MAX, 42};
static const char *const known_meta[] = {"format", "pt", "note",
                                         "say \"hi\"\\n"};

static int write_known(const char *path, lt_error *err) {
  for (int i = 0; i < 21; i++) known_wte[i] = (float)(i * 37 % 101 - 50) / 16;
  const st_entry entries[] = {
      {"wte.weight", ST_F32, 2, {7, 3}, known_wte, NULL, NULL},
      {"h.0.ln_1.bias", ST_F32, 1, {5}, known_bias, NULL, NULL},
      {"step", ST_I32, 0, {0}, &known_step, NULL, NULL},
      {"ids", ST_I32, 3, {2, 1, 3}, known_ids, NULL, NULL},
      {"empty", ST_F32, 2, {0, 4}, NULL, NULL, NULL},
  };
  return st_write(path, entries, 5, known_meta, 2, err);
}

static void check_tensor(const st_file *f, const char *name, int dtype,
                         int ndim, const int64_t *shape) {
  const st_tensor *t = st_find(f, name);
  CHECK_MSG(t != NULL, "tensor %s missing", name);
  if (!t) return;
  CHECK(t->dtype == dtype);
  CHECK(strcmp(t->dtype_name, dtype == ST_F32 ? "F32" : "I32") == 0);
  CHECK(t->ndim == ndim);
  for (int i = 0; i < ndim; i++) CHECK(t->shape[i] == shape[i]);
}

static void test_round_trip(void) {
  const char *path = tmp_file("known.safetensors");
  lt_error err = {{0}};
  CHECK_MSG(write_known(path, &err) == 0, "%s", err.msg);
  st_file f;
  CHECK_MSG(st_open(&f, path, &err) == 0, "%s", err.msg);
  CHECK(f.n == 5);
  check_tensor(&f, "wte.weight", ST_F32, 2, (int64_t[]){7, 3});
  check_tensor(&f, "h.0.ln_1.bias", ST_F32, 1, (int64_t[]){5});
  check_tensor(&f, "step", ST_I32, 0, NULL);
  check_tensor(&f, "ids", ST_I32, 3, (int64_t[]){2, 1, 3});
  check_tensor(&f, "empty", ST_F32, 2, (int64_t[]){0, 4});
  float wte[21], bias[5];
  int32_t step = 0, ids[6];
  CHECK(st_read_f32(&f, st_find(&f, "wte.weight"), wte, &err) == 0);
  CHECK(st_read_f32(&f, st_find(&f, "h.0.ln_1.bias"), bias, &err) == 0);
  CHECK(st_read_i32(&f, st_find(&f, "step"), &step, &err) == 0);
  CHECK(st_read_i32(&f, st_find(&f, "ids"), ids, &err) == 0);
  CHECK(memcmp(wte, known_wte, sizeof wte) == 0);
  CHECK(memcmp(bias, known_bias, sizeof bias) == 0); /* -0.0 too */
  CHECK(step == known_step);
  CHECK(memcmp(ids, known_ids, sizeof ids) == 0);
  CHECK(st_numel(st_find(&f, "empty")) == 0);
  CHECK(st_numel(st_find(&f, "step")) == 1);
  CHECK(st_find(&f, "__metadata__") == NULL);
  CHECK(st_find(&f, "wte") == NULL);
  CHECK(st_metadata(&f, "format") && strcmp(st_metadata(&f, "format"), "pt") == 0);
  CHECK(st_metadata(&f, "note") && strcmp(st_metadata(&f, "note"), known_meta[3]) == 0);
  CHECK(st_metadata(&f, "absent") == NULL);
  /* tensors lie back to back in the given order */
  CHECK(f.tensors[0].begin == 0 && f.tensors[1].begin == 84);
  CHECK(f.tensors[4].end == f.data_len && f.data_len == 84 + 20 + 4 + 24);
  st_close(&f);
}

/* The header is padded with spaces so data starts 8-byte aligned, and its
 * keys come in the order given (metadata first). */
static void test_header_layout(void) {
  const char *path = tmp_file("known.safetensors");
  lt_error err = {{0}};
  CHECK(write_known(path, &err) == 0);
  static char buf[4096];
  long n = read_bytes(path, buf, sizeof buf - 1);
  CHECK(n > 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (uint8_t)buf[i];
  CHECK((8 + hlen) % 8 == 0);
  CHECK(8 + hlen + 132 == (uint64_t)n);
  buf[8 + hlen] = 0;
  const char *json = buf + 8;
  const char *close = strrchr(json, '}');
  CHECK(close && strspn(close + 1, " ") == strlen(close + 1) &&
        strlen(close + 1) < 8);
  const char *keys[] = {"\"__metadata__\"", "\"wte.weight\"",
                        "\"h.0.ln_1.bias\"", "\"step\"", "\"ids\"",
                        "\"empty\""};
  const char *prev = NULL;
  for (int i = 0; i < 6; i++) {
    const char *at = strstr(json, keys[i]);
    CHECK_MSG(at && (!prev || at > prev), "key %s out of order in %s",
              keys[i], json);
    prev = at;
  }
  CHECK(strstr(json, "\"note\":\"say \\\"hi\\\"\\\\n\"") != NULL);
  CHECK(strstr(json, "\"data_offsets\":[84,104]") != NULL);
}

/* ---- conversions ----------------------------------------------------- */

static const uint16_t f16_bits[] = {0x0000, 0x8000, 0x3c00, 0xc000, 0x3555,
                                    0x0001, 0x03ff, 0x8001, 0x0400, 0x7bff,
                                    0x7c00, 0xfc00, 0x7e00, 0xfe01};
static const uint16_t bf16_bits[] = {0x3f80, 0xc000, 0x8000, 0x0001,
                                     0x7f80, 0xff80, 0x7fc1, 0x4049};
static const int64_t i64_vals[] = {-5, 0, INT32_MAX, INT32_MIN};
static const int64_t i64_big[] = {1, (int64_t)INT32_MAX + 1};

static void write_conversions(const char *path) {
  uint8_t data[28 + 16 + 32 + 16];
  memcpy(data, f16_bits, 28);
  memcpy(data + 28, bf16_bits, 16);
  memcpy(data + 44, i64_vals, 32);
  memcpy(data + 76, i64_big, 16);
  write_raw_st(path,
               "{\"h\":{\"dtype\":\"F16\",\"shape\":[14],\"data_offsets\":[0,28]},"
               "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[28,44]},"
               "\"l\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[44,76]},"
               "\"big\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[76,92]}}",
               data, sizeof data);
}

static void test_f16(void) {
  const char *path = tmp_file("conv.safetensors");
  write_conversions(path);
  st_file f;
  lt_error err = {{0}};
  CHECK_MSG(st_open(&f, path, &err) == 0, "%s", err.msg);
  float out[14];
  CHECK(st_read_f32(&f, st_find(&f, "h"), out, &err) == 0);
  const float want[12] = {0.0f, -0.0f, 1.0f, -2.0f, 0.333251953125f,
                          0x1p-24f, 1023 * 0x1p-24f, -0x1p-24f, 0x1p-14f,
                          65504.0f, INFINITY, -INFINITY};
  for (int i = 0; i < 12; i++)
    CHECK_MSG(f32_bits(out[i]) == f32_bits(want[i]),
              "f16 0x%04x -> %g (bits %08x), want %g", f16_bits[i], out[i],
              f32_bits(out[i]), want[i]);
  CHECK(isnan(out[12]) && !signbit(out[12]));
  CHECK(isnan(out[13]) && signbit(out[13]));
  CHECK(f32_bits(out[13]) == 0xffc02000u); /* payload kept */
  st_close(&f);
}

static void test_bf16(void) {
  const char *path = tmp_file("conv.safetensors");
  write_conversions(path);
  st_file f;
  lt_error err = {{0}};
  CHECK_MSG(st_open(&f, path, &err) == 0, "%s", err.msg);
  float out[8];
  CHECK(st_read_f32(&f, st_find(&f, "b"), out, &err) == 0);
  const float want[6] = {1.0f, -2.0f, -0.0f, 0x1p-133f, INFINITY, -INFINITY};
  for (int i = 0; i < 6; i++)
    CHECK_MSG(f32_bits(out[i]) == f32_bits(want[i]), "bf16 0x%04x -> %g",
              bf16_bits[i], out[i]);
  CHECK(isnan(out[6]) && f32_bits(out[6]) == 0x7fc10000u);
  CHECK(out[7] == 3.140625f);
  st_close(&f);
}

static void test_i64(void) {
  const char *path = tmp_file("conv.safetensors");
  write_conversions(path);
  st_file f;
  lt_error err = {{0}};
  CHECK_MSG(st_open(&f, path, &err) == 0, "%s", err.msg);
  int32_t out[4];
  CHECK(st_read_i32(&f, st_find(&f, "l"), out, &err) == 0);
  for (int i = 0; i < 4; i++) CHECK(out[i] == i64_vals[i]);
  char want[512];
  snprintf(want, sizeof want, "%s: tensor 'big': value 2147483648 at index 1 "
           "does not fit in int32", path);
  CHECK(st_read_i32(&f, st_find(&f, "big"), out, &err) == -1);
  CHECK_MSG(strcmp(err.msg, want) == 0, "got: %s", err.msg);
  snprintf(want, sizeof want, "%s: tensor 'l': dtype I64 cannot be read as "
           "floats (F32, F16 or BF16)", path);
  CHECK(st_read_f32(&f, st_find(&f, "l"), (float *)out, &err) == -1);
  CHECK_MSG(strcmp(err.msg, want) == 0, "got: %s", err.msg);
  CHECK(st_read_i32(&f, st_find(&f, "h"), out, &err) == -1);
  CHECK(strstr(err.msg, "tensor 'h': dtype F16 cannot be read as integers"));
  st_close(&f);
}

/* ---- bad files ------------------------------------------------------- */

/* st_open on path must fail with a message holding the path and frag. */
static void expect_open_error(const char *path, const char *frag) {
  st_file f;
  lt_error err = {{0}};
  int rc = st_open(&f, path, &err);
  CHECK_MSG(rc == -1, "%s opened but should not", path);
  CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0 &&
                strstr(err.msg, frag) != NULL,
            "message '%s' lacks '%s'", err.msg, frag);
  CHECK(f.tensors == NULL && f.fd == -1 && f.n == 0);
}

static void test_truncated(void) {
  const char *path = tmp_file("cut.safetensors");
  CHECK(write_known(path, NULL) == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0);
  CHECK(truncate(path, st.st_size - 4) == 0);
  /* 'ids' is the last tensor with data: [108, 132) of 128 bytes now */
  expect_open_error(path, ": tensor 'ids': data_offsets [108, 132] beyond end "
                    "of file (data section has 128 bytes; truncated?)");
}

static void test_bad_headers(void) {
  const char *path = tmp_file("bad.safetensors");
  uint8_t hdr[10] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'}; /* 1000 */
  write_bytes(path, hdr, sizeof hdr);
  expect_open_error(path, ": header length 1000 is larger than the file "
                    "(10 bytes; truncated or not safetensors?)");
  write_bytes(path, "abc", 3);
  expect_open_error(path, ": file is 3 bytes, too short");
  write_raw_st(path, "{\"w\": {\"dtype\": \"F32\",", NULL, 0);
  expect_open_error(path, ": header is not valid JSON (near byte");
  write_raw_st(path, "{} x", NULL, 0);
  expect_open_error(path, ": header is not valid JSON (near byte 3 of 4)");
  write_raw_st(path, "[]", NULL, 0);
  expect_open_error(path, ": header is not a JSON object");
  expect_open_error(tmp_file("missing.safetensors"),
                    ": cannot open: No such file or directory");
}

static void test_bad_tensors(void) {
  const char *path = tmp_file("bad.safetensors");
  static const uint8_t data[16];
  write_raw_st(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],"
               "\"data_offsets\":[0,400]}}", data, 16);
  expect_open_error(path, ": tensor 'w': data_offsets [0, 400] beyond end of "
                    "file (data section has 16 bytes; truncated?)");
  write_raw_st(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
               "\"data_offsets\":[8,4]}}", data, 16);
  expect_open_error(path, ": tensor 'w': data_offsets [8, 4] end before begin");
  write_raw_st(path, "{\"ok\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":"
               "[0,2]},\"w\":{\"dtype\":\"F32\",\"shape\":[3],"
               "\"data_offsets\":[0,16]}}", data, 16);
  expect_open_error(path, ": tensor 'w': shape [3] of F32 needs 12 bytes but "
                    "data_offsets [0, 16] hold 16");
  write_raw_st(path, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4503599627370496,"
               "4],\"data_offsets\":[0,16]}}", data, 16);
  expect_open_error(path, ": tensor 'w': shape [4503599627370496, 4] of "
                    "BF16 needs more than 16 bytes");
  write_raw_st(path, "{\"w\":{\"shape\":[4],\"data_offsets\":[0,16]}}", data,
               16);
  expect_open_error(path, ": tensor 'w': missing or invalid \"dtype\"");
  write_raw_st(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],"
               "\"data_offsets\":[0,16]}}", data, 16);
  expect_open_error(path, ": tensor 'w': shape[0] is not a valid size");
  write_raw_st(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", data, 16);
  expect_open_error(path, ": tensor 'w': \"data_offsets\" must be [begin, end]");
  write_raw_st(path, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":"
               "[0,16]},\"w\":{\"dtype\":\"F32\",\"shape\":[4],"
               "\"data_offsets\":[0,16]}}", data, 16);
  expect_open_error(path, ": tensor 'w' appears twice in the header");
}

/* The tensors must tile the data section: no overlap, gap or stray bytes;
 * names are not empty and hold no NUL or control characters. */
static void test_layout_and_names(void) {
  const char *path = tmp_file("layout.safetensors");
  static const uint8_t data[16];
  write_raw_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 12);
  expect_open_error(path, ": tensors 'a' and 'b' overlap (data_offsets [0, 8] and [4, 12])");
  write_raw_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", data, 12);
  expect_open_error(path, ": 4 bytes at data offset 4 belong to no tensor (before 'b')");
  write_raw_st(path, "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               data, 8);
  expect_open_error(path, ": 4 bytes at data offset 0 belong to no tensor (before 'b')");
  write_raw_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
               data, 16);
  expect_open_error(path, ": 8 bytes after the last tensor belong to no tensor");
  /* empty tensors take no bytes, wherever they say they are */
  write_raw_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}", data, 8);
  st_file f;
  lt_error err = {{0}};
  CHECK_MSG(st_open(&f, path, &err) == 0, "empty tensor inside another: %s", err.msg);
  st_close(&f);
  write_raw_st(path, "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               data, 4);
  expect_open_error(path, ": header byte 3: a NUL character (\\u0000) in a string");
  write_raw_st(path, "{\"a\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               data, 4); /* an escaped backslash, then the text u0000: a fine name */
  CHECK_MSG(st_open(&f, path, &err) == 0 && st_find(&f, "a\\u0000"), "a\\u0000: %s", err.msg);
  st_close(&f);
  write_raw_st(path, "{\"a\\u0001\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               data, 4);
  expect_open_error(path, ": tensor name 'a\x01' holds control character 0x01");
  write_raw_st(path, "{\"\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", data, 4);
  expect_open_error(path, ": a tensor has an empty name");
}

/* 100,000 tensors: every one found, a duplicate among them caught (the
 * checks sort; pairwise they took a minute). Prints the time, asserts none. */
static void test_many_tensors(void) {
  enum { N = 100000 };
  const char *path = tmp_file("many.safetensors");
  size_t cap = (size_t)N * 96 + 16, k = 0; /* an entry is under 80 bytes */
  char *json = malloc(cap);
  uint8_t *data = calloc(N, 1);
  if (!json || !data) {
    CHECK_MSG(0, "out of memory");
    free(json), free(data);
    return;
  }
  for (int dup = 0; dup < 2; dup++) {
    k = 0;
    json[k++] = '{';
    for (int i = 0; i < N; i++)
      k += (size_t)snprintf(json + k, cap - k, "%s\"t%06d\":{\"dtype\":\"U8\",\"shape\":[1],"
                            "\"data_offsets\":[%d,%d]}", i ? "," : "",
                            dup && i == N - 1 ? 31 : (N - 1 - i) * 7 % N, i, i + 1);
    json[k++] = '}';
    json[k] = '\0';
    write_raw_st(path, json, data, N);
    st_file f;
    lt_error err = {{0}};
    double t0 = lt_now_ms();
    int rc = st_open(&f, path, &err);
    double ms = lt_now_ms() - t0;
    if (dup) {
      CHECK(rc == -1 && strstr(err.msg, "tensor 't000031' appears twice in the header"));
      continue;
    }
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) break;
    printf("  %d tensors parsed in %.0f ms\n", N, ms);
    CHECK(f.n == N);
    for (int i = 0; i < N; i += 997) {
      char name[16];
      snprintf(name, sizeof name, "t%06d", (N - 1 - i) * 7 % N);
      const st_tensor *t = st_find(&f, name);
      CHECK_MSG(t && t->begin == (uint64_t)i, "%s", name);
    }
    CHECK(st_find(&f, "t1000000") == NULL);
    st_close(&f);
  }
  free(json);
  free(data);
}

/* ---- failed writes --------------------------------------------------- */

/* st_write fails; the good file at path keeps its bytes; no temp file. */
static void expect_write_failure(const char *path, const st_entry *e,
                                 const char *frag) {
  static uint8_t before[4096], after[4096];
  long n_before = read_bytes(path, before, sizeof before);
  lt_error err = {{0}};
  CHECK(st_write(path, e, 1, NULL, 0, &err) == -1);
  CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0 &&
                strstr(err.msg, frag) != NULL,
            "message '%s' lacks '%s'", err.msg, frag);
  long n_after = read_bytes(path, after, sizeof after);
  CHECK(n_before == n_after && memcmp(before, after, (size_t)n_after) == 0);
  CHECK(count_temp_files() == 0);
}

static void test_failed_writes(void) {
  const char *path = tmp_file("good.safetensors");
  CHECK(write_known(path, NULL) == 0);
  static const float one = 1.0f;
  st_entry bad = {"x", ST_F16, 1, {1}, &one, NULL, NULL};
  expect_write_failure(path, &bad, ": tensor 'x': only F32, BF16 and I32 can be "
                       "written");

  /* A write that fails half way (file size limit) must not replace it. */
  static float big[16384];
  st_entry large = {"big", ST_F32, 1, {16384}, big, NULL, NULL};
  struct rlimit old;
  getrlimit(RLIMIT_FSIZE, &old);
  struct rlimit small = {4096, old.rlim_max};
  signal(SIGXFSZ, SIG_IGN);
  CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
  expect_write_failure(path, &large, ": write failed: File too large");
  setrlimit(RLIMIT_FSIZE, &old);

  /* rename() onto a directory fails after the temp file is complete */
  const char *sub = tmp_file("a_dir.safetensors");
  CHECK(mkdir(sub, 0755) == 0);
  expect_write_failure(sub, &large, ": rename from temporary file failed");

  lt_error err = {{0}};
  const char *nodir = tmp_file("no/such/dir/x.safetensors");
  CHECK(st_write(nodir, &large, 1, NULL, 0, &err) == -1);
  CHECK_MSG(strstr(err.msg, nodir) && strstr(err.msg, "cannot create "
            "temporary file"), "got: %s", err.msg);
}

/* ---- streamed writes and reads from the file ---------------------------- */

/* A filled entry: value i is i * 0.5 (exact), served in whatever pieces the
 * writer asks for; fails at byte fail_at (UINT64_MAX: never). */
typedef struct {
  uint64_t next, fail_at;
  int out_of_order;
} fill_state;

static int fill_halves(void *ctx, uint64_t at, void *buf, size_t bytes, lt_error *err) {
  fill_state *st = ctx;
  if (at != st->next) st->out_of_order = 1;
  st->next = at + bytes;
  if (at + bytes > st->fail_at) return lt_fail(err, "device lost at byte %llu", (unsigned long long)at);
  float *v = buf;
  for (size_t i = 0; i < bytes / 4; i++) v[i] = (float)(at / 4 + i) * 0.5f;
  return 0;
}

/* More than one of the writer's pieces (4 MiB), beside a plain entry; read
 * back whole; a fill that fails leaves the good file and no temporary. */
static void test_filled_entries(void) {
  enum { N = (5 << 20) / 4 + 3 };
  const char *path = tmp_file("filled.safetensors");
  fill_state st = {0, UINT64_MAX, 0};
  static const float small[3] = {1, 2, 3};
  st_entry e[2] = {{"small", ST_F32, 1, {3}, small, NULL, NULL},
                   {"big", ST_F32, 2, {N, 1}, NULL, fill_halves, &st}};
  lt_error err = {{0}};
  CHECK_MSG(st_write(path, e, 2, NULL, 0, &err) == 0, "%s", err.msg);
  CHECK(!st.out_of_order && st.next == (uint64_t)N * 4);
  st_file f;
  float *back = malloc((size_t)N * 4);
  CHECK_MSG(back && st_open(&f, path, &err) == 0, "%s", err.msg);
  if (!back) return;
  CHECK(st_read_f32(&f, st_find(&f, "big"), back, &err) == 0);
  int bad = 0;
  for (int i = 0; i < N; i++) bad += back[i] != (float)i * 0.5f;
  CHECK_MSG(bad == 0, "%d values differ", bad);
  st_close(&f);
  free(back);
  st = (fill_state){0, (uint64_t)4 << 20, 0}; /* the second piece fails */
  expect_write_failure(path, &e[1], ": device lost at byte 4194304");
}

/* The data stay in the file: a file cut short after st_open is an error at
 * the read, naming the tensor, not garbage. */
static void test_truncated_after_open(void) {
  const char *path = tmp_file("cut-later.safetensors");
  CHECK(write_known(path, NULL) == 0);
  st_file f;
  lt_error err = {{0}};
  CHECK_MSG(st_open(&f, path, &err) == 0, "%s", err.msg);
  struct stat sb;
  CHECK(stat(path, &sb) == 0 && truncate(path, sb.st_size - 40) == 0);
  float wte[21];
  int32_t ids[6];
  CHECK(st_read_f32(&f, st_find(&f, "wte.weight"), wte, &err) == 0); /* still whole */
  CHECK(st_read_i32(&f, st_find(&f, "ids"), ids, &err) == -1);
  CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "tensor 'ids'") &&
                strstr(err.msg, "ends early"), "got: %s", err.msg);
  st_close(&f);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--write") == 0) {
    lt_error err = {{0}};
    if (write_known(argv[2], &err) == 0) return 0;
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  snprintf(tmp_dir, sizeof tmp_dir, "/tmp/lisa-st-XXXXXX");
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(test_round_trip);
  RUN(test_header_layout);
  RUN(test_f16);
  RUN(test_bf16);
  RUN(test_i64);
  RUN(test_truncated);
  RUN(test_bad_headers);
  RUN(test_bad_tensors);
  RUN(test_layout_and_names);
  RUN(test_many_tensors);
  RUN(test_failed_writes);
  RUN(test_filled_entries);
  RUN(test_truncated_after_open);
  remove_tmp_dir();
  return check_exit();
}
