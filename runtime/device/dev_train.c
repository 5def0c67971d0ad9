/* dev_train.c: the training step on generated paths, over a dt_device. */
#include "dev_train.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock_ms.h"
#include "data.h"
#include "dev_arena.h"
#include "dev_train_internal.h"

/* ---- the arena ---------------------------------------------------------- */

static const gen_path *find_mode(const gen_program *prog, int section, path_kind mode) {
  for (int i = 0; i < prog->n_paths; i++)
    if (prog->paths[i].section == section && prog->paths[i].mode == mode) return &prog->paths[i];
  return NULL;
}

/* Offsets of a path's SAVED buffers in its instance region. A block's
 * ACTIVE path puts what the FROZEN path also saves (same buffer, same size)
 * where FROZEN has it, and the rest in the slot region. */
static int place_saved(dev_trainer *d, int sec, int mode, size_t *inst_bytes, lt_error *err) {
  const gen_path *p = d->paths[sec][mode];
  size_t *off = d->offs[sec][mode] = calloc((size_t)p->n_bufs + 1, sizeof(size_t));
  if (!off) return lt_fail(err, "out of memory");
  const gen_path *frozen = sec == IR_BLOCK && mode == PATH_ACTIVE ? d->paths[IR_BLOCK][PATH_FROZEN] : NULL;
  if (sec == IR_BLOCK && !(d->in_slot[mode] = calloc((size_t)p->n_bufs + 1, 1)))
    return lt_fail(err, "out of memory");
  size_t at = 0, slot_at = 0;
  for (int b = 0; b < p->n_bufs; b++) {
    if (p->bufs[b].role != GEN_BUF_SAVED) continue;
    size_t bytes = arena_align((size_t)gen_buffer_bytes(&p->bufs[b]));
    if (frozen && b < frozen->n_bufs && frozen->bufs[b].role == GEN_BUF_SAVED &&
        gen_buffer_bytes(&frozen->bufs[b]) == gen_buffer_bytes(&p->bufs[b])) {
      off[b] = d->offs[IR_BLOCK][PATH_FROZEN][b];
    } else if (frozen) {
      off[b] = slot_at, d->in_slot[mode][b] = 1;
      slot_at += bytes;
    } else {
      off[b] = at;
      at += bytes;
    }
  }
  if (at > *inst_bytes) *inst_bytes = at;
  if (slot_at > d->slot_bytes) d->slot_bytes = slot_at;
  return 0;
}

/* The activation-gradient width: every section hands on the same stream. */
static size_t stream_grad_bytes(const dev_trainer *d) {
  size_t n = 0;
  for (int sec = 0; sec < IR_NSECTIONS; sec++)
    for (int mode = 0; mode < PATH_NKINDS; mode++) {
      const gen_path *p = d->paths[sec][mode];
      if (!p) continue;
      const ir_graph *g = &d->prog->m->sections[sec];
      int dx = g->input >= 0 ? g->values[g->input].grad : -1;
      int seed = g->output >= 0 ? g->values[g->output].grad : -1;
      int vs[2] = {dx, seed};
      for (int k = 0; k < 2; k++)
        if (vs[k] >= 0 && vs[k] < p->n_bufs && p->bufs[vs[k]].role != GEN_BUF_UNUSED) {
          size_t b = (size_t)gen_buffer_bytes(&p->bufs[vs[k]]);
          if (b > n) n = b;
        }
    }
  return arena_align(n);
}

static size_t output_bytes(const dev_trainer *d, int sec) {
  const ir_graph *g = &d->prog->m->sections[sec];
  size_t n = 0;
  for (int mode = 0; mode < PATH_NKINDS; mode++) {
    const gen_path *p = d->paths[sec][mode];
    if (p && g->output < p->n_bufs && (size_t)gen_buffer_bytes(&p->bufs[g->output]) > n)
      n = (size_t)gen_buffer_bytes(&p->bufs[g->output]);
  }
  return n;
}

static void carve_all(dev_trainer *d, arena_carver *c, size_t inst_saved[IR_NSECTIONS],
                      size_t scratch) {
  const ms_state *s = d->s;
  int n_inst = s->n_inst;
  d->weights = arena_carve(c, (size_t)s->n_param_scalars * (size_t)d->wb, MEMORY_WEIGHTS);
  d->grads = arena_carve(c, (size_t)s->n_grad_scalars * (size_t)d->gb, MEMORY_GRADS);
  d->master =
      d->masters ? arena_carve(c, (size_t)s->n_grad_scalars * 4, MEMORY_MASTER_WEIGHTS) : NULL;
  d->mom1 = arena_carve(c, (size_t)d->moment_scalars * (size_t)d->mb, MEMORY_OPTIMIZER);
  d->mom2 = arena_carve(c, (size_t)d->moment_scalars * (size_t)d->mb, MEMORY_OPTIMIZER);
  d->ids = arena_carve(c, (size_t)s->N * 4, MEMORY_ACTIVATIONS);
  d->targets = arena_carve(c, (size_t)s->N * 4, MEMORY_ACTIVATIONS);
  /* the micro-batches' losses, then the gradient norm: one read a step */
  d->stats = arena_carve(c, 4 * ((size_t)d->prog->cfg.grad_accum + 1), MEMORY_ACTIVATIONS);
  size_t at0 = c->at;
  for (int inst = 0; inst < n_inst; inst++) {
    int sec = ms_inst_section(s, inst);
    d->out_off[inst] = c->at - at0;
    arena_carve(c, sec == IR_HEAD ? 0 : output_bytes(d, sec), MEMORY_ACTIVATIONS);
  }
  d->outputs = c->base ? c->base + at0 : NULL;
  at0 = c->at;
  for (int inst = 0; inst < n_inst; inst++) {
    d->saved_off[inst] = c->at - at0;
    arena_carve(c, inst_saved[ms_inst_section(s, inst)], MEMORY_ACTIVATIONS);
  }
  d->saved = c->base ? c->base + at0 : NULL;
  d->slots = arena_carve(c, d->slot_bytes * (size_t)(s->n_grad_slots > 0 ? s->n_grad_slots : 1),
                   MEMORY_ACTIVATIONS);
  size_t g = stream_grad_bytes(d);
  d->dgrad[0] = arena_carve(c, g, MEMORY_ACTIVATIONS);
  d->dgrad[1] = arena_carve(c, g, MEMORY_ACTIVATIONS);
  d->scratch = arena_carve(c, scratch, MEMORY_ACTIVATIONS);
  for (int b = 0; b < GEN_OPT_WIDEN_DST; b++)
    d->opt_bufs[b] = b == GEN_OPT_NORM ? NULL
                     : arena_carve(c, (size_t)gen_buffer_bytes(&d->opt->bufs[b]),
                                   MEMORY_WORKSPACE);
  if (d->stats) d->opt_bufs[GEN_OPT_NORM] = d->stats + 4 * (size_t)d->prog->cfg.grad_accum;
  if (d->sh_lo)
    d->norm_table = arena_carve(c, (size_t)gen_buffer_bytes(&d->opt->bufs[GEN_OPT_TABLE]),
                                MEMORY_WORKSPACE);
}

