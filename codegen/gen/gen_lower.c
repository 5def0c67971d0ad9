/* gen_lower.c: one section graph and a mode -> a path of steps.
 *
 * Order of work for a path: pick the ops the mode runs (FROZEN drops the
 * parameter-gradient ops, FORWARD every backward op), count who reads each
 * value, decide which values are views (split/concat of q, k, v), then lower
 * the ops in order: GEMMs with their epilogues, template kernels, and runs of
 * element-wise ops fused into one generated kernel. Last, each value's role
 * (saved, scratch, ...) follows from who reads it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"
#include "gen_tune.h"

/* ---------------------------------------------------------------------- */
/* small queries */

const char *gen_vname(const gen_ctx *c, int v) { return c->p->bufs[v].name; }

const char *gen_float(char *buf, double v) {
  snprintf(buf, 40, "%.9g", v);
  if (!strpbrk(buf, ".eEn")) strcat(buf, ".0"); /* 10000 -> 10000.0f, not 10000f */
  strcat(buf, "f");
  return buf;
}

int gen_value_rows(const gen_ctx *c, int v) {
  return c->g->values[v].scalar ? 1 : c->cfg->B * c->cfg->T;
}

int gen_buf_dtype(const gen_ctx *c, int v) { return c->p->bufs[v].dtype; }

gen_ref gen_ref_of(const gen_ctx *c, int v) {
  const gen_buffer *b = &c->p->bufs[v];
  if (b->role == GEN_BUF_VIEW) return (gen_ref){b->base, b->off, b->ld};
  return (gen_ref){v, 0, b->cols};
}

int gen_sole_reader(const gen_ctx *c, int v) {
  if (v < 0 || c->keep[v] || c->readers[v] != 1) return -1;
  for (int i = 0; i < c->n_items; i++) {
    const ir_op *op = c->items[i].op;
    for (int k = 0; k < op->n_in; k++)
      if (op->in[k] == v) return i;
  }
  return -1;
}

static int param_trains(const gen_ctx *c, int value) {
  const ir_value *v = &c->g->values[value];
  return v->param < 0 || !c->cfg->trains || c->cfg->trains[v->param];
}

/* The kernel's tunable from the config's table, or from the defaults
 * gen_build loaded (templates/tuning.lua). Every table holds the defaults'
 * entries (a user file only overrides them), so the fallback is used only
 * when tuning.lua lacks an entry the generator asks for. */
int gen_tune(const gen_ctx *c, const char *kernel, const char *name, int fallback) {
  int v;
  return gen_tune_get(c->prog->cfg.tuning, kernel, name, &v) ? fallback : v;
}

/* ---------------------------------------------------------------------- */
/* buffers and steps */

static int grow(void **arr, int *cap, int n, size_t size) {
  if (n < *cap) return 0;
  int ncap = *cap ? *cap * 2 : 32;
  void *p = realloc(*arr, (size_t)ncap * size);
  if (!p) return -1;
  *arr = p;
  *cap = ncap;
  return 0;
}

int gen_add_workspace(gen_ctx *c, const char *name, int dtype, int64_t rows, int64_t cols) {
  gen_path *p = c->p;
  if (grow((void **)&p->bufs, &p->cap_bufs, p->n_bufs, sizeof *p->bufs))
    return lt_fail(c->err, "out of memory");
  gen_buffer *b = &p->bufs[p->n_bufs];
  memset(b, 0, sizeof *b);
  snprintf(b->name, sizeof b->name, "%s", name);
  b->role = GEN_BUF_WORKSPACE;
  b->dtype = dtype;
  b->rows = rows;
  b->cols = cols;
  b->base = -1;
  return p->n_bufs++;
}

gen_step *gen_new_step(gen_ctx *c, int kind) {
  gen_path *p = c->p;
  if (grow((void **)&p->steps, &p->cap_steps, p->n_steps, sizeof *p->steps)) {
    lt_fail(c->err, "out of memory");
    return NULL;
  }
  gen_step *st = &p->steps[p->n_steps++];
  memset(st, 0, sizeof *st);
  st->kind = kind;
  st->gemm.bias = st->gemm.aux = st->gemm.c = (gen_ref){-1, 0, 0};
  return st;
}

/* Records that step `s` (the newest) writes v. */
static void wrote(gen_ctx *c, int v) {
  if (v >= 0) c->producer_step[v] = c->p->n_steps - 1;
}

