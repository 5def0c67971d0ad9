#include "executor.h"

#include <stdint.h>
#include <string.h>

#include "clock_ms.h"
#include "cpu_ops.h"
#include "ir_ops.h"
#include "ir_rope.h"

/* Everything an op kernel needs, resolved from the IR and the buffers. */
typedef struct {
  const ir_model *m;
  const ir_graph *g;
  void **b;          /* per value of g */
  int B, T, N;
  float loss_scale;
  int layer;         /* the block's layer (0 outside the block): per-layer op variants */
  int pos0;          /* decoding: the first row's position (0 in training) */
  int positions;     /* the positions the run covers: T, or decoding's context */
  const exec_kv *kv; /* decoding: the block's KV cache; NULL in training */
} exec_ctx;

static float *f32_buf(const exec_ctx *c, int v) { return v < 0 ? NULL : (float *)c->b[v]; }
static const int32_t *i32_buf(const exec_ctx *c, int v) { return (const int32_t *)c->b[v]; }
static int cols(const exec_ctx *c, int v) { return (int)c->g->values[v].cols; }
/* Elements of value v: rows (N, or 1 for a scalar) times cols. */
static int64_t elements(const exec_ctx *c, int v) {
  return (int64_t)(c->g->values[v].scalar ? 1 : c->N) * cols(c, v);
}
static const ir_param *param_of(const exec_ctx *c, int v) {
  return &c->m->params[c->g->values[v].param];
}

/* Shorthands for an op's buffers. */
#define IN(k) f32_buf(c, op->in[k])
#define OUT(k) f32_buf(c, op->out[k])

/* A linear weight's (in, out) from its stored shape and layout. */
static void linear_dims(const ir_param *w, int *in, int *out) {
  int transposed = w->layout == IR_LAYOUT_IN_OUT;
  *in = (int)w->shape[transposed ? 0 : 1];
  *out = (int)w->shape[transposed ? 1 : 0];
}

/* --- one small function per op kind --- */

static void run_embedding(const exec_ctx *c, const ir_op *op) {
  cpu_embedding_forward(OUT(0), i32_buf(c, op->in[0]), IN(1), c->N, cols(c, op->out[0]));
}

static void run_pos_embedding(const exec_ctx *c, const ir_op *op) {
  /* decoding: positions from pos0, so the table from row pos0 */
  cpu_pos_embedding_forward(OUT(0), IN(0) + (size_t)c->pos0 * cols(c, op->out[0]), c->N, c->T,
                            cols(c, op->out[0]));
}

static void run_add(const exec_ctx *c, const ir_op *op) {
  cpu_add(OUT(0), IN(0), IN(1), elements(c, op->out[0]));
}

static void run_mul(const exec_ctx *c, const ir_op *op) {
  cpu_mul(OUT(0), IN(0), IN(1), (int64_t)c->N * cols(c, op->out[0]));
}

static void run_scale(const exec_ctx *c, const ir_op *op) {
  cpu_scale(OUT(0), IN(0), (float)op->factor, (int64_t)c->N * cols(c, op->out[0]));
}

static void run_layernorm(const exec_ctx *c, const ir_op *op) {
  cpu_layernorm_forward(OUT(0), OUT(1), OUT(2), IN(0), IN(1), IN(2), c->N, cols(c, op->in[0]),
                        op->eps);
}

static void run_layernorm_bwd_x(const exec_ctx *c, const ir_op *op) {
  cpu_layernorm_backward_x(OUT(0), IN(0), IN(1), IN(2), IN(3), IN(4), c->N, cols(c, op->in[0]));
}

static void run_layernorm_bwd_wb(const exec_ctx *c, const ir_op *op) {
  cpu_layernorm_backward_wb(OUT(0), OUT(1), IN(0), IN(1), IN(2), IN(3), c->N,
                            cols(c, op->in[0]));
}

/* A per-head RMSNorm is one over N * heads rows of one head's width. */
static int rms_rows(const exec_ctx *c, const ir_op *op) { return c->N * ir_norm_groups(op); }
static int rms_cols(const exec_ctx *c, const ir_op *op) {
  return cols(c, op->in[0]) / ir_norm_groups(op);
}

static void run_rmsnorm(const exec_ctx *c, const ir_op *op) {
  cpu_rmsnorm_forward(OUT(0), OUT(1), IN(0), IN(1), rms_rows(c, op), rms_cols(c, op), op->eps,
                      op->w_offset);
}

static void run_rmsnorm_bwd_x(const exec_ctx *c, const ir_op *op) {
  cpu_rmsnorm_backward_x(OUT(0), IN(0), IN(1), IN(2), IN(3), rms_rows(c, op), rms_cols(c, op),
                         op->w_offset);
}

