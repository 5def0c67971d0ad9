#include "nvrtc_driver.h"

#include <errno.h>
#include <nvrtc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_file.h"
#include "clock_ms.h"

enum { NV_N_OPTS = 5 };

typedef struct {
  char arch[48];
  char include[1100];
  const char *argv[NV_N_OPTS];
} nv_flags;

/* Cache file: this header, the CUBIN, then the log (ptxas's register and
 * spill report survives a hit). The checksum covers both. */
typedef struct {
  char magic[8];
  uint64_t key, cubin_size, log_size, checksum;
} nv_cache_header;

static const char nv_magic[8] = "LISACUB1";

static uint64_t nv_fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static int nv_valid_name(const char *name) {
  if (!*name) return 0;
  for (const char *c = name; *c; c++)
    if (!(('a' <= *c && *c <= 'z') || ('A' <= *c && *c <= 'Z') || ('0' <= *c && *c <= '9') ||
          *c == '_' || *c == '-'))
      return 0;
  return 1;
}

/* "sm_" digits, optionally an 'a'/'f' suffix (sm_90a): compute_XX would give
 * PTX, not CUBIN. */
static int nv_valid_arch(const char *arch) {
  if (strncmp(arch, "sm_", 3) != 0) return 0;
  const char *c = arch + 3;
  if (*c < '0' || *c > '9') return 0;
  while ('0' <= *c && *c <= '9') c++;
  if (*c == 'a' || *c == 'f') c++;
  return *c == '\0';
}

static int nv_build_flags(nv_flags *f, const char *arch, lt_error *err) {
  const char *home = getenv("CUDA_HOME");
  if (!home || !*home) home = "/usr/local/cuda";
  snprintf(f->arch, sizeof f->arch, "--gpu-architecture=%s", arch);
  if ((size_t)snprintf(f->include, sizeof f->include, "-I%s/include", home) >= sizeof f->include)
    return lt_fail(err, "CUDA_HOME=%s: path too long", home);
  const char *argv[NV_N_OPTS] = {f->arch, "-std=c++17", "-default-device", f->include,
                                 "--ptxas-options=-v"};
  memcpy(f->argv, argv, sizeof argv);
  return 0;
}

static uint64_t nv_cache_key(const char *source, const nv_flags *f, int major, int minor) {
  uint64_t h = nv_fnv1a(0xcbf29ce484222325ull, nv_magic, sizeof nv_magic);
  h = nv_fnv1a(h, source, strlen(source) + 1);
  for (int i = 0; i < NV_N_OPTS; i++) h = nv_fnv1a(h, f->argv[i], strlen(f->argv[i]) + 1);
  int version[2] = {major, minor};
  return nv_fnv1a(h, version, sizeof version);
}

static int nv_cache_path(char *out, size_t cap, const char *name, uint64_t key,
                         const nv_options *o, lt_error *err) {
  char dir[1024], file[128];
  if (o->cache_dir) snprintf(dir, sizeof dir, "%s", o->cache_dir);
  else if (atomic_file_cache_dir(dir, sizeof dir, err)) return -1;
  if (atomic_file_make_dir(dir, err)) return -1;
  snprintf(file, sizeof file, "%s-%016llx.cubin", name, (unsigned long long)key);
  return atomic_file_join(out, cap, dir, file, err);
}

static uint64_t nv_checksum(const void *cubin, size_t n, const char *log, size_t log_n) {
  return nv_fnv1a(nv_fnv1a(0xcbf29ce484222325ull, cubin, n), log, log_n);
}

static int nv_is_elf(const void *cubin, size_t n) {
  return n >= 4 && memcmp(cubin, "\x7f" "ELF", 4) == 0;
}

/* Reads the header and checks it against the file's size before trusting
 * any length in it. 1: a valid header for `key`, 0: not. */
static int nv_read_header(FILE *fp, uint64_t key, nv_cache_header *h) {
  struct stat st;
  if (fstat(fileno(fp), &st) != 0 || fread(h, sizeof *h, 1, fp) != 1) return 0;
  if (memcmp(h->magic, nv_magic, sizeof nv_magic) != 0 || h->key != key) return 0;
  if (h->log_size >= sizeof ((nv_result *)0)->log || h->cubin_size < 4 ||
      h->cubin_size > (uint64_t)st.st_size)
    return 0;
  return (uint64_t)st.st_size == sizeof *h + h->cubin_size + h->log_size;
}

