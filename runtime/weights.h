/* weights.h: parameter values in and out. Random init follows each param's
 * YAML init (GPT-2's scheme for the bundled models); checkpoints are
 * safetensors with Hugging Face names, so results load in the tools people
 * already use. */
#ifndef LT_WEIGHTS_H
#define LT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "model_state.h"

/* Every (param, layer) draws from its own stream of the seed, so adding a
 * parameter to a model does not change the others' initial values. */
void wt_init_random(ms_state *s, uint64_t seed);

/* Loads every parameter from a safetensors file, trying the model's name
 * prefixes in order. A missing or mis-shaped tensor is an error naming the
 * file, the tensor and the YAML line of the param. Tensors the model does
 * not use are ignored; `note` (may be NULL) receives a one-line summary of
 * them, or "" if there were none. */
int wt_load(ms_state *s, const char *path, char *note, size_t note_cap,
            lt_error *err);

/* Writes every parameter as F32 under its Hugging Face name (first prefix),
 * atomically (temporary file + rename). */
int wt_save(const ms_state *s, const char *path, lt_error *err);

#endif
