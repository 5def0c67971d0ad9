/* test_autodiff.c: the backward graphs ad_build_backward derives.
 *
 * Structure: hand-built graphs whose backward op lists are compared op by op
 * as text ("linear_bwd_w(d_y,g)->(d_pj_w) pg"), plus gradients, seeds,
 * saved/saved_dx sets and error messages; and gpt2-tiny.yaml's block.
 * Numbers: the CPU executor (exec_ops) runs the forward and backward op
 * lists over buffers the test wires, and the gradients of the section input and of every
 * parameter are compared with finite differences of the whole graph. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "check.h"
#include "executor.h"
#include "model_yaml.h"

/* ------------------------------------------------------------------------ */
/* building graphs by hand */

typedef struct {
  ir_model *m;
  int section;
  int line; /* each op gets the next line number */
} builder;

static ir_graph *graph(builder *b) { return &b->m->sections[b->section]; }

static int value(builder *b, const char *name, int kind, int dtype,
                 int64_t cols) {
  ir_value v;
  memset(&v, 0, sizeof v);
  snprintf(v.name, sizeof v.name, "%s", name);
  v.kind = kind;
  v.dtype = dtype;
  v.cols = cols;
  v.param = v.grad = -1;
  return ir_add_value(graph(b), &v);
}

/* A param of the model and its IR_V_PARAM value in this section's graph;
 * cols == 0 makes a 1-D param. */
static int param(builder *b, const char *key, int64_t rows, int64_t cols,
                 int layout) {
  ir_param p;
  memset(&p, 0, sizeof p);
  snprintf(p.key, sizeof p.key, "%s", key);
  p.section = b->section;
  p.ndim = cols ? 2 : 1;
  p.shape[0] = rows;
  p.shape[1] = cols;
  p.layout = layout;
  int pi = ir_find_param(b->m, key);
  if (pi < 0) pi = ir_add_param(b->m, &p);
  int v = value(b, key, IR_V_PARAM, IR_F32, ir_param_numel(&b->m->params[pi]));
  graph(b)->values[v].param = pi;
  return v;
}

static int act(builder *b, const char *name, int64_t cols) {
  return value(b, name, IR_V_ACT, IR_F32, cols);
}

static ir_op op_of(builder *b, ir_opkind kind, int n_in, const int *in, int n_out,
                   const int *out) {
  ir_op op;
  memset(&op, 0, sizeof op);
  op.kind = kind;
  op.n_in = n_in;
  memcpy(op.in, in, (size_t)n_in * sizeof *in);
  op.n_out = n_out;
  memcpy(op.out, out, (size_t)n_out * sizeof *out);
  op.line = ++b->line;
  return op;
}

static int add_op(builder *b, ir_opkind kind, int n_in, const int *in, int y) {
  ir_op op = op_of(b, kind, n_in, in, 1, &y);
  ir_add_fwd(graph(b), &op);
  return y;
}

static int layernorm(builder *b, const char *name, int x, int w, int bias) {
  char aux[80];
  int64_t C = graph(b)->values[x].cols;
  int out[3] = {act(b, name, C), 0, 0};
  snprintf(aux, sizeof aux, "%s.mean", name);
  out[1] = act(b, aux, 1);
  snprintf(aux, sizeof aux, "%s.rstd", name);
  out[2] = act(b, aux, 1);
  int in[3] = {x, w, bias};
  ir_op op = op_of(b, IR_OP_LAYERNORM, 3, in, 3, out);
  op.eps = 1e-5f;
  ir_add_fwd(graph(b), &op);
  return out[0];
}

/* bias < 0: none */
static int linear(builder *b, const char *name, int x, int W, int bias,
                  int64_t out_cols) {
  int in[3] = {x, W, bias};
  return add_op(b, IR_OP_LINEAR, bias < 0 ? 2 : 3, in, act(b, name, out_cols));
}

static int gelu(builder *b, const char *name, int x) {
  return add_op(b, IR_OP_GELU, 1, &x, act(b, name, graph(b)->values[x].cols));
}

static int add(builder *b, const char *name, int x, int y) {
  int in[2] = {x, y};
  return add_op(b, IR_OP_ADD, 2, in, act(b, name, graph(b)->values[x].cols));
}

static void split(builder *b, int x, int k, const char *const *names,
                  const int64_t *widths, int *out) {
  for (int i = 0; i < k; i++) out[i] = act(b, names[i], widths[i]);
  ir_op op = op_of(b, IR_OP_SPLIT, 1, &x, k, out);
  ir_add_fwd(graph(b), &op);
}

