#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "clock_ms.h"
#include "cpu_profile.h"
#include "executor.h"
#include "hash64.h"
#include "lora.h"
#include "model_source.h"
#include "model_yaml.h"
#include "weights.h"

/* ---- forward, backward, AdamW over regions ---------------------------- */

float train_forward(ms_state *s) {
  for (int inst = 0; inst < s->n_inst; inst++) exec_forward(s, inst);
  return ms_loss(s);
}

int train_sweep_loss(ms_state *s, const data_file *d, int64_t batches, train_loss_fn forward,
                     void *ctx, double *loss, int64_t *tokens, lt_error *err) {
  double sum = 0;
  *tokens = 0;
  for (int64_t b = 0; b < batches; b++) {
    float mean;
    if (data_batch_sequential(d, b, s->B, s->T, s->ids, s->targets, err) ||
        forward(ctx, &mean, err))
      return -1;
    const int64_t counted = data_count_targets(s->targets, s->N);
    sum += (double)mean * (double)counted, *tokens += counted;
  }
  *loss = *tokens ? sum / (double)*tokens : NAN;
  return 0;
}

void train_zero_grads(ms_state *s) { memset(s->grads, 0, s->bytes_grads); }

void train_backward(ms_state *s, const int *paths, float loss_scale) {
  for (int inst = s->n_inst - 1; inst >= 0; inst--)
    exec_backward(s, inst, paths ? paths[inst] : PATH_ACTIVE, loss_scale);
}

int train_optim_init(train_optim *o, const ms_state *s, lt_error *err) {
  return train_optim_init_moments(o, s, 1, err);
}

int train_optim_init_moments(train_optim *o, const ms_state *s, int moments, lt_error *err) {
  memset(o, 0, sizeof *o);
  o->n_regions = TRAIN_REGION_SLOTS + s->n_grad_slots;
  o->t = calloc((size_t)o->n_regions, sizeof *o->t);
  o->on = calloc((size_t)o->n_regions, 1);
  o->sq = calloc((size_t)o->n_regions, sizeof *o->sq);
  if (!o->t || !o->on || !o->sq || train_optim_shares(o, 0, 1, err)) return lt_fail(err, "out of memory");
  if (!moments) return 0;
  /* malloc + memset rather than calloc: the pages are touched here, not in
   * the first training step. */
  o->m = malloc(s->bytes_grads + 1);
  o->v = malloc(s->bytes_grads + 1);
  if (!o->m || !o->v)
    return lt_fail(err, "out of memory for %zu bytes of optimizer state", 2 * s->bytes_grads);
  memset(o->m, 0, s->bytes_grads);
  memset(o->v, 0, s->bytes_grads);
  o->moment_bytes = s->bytes_grads;
  return 0;
}

void train_optim_free(train_optim *o) {
  free(o->shard_lo), free(o->shard_n), free(o->shard_at);
  free(o->m);
  free(o->v);
  free(o->t);
  free(o->on);
  free(o->sq);
  free(o->sq_parts);
  memset(o, 0, sizeof *o);
}

int train_optim_shares(train_optim *o, int rank, int ranks, lt_error *err) {
  free(o->sq_parts);
  o->shares = ranks, o->rank = rank;
  o->sq_parts = calloc((size_t)o->n_regions * (size_t)ranks, sizeof *o->sq_parts);
  return o->sq_parts ? 0 : lt_fail(err, "out of memory");
}

/* The region of block `layer`'s gradients: its slot's, or -1 with none
 * (as sched_block_region, for callers that hold only the buffers). */
static int block_region(const ms_state *s, int layer) {
  return s->grad_slot[layer] < 0 ? -1 : TRAIN_REGION_SLOTS + s->grad_slot[layer];
}

/* The optimizer region of (p, layer), or -1 if it holds no gradient. */
static int region_of(const ms_state *s, int p, int layer) {
  if (s->grad_off[p] < 0) return -1; /* frozen (LoRA's base weights) */
  switch (s->ir->params[p].section) {
  case IR_EMBED: return TRAIN_REGION_EMBED;
  case IR_HEAD: return TRAIN_REGION_HEAD;
  default: return block_region(s, layer);
  }
}

void train_region_extent(const ms_state *s, int r, int64_t *begin, int64_t *len) {
  if (r == TRAIN_REGION_EMBED) *begin = 0, *len = s->grad_head_base;
  else if (r == TRAIN_REGION_HEAD) *begin = s->grad_head_base, *len = s->grad_slot_base - s->grad_head_base;
  else *begin = s->grad_slot_base + (r - TRAIN_REGION_SLOTS) * s->slot_stride, *len = s->slot_stride;
}

/* The elements of region r this rank updates, [*lo, *lo + *n) of the
 * gradient array, and where their moments start in m and v. */
