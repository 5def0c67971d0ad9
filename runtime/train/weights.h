/* weights.h: parameter values in and out. Random init follows each param's
 * YAML init (GPT-2's scheme for the bundled models); checkpoints are
 * safetensors with Hugging Face names, so results load in the tools people
 * already use. */
#ifndef LT_WEIGHTS_H
#define LT_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "model_state.h"
#include "param_store.h"

/* Every (param, layer) draws from its own stream of the seed, so adding a
 * parameter to a model does not change the others' initial values. */
void wt_init_random(ms_state *s, uint64_t seed);
/* The same into a store, one tensor at a time; adapters_only: LoRA's
 * adapters alone (the base comes from a checkpoint). */
int wt_init_random_into(const ir_model *m, const param_store *ps, uint64_t seed,
                        int adapters_only, lt_error *err);

/* Loads every parameter from a checkpoint, trying the model's name prefixes
 * in order. path is a safetensors file, a Hugging Face sharded checkpoint's
 * index (model.safetensors.index.json: shards are read one at a time), or a
 * folder holding either (model.safetensors first, as Hugging Face does).
 * A missing (except a LoRA adapter: it keeps its value) or mis-shaped
 * tensor is an error naming the file, the tensor
 * and the YAML line of the param. Tensors the model does not use are
 * ignored; `note` (may be NULL) receives a one-line summary of them, or ""
 * if there were none. */
int wt_load(ms_state *s, const char *path, char *note, size_t note_cap,
            lt_error *err);
/* wt_load where tensors the model does not read are an error (a fused or
 * renamed weight would be lost) unless ignore_unused; note (note_cap > 0)
 * then lists them. */
int wt_load_strict(ms_state *s, const char *path, int ignore_unused, char *note,
                   size_t note_cap, lt_error *err);
/* Both into a store, one tensor at a time through staging of the largest
 * (shards are read tensor by tensor, never whole). ps NULL: every tensor is
 * located and its shape checked, from the headers alone; nothing is read. */
int wt_load_into(const ir_model *m, const param_store *ps, const char *path, char *note,
                 size_t note_cap, lt_error *err);
int wt_load_strict_into(const ir_model *m, const param_store *ps, const char *path,
                        int ignore_unused, char *note, size_t note_cap, lt_error *err);

/* A state for evaluation or generation (nothing trains) of B x T rows,
 * with the weights a command names: `weights`, else the model folder's
 * (`folder`; "" for a YAML model, which then needs --weights). Unused
 * tensors as wt_load_strict. layout_only: the layout alone, the weights
 * only checked (a device runs the model and loads wt_frozen_source into
 * its store). Nothing to free on failure. */
int wt_open_frozen(ms_state *s, const ir_model *m, int B, int T, const char *weights,
                   const char *folder, int ignore_unused, int layout_only, lt_error *err);
/* The checkpoint wt_open_frozen reads: weights, else folder; NULL: none. */
const char *wt_frozen_source(const char *weights, const char *folder);

/* A param with `interleave` between the checkpoint's row order (groups x
 * parts pieces, group-major) and lisa's (part-major); to_lisa picks the
 * direction. from and to are ir_param_numel floats each, not overlapping. */
void wt_interleave_rows(const ir_param *par, const float *from, float *to, int to_lisa);

/* A tensor in hand between a store and a file: values, and other_order
 * for an interleaved param's other row order (wt_interleave_rows; only
 * where the model has one), each the largest tensor's size. Loading reads
 * into it; saving fills st_entry pieces from it (wt_fill_param, ctx a
 * wt_fill), fetching (p, layer) from the store in the checkpoint's row
 * order when its first piece is asked for. */
typedef struct {
  const param_store *ps;
  const ir_model *m;
  float *values, *other_order;
  int p, layer; /* what values holds for saving; p < 0: nothing */
} wt_staging;

typedef struct {
  wt_staging *staging;
  int p, layer;
  int dtype; /* what the entry holds: ST_F32, or ST_BF16 (rounded to nearest even) */
} wt_fill;

int wt_staging_init(wt_staging *st, const ir_model *m, const param_store *ps, lt_error *err);
/* The staging loading or saving through a store holds: the largest tensor,
 * twice where a param is interleaved (its other row order). */
uint64_t wt_staging_bytes(const ir_model *m);
void wt_staging_free(wt_staging *st);
int wt_fill_param(void *ctx, uint64_t at, void *out, size_t bytes, lt_error *err);

/* Writes every parameter as F32 under its Hugging Face name (first prefix),
 * in the checkpoint's row order, atomically (temporary file + rename). */
int wt_save(const ms_state *s, const char *path, lt_error *err);
/* The same without LoRA adapter tensors (after trainer_merge_lora). */
int wt_save_base(const ms_state *s, const char *path, lt_error *err);
/* Either from a store, a tensor at a time (skip_adapters: wt_save_base),
 * as dtype ST_F32 or ST_BF16 (rounded to nearest even). */
int wt_save_into(const ir_model *m, const param_store *ps, const char *path, int skip_adapters,
                 int dtype, lt_error *err);

/* The dtype a checkpoint (a file or a folder, as wt_load reads them) holds
 * its weights in: ST_BF16 where its first tensor is BF16, else ST_F32 (also
 * when it cannot be read). `--save-dtype auto` saves in it. */
int wt_source_dtype(const char *path);

/* Writes every parameter into the folder dir (created if missing) as
 * Hugging Face does: shards model-0000K-of-0000N.safetensors in model
 * order, a new shard when the next tensor would pass max_shard_bytes (a
 * larger tensor gets a shard of its own), and model.safetensors.index.json,
 * written last. A model that fits one shard is written as model.safetensors
 * with no index. The save is atomic as a whole: new shards never take the
 * names the folder's index uses (Hugging Face's names, or the same with
 * ".1" before ".safetensors", alternately), the index is renamed into place
 * last and names only them, and then the shards and files of other saves
 * (another count, the other set, a single file) are removed; a crash leaves
 * the earlier save or the new one, never a mix. Other files in dir (a
 * config.json, a tokenizer) are left alone. skip_adapters: without LoRA
 * adapter tensors (after trainer_merge_lora), as wt_save_base. */
int wt_save_sharded(const ms_state *s, const char *dir, uint64_t max_shard_bytes,
                    int skip_adapters, lt_error *err);
int wt_save_sharded_into(const ir_model *m, const param_store *ps, const char *dir,
                         uint64_t max_shard_bytes, int skip_adapters, int dtype, lt_error *err);

#endif