/* 1: a valid entry was read into out; 0: absent or damaged (recompile). */
static int nv_cache_read(const char *path, uint64_t key, nv_result *out) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return 0;
  nv_cache_header h;
  void *cubin = NULL;
  int ok = nv_read_header(fp, key, &h) && (cubin = malloc(h.cubin_size)) &&
           fread(cubin, 1, h.cubin_size, fp) == h.cubin_size &&
           fread(out->log, 1, h.log_size, fp) == h.log_size &&
           nv_checksum(cubin, h.cubin_size, out->log, h.log_size) == h.checksum &&
           nv_is_elf(cubin, h.cubin_size);
  fclose(fp);
  if (!ok) {
    free(cubin);
    out->log[0] = '\0';
    return 0;
  }
  out->log[h.log_size] = '\0';
  out->cubin = cubin, out->size = h.cubin_size, out->cache_hit = 1;
  return 1;
}

/* No folder sync: a cache entry lost in a crash is only recompiled. */
static int nv_cache_write(const char *path, uint64_t key, const nv_result *r, lt_error *err) {
  size_t log_n = strlen(r->log);
  nv_cache_header h = {.key = key, .cubin_size = r->size, .log_size = log_n,
                       .checksum = nv_checksum(r->cubin, r->size, r->log, log_n)};
  memcpy(h.magic, nv_magic, sizeof nv_magic);
  atomic_file f;
  if (atomic_file_open(&f, path, err)) return -1;
  errno = 0;
  int failed = fwrite(&h, sizeof h, 1, f.fp) != 1 ||
               fwrite(r->cubin, 1, r->size, f.fp) != r->size ||
               fwrite(r->log, 1, log_n, f.fp) != log_n;
  return atomic_file_commit(&f, failed, err);
}

/* Appends to a fixed buffer, truncating: messages are bounded. */
__attribute__((format(printf, 3, 4)))
static void nv_append(char *buf, size_t cap, const char *fmt, ...) {
  size_t used = strlen(buf);
  if (used + 1 >= cap) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + used, cap - used, fmt, ap);
  va_end(ap);
}

/* Line `n` (1-based) of source, without its newline; "" past the end. */
static void nv_source_line(const char *source, long n, char *out, size_t cap) {
  const char *p = source;
  for (long i = 1; i < n && p; i++) {
    p = strchr(p, '\n');
    if (p) p++;
  }
  size_t len = p ? strcspn(p, "\n") : 0;
  if (len >= cap) len = cap - 1;
  memcpy(out, p ? p : "", len);
  out[len] = '\0';
}

/* "prog.cu(12): error: what" -> "prog.cu:12: error: what" plus the quoted
 * source line. Returns 0 if the log line is not an error with a line. */
static int nv_quote_error(const char *line, size_t len, const char *source, char *msg,
                          size_t cap) {
  char text[512], src[256];
  if (len >= sizeof text) len = sizeof text - 1;
  memcpy(text, line, len);
  text[len] = '\0';
  char *open = strchr(text, '('), *end = NULL;
  if (!open) return 0;
  long n = strtol(open + 1, &end, 10);
  if (end == open + 1 || strncmp(end, "): ", 3) != 0 || !strstr(end, "error")) return 0;
  *open = '\0';
  nv_source_line(source, n, src, sizeof src);
  nv_append(msg, cap, "\n%s:%ld: %s\n%6ld | %s", text, n, end + 3, n, src);
  return 1;
}

static void nv_format_errors(const char *name, const char *arch, const char *source,
                             const char *log, lt_error *err) {
  char msg[sizeof err->msg] = "";
  snprintf(msg, sizeof msg, "kernel '%s' (%s): NVRTC compile failed:", name, arch);
  int quoted = 0;
  for (const char *p = log; *p;) {
    size_t len = strcspn(p, "\n");
    quoted += nv_quote_error(p, len, source, msg, sizeof msg);
    p += len + (p[len] == '\n');
  }
  if (!quoted) nv_append(msg, sizeof msg, "\n%s", log);
  lt_fail(err, "%s", msg);
}

static void nv_copy_log(nvrtcProgram prog, nv_result *out) {
  size_t n = 0;
  out->log[0] = '\0';
  if (nvrtcGetProgramLogSize(prog, &n) != NVRTC_SUCCESS || n <= 1) return;
  char *log = malloc(n);
  if (log && nvrtcGetProgramLog(prog, log) == NVRTC_SUCCESS)
    snprintf(out->log, sizeof out->log, "%s", log);
  free(log);
}

static int nv_fetch_cubin(nvrtcProgram prog, const char *name, nv_result *out, lt_error *err) {
  size_t n = 0;
  nvrtcResult rc = nvrtcGetCUBINSize(prog, &n);
  if (rc != NVRTC_SUCCESS || n == 0)
    return lt_fail(err, "kernel '%s': no CUBIN from NVRTC: %s", name, nvrtcGetErrorString(rc));
  out->cubin = malloc(n);
  if (!out->cubin) return lt_fail(err, "kernel '%s': out of memory for a %zu-byte CUBIN", name, n);
  out->size = n;
  rc = nvrtcGetCUBIN(prog, out->cubin);
  if (rc != NVRTC_SUCCESS || !nv_is_elf(out->cubin, n))
    return lt_fail(err, "kernel '%s': NVRTC returned no ELF CUBIN: %s", name,
                   nvrtcGetErrorString(rc));
  return 0;
}

