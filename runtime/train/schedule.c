#include "schedule.h"

#include <stdlib.h>
#include <string.h>

#include "path.h"

/* Which regions train and which path each instance takes this period. With
 * the embedding frozen, no gradient has to go below the lowest active block,
 * so the blocks under it (and the embedding) skip backward entirely. */
static void plan_paths(lisa_schedule *s) {
  const ms_state *st = s->state;
  int n_layer = s->n_layer, lowest = s->n_active ? s->active[0] : n_layer;
  memset(s->on, 0, (size_t)s->n_regions);
  s->on[SCHED_REGION_EMBED] = (unsigned char)s->train_embed;
  s->on[SCHED_REGION_HEAD] = (unsigned char)s->train_head;
  for (int l = 0; l < n_layer; l++) {
    int slot = st->grad_slot[l];
    if (slot >= 0) s->on[SCHED_REGION_SLOTS + slot] = 1;
    int below = !s->train_embed && l < lowest;
    s->path[1 + l] = slot >= 0 ? PATH_ACTIVE : below ? PATH_FORWARD : PATH_FROZEN;
  }
  s->path[0] = s->train_embed ? PATH_ACTIVE : PATH_FORWARD;
  s->path[ms_head_inst(st)] = s->train_head ? PATH_ACTIVE
                              : (s->train_embed || s->n_active) ? PATH_FROZEN : PATH_FORWARD;
}

int sched_create(lisa_schedule *s, ms_state *state, const sched_config *c, lt_error *err) {
  memset(s, 0, sizeof *s);
  s->state = state;
  s->n_layer = state->ir->n_layer;
  s->n_regions = SCHED_REGION_SLOTS + state->n_grad_slots;
  s->train_embed = c->train_embed, s->train_head = c->train_head;
  int n = s->n_layer + 1;
  s->active = calloc((size_t)n, sizeof(int));
  s->scratch = calloc((size_t)(2 * n), sizeof(int));
  s->path = calloc((size_t)(state->n_inst + 1), sizeof(int));
  s->on = calloc((size_t)s->n_regions, 1);
  s->fresh = calloc((size_t)(state->n_grad_slots + 1), sizeof(int));
  if (!s->active || !s->scratch || !s->path || !s->on || !s->fresh)
    return lt_fail(err, "out of memory");
  if (c->sample) {
    lisa_sampler_config sc = c->lisa;
    sc.n_layers = s->n_layer, sc.seed = c->seed;
    if (lisa_sampler_create(&s->sampler, &sc, err)) return -1;
    s->lua_policy = c->lisa.mode == LISA_SAMPLE_LUA;
  }
  /* FT and LoRA: every block active for good; LISA: none until the first draw */
  for (int l = 0; l < s->n_layer; l++) {
    if (!c->sample) s->active[s->n_active++] = l;
    else ms_bind_grad_slot(state, l, -1);
  }
  plan_paths(s);
  return 0;
}

void sched_free(lisa_schedule *s) {
  lisa_sampler_free(s->sampler);
  free(s->active);
  free(s->scratch);
  free(s->path);
  free(s->on);
  free(s->fresh);
  memset(s, 0, sizeof *s);
}

static int contains(const int *set, int n, int x) {
  for (int i = 0; i < n; i++)
    if (set[i] == x) return 1;
  return 0;
}

/* Frees the slots of blocks that leave, gives free slots to blocks that
 * enter (listed as fresh); blocks that stay keep theirs. */
static void apply_active_set(lisa_schedule *s, const int *next, int n_next) {
  ms_state *st = s->state;
  unsigned char *slot_used = (unsigned char *)s->scratch;
  memset(slot_used, 0, (size_t)st->n_grad_slots);
  for (int l = 0; l < s->n_layer; l++) {
    if (st->grad_slot[l] >= 0 && !contains(next, n_next, l)) ms_bind_grad_slot(st, l, -1);
    if (st->grad_slot[l] >= 0) slot_used[st->grad_slot[l]] = 1;
  }
  s->n_fresh = 0;
  for (int i = 0; i < n_next; i++) {
    int l = next[i];
    if (st->grad_slot[l] >= 0) continue;
    int slot = 0;
    while (slot_used[slot]) slot++;
    slot_used[slot] = 1;
    s->fresh[s->n_fresh++] = slot;
    ms_bind_grad_slot(st, l, slot);
  }
  memcpy(s->active, next, sizeof(int) * (size_t)n_next);
  s->n_active = n_next;
}

