/* dev_decode.c: generation on the decoding program, over a dt_device. */
#include "dev_decode.h"

#include <stdlib.h>
#include <string.h>

#include "dev_arena.h"

struct dev_decoder {
  const ms_state *s;
  const gen_program *prog;
  dt_device dev;
  const gen_path *paths[IR_NSECTIONS];
  int wb, rows, ctx, vocab, logits_buf;
  char *arena;
  size_t arena_bytes, cache_bytes, stream_bytes, scratch_bytes;
  char *weights, *ids, *stream[2], *logits, *caches, *scratch;
  void **tables;       /* [n_inst][max_bufs] */
  int max_bufs;
  void *staging;       /* conversions: the largest tensor, or the logits */
  float *host_logits;  /* [vocab] */
  int pos;             /* positions fed so far */
};

/* The program's three paths, the head's logits, and every size. */
static int find_paths(dev_decoder *d, lt_error *err) {
  static const char *const names[IR_NSECTIONS] = {"embed_decode", "block_decode", "head_decode"};
  if (!d->prog->cfg.decode) return lt_fail(err, "the program is not a decoding program");
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    const gen_path *p = d->paths[sec] = gen_find_path(d->prog, names[sec]);
    if (!p) return lt_fail(err, "the decoding program lacks %s", names[sec]);
    for (int b = 0; b < p->n_bufs; b++) {
      const gen_buffer *buf = &p->bufs[b];
      if (buf->role == GEN_BUF_CACHE && d->cache_bytes) /* as the CPU decoder (decode.c) */
        return lt_fail(err, "%s: a block with two attention ops; decoding caches one",
                       d->prog->m->path);
      if (buf->role == GEN_BUF_CACHE) d->cache_bytes = arena_align((size_t)gen_buffer_bytes(buf));
      if (buf->role == GEN_BUF_OUTPUT && sec == IR_HEAD) d->logits_buf = b;
      if (buf->role == GEN_BUF_OUTPUT && sec != IR_HEAD &&
          (size_t)gen_buffer_bytes(buf) > d->stream_bytes)
        d->stream_bytes = (size_t)gen_buffer_bytes(buf);
    }
    if (arena_scratch_bytes(p) > d->scratch_bytes) d->scratch_bytes = arena_scratch_bytes(p);
    if (p->n_bufs > d->max_bufs) d->max_bufs = p->n_bufs;
  }
  if (d->logits_buf < 0 || d->paths[IR_HEAD]->bufs[d->logits_buf].cols != d->vocab)
    return lt_fail(err, "the decoding program's head has no [rows, %d] logits", d->vocab);
  return 0;
}

static void carve_all(dev_decoder *d, char *base) {
  arena_carver c = {0, base, {0}};
  const gen_buffer *lg = &d->paths[IR_HEAD]->bufs[d->logits_buf];
  d->weights = arena_carve(&c, (size_t)d->s->n_param_scalars * (size_t)d->wb, MEMORY_WEIGHTS);
  d->ids = arena_carve(&c, (size_t)d->rows * 4, MEMORY_ACTIVATIONS);
  d->stream[0] = arena_carve(&c, d->stream_bytes, MEMORY_ACTIVATIONS);
  d->stream[1] = arena_carve(&c, d->stream_bytes, MEMORY_ACTIVATIONS);
  d->logits = arena_carve(&c, (size_t)gen_buffer_bytes(lg), MEMORY_ACTIVATIONS);
  d->caches = arena_carve(&c, d->cache_bytes * (size_t)d->s->ir->n_layer, MEMORY_ACTIVATIONS);
  d->scratch = arena_carve(&c, d->scratch_bytes, MEMORY_ACTIVATIONS);
  d->arena_bytes = c.at;
}

/* The memory of buffer b of instance inst's path; NULL where it has none. */
static int bind(dev_decoder *d, int inst, int b, void **out, lt_error *err) {
  int sec = ms_inst_section(d->s, inst), layer = ms_inst_layer(d->s, inst);
  const gen_path *p = d->paths[sec];
  const gen_buffer *buf = &p->bufs[b];
  const ir_graph *g = &d->prog->m->sections[sec];
  *out = NULL;
  switch (buf->role) {
  case GEN_BUF_PARAM:
    *out = d->weights + ms_param_index(d->s, g->values[b].param, layer) * d->wb;
    return 0;
  case GEN_BUF_INPUT:
    if (b != g->input) return lt_fail(err, "%s: input %s has no source", p->name, buf->name);
    *out = inst == 0 ? d->ids : d->stream[(inst + 1) % 2];
    return 0;
  case GEN_BUF_OUTPUT:
    if (sec == IR_HEAD) *out = d->logits;
    else if (b == g->output) *out = d->stream[inst % 2];
    else return lt_fail(err, "%s: output %s has no destination", p->name, buf->name);
    return 0;
  case GEN_BUF_CACHE: *out = d->caches + (size_t)layer * d->cache_bytes; return 0;
  case GEN_BUF_UNUSED: case GEN_BUF_VIEW: return 0;
  case GEN_BUF_SCRATCH: case GEN_BUF_WORKSPACE: return 0; /* arena_bind_scratch */
  default: return lt_fail(err, "%s: %s has a role decoding does not keep", p->name, buf->name);
  }
}