static int init_buffers(gen_ctx *c) {
  const ir_graph *g = c->g;
  gen_path *p = c->p;
  p->bufs = calloc((size_t)g->n_values, sizeof *p->bufs);
  if (!p->bufs) return lt_fail(c->err, "out of memory");
  p->n_bufs = p->cap_bufs = g->n_values;
  for (int v = 0; v < g->n_values; v++) {
    const ir_value *iv = &g->values[v];
    gen_buffer *b = &p->bufs[v];
    snprintf(b->name, sizeof b->name, "%s", iv->name);
    b->base = -1;
    b->role = GEN_BUF_SCRATCH; /* until assign_roles knows better */
    b->rows = gen_value_rows(c, v);
    b->cols = iv->cols;
    if (iv->param >= 0) {
      const ir_param *pr = &c->m->params[iv->param];
      b->rows = pr->ndim == 2 ? pr->shape[0] : 1;
      b->cols = pr->ndim == 2 ? pr->shape[1] : pr->shape[0];
    }
    if (iv->dtype == IR_I32) b->dtype = GEN_I32;
    else if (iv->kind == IR_V_PARAM_GRAD) b->dtype = c->cfg->grad_dtype;
    else if (iv->scalar || c->stat[v]) b->dtype = GEN_F32;
    else b->dtype = c->cfg->dtype;
  }
  return 0;
}

/* ---------------------------------------------------------------------- */
/* which ops the path runs, and who reads what */

static int op_trains(const gen_ctx *c, const ir_op *op) {
  return op->out[0] >= 0 && param_trains(c, op->out[0]);
}

static int select_items(gen_ctx *c) {
  const ir_graph *g = c->g;
  c->items = calloc((size_t)(g->n_fwd + g->n_bwd) + 1, sizeof *c->items);
  if (!c->items) return lt_fail(c->err, "out of memory");
  for (int i = 0; i < g->n_fwd; i++) c->items[c->n_items++] = (gen_item){&g->fwd[i], 0, 0};
  if (c->p->mode == PATH_FORWARD) return 0;
  for (int i = 0; i < g->n_bwd; i++) {
    const ir_op *op = &g->bwd[i];
    if (op->param_grad && (c->p->mode == PATH_FROZEN || !op_trains(c, op))) continue;
    c->items[c->n_items++] = (gen_item){op, 1, 0};
  }
  return 0;
}

static void mark_stats(gen_ctx *c) {
  for (int i = 0; i < c->g->n_fwd; i++) {
    const ir_op *op = &c->g->fwd[i];
    if (op->kind == IR_OP_LAYERNORM || op->kind == IR_OP_RMSNORM || op->kind == IR_OP_ATTENTION)
      for (int k = 1; k < op->n_out; k++) c->stat[op->out[k]] = 1;
  }
}

static void count_readers(gen_ctx *c) {
  memset(c->readers, 0, sizeof *c->readers * (size_t)c->g->n_values);
  for (int i = 0; i < c->n_items; i++) {
    const ir_op *op = c->items[i].op;
    for (int k = 0; k < op->n_in; k++)
      if (op->in[k] >= 0) c->readers[op->in[k]]++;
  }
}

/* Values the outside world needs: the stream passed on, dX handed down,
 * the loss, parameter gradients. */
static void mark_kept(gen_ctx *c) {
  const ir_graph *g = c->g;
  if (g->output >= 0) c->keep[g->output] = 1;
  if (c->p->mode != PATH_FORWARD && g->input >= 0 && g->values[g->input].grad >= 0)
    c->keep[g->values[g->input].grad] = 1;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == IR_V_PARAM_GRAD) c->keep[v] = 1;
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
  b->ld = c->p->bufs[base].cols;
}

