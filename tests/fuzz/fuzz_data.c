/* libFuzzer: a token file on any bytes, then a batch from it. */
#include "data.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  int fd = fuzz_file(data, size, path, sizeof path);
  if (fd < 0) return 0;
  data_file d;
  lt_error err;
  if (data_open(&d, path, 50257, &err) == 0) {
    int32_t in[2 * 8], tg[2 * 8];
    data_batch(&d, 1, 3, 2, 8, in, tg, &err);
    data_close(&d);
  }
  close(fd);
  return 0;
}