static void shard_of(const ms_state *s, const train_optim *o, int r, int64_t *lo, int64_t *n,
                     int64_t *at) {
  if (!o->shard_at) {
    train_region_extent(s, r, lo, n);
    *at = *lo;
    return;
  }
  *lo = o->shard_lo[r], *n = o->shard_n[r], *at = o->shard_at[r];
}

int train_optim_shard(train_optim *o, const ms_state *s, int rank, int ranks, lt_error *err) {
  const size_t n = (size_t)o->n_regions;
  free(o->m), free(o->v); /* whole ones, if train_optim_init made them */
  o->m = o->v = NULL;
  o->shard_lo = malloc(n * sizeof *o->shard_lo);
  o->shard_n = malloc(n * sizeof *o->shard_n);
  o->shard_at = malloc(n * sizeof *o->shard_at);
  if (!o->shard_lo || !o->shard_n || !o->shard_at) return lt_fail(err, "out of memory");
  const int64_t total = train_shard_layout(s, rank, ranks, o->shard_lo, o->shard_n, o->shard_at);
  o->moment_bytes = (uint64_t)total * sizeof(float);
  o->m = calloc((size_t)total + 1, sizeof(float));
  o->v = calloc((size_t)total + 1, sizeof(float));
  return o->m && o->v ? 0 : lt_fail(err, "out of memory for the optimizer's shard");
}

int64_t train_shard_layout(const ms_state *s, int rank, int ranks, int64_t *lo, int64_t *n,
                           int64_t *at) {
  int64_t total = 0;
  for (int r = 0; r < TRAIN_REGION_SLOTS + s->n_grad_slots; r++) {
    int64_t begin, len, first, count;
    train_region_extent(s, r, &begin, &len);
    dist_share(len, rank, ranks, &first, &count);
    if (lo) lo[r] = begin + first, n[r] = count, at[r] = total;
    total += count;
  }
  return total;
}

int trainer_moments_full(trainer *t, int gather, lt_error *err) {
  const train_optim *o = &t->opt;
  const ms_state *s = &t->state;
  if (t->store.moments_whole) return t->store.moments_whole(t->store.ctx, 1, gather, err);
  if (!o->shard_at) return 0;
  float *m = calloc(s->bytes_grads / sizeof(float) + 1, sizeof(float)),
        *v = calloc(s->bytes_grads / sizeof(float) + 1, sizeof(float));
  int rc = m && v ? 0 : lt_fail(err, "out of memory for the optimizer's state");
  for (int r = 0; rc == 0 && gather && r < o->n_regions; r++) {
    int64_t begin, len;
    train_region_extent(s, r, &begin, &len);
    memcpy(m + o->shard_lo[r], o->m + o->shard_at[r], sizeof *m * (size_t)o->shard_n[r]);
    memcpy(v + o->shard_lo[r], o->v + o->shard_at[r], sizeof *v * (size_t)o->shard_n[r]);
    rc = dist_gather_f32(t->cfg.comm, m + begin, len, NULL, err) ||
         dist_gather_f32(t->cfg.comm, v + begin, len, NULL, err) ? -1 : 0;
  }
  if (rc) return free(m), free(v), -1;
  t->host_arrays.m = m, t->host_arrays.v = v;
  return 0;
}

int trainer_moments_shard(trainer *t, lt_error *err) {
  const train_optim *o = &t->opt;
  float *m = t->host_arrays.m, *v = t->host_arrays.v;
  if (t->store.moments_whole) return t->store.moments_whole(t->store.ctx, 0, 0, err);
  if (!o->shard_at || !m) return 0;
  for (int r = 0; r < o->n_regions; r++) {
    memcpy(o->m + o->shard_at[r], m + o->shard_lo[r], sizeof *m * (size_t)o->shard_n[r]);
    memcpy(o->v + o->shard_at[r], v + o->shard_lo[r], sizeof *v * (size_t)o->shard_n[r]);
  }
  free(m), free(v);
  t->host_arrays.m = t->host_arrays.v = NULL;
  return 0;
}

void train_grad_squares(const ms_state *s, train_optim *o) {
  for (int r = 0; r < o->n_regions; r++) {
    if (!o->on[r]) continue;
    int64_t begin, len;
    train_region_extent(s, r, &begin, &len);
    for (int k = 0; k < o->shares; k++) {
      int64_t lo, n;
      dist_share(len, k, o->shares, &lo, &n);
      o->sq_parts[(size_t)r * o->shares + k] =
          o->shard_at && k != o->rank ? 0.0 : opt_sum_squares(s->grads + begin + lo, n);
    }
  }
}

/* Sum of squares of the gradients that train, from the shares' sums: each
 * region's shares in order, the regions in a fixed order (embed, blocks by
 * layer, head), so full fine-tuning and LISA with every block active
 * compute the same norm bit for bit. */