static void plan_views(gen_ctx *c) {
  for (int i = 0; i < c->n_items; i++) {
    gen_item *it = &c->items[i];
    const ir_op *op = it->op;
    int ok = 1;
    int64_t off = 0;
    if (op->kind == IR_OP_SPLIT) {
      for (int k = 0; k < op->n_out; k++) ok &= all_readers_strided(c, op->out[k]);
      if (!ok) continue;
      for (int k = 0; k < op->n_out; k++) {
        make_view(c, op->out[k], op->in[0], off);
        off += c->g->values[op->out[k]].cols;
      }
      it->absorbed = 1;
    } else if (op->kind == IR_OP_CONCAT) {
      for (int k = 0; k < op->n_in; k++)
        ok &= op->in[k] >= 0 && writes_strided(writer_kind(c, op->in[k])) &&
              c->readers[op->in[k]] == 1 && !c->keep[op->in[k]];
      if (!ok) continue;
      for (int k = 0; k < op->n_in; k++) {
        make_view(c, op->in[k], op->out[0], off);
        off += op->sizes[k];
      }
      it->absorbed = 1;
    }
  }
}

/* ---------------------------------------------------------------------- */
/* GEMMs */

static void linear_dims(const ir_param *w, int *in, int *out) {
  int t = w->layout == IR_LAYOUT_IN_OUT;
  *in = (int)w->shape[t ? 0 : 1];
  *out = (int)w->shape[t ? 1 : 0];
}

static const ir_param *param_of(const gen_ctx *c, int v) {
  return &c->m->params[c->g->values[v].param];
}

