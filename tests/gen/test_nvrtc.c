/* The NVRTC driver: CUDA C++ -> CUBIN (no GPU needed), the disk cache and its
 * damage checks, and compile errors that quote the failing source line. */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "nvrtc_driver.h"

static char tmp_dir[] = "/tmp/lisa_nvrtc_XXXXXX";
static char cache_dir[256];

/* bf16 loads, a barrier and a warp shuffle: needs -I to the toolkit's
 * headers and a real arch. */
static const char *kernel_src =
    "#include <cuda_bf16.h>\n"
    "extern \"C\" __global__ void row_sum(const __nv_bfloat16 *x, float *y) {\n"
    "  __shared__ float part[32];\n"
    "  float v = __bfloat162float(x[blockIdx.x * blockDim.x + threadIdx.x]);\n"
    "  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);\n"
    "  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;\n"
    "  __syncthreads();\n"
    "  if (threadIdx.x == 0) {\n"
    "    float s = 0.f;\n"
    "    for (unsigned w = 0; w < blockDim.x / 32; w++) s += part[w];\n"
    "    y[blockIdx.x] = s;\n"
    "  }\n"
    "}\n";

static nv_options opts(const char *arch) {
  nv_options o = {.cache_dir = cache_dir};
  snprintf(o.arch, sizeof o.arch, "%s", arch);
  return o;
}

