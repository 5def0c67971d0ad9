/* gen_fuse.c: the fuse pass. Match rules over a path's items decide which
 * ops share a step (or need none), before anything is lowered:
 *   - split/concat of q, k, v become strided views (no step), first, since
 *     the other rules look at strides;
 *   - then, in item order, each undecided item tries the rules that may
 *     start from its op, in table order; the first that matches forms its
 *     group (or, add_beta, puts it into an earlier GEMM's group); none: alone.
 * A rule records the decision on the items (leader, rule, a GEMM's
 * epilogue, an add's addend); the lower pass only reads it. */
#include <stdio.h>
#include <string.h>

#include "gen_internal.h"

static int decided(const gen_ctx *c, int i) { return c->items[i].leader >= 0; }

static void lead(gen_ctx *c, int i, int rule) {
  c->items[i].leader = i;
  c->items[i].rule = rule;
}

/* Item j joins the group `leader` leads; the group is now `rule`'s. */
static int join(gen_ctx *c, int j, int leader, int rule) {
  if (decided(c, j))
    return lt_fail(c->err, "gen: %s: rule %s takes item %d (%s), already in item %d's group",
                   c->p->name, gen_rule_name(rule), j, ir_op_name(c->items[j].op->kind),
                   c->items[j].leader);
  c->items[j].leader = leader;
  c->items[j].rule = c->items[leader].rule = rule;
  return 1;
}

static int is_gemm(int kind) {
  return kind == IR_OP_LINEAR || kind == IR_OP_LINEAR_BWD_X || kind == IR_OP_LINEAR_BWD_W;
}

/* ---------------------------------------------------------------------- */
/* views: q, k, v as windows of the fused qkv, dq, dk, dv of dqkv */

static int reads_strided(int kind) {
  return kind == IR_OP_ATTENTION || kind == IR_OP_ATTENTION_BWD || kind == IR_OP_ROPE;
}

static int writes_strided(int kind) {
  return kind == IR_OP_ATTENTION_BWD || kind == IR_OP_ROPE_BWD;
}

static int all_readers_strided(const gen_ctx *c, int v) {
  if (c->keep[v]) return 0;
  for (int i = 0; i < c->n_items; i++) {
    const ir_op *op = c->items[i].op;
    for (int k = 0; k < op->n_in; k++)
      if (op->in[k] == v && !reads_strided(op->kind)) return 0;
  }
  return 1;
}

static int writer_kind(const gen_ctx *c, int v) {
  for (int i = 0; i < c->n_items; i++) {
    const ir_op *op = c->items[i].op;
    for (int k = 0; k < op->n_out; k++)
      if (op->out[k] == v) return op->kind;
  }
  return -1;
}

static void make_view(gen_ctx *c, int v, int base, int64_t off) {
  gen_buffer *b = &c->p->bufs[v];
  b->role = GEN_BUF_VIEW;
  b->base = base;
  b->off = off;
  b->ld = gen_buffer_ld(&c->p->bufs[base]);
}

static int rule_split_view(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  for (int k = 0; k < op->n_out; k++)
    if (!all_readers_strided(c, op->out[k])) return 0;
  int64_t off = 0;
  for (int k = 0; k < op->n_out; k++) {
    make_view(c, op->out[k], op->in[0], off);
    off += c->g->values[op->out[k]].cols;
  }
  lead(c, i, GEN_RULE_VIEW);
  return 1;
}

