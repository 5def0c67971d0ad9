/* decode.h: text generation on the CPU backend: a KV cache per block, so
 * each new token runs the model over one position (prompt positions all at
 * once), and the samplers (greedy, temperature, top-k, top-p).
 *
 * The state is the caller's, made for one sequence (B = 1) with T the
 * positions the whole generation needs; decoding uses its first rows. */
#ifndef LT_DECODE_H
#define LT_DECODE_H

#include <stdint.h>

#include "err.h"
#include "executor.h"
#include "rng.h"

typedef struct {
  ms_state *s;
  exec_kv *kv;   /* [n_layer] */
  float *cache;  /* every block's keys and values */
  int pos;       /* positions cached so far */
  int logits;    /* the head's value feeding cross_entropy */
  int vocab;
} decoder;

/* Fails when a block has no attention or more than one, or s has B != 1. */
int decoder_create(decoder *d, ms_state *s, lt_error *err);
void decoder_free(decoder *d);
/* Runs ids[0..n) at the next n positions; *logits: the last one's [vocab]
 * (valid until the next call). An error when they exceed the state's T. */
int decoder_feed(decoder *d, const int32_t *ids, int n, const float **logits, lt_error *err);

typedef struct {
  float temperature; /* 0: greedy (the first maximum, as torch.argmax) */
  int top_k;         /* 0: all */
  float top_p;       /* 1: all */
} sampling;

/* One token from logits[V]; scratch holds 2 V floats. */
int sample_token(const float *logits, int V, const sampling *o, rng_state *r, float *scratch);

#endif