int sched_is_new_period(const lisa_schedule *s, int64_t step) {
  /* ckpt_resume puts back a period already begun rather than re-drawing
   * it: a Lua policy asked again mid-period would see other norms. */
  return s->sampler && (lisa_sampler_is_boundary(s->sampler, step) || !s->sampled);
}

int sched_reads_weight_norms(const lisa_schedule *s, int64_t step) {
  return s->lua_policy && sched_is_new_period(s, step);
}

int sched_begin_step(lisa_schedule *s, int64_t step, const lisa_layer_stats *stats, int *switched,
                     lt_error *err) {
  *switched = sched_is_new_period(s, step);
  if (!*switched) return 0;
  int *next = s->scratch + s->n_layer + 1, n_next = 0;
  if (lisa_sampler_sample(s->sampler, step, stats, next, &n_next, err)) return -1;
  apply_active_set(s, next, n_next);
  plan_paths(s);
  s->sampled = 1;
  return 0;
}

static int check_saved_slots(const lisa_schedule *s, const int *grad_slot, lt_error *err) {
  int n_slots = s->state->n_grad_slots;
  unsigned char *used = (unsigned char *)s->scratch;
  memset(used, 0, (size_t)n_slots);
  for (int l = 0; l < s->n_layer; l++) {
    int slot = grad_slot[l];
    if (slot < -1 || slot >= n_slots)
      return lt_fail(err, "block %d: gradient slot %d is not in [-1, %d)", l, slot, n_slots);
    if (slot >= 0 && used[slot]++) return lt_fail(err, "gradient slot %d is bound twice", slot);
  }
  return 0;
}

static int check_saved_active(const lisa_schedule *s, const int *grad_slot, const int *active,
                              int n_active, lt_error *err) {
  int n_layer = s->n_layer, n_bound = 0;
  for (int i = 0; i < n_active; i++) {
    if (active[i] < 0 || active[i] >= n_layer || (i && active[i] <= active[i - 1]))
      return lt_fail(err, "the active set is not ascending block indices in [0, %d)", n_layer);
    if (grad_slot[active[i]] < 0)
      return lt_fail(err, "block %d is active but holds no gradient slot", active[i]);
  }
  for (int l = 0; l < n_layer; l++) n_bound += grad_slot[l] >= 0;
  if (n_bound != n_active)
    return lt_fail(err, "%d blocks hold gradient slots but %d are active", n_bound, n_active);
  if (!s->sampler && n_active != n_layer)
    return lt_fail(err, "full fine-tuning trains every block, not %d of %d", n_active, n_layer);
  return 0;
}

int sched_restore(lisa_schedule *s, const int *grad_slot, const int *active, int n_active,
                  int sampled, lt_error *err) {
  if (n_active < 0 || n_active > s->n_layer)
    return lt_fail(err, "%d active blocks, the model has %d", n_active, s->n_layer);
  if (check_saved_slots(s, grad_slot, err) ||
      check_saved_active(s, grad_slot, active, n_active, err))
    return -1;
  for (int l = 0; l < s->n_layer; l++) ms_bind_grad_slot(s->state, l, grad_slot[l]);
  memcpy(s->active, active, sizeof(int) * (size_t)n_active);
  s->n_active = n_active;
  s->sampled = sampled;
  s->n_fresh = 0;
  plan_paths(s);
  return 0;
}

int sched_path(const lisa_schedule *s, int inst) { return s->path[inst]; }
const int *sched_paths(const lisa_schedule *s) { return s->path; }
int sched_region_on(const lisa_schedule *s, int region) { return s->on[region]; }
int sched_n_regions(const lisa_schedule *s) { return s->n_regions; }
int sched_is_sampled(const lisa_schedule *s) { return s->sampled; }
int sched_samples(const lisa_schedule *s) { return s->sampler != NULL; }

const int *sched_active(const lisa_schedule *s, int *n_active) {
  *n_active = s->n_active;
  return s->active;
}

int sched_block_region(const lisa_schedule *s, int layer) {
  int slot = s->state->grad_slot[layer];
  return slot < 0 ? -1 : SCHED_REGION_SLOTS + slot;
}

const int *sched_fresh_slots(const lisa_schedule *s, int *n_fresh) {
  *n_fresh = s->n_fresh;
  return s->fresh;
}
