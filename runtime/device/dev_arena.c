/* dev_arena.c: the arena pieces the device trainer and decoder share. */
#include "dev_arena.h"

#include "bf16.h"

char *arena_carve(arena_carver *c, size_t bytes, int category) {
  char *p = c->base ? c->base + c->at : NULL;
  size_t n = arena_align(bytes ? bytes : 1);
  c->at += n;
  c->bytes[category] += n;
  return p;
}

static int is_scratch(int role) { return role == GEN_BUF_SCRATCH || role == GEN_BUF_WORKSPACE; }

size_t arena_scratch_bytes(const gen_path *p) {
  size_t n = 0;
  for (int b = 0; b < p->n_bufs; b++)
    if (is_scratch(p->bufs[b].role)) n += arena_align((size_t)gen_buffer_bytes(&p->bufs[b]));
  return n;
}

void arena_bind_scratch(const gen_path *p, char *scratch, void **tab) {
  size_t at = 0;
  for (int b = 0; b < p->n_bufs; b++) {
    if (!is_scratch(p->bufs[b].role)) continue;
    tab[b] = scratch + at;
    at += arena_align((size_t)gen_buffer_bytes(&p->bufs[b]));
  }
}

int arena_upload_f32(const dt_device *dev, void *mem, const float *host, int64_t n,
                     int elem_bytes, void *staging, lt_error *err) {
  if (elem_bytes == 4) return dev->upload(dev->ctx, mem, host, (size_t)n * 4, err);
  uint16_t *h = staging;
  for (int64_t i = 0; i < n; i++) h[i] = f32_to_bf16(host[i]);
  return dev->upload(dev->ctx, mem, h, (size_t)n * 2, err);
}

int arena_download_f32(const dt_device *dev, float *host, const void *mem, int64_t n,
                       int elem_bytes, void *staging, lt_error *err) {
  if (elem_bytes == 4) return dev->download(dev->ctx, host, mem, (size_t)n * 4, err);
  uint16_t *h = staging;
  if (dev->download(dev->ctx, h, mem, (size_t)n * 2, err)) return -1;
  for (int64_t i = 0; i < n; i++) host[i] = bf16_to_f32(h[i]);
  return 0;
}