static int bind_all(dev_decoder *d, lt_error *err) {
  for (int inst = 0; inst < d->s->n_inst; inst++) {
    const gen_path *p = d->paths[ms_inst_section(d->s, inst)];
    void **tab = d->tables + (size_t)inst * (size_t)d->max_bufs;
    for (int b = 0; b < p->n_bufs; b++)
      if (bind(d, inst, b, &tab[b], err)) return -1;
    arena_bind_scratch(p, d->scratch, tab);
  }
  return 0;
}

static int alloc_host(dev_decoder *d, lt_error *err) {
  const ir_model *m = d->prog->m;
  /* conversions of a tensor (the store) or of a logits row */
  int64_t most = ps_max_numel(m) > m->vocab_size ? ps_max_numel(m) : m->vocab_size;
  d->tables = calloc((size_t)d->s->n_inst * (size_t)d->max_bufs, sizeof(void *));
  d->staging = malloc((size_t)most * 4);
  d->host_logits = malloc(sizeof(float) * (size_t)m->vocab_size);
  return d->tables && d->staging && d->host_logits ? 0 : lt_fail(err, "out of memory");
}

int dd_create(dev_decoder **out, const ms_state *s, const gen_program *prog, const dt_device *dev,
              lt_error *err) {
  dev_decoder *d = calloc(1, sizeof *d);
  if (!d) return lt_fail(err, "out of memory");
  *out = d;
  d->s = s, d->prog = prog, d->dev = *dev;
  d->wb = gen_dtype_bytes(prog->cfg.dtype);
  d->rows = prog->cfg.T, d->ctx = prog->cfg.ctx, d->vocab = prog->m->vocab_size;
  d->logits_buf = -1;
  if (s->ir != prog->m) return lt_fail(err, "the decoding program is for another model");
  if (find_paths(d, err) || alloc_host(d, err)) return -1;
  carve_all(d, NULL);
  /* not zeroed: no result reads a cache row or a stream row no call wrote
   * (rows past a call's N do go through the GEMMs, into rows nothing reads);
   * the tests' emulator fills the arena with NaN to hold this true */
  if (d->dev.alloc(d->dev.ctx, d->arena_bytes, (void **)&d->arena, err)) return -1;
  carve_all(d, d->arena);
  return bind_all(d, err);
}

/* ---- the weights, a tensor at a time ------------------------------------ */

static int store_get(void *ctx, int p, int layer, float *out, lt_error *err) {
  dev_decoder *d = ctx;
  return arena_download_f32(&d->dev, out, d->weights + ms_param_index(d->s, p, layer) * d->wb,
                            ir_param_numel(&d->prog->m->params[p]), d->wb, d->staging, err);
}

static int store_put(void *ctx, int p, int layer, const float *in, lt_error *err) {
  dev_decoder *d = ctx;
  return arena_upload_f32(&d->dev, d->weights + ms_param_index(d->s, p, layer) * d->wb, in,
                          ir_param_numel(&d->prog->m->params[p]), d->wb, d->staging, err);
}

param_store dd_store(dev_decoder *d) {
  return (param_store){d, store_get, store_put, NULL, NULL, NULL, NULL};
}

void dd_free(dev_decoder *d) {
  if (!d) return;
  if (d->arena) d->dev.release(d->dev.ctx, d->arena);
  free(d->tables);
  free(d->staging);
  free(d->host_logits);
  free(d);
}

size_t dd_arena_bytes(const dev_decoder *d) { return d->arena_bytes; }

/* n <= rows ids at positions d->pos.. through every instance's path. */
static int run_chunk(dev_decoder *d, const int32_t *ids, int n, lt_error *err) {
  if (d->dev.upload(d->dev.ctx, d->ids, ids, (size_t)n * 4, err)) return -1;
  path_exec_scalars sc = {n, 1, 0.0f, {0}, 0, d->pos};
  for (int inst = 0; inst < d->s->n_inst; inst++) {
    const gen_path *p = d->paths[ms_inst_section(d->s, inst)];
    sc.layer = ms_inst_layer(d->s, inst);
    if (path_exec_run(p, 0, p->n_steps, d->tables + (size_t)inst * (size_t)d->max_bufs, &sc,
                      &d->dev.exec, err))
      return -1;
  }
  d->pos += n;
  return 0;
}

int dd_feed(dev_decoder *d, const int32_t *ids, int n, const float **logits, lt_error *err) {
  if (n <= 0 || d->pos + n > d->ctx)
    return lt_fail(err, "%d positions: the KV cache holds %d (%d in use)", d->pos + n, d->ctx,
                   d->pos);
  for (int i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= d->vocab)
      return lt_fail(err, "token id %d is beyond the vocabulary size %d", ids[i], d->vocab);
  int last = 0;
  for (int at = 0; at < n; at += d->rows) {
    last = n - at < d->rows ? n - at : d->rows;
    if (run_chunk(d, ids + at, last, err)) return -1;
  }
  /* the last row's logits: the one read back a token needs (rows padded) */
  const size_t row = (size_t)gen_buffer_ld(&d->paths[IR_HEAD]->bufs[d->logits_buf]) * (size_t)d->wb;
  if (arena_download_f32(&d->dev, d->host_logits, d->logits + (size_t)(last - 1) * row, d->vocab,
                         d->wb, d->staging, err))
    return -1;
  *logits = d->host_logits;
  return 0;
}