static double trained_sum_squares(const ms_state *s, train_optim *o) {
  double total = 0.0;
  int n_layer = s->ir->n_layer;
  for (int i = -1; i <= n_layer; i++) {
    int r = i < 0 ? TRAIN_REGION_EMBED : i == n_layer ? TRAIN_REGION_HEAD : block_region(s, i);
    if (r < 0 || !o->on[r]) continue;
    o->sq[r] = 0.0;
    for (int k = 0; k < o->shares; k++) o->sq[r] += o->sq_parts[(size_t)r * o->shares + k];
    total += o->sq[r];
  }
  return total;
}

double train_adamw(ms_state *s, const opt_config *c, float lr, train_optim *o) {
  train_grad_squares(s, o);
  return train_adamw_squared(s, c, lr, o);
}

double train_adamw_squared(ms_state *s, const opt_config *c, float lr, train_optim *o) {
  double norm = sqrt(trained_sum_squares(s, o));
  float scale = opt_clip_scale(c, norm);
  for (int r = 0; r < o->n_regions; r++) o->t[r] += o->on[r];
  const ir_model *m = s->ir;
  for (int p = 0; p < m->n_params; p++) {
    float wd = m->params[p].decay ? c->weight_decay : 0.0f;
    int64_t n = ir_param_numel(&m->params[p]);
    int layers = ps_param_layers(m, p);
    for (int l = 0; l < layers; l++) {
      int r = region_of(s, p, l);
      if (r < 0 || !o->on[r]) continue;
      /* the part of (p, l) in this rank's shard of the region (all of it alone) */
      const int64_t off = ms_grad(s, p, l) - s->grads;
      int64_t lo, k, at;
      shard_of(s, o, r, &lo, &k, &at);
      const int64_t a = off > lo ? off : lo, b = off + n < lo + k ? off + n : lo + k;
      if (a < b)
        opt_adamw_update(ms_param(s, p, l) + (a - off), s->grads + a, o->m + at + (a - lo),
                         o->v + at + (a - lo), b - a, lr, wd, c, o->t[r], scale);
    }
  }
  return norm;
}

/* ---- LISA: following the schedule ------------------------------------- */

/* The regions the schedule trains, and fresh moments with a restarted
 * count for each slot a block entered. */
static void follow_schedule(trainer *t) {
  ms_state *s = &t->state;
  memcpy(t->opt.on, t->sched.on, (size_t)t->opt.n_regions);
  int n_fresh;
  const int *fresh = sched_fresh_slots(&t->sched, &n_fresh);
  for (int i = 0; i < n_fresh; i++) {
    int64_t lo, len, at;
    shard_of(s, &t->opt, TRAIN_REGION_SLOTS + fresh[i], &lo, &len, &at);
    if (t->opt.m) { /* none on the host of a device trainer */
      memset(t->opt.m + at, 0, (size_t)len * sizeof(float));
      memset(t->opt.v + at, 0, (size_t)len * sizeof(float));
    }
    t->opt.t[TRAIN_REGION_SLOTS + fresh[i]] = 0;
  }
}

/* Sums of squares of every parameter: sq[0] the embedding's, sq[1 + l]
 * block l's, sq[n_layer + 1] the head's. On the host, each region's
 * contiguous span at once; from another store, a tensor at a time. */
static int weight_squares(const trainer *t, double *sq, lt_error *err) {
  const ms_state *s = &t->state;
  const ir_model *m = &t->ir;
  int n_layer = m->n_layer;
  if (s->params) {
    int64_t head_len = s->n_param_scalars - s->param_head_base;
    int64_t embed_len = s->param_head_base - (int64_t)n_layer * s->block_stride;
    sq[0] = opt_sum_squares(s->params, embed_len);
    for (int l = 0; l < n_layer; l++) sq[1 + l] = opt_sum_squares(ms_block_params(s, l), s->block_stride);
    sq[n_layer + 1] = opt_sum_squares(s->params + s->n_param_scalars - head_len, head_len);
    return 0;
  }
  float *w = malloc(sizeof(float) * (size_t)ps_max_numel(m));
  if (!w) return lt_fail(err, "out of memory");
  memset(sq, 0, sizeof(double) * (size_t)(n_layer + 2));
  int rc = 0;
  for (int p = 0; rc == 0 && p < m->n_params; p++)
    for (int l = 0; rc == 0 && l < ps_param_layers(m, p); l++) {
      rc = t->store.get(t->store.ctx, p, l, w, err);
      int sec = m->params[p].section, at = sec == IR_EMBED ? 0 : sec == IR_HEAD ? n_layer + 1 : 1 + l;
      if (rc == 0) sq[at] += opt_sum_squares(w, ir_param_numel(&m->params[p]));
    }
  free(w);
  return rc;
}

