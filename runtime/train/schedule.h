/* schedule.h: LISA's schedule, the decisions both trainers follow. Which
 * middle blocks train this period (drawn by the lisa_sampler at each
 * period's first step), which gradient slot each holds (ms_state's binding:
 * a block that stays keeps its slot, one that leaves frees it, one that
 * enters gets a free slot, reported as fresh so the optimizer zeroes its
 * moments), which optimizer regions train, and each instance's path.
 *
 * Regions: SCHED_REGION_EMBED, _HEAD, then SCHED_REGION_SLOTS + slot.
 * Full fine-tuning and LoRA have no sampler: every block is bound for good.
 * Everything is allocated by sched_create; nothing after. */
#ifndef LT_SCHEDULE_H
#define LT_SCHEDULE_H

#include <stdint.h>

#include "err.h"
#include "lisa_sampler.h"
#include "model_state.h"

enum { SCHED_REGION_EMBED, SCHED_REGION_HEAD, SCHED_REGION_SLOTS };

typedef struct {
  int sample;                  /* LISA: draw middle blocks per period; 0: all, for good */
  int train_embed, train_head; /* E and H train */
  lisa_sampler_config lisa;    /* sample: mode, gamma, interval, policy (n_layers, seed set here) */
  uint64_t seed;
} sched_config;

typedef struct {
  ms_state *state;        /* its gradient-slot binding is the schedule's to change */
  lisa_sampler *sampler;  /* NULL: every block bound for good */
  int n_layer, n_regions, train_embed, train_head, lua_policy;
  int *active, n_active;  /* blocks training this period, ascending */
  int *path;              /* [n_inst] path_kind of each instance */
  unsigned char *on;      /* [n_regions] region trains this period */
  int *fresh, n_fresh;    /* slots a block entered at the last switch */
  int *scratch;           /* [2 n_layer + 2] for switching */
  int sampled;            /* an active set has been drawn */
} lisa_schedule;

int sched_create(lisa_schedule *s, ms_state *state, const sched_config *c, lt_error *err);
void sched_free(lisa_schedule *s);

/* Does step begin a new period (a set is to be drawn)? A schedule with no
 * set yet draws at its first step, wherever that falls. */
int sched_is_new_period(const lisa_schedule *s, int64_t step);
/* A Lua policy draws at this step and reads the weight norms: a device
 * trainer brings the host's weights up to date first. */
int sched_reads_weight_norms(const lisa_schedule *s, int64_t step);
/* Draws and applies a new set where step begins a period (*switched); the
 * stats are for a Lua policy. */
int sched_begin_step(lisa_schedule *s, int64_t step, const lisa_layer_stats *stats, int *switched,
                     lt_error *err);
/* Puts back a saved period (checkpoint resume): each block's slot, the
 * active set and whether it was drawn; checks they fit (slots in range and
 * bound once, a block active exactly when it holds a slot). */
int sched_restore(lisa_schedule *s, const int *grad_slot, const int *active, int n_active,
                  int sampled, lt_error *err);

/* The decisions, read by the trainers. */
int sched_path(const lisa_schedule *s, int inst);
const int *sched_paths(const lisa_schedule *s);
int sched_region_on(const lisa_schedule *s, int region);
const int *sched_active(const lisa_schedule *s, int *n_active);
/* The region of block layer's gradients, or -1 while it holds no slot. */
int sched_block_region(const lisa_schedule *s, int layer);
int sched_n_regions(const lisa_schedule *s);
int sched_is_sampled(const lisa_schedule *s);
int sched_samples(const lisa_schedule *s); /* LISA (a sampler), not FT/LoRA */
const int *sched_fresh_slots(const lisa_schedule *s, int *n_fresh);

#endif
