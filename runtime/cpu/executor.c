#include "executor.h"

#include <stdint.h>

#include "clock_ms.h"
#include "cpu_ops.h"

/* Everything an op kernel needs, resolved from the IR and the buffers. */
typedef struct {
  ms_state *s;
  const ir_graph *g;
  void **b;
  float loss_scale;
} exec_ctx;

static float *F(const exec_ctx *c, int v) { return v < 0 ? NULL : (float *)c->b[v]; }
static const int32_t *I(const exec_ctx *c, int v) { return (const int32_t *)c->b[v]; }
static int cols(const exec_ctx *c, int v) { return (int)c->g->values[v].cols; }
static const ir_param *param_of(const exec_ctx *c, int v) {
  return &c->s->ir->params[c->g->values[v].param];
}

/* A linear weight's (in, out) from its stored shape and layout. */
static void linear_dims(const ir_param *w, int *in, int *out) {
  int transposed = w->layout == IR_LAYOUT_IN_OUT;
  *in = (int)w->shape[transposed ? 0 : 1];
  *out = (int)w->shape[transposed ? 1 : 0];
}

static void run_split(const exec_ctx *c, const ir_op *op) {
  float *outs[IR_MAX_OUT];
  int64_t widths[IR_MAX_OUT];
  for (int i = 0; i < op->n_out; i++) outs[i] = F(c, op->out[i]), widths[i] = cols(c, op->out[i]);
  cpu_split(outs, widths, op->n_out, F(c, op->in[0]), c->s->N);
}

static void run_concat(const exec_ctx *c, const ir_op *op) {
  const float *pieces[IR_MAX_IN];
  int64_t widths[IR_MAX_IN];
  for (int i = 0; i < op->n_in; i++) pieces[i] = F(c, op->in[i]), widths[i] = op->sizes[i];
  cpu_concat(F(c, op->out[0]), pieces, widths, op->n_in, c->s->N);
}

static void run_attention(const exec_ctx *c, const ir_op *op, int backward) {
  const ms_state *s = c->s;
  int hd = cols(c, op->in[backward ? 1 : 0]) / op->heads;
  if (!backward) {
    cpu_attention_forward(F(c, op->out[0]), F(c, op->out[1]), F(c, op->in[0]), F(c, op->in[1]),
                          F(c, op->in[2]), s->B, s->T, op->heads, op->kv_heads, hd, op->causal);
  } else {
    cpu_attention_backward(F(c, op->out[0]), F(c, op->out[1]), F(c, op->out[2]), F(c, op->in[0]),
                           F(c, op->in[1]), F(c, op->in[2]), F(c, op->in[3]), F(c, op->in[4]),
                           F(c, op->in[5]), s->B, s->T, op->heads, op->kv_heads, hd, op->causal);
  }
}

/* rope and rope_bwd: one input, as wide as the output */
static void run_rope(const exec_ctx *c, const ir_op *op, int backward) {
  int hd = cols(c, op->in[0]) / op->heads;
  (backward ? cpu_rope_backward : cpu_rope_forward)(F(c, op->out[0]), F(c, op->in[0]), c->s->N,
                                                   c->s->T, op->heads, hd, op->rotary_dims,
                                                   op->theta);
}

/* The activation trees' evaluator, in cpu_ops' callback form. */
static double eval_tree(const void *tree, double x) { return expr_eval_x(tree, x); }

static void run_activation(const exec_ctx *c, const ir_op *op, int backward) {
  const ir_activation *a = &c->s->ir->activations[op->activation];
  int64_t n = (int64_t)c->s->N * cols(c, op->out[0]);
  if (!backward)
    cpu_activation_forward(F(c, op->out[0]), F(c, op->in[0]), n, eval_tree, a->fn);
  else
    cpu_activation_backward(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), n,
                            eval_tree, a->dfn);
}