static int attention(builder *b, const char *name, int q, int k, int v,
                     int heads, int kv_heads) {
  char lse[80];
  snprintf(lse, sizeof lse, "%s.lse", name);
  int in[3] = {q, k, v};
  int out[2] = {act(b, name, graph(b)->values[q].cols), act(b, lse, heads)};
  ir_op op = op_of(b, IR_OP_ATTENTION, 3, in, 2, out);
  op.heads = heads;
  op.kv_heads = kv_heads;
  op.causal = 1;
  ir_add_fwd(graph(b), &op);
  return out[0];
}

/* ------------------------------------------------------------------------ */
/* reading the result */

static const char *vname(const ir_graph *g, int v) {
  return v < 0 ? "-" : g->values[v].name;
}

/* "kind(in,...)->(out,...)" plus " pg" for a param_grad op */
static void op_text(const ir_graph *g, const ir_op *op, char *buf, int cap) {
  int n = snprintf(buf, (size_t)cap, "%s(", ir_op_name(op->kind));
  for (int k = 0; k < op->n_in; k++)
    n += snprintf(buf + n, (size_t)(cap - n), "%s%s", k ? "," : "",
                  vname(g, op->in[k]));
  n += snprintf(buf + n, (size_t)(cap - n), ")->(");
  for (int k = 0; k < op->n_out; k++)
    n += snprintf(buf + n, (size_t)(cap - n), "%s%s", k ? "," : "",
                  vname(g, op->out[k]));
  snprintf(buf + n, (size_t)(cap - n), ")%s", op->param_grad ? " pg" : "");
}

static void check_bwd_ops(const ir_graph *g, const char *const *want, int n) {
  CHECK_MSG(g->n_bwd == n, "%d backward ops, expected %d", g->n_bwd, n);
  for (int i = 0; i < n && i < g->n_bwd; i++) {
    char got[512];
    op_text(g, &g->bwd[i], got, sizeof got);
    CHECK_MSG(strcmp(got, want[i]) == 0, "op %d is %s, expected %s", i, got,
              want[i]);
  }
}

static int find(const ir_graph *g, const char *name) {
  int v = ir_find_value(g, name);
  CHECK_MSG(v >= 0, "no value '%s'", name);
  return v;
}

/* the saved and saved_dx flags of a value */
static void check_saved(const ir_graph *g, const char *name, int saved,
                        int saved_dx) {
  const ir_value *v = &g->values[find(g, name)];
  CHECK_MSG(v->saved == saved && v->saved_dx == saved_dx,
            "%s: saved=%d saved_dx=%d, expected %d %d", name, v->saved,
            v->saved_dx, saved, saved_dx);
}

static const char *grad_name(const ir_graph *g, const char *name) {
  return vname(g, g->values[find(g, name)].grad);
}

/* number of PARAM_GRAD values of parameter key */
static int count_param_grads(const ir_model *m, const ir_graph *g,
                             const char *key) {
  int n = 0;
  for (int v = 0; v < g->n_values; v++)
    n += g->values[v].kind == IR_V_PARAM_GRAD &&
         g->values[v].param == ir_find_param(m, key);
  return n;
}

/* ------------------------------------------------------------------------ */
/* structure */

/* x -> layernorm h -> linear f -> gelu g -> linear p -> y = x + p */
static void build_tiny_block(ir_model *m) {
  enum { C = 5 };
  builder b = {m, IR_BLOCK, 0};
  ir_graph *g = graph(&b);
  g->input = value(&b, "x", IR_V_INPUT, IR_F32, C);
  int h = layernorm(&b, "h", g->input, param(&b, "ln_w", C, 0, 0),
                    param(&b, "ln_b", C, 0, 0));
  int f = linear(&b, "f", h, param(&b, "fc_w", C, 3 * C, IR_LAYOUT_IN_OUT),
                 param(&b, "fc_b", 3 * C, 0, 0), 3 * C);
  int gg = gelu(&b, "g", f);
  int p = linear(&b, "p", gg, param(&b, "pj_w", C, 3 * C, IR_LAYOUT_OUT_IN),
                 param(&b, "pj_b", C, 0, 0), C);
  g->output = add(&b, "y", g->input, p);
}