static int compile(const char *name, const char *src, const char *arch, nv_result *r) {
  nv_options o = opts(arch);
  lt_error err = {{0}};
  int rc = nv_compile(name, src, &o, r, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  return rc;
}

static int same_bytes(const nv_result *a, const nv_result *b) {
  return a->size == b->size && memcmp(a->cubin, b->cubin, a->size) == 0;
}

/* The one cache file "<dir>/<name>-*.cubin"; -1 if there is not exactly one. */
static int find_cache_file(const char *dir, const char *name, char *out, size_t cap) {
  DIR *d = opendir(dir);
  int found = 0;
  size_t n = strlen(name);
  for (struct dirent *e; d && (e = readdir(d));)
    if (!strncmp(e->d_name, name, n) && e->d_name[n] == '-' && strstr(e->d_name, ".cubin"))
      found++, snprintf(out, cap, "%s/%s", dir, e->d_name);
  if (d) closedir(d);
  return found == 1 ? 0 : -1;
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void test_compile_and_cache(void) {
  const char *arch[2] = {"sm_80", "sm_90"};
  nv_result first[2], again;
  for (int i = 0; i < 2; i++) {
    if (compile("row_sum", kernel_src, arch[i], &first[i])) return;
    printf("row_sum %s: first compile %.1f ms, %zu bytes\n", arch[i], first[i].compile_ms,
           first[i].size);
    CHECK(first[i].cache_hit == 0 && first[i].size > 64);
    CHECK(memcmp(first[i].cubin, "\x7f" "ELF", 4) == 0);
    CHECK_MSG(strstr(first[i].log, "registers") && strstr(first[i].log, arch[i]),
              "ptxas report missing: %s", first[i].log);
    if (compile("row_sum", kernel_src, arch[i], &again)) continue;
    CHECK(again.cache_hit == 1 && same_bytes(&again, &first[i]));
    CHECK(strcmp(again.log, first[i].log) == 0);
    printf("row_sum %s: cache hit %.2f ms\n", arch[i], again.compile_ms);
    nv_result_free(&again);
  }
  CHECK(!same_bytes(&first[0], &first[1])); /* the arch is part of the key */
  CHECK(count_files(cache_dir) == 2);       /* no temporary files left */
  for (int i = 0; i < 2; i++) nv_result_free(&first[i]);
}

static void test_changed_source_misses(void) {
  char src[2048];
  snprintf(src, sizeof src, "%s// changed\n", kernel_src);
  nv_result r;
  if (compile("row_sum", src, "sm_90", &r)) return;
  CHECK(r.cache_hit == 0);
  nv_result_free(&r);
  if (compile("row_sum", src, "sm_90", &r)) return;
  CHECK(r.cache_hit == 1);
  nv_result_free(&r);
}

/* Truncated, then one flipped byte of the CUBIN: both recompile to the same
 * bytes, and the rewritten file hits again. */
static void damage_and_recompile(const char *name, const char *dir, int truncate_file) {
  char path[512];
  nv_result good, r;
  if (compile(name, kernel_src, "sm_90", &good)) return;
  FILE *fp = find_cache_file(dir, name, path, sizeof path) ? NULL : fopen(path, "r+b");
  CHECK(fp != NULL);
  if (!fp) {
    nv_result_free(&good);
    return;
  }
  if (truncate_file) CHECK(ftruncate(fileno(fp), 40 + good.size / 2) == 0);
  else CHECK(fseek(fp, 40 + good.size / 2, SEEK_SET) == 0 && fputc('#', fp) != EOF);
  fclose(fp);
  if (compile(name, kernel_src, "sm_90", &r) == 0) {
    CHECK(r.cache_hit == 0 && same_bytes(&r, &good));
    nv_result_free(&r);
  }
  if (compile(name, kernel_src, "sm_90", &r) == 0) {
    CHECK(r.cache_hit == 1 && same_bytes(&r, &good));
    nv_result_free(&r);
  }
  nv_result_free(&good);
}

static void test_damaged_cache_recompiles(void) {
  damage_and_recompile("row_sum_trunc", cache_dir, 1);
  damage_and_recompile("row_sum_flip", cache_dir, 0);
}

static void test_syntax_error_quotes_line(void) {
  const char *src =
      "extern \"C\" __global__ void bad(float *y) {\n"
      "  y[0] = undefined_name;\n"
      "  y[1] = 2.0f;\n"
      "  y[2] = 3.0f\n"
      "}\n";
  nv_options o = opts("sm_90");
  nv_result r;
  lt_error err = {{0}};
  CHECK(nv_compile("bad_kernel", src, &o, &r, &err) == -1 && r.cubin == NULL);
  CHECK_MSG(!strcmp(err.msg,
                    "kernel 'bad_kernel' (sm_90): NVRTC compile failed:\n"
                    "bad_kernel.cu:2: error: identifier \"undefined_name\" is undefined\n"
                    "     2 |   y[0] = undefined_name;\n"
                    "bad_kernel.cu:5: error: expected a \";\"\n"
                    "     5 | }"),
            "%s", err.msg);
  CHECK(strstr(r.log, "bad_kernel.cu(2): error") != NULL);
  char path[512];
  CHECK(find_cache_file(cache_dir, "bad_kernel", path, sizeof path) == -1);
}

/* A batch compiles every job on its own: the bad one fails alone, with
 * its own message, and the good ones give CUBINs. */
static void test_batch(void) {
  char changed[4096];
  snprintf(changed, sizeof changed, "%s// batch\n", kernel_src);
  nv_job jobs[3] = {{.name = "batch_a", .source = kernel_src},
                    {.name = "batch_bad", .source = "extern \"C\" __global__ void k() { x; }\n"},
                    {.name = "batch_b", .source = changed}};
  nv_options o = opts("sm_90");
  int threads = 0;
  CHECK(nv_compile_batch(jobs, 3, &o, &threads) == 1 && threads >= 1);
  CHECK(jobs[0].rc == 0 && jobs[0].result.cubin && jobs[0].result.size > 0);
  CHECK(jobs[2].rc == 0 && jobs[2].result.cubin && jobs[2].result.size > 0);
  CHECK_MSG(jobs[1].rc == -1 && strstr(jobs[1].err.msg, "batch_bad"), "%s", jobs[1].err.msg);
  for (int i = 0; i < 3; i++) nv_result_free(&jobs[i].result);
}

static void test_bad_arguments(void) {
  nv_options o = opts("compute_90");
  nv_result r;
  lt_error err = {{0}};
  CHECK(nv_compile("row_sum", kernel_src, &o, &r, &err) == -1);
  CHECK_MSG(!strcmp(err.msg, "kernel 'row_sum': arch 'compute_90' is not a real GPU arch like "
                             "sm_90"), "%s", err.msg);
  o = opts("sm_90");
  CHECK(nv_compile("../row_sum", kernel_src, &o, &r, &err) == -1);
  CHECK_MSG(!strcmp(err.msg, "kernel '../row_sum': name must be 1-64 letters, digits, '_' or "
                             "'-'"), "%s", err.msg);
}

/* cache_dir NULL: $XDG_CACHE_HOME/lisa, folders created as needed. */
static void test_default_cache_dir(void) {
  char xdg[300], lisa_dir[320], path[512];
  snprintf(xdg, sizeof xdg, "%s/xdg", tmp_dir);
  snprintf(lisa_dir, sizeof lisa_dir, "%s/lisa", xdg);
  setenv("XDG_CACHE_HOME", xdg, 1);
  nv_options o = {.arch = "sm_90"};
  nv_result r;
  lt_error err = {{0}};
  CHECK_MSG(nv_compile("row_sum", kernel_src, &o, &r, &err) == 0, "%s", err.msg);
  CHECK(r.cache_hit == 0); /* a new folder: nothing cached there yet */
  nv_result_free(&r);
  CHECK(find_cache_file(lisa_dir, "row_sum", path, sizeof path) == 0);
}

static void test_version(void) {
  int major = 0, minor = -1;
  lt_error err = {{0}};
  CHECK(nv_version(&major, &minor, &err) == 0 && major >= 11 && minor >= 0);
}

static int remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (!d) return unlink(path);
  char child[512];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(child, sizeof child, "%s/%s", path, e->d_name);
    remove_tree(child);
  }
  closedir(d);
  return rmdir(path);
}

