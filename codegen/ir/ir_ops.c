/* ir_ops.c: the op table (ops.def expanded) and the rules it names. */
#include "ir_ops.h"
#include "ir_rope.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A formula op: unary, element-wise, differentiated symbolically. */
#define IR_FORMULA_ENTRIES(id, op_name, text)                                            \
  [IR_OP_##id] = {.name = op_name, .in = {1, 1}, .sig = "x", .out = {1, 1},              \
                  .shape = ir_shape_unary, .grad = ir_grad_unary,                        \
                  .grad_kind = IR_OP_##id##_BWD, .tree = IR_TREE_FN, .formula = text},   \
  [IR_OP_##id##_BWD] = {.name = op_name "_bwd", .in = {2, 2}, .out = {1, 1},             \
                        .tree = IR_TREE_DFN, .formula = text},

const ir_op_entry ir_op_info[IR_OP_COUNT] = {
#define IR_OP(id, ...) [IR_OP_##id] = {__VA_ARGS__},
#define IR_FORMULA_OP(id, op_name, text) IR_FORMULA_ENTRIES(id, op_name, text)
#include "ops.def"
#undef IR_OP
#undef IR_FORMULA_OP
};

int ir_op_is_forward(ir_opkind kind) { return ir_op_info[kind].shape != NULL; }

int ir_op_weight(const ir_op *op) {
  int w = ir_op_info[op->kind].weight;
  return w > 0 ? op->in[w - 1] : w < 0 ? op->out[-w - 1] : -1;
}

/* ------------------------------------------------------------------------ */
/* shape rules */

static int shape_fail(ir_shape *s, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int shape_fail(ir_shape *s, const char *key, const char *fmt, ...) {
  char msg[640];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return s->fail(s, key, msg);
}

static const ir_value *in_value(const ir_shape *s, int i) {
  return &s->m->sections[s->section].values[s->op->in[i]];
}

static int64_t in_cols(const ir_shape *s, int i) { return in_value(s, i)->cols; }

static const char *in_name(const ir_shape *s, int i) { return in_value(s, i)->name; }

/* Input i must be a float matrix: not token ids, not the scalar loss. */
static int need_f32(ir_shape *s, int i) {
  const ir_value *v = in_value(s, i);
  if (v->dtype != IR_F32) return shape_fail(s, NULL, "'%s' holds token ids, not floats", v->name);
  if (v->scalar) return shape_fail(s, NULL, "'%s' is a scalar", v->name);
  return 0;
}

static int need_ids(ir_shape *s, int i) {
  if (in_value(s, i)->dtype == IR_I32) return 0;
  return shape_fail(s, NULL, "'%s' must be token ids (a section input or targets)",
                    in_name(s, i));
}

static const ir_param *need_param_2d(ir_shape *s, int i) {
  const ir_value *v = in_value(s, i);
  const ir_param *p = v->kind == IR_V_PARAM ? &s->m->params[v->param] : NULL;
  if (p && p->ndim == 2) return p;
  shape_fail(s, NULL, "'%s' must be a 2-D param", v->name);
  return NULL;
}

static int need_width(ir_shape *s, int i, int64_t want, const char *because) {
  if (in_cols(s, i) == want) return 0;
  return shape_fail(s, NULL, "'%s' has width %lld, expected %lld (%s)", in_name(s, i),
                    (long long)in_cols(s, i), (long long)want, because);
}

/* A whole-number attribute that fits an int; 0 if absent. */
static int int_attr(ir_shape *s, const char *key, int *out) {
  int64_t v;
  int rc = s->count(s, key, 1 << 30, &v);
  if (rc == 1) *out = (int)v;
  return rc;
}

/* A table's rows (vocabulary or positions) into *rows. */
static int table_width(ir_shape *s, int i, int *rows) {
  const ir_param *table = need_param_2d(s, i);
  if (!table) return -1;
  if (table->shape[0] > (1 << 30)) return shape_fail(s, NULL, "table has too many rows");
  *rows = (int)table->shape[0];
  s->cols[0] = table->shape[1];
  return 0;
}

int ir_shape_embedding(ir_shape *s) {
  if (need_ids(s, 0)) return -1;
  return table_width(s, 1, &s->m->vocab_size);
}

int ir_shape_pos_embedding(ir_shape *s) { return table_width(s, 0, &s->m->max_seq); }

/* gelu, silu, activation, formula ops: element-wise over one input */
int ir_shape_unary(ir_shape *s) {
  if (need_f32(s, 0)) return -1;
  s->cols[0] = in_cols(s, 0);
  return 0;
}

/* add, mul: element-wise over two inputs of one width */
int ir_shape_binary(ir_shape *s) {
  if (need_f32(s, 0) || need_f32(s, 1)) return -1;
  if (need_width(s, 1, in_cols(s, 0), "the width of the first input")) return -1;
  s->cols[0] = in_cols(s, 0);
  return 0;
}

/* The optional `eps` of a norm into op.eps. */
static int load_eps(ir_shape *s, double eps) {
  int rc = s->number(s, "eps", &eps);
  if (rc < 0) return -1;
  if (rc && eps <= 0) return shape_fail(s, "eps", "eps must be positive");
  s->op->eps = (float)eps;
  return 0;
}

int ir_shape_layernorm(ir_shape *s) {
  for (int i = 0; i < 3; i++)
    if (need_f32(s, i)) return -1;
  int64_t width = in_cols(s, 0);
  if (need_width(s, 1, width, "the width of x") || need_width(s, 2, width, "the width of x"))
    return -1;
  if (load_eps(s, 1e-5)) return -1;
  s->cols[0] = width;
  s->cols[1] = s->cols[2] = 1;
  s->suffix[1] = ".mean";
  s->suffix[2] = ".rstd";
  return 0;
}

/* Hugging Face's RMSNorm default eps is 1e-6. offset (default 0): the weight
 * applied is offset + w (Gemma stores w with 1 + w applied). heads (default
 * 1): x's columns are that many groups, each normalised apart with the same
 * w (Qwen3's and Gemma-3's per-head q and k norms). */
int ir_shape_rmsnorm(ir_shape *s) {
  if (need_f32(s, 0) || need_f32(s, 1)) return -1;
  int64_t width = in_cols(s, 0);
  double offset = 0;
  s->op->heads = 1;
  if (int_attr(s, "heads", &s->op->heads) < 0 || s->number(s, "offset", &offset) < 0)
    return -1;
  if (s->op->heads < 1 || width % s->op->heads)
    return shape_fail(s, "heads", "'%s' (width %lld) is not divisible into %d heads",
                      in_name(s, 0), (long long)width, s->op->heads);
  s->op->w_offset = (float)offset;
  int64_t group = width / s->op->heads;
  if (need_width(s, 1, group, s->op->heads > 1 ? "the width of one head" : "the width of x") ||
      load_eps(s, 1e-6))
    return -1;
  s->cols[0] = width;
  s->cols[1] = s->op->heads;
  s->suffix[1] = ".rstd";
  return 0;
}

int ir_shape_linear(ir_shape *s) {
  if (need_f32(s, 0)) return -1;
  const ir_param *w = need_param_2d(s, 1);
  if (!w) return -1;
  int in_out = w->layout == IR_LAYOUT_IN_OUT;
  int64_t n_in = w->shape[in_out ? 0 : 1], n_out = w->shape[in_out ? 1 : 0];
  char because[160];
  snprintf(because, sizeof because, "the inputs of '%s', stored [%lld, %lld] as %s", w->key,
           (long long)w->shape[0], (long long)w->shape[1], ir_layout_name(w->layout));
  if (need_width(s, 0, n_in, because)) return -1;
  if (s->op->n_in == 3) {
    snprintf(because, sizeof because, "the outputs of '%s'", w->key);
    if (need_f32(s, 2) || need_width(s, 2, n_out, because)) return -1;
  }
  s->cols[0] = n_out;
  return 0;
}

/* scale: y = factor * x, factor an expression over the config */
int ir_shape_scale(ir_shape *s) {
  if (need_f32(s, 0)) return -1;
  int rc = s->number(s, "factor", &s->op->factor);
  if (rc < 0) return -1;
  if (rc == 0) return shape_fail(s, NULL, "needs 'factor'");
  s->cols[0] = in_cols(s, 0);
  return 0;
}

/* Widths from `sizes`, else equal parts. */
int ir_shape_split(ir_shape *s) {
  if (need_f32(s, 0)) return -1;
  int64_t width = in_cols(s, 0), total = 0;
  int n = s->n_names;
  int rc = s->counts(s, "sizes", "a split size", n, width, s->cols);
  if (rc < 0) return -1;
  if (rc == 0) {
    if (width % n)
      return shape_fail(s, NULL, "'%s' (width %lld) does not split into %d equal parts; "
                                 "give sizes", in_name(s, 0), (long long)width, n);
    for (int i = 0; i < n; i++) s->cols[i] = width / n;
    return 0;
  }
  for (int i = 0; i < n; i++) total += s->cols[i];
  if (total != width)
    return shape_fail(s, NULL, "sizes add up to %lld, but '%s' has width %lld",
                      (long long)total, in_name(s, 0), (long long)width);
  return 0;
}

/* heads (required), kv_heads (default: heads), causal (default: true),
 * scale (default 1/sqrt(head size), kept as 0), softcap (default 0: none) */
static int load_attention_attrs(ir_shape *s) {
  ir_op *op = s->op;
  int rc = int_attr(s, "heads", &op->heads);
  if (rc < 0) return -1;
  if (rc == 0) return shape_fail(s, NULL, "needs 'heads'");
  op->kv_heads = op->heads;
  op->causal = 1;
  double scale = 0, softcap = 0;
  if (int_attr(s, "kv_heads", &op->kv_heads) < 0 || s->flag(s, "causal", &op->causal) < 0 ||
      (rc = s->number(s, "scale", &scale)) < 0)
    return -1;
  if (rc && !(scale > 0)) return shape_fail(s, "scale", "scale must be positive");
  if ((rc = s->number(s, "softcap", &softcap)) < 0) return -1;
  if (rc && !(softcap > 0)) return shape_fail(s, "softcap", "softcap must be positive");
  /* window 0 (config.json's null sliding_window) is no window */
  double window = 0;
  if ((rc = s->number(s, "window", &window)) < 0) return -1;
  if (rc && (window < 0 || window != (int)window || window > (1 << 30)))
    return shape_fail(s, "window", "window must be a whole number >= 0 (0: none), got %g", window);
  if (window > 0 && !op->causal) return shape_fail(s, "window", "a window needs causal attention");
  op->window = (int)window;
  rc = int_attr(s, "global_every", &op->global_every);
  if (rc < 0) return -1;
  if (rc && op->global_every < 2)
    return shape_fail(s, "global_every", "global_every must be at least 2");
  op->factor = scale;
  op->softcap = (float)softcap;
  if (op->heads % op->kv_heads)
    return shape_fail(s, NULL, "heads (%d) must be a multiple of kv_heads (%d)", op->heads,
                      op->kv_heads);
  return 0;
}

int ir_shape_attention(ir_shape *s) {
  for (int i = 0; i < 3; i++)
    if (need_f32(s, i)) return -1;
  if (load_attention_attrs(s)) return -1;
  int64_t width = in_cols(s, 0);
  if (width % s->op->heads)
    return shape_fail(s, NULL, "q width %lld is not divisible by %d heads", (long long)width,
                      s->op->heads);
  int64_t kv_width = (int64_t)s->op->kv_heads * (width / s->op->heads);
  if (need_width(s, 1, kv_width, "kv_heads * head size") ||
      need_width(s, 2, kv_width, "kv_heads * head size"))
    return -1;
  s->cols[0] = width;
  s->cols[1] = s->op->heads;
  s->suffix[1] = ".lse";
  return 0;
}

/* rotary_dims (default: the head size hd); the rotated dims pair up as
 * (i, i + rotary_dims/2), so even. */
static int load_rotary_dims(ir_shape *s, int hd) {
  ir_op *op = s->op;
  op->rotary_dims = hd;
  int rc = int_attr(s, "rotary_dims", &op->rotary_dims);
  if (rc < 0) return -1;
  if (rc == 0 && hd % 2)
    return shape_fail(s, NULL, "head size %d is odd; give an even rotary_dims", hd);
  if (rc == 1 && (op->rotary_dims > hd || op->rotary_dims % 2))
    return shape_fail(s, "rotary_dims", "rotary_dims must be even and at most the head "
                      "size %d, got %d", hd, op->rotary_dims);
  if (op->rotary_dims > 2 * IR_ROPE_MAX_HALF)
    return shape_fail(s, rc ? "rotary_dims" : NULL, "rotary dims %d: at most %d rotate",
                      op->rotary_dims, 2 * IR_ROPE_MAX_HALF);
  return 0;
}

/* heads (required), theta (default 10000), rotary_dims, local_theta with
 * global_every */
int ir_shape_rope(ir_shape *s) {
  if (need_f32(s, 0)) return -1;
  int64_t width = in_cols(s, 0);
  int rc = int_attr(s, "heads", &s->op->heads);
  if (rc < 0) return -1;
  if (rc == 0) return shape_fail(s, NULL, "needs 'heads'");
  if (width % s->op->heads)
    return shape_fail(s, NULL, "'%s' (width %lld) is not divisible by %d heads",
                      in_name(s, 0), (long long)width, s->op->heads);
  s->op->theta = 10000.0;
  rc = s->number(s, "theta", &s->op->theta);
  if (rc < 0) return -1;
  if (rc && s->op->theta <= 0) return shape_fail(s, "theta", "theta must be positive");
  if (load_rotary_dims(s, (int)(width / s->op->heads))) return -1;
  /* local_theta and global_every: Gemma 3's two bases, layer by layer */
  int has_every = int_attr(s, "global_every", &s->op->global_every);
  int has_local = s->number(s, "local_theta", &s->op->theta_local);
  if (has_every < 0 || has_local < 0) return -1;
  if (has_every != has_local)
    return shape_fail(s, has_every ? "global_every" : "local_theta",
                      "local_theta and global_every go together (the base of the "
                      "layers that are not every global_every-th)");
  if (has_every && s->op->global_every < 2)
    return shape_fail(s, "global_every", "global_every must be at least 2");
  if (has_local && !(s->op->theta_local > 0))
    return shape_fail(s, "local_theta", "local_theta must be positive");
  s->cols[0] = width;
  return 0;
}

int ir_shape_cross_entropy(ir_shape *s) {
  if (s->section != IR_HEAD) return shape_fail(s, NULL, "only the head may compute the loss");
  if (need_f32(s, 0) || need_ids(s, 1)) return -1;
  s->cols[0] = 1;
  s->scalar = 1;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* gradient rules */

static void emit(ir_grad *r, ir_opkind kind, int n_in, const int *in, int n_out,
                 const int *out, int param_grad) {
  r->emit(r, r->op, kind, n_in, in, n_out, out, param_grad);
}

void ir_grad_embedding(ir_grad *r) {
  const ir_op *op = r->op;
  int in[2] = {op->in[0], r->dy[0]}, out[1] = {r->dparam(r, op->in[1])};
  emit(r, IR_OP_EMBEDDING_BWD_W, 2, in, 1, out, 1);
}

void ir_grad_pos_embedding(ir_grad *r) {
  int out[1] = {r->dparam(r, r->op->in[0])};
  emit(r, IR_OP_POS_EMBEDDING_BWD_W, 1, r->dy, 1, out, 1);
}

/* y = a + b passes dy on to both, unchanged and without an op. */
void ir_grad_add(ir_grad *r) {
  for (int k = 0; k < 2; k++)
    if (r->needs(r, r->op->in[k])) r->pass(r, r->op->in[k], r->dy[0]);
}

void ir_grad_layernorm(ir_grad *r) {
  const ir_op *op = r->op;
  int x = op->in[0], w = op->in[1], mean = op->out[1], rstd = op->out[2];
  if (r->needs(r, x)) {
    int in[5] = {r->dy[0], x, w, mean, rstd}, out[1] = {r->dx(r, x)};
    emit(r, IR_OP_LAYERNORM_BWD_X, 5, in, 1, out, 0);
  }
  int in[4] = {r->dy[0], x, mean, rstd};
  int out[2] = {r->dparam(r, w), r->dparam(r, op->in[2])};
  emit(r, IR_OP_LAYERNORM_BWD_WB, 4, in, 2, out, 1);
}

void ir_grad_linear(ir_grad *r) {
  const ir_op *op = r->op;
  int x = op->in[0], W = op->in[1];
  if (r->needs(r, x)) {
    int in[2] = {r->dy[0], W}, out[1] = {r->dx(r, x)};
    emit(r, IR_OP_LINEAR_BWD_X, 2, in, 1, out, 0);
  }
  int in[2] = {r->dy[0], x}, out[1] = {r->dparam(r, W)};
  emit(r, IR_OP_LINEAR_BWD_W, 2, in, 1, out, 1);
  if (op->n_in == 3) {
    int db[1] = {r->dparam(r, op->in[2])};
    emit(r, IR_OP_LINEAR_BWD_B, 1, r->dy, 1, db, 1);
  }
}

/* y = f(x) element-wise: dx = the table's grad_kind(dy, x). x is saved, and
 * since dx is not a parameter gradient the FROZEN path needs x too. The
 * backward op keeps .activation, so a tree op finds its derivative. */
void ir_grad_unary(ir_grad *r) {
  int x = r->op->in[0];
  if (!r->needs(r, x)) return;
  int in[2] = {r->dy[0], x}, out[1] = {r->dx(r, x)};
  emit(r, ir_op_info[r->op->kind].grad_kind, 2, in, 1, out, 0);
}

void ir_grad_rmsnorm(ir_grad *r) {
  const ir_op *op = r->op;
  int x = op->in[0], w = op->in[1], rstd = op->out[1];
  if (r->needs(r, x)) {
    int in[4] = {r->dy[0], x, w, rstd}, out[1] = {r->dx(r, x)};
    emit(r, IR_OP_RMSNORM_BWD_X, 4, in, 1, out, 0);
  }
  int in[3] = {r->dy[0], x, rstd}, out[1] = {r->dparam(r, w)};
  emit(r, IR_OP_RMSNORM_BWD_W, 3, in, 1, out, 1);
}

/* A rotation's gradient is the inverse rotation; it reads nothing saved. */
void ir_grad_rope(ir_grad *r) {
  int x = r->op->in[0];
  if (!r->needs(r, x)) return;
  int out[1] = {r->dx(r, x)};
  emit(r, IR_OP_ROPE_BWD, 1, r->dy, 1, out, 0);
}

/* y = a * b: da = dy * b and db = dy * a, each a mul of its own. */
void ir_grad_mul(ir_grad *r) {
  for (int k = 0; k < 2; k++) {
    int v = r->op->in[k];
    if (!r->needs(r, v)) continue;
    int in[2] = {r->dy[0], r->op->in[1 - k]}, out[1] = {r->dx(r, v)};
    emit(r, IR_OP_MUL, 2, in, 1, out, 0);
  }
}

/* y = f * x: dx = f * dy, the same op (the emitted op keeps the factor). */
void ir_grad_scale(ir_grad *r) {
  int x = r->op->in[0];
  if (!r->needs(r, x)) return;
  int out[1] = {r->dx(r, x)};
  emit(r, IR_OP_SCALE, 1, r->dy, 1, out, 0);
}

/* The pieces' gradients side by side; -1 in dy marks a piece that nothing
 * read, which concat fills with zeros, so it carries every piece's width. */
void ir_grad_split(ir_grad *r) {
  const ir_op *op = r->op;
  int x = op->in[0];
  if (!r->needs(r, x)) return;
  ir_op widths = *op;
  for (int k = 0; k < op->n_out; k++) widths.sizes[k] = r->g->values[op->out[k]].cols;
  int out[1] = {r->dx(r, x)};
  r->emit(r, &widths, IR_OP_CONCAT, op->n_out, r->dy, 1, out, 0);
}

/* The kernel writes dq, dk and dv together, so all three get a value. */
void ir_grad_attention(ir_grad *r) {
  const ir_op *op = r->op;
  int q = op->in[0], k = op->in[1], v = op->in[2];
  if (!r->needs(r, q) && !r->needs(r, k) && !r->needs(r, v)) return;
  int in[6] = {r->dy[0], q, k, v, op->out[0], op->out[1]};
  int out[3] = {r->dx(r, q), r->dx(r, k), r->dx(r, v)};
  emit(r, IR_OP_ATTENTION_BWD, 6, in, 3, out, 0);
}

/* The loss's own gradient is 1, implicit in cross_entropy_bwd. */
void ir_grad_cross_entropy(ir_grad *r) {
  int logits = r->op->in[0];
  if (!r->needs(r, logits)) return;
  int in[2] = {logits, r->op->in[1]}, out[1] = {r->dx(r, logits)};
  emit(r, IR_OP_CROSS_ENTROPY_BWD, 2, in, 1, out, 0);
}
