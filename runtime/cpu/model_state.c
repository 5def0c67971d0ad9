#include "model_state.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS_ALIGN 64

static size_t align_up(size_t n) { return (n + MS_ALIGN - 1) / MS_ALIGN * MS_ALIGN; }

int ms_inst_section(const ms_state *s, int inst) {
  if (inst == 0) return IR_EMBED;
  return inst == s->n_inst - 1 ? IR_HEAD : IR_BLOCK;
}

int ms_inst_layer(const ms_state *s, int inst) {
  return ms_inst_section(s, inst) == IR_BLOCK ? inst - 1 : 0;
}

int ms_head_inst(const ms_state *s) { return s->n_inst - 1; }

int64_t ms_param_index(const ms_state *s, int p, int layer) {
  return s->param_off[p * s->n_layer_slots + layer];
}

int64_t ms_grad_index(const ms_state *s, int p, int layer) {
  if (s->grad_off[p] < 0) return -1;
  if (s->ir->params[p].section != IR_BLOCK) return s->grad_off[p];
  int slot = s->grad_slot[layer];
  return slot < 0 ? -1 : s->grad_slot_base + slot * s->slot_stride + s->grad_off[p];
}

float *ms_param(const ms_state *s, int p, int layer) { return s->params + ms_param_index(s, p, layer); }

float *ms_grad(const ms_state *s, int p, int layer) {
  int64_t i = ms_grad_index(s, p, layer);
  return i < 0 ? NULL : s->grads + i;
}

float *ms_block_params(const ms_state *s, int layer) {
  /* the first block param starts its block */
  for (int p = 0; p < s->ir->n_params; p++)
    if (s->ir->params[p].section == IR_BLOCK) return ms_param(s, p, layer);
  return NULL;
}

void ms_bind_grad_slot(ms_state *s, int layer, int slot) {
  /* slot values have scratch only when some block can be slotless */
  assert(slot >= 0 || s->slotless);
  s->grad_slot[layer] = slot;
  if (!s->act_arena) return; /* ms_create_layout: no graph to rewire */
  const ir_graph *g = &s->ir->sections[IR_BLOCK];
  void **b = s->bufs[layer + 1];
  char *arena = s->act_arena;
  for (int v = 0; v < g->n_values; v++) {
    if (g->values[v].kind == IR_V_PARAM_GRAD) b[v] = ms_grad(s, g->values[v].param, layer);
    else if (s->act_slot_off[v] != SIZE_MAX)
      b[v] = arena + (slot < 0 ? s->slot_scratch_off[v]
                               : s->act_slot_base + (size_t)slot * s->act_slot_bytes +
                                     s->act_slot_off[v]);
  }
}

float ms_loss(const ms_state *s) {
  int head = ms_head_inst(s);
  const ir_graph *g = &s->ir->sections[IR_HEAD];
  return *(const float *)s->bufs[head][g->output];
}

static size_t value_bytes(const ms_state *s, const ir_value *v) {
  size_t rows = v->scalar ? 1 : (size_t)s->N;
  return align_up(rows * (size_t)v->cols * (size_t)s->elem_bytes);
}

static int64_t padded(int64_t n) { return (n + 15) / 16 * 16; }

/* Parameters: embed, then block by block, then head, each tensor padded to
 * 16 floats (vocabulary-sized rows first to ir_vocab_padded), so a block's
 * tensors are contiguous and laid out alike in every block. Gradients, only for the params that train: embed, head, then
 * n_grad_slots slots of one block's; a block that trains is bound to a slot
 * (LISA keeps gradients only for the blocks it trains; full fine-tuning
 * binds block l to slot l). */
