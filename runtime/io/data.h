/* data.h: token files in llm.c's .bin format.
 *
 * Header: 256 little-endian int32: [0] magic 20240520, [1] version (1: ids
 * are uint16; 2: uint32), [2] token count; then the ids. The loader reads the
 * whole file, checks the header against the file size (truncation is an
 * error naming the file and how many tokens are missing) and every id
 * against the vocabulary (an error naming the file and the token position).
 *
 * Loss mask: an optional file beside the tokens, `<tokens>.mask`: 256 int32
 * header ints ([0] magic 20240801, [1] version 1, [2] token count, which
 * must equal the token file's) then one uint8 per token, 1 where predicting
 * that token counts in the loss, 0 where it does not. A batch's target is
 * DATA_IGNORE where the mask is 0 (transformers' labels -100); the loss is
 * the mean over counted targets. docs/data.md describes both files. */
#ifndef LT_DATA_H
#define LT_DATA_H

#include <stdint.h>

#include "err.h"

#define DATA_MAGIC 20240520
#define DATA_MASK_MAGIC 20240801
#define DATA_IGNORE (-1) /* a target that does not count in the loss */

typedef struct {
  char path[1024];
  int64_t n_tokens;
  uint32_t *tokens;
  uint8_t *mask;      /* [n_tokens] or NULL: every target counts */
  int64_t n_counted;  /* tokens whose mask is 1 (n_tokens without a mask) */
} data_file;

/* Reads path and, when it exists, path.mask. */
int data_open(data_file *d, const char *path, int vocab_size, lt_error *err);
void data_close(data_file *d);

/* Fills inputs[B*T] and targets[B*T] (targets = inputs shifted by one;
 * DATA_IGNORE where masked) from B windows of T+1 tokens. Window starts are a pure function of (seed, step,
 * b), so any step's batch can be reproduced without replaying earlier ones
 * (resume needs no loader state). Needs n_tokens >= T+1. */
int data_batch(const data_file *d, uint64_t seed, int64_t step, int B, int T,
               int32_t *inputs, int32_t *targets, lt_error *err);

/* Batch `index` of a sweep over non-overlapping windows of T+1 tokens:
 * windows index*B .. index*B + B - 1, window w starting at token w*(T+1)
 * (evaluation). Needs (index*B + B)*(T+1) <= n_tokens. */
int data_batch_sequential(const data_file *d, int64_t index, int B, int T, int32_t *inputs,
                          int32_t *targets, lt_error *err);

/* The counted targets data_batch(d, seed, step, B, T) would give, without
 * building the batch (the step's loss divides by them before its first
 * micro-batch runs). */
int64_t data_batch_counted(const data_file *d, uint64_t seed, int64_t step, int B, int T);

/* The batches of that sweep: every full one, at most max (0: no limit);
 * -1 with an error naming the file when not one fits. */
int64_t data_sweep_batches(const data_file *d, int B, int T, int64_t max, lt_error *err);

/* Targets that count in the loss (not DATA_IGNORE). */
int64_t data_count_targets(const int32_t *targets, int64_t n);

/* Writes a .bin file (version 1 if every id < 65536, else 2), via a
 * temporary file and rename. */
int data_write(const char *path, const uint32_t *tokens, int64_t n,
               lt_error *err);

/* Writes a .mask file for n tokens (every value 0 or 1), atomically. */
int data_write_mask(const char *path, const uint8_t *mask, int64_t n, lt_error *err);

#endif
