/* decode.c: generation with a KV cache on the CPU backend (decode.h). */
#include "decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The block's single attention op (decoding caches its keys and values). */
static const ir_op *block_attention(const ir_model *m, lt_error *err) {
  const ir_graph *g = &m->sections[IR_BLOCK];
  const ir_op *found = NULL;
  for (int i = 0; i < g->n_fwd; i++)
    if (g->fwd[i].kind == IR_OP_ATTENTION) {
      if (found) return lt_fail(err, "%s: a block with two attention ops; decoding caches one",
                                m->path), NULL;
      found = &g->fwd[i];
    }
  if (!found) lt_fail(err, "%s: a block without attention has no KV cache to decode with", m->path);
  else if (!found->causal) lt_fail(err, "%s: non-causal attention cannot decode", m->path), found = NULL;
  return found;
}

static int head_logits(const ir_model *m) {
  const ir_graph *g = &m->sections[IR_HEAD];
  for (int i = 0; i < g->n_fwd; i++)
    if (g->fwd[i].kind == IR_OP_CROSS_ENTROPY) return g->fwd[i].in[0];
  return -1;
}

int decoder_create(decoder *d, ms_state *s, lt_error *err) {
  memset(d, 0, sizeof *d);
  const ir_model *m = s->ir;
  if (s->B != 1) return lt_fail(err, "decoding needs a state of batch 1, not %d", s->B);
  const ir_op *att = block_attention(m, err);
  if (!att) return -1;
  const size_t width = (size_t)m->sections[IR_BLOCK].values[att->in[1]].cols;
  d->s = s, d->vocab = m->vocab_size, d->logits = head_logits(m);
  d->kv = calloc((size_t)m->n_layer, sizeof *d->kv);
  d->cache = malloc(sizeof(float) * 2 * width * (size_t)s->T * (size_t)m->n_layer);
  if (!d->kv || !d->cache) return decoder_free(d), lt_fail(err, "out of memory for the KV cache");
  for (int l = 0; l < m->n_layer; l++) {
    d->kv[l].k = d->cache + (size_t)2 * l * width * (size_t)s->T;
    d->kv[l].v = d->kv[l].k + width * (size_t)s->T;
  }
  return 0;
}

void decoder_free(decoder *d) {
  free(d->kv);
  free(d->cache);
  memset(d, 0, sizeof *d);
}

int decoder_feed(decoder *d, const int32_t *ids, int n, const float **logits, lt_error *err) {
  ms_state *s = d->s;
  if (n <= 0 || d->pos + n > s->T)
    return lt_fail(err, "%d positions: the model holds %d (%d in use)", d->pos + n, s->T, d->pos);
  for (int i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= d->vocab)
      return lt_fail(err, "token id %d is beyond the vocabulary size %d", ids[i], d->vocab);
    s->ids[i] = ids[i], s->targets[i] = 0; /* the head's loss runs too; its target is unread */
  }
  for (int inst = 0; inst < s->n_inst; inst++) {
    int block = ms_inst_section(s, inst) == IR_BLOCK;
    exec_forward_cached(s, inst, n, d->pos, block ? &d->kv[ms_inst_layer(s, inst)] : NULL);
  }
  d->pos += n;
  *logits = (const float *)s->bufs[s->n_inst - 1][d->logits] + (size_t)(n - 1) * d->vocab;
  return 0;
}

/* ---- sampling --------------------------------------------------------------- */

static int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[best]) best = i;
  return best;
}

static int desc(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x < y) - (x > y);
}

/* The k-th largest value (k >= 1) of x[n]. */
static float kth_largest(const float *x, int n, int k, float *tmp) {
  memcpy(tmp, x, sizeof *tmp * (size_t)n);
  qsort(tmp, (size_t)n, sizeof *tmp, desc);
  return tmp[k - 1];
}

/* As transformers' warpers in order: temperature, top-k (values below the
 * k-th largest out), softmax, top-p (the smallest set of the most likely
 * whose mass reaches p, at least one), then a draw. */
int sample_token(const float *logits, int V, const sampling *o, rng_state *r, float *scratch) {
  if (o->temperature <= 0) return argmax(logits, V);
  float *p = scratch, *tmp = scratch + V;
  for (int i = 0; i < V; i++) p[i] = logits[i] / o->temperature;
  if (o->top_k > 0 && o->top_k < V) {
    float kth = kth_largest(p, V, o->top_k, tmp);
    for (int i = 0; i < V; i++)
      if (p[i] < kth) p[i] = -INFINITY;
  }
  float mx = p[argmax(p, V)];
  double sum = 0;
  for (int i = 0; i < V; i++) sum += p[i] = expf(p[i] - mx);
  for (int i = 0; i < V; i++) p[i] = (float)(p[i] / sum);
  if (o->top_p > 0 && o->top_p < 1) {
    memcpy(tmp, p, sizeof *tmp * (size_t)V);
    qsort(tmp, (size_t)V, sizeof *tmp, desc);
    double mass = 0;
    float cut = tmp[0];
    for (int i = 0; i < V && mass < o->top_p; i++) mass += tmp[i], cut = tmp[i];
    sum = 0;
    for (int i = 0; i < V; i++) sum += p[i] = p[i] >= cut ? p[i] : 0.0f;
    for (int i = 0; i < V; i++) p[i] = (float)(p[i] / sum);
  }
  double u = rng_uniform(r), c = 0;
  int last = 0;
  for (int i = 0; i < V; i++) {
    if (p[i] <= 0) continue;
    c += p[i], last = i;
    if (u < c) return i;
  }
  return last; /* rounding left u past the total */
}