static void test_tiny_block(void) {
  ir_model m;
  ir_model_init(&m);
  snprintf(m.path, sizeof m.path, "tiny.yaml");
  build_tiny_block(&m);
  lt_error err = {""};
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);
  const ir_graph *g = &m.sections[IR_BLOCK];
  const char *want[] = {
      "linear_bwd_x(d_y,pj_w)->(d_g)",
      "linear_bwd_w(d_y,g)->(d_pj_w) pg",
      "linear_bwd_b(d_y)->(d_pj_b) pg",
      "gelu_bwd(d_g,f)->(d_f)",
      "linear_bwd_x(d_f,fc_w)->(d_h)",
      "linear_bwd_w(d_f,h)->(d_fc_w) pg",
      "linear_bwd_b(d_f)->(d_fc_b) pg",
      "layernorm_bwd_x(d_h,x,ln_w,h.mean,h.rstd)->(d_x_via_h)",
      "layernorm_bwd_wb(d_h,x,h.mean,h.rstd)->(d_ln_w,d_ln_b) pg",
      /* the residual: x's two contributions summed */
      "add(d_y,d_x_via_h)->(d_x)",
  };
  check_bwd_ops(g, want, 10);
  /* lines come from the forward ops (the add from the layernorm that
   * contributed the second term) */
  int lines[10] = {4, 4, 4, 3, 2, 2, 2, 1, 1, 1};
  for (int i = 0; i < 10 && i < g->n_bwd; i++)
    CHECK_MSG(g->bwd[i].line == lines[i], "op %d line %d", i, g->bwd[i].line);

  /* the seed d_y is an input; the add passes it on to p unchanged */
  int seed = g->values[g->output].grad;
  CHECK(seed >= 0 && strcmp(vname(g, seed), "d_y") == 0 &&
        g->values[seed].kind == IR_V_INPUT && g->values[seed].cols == 5);
  CHECK(g->values[find(g, "p")].grad == seed);
  CHECK(strcmp(grad_name(g, "x"), "d_x") == 0);
  CHECK(g->values[g->values[g->input].grad].kind == IR_V_GRAD);
  CHECK(strcmp(grad_name(g, "f"), "d_f") == 0);

  /* one PARAM_GRAD per param, named d_<key>, as wide as the param */
  int dw = g->values[find(g, "fc_w")].grad;
  CHECK(dw >= 0 && g->values[dw].kind == IR_V_PARAM_GRAD &&
        g->values[dw].param == ir_find_param(&m, "fc_w") &&
        g->values[dw].cols == 75 && strcmp(vname(g, dw), "d_fc_w") == 0);
  CHECK(count_param_grads(&m, g, "ln_b") == 1);

  /* linear's input is read only for dW; layernorm's x, gelu's x and the
   * statistics are read by dX ops too */
  check_saved(g, "x", 1, 1);
  check_saved(g, "h", 1, 0);
  check_saved(g, "h.mean", 1, 1);
  check_saved(g, "h.rstd", 1, 1);
  check_saved(g, "f", 1, 1);
  check_saved(g, "g", 1, 0);
  check_saved(g, "p", 0, 0);
  check_saved(g, "y", 0, 0);
  check_saved(g, "fc_w", 0, 0); /* params are always there */
  ir_model_free(&m);
}

/* x -> linear qkv -> split a, b, c; y = a + c (b unused); out = y + aux,
 * where aux is a float input that depends on nothing trainable; and a dead
 * branch z = gelu(x). */
static void test_pruning(void) {
  ir_model m;
  ir_model_init(&m);
  builder b = {&m, IR_BLOCK, 0};
  ir_graph *g = graph(&b);
  g->input = value(&b, "x", IR_V_INPUT, IR_F32, 4);
  int aux = value(&b, "aux", IR_V_INPUT, IR_F32, 4);
  int qkv = linear(&b, "qkv", g->input, param(&b, "W", 12, 4, 0), -1, 12);
  const char *names[3] = {"a", "b", "c"};
  int64_t widths[3] = {4, 4, 4};
  int pieces[3];
  split(&b, qkv, 3, names, widths, pieces);
  gelu(&b, "z", g->input);
  int y = add(&b, "y", pieces[0], pieces[2]);
  g->output = add(&b, "out", y, aux);
  lt_error err = {""};
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);
  const char *want[] = {
      "concat(d_out,-,d_out)->(d_qkv)",
      "linear_bwd_x(d_qkv,W)->(d_x)",
      "linear_bwd_w(d_qkv,x)->(d_W) pg",
  };
  check_bwd_ops(g, want, 3);
  if (g->n_bwd > 0)
    CHECK(g->bwd[0].sizes[0] == 4 && g->bwd[0].sizes[1] == 4 &&
          g->bwd[0].sizes[2] == 4);
  CHECK(g->values[aux].grad < 0);
  CHECK(g->values[pieces[1]].grad < 0);
  CHECK(g->values[find(g, "z")].grad < 0);
  check_saved(g, "z", 0, 0);
  check_saved(g, "x", 1, 0);
  ir_model_free(&m);
}

/* tokens -> embedding + position_embedding -> x */
static void build_embed(ir_model *m, int V, int P, int C) {
  builder b = {m, IR_EMBED, 0};
  ir_graph *g = graph(&b);
  g->input = value(&b, "tokens", IR_V_INPUT, IR_I32, 1);
  int in[2] = {g->input, param(&b, "wte", V, C, IR_LAYOUT_OUT_IN)};
  int tok = add_op(&b, IR_OP_EMBEDDING, 2, in, act(&b, "tok", C));
  int wpe = param(&b, "wpe", P, C, 0);
  int pos = add_op(&b, IR_OP_POS_EMBEDDING, 1, &wpe, act(&b, "pos", C));
  g->output = add(&b, "x", tok, pos);
}