static void run_rmsnorm_bwd_w(const exec_ctx *c, const ir_op *op) {
  cpu_rmsnorm_backward_w(OUT(0), IN(0), IN(1), IN(2), rms_rows(c, op), rms_cols(c, op));
}

static void run_linear(const exec_ctx *c, const ir_op *op) {
  const ir_param *w = param_of(c, op->in[1]);
  int in, out;
  linear_dims(w, &in, &out);
  cpu_linear_forward(OUT(0), IN(0), IN(1), op->n_in > 2 ? IN(2) : NULL, c->N, in, out,
                     w->layout);
}

static void run_linear_bwd_x(const exec_ctx *c, const ir_op *op) {
  const ir_param *w = param_of(c, op->in[1]);
  int in, out;
  linear_dims(w, &in, &out);
  cpu_linear_backward_x(OUT(0), IN(0), IN(1), c->N, in, out, w->layout);
}

static void run_linear_bwd_w(const exec_ctx *c, const ir_op *op) {
  const ir_param *w = param_of(c, op->out[0]);
  int in, out;
  linear_dims(w, &in, &out);
  cpu_linear_backward_w(OUT(0), IN(0), IN(1), c->N, in, out, w->layout);
}

static void run_linear_bwd_b(const exec_ctx *c, const ir_op *op) {
  cpu_linear_backward_b(OUT(0), IN(0), c->N, cols(c, op->in[0]));
}

static void run_gelu(const exec_ctx *c, const ir_op *op) {
  cpu_gelu_forward(OUT(0), IN(0), (int64_t)c->N * cols(c, op->in[0]));
}

static void run_gelu_bwd(const exec_ctx *c, const ir_op *op) {
  cpu_gelu_backward(OUT(0), IN(0), IN(1), (int64_t)c->N * cols(c, op->in[0]));
}

static void run_silu(const exec_ctx *c, const ir_op *op) {
  cpu_silu_forward(OUT(0), IN(0), (int64_t)c->N * cols(c, op->in[0]));
}

static void run_silu_bwd(const exec_ctx *c, const ir_op *op) {
  cpu_silu_backward(OUT(0), IN(0), IN(1), (int64_t)c->N * cols(c, op->in[0]));
}

static void run_split(const exec_ctx *c, const ir_op *op) {
  float *outs[IR_MAX_OUT];
  int64_t widths[IR_MAX_OUT];
  for (int i = 0; i < op->n_out; i++) outs[i] = OUT(i), widths[i] = cols(c, op->out[i]);
  cpu_split(outs, widths, op->n_out, IN(0), c->N);
}

static void run_concat(const exec_ctx *c, const ir_op *op) {
  const float *pieces[IR_MAX_IN];
  int64_t widths[IR_MAX_IN];
  for (int i = 0; i < op->n_in; i++) pieces[i] = IN(i), widths[i] = op->sizes[i];
  cpu_concat(OUT(0), pieces, widths, op->n_in, c->N);
}

static cpu_att_opts att_opts(const exec_ctx *c, const ir_op *op) {
  return (cpu_att_opts){(float)op->factor, op->softcap, ir_att_window(op, c->layer)};
}

static void run_attention(const exec_ctx *c, const ir_op *op) {
  int hd = cols(c, op->in[0]) / op->heads;
  cpu_att_opts o = att_opts(c, op);
  if (c->kv) { /* decoding: the new keys and values join the cache */
    size_t width = (size_t)op->kv_heads * (size_t)hd, bytes = width * sizeof(float) * (size_t)c->N;
    memcpy(c->kv->k + (size_t)c->pos0 * width, IN(1), bytes);
    memcpy(c->kv->v + (size_t)c->pos0 * width, IN(2), bytes);
    cpu_attention_cached(OUT(0), IN(0), c->kv->k, c->kv->v, c->N, c->pos0, op->heads,
                         op->kv_heads, hd, &o);
    return;
  }
  cpu_attention_forward(OUT(0), OUT(1), IN(0), IN(1), IN(2), c->B, c->T, op->heads,
                        op->kv_heads, hd, op->causal, &o);
}

static void run_attention_bwd(const exec_ctx *c, const ir_op *op) {
  int hd = cols(c, op->in[1]) / op->heads;
  cpu_att_opts o = att_opts(c, op);
  cpu_attention_backward(OUT(0), OUT(1), OUT(2), IN(0), IN(1), IN(2), IN(3), IN(4), IN(5), c->B,
                         c->T, op->heads, op->kv_heads, hd, op->causal, &o);
}

