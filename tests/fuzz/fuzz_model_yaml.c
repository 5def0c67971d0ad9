/* libFuzzer: a model description on any bytes. */
#include <stdlib.h>
#include <string.h>

#include "model_yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  ir_model m;
  lt_error err;
  if (yml_load_model_string(text, "fuzz.yaml", &m, &err) == 0) ir_model_free(&m);
  free(text);
  return 0;
}
