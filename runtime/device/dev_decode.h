/* dev_decode.h: generation on a device: the decoding program
 * (gen_config.decode: embed_decode, block_decode, head_decode) over a
 * dt_device (the CUDA backend, or the tests' emulator). The device side of
 * runtime/train/decode.h's CPU decoder, with the same contract: feed ids at
 * the next positions, get the last one's logits.
 *
 * One arena, sized at creation: the weights in the program's dtype, a KV
 * cache [ctx, 2 * kv width] per block, the ids of one call, two stream
 * buffers the instances alternate between (a forward-only pass keeps no
 * activation past the next instance), the logits and one scratch region.
 * A call runs its rows in chunks of the program's T (prefill) and reads
 * back only the last row's logits; nothing is allocated after creation. */
#ifndef LT_DEV_DECODE_H
#define LT_DEV_DECODE_H

#include <stdint.h>

#include "dev_train.h"
#include "gen.h"
#include "model_state.h"

typedef struct dev_decoder dev_decoder;

/* s: the model's layout (ms_create_layout, nothing trains; its B and T
 * are unread); prog: generated with gen_config.decode for s's model. Both
 * must outlive the decoder. The weights go in through dd_store. */
int dd_create(dev_decoder **out, const ms_state *s, const gen_program *prog, const dt_device *dev,
              lt_error *err);
/* The decoder's weights as a store (get and put; no moments): a checkpoint
 * loads into it a tensor at a time (wt_load_into). */
param_store dd_store(dev_decoder *d);
void dd_free(dev_decoder *d);

/* ids[0..n) at the next n positions (at most the cache's ctx in all);
 * *logits: the last one's vocab logits, valid until the next call. */
int dd_feed(dev_decoder *d, const int32_t *ids, int n, const float **logits, lt_error *err);

size_t dd_arena_bytes(const dev_decoder *d);

#endif