/* ---- pointer tables ----------------------------------------------------- */

static void **table_of(const dev_trainer *d, int inst, int mode) {
  return d->tables + ((size_t)inst * PATH_NKINDS + (size_t)mode) * (size_t)d->max_bufs;
}

/* The device memory of buffer b of inst's path in `mode`; NULL for none. */
static int bind_buffer(dev_trainer *d, int inst, int mode, int b, void **out, lt_error *err) {
  const ms_state *s = d->s;
  int sec = ms_inst_section(s, inst), layer = ms_inst_layer(s, inst);
  const gen_path *p = d->paths[sec][mode];
  const gen_buffer *buf = &p->bufs[b];
  const ir_graph *g = &d->prog->m->sections[sec];
  const ir_value *iv = b < g->n_values ? &g->values[b] : NULL;
  int seed = g->output >= 0 ? g->values[g->output].grad : -1;
  int dx = g->input >= 0 ? g->values[g->input].grad : -1;
  *out = NULL;
  switch (buf->role) {
  case GEN_BUF_UNUSED: case GEN_BUF_VIEW: return 0;
  case GEN_BUF_PARAM:
    *out = d->weights + ms_param_index(s, iv->param, layer) * d->wb;
    return 0;
  case GEN_BUF_PARAM_GRAD: {
    int64_t gi = ms_grad_index(s, iv->param, layer);
    if (gi >= 0) *out = d->grads + gi * d->gb;
    return 0;
  }
  case GEN_BUF_SAVED: {
    size_t off = d->offs[sec][mode][b];
    if (sec == IR_BLOCK && d->in_slot[mode] && d->in_slot[mode][b]) {
      int slot = s->grad_slot[layer];
      if (slot >= 0) *out = d->slots + (size_t)slot * d->slot_bytes + off;
    } else {
      *out = d->saved + d->saved_off[inst] + off;
    }
    return 0;
  }
  case GEN_BUF_INPUT:
    if (b == g->input && inst == 0) *out = d->ids;
    else if (b == g->input) *out = d->outputs + d->out_off[inst - 1];
    else if (b == g->targets) *out = d->targets;
    else if (b == seed) *out = d->dgrad[(inst + 1) % 2];
    else return lt_fail(err, "%s: input %s has no source", p->name, buf->name);
    return 0;
  case GEN_BUF_OUTPUT:
    if (b == g->output) *out = sec == IR_HEAD ? d->stats : d->outputs + d->out_off[inst];
    else if (b == dx) *out = d->dgrad[inst % 2];
    else return lt_fail(err, "%s: output %s has no destination", p->name, buf->name);
    return 0;
  default: return 0; /* scratch: arena_bind_scratch */
  }
}

/* (Re)fills inst's tables: a block's follow its gradient slot. */
static int bind_instance(dev_trainer *d, int inst, lt_error *err) {
  int sec = ms_inst_section(d->s, inst);
  for (int mode = 0; mode < PATH_NKINDS; mode++) {
    const gen_path *p = d->paths[sec][mode];
    if (!p) continue;
    void **tab = table_of(d, inst, mode);
    for (int b = 0; b < p->n_bufs; b++)
      if (bind_buffer(d, inst, mode, b, &tab[b], err)) return -1;
    arena_bind_scratch(p, d->scratch, tab);
  }
  return 0;
}

/* ---- the optimizer ------------------------------------------------------ */

/* Regions are train.h's: TRAIN_REGION_EMBED, _HEAD, then one per slot. */
int dt_region_on(const dev_trainer *d, int p, int layer) {
  const ms_state *s = d->s;
  if (s->grad_off[p] < 0) return -1;
  switch (d->prog->m->params[p].section) {
  case IR_EMBED: return sched_region_on(trainer_schedule(d->host), TRAIN_REGION_EMBED) ? TRAIN_REGION_EMBED : -1;
  case IR_HEAD: return sched_region_on(trainer_schedule(d->host), TRAIN_REGION_HEAD) ? TRAIN_REGION_HEAD : -1;
  default: return s->grad_slot[layer] < 0 ? -1 : TRAIN_REGION_SLOTS + s->grad_slot[layer];
  }
}

