/* autodiff.c: reverse-mode differentiation of each section's op graph.
 *
 * Per section, first mark the values that can have a gradient: those that
 * depend on a parameter or on the section's float input. Then walk the
 * forward ops backwards from the output's gradient. Each op's rule
 * reads the total gradient of its outputs and hands a gradient
 * contribution to each input that needs one. A value read by several ops
 * gets several contributions; `add` ops sum them when the walk reaches the
 * op that produced the value, i.e. once every reader has contributed, so the
 * emitted order is a valid execution order. Parameter gradients need no sum:
 * their ops accumulate into one IR_V_PARAM_GRAD value per param. */
#include "autodiff.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One gradient contribution toward a forward value. */
typedef struct {
  int grad;  /* the value holding it */
  int fresh; /* created for this value by a rule (else another value's
                gradient passed through, as `add` does) */
  int line;  /* the reading op's line, for the `add` that sums it */
  int next;  /* next contribution toward the same value, or -1 */
} ad_contrib;

typedef struct {
  ir_model *m;
  ir_graph *g;
  int section;
  int n_fwd_values;    /* values that existed before autodiff */
  char *needs;         /* [n_fwd_values]: may get a gradient */
  int *first;          /* [n_fwd_values]: its first contribution, or -1 */
  ad_contrib *contrib; /* never more than one per op input, plus the seed */
  int n_contrib;
  lt_error *err;
} ad_ctx;

static ir_value *value(ad_ctx *c, int v) { return &c->g->values[v]; }

