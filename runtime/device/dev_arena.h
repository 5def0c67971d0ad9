/* dev_arena.h: what the device trainer (dev_train.c) and the device
 * decoder (dev_decode.c) share about their one arena: its alignment, its
 * regions carved in two passes (sizes first, then pointers), counted by
 * memory category, every path's scratch laid out in one shared region, and
 * fp32 values copied to and from the device's dtype. */
#ifndef LT_DEV_ARENA_H
#define LT_DEV_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "dev_train.h"
#include "gen.h"
#include "memory_kinds.h"

#define ARENA_ALIGN 256 /* cuBLASLt and vector loads want aligned operands */

static inline size_t arena_align(size_t n) { return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

/* base NULL: sizes only (the pointers come back NULL); then again with the
 * memory, the same calls in the same order. */
typedef struct {
  size_t at;
  char *base;
  uint64_t bytes[MEMORY_NCATEGORIES];
} arena_carver;

char *arena_carve(arena_carver *c, size_t bytes, int category);

/* A path's scratch and workspaces (one path runs at a time, so every path's
 * start at the same region): their bytes, and their pointers in tab. */
size_t arena_scratch_bytes(const gen_path *p);
void arena_bind_scratch(const gen_path *p, char *scratch, void **tab);

/* n fp32 values between the host and device memory stored in elem_bytes
 * (4: fp32; 2: bf16, rounded to nearest even on the way up), through
 * staging (n * 2 bytes) where it converts. */
int arena_upload_f32(const dt_device *dev, void *mem, const float *host, int64_t n,
                     int elem_bytes, void *staging, lt_error *err);
int arena_download_f32(const dt_device *dev, float *host, const void *mem, int64_t n,
                       int elem_bytes, void *staging, lt_error *err);

#endif