static int layout_params(ms_state *s, int n_grad_slots, const unsigned char *trains,
                         lt_error *err) {
  const ir_model *m = s->ir;
  s->param_off = calloc((size_t)m->n_params * s->n_layer_slots, sizeof(int64_t));
  s->grad_off = calloc((size_t)m->n_params + 1, sizeof(int64_t));
  s->grad_slot = malloc(sizeof(int) * (size_t)s->n_layer_slots);
  if (!s->param_off || !s->grad_off || !s->grad_slot) return lt_fail(err, "out of memory");
  int64_t off = 0, grad_off = 0, slot_off = 0, block_params = 0;
  int head_seen = 0;
  const int order[3] = {IR_EMBED, IR_BLOCK, IR_HEAD};
  for (int o = 0; o < 3; o++) {
    int layers = order[o] == IR_BLOCK ? m->n_layer : 1;
    for (int l = 0; l < layers; l++)
      for (int p = 0; p < m->n_params; p++) {
        if (m->params[p].section != order[o]) continue;
        if (order[o] == IR_HEAD && l == 0 && !head_seen++)
          s->grad_head_base = grad_off, s->param_head_base = off;
        int64_t n = padded(ir_param_stored_numel(m, &m->params[p]));
        s->param_off[p * s->n_layer_slots + l] = off;
        off += n;
        if (order[o] == IR_BLOCK) block_params += l == 0 ? n : 0;
        if (l > 0) continue;
        int64_t *next = order[o] == IR_BLOCK ? &slot_off : &grad_off;
        s->grad_off[p] = trains && !trains[p] ? -1 : *next;
        *next += s->grad_off[p] < 0 ? 0 : n;
      }
  }
  s->n_param_scalars = off;
  s->block_stride = block_params;
  s->slot_stride = slot_off;
  s->grad_slot_base = grad_off;
  if (!head_seen) s->grad_head_base = grad_off, s->param_head_base = off;
  s->n_grad_slots = n_grad_slots;
  s->n_grad_scalars = grad_off + (int64_t)n_grad_slots * slot_off;
  s->bytes_params = (size_t)off * sizeof(float);
  s->bytes_grads = (size_t)s->n_grad_scalars * sizeof(float);
  for (int l = 0; l < s->n_layer_slots; l++) s->grad_slot[l] = l < n_grad_slots ? l : -1;
  return 0;
}

static int alloc_param_arenas(ms_state *s, lt_error *err) {
  s->params = aligned_alloc(MS_ALIGN, align_up(s->bytes_params));
  s->grads = aligned_alloc(MS_ALIGN, align_up(s->bytes_grads));
  if (!s->params || !s->grads)
    return lt_fail(err, "out of memory for %lld parameters", (long long)s->n_param_scalars);
  memset(s->params, 0, s->bytes_params);
  memset(s->grads, 0, s->bytes_grads);
  return 0;
}

/* Which storage class an activation or gradient value gets:
 *  - PER_INST: what a FROZEN block's backward reads (dX ops) and section
 *    outputs: every instance keeps its own;
 *  - SLOT: what only the dW ops of training params read: a block keeps it in
 *    the activation slot that goes with its gradient slot, and a block bound
 *    to none writes it to scratch (its backward never reads it);
 *  - SHARED: scratch, one per section;
 *  - GRAD: activation gradients, two sets per section. */
enum { CLASS_NONE, CLASS_PER_INST, CLASS_SLOT, CLASS_SHARED, CLASS_GRAD };

/* What backward reads of each forward value, given what trains. */
enum { READ_BY_DX = 1, READ_BY_DW = 2 };

static int op_trains(const ir_graph *g, const ir_op *op, const unsigned char *trains) {
  return !trains || trains[g->values[op->out[0]].param];
}

static void classify_values(const ir_graph *g, int sec, const unsigned char *trains,
                            unsigned char *cls) {
  memset(cls, 0, (size_t)g->n_values);
  for (int i = 0; i < g->n_bwd; i++) {
    const ir_op *op = &g->bwd[i];
    if (op->param_grad && !op_trains(g, op, trains)) continue; /* never runs */
    for (int k = 0; k < op->n_in; k++)
      if (op->in[k] >= 0) cls[op->in[k]] |= op->param_grad ? READ_BY_DW : READ_BY_DX;
  }
  for (int v = 0; v < g->n_values; v++) {
    const ir_value *val = &g->values[v];
    int read = val->saved ? cls[v] : 0;
    if (val->kind == IR_V_GRAD) cls[v] = CLASS_GRAD;
    else if (val->kind != IR_V_ACT) cls[v] = CLASS_NONE;
    else if (v == g->output || (read & READ_BY_DX) || (read && sec != IR_BLOCK))
      cls[v] = CLASS_PER_INST;
    else cls[v] = read ? CLASS_SLOT : CLASS_SHARED;
  }
}

