/* tune_prune.c: occupancy from compile statistics (tune_prune.h). */
#include "tune_prune.h"

#include <stdio.h>

/* CUDA C Programming Guide, "Technical Specifications per Compute
 * Capability": every SM from Volta has 64K registers and 255 a thread. */
static const struct {
  int sm, threads, blocks, smem_sm, smem_block, reserved;
} limits[] = {
    {70, 2048, 32, 98304, 98304, 0},       {75, 1024, 16, 65536, 65536, 0},
    {80, 2048, 32, 167936, 166912, 1024},  {86, 1536, 16, 102400, 101376, 1024},
    {87, 2048, 32, 167936, 166912, 1024},  {89, 1536, 24, 102400, 101376, 1024},
    {90, 2048, 32, 233472, 232448, 1024},  {100, 2048, 32, 233472, 232448, 1024},
    {120, 1536, 32, 102400, 101376, 1024},
};

int tp_limits_of(const char *arch, tp_limits *out) {
  int sm = 0;
  if (sscanf(arch, "sm_%d", &sm) != 1 || sm < 10) return -1; /* sm_90a: sm_90's */
  size_t i = 0;
  while (i + 1 < sizeof limits / sizeof limits[0] && limits[i + 1].sm <= sm) i++;
  *out = (tp_limits){.regs_per_sm = 65536, .max_regs_per_thread = 255,
                     .max_threads_per_sm = limits[i].threads,
                     .max_warps_per_sm = limits[i].threads / 32,
                     .max_blocks_per_sm = limits[i].blocks, .smem_per_sm = limits[i].smem_sm,
                     .smem_per_block = limits[i].smem_block,
                     .smem_reserved_per_block = limits[i].reserved};
  return 0;
}

static int min_int(int a, int b) { return a < b ? a : b; }

void tp_occupancy(tp_stats *s, const tp_limits *l) {
  const int warps = (s->threads + 31) / 32;
  /* registers go to warps in units of 256; a thread has at least one */
  const int regs = s->registers > 0 ? s->registers : 1;
  const int per_warp = (regs * 32 + 255) / 256 * 256;
  const int smem = s->smem + l->smem_reserved_per_block;
  int blocks = s->threads < 1 || s->threads > 1024 || regs > l->max_regs_per_thread ||
                       s->smem > l->smem_per_block
                   ? 0
                   : l->max_blocks_per_sm;
  if (blocks) {
    blocks = min_int(blocks, l->max_warps_per_sm / warps);
    blocks = min_int(blocks, l->regs_per_sm / (per_warp * warps));
    if (s->smem > 0) blocks = min_int(blocks, l->smem_per_sm / smem);
  }
  s->blocks_per_sm = blocks;
  s->occupancy = (double)(blocks * warps) / l->max_warps_per_sm;
}

const char *tp_prune_reason(const tp_stats *v, const tp_stats *d, char *buf, size_t cap) {
  if (v->blocks_per_sm == 0) {
    snprintf(buf, cap, "pruned: cannot launch (%d registers x %d threads, %d bytes of shared memory)",
             v->registers, v->threads, v->smem);
    return buf;
  }
  if (v->spill_bytes > 0 && d->spill_bytes == 0) {
    snprintf(buf, cap, "pruned: spills %d bytes of registers, the default none", v->spill_bytes);
    return buf;
  }
  return NULL;
}
