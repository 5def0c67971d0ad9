/* hf_index.h: the index of a Hugging Face sharded checkpoint,
 * model.safetensors.index.json:
 *   {"metadata": {"total_size": BYTES},
 *    "weight_map": {"tensor name": "model-00001-of-00003.safetensors", ...}}
 * Shard names are relative to the index's folder. Malformed input is an
 * error naming the index file and the entry, never a crash. */
#ifndef LT_HF_INDEX_H
#define LT_HF_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct {
  const char *name;  /* tensor name (points into the parsed JSON) */
  int shard;         /* into hf_index.shards */
} hf_index_entry;

typedef struct {
  char path[1024];     /* the index file */
  char dir[1024];      /* its folder */
  int n;               /* weight_map entries, sorted by name */
  hf_index_entry *entries;
  int n_shards;        /* distinct shard files, sorted by name */
  const char **shards;
  void *root;          /* the parsed JSON (a cJSON) the names point into */
} hf_index;

int hf_index_open(hf_index *x, const char *path, lt_error *err);
void hf_index_close(hf_index *x);
/* The shard weight_map puts name in, or -1 if it does not list name. */
int hf_index_find(const hf_index *x, const char *name);
/* The first tensor (by name) weight_map puts in shard. */
const char *hf_index_first_in_shard(const hf_index *x, int shard);
/* The path of shard: the index's folder joined with the shard's name. */
int hf_index_shard_path(const hf_index *x, int shard, char *out, size_t cap, lt_error *err);

/* Writes an index saying tensor entries[i].name is in the shard file
 * shards[entries[i].shard], in that order, atomically: temporary file,
 * fsync, rename. total_size: the bytes of all tensor data. */
int hf_index_write(const char *path, const hf_index_entry *entries, int n,
                   const char *const *shards, uint64_t total_size, lt_error *err);

#endif
