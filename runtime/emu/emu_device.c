/* emu_device.c: the CUDA emulator as a dev_provider: host-compiled paths,
 * host memory, GEMMs by emu_gemm. */
#include "emu_device.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "atomic_file.h"
#include "emu_gemm.h"
#include "hash64.h"

extern char **environ;

/* templates/emu/, embedded by codegen/gen/embed_files.c */
extern const struct { const char *name, *text; } emu_header_files[];

typedef int (*emu_launch_fn)(void (*)(void **), void **, unsigned, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned);

typedef struct {
  const char *cxx;
  char dir[1024];       /* the cache folder */
  char include[1200];   /* the emulator's headers in it (write_headers) */
  void *so;             /* the loaded program */
  emu_launch_fn launch;
  const char *(*error)(void);
  double *marks;        /* the timers: host clock at each mark, ms */
} emu_device;

/* h chained with a string, its terminator included (so "ab","c" != "a","bc"). */
static uint64_t hash_text(uint64_t h, const char *s) { return hash64_bytes(s, strlen(s) + 1, h); }

static const char *const cxx_flags[] = {"-std=c++17", "-O1", "-shared", "-fPIC", "-w",
                                        "-DLISA_EMU", "-x", "c++"};
#define N_FLAGS (sizeof cxx_flags / sizeof cxx_flags[0])

/* Runs argv with its output into log; 0 when it exits 0. */
static int run_quietly(char *const *argv, const char *log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), status = 0;
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The emulator's headers, once per version of them, in e->include
 * (dir/emu-<hash>/); done when the device opens. */
static int write_headers(emu_device *e, lt_error *err) {
  uint64_t h = 0;
  for (int i = 0; emu_header_files[i].name; i++)
    h = hash_text(hash_text(h, emu_header_files[i].name), emu_header_files[i].text);
  char sub[64], path[1300];
  snprintf(sub, sizeof sub, "emu-%016llx", (unsigned long long)h);
  if (atomic_file_join(e->include, sizeof e->include, e->dir, sub, err) ||
      atomic_file_make_dir(e->include, err))
    return -1;
  for (int i = 0; emu_header_files[i].name; i++)
    if (atomic_file_join(path, sizeof path, e->include, emu_header_files[i].name, err) ||
        (access(path, R_OK) != 0 && atomic_file_write_text(path, emu_header_files[i].text, err)))
      return -1;
  return 0;
}

/* The compiler's first error line (a static_assert's message, say), else
 * the log's last line, for the error. */
static void log_error(const char *log, char *out, size_t cap) {
  char line[1024];
  out[0] = '\0';
  FILE *f = fopen(log, "rb");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = '\0';
    const char *error = strstr(line, "error"); /* from there: no path:line:col */
    if (line[0]) snprintf(out, cap, "%.*s", (int)cap - 1, error ? error : line);
    if (error) break;
  }
  fclose(f);
}

/* source -> dir/emu-prog-<key>.so (compiled unless cached), loaded. */
static int compile_and_load(emu_device *e, const char *source, lt_error *err) {
  char header[1300], cu[1300], so[1300], tmp[1400], log[1300];
  uint64_t key = hash_text(hash_text(hash_text(0, source), e->cxx), e->include);
  for (size_t i = 0; i < N_FLAGS; i++) key = hash_text(key, cxx_flags[i]);
  char base[64];
  snprintf(base, sizeof base, "emu-prog-%016llx", (unsigned long long)key);
  snprintf(header, sizeof header, "%s/cuda_emu.h", e->include);
  snprintf(cu, sizeof cu, "%s/%s.cu", e->dir, base);
  snprintf(so, sizeof so, "%s/%s.so", e->dir, base);
  snprintf(log, sizeof log, "%s/%s.log", e->dir, base);
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", so, (long)getpid());
  if (access(so, R_OK) != 0) {
    if (atomic_file_write_text(cu, source, err)) return -1;
    char *argv[N_FLAGS + 8];
    int n = 0;
    argv[n++] = (char *)e->cxx;
    for (size_t i = 0; i < N_FLAGS; i++) argv[n++] = (char *)cxx_flags[i];
    char *rest[] = {"-include", header, cu, "-o", tmp, NULL};
    memcpy(argv + n, rest, sizeof rest);
    if (run_quietly(argv, log) || rename(tmp, so) != 0) {
      char tail[600];
      log_error(log, tail, sizeof tail);
      unlink(tmp);
      return lt_fail(err, "emu: %s (%s could not compile %s; log %s)", tail, e->cxx, cu, log);
    }
  }
  e->so = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!e->so) return lt_fail(err, "emu: %s", dlerror());
  *(void **)&e->launch = dlsym(e->so, "lisa_emu_launch");
  *(void **)&e->error = dlsym(e->so, "lisa_emu_error");
  return e->launch && e->error ? 0 : lt_fail(err, "emu: %s has no emulator entry", so);
}

/* ---- the device's operations ---------------------------------------------- */

static int launch(void *ctx, const gen_path *p, int step, void **args, lt_error *err) {
  emu_device *e = ctx;
  const gen_step *st = &p->steps[step];
  char sym[128];
  snprintf(sym, sizeof sym, "%s_emu", st->kernel);
  void (*entry)(void **);
  *(void **)&entry = dlsym(e->so, sym);
  if (!entry) return lt_fail(err, "emu: no entry %s", sym);
  if (e->launch(entry, args, st->grid[0], st->grid[1], st->grid[2], st->block[0], st->block[1],
                st->block[2], st->smem))
    return lt_fail(err, "emu: %s: %s", st->kernel, e->error());
  return 0;
}

