/* data.c: llm.c token files (.bin): load, check, sample batches, write.
 *
 * The whole file is read into memory as uint32 ids; every id is checked
 * against the vocabulary once, at load, so a batch can never index past an
 * embedding table. Assumes a little-endian host, like llm.c. */
#include "data.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "rng.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "data.c assumes a little-endian host");

#define DATA_HEADER_INTS 256
#define DATA_HEADER_BYTES (DATA_HEADER_INTS * 4)

/* ---- reading --------------------------------------------------------- */

static int check_header(const data_file *d, const int32_t *h,
                        int64_t file_size, int *id_bytes, lt_error *err) {
  if (h[0] != DATA_MAGIC)
    return lt_fail(err, "%s: bad magic %" PRId32 " (expected %d; not an "
                   "llm.c token file?)", d->path, h[0], DATA_MAGIC);
  if (h[1] != 1 && h[1] != 2)
    return lt_fail(err, "%s: unknown version %" PRId32 " (expected 1: uint16 "
                   "ids or 2: uint32 ids)", d->path, h[1]);
  if (h[2] < 0)
    return lt_fail(err, "%s: negative token count %" PRId32, d->path, h[2]);
  *id_bytes = h[1] == 1 ? 2 : 4;
  int64_t held = (file_size - DATA_HEADER_BYTES) / *id_bytes;
  if (held != h[2] || (file_size - DATA_HEADER_BYTES) % *id_bytes)
    return lt_fail(err, "%s: header promises %" PRId32 " tokens but the file "
                   "holds %" PRId64 "%s", d->path, h[2], held,
                   held < h[2] ? " (truncated?)" : " and trailing bytes");
  return 0;
}

/* Widens n uint16 ids at the start of buf to uint32, in place. Going from
 * the last id down, each write lands at or past every id still unread. */
static void widen_u16(uint32_t *buf, int64_t n) {
  const uint8_t *bytes = (const uint8_t *)buf;
  for (int64_t i = n - 1; i >= 0; i--) {
    uint16_t v;
    memcpy(&v, bytes + 2 * i, 2);
    buf[i] = v;
  }
}

static int check_vocab(const data_file *d, int vocab_size, lt_error *err) {
  for (int64_t i = 0; i < d->n_tokens; i++)
    if (d->tokens[i] >= (uint32_t)vocab_size)
      return lt_fail(err, "%s: token id %" PRIu32 " at position %" PRId64
                     " is beyond the vocabulary size %d", d->path,
                     d->tokens[i], i, vocab_size);
  return 0;
}

static int read_tokens(data_file *d, FILE *fp, int64_t file_size,
                       int vocab_size, lt_error *err) {
  int32_t h[DATA_HEADER_INTS];
  int id_bytes = 0;
  if (file_size < DATA_HEADER_BYTES)
    return lt_fail(err, "%s: file is %" PRId64 " bytes, shorter than the "
                   "%d-byte header", d->path, file_size, DATA_HEADER_BYTES);
  if (fread(h, 1, sizeof h, fp) != sizeof h)
    return lt_fail(err, "%s: cannot read the header", d->path);
  if (check_header(d, h, file_size, &id_bytes, err) < 0) return -1;
  d->n_tokens = h[2];
  d->tokens = malloc((size_t)d->n_tokens * 4 + 4);
  if (!d->tokens)
    return lt_fail(err, "%s: out of memory for %" PRId64 " tokens", d->path,
                   d->n_tokens);
  size_t bytes = (size_t)d->n_tokens * (size_t)id_bytes;
  if (fread(d->tokens, 1, bytes, fp) != bytes)
    return lt_fail(err, "%s: cannot read the token ids", d->path);
  if (id_bytes == 2) widen_u16(d->tokens, d->n_tokens);
  return check_vocab(d, vocab_size, err);
}

/* ---- the loss mask ---------------------------------------------------- */

