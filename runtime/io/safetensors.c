/* safetensors.c: reader and writer for the safetensors format.
 *
 * The reader reads the header and checks every field against the file
 * size before any tensor is touched; tensors are read from the file when
 * asked for (pread), so an open shard holds no data in memory. The writer
 * builds the header with cJSON, pads it with spaces so the data starts
 * 8-byte aligned (as the format asks), and replaces the target only by
 * rename() of a complete, fsync'ed temporary file.
 *
 * Tensor data is copied with memcpy as little-endian bytes, so the host
 * must be little-endian (x86, ARM): checked at compile time below. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "bf16.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors.c assumes a little-endian host");

/* The format caps the JSON header at 100 MB; anything larger is corrupt. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

/* ---- dtypes ---------------------------------------------------------- */

static const struct {
  const char *name;
  int dtype;
  int size;
} st_dtypes[] = {
    {"F32", ST_F32, 4},   {"F16", ST_F16, 2},     {"BF16", ST_BF16, 2},
    {"I32", ST_I32, 4},   {"I64", ST_I64, 8},     {"F64", ST_OTHER, 8},
    {"I8", ST_OTHER, 1},  {"U8", ST_OTHER, 1},    {"BOOL", ST_OTHER, 1},
    {"I16", ST_OTHER, 2}, {"U16", ST_OTHER, 2},   {"U32", ST_OTHER, 4},
    {"U64", ST_OTHER, 8}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
};

/* Element size of a dtype name, 0 if the name is not one we know (such a
 * tensor still loads; only its size cannot be checked or converted). */
static int dtype_lookup(const char *name, int *dtype) {
  for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
    if (strcmp(name, st_dtypes[i].name) == 0) {
      *dtype = st_dtypes[i].dtype;
      return st_dtypes[i].size;
    }
  *dtype = ST_OTHER;
  return 0;
}

static int dtype_size(const st_tensor *t) {
  int dtype;
  return dtype_lookup(t->dtype_name, &dtype);
}

/* ---- reading: header ------------------------------------------------- */

static uint64_t load_u64_le(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* A JSON number that is a non-negative integer exactly representable in a
 * double (cJSON keeps numbers as doubles; 2^53 bytes is far beyond any file). */
static int json_uint(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return -1;
  double v = item->valuedouble;
  if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v)) return -1;
  *out = (uint64_t)v;
  return 0;
}

static int parse_shape(const char *path, st_tensor *t, const cJSON *shape,
                       lt_error *err) {
  if (!cJSON_IsArray(shape))
    return lt_fail(err, "%s: tensor '%s': missing or non-array \"shape\"",
                   path, t->name);
  int ndim = cJSON_GetArraySize(shape);
  if (ndim > 8)
    return lt_fail(err, "%s: tensor '%s': %d dimensions (at most 8)", path,
                   t->name, ndim);
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    uint64_t d;
    if (json_uint(cJSON_GetArrayItem(shape, i), &d) < 0)
      return lt_fail(err, "%s: tensor '%s': shape[%d] is not a valid size",
                     path, t->name, i);
    t->shape[i] = (int64_t)d;
  }
  return 0;
}

static int parse_offsets(const char *path, st_tensor *t, const cJSON *offs,
                         lt_error *err) {
  if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
      json_uint(cJSON_GetArrayItem(offs, 0), &t->begin) < 0 ||
      json_uint(cJSON_GetArrayItem(offs, 1), &t->end) < 0)
    return lt_fail(err,
                   "%s: tensor '%s': \"data_offsets\" must be [begin, end] "
                   "with non-negative integers", path, t->name);
  return 0;
}

/* Names are printable: no empty name, no control characters. */
static int check_name(const char *path, const char *name, lt_error *err) {
  if (!name[0]) return lt_fail(err, "%s: a tensor has an empty name", path);
  for (const unsigned char *c = (const unsigned char *)name; *c; c++)
    if (*c < 0x20 || *c == 0x7f)
      return lt_fail(err, "%s: tensor name '%s' holds control character 0x%02x", path, name, *c);
  return 0;
}