/* Descriptor i of table (templates/adamw.cuh) for a piece. */
static void put_entry(const dev_trainer *d, unsigned char *table, int i, const dt_piece *e) {
  const ms_state *s = d->s;
  const ir_param *pr = &d->prog->m->params[e->p];
  const int64_t gi = ms_grad_index(s, e->p, e->layer) + e->at;
  const int64_t wi = ms_param_index(s, e->p, e->layer) + e->at;
  int32_t step = (int32_t)(1 - d->start[e->region]);
  void *w = d->weights + wi * d->wb;
  if (d->prog->cfg.grad_dtype == GEN_BF16) {
    dt_adamw_entry_bf16 x = {w, d->grads + gi * 2, d->mom1 + e->mom * 2, d->mom2 + e->mom * 2,
                             e->n, pr->decay, step};
    memcpy(table + (size_t)i * sizeof x, &x, sizeof x);
  } else {
    dt_adamw_entry x = {d->masters ? d->master + gi * 4 : w, d->grads + gi * 4,
                        d->mom1 + e->mom * 4, d->mom2 + e->mom * 4, d->masters ? w : NULL, e->n,
                        pr->decay, step};
    memcpy(table + (size_t)i * sizeof x, &x, sizeof x);
  }
}

/* Every tensor that trains now, embed, blocks by layer, head (the CPU's
 * order of the norm's sum), to fn. */
int dt_each_trained(dev_trainer *d, dt_tensor_fn fn, void *arg) {
  const ir_model *m = d->prog->m;
  const int order[3] = {IR_EMBED, IR_BLOCK, IR_HEAD};
  for (int o = 0; o < 3; o++)
    for (int l = 0; l < (order[o] == IR_BLOCK ? m->n_layer : 1); l++)
      for (int p = 0; p < m->n_params; p++) {
        if (m->params[p].section != order[o]) continue;
        int r = dt_region_on(d, p, l);
        if (r >= 0 && fn(d, p, l, r, arg)) return -1;
      }
  return 0;
}

/* A descriptor per tensor; under --zero 1 the norm's table gets it whole
 * and AdamW's this rank's piece of it. */
static int add_entry(dev_trainer *d, int p, int layer, int region, void *arg) {
  (void)arg;
  const dt_piece whole = {p, layer, region, 0, ir_param_numel(&d->prog->m->params[p]),
                          ms_grad_index(d->s, p, layer)};
  if (!d->sh_lo) {
    put_entry(d, d->table_host, d->n_entries++, &whole);
  } else {
    put_entry(d, d->norm_host, d->n_tensors, &whole);
    dt_piece mine = dt_share_piece(d, p, layer, region, d->zero_rank);
    if (mine.n) put_entry(d, d->table_host, d->n_entries++, &mine);
  }
  d->n_tensors++;
  return 0;
}

static int write_table(dev_trainer *d, lt_error *err) {
  d->n_entries = d->n_tensors = 0;
  dt_each_trained(d, add_entry, NULL);
  const size_t entry = (size_t)gen_opt_entry_bytes(&d->prog->cfg);
  if (d->n_entries && d->dev.upload(d->dev.ctx, d->opt_bufs[GEN_OPT_TABLE], d->table_host,
                                    (size_t)d->n_entries * entry, err))
    return -1;
  return d->norm_table && d->n_tensors
             ? d->dev.upload(d->dev.ctx, d->norm_table, d->norm_host, (size_t)d->n_tensors * entry, err)
             : 0;
}

/* The optimizer path: the norm and clip over every tensor that trains,
 * AdamW over the table; under --zero 1 the norm over the whole tensors'
 * table, AdamW over this rank's pieces, then the pieces shared. */
static int run_optimizer(dev_trainer *d, const path_exec_scalars *sc, uint64_t *bytes, lt_error *err) {
  if (!d->n_tensors) return 0;
  if (!d->sh_lo)
    return path_exec_run(d->opt, GEN_OPT_STEP_NORM, GEN_OPT_STEP_ADAMW + 1, d->opt_bufs, sc, &d->exec, err);
  void *bufs[GEN_OPT_NBUFS];
  memcpy(bufs, d->opt_bufs, sizeof bufs);
  bufs[GEN_OPT_TABLE] = d->norm_table;
  path_exec_scalars whole = *sc;
  whole.opt.count = d->n_tensors;
  if (path_exec_run(d->opt, GEN_OPT_STEP_NORM, GEN_OPT_STEP_NORM + 1, bufs, &whole, &d->exec, err) ||
      path_exec_run(d->opt, GEN_OPT_STEP_ADAMW, GEN_OPT_STEP_ADAMW + 1, d->opt_bufs, sc, &d->exec, err))
    return -1;
  return dt_share_updates(d, bytes, err);
}

static path_exec_scalars scalars(const dev_trainer *d, float lr) {
  const ms_state *s = d->s;
  const opt_config *o = &trainer_config(d->host)->opt;
  path_exec_scalars sc = {s->N, s->B, 1.0f, {0}, 0, 0};
  sc.opt = (path_exec_opt){d->n_entries, (int)d->updates, lr, o->beta1, o->beta2, o->eps,
                    o->weight_decay, o->grad_clip,
                    (unsigned)(trainer_config(d->host)->seed * 0x9e3779b9u) ^ (unsigned)d->updates};
  return sc;
}

