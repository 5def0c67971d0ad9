/* dev_comm.h: the collectives a device trainer on several ranks sums its
 * gradients with (dt_use_comm): NCCL's over the device's streams
 * (nccl_comm.h), whatever the device. */
#ifndef LT_DEV_COMM_H
#define LT_DEV_COMM_H

#include <stdint.h>

#include "err.h"

typedef struct {
  void *ctx;
  int rank, ranks;
  /* Queues the in-place sum over ranks of n elements at p (elem_bytes 4:
   * fp32, 2: bf16) after the device's work enqueued so far, and returns
   * without waiting: the device goes on with what follows (the backward of
   * earlier blocks) while the sum runs. */
  int (*sum)(void *ctx, void *p, int64_t n, int elem_bytes, lt_error *err);
  /* Between group(1) and group(0), share queues the copy of n elements at
   * p from rank root to every rank's p (in place), all after the device's
   * work enqueued before group(1): --zero 1's updated weights from their
   * owners. Every rank makes the same calls in the same order. */
  int (*group)(void *ctx, int begin, lt_error *err);
  int (*share)(void *ctx, void *p, int64_t n, int elem_bytes, int root, lt_error *err);
  /* The device's work enqueued from now on waits for every sum queued. */
  int (*join)(void *ctx, lt_error *err);
  /* The in-place sum over ranks of n host values, now (a step's loss). */
  int (*sum_host)(void *ctx, double *x, int n, lt_error *err);
  /* Around a host wait for the device, which a rank that stopped would
   * make endless: on 1 arms the collectives' timeout, 0 disarms it. */
  void (*watch)(void *ctx, int on);
} dt_comm;

#endif
