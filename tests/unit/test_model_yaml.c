/* test_model_yaml.c: model descriptions -> IR, and the messages bad input
 * gets (exact file:line:col and text). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "clock_ms.h"
#include "model_yaml.h"

static int count_section_params(const ir_model *m, int section) {
  int n = 0;
  for (int i = 0; i < m->n_params; i++) n += m->params[i].section == section;
  return n;
}

static const ir_value *value(const ir_model *m, int section, const char *name) {
  const ir_graph *g = &m->sections[section];
  int v = ir_find_value(g, name);
  CHECK_MSG(v >= 0, "no value '%s' in %s", name, ir_section_name(section));
  static const ir_value none = {.cols = -1};
  return v >= 0 ? &g->values[v] : &none;
}

static int64_t width(const ir_model *m, int section, const char *name) {
  return value(m, section, name)->cols;
}

static const ir_param *param(const ir_model *m, const char *key) {
  int p = ir_find_param(m, key);
  CHECK_MSG(p >= 0, "no param '%s'", key);
  static const ir_param none;
  return p >= 0 ? &m->params[p] : &none;
}

static void check_tiny_params(const ir_model *m) {
  CHECK(m->n_params == 16);
  CHECK(count_section_params(m, IR_EMBED) == 2);
  CHECK(count_section_params(m, IR_BLOCK) == 12);
  CHECK(count_section_params(m, IR_HEAD) == 2);
  const ir_param *attn_w = param(m, "attn_w");
  CHECK(attn_w->section == IR_BLOCK && attn_w->ndim == 2);
  CHECK(attn_w->shape[0] == 24 && attn_w->shape[1] == 72);
  CHECK(attn_w->layout == IR_LAYOUT_IN_OUT);
  CHECK(attn_w->decay == 1 && attn_w->init == IR_INIT_NORMAL);
  CHECK(attn_w->init_std == 0.02 && attn_w->line == 35);
  CHECK(strcmp(attn_w->hf_name, "h.{i}.attn.c_attn.weight") == 0);
  const ir_param *wte = param(m, "wte");
  CHECK(wte->layout == IR_LAYOUT_OUT_IN && wte->section == IR_EMBED);
  CHECK(param(m, "wpe")->init_std == 0.01);
  CHECK_CLOSE(param(m, "aproj_w")->init_std, 0.02 / sqrt(4.0), 0, 1e-15);
  const ir_param *ln_1_b = param(m, "ln_1_b");
  CHECK(ln_1_b->ndim == 1 && ln_1_b->shape[0] == 24);
  CHECK(ln_1_b->init == IR_INIT_ZEROS && ln_1_b->decay == 0);
  CHECK(param(m, "ln_f_w")->init == IR_INIT_ONES);
  CHECK(ir_model_numel(m) == 67 * 24 + 32 * 24 + 2 * (4 * 24 + 24 * 72 + 72 + 24 * 24 +
                                                       24 + 24 * 96 + 96 + 96 * 24 + 24) +
                                 2 * 24);
}

static void check_tiny_block(const ir_model *m) {
  static const ir_opkind kinds[] = {IR_OP_LAYERNORM, IR_OP_LINEAR, IR_OP_SPLIT, IR_OP_ATTENTION,
                              IR_OP_LINEAR,    IR_OP_ADD,    IR_OP_LAYERNORM, IR_OP_LINEAR,
                              IR_OP_GELU,      IR_OP_LINEAR, IR_OP_ADD};
  const ir_graph *g = &m->sections[IR_BLOCK];
  CHECK(g->n_fwd == 11 && g->n_bwd == 0);
  for (int i = 0; i < g->n_fwd && i < 11; i++) {
    CHECK_MSG(g->fwd[i].kind == kinds[i], "op %d is %s", i, ir_op_name(g->fwd[i].kind));
    CHECK(g->fwd[i].line == 48 + i);
  }
  CHECK(strcmp(g->values[g->input].name, "x") == 0);
  CHECK(g->values[g->input].kind == IR_V_INPUT && g->values[g->input].cols == 24);
  CHECK(strcmp(g->values[g->output].name, "x2") == 0 && g->targets == -1);
  CHECK(width(m, IR_BLOCK, "qkv") == 72 && width(m, IR_BLOCK, "q") == 24);
  CHECK(width(m, IR_BLOCK, "fc_act") == 96 && width(m, IR_BLOCK, "h1.rstd") == 1);
  CHECK(width(m, IR_BLOCK, "att.lse") == 3);
  const ir_op *ln = &g->fwd[0];
  CHECK(ln->n_in == 3 && ln->n_out == 3 && ln->eps == 1e-5f);
  CHECK(strcmp(g->values[ln->out[1]].name, "h1.mean") == 0);
  const ir_op *att = &g->fwd[3];
  CHECK(att->heads == 3 && att->kv_heads == 3 && att->causal == 1);
  CHECK(att->n_out == 2 && strcmp(g->values[att->out[1]].name, "att.lse") == 0);
  const ir_value *w = value(m, IR_BLOCK, "attn_w");
  CHECK(w->kind == IR_V_PARAM && w->cols == 24 * 72);
  CHECK(w->param == ir_find_param(m, "attn_w") && w->grad == -1);
  CHECK(g->fwd[1].in[1] == ir_find_value(g, "attn_w"));
  const ir_value *fc = value(m, IR_BLOCK, "fc");
  CHECK(fc->kind == IR_V_ACT && fc->dtype == IR_F32 && fc->param == -1 && fc->grad == -1);
}

static void check_tiny_embed_head(const ir_model *m) {
  const ir_graph *e = &m->sections[IR_EMBED], *h = &m->sections[IR_HEAD];
  CHECK(e->n_fwd == 3 && e->fwd[0].kind == IR_OP_EMBEDDING && e->fwd[0].line == 24);
  CHECK(e->fwd[1].kind == IR_OP_POS_EMBEDDING && e->fwd[2].kind == IR_OP_ADD);
  const ir_value *tokens = &e->values[e->input];
  CHECK(strcmp(tokens->name, "tokens") == 0 && tokens->kind == IR_V_INPUT);
  CHECK(tokens->dtype == IR_I32 && tokens->cols == 1);
  CHECK(width(m, IR_EMBED, "x") == 24);
  CHECK(h->n_fwd == 3 && h->fwd[2].kind == IR_OP_CROSS_ENTROPY);
  CHECK(h->values[h->input].cols == 24 && h->values[h->input].dtype == IR_F32);
  CHECK(strcmp(h->values[h->targets].name, "targets") == 0);
  CHECK(h->values[h->targets].dtype == IR_I32 && h->values[h->targets].kind == IR_V_INPUT);
  const ir_value *loss = &h->values[h->output];
  CHECK(strcmp(loss->name, "loss") == 0 && loss->scalar == 1 && loss->cols == 1);
  /* Tied weights: the head's linear reads the embed section's wte. */
  const ir_op *lin = &h->fwd[1];
  CHECK(lin->kind == IR_OP_LINEAR && lin->n_in == 2);
  CHECK(h->values[lin->in[1]].kind == IR_V_PARAM);
  CHECK(h->values[lin->in[1]].param == ir_find_param(m, "wte"));
  CHECK(width(m, IR_HEAD, "logits") == 67);
}