/* master = widen(weights) for one tensor that trains (bf16-mixed). */
static int widen(dev_trainer *d, int p, int layer, lt_error *err) {
  const ms_state *s = d->s;
  void *bufs[GEN_OPT_NBUFS];
  memcpy(bufs, d->opt_bufs, sizeof bufs);
  bufs[GEN_OPT_WIDEN_DST] = d->master + ms_grad_index(s, p, layer) * 4;
  bufs[GEN_OPT_WIDEN_SRC] = d->weights + ms_param_index(s, p, layer) * d->wb;
  path_exec_scalars sc = scalars(d, 0.0f);
  sc.opt.count = (int)ir_param_numel(&d->prog->m->params[p]);
  return path_exec_run(d->opt, GEN_OPT_STEP_WIDEN, GEN_OPT_STEP_WIDEN + 1, bufs, &sc, &d->exec, err);
}

/* A block that entered the active set (or the first step's tensors): fresh
 * moments, its AdamW count restarting now, masters from its weights. */
static int enter_region(dev_trainer *d, int region, int layer, lt_error *err) {
  const ms_state *s = d->s;
  const ir_model *m = d->prog->m;
  d->start[region] = d->updates;
  if (d->sh_lo) { /* --zero 1: this rank's share of the region's moments */
    const size_t at = (size_t)d->sh_at[region] * d->mb, n = (size_t)d->sh_n[region] * d->mb;
    if (d->dev.zero(d->dev.ctx, d->mom1 + at, n, err) || d->dev.zero(d->dev.ctx, d->mom2 + at, n, err))
      return -1;
  }
  for (int p = 0; p < m->n_params; p++) {
    if (dt_region_on(d, p, layer) != region) continue; /* slot regions hold only block params */
    size_t gi = (size_t)ms_grad_index(s, p, layer), n = (size_t)ir_param_numel(&m->params[p]);
    if (!d->sh_lo && (d->dev.zero(d->dev.ctx, d->mom1 + gi * d->mb, n * d->mb, err) ||
                      d->dev.zero(d->dev.ctx, d->mom2 + gi * d->mb, n * d->mb, err)))
      return -1;
    if (d->masters && widen(d, p, layer, err)) return -1;
  }
  return 0;
}

/* After the host trainer (re)drew the active set: blocks that entered get
 * their slot's state, every block its tables, the optimizer a new table. */
static int follow_active_set(dev_trainer *d, lt_error *err) {
  const ms_state *s = d->s;
  for (int l = 0; l < d->prog->m->n_layer; l++) {
    int slot = s->grad_slot[l];
    if (slot >= 0 && slot != d->slot_of[l] && enter_region(d, TRAIN_REGION_SLOTS + slot, l, err))
      return -1;
    d->slot_of[l] = slot;
    if (bind_instance(d, l + 1, err)) return -1;
  }
  if (d->sum_after) dt_plan_sums(d); /* several ranks: what each backward completes */
  return write_table(d, err);
}

/* ---- creation ----------------------------------------------------------- */

static int check_program(const dev_trainer *d, lt_error *err) {
  const gen_config *c = &d->prog->cfg;
  const ms_state *s = d->s;
  if (c->B != s->B || c->T != s->T)
    return lt_fail(err, "the generated program is for B=%d T=%d, the run has B=%d T=%d", c->B,
                   c->T, s->B, s->T);
  int accum = d->host ? trainer_grad_accum(d->host) : c->grad_accum;
  if (c->grad_accum != accum)
    return lt_fail(err, "the generated program is for %d micro-batches a step, the run has %d",
                   c->grad_accum, accum);
  if (!d->opt) return lt_fail(err, "the generated program has no optimizer path");
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    int need = sec == IR_BLOCK ? PATH_FROZEN : PATH_ACTIVE;
    if (!d->paths[sec][need] && !(sec == IR_HEAD && d->paths[sec][PATH_FROZEN]))
      return lt_fail(err, "the generated program lacks a %s path", ir_section_name(sec));
  }
  return 0;
}

static int alloc_layout_tables(dev_trainer *d, lt_error *err) {
  d->out_off = calloc((size_t)d->s->n_inst, sizeof(size_t));
  d->saved_off = calloc((size_t)d->s->n_inst, sizeof(size_t));
  if (!d->out_off || !d->saved_off) return lt_fail(err, "out of memory");
  return 0;
}

static int alloc_run_tables(dev_trainer *d, lt_error *err) {
  const ms_state *s = d->s;
  const ir_model *m = d->prog->m;
  d->max_bufs = 1;
  for (int i = 0; i < d->prog->n_paths; i++)
    if (d->prog->paths[i].n_bufs > d->max_bufs) d->max_bufs = d->prog->paths[i].n_bufs;
  int64_t max_numel = d->max_numel = ps_max_numel(m);
  d->tables = calloc((size_t)s->n_inst * PATH_NKINDS * (size_t)d->max_bufs, sizeof(void *));
  d->slot_of = malloc(sizeof(int) * (size_t)(m->n_layer + 1));
  d->start = calloc((size_t)(TRAIN_REGION_SLOTS + s->n_grad_slots), sizeof(int64_t));
  d->table_host = malloc((size_t)d->opt->bufs[GEN_OPT_TABLE].rows * 56 + 56);
  d->norm_host = d->sh_lo ? malloc((size_t)d->opt->bufs[GEN_OPT_TABLE].rows * 56 + 56) : NULL;
  d->convert = malloc((size_t)max_numel * 4);
  if (!d->tables || !d->slot_of || !d->start || !d->table_host || !d->convert ||
      (d->sh_lo && !d->norm_host))
    return lt_fail(err, "out of memory");
  for (int l = 0; l < m->n_layer; l++) d->slot_of[l] = -1;
  return 0;
}