static int fail_op(ad_ctx *c, const ir_op *op, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_op(ad_ctx *c, const ir_op *op, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lt_fail(c->err, "%s:%d: %s: %s", c->m->path, op->line,
                 ir_op_name(op->kind), msg);
}

/* ------------------------------------------------------------------------ */
/* which values need a gradient */

static int is_source(ad_ctx *c, int v) {
  const ir_value *x = value(c, v);
  return x->kind == IR_V_PARAM || (v == c->g->input && x->dtype == IR_F32);
}

/* needs[v]: v is a float parameter, the float input, or computed from one.
 * (Values the output does not depend on need no test here: nothing
 * contributes to their gradient, so the walk skips them.) */
static void mark_needs(ad_ctx *c) {
  for (int v = 0; v < c->n_fwd_values; v++) c->needs[v] = (char)is_source(c, v);
  for (int i = 0; i < c->g->n_fwd; i++) {
    const ir_op *op = &c->g->fwd[i];
    int any = 0;
    for (int k = 0; k < op->n_in; k++) any |= c->needs[op->in[k]];
    for (int k = 0; k < op->n_out; k++)
      c->needs[op->out[k]] |=
          (char)(any && value(c, op->out[k])->dtype == IR_F32);
  }
}

/* ------------------------------------------------------------------------ */
/* gradient values */

/* Writes base into name (cut to fit), with a "_2", "_3", ... suffix should a
 * value already use it. name may be a value's own field: the candidate is
 * built aside so the search never finds the value itself. Names are for
 * people reading plans; code goes by index. */
static void unique_name(ad_ctx *c, char name[64], const char *base) {
  char cand[64];
  snprintf(cand, sizeof cand, "%.63s", base);
  for (int k = 2; ir_find_value(c->g, cand) >= 0; k++)
    snprintf(cand, sizeof cand, "%.52s_%d", base, k);
  memcpy(name, cand, sizeof cand);
}

/* Adds a gradient value shaped like value `like`, named printf(fmt, ...). */
static int new_value(ad_ctx *c, int kind, int like, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int new_value(ad_ctx *c, int kind, int like, const char *fmt, ...) {
  char base[192];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(base, sizeof base, fmt, ap);
  va_end(ap);
  ir_value v;
  memset(&v, 0, sizeof v);
  unique_name(c, v.name, base);
  const ir_value *src = value(c, like);
  v.kind = kind;
  v.dtype = IR_F32;
  v.scalar = src->scalar;
  v.cols = src->cols;
  v.param = kind == IR_V_PARAM_GRAD ? src->param : -1;
  v.grad = -1;
  return ir_add_value(c->g, &v);
}

/* The gradient buffer of parameter value pv: one per param per graph. */
static int param_grad(ad_ctx *c, int pv) {
  int p = value(c, pv)->param;
  for (int v = c->n_fwd_values; v < c->g->n_values; v++)
    if (value(c, v)->kind == IR_V_PARAM_GRAD && value(c, v)->param == p) {
      value(c, pv)->grad = v;
      return v;
    }
  int v = new_value(c, IR_V_PARAM_GRAD, pv, "d_%s", c->m->params[p].key);
  value(c, pv)->grad = v;
  return v;
}

static void add_contrib(ad_ctx *c, int v, int grad, int fresh, int line) {
  ad_contrib *n = &c->contrib[c->n_contrib];
  n->grad = grad;
  n->fresh = fresh;
  n->line = line;
  n->next = -1;
  int *link = &c->first[v];
  while (*link >= 0) link = &c->contrib[*link].next;
  *link = c->n_contrib++;
}

/* A new gradient value for input v of op, registered as a contribution;
 * renamed to "d_<v>" if it turns out to be v's only one. */
static int fresh_contrib(ad_ctx *c, const ir_op *op, int v) {
  int g = new_value(c, IR_V_GRAD, v, "d_%s_via_%s", value(c, v)->name,
                    value(c, op->out[0])->name);
  add_contrib(c, v, g, 1, op->line);
  return g;
}

/* Emits sum = a + b, a partial sum of v's gradient named d_<v><suffix>. */
static int emit_grad_add(ad_ctx *c, int v, int a, int b, int line,
                         const char *suffix) {
  int sum = new_value(c, IR_V_GRAD, v, "d_%s%s", value(c, v)->name, suffix);
  ir_op op;
  memset(&op, 0, sizeof op);
  op.kind = IR_OP_ADD;
  op.n_in = 2;
  op.in[0] = a;
  op.in[1] = b;
  op.n_out = 1;
  op.out[0] = sum;
  op.line = line;
  ir_add_bwd(c->g, &op);
  return sum;
}

/* v's total gradient, summing its contributions if there are several;
 * -1 if it has none. Called once no further contribution can arrive. */
static int total_grad(ad_ctx *c, int v) {
  int i = c->first[v];
  if (i < 0) return -1;
  int total = c->contrib[i].grad;
  if (c->contrib[i].next < 0 && c->contrib[i].fresh) {
    char base[80];
    snprintf(base, sizeof base, "d_%s", value(c, v)->name);
    unique_name(c, value(c, total)->name, base);
  }
  for (int k = 1, j = c->contrib[i].next; j >= 0; k++, j = c->contrib[j].next) {
    char suffix[24] = "";
    if (c->contrib[j].next >= 0) snprintf(suffix, sizeof suffix, "_sum%d", k);
    total = emit_grad_add(c, v, total, c->contrib[j].grad, c->contrib[j].line,
                          suffix);
  }
  value(c, v)->grad = total;
  return total;
}

/* ------------------------------------------------------------------------ */
/* rules: one per forward op kind. dy[k] is the total gradient of out[k], or
 * -1 where that output has none. */

static void emit(ad_ctx *c, const ir_op *fwd, int kind, int n_in, const int *in,
                 int n_out, const int *out, int param_grad) {
  ir_op op = *fwd; /* keeps eps, heads, causal, sizes, rope's attrs,
                      .activation, the line */
  op.kind = kind;
  op.n_in = n_in;
  memcpy(op.in, in, (size_t)n_in * sizeof *in);
  op.n_out = n_out;
  memcpy(op.out, out, (size_t)n_out * sizeof *out);
  op.param_grad = param_grad;
  ir_add_bwd(c->g, &op);
}

static void rule_embedding(ad_ctx *c, const ir_op *op, const int *dy) {
  int in[2] = {op->in[0], dy[0]}, out[1] = {param_grad(c, op->in[1])};
  emit(c, op, IR_OP_EMBEDDING_BWD_W, 2, in, 1, out, 1);
}

static void rule_pos_embedding(ad_ctx *c, const ir_op *op, const int *dy) {
  int out[1] = {param_grad(c, op->in[0])};
  emit(c, op, IR_OP_POS_EMBEDDING_BWD_W, 1, dy, 1, out, 1);
}

/* y = a + b passes dy on to both, unchanged and without an op. */
static void rule_add(ad_ctx *c, const ir_op *op, const int *dy) {
  for (int k = 0; k < 2; k++)
    if (c->needs[op->in[k]]) add_contrib(c, op->in[k], dy[0], 0, op->line);
}

static void rule_layernorm(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0], w = op->in[1], mean = op->out[1], rstd = op->out[2];
  if (c->needs[x]) {
    int in[5] = {dy[0], x, w, mean, rstd}, out[1] = {fresh_contrib(c, op, x)};
    emit(c, op, IR_OP_LAYERNORM_BWD_X, 5, in, 1, out, 0);
  }
  int in[4] = {dy[0], x, mean, rstd};
  int out[2] = {param_grad(c, w), param_grad(c, op->in[2])};
  emit(c, op, IR_OP_LAYERNORM_BWD_WB, 4, in, 2, out, 1);
}

static void rule_linear(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0], W = op->in[1];
  if (c->needs[x]) {
    int in[2] = {dy[0], W}, out[1] = {fresh_contrib(c, op, x)};
    emit(c, op, IR_OP_LINEAR_BWD_X, 2, in, 1, out, 0);
  }
  int in[2] = {dy[0], x}, out[1] = {param_grad(c, W)};
  emit(c, op, IR_OP_LINEAR_BWD_W, 2, in, 1, out, 1);
  if (op->n_in == 3) {
    int db[1] = {param_grad(c, op->in[2])};
    emit(c, op, IR_OP_LINEAR_BWD_B, 1, dy, 1, db, 1);
  }
}

