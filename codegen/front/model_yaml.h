/* model_yaml.h: reads a model description (docs/model-yaml.md) with libyaml
 * into the IR. Errors name the file, line and column:
 *   "models/x.yaml:14:7: unknown op 'gelux'". */
#ifndef LT_MODEL_YAML_H
#define LT_MODEL_YAML_H

#include "ir.h"

/* Fills m (initialised by this call) from the YAML file at path. Builds the
 * forward graphs only; autodiff adds the backward ops. Returns 0 or -1. */
int yml_load_model(const char *path, ir_model *m, lt_error *err);

/* Same, from a string (for tests); `name` is used in messages. */
int yml_load_model_string(const char *text, const char *name, ir_model *m,
                          lt_error *err);

#endif
