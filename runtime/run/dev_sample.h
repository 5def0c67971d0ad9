/* dev_sample.h: `lisa sample` on a device (cuda, emu): the decoding program
 * (gen_config.decode) generated for the model, built and loaded through
 * the device's dev_provider, and a device decoder (dev_decode.h) over it. */
#ifndef LT_DEV_SAMPLE_H
#define LT_DEV_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "dev_run.h"
#include "model_state.h"

typedef struct dev_sampler dev_sampler;

/* Rows a call of the program takes (the prompt goes in chunks of these). */
#define DEV_SAMPLE_ROWS 16

/* Takes p (closed with the sampler, also on failure). */
int dev_sampler_open(dev_sampler **out, const dev_provider *p, lt_error *err);
/* Generates and loads the program for a cache of ctx positions in bf16
 * (bf16 set) or fp32 storage, and loads the checkpoint `weights` into the
 * device a tensor at a time (unused tensors as wt_load_strict). s (the
 * layout: wt_open_frozen's layout_only) must outlive the sampler. */
int dev_sampler_prepare(dev_sampler *c, const ms_state *s, const char *weights,
                        int ignore_unused, int ctx, int bf16, lt_error *err);
/* dd_feed's contract: ids at the next positions, the last one's logits. */
int dev_sampler_feed(dev_sampler *c, const int32_t *ids, int n, const float **logits,
                     lt_error *err);
void dev_sampler_close(dev_sampler *c);

#endif