static void test_tiny(void) {
  ir_model m;
  lt_error err = {{0}};
  const char *path = src_path("models/gpt2-tiny.yaml");
  int rc = yml_load_model(path, &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(strcmp(m.name, "gpt2-tiny") == 0 && strcmp(m.path, path) == 0);
  CHECK(m.n_layer == 2 && m.vocab_size == 67 && m.max_seq == 32);
  CHECK(m.n_config == 6 && strcmp(m.config[5].name, "layer_norm_eps") == 0);
  CHECK(m.config[5].value == 1.0e-5);
  CHECK(m.n_prefixes == 2 && strcmp(m.prefixes[0], "") == 0);
  CHECK(strcmp(m.prefixes[1], "transformer.") == 0);
  check_tiny_params(&m);
  check_tiny_block(&m);
  check_tiny_embed_head(&m);
  ir_model_free(&m);
}

static void test_gpt2_sizes(void) {
  static const struct {
    const char *file;
    int n_layer;
    int64_t numel;
  } sizes[] = {{"models/gpt2-124m.yaml", 12, 124439808},
               {"models/gpt2-355m.yaml", 24, 354823168},
               {"models/gpt2-774m.yaml", 36, 774030080}};
  for (int i = 0; i < 3; i++) {
    ir_model m;
    lt_error err = {{0}};
    int rc = yml_load_model(src_path(sizes[i].file), &m, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) continue;
    CHECK(m.n_layer == sizes[i].n_layer && m.vocab_size == 50257 && m.max_seq == 1024);
    CHECK_MSG(ir_model_numel(&m) == sizes[i].numel, "%s: %lld", sizes[i].file,
              (long long)ir_model_numel(&m));
    ir_model_free(&m);
  }
}

/* Parameter counts as Hugging Face reports them (LlamaForCausalLM /
 * MistralForCausalLM on the published configs, untied head). */
static void test_llama_sizes(void) {
  static const struct {
    const char *file;
    int n_layer;
    int64_t numel;
  } sizes[] = {{"models/llama2-7b.yaml", 32, INT64_C(6738415616)},
               {"models/llama2-13b.yaml", 40, INT64_C(13015864320)},
               {"models/llama2-70b.yaml", 80, INT64_C(68976648192)},
               {"models/tinyllama-1.1b.yaml", 22, INT64_C(1100048384)},
               {"models/mistral-7b.yaml", 32, INT64_C(7241732096)},
               {"models/llama-tiny.yaml", 2, 12264},
               {"models/mistral-tiny.yaml", 3, 25120}};
  for (int i = 0; i < 7; i++) {
    ir_model m;
    lt_error err = {{0}};
    int rc = yml_load_model(src_path(sizes[i].file), &m, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) continue;
    CHECK(m.n_layer == sizes[i].n_layer && m.max_seq == 0);
    CHECK_MSG(ir_model_numel(&m) == sizes[i].numel, "%s: %lld", sizes[i].file,
              (long long)ir_model_numel(&m));
    ir_model_free(&m);
  }
}

/* llama-tiny's block: rmsnorm, rope per head count, silu * up. */
static void test_llama_tiny_block(void) {
  static const ir_opkind kinds[] = {IR_OP_RMSNORM, IR_OP_LINEAR, IR_OP_LINEAR, IR_OP_LINEAR,
                              IR_OP_ROPE,    IR_OP_ROPE,   IR_OP_ATTENTION, IR_OP_LINEAR,
                              IR_OP_ADD,     IR_OP_RMSNORM, IR_OP_LINEAR, IR_OP_LINEAR,
                              IR_OP_SILU,    IR_OP_MUL,    IR_OP_LINEAR, IR_OP_ADD};
  ir_model m;
  lt_error err = {{0}};
  int rc = yml_load_model(src_path("models/llama-tiny.yaml"), &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  const ir_graph *g = &m.sections[IR_BLOCK];
  CHECK(g->n_fwd == 16);
  for (int i = 0; i < g->n_fwd && i < 16; i++)
    CHECK_MSG(g->fwd[i].kind == kinds[i], "op %d is %s", i, ir_op_name(g->fwd[i].kind));
  const ir_op *norm = &g->fwd[0], *rq = &g->fwd[4], *rk = &g->fwd[5];
  CHECK(norm->n_in == 2 && norm->n_out == 2 && norm->eps == 1e-6f);
  CHECK(strcmp(g->values[norm->out[1]].name, "h1.rstd") == 0 && width(&m, IR_BLOCK, "h1.rstd") == 1);
  CHECK(rq->heads == 4 && rq->rotary_dims == 6 && rq->theta == 10000.0 && rq->n_out == 1);
  CHECK(rk->heads == 2 && rk->rotary_dims == 6 && width(&m, IR_BLOCK, "k_rot") == 12);
  CHECK(g->fwd[6].heads == 4 && g->fwd[6].kv_heads == 2);
  CHECK(width(&m, IR_BLOCK, "swiglu") == 40 && m.vocab_size == 61);
  CHECK(param(&m, "lm_head")->section == IR_HEAD && param(&m, "attn_norm_w")->decay == 0);
  CHECK(strcmp(param(&m, "q_w")->hf_name, "model.layers.{i}.self_attn.q_proj.weight") == 0);
  ir_model_free(&m);
  rc = yml_load_model(src_path("models/mistral-tiny.yaml"), &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(m.sections[IR_BLOCK].fwd[4].theta == 1e6 && m.sections[IR_BLOCK].fwd[5].heads == 1);
  ir_model_free(&m);
}

/* A small valid model; the error cases below are edits of it. */
static const char *const base =
    "name: t\n"                                               /* 1 */
    "config: {v: 11, c: 8}\n"                                 /* 2 */
    "embed:\n"                                                /* 3 */
    "  input: ids\n"                                          /* 4 */
    "  params:\n"                                             /* 5 */
    "    emb: {hf: emb.weight, shape: [v, c]}\n"              /* 6 */
    "  ops:\n"                                                /* 7 */
    "    - {op: embedding, in: [ids, emb], out: x}\n"         /* 8 */
    "  output: x\n"                                           /* 9 */
    "block:\n"                                                /* 10 */
    "  repeat: 2\n"                                           /* 11 */
    "  input: x\n"                                            /* 12 */
    "  params:\n"                                             /* 13 */
    "    w: {hf: \"l.{i}.w\", shape: [c, c]}\n"               /* 14 */
    "    b: {hf: \"l.{i}.b\", shape: [c]}\n"                  /* 15 */
    "  ops:\n"                                                /* 16 */
    "    - {op: linear, in: [x, w, b], out: y}\n"             /* 17 */
    "    - {op: add, in: [x, y], out: z}\n"                   /* 18 */
    "  output: z\n"                                           /* 19 */
    "head:\n"                                                 /* 20 */
    "  input: x\n"                                            /* 21 */
    "  targets: t\n"                                          /* 22 */
    "  ops:\n"                                                /* 23 */
    "    - {op: linear, in: [x, emb], out: logits}\n"         /* 24 */
    "    - {op: cross_entropy, in: [logits, t], out: loss}\n" /* 25 */
    "  output: loss\n";                                       /* 26 */

/* base with `old` replaced by `new` (each must occur exactly once). */
static const char *edit(const char *old, const char *new) {
  static char buf[4096];
  const char *at = strstr(base, old);
  CHECK_MSG(at && !strstr(at + 1, old), "'%s' must occur once in base", old);
  if (!at) return base;
  snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - base), base, new, at + strlen(old));
  return buf;
}

static void load_fails(const char *text, const char *expected) {
  ir_model m;
  lt_error err = {{0}};
  int rc = yml_load_model_string(text, "t.yaml", &m, &err);
  CHECK_MSG(rc == -1, "loaded, expected \"%s\"", expected);
  CHECK_MSG(strcmp(err.msg, expected) == 0, "\n  got      \"%s\"\n  expected \"%s\"",
            err.msg, expected);
  CHECK(m.n_params == 0 && m.config == NULL); /* left empty */
  ir_model_free(&m);
}

static void test_base_loads(void) {
  ir_model m;
  lt_error err = {{0}};
  int rc = yml_load_model_string(base, "t.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(strcmp(m.path, "t.yaml") == 0 && m.n_layer == 2 && m.max_seq == 0);
  CHECK(m.n_prefixes == 1 && m.prefixes[0][0] == '\0'); /* default [""] */
  CHECK(m.vocab_size == 11 && width(&m, IR_HEAD, "logits") == 11);
  CHECK(param(&m, "w")->layout == IR_LAYOUT_OUT_IN && param(&m, "b")->init_std == 0.02);
  ir_model_free(&m);
}

/* scale: factor is an expression over the config; it is required */
static void test_scale(void) {
  ir_model m;
  lt_error err = {{0}};
  const char *text = edit("    - {op: add, in: [x, y], out: z}\n",
                          "    - {op: scale, in: [y], out: ys, factor: c / 5}\n"
                          "    - {op: add, in: [x, ys], out: z}\n");
  int rc = yml_load_model_string(text, "t.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  const ir_op *op = &m.sections[IR_BLOCK].fwd[1];
  CHECK(op->kind == IR_OP_SCALE && op->factor == 8.0 / 5 && width(&m, IR_BLOCK, "ys") == 8);
  ir_model_free(&m);
  load_fails(edit("    - {op: add, in: [x, y], out: z}\n", "    - {op: scale, in: [y], out: z}\n"),
             "t.yaml:18:7: scale: needs 'factor'");
}

static void test_syntax_errors(void) {
  load_fails(edit("shape: [v, c]}", "shape: [v, c}"),
             "t.yaml:6:39: did not find expected ',' or ']' (while parsing a flow "
             "sequence started at line 6, column 34)");
  load_fails("name: t\n  bad: indent\n", "t.yaml:2:6: mapping values are not allowed "
                                        "in this context");
  load_fails("", "t.yaml: empty model description");
  load_fails("- 1\n", "t.yaml:1:1: the model description must be a mapping");
}

static void test_unknown_names(void) {
  load_fails(edit("op: add", "op: addd"),
             "t.yaml:18:12: unknown op 'addd' (known: embedding, position_embedding, "
             "add, layernorm, linear, gelu, split, attention, rmsnorm, rope, silu, mul, scale, "
             "activation, cross_entropy)");
  load_fails(edit("in: [x, y]", "in: [x, yy]"),
             "t.yaml:18:25: unknown value 'yy' (not the block input, an earlier "
             "output or a param)");
  load_fails(edit("shape: [v, c]}", "shape: [v, cc]}"),
             "t.yaml:6:38: unknown identifier 'cc'");
  /* Quoted: the column still points at the identifier in the file. */
  load_fails(edit("shape: [v, c]}", "shape: [v, \"2*cc\"]}"),
             "t.yaml:6:41: unknown identifier 'cc'");
  load_fails(edit("{v: 11, c: 8}", "{c: v, v: 11}"), "t.yaml:2:13: unknown identifier 'v'");
  load_fails(edit("out: z}", "out: z, eps: 1}"),
             "t.yaml:18:37: unknown key 'eps' in op 'add' (known: op, in, out)");
  load_fails(edit("shape: [c]}", "shap: [c]}"),
             "t.yaml:15:24: unknown key 'shap' in param 'b' (known: hf, shape, layout, "
             "init, std, decay, tie, interleave)");
  load_fails(edit("repeat: 2", "repeats: 2"),
             "t.yaml:11:3: unknown key 'repeats' in block (known: repeat, input, params, "
             "ops, output)");
}

static void test_width_mismatches(void) {
  load_fails(edit("in: [x, w, b], out: y}", "in: [x, emb], out: y}"),
             "t.yaml:18:7: add: 'y' has width 11, expected 8 (the width of the first "
             "input)");
  load_fails(edit("shape: [c, c]}", "shape: [2*c, c], layout: in_out}"),
             "t.yaml:17:7: linear: 'x' has width 8, expected 16 (the inputs of 'w', "
             "stored [16, 8] as in_out)");
  load_fails(edit("shape: [c, c]}", "shape: [c, 2*c], layout: in_out}"),
             "t.yaml:17:7: linear: 'b' has width 8, expected 16 (the outputs of 'w')");
  load_fails(edit("{op: add, in: [x, y], out: z}", "{op: attention, in: [y, y, y], out: z, "
                                                  "heads: 3}"),
             "t.yaml:18:7: attention: q width 8 is not divisible by 3 heads");
  load_fails(edit("{op: add, in: [x, y], out: z}", "{op: attention, in: [y, y, y], out: z, "
                                                  "heads: 4, kv_heads: 2}"),
             "t.yaml:18:7: attention: 'y' has width 8, expected 4 (kv_heads * head size)");
  load_fails(edit("{op: add, in: [x, y], out: z}", "{op: split, in: [y], out: [p, q, z]}"),
             "t.yaml:18:7: split: 'y' (width 8) does not split into 3 equal parts; give "
             "sizes");
  load_fails(edit("{op: add, in: [x, y], out: z}", "{op: gelu, in: [ids], out: z}"),
             "t.yaml:18:23: unknown value 'ids' (not the block input, an earlier output "
             "or a param)");
}

/* rope, rmsnorm, silu and mul: attributes and widths (y is [N, 8]). */
static void test_llama_op_errors(void) {
  const char *op = "{op: add, in: [x, y], out: z}";
  load_fails(edit(op, "{op: rope, in: [y], out: z}"), "t.yaml:18:7: rope: needs 'heads'");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 3}"),
             "t.yaml:18:7: rope: 'y' (width 8) is not divisible by 3 heads");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 8}"),
             "t.yaml:18:7: rope: head size 1 is odd; give an even rotary_dims");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 2, rotary_dims: 3}"),
             "t.yaml:18:58: rotary_dims must be even and at most the head size 4, got 3");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 2, rotary_dims: 6}"),
             "t.yaml:18:58: rotary_dims must be even and at most the head size 4, got 6");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 2, theta: -c}"),
             "t.yaml:18:52: theta must be positive");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 2, base: 10}"),
             "t.yaml:18:45: unknown key 'base' in op 'rope' (known: op, in, out, heads, "
             "theta, rotary_dims, local_theta, global_every)");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 2, local_theta: 10}"),
             "t.yaml:18:58: local_theta and global_every go together (the base of the layers "
             "that are not every global_every-th)");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 2, local_theta: 10, global_every: 1}"),
             "t.yaml:18:76: global_every must be at least 2");
  load_fails(edit(op, "{op: rope, in: [y], out: z, heads: 2, local_theta: -1, global_every: 2}"),
             "t.yaml:18:58: local_theta must be positive");
  load_fails(edit(op, "{op: rmsnorm, in: [y, w], out: z}"),
             "t.yaml:18:7: rmsnorm: 'w' has width 64, expected 8 (the width of x)");
  load_fails(edit(op, "{op: rmsnorm, in: [y], out: z}"),
             "t.yaml:18:7: rmsnorm: takes inputs [x, w], got 1");
  load_fails(edit(op, "{op: rmsnorm, in: [y, b], out: z, eps: 0}"),
             "t.yaml:18:46: eps must be positive");
  load_fails(edit(op, "{op: mul, in: [y, emb], out: z}"),
             "t.yaml:18:7: mul: 'emb' has width 88, expected 8 (the width of the first "
             "input)");
  load_fails(edit(op, "{op: silu, in: [y, x], out: z}"),
             "t.yaml:18:7: silu: takes inputs [x], got 2");
  /* attention's variants (Gemma 2, Mistral) */
  const char *att = "{op: attention, in: [y, y, y], out: z, heads: 2";
  char text[160];
  const char *bad[][2] = {
      {", scale: 0}", "t.yaml:18:63: scale must be positive"},
      {", softcap: -c}", "t.yaml:18:65: softcap must be positive"},
      {", window: 2.5}", "t.yaml:18:64: window must be a whole number >= 0 (0: none), got 2.5"},
      {", causal: false, window: 4}",
       "t.yaml:18:79: a window needs causal attention"},
      {", window: 4, global_every: 1}", "t.yaml:18:81: global_every must be at least 2"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    snprintf(text, sizeof text, "%s%s", att, bad[i][0]);
    load_fails(edit(op, text), bad[i][1]);
  }
}