/* x -> layernorm hf -> linear(hf, wte) logits -> cross_entropy loss; wte is
 * the embedding's table, stored [V, C] */
static void build_head(ir_model *m, int V, int C) {
  builder b = {m, IR_HEAD, 0};
  ir_graph *g = graph(&b);
  g->input = value(&b, "x", IR_V_INPUT, IR_F32, C);
  g->targets = value(&b, "targets", IR_V_INPUT, IR_I32, 1);
  int hf = layernorm(&b, "hf", g->input, param(&b, "ln_f_w", C, 0, 0),
                     param(&b, "ln_f_b", C, 0, 0));
  int wte = param(&b, "wte", V, C, IR_LAYOUT_OUT_IN);
  int logits = linear(&b, "logits", hf, wte, -1, V);
  int in[2] = {logits, g->targets};
  g->output = add_op(&b, IR_OP_CROSS_ENTROPY, 2, in,
                     value(&b, "loss", IR_V_ACT, IR_F32, 1));
  g->values[g->output].scalar = 1;
}

static void test_embed_and_head(void) {
  ir_model m;
  ir_model_init(&m);
  build_embed(&m, 7, 4, 6);
  build_head(&m, 7, 6);
  lt_error err = {""};
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);

  const ir_graph *e = &m.sections[IR_EMBED];
  const char *want_embed[] = {
      "position_embedding_bwd_w(d_x)->(d_wpe) pg",
      "embedding_bwd_w(tokens,d_x)->(d_wte) pg",
  };
  check_bwd_ops(e, want_embed, 2);
  CHECK(e->values[e->input].grad < 0); /* token ids get no gradient */
  check_saved(e, "tokens", 1, 0);      /* read only for d_wte */
  CHECK(e->values[e->values[e->output].grad].kind == IR_V_INPUT);

  const ir_graph *h = &m.sections[IR_HEAD];
  const char *want_head[] = {
      "cross_entropy_bwd(logits,targets)->(d_logits)",
      "linear_bwd_x(d_logits,wte)->(d_hf)",
      "linear_bwd_w(d_logits,hf)->(d_wte) pg",
      "layernorm_bwd_x(d_hf,x,ln_f_w,hf.mean,hf.rstd)->(d_x)",
      "layernorm_bwd_wb(d_hf,x,hf.mean,hf.rstd)->(d_ln_f_w,d_ln_f_b) pg",
  };
  check_bwd_ops(h, want_head, 5);
  CHECK(h->values[h->output].grad < 0); /* the loss's gradient is implicit */
  CHECK(ir_find_value(h, "d_loss") < 0);
  check_saved(h, "targets", 1, 1);
  check_saved(h, "logits", 1, 1);
  check_saved(h, "hf", 1, 0);
  check_saved(h, "loss", 0, 0);
  ir_model_free(&m);
}

/* builds a one-section graph with `bad` applied, expects err_msg */
static void check_rejected(void (*bad)(builder *), const char *err_msg) {
  ir_model m;
  ir_model_init(&m);
  snprintf(m.path, sizeof m.path, "m.yaml");
  builder b = {&m, IR_BLOCK, 0};
  graph(&b)->input = value(&b, "x", IR_V_INPUT, IR_F32, 3);
  bad(&b);
  lt_error err = {""};
  CHECK(ad_build_backward(&m, &err) == -1);
  CHECK_MSG(strcmp(err.msg, err_msg) == 0, "got \"%s\"", err.msg);
  ir_model_free(&m);
}

static void gelu_of_param(builder *b) {
  graph(b)->output = gelu(b, "y", param(b, "w", 3, 0, 0));
}

static void activation_as_weight(builder *b) {
  int x = graph(b)->input;
  graph(b)->output = linear(b, "y", x, gelu(b, "h", x), -1, 3);
}

static void loss_in_block(builder *b) {
  int t = value(b, "t", IR_V_INPUT, IR_I32, 1);
  int in[2] = {graph(b)->input, t};
  add_op(b, IR_OP_CROSS_ENTROPY, 2, in, act(b, "loss", 1));
  graph(b)->output = gelu(b, "y", graph(b)->input);
}

static void no_output(builder *b) { gelu(b, "y", graph(b)->input); }

static void head_without_loss(ir_model *m) {
  builder b = {m, IR_HEAD, 0};
  graph(&b)->input = value(&b, "x", IR_V_INPUT, IR_F32, 3);
  graph(&b)->output = gelu(&b, "y", graph(&b)->input);
}

