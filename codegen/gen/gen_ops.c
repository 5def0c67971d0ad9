/* gen_ops.c: the ops that map onto a kernel template (templates/):
 * norms, attention, rope, embeddings, cross-entropy, copies and the bias
 * gradient. Each picks the template, its constants and its launch, taking
 * in what the fuse pass put in its group (the residual gradient into a
 * norm's dX, the position embedding into the token embedding,
 * cross-entropy's backward into its forward). The launch facts come from
 * templates/launch.cuh, which the templates' defaults use too; the tunables
 * from templates/tuning.lua through gen_tune. Each value is passed as the
 * template argument and used for the launch, so the two cannot disagree. */
#include <stdio.h>
#include <string.h>

#include "gen_internal.h"
#include "ir_rope.h"
#include "launch.cuh" /* the launch facts the templates use (templates/) */

static int elem_bytes(const gen_ctx *c) { return gen_dtype_bytes(c->cfg->dtype); }
static const char *T_(void) { return "lisa_t"; }
static int64_t cols_of(const gen_ctx *c, int v) { return c->g->values[v].cols; }
static int N_of(const gen_ctx *c) { return c->cfg->B * c->cfg->T; }
static unsigned ceil_div(int64_t a, int64_t b) { return (unsigned)((a + b - 1) / b); }

/* A norm's rows and width: a per-head RMSNorm is N * heads rows of one head
 * (the values are contiguous), written into a body as "N * heads". */
static int64_t norm_cols(const gen_ctx *c, const ir_op *op) {
  return cols_of(c, op->in[0]) / ir_norm_groups(op);
}
static int64_t norm_N(const gen_ctx *c, const ir_op *op) {
  return (int64_t)N_of(c) * ir_norm_groups(op);
}
static const char *norm_N_expr(const ir_op *op, char *buf, size_t size) {
  if (ir_norm_groups(op) == 1) return "N";
  snprintf(buf, size, "N * %d", ir_norm_groups(op));
  return buf;
}
/* ", w_offset" for an RMSNorm whose weight is offset (Gemma's 1 + w), else "" */
static const char *norm_offset_arg(const ir_op *op, char *buf, size_t size) {
  if (op->w_offset == 0.0f) return "";
  char num[40];
  snprintf(buf, size, ", %s", gen_float(num, op->w_offset));
  return buf;
}

/* The norm, or with `add` (s = a + b feeding it) the residual add fused in:
 * one pass writes the stream s, the normalised y and its statistics. */
static void emit_norm_fwd(gen_ctx *c, const ir_op *op, int rms, const ir_op *add) {
  int64_t C = norm_cols(c, op);
  int threads = lisa_norm_threads(elem_bytes(c), C), rows = lisa_norm_rows(threads);
  char nexpr[32], offset[48];
  const char *fn = add ? (rms ? "add_rmsnorm_forward" : "add_layernorm_forward")
                       : (rms ? "rmsnorm_forward" : "layernorm_forward");
  char label[192], body[256];
  if (add)
    snprintf(label, sizeof label, "%s = %s + %s; %s %s -> %s", gen_vname(c, add->out[0]),
             gen_vname(c, add->in[0]), gen_vname(c, add->in[1]), rms ? "rmsnorm" : "layernorm",
             gen_vname(c, op->in[0]), gen_vname(c, op->out[0]));
  else
    snprintf(label, sizeof label, "%s %s -> %s", rms ? "rmsnorm" : "layernorm",
             gen_vname(c, op->in[0]), gen_vname(c, op->out[0]));
  /* the template's parameter names: (s,) y, (mean,) rstd, x or a, b, w(, bias or b) */
  const char *bias = add ? "bias" : "b";
  gen_kb kb;
  gen_kb_begin(&kb, c, fn, label);
  if (add) gen_kb_buf(&kb, "s", gen_ref_of(c, add->out[0]), -1, 1);
  gen_kb_buf(&kb, "y", gen_ref_of(c, op->out[0]), -1, 1);
  if (!rms) gen_kb_buf(&kb, "mean", gen_ref_of(c, op->out[1]), GEN_F32, 1);
  gen_kb_buf(&kb, "rstd", gen_ref_of(c, op->out[rms ? 1 : 2]), GEN_F32, 1);
  if (add) {
    gen_kb_buf(&kb, "a", gen_ref_of(c, add->in[0]), -1, 0);
    gen_kb_buf(&kb, "b", gen_ref_of(c, add->in[1]), -1, 0);
  } else {
    gen_kb_buf(&kb, "x", gen_ref_of(c, op->in[0]), -1, 0);
  }
  gen_kb_buf(&kb, "w", gen_ref_of(c, op->in[1]), -1, 0);
  if (op->n_in > 2) gen_kb_buf(&kb, bias, gen_ref_of(c, op->in[2]), -1, 0);
  gen_kb_rows(&kb);
  gen_kb_launch(&kb, ceil_div(norm_N(c, op), rows), 1, 1, (unsigned)(threads * rows), 1, 0);
  char eps[40];
  snprintf(body, sizeof body, "lisa::%s<%s, %lld, %d, %d>(%s%s, %s, w%s%s, %s, %s%s);", fn, T_(),
           (long long)C, threads, rows, add ? "s, " : "", rms ? "y, rstd" : "y, mean, rstd",
           add ? "a, b" : "x", op->n_in > 2 ? ", " : "", op->n_in > 2 ? bias : "",
           norm_N_expr(op, nexpr, sizeof nexpr), gen_float(eps, op->eps),
           norm_offset_arg(op, offset, sizeof offset));
  gen_kb_end(&kb, body);
}

/* A norm backward's inputs, named as the templates do: dy, x, (w,) (mean,)
 * rstd; x_bwd has w, w_partial not. */
static void norm_inputs(gen_ctx *c, gen_kb *kb, const ir_op *op, int rms) {
  static const char *const x_ln[] = {"dy", "x", "w", "mean", "rstd"},
                           *const x_rms[] = {"dy", "x", "w", "rstd"},
                           *const w_ln[] = {"dy", "x", "mean", "rstd"},
                           *const w_rms[] = {"dy", "x", "rstd"};
  int bwd_x = op->kind == IR_OP_LAYERNORM_BWD_X || op->kind == IR_OP_RMSNORM_BWD_X;
  const char *const *names = bwd_x ? (rms ? x_rms : x_ln) : (rms ? w_rms : w_ln);
  int n = (bwd_x ? 4 : 3) + !rms;
  for (int k = 0; k < op->n_in; k++)
    gen_kb_buf(kb, k < n ? names[k] : "extra", gen_ref_of(c, op->in[k]),
               c->p->bufs[op->in[k]].dtype, 0);
}