/* Every region's size and, with the device, its memory. */
static int layout(dev_trainer *d, int allocate, lt_error *err) {
  size_t inst_saved[IR_NSECTIONS] = {0}, scratch = 0;
  /* FROZEN first: ACTIVE reuses its offsets */
  static const int modes[PATH_NKINDS] = {PATH_FROZEN, PATH_ACTIVE, PATH_FORWARD};
  for (int sec = 0; sec < IR_NSECTIONS; sec++)
    for (int k = 0; k < PATH_NKINDS; k++) {
      const gen_path *p = d->paths[sec][modes[k]];
      if (!p) continue;
      if (place_saved(d, sec, modes[k], &inst_saved[sec], err)) return -1;
      if (arena_scratch_bytes(p) > scratch) scratch = arena_scratch_bytes(p);
    }
  arena_carver c = {0, NULL, {0}};
  carve_all(d, &c, inst_saved, scratch);
  d->arena_bytes = c.at;
  memcpy(d->bytes, c.bytes, sizeof d->bytes);
  if (!allocate) return 0;
  if (d->dev.alloc(d->dev.ctx, d->arena_bytes, (void **)&d->arena, err)) return -1;
  if (d->dev.zero(d->dev.ctx, d->arena, d->arena_bytes, err)) return -1;
  c = (arena_carver){0, d->arena, {0}};
  carve_all(d, &c, inst_saved, scratch);
  return 0;
}

static int init(dev_trainer *d, const ms_state *s, const gen_program *prog, lt_error *err) {
  d->s = s, d->prog = prog;
  for (int sec = 0; sec < IR_NSECTIONS; sec++)
    for (int mode = 0; mode < PATH_NKINDS; mode++) d->paths[sec][mode] = find_mode(prog, sec, mode);
  d->opt = gen_find_path(prog, "optimizer");
  d->wb = gen_dtype_bytes(prog->cfg.dtype);
  d->gb = gen_dtype_bytes(prog->cfg.grad_dtype);
  d->mb = d->gb;
  d->moment_scalars = s->n_grad_scalars;
  d->masters = prog->cfg.dtype == GEN_BF16 && prog->cfg.grad_dtype == GEN_F32;
  return check_program(d, err) || alloc_layout_tables(d, err) ? -1 : 0;
}

int dt_arena_layout(const ms_state *s, const gen_program *prog, uint64_t bytes[MEMORY_NCATEGORIES],
                    lt_error *err) {
  dev_trainer *d = calloc(1, sizeof *d);
  if (!d) return lt_fail(err, "out of memory");
  int rc = init(d, s, prog, err) || layout(d, 0, err) ? -1 : 0;
  if (rc == 0) memcpy(bytes, d->bytes, sizeof d->bytes);
  dt_free(d);
  return rc;
}

/* ---- pipelined steps: host staging and fences ------------------------------ */

static void *host_alloc(dev_trainer *d, size_t bytes, lt_error *err) {
  void *p = NULL;
  if (d->dev.host_alloc) return d->dev.host_alloc(d->dev.ctx, bytes, &p, err) ? NULL : p;
  if (!(p = malloc(bytes))) lt_fail(err, "out of memory");
  return p;
}

static void host_free(dev_trainer *d, void *p) {
  if (!p) return;
  if (d->dev.host_free) d->dev.host_free(d->dev.ctx, p);
  else free(p);
}

/* Host staging of one pending step: its batches' ids and targets, and its
 * stats (dt_host_bytes counts two). */
static size_t batch_bytes(size_t micro, size_t n) { return micro * n * 4; }
static size_t stats_bytes(size_t micro) { return (micro + 1) * 4; }

uint64_t dt_host_bytes(const ms_state *s, int grad_accum) {
  size_t micro = grad_accum > 1 ? (size_t)grad_accum : 1, n = (size_t)s->N;
  return 4 * (uint64_t)ps_max_numel(s->ir) /* conversions: the largest tensor */
         + 2 * (2 * batch_bytes(micro, n) + stats_bytes(micro));
}

static int alloc_pending(dev_trainer *d, lt_error *err) {
  size_t micro = (size_t)trainer_grad_accum(d->host), n = (size_t)d->s->N;
  for (int i = 0; i < 2; i++) {
    dt_pending *p = &d->pend[i];
    if (!(p->active = malloc(sizeof *p->active * (size_t)(d->s->ir->n_layer + 1))) ||
        !(p->ids = host_alloc(d, batch_bytes(micro, n), err)) ||
        !(p->targets = host_alloc(d, batch_bytes(micro, n), err)) ||
        !(p->stats = host_alloc(d, stats_bytes(micro), err)))
      return p->active ? -1 : lt_fail(err, "out of memory");
  }
  return 0;
}

static void free_pending(dev_trainer *d) {
  for (int i = 0; i < 2; i++) {
    free(d->pend[i].active);
    host_free(d, d->pend[i].ids);
    host_free(d, d->pend[i].targets);
    host_free(d, d->pend[i].stats);
  }
}

/* The stats back, in stream order (a plain download where the device has
 * no async one: it then waits here). */
static int copy_back(dev_trainer *d, void *dst, const void *src, size_t bytes, lt_error *err) {
  if (d->dev.download_async) return d->dev.download_async(d->dev.ctx, dst, src, bytes, err);
  return d->dev.download(d->dev.ctx, dst, src, bytes, err);
}

int dt_create(dev_trainer **out, trainer *host, const gen_program *prog, const dt_device *dev,
              lt_error *err) {
  dev_trainer *d = calloc(1, sizeof *d);
  if (!d) return lt_fail(err, "out of memory");
  *out = d;
  d->host = host, d->dev = *dev, d->exec = dev->exec;
  d->updates = trainer_next_step(host); /* one AdamW update a step: a resumed run has had this many */
  if (init(d, trainer_state(host), prog, err) || dt_shard_moments(d, err) || alloc_run_tables(d, err) ||
      layout(d, 1, err) ||
      alloc_pending(d, err))
    return -1;
  for (int inst = 0; inst < trainer_state(host)->n_inst; inst++)
    if (bind_instance(d, inst, err)) return -1;
  /* the regions that train from the start: E, H, and FT's (or LoRA's) blocks */
  if (enter_region(d, TRAIN_REGION_EMBED, 0, err) || enter_region(d, TRAIN_REGION_HEAD, 0, err))
    return -1;
  return follow_active_set(d, err);
}