/* Per-layer statistics a Lua policy may read: weight norms now, gradient
 * norms from the last step each block trained (0 if never). Computed only
 * at a switch, and only for a policy that can read them. */
static int update_weight_norms(trainer *t, lt_error *err) {
  int n_layer = t->ir.n_layer;
  double *sq = malloc(sizeof(double) * (size_t)(n_layer + 2));
  int rc = sq ? weight_squares(t, sq, err) : lt_fail(err, "out of memory");
  for (int l = 0; rc == 0 && l < n_layer; l++) t->weight_norms[l] = sqrt(sq[1 + l]);
  free(sq);
  return rc;
}

static void record_grad_norms(trainer *t) {
  int n_active;
  const int *active = sched_active(&t->sched, &n_active);
  for (int i = 0; i < n_active; i++) {
    int l = active[i];
    t->grad_norms[l] = sqrt(t->opt.sq[sched_block_region(&t->sched, l)]);
  }
}

int trainer_restore_period(trainer *t, const int *grad_slot, const int *active, int n_active,
                           int sampled, lt_error *err) {
  if (sched_restore(&t->sched, grad_slot, active, n_active, sampled, err)) return -1;
  follow_schedule(t);
  return 0;
}

/* ---- the trainer -------------------------------------------------------- */

static int check_config(const train_config *cfg, const ir_model *m, lt_error *err) {
  if (cfg->batch < 1 || cfg->seq < 1) return lt_fail(err, "--batch and --seq must be at least 1");
  if (cfg->steps < 0) return lt_fail(err, "--steps must not be negative");
  return ir_check_seq(m, cfg->seq, err);
}

static int alloc_norm_tables(trainer *t, lt_error *err) {
  int n = t->ir.n_layer + 1;
  t->weight_norms = calloc((size_t)n, sizeof(double));
  t->grad_norms = calloc((size_t)n, sizeof(double));
  if (!t->weight_norms || !t->grad_norms) return lt_fail(err, "out of memory");
  return 0;
}

/* Full fine-tuning is every block active for good, and so is LoRA (its
 * slots hold only the adapters; E and H stay frozen); LISA samples a set of
 * middle blocks and needs gradient slots only for as many as it can pick. */
static int create_schedule(trainer *t, lt_error *err) {
  if (t->cfg.method != TRAIN_LISA) t->cfg.train_embed = t->cfg.train_head = t->cfg.method == TRAIN_FT;
  sched_config c = {.sample = t->cfg.method == TRAIN_LISA, .train_embed = t->cfg.train_embed,
                    .train_head = t->cfg.train_head, .lisa = t->cfg.lisa, .seed = t->cfg.seed};
  if (sched_create(&t->sched, &t->state, &c, err)) return -1;
  follow_schedule(t);
  return 0;
}

/* Gradient and moment slots: as many blocks as can train at once. Uniform
 * sampling picks exactly gamma; bernoulli and Lua policies may pick up to
 * every block. */
static int grad_slots_for(const train_config *cfg, const ir_model *m) {
  if (cfg->method != TRAIN_LISA || cfg->lisa.mode != LISA_SAMPLE_UNIFORM) return m->n_layer;
  return cfg->lisa.gamma < m->n_layer ? (cfg->lisa.gamma > 0 ? cfg->lisa.gamma : 0) : m->n_layer;
}

static int load_model(trainer *t, const train_config *cfg, lt_error *err) {
  if (model_open(cfg->model_path, &t->ir, t->folder_weights, sizeof t->folder_weights, err))
    return -1;
  if (cfg->method == TRAIN_LORA &&
      lora_apply(&t->ir, cfg->lora_rank, cfg->lora_alpha, cfg->lora_targets, err))
    return -1;
  return ad_build_backward(&t->ir, err);
}

int train_trains_set(const ir_model *m, int method, int train_embed, int train_head,
                     unsigned char **out, lt_error *err) {
  int frozen_ends = method == TRAIN_LISA && (!train_embed || !train_head);
  *out = NULL;
  if (method != TRAIN_LORA && !frozen_ends) return 0;
  if (!(*out = malloc((size_t)m->n_params + 1))) return lt_fail(err, "out of memory");
  if (frozen_ends) ir_trained_by_sections(m, train_embed, train_head, *out);
  else lora_trains(m, *out);
  return 0;
}

static int create_state(trainer *t, const train_config *cfg, lt_error *err) {
  int slots = grad_slots_for(cfg, &t->ir), rc;
  unsigned char *trains;
  if (train_trains_set(&t->ir, cfg->method, cfg->train_embed, cfg->train_head, &trains, err))
    return -1;
  /* LISA binds only the active blocks: the others run FROZEN with no slot */
  int slotless = cfg->method == TRAIN_LISA;
  rc = (cfg->params_only ? ms_create_layout : ms_create_trains)(
      &t->state, &t->ir, cfg->batch, cfg->seq, slots, slotless, trains, err);
  free(trains);
  return rc;
}

