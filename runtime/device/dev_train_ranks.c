/* dev_train_ranks.c: the device trainer on several ranks (dev_train.h's
 * dt_use_comm): each region's gradients summed right after the backward
 * that completes them, and --zero 1's shares of the moments, the pieces of
 * AdamW they update and the sharing of the updated pieces. */
#include <stdlib.h>
#include <string.h>

#include "dev_arena.h"
#include "dev_train_internal.h"

int dt_use_comm(dev_trainer *d, const dt_comm *comm, lt_error *err) {
  d->comm = *comm;
  free(d->sum_after);
  d->sum_after = malloc(sizeof *d->sum_after * (size_t)(TRAIN_REGION_SLOTS + d->s->n_grad_slots));
  if (!d->sum_after) return lt_fail(err, "out of memory");
  dt_plan_sums(d); /* then again whenever the active set changes (follow_active_set) */
  return 0;
}

/* Each region's last writer in backward order (the lowest instance whose
 * path accumulates into it: the embedding's table is also the tied head's),
 * for the active set. */
void dt_plan_sums(dev_trainer *d) {
  const ir_model *m = d->prog->m;
  for (int r = 0; r < TRAIN_REGION_SLOTS + d->s->n_grad_slots; r++) d->sum_after[r] = -1;
  for (int inst = d->s->n_inst - 1; inst >= 0; inst--) {
    if (sched_path(trainer_schedule(d->host), inst) == PATH_FORWARD) continue;
    const ir_graph *g = &m->sections[ms_inst_section(d->s, inst)];
    for (int v = 0; v < g->n_values; v++) {
      if (g->values[v].kind != IR_V_PARAM_GRAD) continue;
      int p = g->values[v].param;
      int r = dt_region_on(d, p, m->params[p].section == IR_BLOCK ? ms_inst_layer(d->s, inst) : 0);
      if (r >= 0) d->sum_after[r] = inst;
    }
  }
}

/* After instance inst's backward: the sums of the regions it completed,
 * queued while the device goes on with the blocks below. */
int dt_sum_completed(dev_trainer *d, int inst, uint64_t *bytes, lt_error *err) {
  for (int r = 0; r < TRAIN_REGION_SLOTS + d->s->n_grad_slots; r++) {
    if (d->sum_after[r] != inst) continue;
    int64_t begin, len;
    train_region_extent(d->s, r, &begin, &len);
    *bytes += (uint64_t)len * (uint64_t)d->gb;
    if (d->comm.sum(d->comm.ctx, d->grads + begin * d->gb, len, d->gb, err)) return -1;
  }
  return 0;
}

/* --zero 1: the part of (p, layer) in share k of its region (dist_share of
 * the region over the ranks), as a piece; n = 0 where they do not meet. */
dt_piece dt_share_piece(const dev_trainer *d, int p, int layer, int region, int k) {
  int64_t begin, len, lo, n;
  train_region_extent(d->s, region, &begin, &len);
  dist_share(len, k, d->zero_ranks, &lo, &n);
  lo += begin;
  const int64_t gi = ms_grad_index(d->s, p, layer), numel = ir_param_numel(&d->prog->m->params[p]);
  const int64_t a = gi > lo ? gi : lo, b = gi + numel < lo + n ? gi + numel : lo + n;
  return (dt_piece){p, layer, region, a - gi, a < b ? b - a : 0, d->sh_at[region] + (a - lo)};
}

/* --zero 1, after AdamW: every rank's updated pieces to every rank, in
 * place (the weights, and bf16-mixed's fp32 masters), in the same order on
 * every rank: tensor by tensor, share by share. */
typedef struct {
  uint64_t *bytes;
  lt_error *err;
} dt_share_arg;

static int share_tensor(dev_trainer *d, int p, int layer, int region, void *arg) {
  const dt_share_arg *a = arg;
  for (int k = 0; k < d->zero_ranks; k++) {
    const dt_piece e = dt_share_piece(d, p, layer, region, k);
    if (!e.n) continue;
    const int64_t wi = ms_param_index(d->s, p, layer) + e.at, gi = ms_grad_index(d->s, p, layer) + e.at;
    if (d->comm.share(d->comm.ctx, d->weights + wi * d->wb, e.n, d->wb, k, a->err) ||
        (d->masters && d->comm.share(d->comm.ctx, d->master + gi * 4, e.n, 4, k, a->err)))
      return -1;
    *a->bytes += (uint64_t)e.n * (uint64_t)(d->wb + (d->masters ? 4 : 0));
  }
  return 0;
}