void dt_free(dev_trainer *d) {
  if (!d) return;
  if (d->arena) d->dev.release(d->dev.ctx, d->arena);
  for (int sec = 0; sec < IR_NSECTIONS; sec++)
    for (int mode = 0; mode < PATH_NKINDS; mode++) free(d->offs[sec][mode]);
  for (int mode = 0; mode < PATH_NKINDS; mode++) free(d->in_slot[mode]);
  free(d->tables);
  free(d->out_off);
  free(d->saved_off);
  free(d->slot_of);
  free(d->start);
  free(d->table_host);
  free(d->convert);
  free(d->sum_after);
  free(d->sh_lo), free(d->sh_n), free(d->sh_at);
  free(d->norm_host);
  free(d->whole_m), free(d->whole_v);
  free_pending(d);
  free(d);
}

size_t dt_arena_bytes(const dev_trainer *d) { return d->arena_bytes; }

void dt_arena_categories(const dev_trainer *d, uint64_t bytes[MEMORY_NCATEGORIES]) {
  memcpy(bytes, d->bytes, sizeof d->bytes);
}

/* ---- a step ------------------------------------------------------------- */

static const gen_path *path_of(const dev_trainer *d, int inst, int *mode) {
  int sec = ms_inst_section(d->s, inst);
  *mode = sched_path(trainer_schedule(d->host), inst);
  const gen_path *p = d->paths[sec][*mode];
  if (!p && sec == IR_HEAD && *mode == PATH_FORWARD) p = d->paths[sec][*mode = PATH_FROZEN];
  return p;
}

/* Micro-batch i's loss goes to stats[i]. */
static void bind_loss(dev_trainer *d, int i) {
  int head = d->s->n_inst - 1;
  const ir_graph *g = &d->prog->m->sections[IR_HEAD];
  for (int mode = 0; mode < PATH_NKINDS; mode++)
    if (d->paths[IR_HEAD][mode]) table_of(d, head, mode)[g->output] = d->stats + 4 * (size_t)i;
}

/* Every instance's forward steps, in order, through `be`. */
static int run_forwards(dev_trainer *d, const path_exec_scalars *sc, const path_exec_backend *be,
                        lt_error *err) {
  path_exec_scalars at = *sc; /* with each instance's layer */
  for (int inst = 0, mode; inst < d->s->n_inst; inst++) {
    const gen_path *p = path_of(d, inst, &mode);
    if (!p) return lt_fail(err, "no path for instance %d in mode %d", inst, mode);
    at.layer = ms_inst_layer(d->s, inst);
    if (path_exec_run(p, 0, p->n_fwd_steps, table_of(d, inst, mode), &at, be, err)) return -1;
  }
  return 0;
}

/* Forward, then backward from the head down; on several ranks the last
 * micro-batch's backward sums each region as soon as it is complete. */
static int run_passes(dev_trainer *d, const path_exec_scalars *sc, int last, uint64_t *bytes,
                      lt_error *err) {
  int n_inst = d->s->n_inst, mode;
  path_exec_scalars at = *sc; /* with each instance's layer */
  if (run_forwards(d, sc, &d->exec, err)) return -1;
  for (int inst = n_inst - 1; inst >= 0; inst--) {
    const gen_path *p = path_of(d, inst, &mode);
    if (sched_path(trainer_schedule(d->host), inst) == PATH_FORWARD) continue;
    at.layer = ms_inst_layer(d->s, inst);
    if (path_exec_run(p, p->n_fwd_steps, p->n_steps, table_of(d, inst, mode), &at, &d->exec, err))
      return -1;
    if (last && dt_several_ranks(d) && dt_sum_completed(d, inst, bytes, err)) return -1;
  }
  return 0;
}

/* The loss of the host state's ids and targets under the weights on the
 * device: every instance's forward steps, the loss into stats[0] and read
 * back (a sync; validation runs between steps, never inside one). Called
 * with no step in flight (after dt_finish). */
int dt_eval_batch(dev_trainer *d, float *loss, lt_error *err) {
  const ms_state *s = d->s;
  const size_t n = (size_t)s->N;
  path_exec_scalars at = scalars(d, 0.0f);
  at.loss_scale = 0.0f; /* no backward runs; the fused kernel's gradient is unread */
  bind_loss(d, 0);
  if (d->dev.upload(d->dev.ctx, d->ids, s->ids, n * 4, err) ||
      d->dev.upload(d->dev.ctx, d->targets, s->targets, n * 4, err))
    return -1;
  /* the device's own launcher: a step profiler counts steps, not this */
  if (run_forwards(d, &at, &d->dev.exec, err)) return -1;
  return d->dev.download(d->dev.ctx, loss, d->stats, 4, err);
}

/* Micro-batch i's ids and targets, through the step's staging. */
static int upload_batch(dev_trainer *d, dt_pending *p, int i, lt_error *err) {
  const ms_state *s = d->s;
  size_t n = (size_t)s->N;
  memcpy(p->ids + (size_t)i * n, s->ids, n * 4);
  memcpy(p->targets + (size_t)i * n, s->targets, n * 4);
  return d->dev.upload(d->dev.ctx, d->ids, p->ids + (size_t)i * n, n * 4, err) ||
         d->dev.upload(d->dev.ctx, d->targets, p->targets + (size_t)i * n, n * 4, err);
}