/* Sizes (pass 0) or assigns (pass 1) the activation arena. Offsets are
 * stored temporarily as (offset + 1) in bufs and fixed up after allocation. */
static size_t place_activations(ms_state *s, unsigned char *cls[IR_NSECTIONS],
                                size_t *shared_off[IR_NSECTIONS],
                                size_t *grad_off[IR_NSECTIONS][2]) {
  const ir_model *m = s->ir;
  size_t total = 0;
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    const ir_graph *g = &m->sections[sec];
    int sets = sec == IR_BLOCK ? 2 : 1;
    for (int v = 0; v < g->n_values; v++) {
      size_t bytes = value_bytes(s, &g->values[v]);
      /* a SLOT value needs scratch only where some block can be slotless */
      int unbound = cls[sec][v] == CLASS_SLOT && s->slotless;
      if (cls[sec][v] == CLASS_SHARED || unbound) {
        shared_off[sec][v] = total;
        total += bytes;
      } else if (cls[sec][v] == CLASS_GRAD) {
        for (int k = 0; k < sets; k++) {
          grad_off[sec][k][v] = total;
          total += bytes;
        }
      }
    }
  }
  const ir_graph *block = &m->sections[IR_BLOCK];
  s->act_slot_base = total;
  s->act_slot_bytes = 0;
  for (int v = 0; v < block->n_values; v++) {
    s->slot_scratch_off[v] = shared_off[IR_BLOCK][v];
    s->act_slot_off[v] = SIZE_MAX;
    if (cls[IR_BLOCK][v] != CLASS_SLOT) continue;
    s->act_slot_off[v] = s->act_slot_bytes;
    s->act_slot_bytes += value_bytes(s, &block->values[v]);
  }
  total += (size_t)s->n_grad_slots * s->act_slot_bytes;
  for (int inst = 0; inst < s->n_inst; inst++) {
    int sec = ms_inst_section(s, inst);
    const ir_graph *g = &m->sections[sec];
    for (int v = 0; v < g->n_values; v++) {
      if (cls[sec][v] != CLASS_PER_INST) continue;
      s->bufs[inst][v] = (void *)(total + 1);
      total += value_bytes(s, &g->values[v]);
    }
  }
  return total;
}

static int alloc_buf_tables(ms_state *s, lt_error *err) {
  s->bufs = calloc((size_t)s->n_inst, sizeof *s->bufs);
  if (!s->bufs) return lt_fail(err, "out of memory");
  for (int inst = 0; inst < s->n_inst; inst++) {
    const ir_graph *g = &s->ir->sections[ms_inst_section(s, inst)];
    s->bufs[inst] = calloc((size_t)g->n_values + 1, sizeof(void *));
    if (!s->bufs[inst]) return lt_fail(err, "out of memory");
  }
  return 0;
}

/* Where each activation goes, by class, for the whole run. */
typedef struct {
  unsigned char *cls[IR_NSECTIONS];
  size_t *shared_off[IR_NSECTIONS], *grad_off[IR_NSECTIONS][2];
} act_offsets;