static int parse_tensor(const char *path, st_tensor *t, const cJSON *item,
                        lt_error *err) {
  if (check_name(path, item->string, err)) return -1;
  if (strlen(item->string) >= sizeof t->name)
    return lt_fail(err, "%s: tensor name '%.40s...' is longer than %zu bytes",
                   path, item->string, sizeof t->name - 1);
  strcpy(t->name, item->string);
  if (!cJSON_IsObject(item))
    return lt_fail(err, "%s: tensor '%s': entry is not a JSON object", path,
                   t->name);
  const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  if (!cJSON_IsString(dtype) || strlen(dtype->valuestring) >= sizeof t->dtype_name)
    return lt_fail(err, "%s: tensor '%s': missing or invalid \"dtype\"", path,
                   t->name);
  strcpy(t->dtype_name, dtype->valuestring);
  dtype_lookup(t->dtype_name, &t->dtype);
  if (parse_shape(path, t, cJSON_GetObjectItemCaseSensitive(item, "shape"),
                  err) < 0)
    return -1;
  return parse_offsets(
      path, t, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), err);
}

static void format_shape(const st_tensor *t, char *buf, size_t cap) {
  size_t len = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < t->ndim && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64,
                            i ? ", " : "", t->shape[i]);
  if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* Bytes the shape needs at size bytes an element, or -1 if more than
 * limit (checked before each multiply, so nothing overflows). */
static int tensor_nbytes(const st_tensor *t, uint64_t size, uint64_t limit,
                         uint64_t *out) {
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] == 0) {
      *out = 0;
      return 0;
    }
  uint64_t n = size;
  for (int i = 0; i < t->ndim; i++) {
    if (n > limit / (uint64_t)t->shape[i]) {
      *out = UINT64_MAX;
      return -1;
    }
    n *= (uint64_t)t->shape[i];
  }
  *out = n;
  return 0;
}

/* Offsets inside the data section and byte count matching the shape. */
static int check_extent(const char *path, const st_tensor *t,
                        uint64_t data_len, lt_error *err) {
  if (t->end < t->begin)
    return lt_fail(err, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                   "] end before begin", path, t->name, t->begin, t->end);
  if (t->end > data_len)
    return lt_fail(err, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                   "] beyond end of file (data section has %" PRIu64
                   " bytes; truncated?)", path, t->name, t->begin, t->end,
                   data_len);
  int size = dtype_size(t);
  uint64_t nbytes;
  if (size == 0) /* unknown dtype: only keep st_numel from overflowing */
    return tensor_nbytes(t, 1, UINT64_MAX >> 2, &nbytes) < 0
               ? lt_fail(err, "%s: tensor '%s': shape too large", path,
                         t->name)
               : 0;
  if (tensor_nbytes(t, (uint64_t)size, data_len, &nbytes) < 0 ||
      nbytes != t->end - t->begin) {
    char shape[128];
    format_shape(t, shape, sizeof shape);
    return lt_fail(err, "%s: tensor '%s': shape %s of %s needs %s%" PRIu64
                   " bytes but data_offsets [%" PRIu64 ", %" PRIu64
                   "] hold %" PRIu64, path, t->name, shape, t->dtype_name,
                   nbytes > data_len ? "more than " : "",
                   nbytes > data_len ? data_len : nbytes, t->begin, t->end,
                   t->end - t->begin);
  }
  return 0;
}

/* qsort's comparators see only the two elements: the array they index is
 * passed through this (one sort at a time, no threads here). */
static const st_tensor *sort_base;

static int by_name(const void *a, const void *b) {
  return strcmp(sort_base[*(const int *)a].name, sort_base[*(const int *)b].name);
}