static void test_structure_errors(void) {
  load_fails(edit("out: z}", "out: y}"), "t.yaml:18:34: value 'y' is already defined in "
                                         "the block");
  load_fails(edit("\"l.{i}.w\"", "l.w"),
             "t.yaml:14:13: block param 'w': hf name 'l.w' lacks \"{i}\" (the layer "
             "index), so all layers would share one tensor");
  load_fails(edit("hf: \"l.{i}.b\", ", ""), "t.yaml:15:5: param 'b' has no 'hf' (its "
                                              "checkpoint name)");
  load_fails(edit(", shape: [c]}", "}"), "t.yaml:15:5: param 'b' has no 'shape'");
  load_fails(edit("\"l.{i}.b\"", "\"l.{i}.w\""),
             "t.yaml:15:13: param 'b': hf name 'l.{i}.w' is already param 'w' (to share "
             "a weight, read the same param)");
  load_fails(edit("hf: emb.weight", "hf: \"emb.{i}\""),
             "t.yaml:6:15: param 'emb': \"{i}\" (the layer index) only means something "
             "in block params");
  load_fails(edit("in: [x, w, b], out: y}", "in: [x, w, b], out: y, causal: yes}"),
             "t.yaml:17:43: unknown key 'causal' in op 'linear' (known: op, in, out)");
  load_fails(edit("out: z}", "out: [z, zz]}"),
             "t.yaml:18:7: add: takes one output name, got 2");
  load_fails(edit("in: [x, emb], out: logits", "in: [x, w], out: logits"),
             "t.yaml:24:28: param 'w' belongs to the block; only the block can read it");
  load_fails(edit("output: loss", "output: logits"),
             "t.yaml:26:11: head output 'logits' must be the scalar loss (cross_entropy)");
  load_fails(edit("{op: add, in: [x, y], out: z}",
                  "{op: cross_entropy, in: [y, x], out: z}"),
             "t.yaml:18:7: cross_entropy: only the head may compute the loss");
  load_fails(edit("  output: z\n", "  output: q\n"),
             "t.yaml:19:11: output 'q' is not a value of the block");
  load_fails(edit("    b: {", "    w: {"),
             "t.yaml:15:5: param 'w' is defined twice (param names are unique across "
             "sections)");
  load_fails(edit("repeat: 2", "repeat: 2.5"),
             "t.yaml:11:11: repeat must be a whole number from 1 to 1073741824, got 2.5");
}

