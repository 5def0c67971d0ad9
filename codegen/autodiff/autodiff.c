/* autodiff.c: reverse-mode differentiation of each section's op graph.
 *
 * Per section, first mark the values that can have a gradient: those that
 * depend on a parameter or on the section's float input. Then walk the
 * forward ops backwards from the output's gradient. Each op's rule (from
 * the op table, codegen/ir/ir_ops.c) reads the total gradient of its outputs
 * and hands a gradient contribution to each input that needs one. A value read by several ops
 * gets several contributions; `add` ops sum them when the walk reaches the
 * op that produced the value, i.e. once every reader has contributed, so the
 * emitted order is a valid execution order. Parameter gradients need no sum:
 * their ops accumulate into one IR_V_PARAM_GRAD value per param. */
#include "autodiff.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir_ops.h"

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
/* the table's gradient rules (ir_ops.h), over this walk's state */

static ad_ctx *ctx_of(ir_grad *r) { return r->ctx; }

static int grad_needs(ir_grad *r, int v) { return ctx_of(r)->needs[v]; }

static int grad_dx(ir_grad *r, int v) { return fresh_contrib(ctx_of(r), r->op, v); }

static int grad_dparam(ir_grad *r, int v) { return param_grad(ctx_of(r), v); }

static void grad_pass(ir_grad *r, int v, int grad) {
  add_contrib(ctx_of(r), v, grad, 0, r->op->line);
}

static void grad_emit(ir_grad *r, const ir_op *like, ir_opkind kind, int n_in,
                      const int *in, int n_out, const int *out, int param_grad) {
  ir_op op = *like; /* keeps eps, heads, causal, sizes, rope's attrs,
                       .activation, the line */
  op.kind = kind;
  op.n_in = n_in;
  memcpy(op.in, in, (size_t)n_in * sizeof *in);
  op.n_out = n_out;
  memcpy(op.out, out, (size_t)n_out * sizeof *out);
  op.param_grad = param_grad;
  ir_add_bwd(ctx_of(r)->g, &op);
}

static void apply_rule(ad_ctx *c, const ir_op *op, const int *dy) {
  ir_grad r = {.g = c->g, .op = op, .dy = dy, .needs = grad_needs, .dx = grad_dx,
               .dparam = grad_dparam, .pass = grad_pass, .emit = grad_emit, .ctx = c};
  ir_op_info[op->kind].grad(&r);
}

/* ------------------------------------------------------------------------ */
/* checks that make every rule total */

/* Inputs the table says train in place (the backward op accumulates into a
 * parameter gradient) must be params, and a param anywhere else would need a
 * gradient no op could write. */
static int param_slot(ir_opkind kind, int k) {
  return (ir_op_info[kind].params >> k) & 1u;
}

static int check_op(ad_ctx *c, const ir_op *op) {
  if (!ir_op_is_forward(op->kind))
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
  /* the loss's backward assumes d(loss) = 1: the loss must end the head */
  if (ir_op_info[op->kind].loss &&
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
    head_loss |= ir_op_info[g->fwd[i].kind].loss;
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
    int dy[IR_MAX_OUT], any = ir_op_info[op.kind].loss;
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