static int rule_concat_view(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  for (int k = 0; k < op->n_in; k++)
    if (op->in[k] < 0 || !writes_strided(writer_kind(c, op->in[k])) ||
        c->readers[op->in[k]] != 1 || c->keep[op->in[k]])
      return 0;
  int64_t off = 0;
  for (int k = 0; k < op->n_in; k++) {
    make_view(c, op->in[k], op->out[0], off);
    off += op->sizes[k];
  }
  lead(c, i, GEN_RULE_VIEW);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* GEMM epilogues */

/* The item after `i` (in order) that reads v as input k, or -1. */
static int later_reader(const gen_ctx *c, int i, int v, ir_opkind kind, int k) {
  int j = gen_sole_reader(c, v);
  if (j <= i || decided(c, j)) return -1;
  const ir_op *op = c->items[j].op;
  return op->kind == kind && op->in[k] == v ? j : -1;
}

/* Forward readers of v other than item `except` (backward reads are saves). */
static int forward_readers(const gen_ctx *c, int v, int except) {
  int n = 0;
  for (int i = 0; i < c->n_items; i++) {
    if (i == except || c->items[i].backward) continue;
    const ir_op *op = c->items[i].op;
    for (int k = 0; k < op->n_in; k++) n += op->in[k] == v;
  }
  return n;
}

static int epilogue_off(const gen_ctx *c, int epi) { return (c->cfg->no_epilogues >> epi) & 1; }

/* gelu(linear(x)) with the linear's output read by nothing else forward:
 * the GEMM applies it; backward's gelu_bwd reads the pre-activation as aux. */
static int rule_gelu_epilogue(gen_ctx *c, int i) {
  int y = c->items[i].op->out[0], j = -1;
  for (int t = i + 1; t < c->n_items && j < 0; t++) {
    const ir_op *op = c->items[t].op;
    if (!c->items[t].backward && op->kind == IR_OP_GELU && op->in[0] == y) j = t;
  }
  if (j < 0 || c->keep[y] || forward_readers(c, y, j) != 0) return 0;
  int has_bias = c->items[i].epilogue == GEN_EPI_BIAS;
  int saved = c->readers[y] > 1; /* gelu_bwd reads the pre-activation */
  int epi = saved ? (has_bias ? GEN_EPI_GELU_AUX_BIAS : GEN_EPI_GELU_AUX)
                  : (has_bias ? GEN_EPI_GELU_BIAS : GEN_EPI_GELU);
  if (epilogue_off(c, epi)) return 0;
  /* cuBLASLt: the aux (GELU input) leading dimension must be divisible by 8,
   * and the CUDA backend gives it D's (the GELU output's), as DGELU does */
  int64_t aux_ld = gen_ref_of(c, y).ld;
  if (saved && (aux_ld % 8 != 0 || aux_ld != gen_ref_of(c, c->items[j].op->out[0]).ld)) return 0;
  c->items[i].epilogue = epi;
  lead(c, i, GEN_RULE_GELU_EPILOGUE);
  return join(c, j, i, GEN_RULE_GELU_EPILOGUE);
}

/* dx of the projection after a GELU, times gelu'(aux) in the epilogue. */
static int rule_dgelu_epilogue(gen_ctx *c, int i) {
  int j = later_reader(c, i, c->items[i].op->out[0], IR_OP_GELU_BWD, 0);
  if (j < 0 || epilogue_off(c, GEN_EPI_DGELU)) return 0;
  const ir_op *gb = c->items[j].op;
  /* cuBLASLt: the aux leading dimension (D's here) must be divisible by 8 */
  int64_t ld = gen_ref_of(c, gb->out[0]).ld;
  if (ld % 8 != 0 || gen_ref_of(c, gb->in[1]).ld != ld) return 0;
  c->items[i].epilogue = GEN_EPI_DGELU;
  lead(c, i, GEN_RULE_DGELU_EPILOGUE);
  return join(c, j, i, GEN_RULE_DGELU_EPILOGUE);
}

/* The bias gradient of the same dy as a BGRAD epilogue of the dW GEMM: it
 * overwrites, so only when one micro-batch makes the whole gradient. */
static int rule_bgrad_epilogue(gen_ctx *c, int i) {
  if (c->cfg->grad_accum > 1 || epilogue_off(c, GEN_EPI_BGRAD)) return 0;
  const ir_op *op = c->items[i].op;
  for (int j = i + 1; j < c->n_items; j++) {
    const ir_op *b = c->items[j].op;
    if (b->kind == IR_OP_LINEAR_BWD_B && b->in[0] == op->in[0] && !decided(c, j)) {
      c->items[i].epilogue = GEN_EPI_BGRAD;
      lead(c, i, GEN_RULE_BGRAD_EPILOGUE);
      return join(c, j, i, GEN_RULE_BGRAD_EPILOGUE);
    }
  }
  return 0;
}

/* add(a, b) where b comes straight from a GEMM that nothing else reads:
 * the GEMM adds a itself (beta = 1, C = a) and writes the sum. Residual
 * adds and gradient sums of branches cost no kernel. */
static int rule_add_beta(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  for (int side = 0; side < 2; side++) {
    int a = op->in[side], b = op->in[1 - side];
    if (gen_sole_reader(c, b) != i || c->p->bufs[b].role == GEN_BUF_VIEW) continue;
    int s = c->written_by[b];
    if (s < 0 || !is_gemm(c->items[s].op->kind)) continue;
    /* a dx or forward GEMM with no epilogue but a bias, no addend yet, writing b */
    const gen_item *gm = &c->items[s];
    if (gm->op->kind == IR_OP_LINEAR_BWD_W || gm->rule != GEN_RULE_ALONE || gm->op->out[0] != b)
      continue;
    /* a must be ready when the GEMM runs: written by an earlier group, or
     * from outside (-1 also means "not decided yet", e.g. earlier in this run) */
    int kind = c->g->values[a].kind, wa = c->written_by[a];
    if (wa >= 0 ? wa >= s : kind != IR_V_INPUT && kind != IR_V_PARAM) continue;
    if (c->g->values[a].cols != c->g->values[b].cols) continue;
    c->items[i].addend = side;
    int rc = join(c, i, s, GEN_RULE_ADD_BETA);
    c->written_by[op->out[0]] = s;
    return rc;
  }
  return 0;
}

/* ---------------------------------------------------------------------- */
/* template kernels that take in a neighbour */

/* add(a, b) -> s whose next forward reader is a layernorm or rmsnorm of s:
 * one kernel for both (when the add could not go into a GEMM's beta). */
static int rule_add_norm(gen_ctx *c, int i) {
  const ir_op *add = c->items[i].op;
  int s = add->out[0];
  if (c->items[i].backward || c->p->bufs[s].role == GEN_BUF_VIEW) return 0;
  for (int k = 0; k < 2; k++)
    if (c->p->bufs[add->in[k]].role == GEN_BUF_VIEW) return 0;
  for (int j = i + 1; j < c->n_items && !c->items[j].backward; j++) {
    const ir_op *op = c->items[j].op;
    int reads = 0;
    for (int k = 0; k < op->n_in; k++) reads |= op->in[k] == s;
    if (!reads) continue;
    if (decided(c, j) || op->in[0] != s ||
        (op->kind != IR_OP_LAYERNORM && op->kind != IR_OP_RMSNORM))
      return 0;
    lead(c, i, GEN_RULE_ADD_NORM);
    return join(c, j, i, GEN_RULE_ADD_NORM);
  }
  return 0;
}

/* dx = norm_backward_x(dy), then add(dx, dres): the norm kernel adds dres. */
static int rule_norm_dx_add(gen_ctx *c, int i) {
  int j = gen_sole_reader(c, c->items[i].op->out[0]);
  if (j <= i || decided(c, j) || c->items[j].op->kind != IR_OP_ADD) return 0;
  lead(c, i, GEN_RULE_NORM_DX_ADD);
  return join(c, j, i, GEN_RULE_NORM_DX_ADD);
}

/* embedding -> tok, position_embedding -> pos, add(tok, pos): one kernel. */
static int rule_embed_pos(gen_ctx *c, int i) {
  int tok = c->items[i].op->out[0];
  int j = gen_sole_reader(c, tok);
  if (j <= i || c->items[j].op->kind != IR_OP_ADD || decided(c, j)) return 0;
  const ir_op *add = c->items[j].op;
  int other = add->in[0] == tok ? add->in[1] : add->in[0];
  for (int p = i + 1; p < j; p++) {
    const ir_op *pe = c->items[p].op;
    if (pe->kind == IR_OP_POS_EMBEDDING && pe->out[0] == other &&
        gen_sole_reader(c, other) == j && !decided(c, p)) {
      lead(c, i, GEN_RULE_EMBED_POS);
      if (join(c, p, i, GEN_RULE_EMBED_POS) < 0) return -1;
      return join(c, j, i, GEN_RULE_EMBED_POS);
    }
  }
  return 0;
}

/* cross_entropy + cross_entropy_bwd of the same logits: one chunked pass. */
static int rule_ce_backward(gen_ctx *c, int i) {
  int logits = c->items[i].op->in[0], matched = 0;
  for (int j = i + 1; j < c->n_items; j++) {
    const ir_op *b = c->items[j].op;
    if (b->kind == IR_OP_CROSS_ENTROPY_BWD && b->in[0] == logits && !decided(c, j)) {
      if (!matched) lead(c, i, GEN_RULE_CE_BACKWARD);
      if (join(c, j, i, GEN_RULE_CE_BACKWARD) < 0) return -1;
      matched = 1;
    }
  }
  return matched;
}

/* ---------------------------------------------------------------------- */
/* runs of element-wise ops */

static int64_t elements(const gen_ctx *c, int v) {
  return (int64_t)gen_value_rows(c, v) * c->g->values[v].cols;
}

/* The undecided element-wise items from `first` on, of one phase and
 * shape, up to GEN_MAX_RUN; an add a GEMM can take goes there instead. */
static int rule_elementwise(gen_ctx *c, int first) {
  const ir_op *op0 = c->items[first].op;
  int64_t n0 = elements(c, op0->out[0]), cols0 = c->g->values[op0->out[0]].cols;
  lead(c, first, GEN_RULE_ELEMENTWISE);
  int n = 1;
  for (int i = first + 1; i < c->n_items && n < GEN_MAX_RUN; i++) {
    if (decided(c, i)) continue;
    const ir_op *op = c->items[i].op;
    if (!gen_is_elementwise(op->kind)) break;
    /* forward and backward are separate phases (all blocks' forwards run
     * before any backward): a run never spans both */
    if (c->items[i].backward != c->items[first].backward) break;
    if (elements(c, op->out[0]) != n0 || c->g->values[op->out[0]].cols != cols0) break;
    if (op->kind == IR_OP_ADD) {
      int rc = rule_add_beta(c, i);
      if (rc < 0) return -1;
      if (rc) continue;
    }
    if (join(c, i, first, GEN_RULE_ELEMENTWISE) < 0) return -1;
    n++;
  }
  return 1;
}

/* ---------------------------------------------------------------------- */
/* the rule table and the pass */

static int leads_gelu(int k) { return k == IR_OP_LINEAR; }
static int leads_dgelu(int k) { return k == IR_OP_LINEAR_BWD_X; }
static int leads_bgrad(int k) { return k == IR_OP_LINEAR_BWD_W; }
static int leads_add(int k) { return k == IR_OP_ADD; }
static int leads_norm_dx(int k) {
  return k == IR_OP_LAYERNORM_BWD_X || k == IR_OP_RMSNORM_BWD_X;
}
static int leads_embed(int k) { return k == IR_OP_EMBEDDING; }
static int leads_ce(int k) { return k == IR_OP_CROSS_ENTROPY; }
static int leads_run(int k) { return gen_is_elementwise(k); }

typedef struct {
  int rule;                           /* enum gen_rule */
  const char *name;
  int (*starts)(int kind);            /* the ops it may be tried on */
  int (*match)(gen_ctx *c, int item); /* 1: took the item, 0: not, -1: error */
} fuse_rule;

/* Tried in this order; the first match decides. add_beta before add_norm
 * before a run: a GEMM's beta costs nothing, a fused norm one pass. */
static const fuse_rule rules[] = {
    {GEN_RULE_GELU_EPILOGUE, "gelu_epilogue", leads_gelu, rule_gelu_epilogue},
    {GEN_RULE_DGELU_EPILOGUE, "dgelu_epilogue", leads_dgelu, rule_dgelu_epilogue},
    {GEN_RULE_BGRAD_EPILOGUE, "bgrad_epilogue", leads_bgrad, rule_bgrad_epilogue},
    {GEN_RULE_ADD_BETA, "add_beta", leads_add, rule_add_beta},
    {GEN_RULE_ADD_NORM, "add_norm", leads_add, rule_add_norm},
    {GEN_RULE_NORM_DX_ADD, "norm_dx_add", leads_norm_dx, rule_norm_dx_add},
    {GEN_RULE_EMBED_POS, "embed_pos", leads_embed, rule_embed_pos},
    {GEN_RULE_CE_BACKWARD, "ce_backward", leads_ce, rule_ce_backward},
    {GEN_RULE_ELEMENTWISE, "elementwise", leads_run, rule_elementwise},
};

const char *gen_rule_name(int rule) {
  if (rule == GEN_RULE_NONE) return "undecided";
  if (rule == GEN_RULE_ALONE) return "alone";
  if (rule == GEN_RULE_VIEW) return "view";
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++)
    if (rules[r].rule == rule) return rules[r].name;
  return "?";
}