/* split with sizes, grouped-query attention, in_out layout, decay override. */
static void test_attention_split(void) {
  static const char *const text =
      "name: gqa\n"
      "config: {v: 11, c: 8}\n"
      "embed:\n"
      "  input: ids\n"
      "  params: {emb: {hf: emb.weight, shape: [v, c]}}\n"
      "  ops: [{op: embedding, in: [ids, emb], out: x}]\n"
      "  output: x\n"
      "block:\n"
      "  repeat: 3\n"
      "  input: x\n"
      "  params:\n"
      "    qkv_w: {hf: \"l.{i}.qkv\", shape: [c, 2*c], layout: in_out, decay: false}\n"
      "  ops:\n"
      "    - {op: linear, in: [x, qkv_w], out: qkv}\n"
      "    - {op: split, in: [qkv], out: [q, k, v], sizes: [c, c/2, c//2]}\n"
      "    - {op: attention, in: [q, k, v], out: y, heads: 4, kv_heads: 2, causal: false}\n"
      "  output: y\n"
      "head:\n"
      "  input: x\n"
      "  targets: t\n"
      "  ops:\n"
      "    - {op: linear, in: [x, emb], out: logits}\n"
      "    - {op: cross_entropy, in: [logits, t], out: loss}\n"
      "  output: loss\n";
  ir_model m;
  lt_error err = {{0}};
  int rc = yml_load_model_string(text, "gqa.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  CHECK(m.n_layer == 3 && width(&m, IR_BLOCK, "qkv") == 16);
  CHECK(width(&m, IR_BLOCK, "q") == 8 && width(&m, IR_BLOCK, "k") == 4);
  CHECK(width(&m, IR_BLOCK, "v") == 4 && width(&m, IR_BLOCK, "y.lse") == 4);
  const ir_graph *g = &m.sections[IR_BLOCK];
  CHECK(g->n_fwd == 3 && g->fwd[1].n_out == 3 && g->fwd[1].line == 15);
  const ir_op *att = &g->fwd[2];
  CHECK(att->kind == IR_OP_ATTENTION && att->heads == 4 && att->kv_heads == 2);
  CHECK(att->causal == 0);
  const ir_param *w = param(&m, "qkv_w");
  CHECK(w->decay == 0 && w->line == 12 && w->layout == IR_LAYOUT_IN_OUT);
  ir_model_free(&m);
}

/* Messages from a file carry its path. */
static void test_file_errors(void) {
  ir_model m;
  lt_error err = {{0}};
  const char *path = src_path("tests/fixtures/yaml/unknown_op.yaml");
  CHECK(yml_load_model(path, &m, &err) == -1);
  char expected[1200];
  snprintf(expected, sizeof expected,
           "%s:12:14: unknown op 'gelu_new' (known: embedding, position_embedding, add, "
           "layernorm, linear, gelu, split, attention, rmsnorm, rope, silu, mul, scale, "
           "activation, cross_entropy)", path);
  CHECK_MSG(strcmp(err.msg, expected) == 0, "got \"%s\"", err.msg);
  path = src_path("tests/fixtures/yaml/no_such_file.yaml");
  CHECK(yml_load_model(path, &m, &err) == -1);
  snprintf(expected, sizeof expected, "%s: cannot open: No such file or directory", path);
  CHECK_MSG(strcmp(err.msg, expected) == 0, "got \"%s\"", err.msg);
}

/* ------------------------------------------------------------------------ */
/* activation: y = fn(x) from an expression or a Lua file */

static const char *const act_op = "{op: add, in: [x, y], out: z}";

static void test_activation_inline(void) {
  ir_model m;
  lt_error err = {{0}};
  /* config c = 8 is bound at load: the tree holds the number */
  const char *text = edit(act_op, "{op: activation, in: [y], out: z, "
                                  "expr: \"x * sigmoid(c / 4 * x)\"}");
  int rc = yml_load_model_string(text, "t.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc) return;
  const ir_op *op = &m.sections[IR_BLOCK].fwd[1];
  CHECK(op->kind == IR_OP_ACTIVATION && op->n_in == 1 && op->n_out == 1);
  CHECK(width(&m, IR_BLOCK, "z") == 8 && m.n_activations == 1 && op->activation == 0);
  const ir_activation *a = &m.activations[op->activation];
  CHECK(strcmp(a->text, "x * sigmoid(c / 4 * x)") == 0 && a->name[0] == '\0');
  CHECK(a->line == 18);
  CHECK_CLOSE(expr_eval_x(a->fn, 0.5), 0.5 / (1 + exp(-1.0)), 0, 1e-15);
  char c_text[256];
  CHECK(expr_to_c(a->fn, "v", c_text, sizeof c_text, &err) == 0);
  CHECK_MSG(strcmp(c_text, "(v * (1.f / (1.f + expf(-((2.f * v))))))") == 0, "%s", c_text);
  ir_model_free(&m);
}

/* A Lua file beside the YAML; returns the directory (static). */
static const char *lua_dir(void) {
  static char dir[] = "/tmp/lisa-yaml-XXXXXX";
  static int made;
  if (!made && mkdtemp(dir)) made = 1;
  return dir;
}

static void write_lua(const char *name, const char *text) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", lua_dir(), name);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (f) fputs(text, f), fclose(f);
}

/* Loads base with the block's add replaced by `op`, as if from <dir>/t.yaml. */
static int load_lua_model(const char *op, ir_model *m, lt_error *err) {
  char name[128];
  snprintf(name, sizeof name, "%s/t.yaml", lua_dir());
  return yml_load_model_string(edit(act_op, op), name, m, err);
}

/* Same, expecting exactly `want` with "<dir>" standing for the directory. */
static void lua_fails(const char *op, const char *want) {
  ir_model m;
  lt_error err = {{0}};
  char expected[1024], *at;
  snprintf(expected, sizeof expected, "%s", want);
  while ((at = strstr(expected, "<dir>"))) {
    char rest[1024];
    snprintf(rest, sizeof rest, "%s", at + 5);
    snprintf(at, sizeof expected - (size_t)(at - expected), "%s%s", lua_dir(), rest);
  }
  CHECK_MSG(load_lua_model(op, &m, &err) == -1, "loaded, expected \"%s\"", expected);
  CHECK_MSG(strcmp(err.msg, expected) == 0, "\n  got      \"%s\"\n  expected \"%s\"",
            err.msg, expected);
  ir_model_free(&m);
}

static void test_activation_lua(void) {
  write_lua("acts.lua",
            "-- activations for the loader test\n"
            "return {\n"
            "  quick_gelu = 'x * sigmoid(1.702 * x)',\n"
            "  scaled = function(cfg) return string.format('%g * tanh(x)', cfg.c / 2) end,\n"
            "  bad_syntax = 'x * (1 +',\n"
            "  count = 3,\n"
            "  no_string = function(cfg) return 1 end,\n"
            "}\n");
  ir_model m;
  lt_error err = {{0}};
  int rc = load_lua_model("{op: activation, in: [y], out: z, lua: acts.lua, fn: quick_gelu}",
                          &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    const ir_activation *a = &m.activations[m.sections[IR_BLOCK].fwd[1].activation];
    CHECK(strcmp(a->name, "quick_gelu") == 0 && strcmp(a->text, "x * sigmoid(1.702 * x)") == 0);
    CHECK_CLOSE(expr_eval_x(a->dfn, 0), 0.5, 0, 1e-15);
    ir_model_free(&m);
  }
  rc = load_lua_model("{op: activation, in: [y], out: z, lua: acts.lua, fn: scaled}", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    const ir_activation *a = &m.activations[0];
    CHECK(strcmp(a->text, "4 * tanh(x)") == 0 && expr_eval_x(a->dfn, 0) == 4);
    ir_model_free(&m);
  }
  /* columns: the op's mapping starts at 7, `lua:`'s value at 46, `fn:`'s at 60 */
  lua_fails("{op: activation, in: [y], out: z, lua: acts.lua, fn: quick_gelu_}",
            "<dir>/t.yaml:18:60: <dir>/acts.lua has no activation 'quick_gelu_'");
  lua_fails("{op: activation, in: [y], out: z, lua: acts.lua, fn: bad_syntax}",
            "<dir>/t.yaml:18:60: acts.lua 'bad_syntax': column 9: expected a number, "
            "identifier or '(', found end of expression");
  lua_fails("{op: activation, in: [y], out: z, lua: acts.lua, fn: count}",
            "<dir>/t.yaml:18:46: <dir>/acts.lua: 'count' is a number, not an expression "
            "string or a function returning one");
  lua_fails("{op: activation, in: [y], out: z, lua: acts.lua, fn: no_string}",
            "<dir>/t.yaml:18:46: <dir>/acts.lua: 'no_string' returned a number, not an "
            "expression string");
  lua_fails("{op: activation, in: [y], out: z, lua: nope.lua, fn: f}",
            "<dir>/t.yaml:18:46: cannot open <dir>/nope.lua: No such file or directory");
  write_lua("syntax.lua", "return {\n  f = 'x' +\n}\n");
  lua_fails("{op: activation, in: [y], out: z, lua: syntax.lua, fn: f}",
            "<dir>/t.yaml:18:46: <dir>/syntax.lua:3: unexpected symbol near '}'");
  write_lua("boom.lua", "error('boom')\n");
  lua_fails("{op: activation, in: [y], out: z, lua: boom.lua, fn: f}",
            "<dir>/t.yaml:18:46: <dir>/boom.lua:1: boom");
  write_lua("string.lua", "return 'x * x'\n");
  lua_fails("{op: activation, in: [y], out: z, lua: string.lua, fn: f}",
            "<dir>/t.yaml:18:46: <dir>/string.lua: returned a string, not a table of "
            "activations");
  write_lua("io.lua", "return {f = io.read()}\n");
  lua_fails("{op: activation, in: [y], out: z, lua: io.lua, fn: f}",
            "<dir>/t.yaml:18:46: <dir>/io.lua:1: attempt to index a nil value (global 'io')");
  write_lua("loop.lua", "while true do end\n");
  lua_fails("{op: activation, in: [y], out: z, lua: loop.lua, fn: f}",
            "<dir>/t.yaml:18:46: <dir>/loop.lua:1: ran for more than 100000000 instructions "
            "(an endless loop?)");
  const char *names[] = {"acts", "syntax", "boom", "string", "io", "loop"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s.lua", lua_dir(), names[i]);
    unlink(path);
  }
  rmdir(lua_dir());
}

static void test_activation_errors(void) {
  /* `expr: ` puts the text at column 48 (quoted) or 47 (plain) */
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: \"x * (1 +\"}"),
             "t.yaml:18:56: expected a number, identifier or '(', found end of expression");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: x * cc}"),
             "t.yaml:18:51: unknown identifier 'cc' (the variable is 'x')");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: \"x // 2\"}"),
             "t.yaml:18:50: '//' is not differentiable (differentiating with respect to "
             "'x')");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: \"c * x % 3\"}"),
             "t.yaml:18:54: '%' is not differentiable (differentiating with respect to "
             "'x')");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: x / (c - 8)}"),
             "t.yaml:18:49: division by zero");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z}"),
             "t.yaml:18:7: activation: needs either 'expr' or 'lua' (with 'fn')");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: x, lua: a.lua, fn: f}"),
             "t.yaml:18:7: activation: needs either 'expr' or 'lua' (with 'fn')");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: x, fn: f}"),
             "t.yaml:18:54: 'fn' goes with 'lua', not with 'expr'");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, lua: a.lua}"),
             "t.yaml:18:7: activation: 'lua' needs 'fn' (the activation's name in the file)");
  load_fails(edit(act_op, "{op: activation, in: [y, x], out: z, expr: x}"),
             "t.yaml:18:7: activation: takes inputs [x], got 2");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: x, eps: 1}"),
             "t.yaml:18:50: unknown key 'eps' in op 'activation' (known: op, in, out, expr, "
             "lua, fn)");
  load_fails(edit(act_op, "{op: activation, in: [y], out: z, expr: [x]}"),
             "t.yaml:18:47: expr must be an expression string");
}