static int by_offset(const void *a, const void *b) {
  const st_tensor *x = &sort_base[*(const int *)a], *y = &sort_base[*(const int *)b];
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* f->by_name: the tensors sorted by name (st_find's binary search); a name
 * twice is an error. O(n log n): a header of 100,000 tensors is common
 * enough in large checkpoints. */
static int index_names(st_file *f, lt_error *err) {
  f->by_name = malloc(((size_t)f->n + 1) * sizeof *f->by_name);
  if (!f->by_name) return lt_fail(err, "%s: out of memory", f->path);
  for (int i = 0; i < f->n; i++) f->by_name[i] = i;
  sort_base = f->tensors;
  qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, by_name);
  for (int i = 1; i < f->n; i++)
    if (!strcmp(f->tensors[f->by_name[i]].name, f->tensors[f->by_name[i - 1]].name))
      return lt_fail(err, "%s: tensor '%s' appears twice in the header", f->path,
                     f->tensors[f->by_name[i]].name);
  return 0;
}

/* The tensors' bytes tile the data section exactly, as every writer lays
 * them out: no two overlap (one write would change the other), and no byte
 * lies between or after them (data nobody reads hides things). Empty
 * tensors take no bytes and may sit anywhere. */
static int check_tiling(const st_file *f, lt_error *err) {
  int *order = malloc(((size_t)f->n + 1) * sizeof *order);
  if (!order) return lt_fail(err, "%s: out of memory", f->path);
  for (int i = 0; i < f->n; i++) order[i] = i;
  sort_base = f->tensors;
  qsort(order, (size_t)f->n, sizeof *order, by_offset);
  uint64_t at = 0;
  const st_tensor *prev = NULL;
  int rc = 0;
  for (int i = 0; i < f->n && rc == 0; i++) {
    const st_tensor *t = &f->tensors[order[i]];
    if (t->begin == t->end) continue;
    if (t->begin < at)
      rc = lt_fail(err, "%s: tensors '%s' and '%s' overlap (data_offsets [%" PRIu64 ", %" PRIu64
                   "] and [%" PRIu64 ", %" PRIu64 "])", f->path, prev->name, t->name,
                   prev->begin, prev->end, t->begin, t->end);
    else if (t->begin > at)
      rc = lt_fail(err, "%s: %" PRIu64 " bytes at data offset %" PRIu64 " belong to no tensor "
                   "(before '%s')", f->path, t->begin - at, at, t->name);
    at = t->end, prev = t;
  }
  if (rc == 0 && at != f->data_len)
    rc = lt_fail(err, "%s: %" PRIu64 " bytes after the last tensor belong to no tensor", f->path,
                 f->data_len - at);
  free(order);
  return rc;
}

/* A JSON \u0000 ends the C string cJSON hands over, so "a\u0000b" would pass
 * as "a": refuse it in the raw text (an escape is a backslash that is not
 * itself escaped). */
static int check_no_nul(const char *path, const char *json, size_t len, lt_error *err) {
  for (size_t i = 0; i + 6 <= len; i++) {
    if (json[i] != '\\') continue;
    if (json[i + 1] == 'u' && !strncmp(json + i + 2, "0000", 4))
      return lt_fail(err, "%s: header byte %zu: a NUL character (\\u0000) in a string", path, i);
    i++; /* skip the escaped character */
  }
  return 0;
}


/* Parses the header; only whitespace may follow the JSON object (the
 * writer pads with spaces). */
static cJSON *parse_json(const char *path, const char *json, size_t len,
                         lt_error *err) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (root && end)
    while (end < json + len && strchr(" \t\r\n", *end) && *end) end++;
  if (root && end == json + len) return root;
  size_t pos = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
  cJSON_Delete(root);
  lt_fail(err, "%s: header is not valid JSON (near byte %zu of %zu)", path,
          pos, len);
  return NULL;
}

