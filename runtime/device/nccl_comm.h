/* nccl_comm.h: dt_comm (dev_comm.h) over an NCCL communicator of every
 * rank of the world: rank 0's unique id reaches the others over MPI
 * (dist_broadcast), then each sum is one ncclAllReduce on a stream of its
 * own that first waits for the device's work so far, so sums overlap the
 * backward that follows; join makes the device's next work wait for them.
 * The library is NCCL, or the emulator's (nccl_lib.h), which has no
 * streams. */
#ifndef LT_NCCL_COMM_H
#define LT_NCCL_COMM_H

#include "dev_comm.h"
#include "dist.h"
#include "nccl_lib.h"

/* The device's streams as the collectives use them. */
typedef struct {
  void *ctx;
  void *stream; /* what NCCL's calls go on (a CUstream); NULL for the emulator */
  /* stream waits for the device's work enqueued so far; NULL: nothing to do */
  int (*after_compute)(void *ctx, lt_error *err);
  /* the device's work enqueued from now on waits for stream; NULL: nothing */
  int (*compute_waits)(void *ctx, lt_error *err);
} ncomm_streams;

typedef struct ncomm ncomm;

/* A communicator of every rank of world (a collective: every rank calls
 * it). Takes lib (closed with it, also on failure). */
int ncomm_open(ncomm **out, nccl_lib *lib, dist_comm *world, const ncomm_streams *st,
               lt_error *err);
dt_comm ncomm_iface(ncomm *c);
/* The library's name ("NCCL 2.28.9"). */
const char *ncomm_library(const ncomm *c);
/* After the device's work has finished (no sum in flight). */
void ncomm_close(ncomm *c);

#endif