/* Points every value of every instance at its memory. */
static int wire_values(ms_state *s, const act_offsets *ao, lt_error *err) {
  const ir_model *m = s->ir;
  char *arena = s->act_arena;
  for (int inst = 0; inst < s->n_inst; inst++) {
    int sec = ms_inst_section(s, inst), layer = ms_inst_layer(s, inst);
    const ir_graph *g = &m->sections[sec];
    void **b = s->bufs[inst];
    for (int v = 0; v < g->n_values; v++) {
      const ir_value *val = &g->values[v];
      switch (val->kind) {
      case IR_V_PARAM: b[v] = ms_param(s, val->param, layer); break;
      case IR_V_PARAM_GRAD: b[v] = ms_grad(s, val->param, layer); break;
      default:
        switch (ao->cls[sec][v]) {
        case CLASS_PER_INST: b[v] = arena + ((size_t)b[v] - 1); break;
        case CLASS_SHARED: b[v] = arena + ao->shared_off[sec][v]; break;
        case CLASS_GRAD: b[v] = arena + ao->grad_off[sec][layer % 2][v]; break;
        default: break; /* CLASS_SLOT: ms_bind_grad_slot, below */
        }
      }
    }
    if (sec == IR_BLOCK) ms_bind_grad_slot(s, layer, s->grad_slot[layer]);
  }
  /* Inputs: token ids, targets, the previous instance's output. */
  for (int inst = 0; inst < s->n_inst; inst++) {
    const ir_graph *g = &m->sections[ms_inst_section(s, inst)];
    if (inst == 0) s->bufs[inst][g->input] = s->ids;
    else {
      const ir_graph *prev = &m->sections[ms_inst_section(s, inst - 1)];
      s->bufs[inst][g->input] = s->bufs[inst - 1][prev->output];
    }
    if (g->targets >= 0) s->bufs[inst][g->targets] = s->targets;
  }
  /* Gradient seeds: d(output) of inst is d(input) of inst + 1. */
  for (int inst = 0; inst + 1 < s->n_inst; inst++) {
    const ir_graph *g = &m->sections[ms_inst_section(s, inst)];
    const ir_graph *next = &m->sections[ms_inst_section(s, inst + 1)];
    int seed = g->values[g->output].grad, next_d = next->values[next->input].grad;
    if (seed < 0) continue; /* nothing in this section needs a gradient */
    if (next_d < 0)
      return lt_fail(err, "%s: the %s section passes no gradient to its input",
                     m->path, ir_section_name(ms_inst_section(s, inst + 1)));
    s->bufs[inst][seed] = s->bufs[inst + 1][next_d];
  }
  return 0;
}

static void free_offsets(act_offsets *ao) {
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    free(ao->cls[sec]);
    free(ao->shared_off[sec]);
    free(ao->grad_off[sec][0]);
    free(ao->grad_off[sec][1]);
  }
}

/* Everything but the big arenas: offsets, buffer tables and every size. */
/* Every activation size below is at most N x cols x elem_bytes, and their
 * sum at most that times the number of values: bound it once here so no
 * product or sum in the layout can leave 64 bits. */
static int check_activation_sizes(const ir_model *m, int B, int T, int elem_bytes,
                                  lt_error *err) {
  if (B < 1 || T < 1 || (int64_t)B * T > INT32_MAX)
    return lt_fail(err, "%s: batch %d x sequence %d: the rows must number 1 to 2^31-1", m->path,
                   B, T);
  uint64_t cols = 1, n_values = 0, bytes;
  for (int sec = 0; sec < IR_NSECTIONS; sec++)
    for (int v = 0; v < m->sections[sec].n_values; v++, n_values++)
      if ((uint64_t)m->sections[sec].values[v].cols > cols)
        cols = (uint64_t)m->sections[sec].values[v].cols;
  if (__builtin_mul_overflow((uint64_t)B * (uint64_t)T, cols, &bytes) ||
      __builtin_mul_overflow(bytes, (uint64_t)elem_bytes * (n_values + 1), &bytes) ||
      bytes > (UINT64_C(1) << 62))
    return lt_fail(err, "%s: batch %d x sequence %d x width %llu: the activations would need "
                   "more than 2^62 bytes", m->path, B, T, (unsigned long long)cols);
  return 0;
}