static int gemm(void *ctx, const gen_path *p, int step, const path_exec_gemm *g, lt_error *err) {
  (void)ctx, (void)step;
  return emu_gemm_run(p, g, err);
}

/* Memory starts as NaN (0xff bytes): a kernel reading what nothing wrote shows it. */
static int mem_alloc(void *ctx, size_t bytes, void **out, lt_error *err) {
  (void)ctx;
  size_t n = (bytes + 255) / 256 * 256;
  if (!(*out = aligned_alloc(256, n ? n : 256))) return lt_fail(err, "emu: out of memory for %zu bytes", bytes);
  memset(*out, 0xff, n);
  return 0;
}
static void mem_release(void *ctx, void *mem) { (void)ctx, free(mem); }
static int mem_copy(void *ctx, void *dst, const void *src, size_t bytes, lt_error *err) {
  (void)ctx, (void)err;
  memcpy(dst, src, bytes);
  return 0;
}
static int mem_zero(void *ctx, void *dst, size_t bytes, lt_error *err) {
  (void)ctx, (void)err;
  memset(dst, 0, bytes);
  return 0;
}

/* Timers: each launch runs before it returns, so the host clock at a mark
 * is when the stream got there. */
static int timers_create(void *ctx, int n, lt_error *err) {
  emu_device *e = ctx;
  free(e->marks);
  return (e->marks = calloc((size_t)n, sizeof *e->marks)) ? 0 : lt_fail(err, "out of memory");
}
static int timer_mark(void *ctx, int i, lt_error *err) {
  (void)err;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ((emu_device *)ctx)->marks[i] = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
  return 0;
}
static int timer_elapsed(void *ctx, int from, int to, float *ms, lt_error *err) {
  (void)err;
  const emu_device *e = ctx;
  *ms = (float)(e->marks[to] - e->marks[from]);
  return 0;
}
static void timers_destroy(void *ctx) {
  emu_device *e = ctx;
  free(e->marks);
  e->marks = NULL;
}

/* ---- the provider ------------------------------------------------------------ */

static int build(void *ctx, const ir_model *m, const gen_config *cfg, gen_program *prog,
                 unsigned *unfused, lt_error *err) {
  emu_device *e = ctx;
  *unfused = 0;
  if (gen_build(prog, m, cfg, err)) return -1;
  sbuf src = {0};
  int rc = gen_emit_program(prog, &src, err) ? -1 : compile_and_load(e, sb_str(&src), err);
  sb_free(&src);
  if (rc) gen_free(prog);
  return rc;
}

static dt_device iface(void *ctx) {
  /* no async copies or fences: every launch has finished when it returns */
  return (dt_device){.ctx = ctx, .exec = {ctx, launch, gemm}, .alloc = mem_alloc,
                     .release = mem_release, .upload = mem_copy, .download = mem_copy,
                     .zero = mem_zero,
                     .timers = {ctx, timers_create, timer_mark, timer_elapsed, timers_destroy}};
}

/* Data parallel: NCCL emulated over MPI. Every launch has run when it
 * returns, so there are no streams to order. */
static int collectives(void *ctx, dist_comm *world, nccl_lib *lib, ncomm_streams *streams,
                       lt_error *err) {
  (void)ctx, (void)err;
  nccl_lib_emulated(lib, world);
  *streams = (ncomm_streams){0};
  return 0;
}

static void unload(void *ctx) {
  emu_device *e = ctx;
  void (*release)(void) = NULL;
  if (e->so) *(void **)&release = dlsym(e->so, "lisa_emu_release");
  if (release) release(); /* dlclose may not unload it (cuda_emu.h, emu::release) */
  if (e->so) dlclose(e->so);
  e->so = NULL;
}

static void close_device(void *ctx) {
  emu_device *e = ctx;
  if (!e) return;
  unload(e);
  free(e->marks);
  free(e);
}

static const char *cxx_name(void) {
  return getenv("CXX") && *getenv("CXX") ? getenv("CXX") : "c++";
}

void emu_tune_key(char *out, size_t cap) { snprintf(out, cap, "CUDA emulator|%s", cxx_name()); }

int emu_provider_open(dev_provider *out, char *name, size_t cap, lt_error *err) {
  emu_device *e = calloc(1, sizeof *e);
  if (!e) return lt_fail(err, "out of memory");
  e->cxx = cxx_name();
  char *probe[] = {(char *)e->cxx, "--version", NULL};
  if (atomic_file_cache_dir(e->dir, sizeof e->dir, err) || write_headers(e, err))
    return close_device(e), -1;
  char log[1100];
  snprintf(log, sizeof log, "%s/emu-probe.log", e->dir);
  if (run_quietly(probe, log)) {
    close_device(e);
    return lt_fail(err, "no C++ compiler: '%s --version' failed (set CXX)", probe[0]);
  }
  snprintf(name, cap, "the CUDA emulator (%s)", e->cxx);
  *out = (dev_provider){.ctx = e, .build = build, .iface = iface, .unload = unload,
                        .close = close_device, .collectives = collectives, .sms = GEN_DEFAULT_SMS};
  emu_tune_key(out->tune_device, sizeof out->tune_device);
  snprintf(out->arch, sizeof out->arch, "sm_90"); /* what GEN_DEFAULT_SMS is: H100, H200 */
  return 0;
}