/* The item after `i` (in order) that reads v as input k, or -1. */
static int later_reader(const gen_ctx *c, int i, int v, ir_opkind kind, int k) {
  int j = gen_sole_reader(c, v);
  if (j <= i || c->items[j].absorbed) return -1;
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

static void fuse_gelu_epilogue(gen_ctx *c, int i, gen_gemm *gm) {
  int y = c->items[i].op->out[0];
  int j = -1;
  for (int t = i + 1; t < c->n_items && j < 0; t++) {
    const ir_op *op = c->items[t].op;
    if (!c->items[t].backward && op->kind == IR_OP_GELU && op->in[0] == y) j = t;
  }
  if (j < 0 || c->keep[y] || forward_readers(c, y, j) != 0) return;
  int has_bias = gm->epilogue == GEN_EPI_BIAS;
  int saved = c->readers[y] > 1; /* gelu_bwd reads the pre-activation */
  int epi = saved ? (has_bias ? GEN_EPI_GELU_AUX_BIAS : GEN_EPI_GELU_AUX)
                  : (has_bias ? GEN_EPI_GELU_BIAS : GEN_EPI_GELU);
  if (c->cfg->no_epilogues & (1u << epi)) return;
  /* cuBLASLt: the aux (GELU input) leading dimension must be divisible by 8 */
  if (saved && gen_ref_of(c, y).ld % 8 != 0) return;
  gm->epilogue = epi;
  if (saved) gm->aux = gen_ref_of(c, y);
  gm->d = gen_ref_of(c, c->items[j].op->out[0]);
  c->items[j].absorbed = 1;
}

static int lower_linear(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  gen_step *st = gen_new_step(c, GEN_STEP_GEMM);
  if (!st) return -1;
  gen_gemm *gm = &st->gemm;
  int wv = op->kind == IR_OP_LINEAR_BWD_W ? op->out[0] : op->in[1];
  const ir_param *w = param_of(c, wv);
  linear_dims(w, &gm->in, &gm->out);
  gm->layout = w->layout;
  gm->rows = c->cfg->B * c->cfg->T;
  gm->a = gen_ref_of(c, op->in[0]);
  gm->w = gen_ref_of(c, op->in[1]);
  gm->d = gen_ref_of(c, op->out[0]);
  if (op->kind == IR_OP_LINEAR) {
    gm->op = GEN_GEMM_FWD;
    if (op->n_in > 2) gm->epilogue = GEN_EPI_BIAS, gm->bias = gen_ref_of(c, op->in[2]);
    fuse_gelu_epilogue(c, i, gm);
  } else if (op->kind == IR_OP_LINEAR_BWD_X) {
    gm->op = GEN_GEMM_DX;
    int j = later_reader(c, i, op->out[0], IR_OP_GELU_BWD, 0);
    /* cuBLASLt: the aux leading dimension (D's here) must be divisible by 8 */
    if (j >= 0 && !(c->cfg->no_epilogues & (1u << GEN_EPI_DGELU)) &&
        gen_ref_of(c, c->items[j].op->out[0]).ld % 8 == 0 &&
        gen_ref_of(c, c->items[j].op->in[1]).ld == gen_ref_of(c, c->items[j].op->out[0]).ld) {
      gm->epilogue = GEN_EPI_DGELU;
      gm->aux = gen_ref_of(c, c->items[j].op->in[1]);
      gm->d = gen_ref_of(c, c->items[j].op->out[0]);
      c->items[j].absorbed = 1;
    }
  } else {
    gm->op = GEN_GEMM_DW;
    gm->beta = 1;
    gm->c = gm->d;
    /* the bias gradient of the same dy, as a BGRAD epilogue: it overwrites,
     * so only when one micro-batch makes the whole gradient */
    int bgrad_ok = c->cfg->grad_accum <= 1 && !(c->cfg->no_epilogues & (1u << GEN_EPI_BGRAD));
    for (int j = i + 1; j < c->n_items && bgrad_ok; j++) {
      const ir_op *b = c->items[j].op;
      if (b->kind == IR_OP_LINEAR_BWD_B && b->in[0] == op->in[0] && !c->items[j].absorbed) {
        gm->epilogue = GEN_EPI_BGRAD;
        gm->bias = gen_ref_of(c, b->out[0]);
        c->items[j].absorbed = 1;
        break;
      }
    }
  }
  snprintf(st->label, sizeof st->label, "%s", ir_op_name(op->kind));
  c->items[i].absorbed = 1;
  wrote(c, op->out[0]);
  if (gm->epilogue == GEN_EPI_GELU_AUX_BIAS || gm->epilogue == GEN_EPI_GELU_AUX)
    wrote(c, gm->d.buf);
  return 0;
}

/* add(a, b) where b comes straight from a GEMM that nothing else reads:
 * the GEMM adds a itself (beta = 1, C = a) and writes the sum. Residual
 * adds and gradient sums of branches cost no kernel. */
int gen_try_fuse_add_gemm(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  for (int side = 0; side < 2; side++) {
    int a = op->in[side], b = op->in[1 - side];
    if (gen_sole_reader(c, b) != i || c->p->bufs[b].role == GEN_BUF_VIEW) continue;
    int s = c->producer_step[b];
    if (s < 0 || c->p->steps[s].kind != GEN_STEP_GEMM) continue;
    gen_gemm *gm = &c->p->steps[s].gemm;
    if (gm->op == GEN_GEMM_DW || gm->beta || gm->d.buf != b) continue;
    if (gm->epilogue != GEN_EPI_NONE && gm->epilogue != GEN_EPI_BIAS) continue;
    /* a must be ready when the GEMM runs: written by an earlier step, or from
     * outside (-1 also means "not lowered yet", e.g. earlier in this run) */
    int kind = c->g->values[a].kind, pa = c->producer_step[a];
    if (pa >= 0 ? pa >= s : kind != IR_V_INPUT && kind != IR_V_PARAM) continue;
    if (c->g->values[a].cols != c->g->values[b].cols) continue;
    gm->beta = 1;
    gm->c = gen_ref_of(c, a);
    gm->d = gen_ref_of(c, op->out[0]);
    c->p->bufs[b].role = GEN_BUF_UNUSED;
    c->items[i].absorbed = 1;
    c->producer_step[op->out[0]] = s;
    char extra[64];
    snprintf(extra, sizeof extra, " + %s", gen_vname(c, a));
    strncat(c->p->steps[s].label, extra, sizeof c->p->steps[s].label - strlen(c->p->steps[s].label) - 1);
    return 1;
  }
  return 0;
}

/* ---------------------------------------------------------------------- */
/* roles: what each value is in this path */

static void touch(unsigned char *touched, const gen_path *p, gen_ref r) {
  if (r.buf < 0) return;
  touched[r.buf] = 1;
  if (p->bufs[r.buf].role == GEN_BUF_VIEW) touched[p->bufs[r.buf].base] = 1;
}

/* What each buffer the steps touch is to the path; untouched ones (fused
 * away, or not needed by this mode) are unused. */
static int assign_roles(gen_ctx *c) {
  const ir_graph *g = c->g;
  gen_path *p = c->p;
  unsigned char *touched = calloc((size_t)p->n_bufs + 1, 1);
  if (!touched) return lt_fail(c->err, "out of memory");
  for (int s = 0; s < p->n_steps; s++) {
    const gen_step *st = &p->steps[s];
    for (int a = 0; a < st->n_args; a++)
      if (st->args[a].kind == GEN_ARG_BUF) touch(touched, p, st->args[a].ref);
    if (st->kind != GEN_STEP_GEMM) continue;
    const gen_gemm *gm = &st->gemm;
    gen_ref refs[] = {gm->a, gm->w, gm->d, gm->c, gm->bias, gm->aux};
    for (size_t k = 0; k < sizeof refs / sizeof refs[0]; k++) touch(touched, p, refs[k]);
  }
  for (int v = 0; v < g->n_values; v++) {
    gen_buffer *b = &p->bufs[v];
    const ir_value *iv = &g->values[v];
    int base = b->role == GEN_BUF_VIEW ? b->base : v; /* steps see a view as its base */
    if (!touched[base]) b->role = GEN_BUF_UNUSED;
    if (b->role == GEN_BUF_VIEW || b->role == GEN_BUF_UNUSED) continue;
    int read_by_bwd = 0; /* directly, or through a view of it (q of qkv) */
    for (int i = 0; i < c->n_items && iv->kind == IR_V_ACT; i++)
      for (int k = 0; k < c->items[i].op->n_in && c->items[i].backward; k++) {
        int in = c->items[i].op->in[k];
        read_by_bwd |= in == v || (in >= 0 && p->bufs[in].role == GEN_BUF_VIEW &&
                                   p->bufs[in].base == v);
      }
    if (iv->kind == IR_V_PARAM) b->role = GEN_BUF_PARAM;
    else if (iv->kind == IR_V_PARAM_GRAD) b->role = GEN_BUF_PARAM_GRAD;
    else if (iv->kind == IR_V_INPUT) b->role = GEN_BUF_INPUT;
    else if (c->keep[v]) b->role = GEN_BUF_OUTPUT;
    else if (read_by_bwd) b->role = GEN_BUF_SAVED;
    else b->role = GEN_BUF_SCRATCH;
  }
  free(touched);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* the walk */

static int lower_item(gen_ctx *c, int i) {
  const ir_op *op = c->items[i].op;
  switch (op->kind) {
  case IR_OP_LINEAR: case IR_OP_LINEAR_BWD_X: case IR_OP_LINEAR_BWD_W:
    return lower_linear(c, i);
  case IR_OP_ADD:
    if (gen_try_fuse_add_gemm(c, i)) return 0;
    if (gen_try_residual_norm(c, i)) return 0;
    return gen_lower_elementwise(c, i);
  default: break;
  }
  if (gen_is_elementwise(op->kind)) return gen_lower_elementwise(c, i);
  return gen_lower_template_op(c, i);
}

static int lower_path(gen_ctx *c) {
  for (int i = 0; i < c->n_items; i++) {
    if (c->items[i].absorbed) continue;
    if (c->items[i].backward && c->p->n_fwd_steps < 0) c->p->n_fwd_steps = c->p->n_steps;
    int before = c->p->n_steps;
    if (lower_item(c, i)) return -1;
    /* a template op's outputs come from its last kernel (GEMMs and fused
     * runs record their own writes) */
    int made = c->p->n_steps > before;
    if (made && c->p->steps[c->p->n_steps - 1].kind == GEN_STEP_KERNEL)
      for (int k = 0; k < c->items[i].op->n_out; k++) wrote(c, c->items[i].op->out[k]);
  }
  if (c->p->n_fwd_steps < 0) c->p->n_fwd_steps = c->p->n_steps;
  return c->p->kernels.failed ? lt_fail(c->err, "out of memory") : 0;
}

static int build_path(gen_program *prog, int section, int mode, const char *name,
                      lt_error *err) {
  gen_path *p = &prog->paths[prog->n_paths++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->section = section;
  p->mode = mode;
  p->n_fwd_steps = -1;
  gen_ctx c = {.prog = prog, .p = p, .m = prog->m, .g = &prog->m->sections[section],
               .cfg = &prog->cfg, .err = err};
  int nv = c.g->n_values, rc = -1;
  c.readers = calloc((size_t)nv + 1, sizeof *c.readers);
  c.producer_step = calloc((size_t)nv + 1, sizeof *c.producer_step);
  c.keep = calloc((size_t)nv + 1, 1);
  c.stat = calloc((size_t)nv + 1, 1);
  if (!c.readers || !c.producer_step || !c.keep || !c.stat) {
    lt_fail(err, "out of memory");
    goto done;
  }
  for (int v = 0; v < nv; v++) c.producer_step[v] = -1;
  mark_stats(&c);
  if (init_buffers(&c) || select_items(&c)) goto done;
  count_readers(&c);
  mark_kept(&c);
  plan_views(&c);
  if (lower_path(&c)) goto done;
  if (assign_roles(&c)) goto done;
  rc = 0;
done:
  free(c.items);
  free(c.readers);
  free(c.producer_step);
  free(c.keep);
  free(c.stat);
  return rc;
}

int gen_emit_path(gen_program *prog, gen_path *p, lt_error *err); /* gen_emit.c */

int gen_build(gen_program *prog, const ir_model *m, const gen_config *cfg, lt_error *err) {
  memset(prog, 0, sizeof *prog);
  prog->m = m;
  prog->cfg = *cfg;
  if (prog->cfg.grad_accum < 1) prog->cfg.grad_accum = 1;
  if (cfg->B < 1 || cfg->T < 1) return lt_fail(err, "gen: batch and sequence must be >= 1");
  if (cfg->dtype != GEN_F32 && cfg->dtype != GEN_BF16)
    return lt_fail(err, "gen: storage dtype must be f32 or bf16");
  if (cfg->grad_dtype != GEN_F32 && cfg->grad_dtype != GEN_BF16)
    return lt_fail(err, "gen: gradient dtype must be f32 or bf16");
  if (cfg->grad_dtype == GEN_BF16 && cfg->dtype != GEN_BF16)
    return lt_fail(err, "gen: bf16 parameter gradients need bf16 weights and activations "
                        "(bf16-true); fp32 storage keeps fp32 gradients");
  if (m->max_seq && cfg->T > m->max_seq)
    return lt_fail(err, "gen: sequence %d exceeds the model's %d positions", cfg->T, m->max_seq);
  if (!cfg->tuning) {
    if (gen_tune_load(&prog->own_tuning, NULL, err)) return -1;
    prog->cfg.tuning = prog->own_tuning;
  }
  static const struct { int section, mode; const char *name; } paths[] = {
      {IR_EMBED, PATH_ACTIVE, "embed_train"},    {IR_EMBED, PATH_FORWARD, "embed_forward"},
      {IR_BLOCK, PATH_ACTIVE, "block_active"},   {IR_BLOCK, PATH_FROZEN, "block_frozen"},
      {IR_BLOCK, PATH_FORWARD, "block_forward"}, {IR_HEAD, PATH_ACTIVE, "head_train"},
      {IR_HEAD, PATH_FROZEN, "head_frozen"},
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    if (build_path(prog, paths[i].section, paths[i].mode, paths[i].name, err) ||
        gen_emit_path(prog, &prog->paths[prog->n_paths - 1], err)) {
      gen_free(prog);
      return -1;
    }
  }
  gen_path *opt = &prog->paths[prog->n_paths++];
  if (gen_build_optimizer(prog, opt, err) || gen_emit_path(prog, opt, err)) {
    gen_free(prog);
    return -1;
  }
  return 0;
}

void gen_free(gen_program *prog) {
  for (int i = 0; i < prog->n_paths; i++) {
    free(prog->paths[i].bufs);
    free(prog->paths[i].steps);
    sb_free(&prog->paths[i].kernels);
    sb_free(&prog->paths[i].source);
  }
  prog->n_paths = 0;
  gen_tune_free(prog->own_tuning);
  prog->own_tuning = NULL;
  prog->cfg.tuning = NULL;
}

const gen_path *gen_find_path(const gen_program *prog, const char *name) {
  for (int i = 0; i < prog->n_paths; i++)
    if (strcmp(prog->paths[i].name, name) == 0) return &prog->paths[i];
  return NULL;
}

int64_t gen_buffer_bytes(const gen_buffer *b) {
  return b->rows * b->cols * gen_dtype_bytes(b->dtype);
}

const char *gen_precision_name(const gen_config *c) {
  if (c->dtype != GEN_BF16) return "fp32";
  return c->grad_dtype == GEN_BF16 ? "bf16-true" : "bf16-mixed";
}

const char *gen_dtype_name(int dtype) {
  return dtype == GEN_BF16 ? "bf16" : dtype == GEN_I32 ? "i32" : "f32";
}