static void test_errors(void) {
  check_rejected(gelu_of_param,
                 "m.yaml:1: gelu: param 'w' as input 1 cannot be trained; "
                 "params train as tables, weights, biases and norm scales");
  check_rejected(activation_as_weight,
                 "m.yaml:2: linear: input 2 ('h') must be a param to be "
                 "trained");
  check_rejected(loss_in_block,
                 "m.yaml:1: cross_entropy: its loss must be the head's "
                 "output");
  check_rejected(no_output, "m.yaml: the block has no output");

  ir_model m;
  ir_model_init(&m);
  snprintf(m.path, sizeof m.path, "m.yaml");
  head_without_loss(&m);
  lt_error err = {""};
  CHECK(ad_build_backward(&m, &err) == -1);
  CHECK_MSG(strcmp(err.msg, "m.yaml: the head's output 'y' must be a "
                            "cross_entropy loss") == 0, "got \"%s\"", err.msg);
  ir_model_free(&m);

  ir_model_init(&m);
  snprintf(m.path, sizeof m.path, "m.yaml");
  build_tiny_block(&m);
  CHECK(ad_build_backward(&m, &err) == 0);
  CHECK(ad_build_backward(&m, &err) == -1);
  CHECK(strcmp(err.msg, "m.yaml: the backward graphs are already built") == 0);
  ir_model_free(&m);
}

/* The real model: gpt2-tiny's block, as the YAML loader builds it. */
static void test_gpt2_tiny_block(void) {
  ir_model m;
  lt_error err = {""};
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), &m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ir_model_free(&m);
    return;
  }
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);
  const ir_graph *g = &m.sections[IR_BLOCK];
  const char *want[] = {
      "linear_bwd_x(d_x2,mproj_w)->(d_fc_act)",
      "linear_bwd_w(d_x2,fc_act)->(d_mproj_w) pg",
      "linear_bwd_b(d_x2)->(d_mproj_b) pg",
      "gelu_bwd(d_fc_act,fc)->(d_fc)",
      "linear_bwd_x(d_fc,fc_w)->(d_h2)",
      "linear_bwd_w(d_fc,h2)->(d_fc_w) pg",
      "linear_bwd_b(d_fc)->(d_fc_b) pg",
      "layernorm_bwd_x(d_h2,x1,ln_2_w,h2.mean,h2.rstd)->(d_x1_via_h2)",
      "layernorm_bwd_wb(d_h2,x1,h2.mean,h2.rstd)->(d_ln_2_w,d_ln_2_b) pg",
      "add(d_x2,d_x1_via_h2)->(d_x1)",
      "linear_bwd_x(d_x1,aproj_w)->(d_att)",
      "linear_bwd_w(d_x1,att)->(d_aproj_w) pg",
      "linear_bwd_b(d_x1)->(d_aproj_b) pg",
      "attention_bwd(d_att,q,k,v,att,att.lse)->(d_q,d_k,d_v)",
      "concat(d_q,d_k,d_v)->(d_qkv)",
      "linear_bwd_x(d_qkv,attn_w)->(d_h1)",
      "linear_bwd_w(d_qkv,h1)->(d_attn_w) pg",
      "linear_bwd_b(d_qkv)->(d_attn_b) pg",
      "layernorm_bwd_x(d_h1,x,ln_1_w,h1.mean,h1.rstd)->(d_x_via_h1)",
      "layernorm_bwd_wb(d_h1,x,h1.mean,h1.rstd)->(d_ln_1_w,d_ln_1_b) pg",
      "add(d_x1,d_x_via_h1)->(d_x)",
  };
  check_bwd_ops(g, want, 21);
  /* what a FROZEN block keeps (dX only) and what only ACTIVE needs (dW) */
  const char *dx_set[] = {"x", "h1.mean", "h1.rstd", "q", "k", "v", "att",
                          "att.lse", "x1", "h2.mean", "h2.rstd", "fc"};
  const char *dw_only[] = {"h1", "h2", "fc_act"};
  const char *unsaved[] = {"qkv", "att_out", "mlp_out", "x2"};
  for (int i = 0; i < 12; i++) check_saved(g, dx_set[i], 1, 1);
  for (int i = 0; i < 3; i++) check_saved(g, dw_only[i], 1, 0);
  for (int i = 0; i < 4; i++) check_saved(g, unsaved[i], 0, 0);
  ir_model_free(&m);
}