/* What the rope turns by in this layer (ir_rope_at_layer): its theta, and
 * a scaled rope's table on the stack (NULL for the default, which cpu_rope_*
 * compute themselves) with its cos/sin scale. */
typedef struct {
  double theta;
  const float *inv_freq;
  float scale;
  float table[IR_ROPE_MAX_HALF];
} rope_here;

static void rope_at(const exec_ctx *c, const ir_op *op, rope_here *r) {
  const ir_rope_scaling *sc = ir_rope_at_layer(op, c->layer, &r->theta);
  r->inv_freq = NULL;
  r->scale = ir_rope_cos_scale(sc);
  if (sc->kind == IR_ROPE_DEFAULT) return;
  ir_rope_inv_freq(sc, r->theta, op->rotary_dims, c->positions, r->table);
  r->inv_freq = r->table;
}

static void run_rope(const exec_ctx *c, const ir_op *op) {
  rope_here r;
  rope_at(c, op, &r);
  int hd = cols(c, op->in[0]) / op->heads;
  if (!r.inv_freq)
    cpu_rope_forward_at(OUT(0), IN(0), c->N, c->T, c->pos0, op->heads, hd, op->rotary_dims,
                        r.theta);
  else
    cpu_rope_table_forward(OUT(0), IN(0), c->N, c->T, c->pos0, op->heads, hd, op->rotary_dims,
                           r.inv_freq, r.scale);
}

static void run_rope_bwd(const exec_ctx *c, const ir_op *op) {
  rope_here r;
  rope_at(c, op, &r);
  int hd = cols(c, op->in[0]) / op->heads;
  if (!r.inv_freq)
    cpu_rope_backward(OUT(0), IN(0), c->N, c->T, op->heads, hd, op->rotary_dims, r.theta);
  else
    cpu_rope_table_backward(OUT(0), IN(0), c->N, c->T, op->heads, hd, op->rotary_dims,
                            r.inv_freq, r.scale);
}

static void run_embedding_bwd_w(const exec_ctx *c, const ir_op *op) {
  cpu_embedding_backward(OUT(0), i32_buf(c, op->in[0]), IN(1), c->N, cols(c, op->in[1]));
}

static void run_pos_embedding_bwd_w(const exec_ctx *c, const ir_op *op) {
  cpu_pos_embedding_backward(OUT(0), IN(0), c->N, c->T, cols(c, op->in[0]));
}

static void run_cross_entropy(const exec_ctx *c, const ir_op *op) {
  *OUT(0) = cpu_cross_entropy_forward(IN(0), i32_buf(c, op->in[1]), c->N, cols(c, op->in[0]));
}

static void run_cross_entropy_bwd(const exec_ctx *c, const ir_op *op) {
  cpu_cross_entropy_backward(OUT(0), IN(0), i32_buf(c, op->in[1]), c->N, cols(c, op->in[0]),
                             c->loss_scale);
}

/* The trees' evaluator, in cpu_ops' callback form. */
static double eval_tree(const void *tree, double x) { return expr_eval_x(tree, x); }

/* Ops with a tree (activation, formula ops): y = fn(x), evaluated per element. */
static void run_tree_fn(const exec_ctx *c, const ir_op *op) {
  const ir_activation *a = &c->m->activations[op->activation];
  cpu_activation_forward(OUT(0), IN(0), (int64_t)c->N * cols(c, op->out[0]), eval_tree, a->fn);
}

/* Their backwards: dx = dy * dfn(x). */
static void run_tree_dfn(const exec_ctx *c, const ir_op *op) {
  const ir_activation *a = &c->m->activations[op->activation];
  cpu_activation_backward(OUT(0), IN(0), IN(1), (int64_t)c->N * cols(c, op->out[0]), eval_tree,
                          a->dfn);
}

#undef IN
#undef OUT

typedef void (*exec_kernel)(const exec_ctx *c, const ir_op *op);

/* The CPU kernel of every op kind with kernels of its own; ops with a tree
 * need none (kernel_of). exec_supports says whether the table is complete. */