static int read_mask_body(data_file *d, const char *path, FILE *fp, int64_t file_size,
                          lt_error *err) {
  int32_t h[DATA_HEADER_INTS];
  if (file_size < DATA_HEADER_BYTES || fread(h, 1, sizeof h, fp) != sizeof h)
    return lt_fail(err, "%s: file is %" PRId64 " bytes, shorter than the %d-byte header", path,
                   file_size, DATA_HEADER_BYTES);
  if (h[0] != DATA_MASK_MAGIC)
    return lt_fail(err, "%s: bad magic %" PRId32 " (expected %d; not a loss mask?)", path, h[0],
                   DATA_MASK_MAGIC);
  if (h[1] != 1)
    return lt_fail(err, "%s: unknown version %" PRId32 " (expected 1)", path, h[1]);
  if (h[2] != d->n_tokens)
    return lt_fail(err, "%s: masks %" PRId32 " tokens but %s holds %" PRId64, path, h[2],
                   d->path, d->n_tokens);
  if (file_size - DATA_HEADER_BYTES != d->n_tokens)
    return lt_fail(err, "%s: header promises %" PRId64 " mask bytes but the file holds %" PRId64
                   "%s", path, d->n_tokens, file_size - DATA_HEADER_BYTES,
                   file_size - DATA_HEADER_BYTES < d->n_tokens ? " (truncated?)" : "");
  if (!(d->mask = malloc((size_t)d->n_tokens + 1)))
    return lt_fail(err, "%s: out of memory", path);
  if (fread(d->mask, 1, (size_t)d->n_tokens, fp) != (size_t)d->n_tokens)
    return lt_fail(err, "%s: cannot read the mask", path);
  d->n_counted = 0;
  for (int64_t i = 0; i < d->n_tokens; i++) {
    if (d->mask[i] > 1)
      return lt_fail(err, "%s: value %d at position %" PRId64 " (a mask holds 0 or 1)", path,
                     d->mask[i], i);
    d->n_counted += d->mask[i];
  }
  if (d->n_counted == 0) return lt_fail(err, "%s: no token counts in the loss", path);
  return 0;
}

/* path.mask when it exists; without one every token counts. */
static int read_mask(data_file *d, lt_error *err) {
  char path[sizeof d->path + 8];
  snprintf(path, sizeof path, "%s.mask", d->path);
  d->n_counted = d->n_tokens;
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    if (errno == ENOENT) return 0;
    return lt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  }
  struct stat st;
  int rc = fstat(fileno(fp), &st) != 0
               ? lt_fail(err, "%s: cannot stat: %s", path, strerror(errno))
               : read_mask_body(d, path, fp, (int64_t)st.st_size, err);
  fclose(fp);
  return rc;
}

int data_open(data_file *d, const char *path, int vocab_size, lt_error *err) {
  memset(d, 0, sizeof *d);
  if (strlen(path) >= sizeof d->path)
    return lt_fail(err, "%s: path too long", path);
  strcpy(d->path, path);
  if (vocab_size <= 0)
    return lt_fail(err, "%s: vocabulary size %d must be positive", path,
                   vocab_size);
  FILE *fp = fopen(path, "rb");
  if (!fp) return lt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  int rc;
  if (fstat(fileno(fp), &st) != 0)
    rc = lt_fail(err, "%s: cannot stat: %s", path, strerror(errno));
  else
    rc = read_tokens(d, fp, (int64_t)st.st_size, vocab_size, err);
  fclose(fp);
  if (rc == 0) rc = read_mask(d, err);
  if (rc < 0) data_close(d);
  return rc;
}

void data_close(data_file *d) {
  free(d->tokens);
  free(d->mask);
  d->tokens = NULL;
  d->mask = NULL;
  d->n_tokens = d->n_counted = 0;
}

/* ---- batches --------------------------------------------------------- */

/* T inputs from `start`, and the T targets after them (masked ones ignored). */
static void copy_window(const data_file *d, int64_t start, int T, int32_t *inputs,
                        int32_t *targets) {
  const uint32_t *w = d->tokens + start;
  const uint8_t *m = d->mask ? d->mask + start + 1 : NULL;
  for (int t = 0; t < T; t++) {
    inputs[t] = (int32_t)w[t];
    targets[t] = m && !m[t] ? DATA_IGNORE : (int32_t)w[t + 1];
  }
}

/* Window b of batch `step`: start + T is the last target, so start < n_tokens - T. */
static int64_t window_start(const data_file *d, uint64_t seed, int64_t step, int b, int T) {
  rng_state r;
  rng_seed_stream(&r, seed, (uint64_t)step, (uint64_t)b);
  return (int64_t)rng_below(&r, (uint64_t)(d->n_tokens - T));
}

int data_batch(const data_file *d, uint64_t seed, int64_t step, int B, int T,
               int32_t *inputs, int32_t *targets, lt_error *err) {
  if (B <= 0 || T <= 0)
    return lt_fail(err, "%s: batch %d x %d: both must be positive", d->path,
                   B, T);
  if (d->n_tokens < (int64_t)T + 1)
    return lt_fail(err, "%s: holds %" PRId64 " tokens; one window of "
                   "sequence length %d needs %" PRId64, d->path, d->n_tokens,
                   T, (int64_t)T + 1);
  for (int b = 0; b < B; b++)
    copy_window(d, window_start(d, seed, step, b, T), T, inputs + (int64_t)b * T,
                targets + (int64_t)b * T);
  return 0;
}