static int parse_header(st_file *f, const char *json, size_t len,
                        lt_error *err) {
  if (check_no_nul(f->path, json, len, err)) return -1;
  cJSON *root = parse_json(f->path, json, len, err);
  if (!root) return -1;
  int rc = 0;
  if (!cJSON_IsObject(root)) {
    rc = lt_fail(err, "%s: header is not a JSON object", f->path);
    goto done;
  }
  f->tensors = calloc((size_t)cJSON_GetArraySize(root) + 1, sizeof *f->tensors);
  if (!f->tensors) {
    rc = lt_fail(err, "%s: out of memory for the tensor list", f->path);
    goto done;
  }
  for (const cJSON *item = root->child; item; item = item->next) {
    if (strcmp(item->string, "__metadata__") == 0) {
      cJSON_Delete(f->meta); /* a repeated key keeps the last one */
      f->meta = cJSON_Duplicate(item, 1);
      continue;
    }
    st_tensor *t = &f->tensors[f->n];
    if (parse_tensor(f->path, t, item, err) < 0 ||
        check_extent(f->path, t, f->data_len, err) < 0) {
      rc = -1;
      goto done;
    }
    f->n++;
  }
  rc = index_names(f, err) || check_tiling(f, err) ? -1 : 0;
done:
  cJSON_Delete(root);
  return rc;
}

/* ---- reading: the file ----------------------------------------------- */

static int read_exact(FILE *fp, void *buf, size_t n, const char *path,
                      const char *what, lt_error *err) {
  if (n && fread(buf, 1, n, fp) != n)
    return lt_fail(err, "%s: cannot read the %s: %s", path, what,
                   ferror(fp) ? strerror(errno) : "unexpected end of file");
  return 0;
}

/* Reads the length prefix and the header of fp; the data stay in the file
 * (read tensor by tensor with pread), so a shard costs no host memory. */
static int read_sections(st_file *f, FILE *fp, uint64_t file_size,
                         lt_error *err) {
  uint8_t prefix[8];
  if (file_size < 8)
    return lt_fail(err, "%s: file is %" PRIu64 " bytes, too short for the "
                   "8-byte header length", f->path, file_size);
  if (read_exact(fp, prefix, 8, f->path, "header length", err) < 0) return -1;
  uint64_t header_len = load_u64_le(prefix);
  if (header_len > file_size - 8 || header_len > ST_MAX_HEADER)
    return lt_fail(err, "%s: header length %" PRIu64 " is larger than the "
                   "file (%" PRIu64 " bytes; truncated or not safetensors?)",
                   f->path, header_len, file_size);
  char *json = malloc(header_len + 1);
  if (!json) return lt_fail(err, "%s: out of memory for the header", f->path);
  f->data_at = 8 + header_len;
  f->data_len = file_size - 8 - header_len;
  int rc = -1;
  if (read_exact(fp, json, header_len, f->path, "header", err) == 0)
    rc = parse_header(f, json, header_len, err);
  free(json);
  return rc;
}

int st_open(st_file *f, const char *path, lt_error *err) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  if (strlen(path) >= sizeof f->path)
    return lt_fail(err, "%s: path too long", path);
  strcpy(f->path, path);
  FILE *fp = fopen(path, "rb");
  if (!fp) return lt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  int rc;
  if (fstat(fileno(fp), &st) != 0)
    rc = lt_fail(err, "%s: cannot stat: %s", path, strerror(errno));
  else
    rc = read_sections(f, fp, (uint64_t)st.st_size, err);
  if (rc == 0 && (f->fd = dup(fileno(fp))) < 0)
    rc = lt_fail(err, "%s: cannot keep open: %s", path, strerror(errno));
  fclose(fp);
  if (rc < 0) st_close(f);
  return rc;
}

void st_close(st_file *f) {
  cJSON_Delete(f->meta);
  f->meta = NULL;
  free(f->tensors);
  free(f->by_name);
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  f->by_name = NULL;
  f->tensors = NULL;
  f->n = 0;
  f->data_len = 0;
}

