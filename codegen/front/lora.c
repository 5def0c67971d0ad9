/* lora.c: adds LoRA adapters to the block graph (lora.h). */
#include "lora.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The weight param of a block linear op, or -1 if op is not a linear. */
static int linear_weight(const ir_graph *g, const ir_op *op) {
  if (op->kind != IR_OP_LINEAR) return -1;
  const ir_value *w = &g->values[op->in[1]];
  return w->kind == IR_V_PARAM ? w->param : -1;
}

static int is_block_linear_weight(const ir_model *m, int p) {
  const ir_graph *g = &m->sections[IR_BLOCK];
  for (int i = 0; i < g->n_fwd; i++)
    if (linear_weight(g, &g->fwd[i]) == p) return 1;
  return 0;
}

static void list_linear_weights(const ir_model *m, char *out, size_t cap) {
  out[0] = '\0';
  for (int p = 0; p < m->n_params; p++)
    if (m->params[p].section == IR_BLOCK && is_block_linear_weight(m, p))
      snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? ", " : "",
               m->params[p].key);
}

/* chosen[p] = 1 for every param named in `targets` (NULL: every block
 * linear weight). */
static int choose_targets(const ir_model *m, const char *targets, char *chosen, lt_error *err) {
  if (!targets) {
    for (int p = 0; p < m->n_params; p++)
      chosen[p] = (char)(m->params[p].section == IR_BLOCK && is_block_linear_weight(m, p));
    return 0;
  }
  const char *s = targets;
  for (;;) {
    size_t len = strcspn(s, ",");
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(len < 63 ? len : 63), s);
    int p = ir_find_param(m, key);
    if (p < 0 || m->params[p].section != IR_BLOCK || !is_block_linear_weight(m, p)) {
      char known[512];
      list_linear_weights(m, known, sizeof known);
      return lt_fail(err, "%s: LoRA target '%s' is not a block linear weight (these are: %s)",
                     m->path, key, known);
    }
    chosen[p] = 1;
    if (!s[len]) return 0;
    s += len + 1;
  }
}

/* ".weight" at the end becomes ".lora_A.weight"; other names get it added. */
static int adapter_hf_name(const char *base, char which, char *out, size_t cap) {
  size_t n = strlen(base), tail = strlen(".weight");
  if (n >= tail && strcmp(base + n - tail, ".weight") == 0) n -= tail;
  return snprintf(out, cap, "%.*s.lora_%c.weight", (int)n, base, which) >= (int)cap;
}

/* Adds block param <key>_lora_<which> with the given shape and init. */
static int add_adapter(ir_model *m, int base, char which, int64_t rows, int64_t cols, int init,
                       double std, lt_error *err) {
  const ir_param *w = &m->params[base];
  ir_param p;
  memset(&p, 0, sizeof p);
  if (snprintf(p.key, sizeof p.key, "%s_lora_%c", w->key, which) >= (int)sizeof p.key ||
      adapter_hf_name(w->hf_name, which, p.hf_name, sizeof p.hf_name))
    return lt_fail(err, "%s: LoRA: the adapter names of '%s' are too long", m->path, w->key);
  if (ir_find_param(m, p.key) >= 0)
    return lt_fail(err, "%s: LoRA: param '%s' already exists", m->path, p.key);
  p.section = IR_BLOCK;
  p.ndim = 2;
  p.shape[0] = rows, p.shape[1] = cols;
  p.layout = IR_LAYOUT_OUT_IN;
  p.init = init, p.init_std = std;
  p.adapter = 1;
  p.line = w->line;
  return ir_add_param(m, &p);
}

/* An activation of the block graph named after value `like` plus a suffix. */
static int add_act(ir_graph *g, int like, const char *suffix, int64_t cols) {
  ir_value v = g->values[like];
  snprintf(v.name, sizeof v.name, "%.50s%s", g->values[like].name, suffix);
  v.kind = IR_V_ACT, v.cols = cols, v.param = v.grad = -1;
  v.saved = v.saved_dx = 0;
  return ir_add_value(g, &v);
}

/* The graph value of param p, named by its key as the YAML loader does. */
static int add_param_value(ir_graph *g, const ir_model *m, int p) {
  ir_value v;
  memset(&v, 0, sizeof v);
  snprintf(v.name, sizeof v.name, "%s", m->params[p].key);
  v.kind = IR_V_PARAM, v.dtype = IR_F32, v.cols = ir_param_numel(&m->params[p]);
  v.param = p, v.grad = -1;
  return ir_add_value(g, &v);
}