static void rule_gelu(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0];
  if (!c->needs[x]) return;
  int in[2] = {dy[0], x}, out[1] = {fresh_contrib(c, op, x)};
  emit(c, op, IR_OP_GELU_BWD, 2, in, 1, out, 0);
}

static void rule_rmsnorm(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0], w = op->in[1], rstd = op->out[1];
  if (c->needs[x]) {
    int in[4] = {dy[0], x, w, rstd}, out[1] = {fresh_contrib(c, op, x)};
    emit(c, op, IR_OP_RMSNORM_BWD_X, 4, in, 1, out, 0);
  }
  int in[3] = {dy[0], x, rstd}, out[1] = {param_grad(c, w)};
  emit(c, op, IR_OP_RMSNORM_BWD_W, 3, in, 1, out, 1);
}

/* A rotation's gradient is the inverse rotation; it reads nothing saved. */
static void rule_rope(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0];
  if (!c->needs[x]) return;
  int out[1] = {fresh_contrib(c, op, x)};
  emit(c, op, IR_OP_ROPE_BWD, 1, dy, 1, out, 0);
}

static void rule_silu(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0];
  if (!c->needs[x]) return;
  int in[2] = {dy[0], x}, out[1] = {fresh_contrib(c, op, x)};
  emit(c, op, IR_OP_SILU_BWD, 2, in, 1, out, 0);
}

/* y = fn(x): dx = dy * dfn(x), as gelu; x is saved, and since dx is not a
 * parameter gradient the FROZEN path needs x too (saved_dx). emit keeps the
 * op's .activation, so the backward op finds dfn. */
static void rule_activation(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0];
  if (!c->needs[x]) return;
  int in[2] = {dy[0], x}, out[1] = {fresh_contrib(c, op, x)};
  emit(c, op, IR_OP_ACTIVATION_BWD, 2, in, 1, out, 0);
}

/* y = a * b: da = dy * b and db = dy * a, each a mul of its own. */
static void rule_mul(ad_ctx *c, const ir_op *op, const int *dy) {
  for (int k = 0; k < 2; k++) {
    int v = op->in[k];
    if (!c->needs[v]) continue;
    int in[2] = {dy[0], op->in[1 - k]}, out[1] = {fresh_contrib(c, op, v)};
    emit(c, op, IR_OP_MUL, 2, in, 1, out, 0);
  }
}

/* y = f * x: dx = f * dy, the same op (emit keeps the factor). */
static void rule_scale(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0];
  if (!c->needs[x]) return;
  int out[1] = {fresh_contrib(c, op, x)};
  emit(c, op, IR_OP_SCALE, 1, dy, 1, out, 0);
}

