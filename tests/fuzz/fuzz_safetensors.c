/* libFuzzer: st_open on any bytes, then every tensor read as its dtype. */
#include "fuzz_util.h"
#include "safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  int fd = fuzz_file(data, size, path, sizeof path);
  if (fd < 0) return 0;
  st_file f;
  lt_error err;
  if (st_open(&f, path, &err) == 0) {
    for (int i = 0; i < f.n; i++) {
      const st_tensor *t = &f.tensors[i];
      int64_t n = st_numel(t);
      if (n > (1 << 20)) continue;
      float *out = malloc((size_t)n * 4 + 4);
      if (out && st_find(&f, t->name) == t) st_read_f32(&f, t, out, &err);
      free(out);
    }
    st_metadata(&f, "format");
    st_close(&f);
  }
  close(fd);
  return 0;
}