/* Every launch of one step, then its stats' copy back and a fence. */
static int enqueue(dev_trainer *d, dt_pending *p, int slot, lt_error *err) {
  trainer *t = d->host;
  const lisa_schedule *sched = trainer_schedule(t);
  *p = (dt_pending){.step = trainer_next_step(t), .t0 = lt_now_ms(), .active = p->active, .ids = p->ids,
                    .targets = p->targets, .stats = p->stats};
  if (trainer_begin_step(t, &p->switched, &p->lr, err)) return -1;
  if (p->switched && follow_active_set(d, err)) return -1;
  const int *active = sched_active(sched, &p->n_active);
  memcpy(p->active, active, sizeof *p->active * (size_t)p->n_active);
  if (d->dev.zero(d->dev.ctx, d->grads, (size_t)d->s->n_grad_scalars * (size_t)d->gb, err))
    return -1;
  /* micro-batches add into the gradients, each at its share of the loss;
   * the kernel takes each counted target's factor, as the CPU computes it */
  p->micro = trainer_grad_accum(t);
  path_exec_scalars sc = scalars(d, p->lr);
  const int64_t total = p->counted = trainer_step_counted(t); /* every rank's rows */
  for (int i = 0; i < p->micro; i++) {
    if (i > 0 && trainer_micro_batch(t, i, err)) return -1;
    const int64_t counted = data_count_targets(d->s->targets, d->s->N);
    sc.loss_scale = counted ? train_loss_share(counted, total) / (float)counted : 0.0f;
    bind_loss(d, i);
    if (upload_batch(d, p, i, err) || run_passes(d, &sc, i == p->micro - 1, &p->comm_bytes, err))
      return -1;
  }
  if ((dt_several_ranks(d) && d->comm.join(d->comm.ctx, err)) || run_optimizer(d, &sc, &p->comm_bytes, err))
    return -1;
  if (copy_back(d, p->stats, d->stats, 4 * ((size_t)p->micro + 1), err) ||
      (d->dev.fence && d->dev.fence(d->dev.ctx, slot, err)))
    return -1;
  p->valid = 1;
  d->updates++;
  trainer_end_step(t);
  return 0;
}

/* Waits for a pending step and turns it into stats: its losses summed in
 * order (as the CPU does), its norm, and the time since the step before it
 * was seen done (the pipeline's rate; from its own start for the first). */
static int complete(dev_trainer *d, int slot, train_step_stats *st, lt_error *err) {
  dt_pending *p = &d->pend[slot];
  if (dt_several_ranks(d)) d->comm.watch(d->comm.ctx, 1); /* a stopped rank's sums never end */
  int rc = d->dev.fence_wait ? d->dev.fence_wait(d->dev.ctx, slot, err) : 0;
  if (dt_several_ranks(d)) d->comm.watch(d->comm.ctx, 0);
  if (rc) return -1;
  double done = p->done > 0 ? p->done : lt_now_ms();
  double since = d->last_done > p->t0 ? d->last_done : p->t0;
  d->last_done = done;
  double loss = 0, total = 0; /* the micro-batches' means, weighted by their counted targets */
  for (int i = 0; i < p->micro; i++) {
    const double counted = (double)data_count_targets(p->targets + (size_t)i * d->s->N, d->s->N);
    loss += (double)p->stats[i] * counted, total += counted;
  }
  if (dt_several_ranks(d)) { /* the whole batch's: every rank's rows */
    if (d->comm.sum_host(d->comm.ctx, &loss, 1, err)) return -1;
    total = (double)p->counted;
  }
  const int ranks = dt_several_ranks(d) ? d->comm.ranks : 1;
  double ms = done - since;
  *st = (train_step_stats){.step = p->step, .loss = total ? (float)(loss / total) : 0.0f, .lr = p->lr,
                           .grad_norm = d->n_tensors ? p->stats[p->micro] : 0, .step_ms = ms,
                           .tokens_per_s = (double)d->s->N * p->micro * ranks / (ms / 1e3),
                           .switched = p->switched, .mfu = -1, .peak_bytes = d->arena_bytes,
                           .active = p->active, .n_active = p->n_active, .ranks = ranks,
                           .comm_bytes = ranks > 1 ? p->comm_bytes + sizeof loss : 0};
  p->valid = 0;
  return 0;
}

int dt_step(dev_trainer *d, train_step_stats *st, int *ready, lt_error *err) {
  int slot = (int)(trainer_next_step(d->host) & 1);
  *ready = 0;
  if (enqueue(d, &d->pend[slot], slot, err)) return -1;
  /* without fences the step ran within its enqueue (the emulator) */
  d->pend[slot].done = d->dev.fence_wait ? 0 : lt_now_ms();
  if (!d->pend[slot ^ 1].valid) return 0;
  *ready = 1;
  return complete(d, slot ^ 1, st, err);
}

int dt_finish(dev_trainer *d, train_step_stats *st, int *ready, lt_error *err) {
  int slot = (int)((trainer_next_step(d->host) - 1) & 1);
  *ready = trainer_next_step(d->host) > 0 && d->pend[slot].valid;
  return *ready ? complete(d, slot, st, err) : 0;
}

int dt_max_calls(const dev_trainer *d) {
  int per_pass = 0;
  for (int inst = 0; inst < d->s->n_inst; inst++) {
    int most = 0, sec = ms_inst_section(d->s, inst);
    for (int mode = 0; mode < PATH_NKINDS; mode++)
      if (d->paths[sec][mode] && d->paths[sec][mode]->n_steps > most) most = d->paths[sec][mode]->n_steps;
    per_pass += most;
  }
  /* a switch widens each entering tensor's master: at most every tensor */
  int tensors = 0;
  for (int p = 0; p < d->prog->m->n_params; p++)
    tensors += ps_param_layers(d->prog->m, p);
  return per_pass * trainer_grad_accum(d->host) + (d->opt ? d->opt->n_steps + tensors : 0);
}