/* --weights, else a Hugging Face folder's own (unless --from-scratch);
 * NULL: drawn from the seed. */
static const char *weights_path(const trainer *t) {
  const train_config *cfg = &t->cfg;
  return cfg->weights_path                              ? cfg->weights_path
         : t->folder_weights[0] && !cfg->from_scratch ? t->folder_weights
                                                        : NULL;
}

/* A base checkpoint has no adapters: LoRA draws them first, then loads. */
int trainer_load_weights(trainer *t, lt_error *err) {
  const char *weights = weights_path(t);
  if (!weights) return wt_init_random_into(&t->ir, &t->store, t->cfg.seed, 0, err);
  if (t->cfg.method == TRAIN_LORA && wt_init_random_into(&t->ir, &t->store, t->cfg.seed, 1, err))
    return -1;
  return wt_load_strict_into(&t->ir, &t->store, weights, t->cfg.ignore_unused, t->load_note,
                             sizeof t->load_note, err);
}

void trainer_use_store(trainer *t, const param_store *ps) { t->store = *ps; }

const param_store *trainer_store(const trainer *t) { return &t->store; }

/* What every rank must agree on: the settings that shape the steps, the
 * model and the data. */
static uint64_t settings_hash(const trainer *t) {
  const train_config *c = &t->cfg;
  int64_t v[] = {c->method, c->steps, c->batch, c->seq, (int64_t)c->seed, c->zero, c->train_embed,
                 c->train_head, c->lisa.mode, c->lisa.gamma, c->lisa.interval, c->lora_rank,
                 c->grad_accum, c->params_only, t->ir.n_params, t->ir.n_layer, t->ir.vocab_size};
  uint64_t h = hash64_bytes(v, sizeof v, t->data_hash);
  h = hash64_bytes(&c->opt, sizeof c->opt, h);
  return hash64_bytes(&c->lora_alpha, sizeof c->lora_alpha, h);
}

/* Data parallel: the buffers of a whole micro-batch, and the ranks agreeing. */
static int join_ranks(trainer *t, lt_error *err) {
  const int n = dist_size(t->cfg.comm);
  if (n == 1) return 0;
  if (train_optim_shares(&t->opt, dist_rank(t->cfg.comm), n, err)) return -1;
  const size_t rows = (size_t)n * (size_t)t->state.N;
  t->world_ids = malloc(sizeof *t->world_ids * rows);
  t->world_targets = malloc(sizeof *t->world_targets * rows);
  if (!t->world_ids || !t->world_targets) return lt_fail(err, "out of memory");
  if (t->cfg.zero && !t->cfg.params_only) { /* a device trainer shards its own (dev_train.c) */
    int64_t most = 0, begin, len;
    for (int r = 0; r < t->opt.n_regions; r++)
      train_region_extent(&t->state, r, &begin, &len), most = len > most ? len : most;
    if (!(t->gather = malloc(sizeof *t->gather * (size_t)(most + 1))) ||
        train_optim_shard(&t->opt, &t->state, dist_rank(t->cfg.comm), n, err))
      return t->gather ? -1 : lt_fail(err, "out of memory");
  }
  return dist_agree(t->cfg.comm, settings_hash(t), "settings, model or data", err);
}

int trainer_create(trainer *t, const train_config *cfg, lt_error *err) {
  memset(t, 0, sizeof *t);
  t->cfg = *cfg;
  if (load_model(t, cfg, err) || check_config(cfg, &t->ir, err)) return -1;
  if (data_open(&t->data, cfg->data_path, t->ir.vocab_size, err)) return -1;
  if (t->data.n_tokens < cfg->seq + 1)
    return lt_fail(err, "%s: %lld tokens, too few for --seq %d", cfg->data_path,
                   (long long)t->data.n_tokens, cfg->seq);
  /* the identities a saved state records, taken before any step */
  t->data_hash = hash64_bytes(t->data.tokens, (size_t)t->data.n_tokens * sizeof *t->data.tokens, 0);
  if (t->data.mask) /* a changed mask is other data */
    t->data_hash = hash64_bytes(t->data.mask, (size_t)t->data.n_tokens, t->data_hash);
  if (cfg->method == TRAIN_LISA && cfg->lisa.mode == LISA_SAMPLE_LUA &&
      hash64_file(cfg->lisa.lua_path, &t->policy_hash, err))
    return -1;
  if (create_state(t, cfg, err) ||
      /* --zero 1 on several ranks: join_ranks allocates the shard's moments only */
      train_optim_init_moments(&t->opt, &t->state,
                               !cfg->params_only && !(cfg->zero && dist_size(cfg->comm) > 1), err) ||
      alloc_norm_tables(t, err) || join_ranks(t, err))
    return -1;
  /* sharded moments (--zero 1) are not laid out as the store reads them:
   * trainer_moments_full lends it whole ones to save and load a state */
  t->host_arrays = (ps_host_arrays){&t->state, t->opt.shard_at ? NULL : t->opt.m,
                                    t->opt.shard_at ? NULL : t->opt.v};
  t->store = ps_host(&t->host_arrays);
  /* a device's store comes later: check the checkpoint now (headers only),
     before any time goes into compiling */
  const char *weights = weights_path(t);
  int rc = !cfg->params_only ? trainer_load_weights(t, err)
           : weights ? wt_load_strict_into(&t->ir, NULL, weights, cfg->ignore_unused,
                                           t->load_note, sizeof t->load_note, err)
                     : 0;
  return rc ? -1 : create_schedule(t, err);
}

