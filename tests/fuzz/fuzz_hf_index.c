/* libFuzzer: a shard index on any bytes. */
#include "fuzz_util.h"
#include "hf_index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64], shard[1200];
  int fd = fuzz_file(data, size, path, sizeof path);
  if (fd < 0) return 0;
  hf_index x;
  lt_error err;
  if (hf_index_open(&x, path, &err) == 0) {
    for (int k = 0; k < x.n_shards; k++) hf_index_shard_path(&x, k, shard, sizeof shard, &err);
    hf_index_close(&x);
  }
  close(fd);
  return 0;
}