static int nv_run_nvrtc(const char *name, const char *source, const nv_options *o,
                        const nv_flags *f, nv_result *out, lt_error *err) {
  char prog_name[128];
  snprintf(prog_name, sizeof prog_name, "%s.cu", name);
  nvrtcProgram prog;
  nvrtcResult rc = nvrtcCreateProgram(&prog, source, prog_name, 0, NULL, NULL);
  if (rc != NVRTC_SUCCESS)
    return lt_fail(err, "kernel '%s': nvrtcCreateProgram: %s", name, nvrtcGetErrorString(rc));
  rc = nvrtcCompileProgram(prog, NV_N_OPTS, f->argv);
  nv_copy_log(prog, out);
  int status = 0;
  if (rc == NVRTC_ERROR_COMPILATION) {
    nv_format_errors(name, o->arch, source, out->log, err);
    status = -1;
  } else if (rc != NVRTC_SUCCESS)
    status = lt_fail(err, "kernel '%s' (%s): nvrtcCompileProgram: %s\n%s", name, o->arch,
                     nvrtcGetErrorString(rc), out->log);
  else status = nv_fetch_cubin(prog, name, out, err);
  nvrtcDestroyProgram(&prog);
  return status;
}

int nv_compile(const char *name, const char *source, const nv_options *o, nv_result *out,
               lt_error *err) {
  memset(out, 0, sizeof *out);
  if (strlen(name) > 64 || !nv_valid_name(name))
    return lt_fail(err, "kernel '%s': name must be 1-64 letters, digits, '_' or '-'", name);
  if (!nv_valid_arch(o->arch))
    return lt_fail(err, "kernel '%s': arch '%s' is not a real GPU arch like sm_90", name, o->arch);
  nv_flags f;
  int major, minor;
  char path[1024];
  if (nv_build_flags(&f, o->arch, err) || nv_version(&major, &minor, err)) return -1;
  uint64_t key = nv_cache_key(source, &f, major, minor);
  if (nv_cache_path(path, sizeof path, name, key, o, err)) return -1;
  double t0 = lt_now_ms();
  if (nv_cache_read(path, key, out)) {
    out->compile_ms = lt_now_ms() - t0;
    return 0;
  }
  int rc = nv_run_nvrtc(name, source, o, &f, out, err);
  out->compile_ms = lt_now_ms() - t0;
  if (rc == 0) rc = nv_cache_write(path, key, out, err);
  if (rc) nv_result_free(out);
  return rc;
}

void nv_result_free(nv_result *r) {
  free(r->cubin);
  r->cubin = NULL;
  r->size = 0;
}

int nv_version(int *major, int *minor, lt_error *err) {
  nvrtcResult rc = nvrtcVersion(major, minor);
  return rc == NVRTC_SUCCESS ? 0 : lt_fail(err, "nvrtcVersion: %s", nvrtcGetErrorString(rc));
}

/* ptxas -v, per kernel:
 *   ptxas info    : Compiling entry function 'k' for 'sm_90'
 *   ptxas info    : Function properties for k
 *   ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
 *   ptxas info    : Used 30 registers, used 1 barriers, 160 bytes smem */
/* One line of a log into buf (NUL-terminated, cut at cap); the next line. */
static const char *nv_next_line(const char *p, char *buf, size_t cap) {
  size_t len = strcspn(p, "\n");
  snprintf(buf, cap, "%.*s", (int)(len < cap ? len : cap - 1), p);
  return p[len] ? p + len + 1 : p + len;
}

int nv_parse_stats(const char *log, nv_kernel_stats *out, int cap) {
  static const char entry[] = "Compiling entry function '";
  int n = 0;
  nv_kernel_stats *k = NULL;
  char line[512];
  for (const char *p = log; *p;) {
    p = nv_next_line(p, line, sizeof line);
    const char *at;
    if ((at = strstr(line, entry))) {
      k = n < cap ? &out[n] : NULL;
      n++;
      if (!k) continue;
      memset(k, 0, sizeof *k);
      at += sizeof entry - 1;
      snprintf(k->name, sizeof k->name, "%.*s", (int)strcspn(at, "'"), at);
    } else if (k && strstr(line, "bytes stack frame")) {
      sscanf(strchr(line, '.') + 1, "%d bytes stack frame, %d bytes spill stores, %d bytes spill loads",
             &k->stack, &k->spill_stores, &k->spill_loads);
    } else if (k && (at = strstr(line, "Used "))) {
      k->registers = atoi(at + 5);
      const char *sm = strstr(line, " bytes smem");
      if (sm) {
        while (sm > line && sm[-1] >= '0' && sm[-1] <= '9') sm--;
        k->smem = atoi(sm);
      }
    }
  }
  return n;
}