/* The pieces' gradients side by side; -1 in dy marks a piece that nothing
 * read, which concat fills with zeros, so it carries every piece's width. */
static void rule_split(ad_ctx *c, const ir_op *op, const int *dy) {
  int x = op->in[0];
  if (!c->needs[x]) return;
  ir_op widths = *op;
  for (int k = 0; k < op->n_out; k++)
    widths.sizes[k] = value(c, op->out[k])->cols;
  int out[1] = {fresh_contrib(c, op, x)};
  emit(c, &widths, IR_OP_CONCAT, op->n_out, dy, 1, out, 0);
}

/* The kernel writes dq, dk and dv together, so all three get a value. */
static void rule_attention(ad_ctx *c, const ir_op *op, const int *dy) {
  int q = op->in[0], k = op->in[1], v = op->in[2];
  if (!c->needs[q] && !c->needs[k] && !c->needs[v]) return;
  int in[6] = {dy[0], q, k, v, op->out[0], op->out[1]};
  int out[3] = {fresh_contrib(c, op, q), fresh_contrib(c, op, k),
                fresh_contrib(c, op, v)};
  emit(c, op, IR_OP_ATTENTION_BWD, 6, in, 3, out, 0);
}

/* The loss's own gradient is 1, implicit in cross_entropy_bwd. */
static void rule_cross_entropy(ad_ctx *c, const ir_op *op) {
  int logits = op->in[0];
  if (!c->needs[logits]) return;
  int in[2] = {logits, op->in[1]}, out[1] = {fresh_contrib(c, op, logits)};
  emit(c, op, IR_OP_CROSS_ENTROPY_BWD, 2, in, 1, out, 0);
}

static void apply_rule(ad_ctx *c, const ir_op *op, const int *dy) {
  switch (op->kind) {
  case IR_OP_EMBEDDING: rule_embedding(c, op, dy); break;
  case IR_OP_POS_EMBEDDING: rule_pos_embedding(c, op, dy); break;
  case IR_OP_ADD: rule_add(c, op, dy); break;
  case IR_OP_LAYERNORM: rule_layernorm(c, op, dy); break;
  case IR_OP_LINEAR: rule_linear(c, op, dy); break;
  case IR_OP_GELU: rule_gelu(c, op, dy); break;
  case IR_OP_SPLIT: rule_split(c, op, dy); break;
  case IR_OP_ATTENTION: rule_attention(c, op, dy); break;
  case IR_OP_RMSNORM: rule_rmsnorm(c, op, dy); break;
  case IR_OP_ROPE: rule_rope(c, op, dy); break;
  case IR_OP_SILU: rule_silu(c, op, dy); break;
  case IR_OP_MUL: rule_mul(c, op, dy); break;
  case IR_OP_SCALE: rule_scale(c, op, dy); break;
  case IR_OP_ACTIVATION: rule_activation(c, op, dy); break;
  case IR_OP_CROSS_ENTROPY: rule_cross_entropy(c, op); break;
  }
}

/* ------------------------------------------------------------------------ */
/* checks that make every rule above total */

/* Which inputs of a forward op are trained in place (the backward op
 * accumulates into a parameter gradient): those must be params, and a param
 * anywhere else would need a gradient no op could write. */
static int param_slot(int kind, int k) {
  switch (kind) {
  case IR_OP_EMBEDDING: return k == 1;
  case IR_OP_POS_EMBEDDING: return k == 0;
  case IR_OP_LAYERNORM: return k >= 1;
  case IR_OP_RMSNORM: return k == 1;
  case IR_OP_LINEAR: return k >= 1;
  default: return 0;
  }
}

static int check_op(ad_ctx *c, const ir_op *op) {
  if (op->kind > IR_OP_CROSS_ENTROPY)
    return fail_op(c, op, "a backward op in the forward graph");
  for (int k = 0; k < op->n_in; k++) {
    const ir_value *v = value(c, op->in[k]);
    int is_param = v->kind == IR_V_PARAM;
    if (param_slot(op->kind, k) && !is_param)
      return fail_op(c, op, "input %d ('%s') must be a param to be trained",
                     k + 1, v->name);
    if (!param_slot(op->kind, k) && is_param)
      return fail_op(c, op, "param '%s' as input %d cannot be trained; params "
                     "train as tables, weights, biases and norm scales",
                     v->name, k + 1);
  }
  /* cross_entropy_bwd assumes d(loss) = 1: the loss must end the head */
  if (op->kind == IR_OP_CROSS_ENTROPY &&
      (c->section != IR_HEAD || op->out[0] != c->g->output))
    return fail_op(c, op, "its loss must be the head's output");
  return 0;
}