static void run_op(const exec_ctx *c, const ir_op *op) {
  const int N = c->s->N, T = c->s->T;
  int in, out;
  switch (op->kind) {
  case IR_OP_EMBEDDING:
    cpu_embedding_forward(F(c, op->out[0]), I(c, op->in[0]), F(c, op->in[1]), N, cols(c, op->out[0]));
    break;
  case IR_OP_POS_EMBEDDING:
    cpu_pos_embedding_forward(F(c, op->out[0]), F(c, op->in[0]), N, T, cols(c, op->out[0]));
    break;
  case IR_OP_ADD:
    cpu_add(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]),
            (int64_t)(c->g->values[op->out[0]].scalar ? 1 : N) * cols(c, op->out[0]));
    break;
  case IR_OP_LAYERNORM:
    cpu_layernorm_forward(F(c, op->out[0]), F(c, op->out[1]), F(c, op->out[2]), F(c, op->in[0]),
                          F(c, op->in[1]), F(c, op->in[2]), N, cols(c, op->in[0]), op->eps);
    break;
  case IR_OP_LINEAR:
    linear_dims(param_of(c, op->in[1]), &in, &out);
    cpu_linear_forward(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]),
                       op->n_in > 2 ? F(c, op->in[2]) : NULL, N, in, out, param_of(c, op->in[1])->layout);
    break;
  case IR_OP_GELU:
    cpu_gelu_forward(F(c, op->out[0]), F(c, op->in[0]), (int64_t)N * cols(c, op->in[0]));
    break;
  case IR_OP_SPLIT: run_split(c, op); break;
  case IR_OP_ATTENTION: run_attention(c, op, 0); break;
  case IR_OP_RMSNORM:
    cpu_rmsnorm_forward(F(c, op->out[0]), F(c, op->out[1]), F(c, op->in[0]), F(c, op->in[1]), N,
                        cols(c, op->in[0]), op->eps);
    break;
  case IR_OP_ROPE: run_rope(c, op, 0); break;
  case IR_OP_SILU:
    cpu_silu_forward(F(c, op->out[0]), F(c, op->in[0]), (int64_t)N * cols(c, op->in[0]));
    break;
  case IR_OP_MUL:
    cpu_mul(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), (int64_t)N * cols(c, op->out[0]));
    break;
  case IR_OP_SCALE:
    cpu_scale(F(c, op->out[0]), F(c, op->in[0]), (float)op->factor, (int64_t)N * cols(c, op->out[0]));
    break;
  case IR_OP_ACTIVATION: run_activation(c, op, 0); break;
  case IR_OP_CROSS_ENTROPY:
    *F(c, op->out[0]) = cpu_cross_entropy_forward(F(c, op->in[0]), I(c, op->in[1]), N, cols(c, op->in[0]));
    break;
  case IR_OP_EMBEDDING_BWD_W:
    cpu_embedding_backward(F(c, op->out[0]), I(c, op->in[0]), F(c, op->in[1]), N, cols(c, op->in[1]));
    break;
  case IR_OP_POS_EMBEDDING_BWD_W:
    cpu_pos_embedding_backward(F(c, op->out[0]), F(c, op->in[0]), N, T, cols(c, op->in[0]));
    break;
  case IR_OP_LAYERNORM_BWD_X:
    cpu_layernorm_backward_x(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), F(c, op->in[2]),
                             F(c, op->in[3]), F(c, op->in[4]), N, cols(c, op->in[0]));
    break;
  case IR_OP_LAYERNORM_BWD_WB:
    cpu_layernorm_backward_wb(F(c, op->out[0]), F(c, op->out[1]), F(c, op->in[0]), F(c, op->in[1]),
                              F(c, op->in[2]), F(c, op->in[3]), N, cols(c, op->in[0]));
    break;
  case IR_OP_LINEAR_BWD_X:
    linear_dims(param_of(c, op->in[1]), &in, &out);
    cpu_linear_backward_x(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), N, in, out,
                          param_of(c, op->in[1])->layout);
    break;
  case IR_OP_LINEAR_BWD_W:
    linear_dims(param_of(c, op->out[0]), &in, &out);
    cpu_linear_backward_w(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), N, in, out,
                          param_of(c, op->out[0])->layout);
    break;
  case IR_OP_LINEAR_BWD_B:
    cpu_linear_backward_b(F(c, op->out[0]), F(c, op->in[0]), N, cols(c, op->in[0]));
    break;
  case IR_OP_GELU_BWD:
    cpu_gelu_backward(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), (int64_t)N * cols(c, op->in[0]));
    break;
  case IR_OP_CONCAT: run_concat(c, op); break;
  case IR_OP_ATTENTION_BWD: run_attention(c, op, 1); break;
  case IR_OP_CROSS_ENTROPY_BWD:
    cpu_cross_entropy_backward(F(c, op->out[0]), F(c, op->in[0]), I(c, op->in[1]), N,
                               cols(c, op->in[0]), c->loss_scale);
    break;
  case IR_OP_RMSNORM_BWD_X:
    cpu_rmsnorm_backward_x(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), F(c, op->in[2]),
                           F(c, op->in[3]), N, cols(c, op->in[0]));
    break;
  case IR_OP_RMSNORM_BWD_W:
    cpu_rmsnorm_backward_w(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), F(c, op->in[2]), N,
                           cols(c, op->in[0]));
    break;
  case IR_OP_ROPE_BWD: run_rope(c, op, 1); break;
  case IR_OP_ACTIVATION_BWD: run_activation(c, op, 1); break;
  case IR_OP_SILU_BWD:
    cpu_silu_backward(F(c, op->out[0]), F(c, op->in[0]), F(c, op->in[1]), (int64_t)N * cols(c, op->in[0]));
    break;
  }
}

/* run_op, timed into row `row` of the profile when there is one. */
static void run_timed(const exec_ctx *c, const ir_op *op, int row) {
  if (!c->s->profile) {
    run_op(c, op);
    return;
  }
  double t0 = lt_now_ms();
  run_op(c, op);
  prof_add(c->s->profile->table, row, lt_now_ms() - t0);
}

void exec_forward(ms_state *s, int inst) {
  int sec = ms_inst_section(s, inst);
  const ir_graph *g = &s->ir->sections[sec];
  exec_ctx c = {s, g, s->bufs[inst], 1.0f};
  int row0 = s->profile ? s->profile->row0[sec][0] : 0;
  for (int i = 0; i < g->n_fwd; i++) run_timed(&c, &g->fwd[i], row0 + i);
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
  const ir_graph *g = &s->ir->sections[sec];
  exec_ctx c = {s, g, s->bufs[inst], loss_scale};
  int row0 = s->profile ? s->profile->row0[sec][1 + path] : 0;
  for (int i = 0; i < g->n_bwd; i++)
    if (!skip_param_grad(&c, &g->bwd[i], path)) run_timed(&c, &g->bwd[i], row0 + i);
}