/* llama-tiny's block: rmsnorm, rope on q and k, SwiGLU's silu and mul. */
static void test_llama_tiny_block(void) {
  ir_model m;
  lt_error err = {""};
  if (yml_load_model(src_path("models/llama-tiny.yaml"), &m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ir_model_free(&m);
    return;
  }
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);
  const ir_graph *g = &m.sections[IR_BLOCK];
  const char *want[] = {
      "linear_bwd_x(d_x2,down_w)->(d_swiglu)",
      "linear_bwd_w(d_x2,swiglu)->(d_down_w) pg",
      "mul(d_swiglu,up)->(d_gate_act)",
      "mul(d_swiglu,gate_act)->(d_up)",
      "silu_bwd(d_gate_act,gate)->(d_gate)",
      "linear_bwd_x(d_up,up_w)->(d_h2_via_up)",
      "linear_bwd_w(d_up,h2)->(d_up_w) pg",
      "linear_bwd_x(d_gate,gate_w)->(d_h2_via_gate)",
      "linear_bwd_w(d_gate,h2)->(d_gate_w) pg",
      "add(d_h2_via_up,d_h2_via_gate)->(d_h2)",
      "rmsnorm_bwd_x(d_h2,x1,mlp_norm_w,h2.rstd)->(d_x1_via_h2)",
      "rmsnorm_bwd_w(d_h2,x1,h2.rstd)->(d_mlp_norm_w) pg",
      "add(d_x2,d_x1_via_h2)->(d_x1)",
      "linear_bwd_x(d_x1,o_w)->(d_att)",
      "linear_bwd_w(d_x1,att)->(d_o_w) pg",
      "attention_bwd(d_att,q_rot,k_rot,v,att,att.lse)->(d_q_rot,d_k_rot,d_v)",
      "rope_bwd(d_k_rot)->(d_k)",
      "rope_bwd(d_q_rot)->(d_q)",
      "linear_bwd_x(d_v,v_w)->(d_h1_via_v)",
      "linear_bwd_w(d_v,h1)->(d_v_w) pg",
      "linear_bwd_x(d_k,k_w)->(d_h1_via_k)",
      "linear_bwd_w(d_k,h1)->(d_k_w) pg",
      "linear_bwd_x(d_q,q_w)->(d_h1_via_q)",
      "linear_bwd_w(d_q,h1)->(d_q_w) pg",
      "add(d_h1_via_v,d_h1_via_k)->(d_h1_sum1)",
      "add(d_h1_sum1,d_h1_via_q)->(d_h1)",
      "rmsnorm_bwd_x(d_h1,x,attn_norm_w,h1.rstd)->(d_x_via_h1)",
      "rmsnorm_bwd_w(d_h1,x,h1.rstd)->(d_attn_norm_w) pg",
      "add(d_x1,d_x_via_h1)->(d_x)",
  };
  check_bwd_ops(g, want, 29);
  /* rope_bwd keeps the forward's heads and frequencies */
  for (int i = 16; i < 18 && i < g->n_bwd; i++)
    CHECK(g->bwd[i].kind == IR_OP_ROPE_BWD && g->bwd[i].heads == (i == 16 ? 2 : 4) &&
          g->bwd[i].rotary_dims == 6 && g->bwd[i].theta == 10000.0);
  /* rope reads nothing back; mul reads both factors for the dX path */
  const char *dx_set[] = {"x", "h1.rstd", "q_rot", "k_rot", "v", "att", "att.lse",
                          "x1", "h2.rstd", "gate", "up", "gate_act"};
  const char *dw_only[] = {"h1", "h2", "swiglu"};
  const char *unsaved[] = {"q", "k", "att_out", "mlp_out", "x2"};
  for (int i = 0; i < 12; i++) check_saved(g, dx_set[i], 1, 1);
  for (int i = 0; i < 3; i++) check_saved(g, dw_only[i], 1, 0);
  for (int i = 0; i < 5; i++) check_saved(g, unsaved[i], 0, 0);
  ir_model_free(&m);
}

/* ------------------------------------------------------------------------ */
/* numbers: the op lists run by the CPU executor over buffers of our own */

typedef struct {
  const ir_model *m;
  const ir_graph *g;
  int B, T, N;
  void **buf;            /* per value */
  float **pdata, **pgrad; /* per model param */
} interp;

static void interp_init(interp *it, const ir_model *m, int section, int B,
                        int T, float **pdata, float **pgrad, int32_t *ids,
                        int32_t *targets) {
  const ir_graph *g = &m->sections[section];
  *it = (interp){m, g, B, T, B * T, calloc((size_t)g->n_values, sizeof(void *)),
                 pdata, pgrad};
  for (int v = 0; v < g->n_values; v++) {
    const ir_value *x = &g->values[v];
    if (x->kind == IR_V_PARAM) it->buf[v] = pdata[x->param];
    else if (x->kind == IR_V_PARAM_GRAD) it->buf[v] = pgrad[x->param];
    else if (x->dtype == IR_I32) it->buf[v] = v == g->input ? ids : targets;
    else it->buf[v] = calloc((size_t)(x->scalar ? 1 : it->N) * x->cols, 4);
  }
}

static void interp_free(interp *it) {
  for (int v = 0; v < it->g->n_values; v++) {
    const ir_value *x = &it->g->values[v];
    if (x->kind != IR_V_PARAM && x->kind != IR_V_PARAM_GRAD &&
        x->dtype != IR_I32)
      free(it->buf[v]);
  }
  free(it->buf);
}