const st_tensor *st_find(const st_file *f, const char *name) {
  int lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(f->tensors[f->by_name[mid]].name, name);
    if (c == 0) return &f->tensors[f->by_name[mid]];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->meta, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t st_numel(const st_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

/* ---- reading: conversions -------------------------------------------- */

static float bits_to_f32(uint32_t bits) {
  float v;
  memcpy(&v, &bits, 4);
  return v;
}

/* IEEE half to single. Subnormal halves are normal floats, so they are
 * computed exactly as man * 2^-24; inf and nan keep sign and payload. */
static float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));
  if (exp != 0) return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
  float v = ldexpf((float)man, -24);
  return sign ? -v : v;
}


/* bytes of t's data from byte `at` of it into buf. The file may have
 * shrunk since st_open checked it: a short read is an error, not garbage. */
static int read_tensor_bytes(const st_file *f, const st_tensor *t, uint64_t at, void *buf,
                             size_t bytes, lt_error *err) {
  uint8_t *dst = buf;
  uint64_t from = f->data_at + t->begin + at;
  while (bytes > 0) {
    ssize_t got = pread(f->fd, dst, bytes, (off_t)from);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0)
      return lt_fail(err, "%s: tensor '%s': cannot read its data: %s", f->path, t->name,
                     got < 0 ? strerror(errno) : "the file ends early (truncated since opened?)");
    dst += got, from += (uint64_t)got, bytes -= (size_t)got;
  }
  return 0;
}

/* Elements of a 2- or 8-byte tensor go through a small buffer, this many
 * at a time. */
#define ST_READ_CHUNK 4096

/* Elements [first, first + n) of t as fp32. */
static int read_f32_range(const st_file *f, const st_tensor *t, int64_t first, int64_t n,
                          float *out, lt_error *err) {
  if (first < 0 || n < 0 || first + n > st_numel(t))
    return lt_fail(err, "%s: tensor '%s': elements [%lld, %lld) of %lld asked for", f->path,
                   t->name, (long long)first, (long long)(first + n), (long long)st_numel(t));
  if (t->dtype == ST_F32) return read_tensor_bytes(f, t, (uint64_t)first * 4, out, (size_t)n * 4, err);
  if (t->dtype != ST_F16 && t->dtype != ST_BF16)
    return lt_fail(err, "%s: tensor '%s': dtype %s cannot be read as "
                   "floats (F32, F16 or BF16)", f->path, t->name,
                   t->dtype_name);
  uint16_t h[ST_READ_CHUNK];
  for (int64_t i0 = 0; i0 < n; i0 += ST_READ_CHUNK) {
    int64_t k = n - i0 < ST_READ_CHUNK ? n - i0 : ST_READ_CHUNK;
    if (read_tensor_bytes(f, t, (uint64_t)(first + i0) * 2, h, (size_t)k * 2, err)) return -1;
    for (int64_t i = 0; i < k; i++)
      out[i0 + i] = t->dtype == ST_F16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i]);
  }
  return 0;
}

int st_read_f32(const st_file *f, const st_tensor *t, float *out,
                lt_error *err) {
  return read_f32_range(f, t, 0, st_numel(t), out, err);
}

int st_read_f32_finite_range(const st_file *f, const st_tensor *t, int64_t first, int64_t n,
                             float *out, lt_error *err) {
  if (read_f32_range(f, t, first, n, out, err)) return -1;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(out[i]))
      return lt_fail(err, "%s: tensor '%s' holds %g at element %lld: weights and optimizer "
                     "state must be finite", f->path, t->name, out[i], (long long)(first + i));
  return 0;
}

int st_read_f32_finite(const st_file *f, const st_tensor *t, float *out, lt_error *err) {
  return st_read_f32_finite_range(f, t, 0, st_numel(t), out, err);
}