/* 200,000 config keys load in linear time (a hash, not pairwise), and a
 * repeat among them is still caught. Prints the time, asserts none. */
/* interleave: {groups, parts} must split the rows evenly. */
static void test_interleave(void) {
  ir_model m;
  lt_error err = {{0}};
  const char *text = edit("    w: {hf: \"l.{i}.w\", shape: [c, c]}\n",
                          "    w: {hf: \"l.{i}.w\", shape: [c, c], interleave: {groups: 2, parts: 2}}\n");
  int rc = yml_load_model_string(text, "t.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    const ir_param *w = param(&m, "w");
    CHECK(w->interleave_groups == 2 && w->interleave_parts == 2);
    ir_model_free(&m);
  }
  load_fails(edit("    w: {hf: \"l.{i}.w\", shape: [c, c]}\n",
                  "    w: {hf: \"l.{i}.w\", shape: [c, c], interleave: {groups: 3, parts: 2}}\n"),
             "t.yaml:14:51: param 'w': 8 rows do not split into 3 groups of 2 parts");
}

/* tie: {to, when}: while `when` holds, the param is the one it names (no
 * tensor of its own); otherwise a param like any other. */
static void test_tie(void) {
  const char *head_param = "  targets: t\n  ops:\n";
  const char *tied = "  targets: t\n  params:\n"
                     "    out: {hf: out.weight, shape: [v, c], tie: {to: emb, when: v - 10}}\n"
                     "  ops:\n";
  char text[4096];
  snprintf(text, sizeof text, "%s", edit(head_param, tied));
  char *lin = strstr(text, "in: [x, emb], out: logits");
  memcpy(lin, "in: [x, out], out: logits", strlen("in: [x, out], out: logits"));
  ir_model m;
  lt_error err = {{0}};
  int rc = yml_load_model_string(text, "t.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(m.n_params == 3 && ir_find_param(&m, "out") < 0); /* emb, w, b */
    const ir_graph *h = &m.sections[IR_HEAD];
    CHECK(h->values[h->fwd[0].in[1]].param == ir_find_param(&m, "emb"));
    ir_model_free(&m);
  }
  char *when = strstr(text, "v - 10");
  memcpy(when, "v - 11", 6); /* zero: not tied, a param of its own */
  rc = yml_load_model_string(text, "t.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(m.n_params == 4 && ir_find_param(&m, "out") >= 0);
    ir_model_free(&m);
  }
  char *shape = strstr(text, "shape: [v, c], tie");
  memcpy(shape, "shape: [c, v], tie", 18);
  rc = yml_load_model_string(text, "t.yaml", &m, &err);
  CHECK_MSG(rc == -1 && strstr(err.msg, "param 'out' cannot be 'emb': their shapes differ"),
            "%s", err.msg);
  ir_model_free(&m);
}

