/* cuda_sample.h: `lisa sample --device cuda`: the decoding program
 * (gen_config.decode) generated for the model, compiled and loaded on the
 * first CUDA device, and a device decoder (dev_decode.h) over it. */
#ifndef LT_CUDA_SAMPLE_H
#define LT_CUDA_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "model_state.h"

typedef struct cuda_sampler cuda_sampler;

/* Rows a call of the program takes (the prompt goes in chunks of these). */
#define CUDA_SAMPLE_ROWS 16

/* Opens the first CUDA device; name gets what it is. -1 with the reason. */
int cuda_sampler_open(cuda_sampler **out, char *name, size_t cap, lt_error *err);
/* Generates and loads the program for a cache of ctx positions in bf16
 * (bf16 set) or fp32 storage, and loads the checkpoint `weights` into the
 * device a tensor at a time (unused tensors as wt_load_strict). s (the
 * layout: wt_open_frozen's layout_only) must outlive the sampler. */
int cuda_sampler_prepare(cuda_sampler *c, const ms_state *s, const char *weights,
                         int ignore_unused, int ctx, int bf16, lt_error *err);
/* dd_feed's contract: ids at the next positions, the last one's logits. */
int cuda_sampler_feed(cuda_sampler *c, const int32_t *ids, int n, const float **logits,
                      lt_error *err);
void cuda_sampler_close(cuda_sampler *c);

#endif
