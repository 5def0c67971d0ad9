/* model_yaml.h: reads a model description (docs/model-yaml.md) with libyaml
 * into the IR. Errors name the file, line and column:
 *   "models/x.yaml:14:7: unknown op 'gelux'". */
#ifndef LT_MODEL_YAML_H
#define LT_MODEL_YAML_H

#include "ir.h"

/* Fills m (initialised by this call) from the YAML file at path. Builds the
 * forward graphs only; autodiff adds the backward ops. Returns 0 or -1. */
int yml_load_model(const char *path, ir_model *m, lt_error *err);

/* A family file's `hf:` section: how a Hugging Face config.json maps onto
 * it (docs/model-yaml.md). */
#define YML_HF_MAX 48
typedef struct {
  char model_type[64];                 /* "" when the file has no hf section */
  int n_ignore;
  char ignore[YML_HF_MAX][48];         /* config.json keys that change nothing here */
  int n_require;
  struct { char key[48], value[48]; } require[16]; /* keys whose value the graph fixes */
  int n_layer_types;                   /* config.json's layer_types the graph computes; */
  char layer_types[4][32];             /* none listed: full_attention only */
  int n_null_zero;                     /* config entries a null in config.json sets to 0 */
  char null_zero[4][48];               /* (Mistral's sliding_window: null = no window); */
                                       /* another null keeps the family's value */
} yml_hf;

/* Config values from outside (config.json): an entry of the YAML's
 * `config:` with the same name takes the value instead of its own
 * expression; used[i] is set for each that matched. A NAN value is a JSON
 * null: 0 for the names in hf.null_zero, else the YAML's own value. */
typedef struct {
  int n;
  const ir_config_entry *entries;
  unsigned char *used;
} yml_overrides;

/* yml_load_model with overrides (may be NULL) and the hf section out (may
 * be NULL). */
int yml_load_model_ex(const char *path, const yml_overrides *ov, yml_hf *hf, ir_model *m,
                      lt_error *err);

/* Same, from a string (for tests); `name` is used in messages. */
int yml_load_model_string(const char *text, const char *name, ir_model *m,
                          lt_error *err);

#endif