/* rmsnorm's offset and heads: the weight is one head wide. */
static void test_rmsnorm_attrs(void) {
  const char *add = "    - {op: add, in: [x, y], out: z}\n";
  ir_model m;
  lt_error err = {{0}};
  const char *text = edit(add, "    - {op: rmsnorm, in: [y, hw], out: n, heads: 4, offset: 1}\n"
                               "    - {op: add, in: [x, n], out: z}\n");
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", text);
  char *b = strstr(buf, "    b: {hf:");
  char row[] = "    hw: {hf: \"l.{i}.hw\", shape: [c / 4]}\n";
  memmove(b + strlen(row), b, strlen(b) + 1);
  memcpy(b, row, strlen(row));
  int rc = yml_load_model_string(buf, "t.yaml", &m, &err);
  CHECK_MSG(rc == 0, "%s", err.msg);
  if (rc == 0) {
    const ir_op *op = &m.sections[IR_BLOCK].fwd[1];
    CHECK(op->kind == IR_OP_RMSNORM && op->heads == 4 && op->w_offset == 1.0f);
    CHECK(m.sections[IR_BLOCK].values[op->out[1]].cols == 4); /* rstd per head */
    ir_model_free(&m);
  }
  char *heads = strstr(buf, "heads: 4");
  heads[7] = '3';
  rc = yml_load_model_string(buf, "t.yaml", &m, &err);
  CHECK_MSG(rc == -1 && strstr(err.msg, "is not divisible into 3 heads"), "%s", err.msg);
  ir_model_free(&m);
  heads[7] = '2'; /* divides, but w is then not one head wide */
  rc = yml_load_model_string(buf, "t.yaml", &m, &err);
  CHECK_MSG(rc == -1 && strstr(err.msg, "expected 4 (the width of one head)"), "%s", err.msg);
  ir_model_free(&m);
}

