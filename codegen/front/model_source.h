/* model_source.h: MODEL on the command line is a YAML file or a Hugging
 * Face model folder. For a folder, config.json's model_type names the
 * family file models/<model_type>.yaml (from $LISA_MODELS, else the source
 * tree's models/), config.json's values replace the family's config entries
 * of the same (Hugging Face) name, and every other key must be one the
 * family's `hf:` section ignores or requires with that value: a checkpoint
 * that cannot mean what the graph computes is an error, not a guess. */
#ifndef LT_MODEL_SOURCE_H
#define LT_MODEL_SOURCE_H

#include <stddef.h>

#include "ir.h"

/* Loads path into m. weights (cap bytes) receives the folder, whose
 * safetensors a run loads by default, or "" for a YAML file. */
int model_open(const char *path, ir_model *m, char *weights, size_t cap, lt_error *err);

/* Whether path is a folder (a Hugging Face model). */
int model_is_folder(const char *path);

#endif