static void add_op(ir_graph *g, ir_opkind kind, int in0, int in1, int out, int line, double factor) {
  ir_op op;
  memset(&op, 0, sizeof op);
  op.kind = kind;
  op.n_in = in1 < 0 ? 1 : 2;
  op.in[0] = in0, op.in[1] = in1;
  op.n_out = 1;
  op.out[0] = out;
  op.line = line;
  op.factor = factor;
  ir_add_fwd(g, &op);
}

/* Re-emits linear op `lin` as the base linear into "<y>.base" plus the
 * adapter path, the last add writing y so later ops read it unchanged. */
static int rewire_linear(ir_model *m, ir_op lin, int rank, double alpha, lt_error *err) {
  ir_graph *g = &m->sections[IR_BLOCK];
  int w = g->values[lin.in[1]].param, y = lin.out[0];
  int64_t out_w = g->values[y].cols, in_w = g->values[lin.in[0]].cols;
  int a = add_adapter(m, w, 'A', rank, in_w, IR_INIT_NORMAL, 1.0 / rank, err);
  if (a < 0) return -1;
  int b = add_adapter(m, w, 'B', out_w, rank, IR_INIT_ZEROS, 0.0, err);
  if (b < 0) return -1;
  int va = add_param_value(g, m, a), vb = add_param_value(g, m, b);
  int base = add_act(g, y, ".base", out_w), t = add_act(g, y, ".lora_t", rank);
  int u = add_act(g, y, ".lora_u", out_w), us = add_act(g, y, ".lora_scaled", out_w);
  lin.out[0] = base;
  ir_add_fwd(g, &lin);
  add_op(g, IR_OP_LINEAR, lin.in[0], va, t, lin.line, 0);
  add_op(g, IR_OP_LINEAR, t, vb, u, lin.line, 0);
  add_op(g, IR_OP_SCALE, u, -1, us, lin.line, alpha / rank);
  add_op(g, IR_OP_ADD, base, us, y, lin.line, 0);
  return 0;
}

/* Rebuilds the block's op list with every targeted linear rewired. */
static int rewrite_block(ir_model *m, const char *chosen, int rank, double alpha,
                         lt_error *err) {
  ir_graph *g = &m->sections[IR_BLOCK];
  ir_op *old = g->fwd;
  int n_old = g->n_fwd, rc = 0;
  g->fwd = NULL, g->n_fwd = g->cap_fwd = 0;
  for (int i = 0; i < n_old && rc == 0; i++) {
    int w = linear_weight(g, &old[i]);
    if (w >= 0 && chosen[w]) rc = rewire_linear(m, old[i], rank, alpha, err);
    else ir_add_fwd(g, &old[i]);
  }
  free(old);
  return rc;
}

int lora_apply(ir_model *m, int rank, double alpha, const char *targets, lt_error *err) {
  if (rank < 1) return lt_fail(err, "LoRA rank must be at least 1, got %d", rank);
  if (!isfinite(alpha) || alpha <= 0)
    return lt_fail(err, "LoRA alpha must be a positive number, got %g", alpha);
  if (m->sections[IR_BLOCK].n_bwd > 0)
    return lt_fail(err, "%s: LoRA must be applied before the backward graphs are built",
                   m->path);
  char *chosen = calloc((size_t)m->n_params + 1, 1);
  if (!chosen) return lt_fail(err, "out of memory");
  int rc = choose_targets(m, targets, chosen, err);
  if (rc == 0) rc = rewrite_block(m, chosen, rank, alpha, err);
  free(chosen);
  return rc;
}

void lora_adapters_of(const ir_model *m, int base, int *a, int *b) {
  char key[64];
  snprintf(key, sizeof key, "%s_lora_A", m->params[base].key);
  *a = ir_find_param(m, key);
  key[strlen(key) - 1] = 'B';
  *b = ir_find_param(m, key);
  if (*a < 0 || *b < 0 || !m->params[*a].adapter || !m->params[*b].adapter) *a = *b = -1;
}

void lora_merge_weight(float *W, const float *A, const float *B, int in, int out, int rank,
                       double scale, int layout) {
  for (int o = 0; o < out; o++)
    for (int i = 0; i < in; i++) {
      double s = 0.0;
      for (int r = 0; r < rank; r++) s += (double)B[(int64_t)o * rank + r] * A[(int64_t)r * in + i];
      int64_t at = layout == IR_LAYOUT_IN_OUT ? (int64_t)i * out + o : (int64_t)o * in + i;
      W[at] = (float)(W[at] + scale * s);
    }
}

void lora_trains(const ir_model *m, unsigned char *trains) {
  for (int p = 0; p < m->n_params; p++) trains[p] = (unsigned char)m->params[p].adapter;
}