/* dx = norm_backward_x(dy) [+ dres]: a following add of dx and the residual
 * branch's gradient is done by the norm kernel itself. */
static void emit_norm_bwd_x(gen_ctx *c, int i, int rms) {
  const ir_op *op = c->items[i].op;
  int64_t C = norm_cols(c, op);
  char nexpr[32], offset[48];
  int threads = lisa_norm_bwd_x_threads(elem_bytes(c), C),
      rows = lisa_norm_bwd_x_rows(elem_bytes(c), C);
  int out = op->out[0], dres = -1;
  int j = gen_member(c, i, GEN_RULE_NORM_DX_ADD, IR_OP_ADD);
  if (j >= 0) {
    const ir_op *add = c->items[j].op;
    dres = add->in[0] == out ? add->in[1] : add->in[0];
    out = add->out[0];
  }
  char label[192], body[256];
  snprintf(label, sizeof label, "%s_bwd_x %s -> %s%s%s", rms ? "rmsnorm" : "layernorm",
           gen_vname(c, op->in[0]), gen_vname(c, out), dres >= 0 ? " (+ " : "",
           dres >= 0 ? gen_vname(c, dres) : "");
  if (dres >= 0) strncat(label, ")", sizeof label - strlen(label) - 1);
  gen_kb kb;
  gen_kb_begin(&kb, c, rms ? "rmsnorm_backward_x" : "layernorm_backward_x", label);
  gen_kb_buf(&kb, "dx", gen_ref_of(c, out), -1, 1);
  norm_inputs(c, &kb, op, rms);
  gen_kb_buf(&kb, "dres", dres >= 0 ? gen_ref_of(c, dres) : (gen_ref){-1, 0, 0}, -1, 0);
  gen_kb_rows(&kb);
  gen_kb_launch(&kb, ceil_div(norm_N(c, op), rows), 1, 1, (unsigned)(threads * rows), 1, 0);
  snprintf(body, sizeof body, "lisa::%s<%s, %lld, %d, %d>(dx, dy, x, %s, dres, %s%s);",
           rms ? "rmsnorm_backward_x" : "layernorm_backward_x", T_(), (long long)C, threads,
           rows, rms ? "w, rstd" : "w, mean, rstd", norm_N_expr(op, nexpr, sizeof nexpr),
           norm_offset_arg(op, offset, sizeof offset));
  gen_kb_end(&kb, body);
}

/* The partial-sums launch of a norm's dW over C columns: bx by threads a
 * block, gx blocks across, `parts` down (its rows of partial sums). */
typedef struct {
  int bx, by;
  unsigned gx;
  int64_t parts;
} norm_w_launch;

static norm_w_launch norm_w_launch_of(const gen_ctx *c, int64_t C, int64_t N) {
  const int eb = elem_bytes(c);
  norm_w_launch l;
  l.bx = lisa_norm_wb_bx(eb, C);
  l.by = lisa_norm_wb_by(eb, C);
  l.gx = ceil_div(C, (int64_t)l.bx * lisa_vec_width(eb, C));
  l.parts = lisa_norm_wb_parts(N, l.by, l.gx, c->cfg->sms);
  return l;
}

static int norm_w_workspace(gen_ctx *c, const ir_op *op, int rms) {
  int64_t C = norm_cols(c, op), parts = norm_w_launch_of(c, C, norm_N(c, op)).parts;
  char name[96];
  snprintf(name, sizeof name, "%s.partial", gen_vname(c, op->out[0]));
  return gen_add_workspace(c, name, GEN_F32, rms ? parts : 2 * parts, C);
}