static int check_graph(ad_ctx *c) {
  const ir_graph *g = c->g;
  if (g->output < 0)
    return lt_fail(c->err, "%s: the %s has no output", c->m->path,
                   ir_section_name(c->section));
  int head_loss = 0;
  for (int i = 0; i < g->n_fwd; i++) {
    if (check_op(c, &g->fwd[i])) return -1;
    head_loss |= g->fwd[i].kind == IR_OP_CROSS_ENTROPY;
  }
  if (c->section == IR_HEAD && !head_loss)
    return lt_fail(c->err, "%s: the head's output '%s' must be a cross_entropy "
                   "loss", c->m->path, value(c, g->output)->name);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* driver */

/* embed and block receive d(output) from the section after them */
static void add_seed(ad_ctx *c) {
  if (c->section == IR_HEAD) return;
  int out = c->g->output;
  int seed = new_value(c, IR_V_INPUT, out, "d_%s", value(c, out)->name);
  add_contrib(c, out, seed, 0, 0);
}

/* Reverse walk: when op i is reached, every reader of its outputs (a later
 * op) has contributed, so their total gradients are final. */
static void walk_backward(ad_ctx *c) {
  for (int i = c->g->n_fwd - 1; i >= 0; i--) {
    ir_op op = c->g->fwd[i];
    int dy[IR_MAX_OUT], any = op.kind == IR_OP_CROSS_ENTROPY;
    for (int k = 0; k < op.n_out; k++) {
      dy[k] = total_grad(c, op.out[k]);
      any |= dy[k] >= 0;
    }
    if (any) apply_rule(c, &op, dy);
  }
  total_grad(c, c->g->input);
}

/* Forward values a backward op reads must outlive the forward pass; those a
 * dX op reads are needed even by a frozen block. */
static void mark_saved(ad_ctx *c) {
  for (int i = 0; i < c->g->n_bwd; i++) {
    const ir_op *op = &c->g->bwd[i];
    for (int k = 0; k < op->n_in; k++) {
      int v = op->in[k];
      if (v < 0 || v >= c->n_fwd_values) continue;
      ir_value *x = value(c, v);
      if (x->kind != IR_V_INPUT && x->kind != IR_V_ACT) continue;
      x->saved = 1;
      if (!op->param_grad) x->saved_dx = 1;
    }
  }
}

static int differentiate_section(ir_model *m, int section, lt_error *err) {
  ir_graph *g = &m->sections[section];
  ad_ctx c = {.m = m, .g = g, .section = section, .n_fwd_values = g->n_values,
              .err = err};
  if (check_graph(&c)) return -1;
  int max_contrib = 1;
  for (int i = 0; i < g->n_fwd; i++) max_contrib += g->fwd[i].n_in;
  c.needs = malloc((size_t)g->n_values);
  c.first = malloc((size_t)g->n_values * sizeof *c.first);
  c.contrib = malloc((size_t)max_contrib * sizeof *c.contrib);
  int rc = 0;
  if (!c.needs || !c.first || !c.contrib) {
    rc = lt_fail(err, "autodiff: out of memory");
  } else {
    for (int v = 0; v < g->n_values; v++) c.first[v] = -1;
    mark_needs(&c);
    add_seed(&c);
    walk_backward(&c);
    mark_saved(&c);
  }
  free(c.needs);
  free(c.first);
  free(c.contrib);
  return rc;
}

int ad_build_backward(ir_model *m, lt_error *err) {
  for (int s = 0; s < IR_NSECTIONS; s++)
    if (m->sections[s].n_bwd > 0)
      return lt_fail(err, "%s: the backward graphs are already built", m->path);
  for (int s = 0; s < IR_NSECTIONS; s++) {
    /* a hand-built IR may leave a section out */
    if (m->sections[s].n_values == 0) continue;
    if (differentiate_section(m, s, err)) return -1;
  }
  return 0;
}
