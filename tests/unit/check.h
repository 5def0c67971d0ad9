/* check.h: a minimal test harness. Each test binary runs its cases, prints
 * one line per failed check with file:line, and exits non-zero on failure
 * (77 tells meson the test was skipped). */
#ifndef LT_CHECK_H
#define LT_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,     \
              #cond);                                                      \
      check_failures++;                                                    \
    }                                                                      \
  } while (0)

#define CHECK_MSG(cond, ...)                                               \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__,     \
              #cond);                                                      \
      fprintf(stderr, __VA_ARGS__);                                        \
      fputc('\n', stderr);                                                 \
      check_failures++;                                                    \
    }                                                                      \
  } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                      \
  do {                                                                     \
    double a_ = (a), b_ = (b);                                             \
    if (!(fabs(a_ - b_) <= (atol) + (rtol) * fabs(b_))) {                  \
      fprintf(stderr, "%s:%d: %s = %.9g, expected %s = %.9g\n", __FILE__,  \
              __LINE__, #a, a_, #b, b_);                                   \
      check_failures++;                                                    \
    }                                                                      \
  } while (0)

#define RUN(test_fn)                                                       \
  do {                                                                     \
    int before_ = check_failures;                                          \
    test_fn();                                                             \
    printf("%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #test_fn); \
  } while (0)

static inline int check_exit(void) {
  if (check_failures) fprintf(stderr, "%d check(s) failed\n", check_failures);
  return check_failures ? 1 : 0;
}

/* Path of a file in the source tree; tests run with LISA_SRC set by meson. */
static inline const char *src_path(const char *rel) {
  static char buf[4][1024];
  static int next;
  const char *root = getenv("LISA_SRC");
  char *out = buf[next++ % 4];
  snprintf(out, sizeof buf[0], "%s/%s", root ? root : ".", rel);
  return out;
}

/* Writes models/gpt2-tiny.yaml with n_layer blocks to path, for tests that
 * need more middle blocks to sample from than the tiny model's two. */
/* The whole file as a NUL-terminated string (malloc'd), or NULL. */
static inline char *read_all(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = n >= 0 ? (char *)malloc((size_t)n + 1) : NULL;
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) free(s), s = NULL;
  if (s) s[n] = 0;
  fclose(f);
  return s;
}

static inline int write_tiny_gpt2(const char *path, int n_layer) {
  FILE *in = fopen(src_path("models/gpt2-tiny.yaml"), "r");
  FILE *out = fopen(path, "w");
  int found = 0;
  if (in && out) {
    char line[512];
    while (fgets(line, sizeof line, in)) {
      if (strstr(line, "n_layer: 2")) fprintf(out, "  n_layer: %d\n", n_layer), found = 1;
      else fputs(line, out);
    }
  }
  if (in) fclose(in);
  if (out && fclose(out) != 0) found = 0;
  return in && out && found ? 0 : -1;
}

#endif