static int plan(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots, int slotless,
                const unsigned char *trains, int elem_bytes, act_offsets *ao, lt_error *err) {
  memset(s, 0, sizeof *s);
  memset(ao, 0, sizeof *ao);
  if (check_activation_sizes(m, B, T, elem_bytes, err)) return -1;
  s->ir = m;
  s->B = B, s->T = T, s->N = B * T;
  s->elem_bytes = elem_bytes;
  s->n_inst = m->n_layer + 2;
  s->slotless = slotless || n_grad_slots < m->n_layer;
  s->n_layer_slots = m->n_layer > 0 ? m->n_layer : 1;
  if (n_grad_slots < 0 || n_grad_slots > m->n_layer)
    return lt_fail(err, "%d gradient slots for %d blocks", n_grad_slots, m->n_layer);
  if (layout_params(s, n_grad_slots, trains, err) || alloc_buf_tables(s, err)) return -1;
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    size_t n = (size_t)m->sections[sec].n_values + 1;
    ao->cls[sec] = malloc(n);
    ao->shared_off[sec] = calloc(n, sizeof(size_t));
    ao->grad_off[sec][0] = calloc(n, sizeof(size_t));
    ao->grad_off[sec][1] = calloc(n, sizeof(size_t));
    if (!ao->cls[sec] || !ao->shared_off[sec] || !ao->grad_off[sec][0] || !ao->grad_off[sec][1])
      return lt_fail(err, "out of memory");
    classify_values(&m->sections[sec], sec, trains, ao->cls[sec]);
  }
  size_t n_block = (size_t)m->sections[IR_BLOCK].n_values + 1;
  s->act_slot_off = calloc(n_block, sizeof(size_t));
  s->slot_scratch_off = calloc(n_block, sizeof(size_t));
  if (!s->act_slot_off || !s->slot_scratch_off) return lt_fail(err, "out of memory");
  s->bytes_acts = place_activations(s, ao->cls, ao->shared_off, ao->grad_off);
  return 0;
}

int ms_layout(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots, int slotless,
              const unsigned char *trains, int elem_bytes, lt_error *err) {
  act_offsets ao;
  int rc = plan(s, m, B, T, n_grad_slots, slotless, trains, elem_bytes, &ao, err);
  free_offsets(&ao);
  return rc;
}

int ms_create(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots, lt_error *err) {
  return ms_create_trains(s, m, B, T, n_grad_slots, 0, NULL, err);
}

/* with_arrays: parameters, gradients and activations; else the batch alone. */
static int create(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots, int slotless,
                  const unsigned char *trains, int with_arrays, lt_error *err) {
  act_offsets ao;
  int rc = plan(s, m, B, T, n_grad_slots, slotless, trains, (int)sizeof(float), &ao, err);
  if (rc == 0) {
    s->ids = calloc((size_t)s->N, sizeof(int32_t));
    s->targets = calloc((size_t)s->N, sizeof(int32_t));
    if (with_arrays)
      s->act_arena = aligned_alloc(MS_ALIGN, s->bytes_acts ? s->bytes_acts : MS_ALIGN);
    if (!s->ids || !s->targets || (with_arrays && !s->act_arena))
      rc = lt_fail(err, "out of memory for %zu bytes of activations", s->bytes_acts);
  }
  if (rc == 0 && with_arrays && (rc = alloc_param_arenas(s, err)) == 0) {
    memset(s->act_arena, 0, s->bytes_acts);
    rc = wire_values(s, &ao, err);
  }
  free_offsets(&ao);
  return rc;
}

int ms_create_trains(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots,
                     int slotless, const unsigned char *trains, lt_error *err) {
  return create(s, m, B, T, n_grad_slots, slotless, trains, 1, err);
}

int ms_create_layout(ms_state *s, const ir_model *m, int B, int T, int n_grad_slots,
                     int slotless, const unsigned char *trains, lt_error *err) {
  return create(s, m, B, T, n_grad_slots, slotless, trains, 0, err);
}

void ms_free(ms_state *s) {
  if (s->bufs)
    for (int inst = 0; inst < s->n_inst; inst++) free(s->bufs[inst]);
  free(s->bufs);
  free(s->param_off);
  free(s->grad_off);
  free(s->grad_slot);
  free(s->act_slot_off);
  free(s->slot_scratch_off);
  free(s->params);
  free(s->grads);
  free(s->ids);
  free(s->targets);
  free(s->act_arena);
  memset(s, 0, sizeof *s);
}