int64_t data_batch_counted(const data_file *d, uint64_t seed, int64_t step, int B, int T) {
  if (!d->mask) return (int64_t)B * T;
  int64_t c = 0;
  for (int b = 0; b < B && d->n_tokens > T; b++)
    for (int64_t i = window_start(d, seed, step, b, T) + 1, e = i + T; i < e; i++) c += d->mask[i];
  return c;
}

int data_batch_sequential(const data_file *d, int64_t index, int B, int T, int32_t *inputs,
                          int32_t *targets, lt_error *err) {
  const int64_t w = (int64_t)T + 1;
  if (B <= 0 || T <= 0 || index < 0 || (index + 1) * B * w > d->n_tokens)
    return lt_fail(err, "%s: batch %" PRId64 " of %d windows of %" PRId64 " tokens is beyond its %"
                   PRId64 " tokens", d->path, index, B, w, d->n_tokens);
  for (int b = 0; b < B; b++)
    copy_window(d, (index * B + b) * w, T, inputs + (int64_t)b * T, targets + (int64_t)b * T);
  return 0;
}

int64_t data_sweep_batches(const data_file *d, int B, int T, int64_t max, lt_error *err) {
  int64_t batches = B > 0 && T > 0 ? d->n_tokens / ((int64_t)T + 1) / B : 0;
  if (batches == 0)
    return lt_fail(err, "%s: %" PRId64 " tokens, fewer than one batch of %d windows of %d",
                   d->path, d->n_tokens, B, T + 1);
  return max > 0 && batches > max ? max : batches;
}

int64_t data_count_targets(const int32_t *targets, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; i++) c += targets[i] != DATA_IGNORE;
  return c;
}

/* ---- writing --------------------------------------------------------- */

static int write_ids(FILE *fp, const uint32_t *tokens, int64_t n,
                     int version) {
  if (version == 2)
    return fwrite(tokens, 4, (size_t)n, fp) == (size_t)n ? 0 : -1;
  uint16_t chunk[4096];
  for (int64_t i = 0; i < n; i += 4096) {
    size_t m = (size_t)(n - i < 4096 ? n - i : 4096);
    for (size_t k = 0; k < m; k++) chunk[k] = (uint16_t)tokens[i + (int64_t)k];
    if (fwrite(chunk, 2, m, fp) != m) return -1;
  }
  return 0;
}

static int write_file(FILE *fp, const uint32_t *tokens, int64_t n) {
  int version = 1;
  for (int64_t i = 0; i < n && version == 1; i++)
    if (tokens[i] > UINT16_MAX) version = 2;
  int32_t h[DATA_HEADER_INTS] = {DATA_MAGIC, version, (int32_t)n};
  if (fwrite(h, 1, sizeof h, fp) != sizeof h) return -1;
  return write_ids(fp, tokens, n, version);
}

static int write_mask_file(FILE *fp, const uint8_t *mask, int64_t n) {
  int32_t h[DATA_HEADER_INTS] = {DATA_MASK_MAGIC, 1, (int32_t)n};
  return fwrite(h, 1, sizeof h, fp) == sizeof h && fwrite(mask, 1, (size_t)n, fp) == (size_t)n
             ? 0 : -1;
}

int data_write_mask(const char *path, const uint8_t *mask, int64_t n, lt_error *err) {
  if (n < 0 || n > INT32_MAX)
    return lt_fail(err, "%s: %" PRId64 " tokens (the header holds 0 to %d)", path, n, INT32_MAX);
  for (int64_t i = 0; i < n; i++)
    if (mask[i] > 1)
      return lt_fail(err, "%s: value %d at position %" PRId64 " (a mask holds 0 or 1)", path,
                     mask[i], i);
  atomic_file f;
  if (atomic_file_open(&f, path, err)) return -1;
  errno = 0;
  return atomic_file_commit(&f, write_mask_file(f.fp, mask, n) != 0, err);
}

/* Atomic: on any failure path is left as it was (atomic_file.h). */
int data_write(const char *path, const uint32_t *tokens, int64_t n,
               lt_error *err) {
  if (n < 0 || n > INT32_MAX)
    return lt_fail(err, "%s: %" PRId64 " tokens (the header holds 0 to %d)",
                   path, n, INT32_MAX);
  atomic_file f;
  if (atomic_file_open(&f, path, err)) return -1;
  errno = 0;
  return atomic_file_commit(&f, write_file(f.fp, tokens, n) != 0, err);
}
