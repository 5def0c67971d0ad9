/* safetensors.h: read and write the safetensors format
 * (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
 * {...}}, then the raw little-endian data. Headers are parsed with cJSON.
 * Every offset is validated against the file size, so a truncated or
 * corrupt file is an error naming the file and the tensor, never a crash. */
#ifndef LT_SAFETENSORS_H
#define LT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum st_dtype { ST_F32, ST_F16, ST_BF16, ST_I32, ST_I64, ST_OTHER };

typedef struct {
  char name[256];
  int dtype;          /* enum st_dtype */
  char dtype_name[16];/* as written in the header, e.g. "F32", "U8" */
  int ndim;
  int64_t shape[8];
  uint64_t begin, end;/* byte offsets into the data section */
} st_tensor;

typedef struct {
  char path[1024];
  int n;
  st_tensor *tensors;
  int *by_name;       /* tensor indices sorted by name (st_find) */
  int fd;             /* the file, open until st_close; tensors are read from it */
  uint64_t data_at;   /* the data section's offset in the file */
  uint64_t data_len;
  void *meta;         /* the "__metadata__" object (a cJSON), or NULL */
} st_file;

int st_open(st_file *f, const char *path, lt_error *err);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
int64_t st_numel(const st_tensor *t);
/* A "__metadata__" string value, or NULL if the key is absent. */
const char *st_metadata(const st_file *f, const char *key);
/* Converts F32, F16 or BF16 to fp32 into out (st_numel(t) floats). */
int st_read_f32(const st_file *f, const st_tensor *t, float *out,
                lt_error *err);
/* st_read_f32, then every value must be finite: a NaN or an infinity in
 * weights or optimizer state would poison every step (the error names the
 * file, the tensor and the first such element). */
int st_read_f32_finite(const st_file *f, const st_tensor *t, float *out, lt_error *err);
/* The same for elements [first, first + n) of t only (a tensor read in
 * pieces; the error counts elements from the tensor's start). */
int st_read_f32_finite_range(const st_file *f, const st_tensor *t, int64_t first, int64_t n,
                             float *out, lt_error *err);
/* Reads I32 (or I64 that fits in int32) into out. */
int st_read_i32(const st_file *f, const st_tensor *t, int32_t *out,
                lt_error *err);

/* The pieces a filled entry is written in (st_write holds one). */
#define ST_WRITE_CHUNK_BYTES ((size_t)4 << 20)

/* A tensor to write: its bytes at data, or, where data is NULL and fill is
 * set, from fill in pieces, front to back: bytes of the tensor from byte
 * `at` into buf (a tensor that is not in host memory: one on a device). */
typedef struct {
  const char *name;
  int dtype;          /* ST_F32, ST_BF16 or ST_I32 (data and fill give its bytes) */
  int ndim;
  int64_t shape[4];
  const void *data;
  int (*fill)(void *ctx, uint64_t at, void *buf, size_t bytes, lt_error *err);
  void *fill_ctx;
} st_entry;

/* Writes entries (in the given order) to path via a temporary file in the
 * same folder and rename(), so a crash (or a failed fill) never leaves a
 * half-written file where a good one was. metadata may be NULL or a flat
 * list of n_meta key/value string pairs for "__metadata__". */
int st_write(const char *path, const st_entry *entries, int n,
             const char *const *metadata, int n_meta, lt_error *err);

#endif