static float *F(const interp *it, int v) { return v < 0 ? NULL : it->buf[v]; }
/* The ops over the interpreter's buffers, through the CPU executor. */
static void run_ops(const interp *it, const ir_op *ops, int n) {
  exec_ops(it->m, it->g, it->buf, it->B, it->T, ops, n, 1.0f);
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static float uniform(float lo, float hi) {
  rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
  return lo + (hi - lo) * (float)(((rng * 2685821657736338717ull) >> 40) /
                                  16777216.0);
}

/* The loss the backward graph differentiates: the head's loss, or for
 * embed/block sum(seed * output) with the seed as d(loss)/d(output). */
static double forward_loss(const interp *it) {
  run_ops(it, it->g->fwd, it->g->n_fwd);
  const ir_graph *g = it->g;
  const ir_value *out = &g->values[g->output];
  if (out->scalar) return *F(it, g->output);
  const float *y = F(it, g->output), *seed = F(it, out->grad);
  double L = 0.0;
  for (int64_t k = 0; k < (int64_t)it->N * out->cols; k++)
    L += (double)seed[k] * y[k];
  return L;
}

/* grad vs central differences of forward_loss w.r.t. each element of x */
static void check_fd(const interp *it, const char *what, float *x, int64_t n,
                     const float *grad) {
  const float eps = 5e-3f;
  double scale = 1e-3, worst = -1.0, worst_fd = 0.0;
  int64_t worst_i = 0;
  double *fd = malloc((size_t)n * sizeof *fd);
  for (int64_t i = 0; i < n; i++) {
    float saved = x[i], hi = saved + eps, lo = saved - eps;
    x[i] = hi;
    double lp = forward_loss(it);
    x[i] = lo;
    double lm = forward_loss(it);
    x[i] = saved;
    fd[i] = (lp - lm) / ((double)hi - lo);
    if (fabs(fd[i]) > scale) scale = fabs(fd[i]);
  }
  for (int64_t i = 0; i < n; i++)
    if (fabs(grad[i] - fd[i]) > worst)
      worst = fabs(grad[i] - fd[i]), worst_i = i, worst_fd = fd[i];
  CHECK_MSG(worst <= 5e-3 * scale,
            "%s: element %lld: backward %.6g, finite difference %.6g "
            "(largest %.3g)", what, (long long)worst_i, grad[worst_i], worst_fd,
            scale);
  free(fd);
}

/* Runs section `section` of m forward and backward on random data, then
 * checks d(input) (if float) and every param's gradient against finite
 * differences. */
static void check_section_numerically(ir_model *m, int section, int B, int T,
                                      int vocab) {
  int N = B * T;
  float *pdata[16], *pgrad[16];
  for (int p = 0; p < m->n_params; p++) {
    int64_t n = ir_param_numel(&m->params[p]);
    const char *key = m->params[p].key;
    int norm_scale = key[0] == 'l' && key[1] == 'n' && strstr(key, "_w");
    pdata[p] = malloc((size_t)n * sizeof(float));
    pgrad[p] = calloc((size_t)n, sizeof(float));
    for (int64_t k = 0; k < n; k++) /* norm scales near 1, as trained */
      pdata[p][k] = norm_scale ? uniform(0.5f, 1.5f) : uniform(-1, 1);
  }
  int32_t ids[64], targets[64];
  for (int n = 0; n < N; n++)
    ids[n] = (n * 5 + 3) % vocab, targets[n] = (n * 3 + 1) % vocab;
  interp it;
  interp_init(&it, m, section, B, T, pdata, pgrad, ids, targets);
  const ir_graph *g = it.g;
  const ir_value *in = &g->values[g->input];
  if (in->dtype == IR_F32)
    for (int64_t k = 0; k < N * in->cols; k++)
      F(&it, g->input)[k] = uniform(-2, 2);
  int seed = g->values[g->output].grad;
  if (seed >= 0)
    for (int64_t k = 0; k < N * g->values[g->output].cols; k++)
      F(&it, seed)[k] = uniform(-1, 1);

  forward_loss(&it);
  run_ops(&it, g->bwd, g->n_bwd);

  char what[96];
  if (in->dtype == IR_F32) {
    snprintf(what, sizeof what, "%s d_%s", ir_section_name(section), in->name);
    check_fd(&it, what, F(&it, g->input), N * in->cols, F(&it, in->grad));
  }
  for (int v = 0; v < g->n_values; v++) {
    const ir_value *x = &g->values[v];
    if (x->kind != IR_V_PARAM) continue;
    snprintf(what, sizeof what, "%s d_%s", ir_section_name(section), x->name);
    check_fd(&it, what, pdata[x->param], x->cols, pgrad[x->param]);
  }
  interp_free(&it);
  for (int p = 0; p < m->n_params; p++) free(pdata[p]), free(pgrad[p]);
}

/* Every block op: a GPT-2 block with grouped attention (3 query heads, one
 * kv head, so q, k, v have different widths), the attention projection
 * used twice (its gradient accumulates two terms) and the input read three
 * times (two `add`s sum its gradient). */
static void build_numeric_block(ir_model *m) {
  enum { C = 6, HD = 2, QKV = C + 2 * HD };
  builder b = {m, IR_BLOCK, 0};
  ir_graph *g = graph(&b);
  int x = g->input = value(&b, "x", IR_V_INPUT, IR_F32, C);
  int h1 = layernorm(&b, "h1", x, param(&b, "ln1_w", C, 0, 0),
                     param(&b, "ln1_b", C, 0, 0));
  int qkv = linear(&b, "qkv", h1, param(&b, "attn_w", C, QKV, IR_LAYOUT_IN_OUT),
                   param(&b, "attn_b", QKV, 0, 0), QKV);
  const char *names[3] = {"q", "k", "v"};
  int64_t widths[3] = {C, HD, HD};
  int qkv_parts[3];
  split(&b, qkv, 3, names, widths, qkv_parts);
  int att = attention(&b, "att", qkv_parts[0], qkv_parts[1], qkv_parts[2], 3, 1);
  int proj_w = param(&b, "proj_w", C, C, IR_LAYOUT_OUT_IN);
  int att_out =
      linear(&b, "att_out", att, proj_w, param(&b, "proj_b", C, 0, 0), C);
  int x1 = add(&b, "x1", x, att_out);
  int h2 = layernorm(&b, "h2", x1, param(&b, "ln2_w", C, 0, 0),
                     param(&b, "ln2_b", C, 0, 0));
  int fc = linear(&b, "fc", h2, param(&b, "fc_w", C, 4 * C, IR_LAYOUT_IN_OUT),
                  param(&b, "fc_b", 4 * C, 0, 0), 4 * C);
  int fc_act = gelu(&b, "fc_act", fc);
  int mlp = linear(&b, "mlp", fc_act,
                   param(&b, "mproj_w", C, 4 * C, IR_LAYOUT_OUT_IN), -1, C);
  int x2 = add(&b, "x2", x1, mlp);
  int x3 = linear(&b, "x3", x2, proj_w, -1, C);
  g->output = add(&b, "out", x3, x);
}

static void test_numeric_block(void) {
  ir_model m;
  ir_model_init(&m);
  build_numeric_block(&m);
  lt_error err = {""};
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);
  const ir_graph *g = &m.sections[IR_BLOCK];
  CHECK(count_param_grads(&m, g, "proj_w") == 1);
  CHECK(ir_find_value(g, "d_x_sum1") >= 0); /* three terms: two adds */
  check_section_numerically(&m, IR_BLOCK, 2, 3, 1);
  ir_model_free(&m);
}

