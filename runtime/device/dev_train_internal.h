/* dev_train_internal.h: the device trainer's state, shared by its two
 * files: dev_train.c (the arena, tables, steps and store) and
 * dev_train_ranks.c (several ranks: the gradients' sums as the backward
 * goes, and --zero 1's shards). Not for other modules: dev_train.h is the
 * interface. */
#ifndef LT_DEV_TRAIN_INTERNAL_H
#define LT_DEV_TRAIN_INTERNAL_H

#include <stdint.h>

#include "dev_train.h"

/* templates/adamw.cuh's descriptors, as the host writes them. */
typedef struct {
  void *w;
  const void *g;
  void *m, *v;
  void *w_copy;
  long long numel;
  int32_t decay, step;
} dt_adamw_entry;

typedef struct {
  void *w;
  const void *g;
  void *m, *v;
  long long numel;
  int32_t decay, step;
} dt_adamw_entry_bf16;

_Static_assert(sizeof(dt_adamw_entry) == 56, "AdamWTensor is 56 bytes");
_Static_assert(sizeof(dt_adamw_entry_bf16) == 48, "AdamWTensorBf16 is 48 bytes");

/* A step the device may still be running: what its stats need, and its
 * host staging, reused two steps later (when it has surely finished). */
typedef struct {
  int valid;
  int64_t step;
  float lr;
  int switched, micro;
  double t0;               /* host clock when its enqueue began */
  double done;             /* a device without fences: when its enqueue ended (0: unknown) */
  int *active, n_active;   /* [n_layer] the active set it trained */
  int32_t *ids, *targets;  /* [micro][N] each; page-locked where the device has it */
  float *stats;            /* [grad_accum + 1]: its losses and gradient norm, copied back */
  uint64_t comm_bytes;     /* gradient bytes it summed over ranks */
  int64_t counted;         /* targets counted in the whole batch (every rank's rows) */
} dt_pending;

struct dev_trainer {
  trainer *host;       /* NULL for dt_arena_layout */
  const ms_state *s;   /* the host's layout: offsets of every param and gradient */
  const gen_program *prog;
  dt_device dev;
  path_exec_backend exec;     /* what steps run through: dev.exec, or a profiler over it */
  const gen_path *paths[IR_NSECTIONS][PATH_NKINDS]; /* NULL: the program has none */
  const gen_path *opt;
  int wb, gb, mb;      /* bytes per element of weights, gradients, moments */
  int masters;         /* bf16-mixed: fp32 masters of what trains */
  char *arena;
  size_t arena_bytes;
  uint64_t bytes[MEMORY_NCATEGORIES]; /* the arena by category */
  char *weights, *grads, *master, *mom1, *mom2, *ids, *targets, *stats, *scratch;
  char *dgrad[2];      /* activation gradients, alternating by instance */
  char *outputs;       /* each instance's output */
  size_t *out_off;     /* [n_inst] */
  char *saved;         /* each instance's saved activations */
  size_t *saved_off;   /* [n_inst] */
  size_t saved_stride_block;
  char *slots;         /* ACTIVE-only saved activations, one region per slot */
  size_t slot_bytes;
  size_t *offs[IR_NSECTIONS][PATH_NKINDS]; /* [n_bufs]: a SAVED buffer's offset in its region */
  unsigned char *in_slot[PATH_NKINDS];     /* [n_bufs] of block paths: lives in the slot */
  void *opt_bufs[GEN_OPT_NBUFS];
  void **tables;       /* [n_inst][PATH_NKINDS] pointer tables, each max_bufs long */
  int max_bufs;
  int *slot_of;        /* [n_layer] the slot each block's device state is in */
  int64_t *start;      /* [n_regions] the update the region's AdamW count began at */
  int64_t updates;     /* AdamW updates done */
  unsigned char *table_host;
  int n_entries;       /* AdamW's table: whole tensors, or under --zero 1 this rank's pieces */
  unsigned char *norm_host; /* --zero 1: the norm's table of every whole tensor that trains */
  void *norm_table;         /* its device copy (NULL: the norm reads AdamW's table) */
  int n_tensors;            /* tensors that train now (the norm's entries) */
  /* --zero 1 on several ranks: this rank's share of each region, [sh_lo,
   * sh_lo + sh_n) of the gradient layout, its moments at sh_at (NULL: the
   * moments are whole, laid out as the gradients) */
  int64_t *sh_lo, *sh_n, *sh_at, moment_scalars;
  int zero_rank, zero_ranks;
  float *whole_m, *whole_v; /* --zero 1: whole host moments while a state is saved or loaded */
  void *convert;       /* host staging for conversions, max tensor */
  int64_t max_numel;   /* the largest tensor's elements */
  dt_pending pend[2];  /* steps by parity */
  dt_comm comm;        /* several ranks (dt_use_comm); ranks 0: alone */
  int *sum_after;      /* [n_regions] the instance whose backward completes the region's
                          gradients this step (the sum follows it), -1: none writes them */
  double last_done;    /* host clock when a step was last seen finished */
};

/* A piece of a tensor that trains: elements [at, at + n) of (p, layer),
 * its moments from index mom of the moments' arrays. */
typedef struct {
  int p, layer, region;
  int64_t at, n, mom;
} dt_piece;

/* Regions are train.h's: the region (p, layer)'s gradients are in while it
 * trains now, -1 when it does not train. */
int dt_region_on(const dev_trainer *d, int p, int layer);
/* Every tensor that trains now, embed, blocks by layer, head (the CPU's
 * order of the norm's sum), to fn; stops at fn's first -1. */
typedef int (*dt_tensor_fn)(dev_trainer *d, int p, int layer, int region, void *arg);
int dt_each_trained(dev_trainer *d, dt_tensor_fn fn, void *arg);

/* ---- dev_train_ranks.c --------------------------------------------------- */

static inline int dt_several_ranks(const dev_trainer *d) { return d->comm.ranks > 1; }
/* Each region's last writer in backward order, for the active set (at
 * dt_use_comm and each time the set changes). */
void dt_plan_sums(dev_trainer *d);
/* After instance inst's backward: the sums of the regions it completed. */
int dt_sum_completed(dev_trainer *d, int inst, uint64_t *bytes, lt_error *err);
/* --zero 1: the part of (p, layer) in rank k's share of its region. */
dt_piece dt_share_piece(const dev_trainer *d, int p, int layer, int region, int k);
/* --zero 1, after AdamW: every rank's updated pieces to every rank. */
int dt_share_updates(dev_trainer *d, uint64_t *bytes, lt_error *err);
/* --zero 1 on several ranks: this rank's shares (before the arena's layout). */
int dt_shard_moments(dev_trainer *d, lt_error *err);
/* param_store.moments_whole over the shares. */
int dt_moments_whole(void *ctx, int whole, int gather, lt_error *err);

#endif