void dt_use_exec(dev_trainer *d, const path_exec_backend *exec) { d->exec = exec ? *exec : d->dev.exec; }

/* ---- the store: parameters and moments a tensor at a time -------------- */

/* The host trainer redrew or restored the active set since the device last
 * followed it (a checkpoint's period): bind the slots before anything is put
 * into them. */
static int follow_host(dev_trainer *d, lt_error *err) {
  for (int l = 0; l < d->prog->m->n_layer; l++)
    if (d->s->grad_slot[l] != d->slot_of[l]) return follow_active_set(d, err);
  return 0;
}

/* The fp32 masters of (p, layer), where it trains now in bf16-mixed; else NULL. */
static char *master_of(const dev_trainer *d, int p, int layer) {
  return d->masters && dt_region_on(d, p, layer) >= 0 ? d->master + ms_grad_index(d->s, p, layer) * 4
                                                   : NULL;
}

static int store_get(void *ctx, int p, int layer, float *out, lt_error *err) {
  dev_trainer *d = ctx;
  int64_t n = ir_param_numel(&d->prog->m->params[p]);
  char *master = master_of(d, p, layer);
  if (master) return d->dev.download(d->dev.ctx, out, master, (size_t)n * 4, err);
  return arena_download_f32(&d->dev, out, d->weights + ms_param_index(d->s, p, layer) * d->wb, n,
                            d->wb, d->convert, err);
}

/* The weights in the storage dtype and, where it trains in bf16-mixed, the
 * exact fp32 values as its masters. */
static int store_put(void *ctx, int p, int layer, const float *in, lt_error *err) {
  dev_trainer *d = ctx;
  int64_t n = ir_param_numel(&d->prog->m->params[p]);
  if (follow_host(d, err) ||
      arena_upload_f32(&d->dev, d->weights + ms_param_index(d->s, p, layer) * d->wb, in, n, d->wb,
                       d->convert, err))
    return -1;
  char *master = master_of(d, p, layer);
  return master ? d->dev.upload(d->dev.ctx, master, in, (size_t)n * 4, err) : 0;
}

/* The moments' [at, at + n) of the gradient layout, or NULL (err says why). */
static char *moments_at(dev_trainer *d, int which, int64_t at, int64_t n, lt_error *err) {
  if (ps_check_moments(d->s, at, n, err)) return NULL;
  return (which ? d->mom2 : d->mom1) + at * d->mb;
}

/* In pieces that fit the conversion staging (the largest tensor); under
 * --zero 1 the whole host moments of a state's save or load. */
static int store_get_moments(void *ctx, int which, int64_t at, int64_t n, float *out,
                             lt_error *err) {
  dev_trainer *d = ctx;
  if (d->sh_lo) {
    if (ps_check_moments(d->s, at, n, err)) return -1;
    if (!d->whole_m) return lt_fail(err, "--zero 1: the moments are sharded (moments_whole first)");
    memcpy(out, (which ? d->whole_v : d->whole_m) + at, sizeof *out * (size_t)n);
    return 0;
  }
  const char *mem = moments_at(d, which, at, n, err);
  for (int64_t i = 0; mem && i < n; i += d->max_numel) {
    int64_t k = n - i < d->max_numel ? n - i : d->max_numel;
    if (arena_download_f32(&d->dev, out + i, mem + i * d->mb, k, d->mb, d->convert, err)) return -1;
  }
  return mem ? 0 : -1;
}

static int store_put_moments(void *ctx, int which, int64_t at, int64_t n, const float *in,
                             lt_error *err) {
  dev_trainer *d = ctx;
  if (d->sh_lo) {
    if (follow_host(d, err) || ps_check_moments(d->s, at, n, err)) return -1;
    if (!d->whole_m) return lt_fail(err, "--zero 1: the moments are sharded (moments_whole first)");
    memcpy((which ? d->whole_v : d->whole_m) + at, in, sizeof *in * (size_t)n);
    return 0;
  }
  char *mem = follow_host(d, err) ? NULL : moments_at(d, which, at, n, err);
  for (int64_t i = 0; mem && i < n; i += d->max_numel) {
    int64_t k = n - i < d->max_numel ? n - i : d->max_numel;
    if (arena_upload_f32(&d->dev, mem + i * d->mb, in + i, k, d->mb, d->convert, err)) return -1;
  }
  return mem ? 0 : -1;
}

/* A checkpoint's state is in: the AdamW counts continue from the host's. */
static int store_restored(void *ctx, lt_error *err) {
  dev_trainer *d = ctx;
  train_optim *o = trainer_optim(d->host);
  if (follow_host(d, err)) return -1;
  d->updates = trainer_next_step(d->host);
  for (int r = 0; r < o->n_regions; r++) d->start[r] = d->updates - o->t[r];
  return write_table(d, err);
}

param_store dt_store(dev_trainer *d) {
  return (param_store){d, store_get, store_put, store_get_moments, store_put_moments,
                       store_restored, dt_moments_whole};
}

/* Regions that train now: embed, head, and the slots bound to a block. */
static int region_trains(const dev_trainer *d, int r) {
  return sched_region_on(trainer_schedule(d->host), r);
}

void dt_sync_counts(dev_trainer *d) {
  train_optim *o = trainer_optim(d->host);
  for (int r = 0; r < o->n_regions; r++) o->t[r] = region_trains(d, r) ? d->updates - d->start[r] : 0;
}