/* ptxas's per-kernel lines, as NVRTC 13 writes them, including a spill. */
static void test_parse_stats(void) {
  const char *log =
      "k.cu(40): warning #177-D: variable \"x\" was declared but never referenced\n"
      "ptxas info    : 0 bytes gmem\n"
      "ptxas info    : Compiling entry function 'fast' for 'sm_90'\n"
      "ptxas info    : Function properties for fast\n"
      "ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
      "ptxas info    : Used 30 registers, used 1 barriers, 160 bytes smem\n"
      "ptxas info    : Compiling entry function 'spilly' for 'sm_90'\n"
      "ptxas info    : Function properties for spilly\n"
      "ptxas         .     8 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 255 registers, used 0 barriers\n";
  nv_kernel_stats k[1];
  CHECK(nv_parse_stats(log, k, 1) == 2); /* counts past cap */
  nv_kernel_stats all[4];
  CHECK(nv_parse_stats(log, all, 4) == 2);
  CHECK(!strcmp(all[0].name, "fast") && all[0].registers == 30 && all[0].smem == 160);
  CHECK(all[0].spill_stores == 0 && all[0].spill_loads == 0 && all[0].stack == 0);
  CHECK(!strcmp(all[1].name, "spilly") && all[1].registers == 255 && all[1].smem == 0);
  CHECK(all[1].spill_stores == 8 && all[1].spill_loads == 12 && all[1].stack == 8);
}

int main(void) {
  RUN(test_parse_stats);
  if (!mkdtemp(tmp_dir)) {
    perror("mkdtemp");
    return 1;
  }
  snprintf(cache_dir, sizeof cache_dir, "%s/cache", tmp_dir);
  RUN(test_version);
  RUN(test_compile_and_cache);
  RUN(test_changed_source_misses);
  RUN(test_damaged_cache_recompiles);
  RUN(test_syntax_error_quotes_line);
  RUN(test_batch);
  RUN(test_bad_arguments);
  RUN(test_default_cache_dir);
  remove_tree(tmp_dir);
  return check_exit();
}