static void test_numeric_embed_and_head(void) {
  enum { V = 7, P = 5, C = 6 };
  ir_model m;
  ir_model_init(&m);
  build_embed(&m, V, P, C);
  build_head(&m, V, C);
  lt_error err = {""};
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);
  check_section_numerically(&m, IR_EMBED, 2, 4, V);
  check_section_numerically(&m, IR_HEAD, 2, 4, V);
  ir_model_free(&m);
}

/* llama-tiny from its YAML: every section, every new op's rule in place
 * (rope on two head counts, silu * up, rmsnorm, the untied head). */
static void test_numeric_llama_tiny(void) {
  ir_model m;
  lt_error err = {""};
  if (yml_load_model(src_path("models/llama-tiny.yaml"), &m, &err)) {
    CHECK_MSG(0, "%s", err.msg);
    ir_model_free(&m);
    return;
  }
  CHECK_MSG(ad_build_backward(&m, &err) == 0, "%s", err.msg);
  for (int s = 0; s < IR_NSECTIONS; s++) check_section_numerically(&m, s, 2, 3, m.vocab_size);
  ir_model_free(&m);
}

/* The CPU executor's kernel table covers every op kind of the table. */
static void test_cpu_kernels_complete(void) {
  for (int k = 0; k < IR_OP_COUNT; k++)
    CHECK_MSG(exec_supports((ir_opkind)k), "no CPU kernel for %s", ir_op_name((ir_opkind)k));
}

int main(void) {
  RUN(test_cpu_kernels_complete);
  RUN(test_tiny_block);
  RUN(test_pruning);
  RUN(test_embed_and_head);
  RUN(test_errors);
  RUN(test_gpt2_tiny_block);
  RUN(test_llama_tiny_block);
  RUN(test_numeric_block);
  RUN(test_numeric_embed_and_head);
  RUN(test_numeric_llama_tiny);
  return check_exit();
}