/* A group's values are ready once its leader's steps ran. */
static void record_writes(gen_ctx *c, int from) {
  int leader = c->items[from].leader;
  for (int j = from; j < c->n_items; j++) {
    if (c->items[j].leader != leader) continue;
    const ir_op *op = c->items[j].op;
    for (int k = 0; k < op->n_out; k++)
      if (op->out[k] >= 0) c->written_by[op->out[k]] = leader;
  }
}

static int decide(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  if (op->kind == IR_OP_LINEAR && op->n_in > 2) c->items[i].epilogue = GEN_EPI_BIAS;
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    if (!rules[r].starts(op->kind)) continue;
    int rc = rules[r].match(c, i);
    if (rc < 0) return -1;
    if (rc) return 0;
  }
  lead(c, i, GEN_RULE_ALONE);
  return 0;
}

int gen_pass_fuse(gen_ctx *c) {
  for (int i = 0; i < c->n_items; i++) {
    int kind = c->items[i].op->kind;
    if (kind == IR_OP_SPLIT) rule_split_view(c, i);
    else if (kind == IR_OP_CONCAT) rule_concat_view(c, i);
  }
  for (int i = 0; i < c->n_items; i++) {
    if (decided(c, i)) continue;
    if (decide(c, i)) return -1;
    record_writes(c, i);
  }
  return 0;
}

int gen_member(const gen_ctx *c, int leader, int rule, int kind) {
  for (int j = leader + 1; j < c->n_items; j++)
    if (c->items[j].leader == leader && c->items[j].rule == rule &&
        (kind < 0 || (int)c->items[j].op->kind == kind))
      return j;
  return -1;
}