int dt_share_updates(dev_trainer *d, uint64_t *bytes, lt_error *err) {
  dt_share_arg a = {bytes, err};
  if (d->comm.group(d->comm.ctx, 1, err)) return -1;
  int rc = dt_each_trained(d, share_tensor, &a);
  if (d->comm.group(d->comm.ctx, 0, err) || rc) return -1;
  return d->comm.join(d->comm.ctx, err); /* the next step's forward reads them */
}

/* --zero 1 on several ranks: this rank's share of each region, its moments
 * packed region after region (train_shard_layout: the CPU's split). */
int dt_shard_moments(dev_trainer *d, lt_error *err) {
  const train_config *c = trainer_config(d->host);
  if (!c->zero || dist_size(c->comm) == 1) return 0;
  const size_t n = (size_t)(TRAIN_REGION_SLOTS + d->s->n_grad_slots);
  d->sh_lo = malloc(n * sizeof *d->sh_lo);
  d->sh_n = malloc(n * sizeof *d->sh_n);
  d->sh_at = malloc(n * sizeof *d->sh_at);
  if (!d->sh_lo || !d->sh_n || !d->sh_at) return lt_fail(err, "out of memory");
  d->zero_rank = dist_rank(c->comm), d->zero_ranks = dist_size(c->comm);
  d->moment_scalars = train_shard_layout(d->s, d->zero_rank, d->zero_ranks, d->sh_lo, d->sh_n, d->sh_at);
  return 0;
}

/* This rank's share of region r's moments between the device and whole
 * host arrays (down: to the host), through the conversion staging. */
static int move_share(dev_trainer *d, int r, int down, lt_error *err) {
  for (int which = 0; which < 2; which++) {
    float *host = (which ? d->whole_v : d->whole_m) + d->sh_lo[r];
    char *dev = (which ? d->mom2 : d->mom1) + d->sh_at[r] * d->mb;
    for (int64_t i = 0; i < d->sh_n[r]; i += d->max_numel) {
      int64_t k = d->sh_n[r] - i < d->max_numel ? d->sh_n[r] - i : d->max_numel;
      if (down ? arena_download_f32(&d->dev, host + i, dev + i * d->mb, k, d->mb, d->convert, err)
               : arena_upload_f32(&d->dev, dev + i * d->mb, host + i, k, d->mb, d->convert, err))
        return -1;
    }
  }
  return 0;
}

/* --zero 1: whole moments on the host for a state (every rank calls it):
 * gathered from the ranks' shares to save, zeros to load into; then back
 * to this rank's share on the device. */
int dt_moments_whole(void *ctx, int whole, int gather, lt_error *err) {
  dev_trainer *d = ctx;
  if (!d->sh_lo) return 0;
  const int n_regions = TRAIN_REGION_SLOTS + d->s->n_grad_slots;
  if (!whole) {
    int rc = 0;
    for (int r = 0; rc == 0 && d->whole_m && r < n_regions; r++) rc = move_share(d, r, 0, err);
    free(d->whole_m), free(d->whole_v);
    d->whole_m = d->whole_v = NULL;
    return rc;
  }
  free(d->whole_m), free(d->whole_v);
  d->whole_m = calloc((size_t)d->s->n_grad_scalars + 1, sizeof(float));
  d->whole_v = calloc((size_t)d->s->n_grad_scalars + 1, sizeof(float));
  if (!d->whole_m || !d->whole_v) return lt_fail(err, "out of memory for the optimizer's state");
  dist_comm *world = trainer_config(d->host)->comm;
  for (int r = 0; gather && r < n_regions; r++) {
    int64_t begin, len;
    train_region_extent(d->s, r, &begin, &len);
    if (move_share(d, r, 1, err) || dist_gather_f32(world, d->whole_m + begin, len, NULL, err) ||
        dist_gather_f32(world, d->whole_v + begin, len, NULL, err))
      return -1;
  }
  return 0;
}