void trainer_free(trainer *t) {
  free(t->world_ids), free(t->world_targets), free(t->gather);
  sched_free(&t->sched);
  free(t->weight_norms);
  free(t->grad_norms);
  if (t->profile) cpu_profile_free(t->profile), free(t->profile);
  train_optim_free(&t->opt);
  ms_free(&t->state);
  data_close(&t->data);
  ir_model_free(&t->ir);
}

int trainer_merge_lora(trainer *t, lt_error *err) {
  const ir_model *m = &t->ir;
  const param_store *ps = &t->store;
  double scale = t->cfg.lora_alpha / t->cfg.lora_rank;
  size_t most = sizeof(float) * (size_t)ps_max_numel(m);
  float *W = malloc(most), *A = malloc(most), *B = malloc(most);
  int rc = W && A && B ? 0 : lt_fail(err, "out of memory");
  for (int p = 0; rc == 0 && p < m->n_params; p++) {
    int a, b;
    if (m->params[p].section != IR_BLOCK) continue;
    lora_adapters_of(m, p, &a, &b);
    if (a < 0) continue;
    const ir_param *w = &m->params[p];
    int in_out = w->layout == IR_LAYOUT_IN_OUT, rank = (int)m->params[a].shape[0];
    int n_in = (int)w->shape[in_out ? 0 : 1], n_out = (int)w->shape[in_out ? 1 : 0];
    for (int l = 0; rc == 0 && l < m->n_layer; l++) {
      rc = ps->get(ps->ctx, p, l, W, err) || ps->get(ps->ctx, a, l, A, err) ||
           ps->get(ps->ctx, b, l, B, err);
      if (rc) break;
      lora_merge_weight(W, A, B, n_in, n_out, rank, scale, w->layout);
      memset(B, 0, sizeof(float) * (size_t)ir_param_numel(&m->params[b]));
      rc = ps->put(ps->ctx, p, l, W, err) || ps->put(ps->ctx, b, l, B, err);
    }
  }
  free(W), free(A), free(B);
  return rc ? -1 : 0;
}

train_memory trainer_memory(const trainer *t) {
  const ms_state *s = &t->state;
  /* a device trainer's host keeps neither moments nor activations */
  return (train_memory){.weights = s->bytes_params, .grads = s->bytes_grads,
                        .optimizer = t->opt.m ? 2 * t->opt.moment_bytes : 0,
                        .activations = s->act_arena ? s->bytes_acts : 0,
                        .data = (uint64_t)t->data.n_tokens * sizeof(uint32_t)};
}

uint64_t trainer_bytes(const trainer *t) {
  train_memory m = trainer_memory(t);
  return m.weights + m.grads + m.optimizer + m.activations + m.data;
}

static double region_norm(const trainer *t, int r) {
  return r >= 0 && t->opt.on[r] ? sqrt(t->opt.sq[r]) : NAN;
}

int trainer_norms(const trainer *t, double *weight, double *grad, lt_error *err) {
  const ms_state *s = &t->state;
  int n_layer = t->ir.n_layer;
  if (weight_squares(t, weight, err)) return -1;
  for (int i = 0; i < n_layer + 2; i++) weight[i] = sqrt(weight[i]);
  grad[0] = region_norm(t, TRAIN_REGION_EMBED);
  for (int l = 0; l < n_layer; l++)
    grad[1 + l] = region_norm(t, s->grad_slot[l] < 0 ? -1 : TRAIN_REGION_SLOTS + s->grad_slot[l]);
  grad[n_layer + 1] = region_norm(t, TRAIN_REGION_HEAD);
  return 0;
}

int trainer_begin_step(trainer *t, int *switched, float *lr, lt_error *err) {
  lisa_layer_stats stats = {t->weight_norms, t->grad_norms};
  if (sched_reads_weight_norms(&t->sched, t->step) && update_weight_norms(t, err)) return -1;
  if (sched_begin_step(&t->sched, t->step, &stats, switched, err)) return -1;
  if (*switched) follow_schedule(t);
  *lr = opt_lr_at(&t->cfg.opt, t->step);
  return trainer_micro_batch(t, 0, err);
}