/* dw (and db) += column sums, in two deterministic stages. */
static int emit_norm_bwd_w(gen_ctx *c, int i, int rms) {
  const ir_op *op = c->items[i].op;
  int64_t C = norm_cols(c, op);
  char nexpr[32];
  norm_w_launch l = norm_w_launch_of(c, C, norm_N(c, op));
  int bx = l.bx, by = l.by, ws = c->items[i].workspace;
  unsigned gx = l.gx;
  int64_t parts = l.parts;
  char label[192], body[256];
  snprintf(label, sizeof label, "%s dW partial sums of %s", rms ? "rmsnorm" : "layernorm",
           gen_vname(c, op->in[0]));
  gen_kb kb;
  gen_kb_begin(&kb, c, rms ? "rmsnorm_backward_w_partial" : "layernorm_backward_wb_partial",
               label);
  gen_kb_buf(&kb, "partial", (gen_ref){ws, 0, C}, GEN_F32, 1);
  norm_inputs(c, &kb, op, rms);
  gen_kb_rows(&kb);
  gen_kb_launch(&kb, gx, (unsigned)parts, 1, (unsigned)bx, (unsigned)by, 0);
  snprintf(body, sizeof body, "lisa::%s<%s, %lld, %d, %d>(partial, dy, x, %s, %s);",
           rms ? "rmsnorm_backward_w_partial" : "layernorm_backward_wb_partial", T_(),
           (long long)C, bx, by, rms ? "rstd" : "mean, rstd", norm_N_expr(op, nexpr, sizeof nexpr));
  gen_kb_end(&kb, body);

  snprintf(label, sizeof label, "%s dW += partial sums -> %s%s%s", rms ? "rmsnorm" : "layernorm",
           gen_vname(c, op->out[0]), rms ? "" : ", ", rms ? "" : gen_vname(c, op->out[1]));
  gen_kb_begin(&kb, c, "norm_backward_w_finish", label);
  /* dw, db in the gradients' dtype (the template deduces it) */
  const int gd = c->cfg->grad_dtype;
  gen_kb_buf(&kb, "dw", gen_ref_of(c, op->out[0]), gd, 1);
  gen_kb_buf(&kb, "db", rms ? (gen_ref){-1, 0, 0} : gen_ref_of(c, op->out[1]), gd, 1);
  gen_kb_buf(&kb, "partial", (gen_ref){ws, 0, C}, GEN_F32, 0);
  const int fin = gen_tune(c, "norm_backward_w_finish", "THREADS");
  gen_kb_launch(&kb, ceil_div(C, fin), 1, 1, (unsigned)fin, 1, 0);
  snprintf(body, sizeof body, "lisa::norm_backward_w_finish<%lld, %d>(dw, db, partial, %lld);",
           (long long)C, fin, (long long)parts);
  gen_kb_end(&kb, body);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* attention: q, k, v and their gradients may be strided views */

typedef struct {
  int hd, heads, kv_heads, causal;
  float scale, softcap; /* 0, 0: 1/sqrt(hd), no soft cap */
  int window;           /* 0: none */
  int global_every;     /* > 0: the window depends on the layer (kernel arg) */
} attn_shape;

static attn_shape attn_of(const gen_ctx *c, const ir_op *op, int q) {
  attn_shape a = {(int)(cols_of(c, q) / op->heads), op->heads, op->kv_heads ? op->kv_heads : op->heads,
                  op->causal, (float)op->factor, op->softcap, op->window,
                  op->window ? op->global_every : 0};
  return a;
}

/* ", scale, softcap, window" for the SIMT templates when any is set, else ""
 * (the templates' defaults: 1/sqrt(HD), no cap, no window). */
static const char *attn_extra_args(const attn_shape *a, char *buf, size_t size) {
  if (a->scale == 0.0f && a->softcap == 0.0f && a->window == 0) return "";
  char s[40], cap[40];
  if (a->global_every) /* the window of the layer the launch is for */
    snprintf(buf, size, ", %s, %s, (layer + 1) %% %d ? %d : 0", gen_float(s, a->scale),
             gen_float(cap, a->softcap), a->global_every, a->window);
  else
    snprintf(buf, size, ", %s, %s, %d", gen_float(s, a->scale), gen_float(cap, a->softcap),
             a->window);
  return buf;
}

/* The layer index as a kernel argument, where the window depends on it. */
static void attn_layer_arg(gen_kb *kb, const attn_shape *a) {
  if (a->global_every) gen_kb_scalar(kb, "int", "layer", GEN_ARG_LAYER);
}

/* attention_mma.cuh stages its tiles by row with 16-byte loads and reads
 * and writes bf16 pairs as 32-bit words: each of the n refs (inputs and
 * outputs) must start every row at a multiple of 8 bf16. */
static int rows_aligned(const gen_ref *refs, int n) {
  for (int i = 0; i < n; i++)
    if (refs[i].off % 8 || refs[i].ld % 8) return 0;
  return 1;
}

/* templates/attention_mma.cuh where it applies and the tuning takes it:
 * bf16, HD a multiple of 16 and at most 128 (registers). Its tile: the
 * tuned one, halved until the tiles fit in static shared memory and the
 * registers do (launch.cuh), where every one of refs is rows_aligned; 0:
 * attention.cuh's SIMT kernel. */
static int attention_mma_tile(gen_ctx *c, const attn_shape *a, int kernel, const char *name,
                              const char *param, const gen_ref *refs, int n_refs) {
  if (c->cfg->dtype != GEN_BF16 || c->cfg->no_mma || a->hd % 16 || a->hd > 128) return 0;
  if (!rows_aligned(refs, n_refs)) return 0;
  if (a->scale != 0.0f || a->softcap != 0.0f || a->window) return 0; /* SIMT has these */
  if (!gen_tune(c, name, "USE")) return 0;
  const int most = lisa_attention_mma_most_tile(kernel, a->hd);
  for (int tile = gen_tune(c, name, param); tile >= 16; tile /= 2)
    if (tile <= most && lisa_attention_mma_smem(kernel, a->hd, tile) <= LISA_MAX_STATIC_SMEM)
      return tile;
  return 0;
}

/* An attention_mma.cuh kernel's launch: 16*WARPS rows (queries, or keys
 * for dkdv) a block, grid_y heads, the batch; WARPS, for its template. */
static int attention_mma_launch(gen_ctx *c, gen_kb *kb, const char *name, int grid_y) {
  const int warps = gen_tune(c, name, "WARPS");
  gen_kb_launch(kb, ceil_div(c->cfg->T, 16 * warps), (unsigned)grid_y, (unsigned)c->cfg->B,
                (unsigned)(32 * warps), 1, 0);
  return warps;
}

/* Decoding: the new rows' keys and values into the cache (kv_cache_append),
 * then each row over the cache (attention_decode, templates/attention_decode.cuh). */
static void emit_attention_decode(gen_ctx *c, const ir_op *op, int cache) {
  attn_shape a = attn_of(c, op, op->in[0]);
  const int kvw = a.kv_heads * a.hd;
  gen_ref cref = {cache, 0, 2 * kvw};
  char label[192], body[384], extra[96];
  snprintf(label, sizeof label, "kv cache += %s, %s at pos0", gen_vname(c, op->in[1]),
           gen_vname(c, op->in[2]));
  gen_kb kb;
  gen_kb_begin(&kb, c, "kv_cache_append", label);
  gen_kb_buf(&kb, "cache", cref, -1, 1);
  gen_kb_buf(&kb, "k", gen_ref_of(c, op->in[1]), -1, 0);
  gen_kb_buf(&kb, "v", gen_ref_of(c, op->in[2]), -1, 0);
  gen_kb_rows(&kb);
  gen_kb_scalar(&kb, "int", "pos0", GEN_ARG_POS0);
  int threads = gen_tune(c, "kv_cache_append", "THREADS");
  gen_kb_launch(&kb, ceil_div((int64_t)N_of(c) * 2 * kvw, threads), 1, 1, (unsigned)threads, 1, 0);
  snprintf(body, sizeof body, "lisa::kv_cache_append<%s, %d, %d>(cache, @k, @v, N, pos0);", T_(),
           kvw, threads);
  gen_kb_end(&kb, body);

  snprintf(label, sizeof label, "attention %s over the kv cache -> %s", gen_vname(c, op->in[0]),
           gen_vname(c, op->out[0]));
  gen_kb_begin(&kb, c, "attention_decode", label);
  gen_kb_buf(&kb, "y", gen_ref_of(c, op->out[0]), -1, 1);
  gen_kb_buf(&kb, "q", gen_ref_of(c, op->in[0]), -1, 0);
  gen_kb_buf(&kb, "cache", cref, -1, 0);
  gen_kb_rows(&kb);
  gen_kb_scalar(&kb, "int", "pos0", GEN_ARG_POS0);
  attn_layer_arg(&kb, &a);
  threads = gen_tune(c, "attention_decode", "THREADS");
  gen_kb_launch(&kb, (unsigned)N_of(c), (unsigned)a.heads, 1, (unsigned)threads, 1, 0);
  snprintf(body, sizeof body,
           "lisa::attention_decode<%s, %d, %d, %d, %d>(@y, @q, cache, N, pos0%s);", T_(), a.hd,
           a.heads, a.kv_heads, threads, attn_extra_args(&a, extra, sizeof extra));
  gen_kb_end(&kb, body);
}

static void emit_attention_fwd(gen_ctx *c, const ir_op *op) {
  attn_shape a = attn_of(c, op, op->in[0]);
  gen_ref y = gen_ref_of(c, op->out[0]), q = gen_ref_of(c, op->in[0]),
          k = gen_ref_of(c, op->in[1]), v = gen_ref_of(c, op->in[2]);
  char label[192], body[384];
  snprintf(label, sizeof label, "attention %s, %s, %s -> %s, %s", gen_vname(c, op->in[0]),
           gen_vname(c, op->in[1]), gen_vname(c, op->in[2]), gen_vname(c, op->out[0]),
           gen_vname(c, op->out[1]));
  const gen_ref refs[] = {q, k, v, y};
  const int bk = attention_mma_tile(c, &a, LISA_ATT_MMA_FWD, "attention_forward_mma", "BK", refs, 4);
  gen_kb kb;
  gen_kb_begin(&kb, c, bk ? "attention_forward_mma" : "attention_forward", label);
  gen_kb_buf(&kb, "y", y, -1, 1);
  gen_kb_buf(&kb, "lse", gen_ref_of(c, op->out[1]), GEN_F32, 1);
  gen_kb_buf(&kb, "q", q, -1, 0);
  gen_kb_buf(&kb, "k", k, -1, 0);
  gen_kb_buf(&kb, "v", v, -1, 0);
  gen_kb_batch(&kb);
  attn_layer_arg(&kb, &a);
  if (bk) {
    const int warps = attention_mma_launch(c, &kb, "attention_forward_mma", a.heads);
    snprintf(body, sizeof body,
             "lisa::attention_forward_mma<%d, %d, %d, %d, %s, %d, %d>(@y, lse, @q, @k, @v, B);",
             a.hd, a.heads, a.kv_heads, c->cfg->T, a.causal ? "true" : "false", warps, bk);
    gen_kb_end(&kb, body);
    return;
  }
  /* BQ and THREADS tuned, BK launch.cuh's; TC stays at its default */
  const int bq = gen_tune(c, "attention_forward", "BQ"),
            threads = gen_tune(c, "attention_forward", "THREADS");
  gen_kb_launch(&kb, ceil_div(c->cfg->T, bq), (unsigned)a.heads, (unsigned)c->cfg->B,
                (unsigned)threads, 1, 0);
  char extra[96];
  snprintf(body, sizeof body,
           "lisa::attention_forward<%s, %d, %d, %d, %d, %s, %d, %d, %d>(@y, lse, @q, @k, @v, B%s);",
           T_(), a.hd, a.heads, a.kv_heads, c->cfg->T, a.causal ? "true" : "false", bq,
           lisa_attention_tile(LISA_ATTENTION_FWD_BK, a.hd), threads,
           attn_extra_args(&a, extra, sizeof extra));
  gen_kb_end(&kb, body);
}

/* attention_bwd's operands: in dy, q, k, v, y, lse; out dq, dk, dv. */
typedef struct {
  attn_shape a;
  gen_ref dy, q, k, v, y, lse, dq, dk, dv, dsum;
} attn_bwd;

/* dq, and dsum = rowsum(dy * y) per (row, head), which dk/dv need. */
static void emit_attention_dq(gen_ctx *c, const ir_op *op, const attn_bwd *t) {
  char label[192], body[512];
  snprintf(label, sizeof label, "attention_bwd dq: %s -> %s", gen_vname(c, op->in[0]),
           gen_vname(c, op->out[0]));
  const gen_ref refs[] = {t->q, t->k, t->v, t->dy, t->y, t->dq};
  const int bk =
      attention_mma_tile(c, &t->a, LISA_ATT_MMA_DQ, "attention_backward_dq_mma", "BK", refs, 6);
  gen_kb kb;
  gen_kb_begin(&kb, c, bk ? "attention_backward_dq_mma" : "attention_backward_dq", label);
  gen_kb_buf(&kb, "dq", t->dq, -1, 1);
  gen_kb_buf(&kb, "dsum", t->dsum, GEN_F32, 1);
  gen_kb_buf(&kb, "dy", t->dy, -1, 0);
  gen_kb_buf(&kb, "y", t->y, -1, 0);
  gen_kb_buf(&kb, "q", t->q, -1, 0);
  gen_kb_buf(&kb, "k", t->k, -1, 0);
  gen_kb_buf(&kb, "v", t->v, -1, 0);
  gen_kb_buf(&kb, "lse", t->lse, GEN_F32, 0);
  gen_kb_batch(&kb);
  attn_layer_arg(&kb, &t->a);
  if (bk) {
    const int warps = attention_mma_launch(c, &kb, "attention_backward_dq_mma", t->a.heads);
    snprintf(body, sizeof body,
             "lisa::attention_backward_dq_mma<%d, %d, %d, %d, %s, %d, %d>(@dq, dsum, @dy, @y, "
             "@q, @k, @v, lse, B);",
             t->a.hd, t->a.heads, t->a.kv_heads, c->cfg->T, t->a.causal ? "true" : "false", warps,
             bk);
    gen_kb_end(&kb, body);
    return;
  }
  /* BQ and THREADS tuned, BK launch.cuh's; TC stays at its default */
  const int bq = gen_tune(c, "attention_backward_dq", "BQ"),
            threads = gen_tune(c, "attention_backward_dq", "THREADS");
  gen_kb_launch(&kb, ceil_div(c->cfg->T, bq), (unsigned)t->a.heads, (unsigned)c->cfg->B,
                (unsigned)threads, 1, 0);
  char extra[96];
  snprintf(body, sizeof body,
           "lisa::attention_backward_dq<%s, %d, %d, %d, %d, %s, %d, %d, %d>(@dq, dsum, @dy, @y, "
           "@q, @k, @v, lse, B%s);",
           T_(), t->a.hd, t->a.heads, t->a.kv_heads, c->cfg->T, t->a.causal ? "true" : "false",
           bq, lisa_attention_tile(LISA_ATTENTION_DQ_BK, t->a.hd), threads,
           attn_extra_args(&t->a, extra, sizeof extra));
  gen_kb_end(&kb, body);
}

static void emit_attention_dkdv(gen_ctx *c, const ir_op *op, const attn_bwd *t) {
  char label[192], body[512];
  snprintf(label, sizeof label, "attention_bwd dk, dv -> %s, %s", gen_vname(c, op->out[1]),
           gen_vname(c, op->out[2]));
  const gen_ref refs[] = {t->q, t->k, t->v, t->dy, t->dk, t->dv};
  const int bq = attention_mma_tile(c, &t->a, LISA_ATT_MMA_DKDV, "attention_backward_dkdv_mma",
                                    "BQ", refs, 6);
  gen_kb kb;
  gen_kb_begin(&kb, c, bq ? "attention_backward_dkdv_mma" : "attention_backward_dkdv", label);
  gen_kb_buf(&kb, "dk", t->dk, -1, 1);
  gen_kb_buf(&kb, "dv", t->dv, -1, 1);
  gen_kb_buf(&kb, "dy", t->dy, -1, 0);
  gen_kb_buf(&kb, "q", t->q, -1, 0);
  gen_kb_buf(&kb, "k", t->k, -1, 0);
  gen_kb_buf(&kb, "v", t->v, -1, 0);
  gen_kb_buf(&kb, "lse", t->lse, GEN_F32, 0);
  gen_kb_buf(&kb, "dsum", t->dsum, GEN_F32, 0);
  gen_kb_batch(&kb);
  attn_layer_arg(&kb, &t->a);
  if (bq) {
    const int warps = attention_mma_launch(c, &kb, "attention_backward_dkdv_mma", t->a.kv_heads);
    snprintf(body, sizeof body,
             "lisa::attention_backward_dkdv_mma<%d, %d, %d, %d, %s, %d, %d>(@dk, @dv, @dy, "
             "@q, @k, @v, lse, dsum, B);",
             t->a.hd, t->a.heads, t->a.kv_heads, c->cfg->T, t->a.causal ? "true" : "false", warps,
             bq);
    gen_kb_end(&kb, body);
    return;
  }
  /* BKV and THREADS tuned, BQ launch.cuh's; TC stays at its default */
  const int threads = gen_tune(c, "attention_backward_dkdv", "THREADS"),
            bkv = lisa_attention_dkdv_bkv(gen_tune(c, "attention_backward_dkdv", "BKV"), threads,
                                          t->a.hd);
  gen_kb_launch(&kb, ceil_div(c->cfg->T, bkv), (unsigned)t->a.kv_heads, (unsigned)c->cfg->B,
                (unsigned)threads, 1, 0);
  char extra[96];
  snprintf(body, sizeof body,
           "lisa::attention_backward_dkdv<%s, %d, %d, %d, %d, %s, %d, %d, %d>(@dk, @dv, @dy, "
           "@q, @k, @v, lse, dsum, B%s);",
           T_(), t->a.hd, t->a.heads, t->a.kv_heads, c->cfg->T, t->a.causal ? "true" : "false",
           bkv, lisa_attention_tile(LISA_ATTENTION_DKDV_BQ, t->a.hd), threads,
           attn_extra_args(&t->a, extra, sizeof extra));
  gen_kb_end(&kb, body);
}

/* Backward recomputes the probabilities from q, k and lse: dq first (it
 * also writes dsum), then dk and dv. */
static int emit_attention_bwd(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  attn_bwd t = {attn_of(c, op, op->in[1]), gen_ref_of(c, op->in[0]), gen_ref_of(c, op->in[1]),
                gen_ref_of(c, op->in[2]), gen_ref_of(c, op->in[3]), gen_ref_of(c, op->in[4]),
                gen_ref_of(c, op->in[5]), gen_ref_of(c, op->out[0]), gen_ref_of(c, op->out[1]),
                gen_ref_of(c, op->out[2]), {-1, 0, 0}};
  t.dsum = (gen_ref){c->items[i].workspace, 0, t.a.heads};
  emit_attention_dq(c, op, &t);
  emit_attention_dkdv(c, op, &t);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* rope, embeddings, cross-entropy, copies, bias gradient */

/* A rope's frequencies as a table in the kernel's source (the floats
 * ir_rope_inv_freq computes for the CPU, printed to round-trip), named
 * <kernel>_inv_freq<suffix>; "nullptr" for an unscaled one unless `force`
 * (the template then computes the default itself). */
static const char *rope_table(gen_ctx *c, const char *kernel, const char *suffix, int rot,
                              double theta, const ir_rope_scaling *sc, int force, char *name,
                              size_t cap) {
  if (sc->kind == IR_ROPE_DEFAULT && !force) return "nullptr";
  float inv_freq[IR_ROPE_MAX_HALF];
  ir_rope_inv_freq(sc, theta, rot, c->cfg->decode ? c->cfg->ctx : c->cfg->T, inv_freq);
  snprintf(name, cap, "%s_inv_freq%s", kernel, suffix);
  sbuf *k = &c->p->kernels;
  sb_printf(k, "// %s RoPE's inv_freq (codegen/ir/ir_rope.c)\n", ir_rope_kind_name(sc->kind));
  sb_printf(k, "static __device__ const float %s[%d] = {", name, rot / 2);
  for (int i = 0; i < rot / 2; i++) {
    char lit[40];
    sb_printf(k, "%s%s", i ? (i % 6 ? ", " : ",\n    ") : "", gen_float(lit, inv_freq[i]));
  }
  sb_printf(k, "};\n");
  return name;
}

/* The call's theta, table and cos/sin scale: one rope, or (global_every)
 * the global and the local one chosen by the launch's layer. */
typedef struct {
  char theta[96], table[300], scale[96];
} rope_call;

static void rope_call_of(gen_ctx *c, const ir_op *op, const char *kernel, int rot,
                         rope_call *r) {
  char gname[128], lname[128], gt[40], lt[40], gs[40];
  float scale = ir_rope_cos_scale(&op->rope);
  int per_layer = op->global_every > 0;
  const char *g = kernel ? rope_table(c, kernel, "", rot, op->theta, &op->rope, per_layer, gname,
                                      sizeof gname)
                         : "nullptr";
  gen_float(gt, op->theta);
  gen_float(gs, scale);
  if (!per_layer) {
    snprintf(r->theta, sizeof r->theta, "%s", gt);
    snprintf(r->table, sizeof r->table, "%s", g);
    snprintf(r->scale, sizeof r->scale, "%s", scale != 1.0f ? gs : "");
    return;
  }
  const ir_rope_scaling local = {IR_ROPE_DEFAULT};
  const char *l = kernel ? rope_table(c, kernel, "_local", rot, op->theta_local, &local, 1,
                                      lname, sizeof lname)
                         : "nullptr";
  gen_float(lt, op->theta_local);
  const char *is_global = "(layer + 1) % ";
  snprintf(r->theta, sizeof r->theta, "%s%d == 0 ? %s : %s", is_global, op->global_every, gt, lt);
  snprintf(r->table, sizeof r->table, "%s%d == 0 ? %s : %s", is_global, op->global_every, g, l);
  snprintf(r->scale, sizeof r->scale, "%s%d == 0 ? %s : 1.0f", is_global, op->global_every, gs);
}

static void emit_rope(gen_ctx *c, const ir_op *op, int backward) {
  gen_ref y = gen_ref_of(c, op->out[0]), x = gen_ref_of(c, op->in[0]);
  int hd = (int)(cols_of(c, op->in[0]) / op->heads);
  int rot = op->rotary_dims ? op->rotary_dims : hd;
  char label[192], body[1024];
  snprintf(label, sizeof label, "%s %s -> %s", backward ? "rope_bwd" : "rope",
           gen_vname(c, op->in[0]), gen_vname(c, op->out[0]));
  gen_kb kb;
  gen_kb_begin(&kb, c, backward ? "rope_backward" : "rope_forward", label);
  gen_kb_buf(&kb, "y", y, -1, 1);
  gen_kb_buf(&kb, "x", x, -1, 0);
  gen_kb_rows(&kb);
  if (c->cfg->decode) gen_kb_scalar(&kb, "int", "pos0", GEN_ARG_POS0);
  if (op->global_every) gen_kb_scalar(&kb, "int", "layer", GEN_ARG_LAYER);
  const int tx = 16, ty = 16;
  gen_kb_launch(&kb, ceil_div(N_of(c), ty), 1, 1, tx, ty, 0);
  rope_call r;
  rope_call_of(c, op, kb.st ? kb.st->kernel : NULL, rot, &r);
  /* the scale only where there is one: default ropes' source is as before */
  char tail[160] = "";
  if (r.scale[0])
    snprintf(tail, sizeof tail, ", %s%s", backward ? "" : (c->cfg->decode ? "pos0, " : "0, "),
             r.scale);
  else if (c->cfg->decode)
    snprintf(tail, sizeof tail, ", pos0");
  snprintf(body, sizeof body,
           "lisa::%s<%s, %d, %d, %d, %d, %d>(@y, @x, N, %d, %s, %s%s);",
           backward ? "rope_backward" : "rope_forward", T_(), op->heads, hd, rot, tx, ty,
           c->cfg->T, r.theta, r.table, tail);
  gen_kb_end(&kb, body);
}

/* The position table from the call's first position: decoding's rows n < N
 * <= T are positions pos0 + n, which n % T then finds from wpe + pos0 rows. */
static const char *wpe_at(const gen_ctx *c, int64_t C, char *buf, size_t size) {
  if (!c->cfg->decode) return "wpe";
  snprintf(buf, size, "wpe + (long long)pos0 * %lld", (long long)C);
  return buf;
}

static int vocab_of(const gen_ctx *c, int table) {
  return (int)c->m->params[c->g->values[table].param].shape[0];
}

/* embedding -> tok, position_embedding -> pos, add(tok, pos): one kernel. */
static int emit_embedding(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  int64_t C = cols_of(c, op->out[0]);
  int out = op->out[0], pos_table = -1;
  int p = gen_member(c, i, GEN_RULE_EMBED_POS, IR_OP_POS_EMBEDDING),
      j = gen_member(c, i, GEN_RULE_EMBED_POS, IR_OP_ADD);
  if (p >= 0 && j >= 0) {
    pos_table = c->items[p].op->in[0];
    out = c->items[j].op->out[0];
  }
  char label[192], body[320], wpe[64];
  snprintf(label, sizeof label, "embedding%s %s -> %s", pos_table >= 0 ? " + position" : "",
           gen_vname(c, op->in[0]), gen_vname(c, out));
  gen_kb kb;
  gen_kb_begin(&kb, c, pos_table >= 0 ? "embedding_pos_forward" : "embedding_forward", label);
  gen_kb_buf(&kb, "y", gen_ref_of(c, out), -1, 1);
  gen_kb_buf(&kb, "ids", gen_ref_of(c, op->in[0]), GEN_I32, 0);
  gen_kb_buf(&kb, "wte", gen_ref_of(c, op->in[1]), -1, 0);
  if (pos_table >= 0) gen_kb_buf(&kb, "wpe", gen_ref_of(c, pos_table), -1, 0);
  gen_kb_rows(&kb);
  if (pos_table >= 0 && c->cfg->decode) gen_kb_scalar(&kb, "int", "pos0", GEN_ARG_POS0);
  const int threads =
      gen_tune(c, pos_table >= 0 ? "embedding_pos_forward" : "embedding_forward", "THREADS");
  gen_kb_launch(&kb, ceil_div((int64_t)N_of(c) * C, threads), 1, 1, (unsigned)threads, 1, 0);
  if (pos_table >= 0)
    snprintf(body, sizeof body,
             "lisa::embedding_pos_forward<%s, %lld, %d, %d>(y, ids, wte, %s, N, %d);", T_(),
             (long long)C, vocab_of(c, op->in[1]), threads, wpe_at(c, C, wpe, sizeof wpe),
             c->cfg->T);
  else
    snprintf(body, sizeof body, "lisa::embedding_forward<%s, %lld, %d, %d>(y, ids, wte, N);", T_(),
             (long long)C, vocab_of(c, op->in[1]), threads);
  gen_kb_end(&kb, body);
  return 0;
}

static void emit_pos_embedding(gen_ctx *c, const ir_op *op) {
  int64_t C = cols_of(c, op->out[0]);
  char label[192], body[320], wpe[64];
  snprintf(label, sizeof label, "position_embedding -> %s", gen_vname(c, op->out[0]));
  gen_kb kb;
  gen_kb_begin(&kb, c, "pos_embedding_forward", label);
  gen_kb_buf(&kb, "y", gen_ref_of(c, op->out[0]), -1, 1);
  gen_kb_buf(&kb, "wpe", gen_ref_of(c, op->in[0]), -1, 0);
  gen_kb_rows(&kb);
  if (c->cfg->decode) gen_kb_scalar(&kb, "int", "pos0", GEN_ARG_POS0);
  const int threads = gen_tune(c, "pos_embedding_forward", "THREADS");
  gen_kb_launch(&kb, ceil_div((int64_t)N_of(c) * C, threads), 1, 1, (unsigned)threads, 1, 0);
  snprintf(body, sizeof body, "lisa::pos_embedding_forward<%s, %lld, %d>(y, %s, N, %d);", T_(),
           (long long)C, threads, wpe_at(c, C, wpe, sizeof wpe), c->cfg->T);
  gen_kb_end(&kb, body);
}

static void emit_embedding_bwd(gen_ctx *c, const ir_op *op, int pos) {
  int dy = pos ? op->in[0] : op->in[1];
  int64_t C = cols_of(c, dy);
  char label[192], body[256];
  snprintf(label, sizeof label, "%s_bwd_w %s -> %s", pos ? "position_embedding" : "embedding",
           gen_vname(c, dy), gen_vname(c, op->out[0]));
  gen_kb kb;
  gen_kb_begin(&kb, c, pos ? "pos_embedding_backward" : "embedding_backward", label);
  gen_kb_buf(&kb, pos ? "dwpe" : "dwte", gen_ref_of(c, op->out[0]), c->cfg->grad_dtype, 1);
  if (!pos) gen_kb_buf(&kb, "ids", gen_ref_of(c, op->in[0]), GEN_I32, 0);
  gen_kb_buf(&kb, "dy", gen_ref_of(c, dy), -1, 0);
  gen_kb_rows(&kb);
  int V = (int)c->m->params[c->g->values[op->out[0]].param].shape[0];
  const int threads =
      gen_tune(c, pos ? "pos_embedding_backward" : "embedding_backward", "THREADS");
  if (pos) {
    gen_kb_launch(&kb, ceil_div((int64_t)c->cfg->T * C, threads), 1, 1, (unsigned)threads, 1, 0);
    snprintf(body, sizeof body, "lisa::pos_embedding_backward<%s, %lld, %d>(dwpe, dy, N, %d);", T_(),
             (long long)C, threads, c->cfg->T);
  } else {
    gen_kb_launch(&kb, (unsigned)N_of(c), 1, 1, (unsigned)threads, 1, 0);
    snprintf(body, sizeof body, "lisa::embedding_backward<%s, %lld, %d, %d>(dwte, ids, dy, N);", T_(),
             (long long)C, V, threads);
  }
  gen_kb_end(&kb, body);
}

/* cross_entropy + cross_entropy_bwd: per-row losses and the gradient over
 * the logits in one pass, then the mean. */
static int emit_cross_entropy(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  int logits = op->in[0], V = (int)cols_of(c, logits), dlogits = -1;
  for (int j = i + 1; j < c->n_items; j++) /* the last member, should there be two */
    if (c->items[j].leader == i && c->items[j].rule == GEN_RULE_CE_BACKWARD)
      dlogits = c->items[j].op->out[0];
  int ws = c->items[i].workspace;
  char label[192], body[256];
  snprintf(label, sizeof label, "cross_entropy%s %s -> per-row loss%s%s",
           dlogits >= 0 ? " + backward" : "", gen_vname(c, logits), dlogits >= 0 ? ", " : "",
           dlogits >= 0 ? gen_vname(c, dlogits) : "");
  gen_kb kb;
  gen_kb_begin(&kb, c, "cross_entropy_fused", label);
  gen_kb_buf(&kb, "dlogits", dlogits >= 0 ? gen_ref_of(c, dlogits) : (gen_ref){-1, 0, 0}, -1,
             1);
  gen_kb_buf(&kb, "loss", (gen_ref){ws, 0, 1}, GEN_F32, 1);
  gen_kb_buf(&kb, "logits", gen_ref_of(c, logits), -1, 0);
  gen_kb_buf(&kb, "targets", gen_ref_of(c, op->in[1]), GEN_I32, 0);
  gen_kb_rows(&kb);
  gen_kb_loss_scale(&kb);
  const int ce_threads = gen_tune(c, "cross_entropy_fused", "THREADS");
  gen_kb_launch(&kb, (unsigned)N_of(c), 1, 1, (unsigned)ce_threads, 1, 0);
  const int64_t ld = gen_ref_of(c, logits).ld; /* dlogits: the same buffer, or one as wide */
  if (dlogits >= 0 && gen_ref_of(c, dlogits).ld != ld)
    return lt_fail(c->err, "gen: %s: logits and their gradient at other row strides",
                   c->p->name);
  snprintf(body, sizeof body,
           "lisa::cross_entropy_fused<%s, %d, %d, %lld>(dlogits, loss, logits, targets, N, "
           "loss_scale);", T_(), V, ce_threads, (long long)ld);
  gen_kb_end(&kb, body);

  snprintf(label, sizeof label, "mean of the per-row losses -> %s", gen_vname(c, op->out[0]));
  gen_kb_begin(&kb, c, "cross_entropy_mean", label);
  gen_kb_buf(&kb, "mean_loss", gen_ref_of(c, op->out[0]), GEN_F32, 1);
  gen_kb_buf(&kb, "loss", (gen_ref){ws, 0, 1}, GEN_F32, 0);
  gen_kb_buf(&kb, "targets", gen_ref_of(c, op->in[1]), GEN_I32, 0);
  gen_kb_rows(&kb);
  const int mean_threads = gen_tune(c, "cross_entropy_mean", "THREADS");
  gen_kb_launch(&kb, 1, 1, 1, (unsigned)mean_threads, 1, 0);
  snprintf(body, sizeof body, "lisa::cross_entropy_mean<%d, %d>(mean_loss, loss, targets, N);", V,
           mean_threads);
  gen_kb_end(&kb, body);
  return 0;
}

/* split / concat that could not become views: a column copy per piece. */
static int emit_copy(gen_ctx *c, const ir_op *op, int concat) {
  int n = concat ? op->n_in : op->n_out;
  for (int k = 0; concat && k < n; k++)
    if (op->in[k] < 0)
      return lt_fail(c->err, "%s:%d: gen: concat with a missing (zero) piece is not generated yet",
                     c->m->path, op->line);
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    int piece = concat ? op->in[k] : op->out[k];
    int64_t W = concat ? op->sizes[k] : cols_of(c, piece);
    int whole = concat ? op->out[0] : op->in[0];
    gen_ref wr = gen_ref_of(c, whole);
    wr.off += off;
    off += W;
    char label[192], body[256];
    gen_kb kb;
    snprintf(label, sizeof label, "%s piece %d (%lld columns)", concat ? "concat" : "split", k,
             (long long)W);
    gen_kb_begin(&kb, c, "copy_cols", label);
    if (concat) {
      gen_kb_buf(&kb, "dst", wr, -1, 1);
      gen_kb_buf(&kb, "src", piece >= 0 ? gen_ref_of(c, piece) : (gen_ref){-1, 0, 0}, -1, 0);
    } else {
      gen_kb_buf(&kb, "dst", gen_ref_of(c, piece), -1, 1);
      gen_kb_buf(&kb, "src", wr, -1, 0);
    }
    gen_kb_rows(&kb);
    gen_kb_launch(&kb, ceil_div(N_of(c), 8), 1, 1, 32, 8, 0);
    snprintf(body, sizeof body, "lisa::copy_cols<%s, %lld, 32, 8>(@dst, @src, N);", T_(),
             (long long)W);
    gen_kb_end(&kb, body);
  }
  return 0;
}

/* The bias gradient's row parts (its workspace's rows). */
static int64_t bias_grad_parts(gen_ctx *c, int64_t C) {
  const int threads = gen_tune(c, "bias_grad", "THREADS");
  return lisa_bias_grad_parts(N_of(c), ceil_div(C, threads), c->cfg->sms);
}

/* db += column sums of dy, in two deterministic stages (as a norm's dW). */
static void emit_bias_grad(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  const int ws = c->items[i].workspace;
  int64_t C = cols_of(c, op->in[0]), parts = bias_grad_parts(c, C);
  char label[192], body[192];
  snprintf(label, sizeof label, "linear_bwd_b %s -> partial sums of %lld row parts",
           gen_vname(c, op->in[0]), (long long)parts);
  gen_kb kb;
  gen_kb_begin(&kb, c, "bias_grad", label);
  gen_kb_buf(&kb, "partial", (gen_ref){ws, 0, C}, GEN_F32, 1);
  gen_kb_buf(&kb, "dy", gen_ref_of(c, op->in[0]), -1, 0);
  gen_kb_rows(&kb);
  const int threads = gen_tune(c, "bias_grad", "THREADS");
  gen_kb_launch(&kb, ceil_div(C, threads), (unsigned)parts, 1, (unsigned)threads, 1, 0);
  snprintf(body, sizeof body, "lisa::bias_grad<%s, %lld, %d>(partial, dy, N, %lld);", T_(),
           (long long)C, threads, (long long)parts);
  gen_kb_end(&kb, body);

  snprintf(label, sizeof label, "linear_bwd_b: db += partial sums -> %s", gen_vname(c, op->out[0]));
  gen_kb_begin(&kb, c, "norm_backward_w_finish", label);
  gen_kb_buf(&kb, "dw", gen_ref_of(c, op->out[0]), c->cfg->grad_dtype, 1);
  gen_kb_buf(&kb, "db", (gen_ref){-1, 0, 0}, c->cfg->grad_dtype, 1);
  gen_kb_buf(&kb, "partial", (gen_ref){ws, 0, C}, GEN_F32, 0);
  const int fin = gen_tune(c, "norm_backward_w_finish", "THREADS");
  gen_kb_launch(&kb, ceil_div(C, fin), 1, 1, (unsigned)fin, 1, 0);
  snprintf(body, sizeof body, "lisa::norm_backward_w_finish<%lld, %d>(dw, db, partial, %lld);",
           (long long)C, fin, (long long)parts);
  gen_kb_end(&kb, body);
}

int gen_plan_workspace(gen_ctx *c, int i, int *ws) {
  const ir_op *op = c->items[i].op;
  char name[96];
  *ws = -1;
  switch (op->kind) {
  case IR_OP_LAYERNORM_BWD_WB: *ws = norm_w_workspace(c, op, 0); break;
  case IR_OP_RMSNORM_BWD_W: *ws = norm_w_workspace(c, op, 1); break;
  case IR_OP_ATTENTION_BWD:
    snprintf(name, sizeof name, "%s.dsum", gen_vname(c, op->in[4]));
    *ws = gen_add_workspace(c, name, GEN_F32, N_of(c), op->heads);
    break;
  case IR_OP_LINEAR_BWD_B: {
    int64_t C = cols_of(c, op->in[0]);
    snprintf(name, sizeof name, "%s.partial", gen_vname(c, op->out[0]));
    *ws = gen_add_workspace(c, name, GEN_F32, bias_grad_parts(c, C), C);
    break;
  }
  case IR_OP_CROSS_ENTROPY:
    snprintf(name, sizeof name, "%s.rows", gen_vname(c, op->out[0]));
    *ws = gen_add_workspace(c, name, GEN_F32, N_of(c), 1);
    break;
  case IR_OP_ATTENTION: /* decoding's cache of keys and values */
    if (!c->cfg->decode) return 0;
    if (!op->causal) return lt_fail(c->err, "%s:%d: gen: non-causal attention cannot decode",
                                    c->m->path, op->line);
    snprintf(name, sizeof name, "%s.kv_cache", gen_vname(c, op->out[0]));
    *ws = gen_add_workspace(c, name, c->cfg->dtype, c->cfg->ctx,
                            2 * (int64_t)cols_of(c, op->in[1]));
    if (*ws >= 0) c->p->bufs[*ws].role = GEN_BUF_CACHE;
    break;
  default: return 0;
  }
  return *ws < 0 ? -1 : 0;
}

int gen_lower_template_op(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  if (c->items[i].rule == GEN_RULE_ADD_NORM) {
    const ir_op *norm = c->items[gen_member(c, i, GEN_RULE_ADD_NORM, -1)].op;
    emit_norm_fwd(c, norm, norm->kind == IR_OP_RMSNORM, op);
    return 0;
  }
  switch (op->kind) {
  case IR_OP_LAYERNORM: emit_norm_fwd(c, op, 0, NULL); return 0;
  case IR_OP_RMSNORM: emit_norm_fwd(c, op, 1, NULL); return 0;
  case IR_OP_LAYERNORM_BWD_X: emit_norm_bwd_x(c, i, 0); return 0;
  case IR_OP_RMSNORM_BWD_X: emit_norm_bwd_x(c, i, 1); return 0;
  case IR_OP_LAYERNORM_BWD_WB: return emit_norm_bwd_w(c, i, 0);
  case IR_OP_RMSNORM_BWD_W: return emit_norm_bwd_w(c, i, 1);
  case IR_OP_ATTENTION:
    if (c->cfg->decode) emit_attention_decode(c, op, c->items[i].workspace);
    else emit_attention_fwd(c, op);
    return 0;
  case IR_OP_ATTENTION_BWD: return emit_attention_bwd(c, i);
  case IR_OP_ROPE: emit_rope(c, op, 0); return 0;
  case IR_OP_ROPE_BWD: emit_rope(c, op, 1); return 0;
  case IR_OP_EMBEDDING: return emit_embedding(c, i);
  case IR_OP_POS_EMBEDDING: emit_pos_embedding(c, op); return 0;
  case IR_OP_EMBEDDING_BWD_W: emit_embedding_bwd(c, op, 0); return 0;
  case IR_OP_POS_EMBEDDING_BWD_W: emit_embedding_bwd(c, op, 1); return 0;
  case IR_OP_CROSS_ENTROPY: return emit_cross_entropy(c, i);
  case IR_OP_SPLIT: return emit_copy(c, op, 0);
  case IR_OP_CONCAT: return emit_copy(c, op, 1);
  case IR_OP_LINEAR_BWD_B: emit_bias_grad(c, i); return 0;
  default: break;
  }
  return lt_fail(c->err, "%s:%d: gen: no kernel for op '%s'", c->m->path, op->line,
                 ir_op_name(op->kind));
}