static void test_many_config_keys(void) {
  enum { N = 200000 };
  FILE *in = fopen(src_path("models/gpt2-tiny.yaml"), "r");
  size_t cap = (size_t)N * 24 + (1 << 16), k = 0;
  char *text = malloc(cap), line[512];
  if (!in || !text) {
    CHECK_MSG(0, "cannot read models/gpt2-tiny.yaml");
    if (in) fclose(in);
    free(text);
    return;
  }
  while (fgets(line, sizeof line, in)) {
    k += (size_t)snprintf(text + k, cap - k, "%s", line);
    if (!strcmp(line, "config:\n"))
      for (int i = 0; i < N; i++)
        k += (size_t)snprintf(text + k, cap - k, "  x%06d: %d\n", i, i < N - 1 ? i : 17);
  }
  fclose(in);
  for (int dup = 0; dup < 2; dup++) {
    if (dup) memcpy(strstr(text, "  x199999:"), "  x000017:", 10);
    ir_model m;
    lt_error err = {{0}};
    double t0 = lt_now_ms();
    int rc = yml_load_model_string(text, "many.yaml", &m, &err);
    double ms = lt_now_ms() - t0;
    if (dup) {
      CHECK_MSG(rc == -1 && strstr(err.msg, "config 'x000017' is defined twice"), "%s", err.msg);
      continue;
    }
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) break;
    printf("  %d config keys loaded in %.0f ms\n", N, ms);
    CHECK(m.n_config == N + 6);
    ir_model_free(&m);
  }
  free(text);
}

int main(void) {
  RUN(test_tiny);
  RUN(test_interleave);
  RUN(test_tie);
  RUN(test_rmsnorm_attrs);
  RUN(test_many_config_keys);
  RUN(test_gpt2_sizes);
  RUN(test_llama_sizes);
  RUN(test_llama_tiny_block);
  RUN(test_base_loads);
  RUN(test_scale);
  RUN(test_syntax_errors);
  RUN(test_unknown_names);
  RUN(test_width_mismatches);
  RUN(test_llama_op_errors);
  RUN(test_structure_errors);
  RUN(test_attention_split);
  RUN(test_file_errors);
  RUN(test_activation_inline);
  RUN(test_activation_lua);
  RUN(test_activation_errors);
  return check_exit();
}
