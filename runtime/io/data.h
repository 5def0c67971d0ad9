/* data.h: token files in llm.c's .bin format.
 *
 * Header: 256 little-endian int32: [0] magic 20240520, [1] version (1: ids
 * are uint16; 2: uint32), [2] token count; then the ids. The loader reads the
 * whole file, checks the header against the file size (truncation is an
 * error naming the file and how many tokens are missing) and every id
 * against the vocabulary (an error naming the file and the token position). */
#ifndef LT_DATA_H
#define LT_DATA_H

#include <stdint.h>

#include "err.h"

#define DATA_MAGIC 20240520

typedef struct {
  char path[1024];
  int64_t n_tokens;
  uint32_t *tokens;
} data_file;

int data_open(data_file *d, const char *path, int vocab_size, lt_error *err);
void data_close(data_file *d);

/* Fills inputs[B*T] and targets[B*T] (targets = inputs shifted by one) from
 * B windows of T+1 tokens. Window starts are a pure function of (seed, step,
 * b), so any step's batch can be reproduced without replaying earlier ones
 * (resume needs no loader state). Needs n_tokens >= T+1. */
int data_batch(const data_file *d, uint64_t seed, int64_t step, int B, int T,
               int32_t *inputs, int32_t *targets, lt_error *err);

/* Writes a .bin file (version 1 if every id < 65536, else 2), via a
 * temporary file and rename. */
int data_write(const char *path, const uint32_t *tokens, int64_t n,
               lt_error *err);

#endif