int trainer_grad_accum(const trainer *t) { return t->cfg.grad_accum > 1 ? t->cfg.grad_accum : 1; }

/* Every rank's: the step's loss is the mean over the whole batch. */
int64_t trainer_step_counted(const trainer *t) {
  int64_t total = 0, n = trainer_grad_accum(t);
  const int world_b = dist_size(t->cfg.comm) * t->state.B;
  for (int64_t i = 0; i < n; i++)
    total += data_batch_counted(&t->data, t->cfg.seed, t->step * n + i, world_b, t->state.T);
  return total;
}

float train_loss_share(int64_t counted, int64_t step_counted) {
  return step_counted ? (float)counted / (float)step_counted : 0.0f;
}
void trainer_end_step(trainer *t) { t->step++; }
const lisa_schedule *trainer_schedule(const trainer *t) { return &t->sched; }
ms_state *trainer_state(trainer *t) { return &t->state; }
train_optim *trainer_optim(trainer *t) { return &t->opt; }
const train_config *trainer_config(const trainer *t) { return &t->cfg; }
int64_t trainer_next_step(const trainer *t) { return t->step; }

/* Micro-batch i of step s reads the windows of batch index s * N + i, so a
 * run without accumulation reads batch s at step s. */
int trainer_micro_batch(trainer *t, int i, lt_error *err) {
  ms_state *s = &t->state;
  int64_t index = t->step * trainer_grad_accum(t) + i;
  const int ranks = dist_size(t->cfg.comm);
  if (ranks == 1) return data_batch(&t->data, t->cfg.seed, index, s->B, s->T, s->ids, s->targets, err);
  /* the batch of ranks * B rows one process at that size would read; this
   * rank's rows of it */
  if (data_batch(&t->data, t->cfg.seed, index, ranks * s->B, s->T, t->world_ids,
                 t->world_targets, err))
    return -1;
  const size_t at = (size_t)dist_rank(t->cfg.comm) * (size_t)s->N;
  memcpy(s->ids, t->world_ids + at, sizeof *s->ids * (size_t)s->N);
  memcpy(s->targets, t->world_targets + at, sizeof *s->targets * (size_t)s->N);
  return 0;
}

int trainer_profile(trainer *t, lt_error *err) {
  if (t->profile) return 0;
  if (!(t->profile = malloc(sizeof *t->profile))) return lt_fail(err, "out of memory");
  if (cpu_profile_create(t->profile, &t->ir, t->state.N, err)) return free(t->profile), t->profile = NULL, -1;
  t->state.profile = &t->profile->exec;
  return 0;
}

prof_table *trainer_profile_table(trainer *t) { return t->profile ? &t->profile->table : NULL; }

/* What ran between mark and now into a row of the profile. */
static void profile_since(trainer *t, int row, double mark) {
  prof_add(&t->profile->table, row, lt_now_ms() - mark);
}

/* Data parallel: every rank's gradients of what trains this step summed,
 * region by region in region order (the embedding, the head, each active
 * slot: contiguous in the gradient array), and the loss's sum; the same
 * numbers on every rank, so every rank takes the same AdamW step. Under
 * --zero 1 each rank receives the sum of its share of each region only
 * (a reduce-scatter: half an all-reduce's traffic), which is all its AdamW
 * reads, and the norm's squares are summed over the ranks instead. */
static int sum_over_ranks(trainer *t, double *loss, uint64_t *bytes, lt_error *err) {
  dist_comm *c = t->cfg.comm;
  train_optim *o = &t->opt;
  if (dist_size(c) == 1) return 0;
  for (int r = 0; r < o->n_regions; r++) {
    int64_t begin, len;
    if (!o->on[r]) continue;
    train_region_extent(&t->state, r, &begin, &len);
    float *g = t->state.grads + begin;
    if (!o->shard_at) {
      if (dist_sum_f32(c, g, len, bytes, err)) return -1;
      continue;
    }
    if (dist_sum_share_f32(c, g, t->gather, len, bytes, err)) return -1;
    memcpy(t->state.grads + o->shard_lo[r], t->gather, sizeof *g * (size_t)o->shard_n[r]);
  }
  *bytes += sizeof *loss;
  return dist_sum_f64(c, loss, 1, err);
}

/* The gradient norm's squares, and AdamW at the clip it decides: under
 * --zero 1 each rank has the squares of its shares, summed over the ranks. */