static const exec_kernel kernels[IR_OP_COUNT] = {
    [IR_OP_EMBEDDING] = run_embedding,
    [IR_OP_POS_EMBEDDING] = run_pos_embedding,
    [IR_OP_ADD] = run_add,
    [IR_OP_LAYERNORM] = run_layernorm,
    [IR_OP_LINEAR] = run_linear,
    [IR_OP_GELU] = run_gelu,
    [IR_OP_SPLIT] = run_split,
    [IR_OP_ATTENTION] = run_attention,
    [IR_OP_RMSNORM] = run_rmsnorm,
    [IR_OP_ROPE] = run_rope,
    [IR_OP_SILU] = run_silu,
    [IR_OP_MUL] = run_mul,
    [IR_OP_SCALE] = run_scale,
    [IR_OP_CROSS_ENTROPY] = run_cross_entropy,
    [IR_OP_EMBEDDING_BWD_W] = run_embedding_bwd_w,
    [IR_OP_POS_EMBEDDING_BWD_W] = run_pos_embedding_bwd_w,
    [IR_OP_LAYERNORM_BWD_X] = run_layernorm_bwd_x,
    [IR_OP_LAYERNORM_BWD_WB] = run_layernorm_bwd_wb,
    [IR_OP_LINEAR_BWD_X] = run_linear_bwd_x,
    [IR_OP_LINEAR_BWD_W] = run_linear_bwd_w,
    [IR_OP_LINEAR_BWD_B] = run_linear_bwd_b,
    [IR_OP_GELU_BWD] = run_gelu_bwd,
    [IR_OP_CONCAT] = run_concat,
    [IR_OP_ATTENTION_BWD] = run_attention_bwd,
    [IR_OP_CROSS_ENTROPY_BWD] = run_cross_entropy_bwd,
    [IR_OP_RMSNORM_BWD_X] = run_rmsnorm_bwd_x,
    [IR_OP_RMSNORM_BWD_W] = run_rmsnorm_bwd_w,
    [IR_OP_ROPE_BWD] = run_rope_bwd,
    [IR_OP_SILU_BWD] = run_silu_bwd,
};

static exec_kernel kernel_of(ir_opkind kind) {
  switch (ir_op_info[kind].tree) {
  case IR_TREE_FN: return run_tree_fn;
  case IR_TREE_DFN: return run_tree_dfn;
  case IR_TREE_NONE: break;
  }
  return kernels[kind];
}

int exec_supports(ir_opkind kind) { return kernel_of(kind) != NULL; }

/* The op, timed into row `row` of the profile when there is one. */
static void run_timed(const exec_ctx *c, const exec_profile *profile, const ir_op *op,
                      int row) {
  exec_kernel run = kernel_of(op->kind);
  if (!profile) {
    run(c, op);
    return;
  }
  double t0 = lt_now_ms();
  run(c, op);
  prof_add(profile->table, row, lt_now_ms() - t0);
}

static exec_ctx ctx_of(const ms_state *s, int inst, float loss_scale) {
  const ir_graph *g = &s->ir->sections[ms_inst_section(s, inst)];
  return (exec_ctx){s->ir, g, s->bufs[inst], s->B, s->T, s->N, loss_scale,
                    ms_inst_layer(s, inst), 0, s->T, NULL};
}

void exec_forward_cached(ms_state *s, int inst, int rows, int pos0, const exec_kv *kv) {
  exec_ctx c = ctx_of(s, inst, 1.0f);
  c.B = 1, c.T = c.N = rows, c.pos0 = pos0, c.kv = kv;
  for (int i = 0; i < c.g->n_fwd; i++) run_timed(&c, NULL, &c.g->fwd[i], 0);
}

void exec_forward(ms_state *s, int inst) {
  int sec = ms_inst_section(s, inst);
  exec_ctx c = ctx_of(s, inst, 1.0f);
  int row0 = s->profile ? s->profile->row0[sec][0] : 0;
  for (int i = 0; i < c.g->n_fwd; i++) run_timed(&c, s->profile, &c.g->fwd[i], row0 + i);
}

/* A parameter-gradient op runs only where its params train: on the ACTIVE
 * path and with gradient storage (a frozen param, such as a LoRA base weight,
 * has none: ms_grad is NULL). The params an op writes train together. */
static int skip_param_grad(const exec_ctx *c, const ir_op *op, int path) {
  return op->param_grad && (path == PATH_FROZEN || !c->b[op->out[0]]);
}

void exec_backward(ms_state *s, int inst, path_kind path, float loss_scale) {
  if (path == PATH_FORWARD) return;
  int sec = ms_inst_section(s, inst);
  exec_ctx c = ctx_of(s, inst, loss_scale);
  int row0 = s->profile ? s->profile->row0[sec][1 + path] : 0;
  for (int i = 0; i < c.g->n_bwd; i++)
    if (!skip_param_grad(&c, &c.g->bwd[i], path))
      run_timed(&c, s->profile, &c.g->bwd[i], row0 + i);
}

void exec_ops(const ir_model *m, const ir_graph *g, void **bufs, int B, int T,
              const ir_op *ops, int n_ops, float loss_scale) {
  exec_ctx c = {m, g, bufs, B, T, B * T, loss_scale, 0, 0, T, NULL};
  for (int i = 0; i < n_ops; i++) kernel_of(ops[i].kind)(&c, &ops[i]);
}
