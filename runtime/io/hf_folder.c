#include "hf_folder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_file.h"

/* What AutoConfig, AutoTokenizer and GenerationConfig read. */
static const char *const side_files[] = {
    "config.json",          "generation_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model",      "vocab.json",             "merges.txt",
    "chat_template.jinja",  NULL};

static int same_folder(const char *a, const char *b) {
  struct stat sa, sb;
  return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

/* src -> dst in 1 MiB pieces; dst replaced only once complete. */
static int copy_file(const char *src, const char *dst, lt_error *err) {
  FILE *in = fopen(src, "rb");
  if (!in) return lt_fail(err, "%s: cannot open: %s", src, strerror(errno));
  atomic_file out;
  if (atomic_file_open(&out, dst, err)) return fclose(in), -1;
  enum { PIECE = 1 << 20 };
  char *buf = malloc(PIECE);
  int failed = !buf;
  size_t n;
  while (!failed && (n = fread(buf, 1, PIECE, in)) > 0) failed = fwrite(buf, 1, n, out.fp) != n;
  int read_failed = ferror(in);
  fclose(in);
  free(buf);
  if (read_failed) {
    atomic_file_commit(&out, 1, err);
    return lt_fail(err, "%s: cannot read", src);
  }
  return atomic_file_commit(&out, failed, err);
}

int hf_copy_side_files(const char *src, const char *dst, int *copied, lt_error *err) {
  if (copied) *copied = 0;
  if (same_folder(src, dst)) return 0;
  for (const char *const *name = side_files; *name; name++) {
    char from[1200], to[1200];
    struct stat st;
    if (atomic_file_join(from, sizeof from, src, *name, err) ||
        atomic_file_join(to, sizeof to, dst, *name, err))
      return -1;
    if (stat(from, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (copy_file(from, to, err)) return -1;
    if (copied) (*copied)++;
  }
  return atomic_file_sync_dir(dst, err);
}
