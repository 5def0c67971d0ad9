/* tune_prune.h: what lisa tune reads from a variant's compile before
 * spending time on it: ptxas's registers, spills and shared memory, the
 * occupancy they allow on the device (its limits by SM version, as the CUDA
 * occupancy calculator has them), and whether that rules the variant out. */
#ifndef LT_TUNE_PRUNE_H
#define LT_TUNE_PRUNE_H

#include <stddef.h>

typedef struct {
  int regs_per_sm, max_regs_per_thread, max_threads_per_sm, max_warps_per_sm,
      max_blocks_per_sm, smem_per_sm, smem_per_block, smem_reserved_per_block;
} tp_limits;

/* The limits of "sm_XY" (sm_70 .. sm_120; the nearest older one otherwise);
 * -1 when arch is not such a name. */
int tp_limits_of(const char *arch, tp_limits *out);

typedef struct {
  int registers;    /* per thread */
  int spill_bytes;  /* spill stores */
  int smem;         /* static + dynamic shared memory per block, bytes */
  int threads;      /* per block */
  int blocks_per_sm;  /* tp_occupancy's */
  double occupancy;   /* resident warps / the SM's maximum */
} tp_stats;

/* s->blocks_per_sm and s->occupancy from the rest of s: 0 blocks when the
 * block cannot launch at all. */
void tp_occupancy(tp_stats *s, const tp_limits *l);

/* Why variant v is not worth checking, given the default's statistics d, or
 * NULL: it cannot launch, or it spills registers where the default does not. */
const char *tp_prune_reason(const tp_stats *v, const tp_stats *d, char *buf, size_t cap);

#endif