int st_read_i32(const st_file *f, const st_tensor *t, int32_t *out,
                lt_error *err) {
  int64_t n = st_numel(t);
  if (t->dtype == ST_I32) return read_tensor_bytes(f, t, 0, out, (size_t)n * 4, err);
  if (t->dtype != ST_I64)
    return lt_fail(err, "%s: tensor '%s': dtype %s cannot be read as "
                   "integers (I32 or I64)", f->path, t->name, t->dtype_name);
  int64_t v[ST_READ_CHUNK / 4];
  for (int64_t i0 = 0; i0 < n; i0 += ST_READ_CHUNK / 4) {
    int64_t k = n - i0 < ST_READ_CHUNK / 4 ? n - i0 : ST_READ_CHUNK / 4;
    if (read_tensor_bytes(f, t, (uint64_t)i0 * 8, v, (size_t)k * 8, err)) return -1;
    for (int64_t i = 0; i < k; i++) {
      if (v[i] < INT32_MIN || v[i] > INT32_MAX)
        return lt_fail(err, "%s: tensor '%s': value %" PRId64 " at index %"
                       PRId64 " does not fit in int32", f->path, t->name, v[i], i0 + i);
      out[i0 + i] = (int32_t)v[i];
    }
  }
  return 0;
}

/* ---- writing --------------------------------------------------------- */

static int check_entries(const char *path, const st_entry *es, int n,
                         lt_error *err) {
  for (int k = 0; k < n; k++) {
    const st_entry *e = &es[k];
    if (!e->name || !*e->name || strcmp(e->name, "__metadata__") == 0 ||
        strlen(e->name) >= sizeof ((st_tensor *)0)->name)
      return lt_fail(err, "%s: invalid tensor name '%s'", path,
                     e->name ? e->name : "(null)");
    for (int j = 0; j < k; j++)
      if (strcmp(es[j].name, e->name) == 0)
        return lt_fail(err, "%s: tensor '%s' given twice", path, e->name);
    if (e->dtype != ST_F32 && e->dtype != ST_I32 && e->dtype != ST_BF16)
      return lt_fail(err, "%s: tensor '%s': only F32, BF16 and I32 can be written",
                     path, e->name);
    if (e->ndim < 0 || e->ndim > 4)
      return lt_fail(err, "%s: tensor '%s': %d dimensions (0 to 4 allowed)",
                     path, e->name, e->ndim);
    for (int i = 0; i < e->ndim; i++)
      if (e->shape[i] < 0)
        return lt_fail(err, "%s: tensor '%s': negative shape[%d]", path,
                       e->name, i);
  }
  return 0;
}

static uint64_t entry_bytes(const st_entry *e) {
  uint64_t n = e->dtype == ST_BF16 ? 2 : 4; /* F32 and I32: 4 */
  for (int i = 0; i < e->ndim; i++) n *= (uint64_t)e->shape[i];
  return n;
}

/* Integers go in as raw text so they print exactly at any size. */
static cJSON *json_int_array(const int64_t *v, int n) {
  cJSON *arr = cJSON_CreateArray();
  for (int i = 0; arr && i < n; i++) {
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, v[i]);
    if (!cJSON_AddItemToArray(arr, cJSON_CreateRaw(num))) {
      cJSON_Delete(arr);
      return NULL;
    }
  }
  return arr;
}

/* Adds {"dtype", "shape", "data_offsets"} for e under root; 0 or -1 (OOM). */
static int json_add_entry(cJSON *root, const st_entry *e, uint64_t begin) {
  cJSON *obj = cJSON_CreateObject();
  if (!cJSON_AddItemToObject(root, e->name, obj)) {
    cJSON_Delete(obj);
    return -1;
  }
  int64_t offs[2] = {(int64_t)begin, (int64_t)(begin + entry_bytes(e))};
  cJSON *shape = json_int_array(e->shape, e->ndim);
  cJSON *offsets = json_int_array(offs, 2);
  const char *dtype = e->dtype == ST_F32 ? "F32" : e->dtype == ST_BF16 ? "BF16" : "I32";
  int ok = cJSON_AddStringToObject(obj, "dtype", dtype) &&
           cJSON_AddItemToObject(obj, "shape", shape) &&
           cJSON_AddItemToObject(obj, "data_offsets", offsets);
  if (!ok) {  /* whatever was not attached is still ours to free */
    if (!cJSON_GetObjectItemCaseSensitive(obj, "shape")) cJSON_Delete(shape);
    if (!cJSON_GetObjectItemCaseSensitive(obj, "data_offsets"))
      cJSON_Delete(offsets);
  }
  return ok ? 0 : -1;
}