static double adamw_step(trainer *t, float lr, uint64_t *bytes, lt_error *err) {
  train_optim *o = &t->opt;
  train_grad_squares(&t->state, o);
  if (o->shard_at) {
    const int n = o->n_regions * o->shares;
    if (dist_sum_f64(t->cfg.comm, o->sq_parts, n, err)) return -1;
    *bytes += sizeof *o->sq_parts * (size_t)n;
  }
  return train_adamw_squared(&t->state, &t->cfg.opt, lr, o);
}

/* --zero 1, after AdamW: each region that trained gathered from the ranks'
 * shards, packed in gradient order (a region's tensors lie there one after
 * another; the params do not). */
static int gather_weights(trainer *t, uint64_t *bytes, lt_error *err) {
  ms_state *s = &t->state;
  const ir_model *m = s->ir;
  for (int r = 0; r < t->opt.n_regions; r++) {
    int64_t begin, len;
    if (!t->opt.on[r]) continue;
    train_region_extent(s, r, &begin, &len);
    for (int pass = 0; pass < 2; pass++) { /* 0: pack, then gather; 1: unpack */
      for (int p = 0; p < m->n_params; p++)
        for (int l = 0; l < ps_param_layers(m, p); l++) {
          if (region_of(s, p, l) != r) continue;
          float *packed = t->gather + (ms_grad(s, p, l) - s->grads - begin);
          const size_t bytes_pl = sizeof(float) * (size_t)ir_param_numel(&m->params[p]);
          if (pass == 0) memcpy(packed, ms_param(s, p, l), bytes_pl);
          else memcpy(ms_param(s, p, l), packed, bytes_pl);
        }
      if (pass == 0 && dist_gather_f32(t->cfg.comm, t->gather, len, bytes, err)) return -1;
    }
  }
  return 0;
}

int trainer_step(trainer *t, train_step_stats *st, lt_error *err) {
  ms_state *s = &t->state;
  double t0 = lt_now_ms();
  int switched;
  float lr;
  if (trainer_begin_step(t, &switched, &lr, err)) return -1;
  double mark = lt_now_ms();
  train_zero_grads(s);
  if (t->profile) profile_since(t, t->profile->row_zero, mark);
  /* micro-batches add into the gradients, each at its share of the loss */
  int n = trainer_grad_accum(t);
  const int64_t total = trainer_step_counted(t);
  double loss = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && trainer_micro_batch(t, i, err)) return -1;
    const int64_t counted = data_count_targets(s->targets, s->N);
    loss += (double)train_forward(s) * (double)counted;
    train_backward(s, sched_paths(&t->sched), train_loss_share(counted, total));
  }
  uint64_t bytes = 0;
  if (sum_over_ranks(t, &loss, &bytes, err)) return -1;
  mark = lt_now_ms();
  double norm = adamw_step(t, lr, &bytes, err);
  if (norm < 0) return -1;
  if (t->opt.shard_at && gather_weights(t, &bytes, err)) return -1;
  if (t->profile) profile_since(t, t->profile->row_adamw, mark), prof_end_step(&t->profile->table);
  record_grad_norms(t);
  double ms = lt_now_ms() - t0;
  *st = (train_step_stats){.step = t->step, .loss = total ? (float)(loss / (double)total) : 0.0f, .lr = lr,
                           .grad_norm = norm, .step_ms = ms,
                           .tokens_per_s = (double)s->N * n * dist_size(t->cfg.comm) / (ms / 1e3),
                           .switched = switched, .mfu = -1, .ranks = dist_size(t->cfg.comm),
                           .comm_bytes = bytes};
  t->step++;
  return 0;
}

/* The embedding table is tied when the head reads it too. */
static int head_reads_param(const ir_model *m, int p) {
  const ir_graph *g = &m->sections[IR_HEAD];
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == IR_V_PARAM && g->values[v].param == p) return 1;
  return 0;
}

double trainer_flops_per_token(const trainer *t) {
  const ir_model *m = &t->ir;
  double n = 0;
  for (int p = 0; p < m->n_params; p++) {
    double numel = (double)ir_param_numel(&m->params[p]) * ps_param_layers(m, p);
    n += numel;
  }
  const ir_graph *e = &m->sections[IR_EMBED];
  for (int i = 0; i < e->n_fwd; i++) /* an untied input embedding is a lookup, not FLOPs */
    if (e->fwd[i].kind == IR_OP_EMBEDDING) {
      int table = e->values[e->fwd[i].in[1]].param;
      if (table >= 0 && !head_reads_param(m, table)) n -= (double)ir_param_numel(&m->params[table]);
    }
  double q_width = 0;
  const ir_graph *b = &m->sections[IR_BLOCK];
  for (int i = 0; i < b->n_fwd; i++)
    if (b->fwd[i].kind == IR_OP_ATTENTION) q_width += (double)b->values[b->fwd[i].in[0]].cols;
  return 6 * n + 6 * m->n_layer * q_width * t->state.T;
}