static int json_add_metadata(cJSON *root, const char *const *kv, int n) {
  if (n <= 0) return 0;
  cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
  for (int i = 0; meta && i < n; i++)
    if (!cJSON_AddStringToObject(meta, kv[2 * i], kv[2 * i + 1])) return -1;
  return meta ? 0 : -1;
}

/* The header text, or NULL (out of memory). Caller frees with free(). */
static char *build_header(const st_entry *entries, int n,
                          const char *const *metadata, int n_meta) {
  cJSON *root = cJSON_CreateObject();
  int ok = root && json_add_metadata(root, metadata, n_meta) == 0;
  uint64_t offset = 0;
  for (int i = 0; ok && i < n; i++) {
    ok = json_add_entry(root, &entries[i], offset) == 0;
    offset += entry_bytes(&entries[i]);
  }
  char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return text;
}

/* e's bytes to fp: 0, -1 (a write failed: errno says why) or -2 (its fill
 * failed: err says why). */
static int write_entry(FILE *fp, const st_entry *e, uint8_t **chunk, lt_error *err) {
  uint64_t bytes = entry_bytes(e);
  if (!bytes) return 0;
  if (e->data || !e->fill) return fwrite(e->data, 1, (size_t)bytes, fp) == bytes ? 0 : -1;
  if (!*chunk && !(*chunk = malloc(ST_WRITE_CHUNK_BYTES))) {
    lt_fail(err, "out of memory");
    return -2;
  }
  for (uint64_t at = 0; at < bytes; at += ST_WRITE_CHUNK_BYTES) {
    size_t n = bytes - at < ST_WRITE_CHUNK_BYTES ? (size_t)(bytes - at) : ST_WRITE_CHUNK_BYTES;
    if (e->fill(e->fill_ctx, at, *chunk, n, err)) return -2;
    if (fwrite(*chunk, 1, n, fp) != n) return -1;
  }
  return 0;
}

static int write_body(FILE *fp, const char *header, const st_entry *entries,
                      int n, lt_error *err) {
  size_t len = strlen(header);
  size_t pad = (8 - (8 + len) % 8) % 8; /* data starts 8-byte aligned */
  uint8_t prefix[8], *chunk = NULL;
  for (int i = 0; i < 8; i++) prefix[i] = (uint8_t)((len + pad) >> (8 * i));
  if (fwrite(prefix, 1, 8, fp) != 8 || fwrite(header, 1, len, fp) != len ||
      fwrite("       ", 1, pad, fp) != pad)
    return -1;
  int rc = 0;
  for (int i = 0; rc == 0 && i < n; i++) rc = write_entry(fp, &entries[i], &chunk, err);
  free(chunk);
  return rc;
}

int st_write(const char *path, const st_entry *entries, int n,
             const char *const *metadata, int n_meta, lt_error *err) {
  if (check_entries(path, entries, n, err) < 0) return -1;
  for (int i = 0; i < n_meta; i++)
    if (!metadata[2 * i] || !metadata[2 * i + 1])
      return lt_fail(err, "%s: metadata pair %d has a NULL key or value",
                     path, i);
  char *header = build_header(entries, n, metadata, n_meta);
  if (!header) return lt_fail(err, "%s: out of memory for the header", path);
  atomic_file f;
  int rc = atomic_file_open(&f, path, err);
  if (rc == 0) {
    errno = 0;
    lt_error why;
    int body = write_body(f.fp, header, entries, n, &why);
    rc = atomic_file_commit(&f, body != 0, err);
    if (body == -2) { /* the fill's reason, not the commit's */
      lt_fail(err, "%s: %s", path, why.msg);
      rc = -1;
    }
  }
  free(header);
  return rc;
}
