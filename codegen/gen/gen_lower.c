/* gen_lower.c: one section graph and a mode -> a path of steps, by the
 * passes of `passes` below, in order, each followed by the verifier:
 *   select   the ops the mode runs (FROZEN drops the parameter-gradient ops,
 *            FORWARD every backward op), who reads each value, what must be
 *            kept for outside, the value buffers;
 *   fuse     the fusion rules group the items (gen_fuse.c);
 *   buffers  what the groups imply for memory: cross-entropy's gradient in
 *            place of the logits, kernels' workspaces;
 *   lower    each group's steps at its leader's place: GEMMs with the chosen
 *            epilogue and beta, template kernels, element-wise runs;
 *   roles    each buffer's role (saved, scratch, ...) from the steps;
 *   emit     the translation unit (gen_emit.c).
 * gen_config.dump_after (lisa gen: LISA_GEN_DUMP=fuse,lower, or all) writes
 * the items and their groups into gen_program.dump after those passes. */
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
  return (gen_ref){v, 0, gen_buffer_ld(b)};
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

/* The kernel's tunable from the config's table (templates/tuning.lua, and
 * a user file over it): the one place its default lives. A kernel or
 * parameter the table lacks fails the path (c->failed) and reads as 1. */
int gen_tune(gen_ctx *c, const char *kernel, const char *name) {
  int v;
  if (!gen_tune_get(c->prog->cfg.tuning, kernel, name, &v)) return v;
  if (!c->failed)
    lt_fail(c->err, "gen: templates/tuning.lua has no %s.%s for %s", kernel, name, c->p->name);
  c->failed = 1;
  return 1;
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
    if (iv->param >= 0) { /* as stored: vocabulary rows padded (ir_param_stored_numel) */
      const ir_param *pr = &c->m->params[iv->param];
      const int64_t stored = ir_param_stored_numel(c->m, pr);
      b->cols = pr->ndim == 2 ? pr->shape[1] : stored;
      b->rows = pr->ndim == 2 ? stored / pr->shape[1] : 1;
    } else if (c->p->section == IR_HEAD && !iv->scalar && iv->cols == c->m->vocab_size) {
      b->ld = ir_vocab_padded(c->m);
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
  for (int i = 0; i < g->n_fwd + g->n_bwd; i++) {
    int backward = i >= g->n_fwd;
    const ir_op *op = backward ? &g->bwd[i - g->n_fwd] : &g->fwd[i];
    if (backward && (c->p->mode == PATH_FORWARD ||
                     (op->param_grad && (c->p->mode == PATH_FROZEN || !op_trains(c, op)))))
      continue;
    if (c->cfg->decode && op->kind == IR_OP_CROSS_ENTROPY) continue; /* decoding wants logits */
    c->items[c->n_items++] = (gen_item){.op = op, .backward = backward, .leader = -1,
                                        .rule = GEN_RULE_NONE, .workspace = -1};
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
  if (c->cfg->decode && g->output >= 0 && g->values[g->output].scalar) {
    for (int i = 0; i < g->n_fwd; i++) /* the head's logits, not its loss */
      if (g->fwd[i].kind == IR_OP_CROSS_ENTROPY) c->keep[g->fwd[i].in[0]] = 1;
  } else if (g->output >= 0) {
    c->keep[g->output] = 1;
  }
  if (c->p->mode != PATH_FORWARD && g->input >= 0 && g->values[g->input].grad >= 0)
    c->keep[g->values[g->input].grad] = 1;
  for (int v = 0; v < g->n_values; v++)
    if (g->values[v].kind == IR_V_PARAM_GRAD) c->keep[v] = 1;
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

/* Written by cross_entropy_fused's gradient, whose pad columns are zero. */
static int is_ce_gradient(const gen_ctx *c, int v) {
  for (int j = 0; j < c->n_items; j++)
    if (c->items[j].rule == GEN_RULE_CE_BACKWARD && c->items[j].op->kind == IR_OP_CROSS_ENTROPY_BWD &&
        c->items[j].op->out[0] == v)
      return 1;
  return 0;
}

static int ref_spans(gen_ref r, int64_t cols) { return r.buf >= 0 && r.off == 0 && r.ld >= cols; }

/* The head's GEMMs over a [vocab, in] weight run at the padded vocabulary
 * (the weight's pad rows are stored zero, ir_param_stored_numel): the
 * forward's m, writing zero logits into the pad columns, and the input
 * gradient's k where its dy is cross_entropy_fused's gradient (zero pads).
 * The weight gradient keeps n = vocab: cuBLASLt runs it fast either way, and
 * the gradient's pad rows stay unwritten. */
static int vocab_padded_out(const gen_ctx *c, const ir_op *op, const gen_gemm *gm,
                            const ir_param *w) {
  const int64_t vp = ir_vocab_padded(c->m);
  if (c->p->section != IR_HEAD || w->ndim != 2 || w->layout != IR_LAYOUT_OUT_IN ||
      w->shape[0] != c->m->vocab_size || vp == c->m->vocab_size)
    return 0;
  if (gm->op == GEN_GEMM_FWD) {
    const int bias = gm->bias.buf >= 0 ? op->in[2] : -1; /* a stored, padded param */
    return ref_spans(gm->d, vp) && !gm->beta &&
           gm->epilogue == (bias >= 0 ? GEN_EPI_BIAS : GEN_EPI_NONE) &&
           (bias < 0 || (c->g->values[bias].kind == IR_V_PARAM &&
                         param_of(c, bias)->shape[0] == c->m->vocab_size));
  }
  return gm->op == GEN_GEMM_DX && ref_spans(gm->a, vp) && is_ce_gradient(c, op->in[0]);
}

/* A GEMM with the epilogue and beta the fuse pass chose for its group. */
static int lower_linear(gen_ctx *c, int i) {
  const gen_item *it = &c->items[i];
  const ir_op *op = it->op;
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
  gm->epilogue = it->epilogue;
  gm->op = op->kind == IR_OP_LINEAR ? GEN_GEMM_FWD
           : op->kind == IR_OP_LINEAR_BWD_X ? GEN_GEMM_DX : GEN_GEMM_DW;
  if (op->kind == IR_OP_LINEAR && op->n_in > 2) gm->bias = gen_ref_of(c, op->in[2]);
  if (gm->op == GEN_GEMM_DW) gm->beta = 1, gm->c = gm->d;
  int j = gen_member(c, i, it->rule, -1);
  const ir_op *m = j >= 0 ? c->items[j].op : NULL;
  snprintf(st->label, sizeof st->label, "%s", ir_op_name(op->kind));
  switch (it->rule) {
  case GEN_RULE_GELU_EPILOGUE: /* the pre-activation is aux when backward reads it */
    if (gm->epilogue == GEN_EPI_GELU_AUX_BIAS || gm->epilogue == GEN_EPI_GELU_AUX)
      gm->aux = gen_ref_of(c, op->out[0]);
    gm->d = gen_ref_of(c, m->out[0]);
    break;
  case GEN_RULE_DGELU_EPILOGUE:
    gm->aux = gen_ref_of(c, m->in[1]);
    gm->d = gen_ref_of(c, m->out[0]);
    break;
  case GEN_RULE_BGRAD_EPILOGUE: gm->bias = gen_ref_of(c, m->out[0]); break;
  case GEN_RULE_ADD_BETA: {
    int addend = m->in[c->items[j].addend];
    gm->beta = 1;
    gm->c = gen_ref_of(c, addend);
    gm->d = gen_ref_of(c, m->out[0]);
    size_t len = strlen(st->label);
    snprintf(st->label + len, sizeof st->label - len, " + %s", gen_vname(c, addend));
    break;
  }
  }
  if (vocab_padded_out(c, op, gm, w)) gm->out = (int)ir_vocab_padded(c->m);
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
/* the passes */

static int pass_select(gen_ctx *c) {
  mark_stats(c);
  if (init_buffers(c) || select_items(c)) return -1;
  count_readers(c);
  mark_kept(c);
  for (int v = 0; v < c->g->n_values; v++) c->written_by[v] = -1;
  return 0;
}

/* cross_entropy's gradient overwrites the logits when nothing else reads them */
static void ce_gradient_in_place(gen_ctx *c, int i) {
  int j = gen_member(c, i, GEN_RULE_CE_BACKWARD, -1);
  int logits = c->items[i].op->in[0];
  if (j < 0 || c->readers[logits] != 2 || c->keep[logits]) return;
  gen_buffer *b = &c->p->bufs[c->items[j].op->out[0]];
  b->role = GEN_BUF_VIEW, b->base = logits, b->off = 0, b->ld = gen_buffer_ld(&c->p->bufs[logits]);
}

static int pass_buffers(gen_ctx *c) {
  for (int i = 0; i < c->n_items; i++) {
    if (c->items[i].leader != i) continue;
    if (c->items[i].rule == GEN_RULE_CE_BACKWARD) ce_gradient_in_place(c, i);
    if (gen_plan_workspace(c, i, &c->items[i].workspace)) return -1;
  }
  return 0;
}

static int lower_item(gen_ctx *c, int i) {
  const gen_item *it = &c->items[i];
  switch (it->op->kind) {
  case IR_OP_LINEAR: case IR_OP_LINEAR_BWD_X: case IR_OP_LINEAR_BWD_W:
    return lower_linear(c, i);
  default: break;
  }
  if (it->rule == GEN_RULE_VIEW) return 0;
  if (it->rule == GEN_RULE_ELEMENTWISE) return gen_lower_elementwise(c, i);
  return gen_lower_template_op(c, i);
}

/* Each group's steps, in leader order; the forward's end where the first
 * backward group begins. */
static int pass_lower(gen_ctx *c) {
  for (int i = 0; i < c->n_items; i++) {
    if (c->items[i].leader != i) continue;
    if (c->items[i].backward && c->p->n_fwd_steps < 0) c->p->n_fwd_steps = c->p->n_steps;
    c->items[i].lowered++;
    if (lower_item(c, i)) return -1;
  }
  if (c->p->n_fwd_steps < 0) c->p->n_fwd_steps = c->p->n_steps;
  if (c->failed) return -1;
  return c->p->kernels.failed ? lt_fail(c->err, "out of memory") : 0;
}

int gen_emit_path(gen_program *prog, gen_path *p, lt_error *err); /* gen_emit.c */

static int pass_emit(gen_ctx *c) { return gen_emit_path(c->prog, c->p, c->err); }

/* In enum gen_pass_id's order. */
static const struct {
  const char *name;
  int (*run)(gen_ctx *c);
} passes[GEN_NPASSES] = {
    {"select", pass_select}, {"fuse", gen_pass_fuse}, {"buffers", pass_buffers},
    {"lower", pass_lower},   {"roles", assign_roles}, {"emit", pass_emit},
};

/* gen_config.dump_after names the passes after which to dump the items. */
static void dump_after(const gen_ctx *c, const char *pass) {
  const char *want = c->cfg->dump_after;
  if (!want) return;
  size_t n = strlen(pass);
  const char *hit = strstr(want, pass);
  if (strcmp(want, "all") && !(hit && (hit == want || hit[-1] == ',') &&
                               (hit[n] == 0 || hit[n] == ',')))
    return;
  sbuf *out = &c->prog->dump;
  sb_printf(out, "gen: %s after %s: %d steps\n", c->p->name, pass, c->p->n_steps);
  gen_print_items(c, out);
}

static int run_passes(gen_ctx *c) {
  for (int k = 0; k < GEN_NPASSES; k++) {
    if (passes[k].run(c) || gen_verify(c, k, passes[k].name)) return -1;
    dump_after(c, passes[k].name);
  }
  return 0;
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
  size_t nv = (size_t)c.g->n_values + 1;
  c.readers = calloc(nv, sizeof *c.readers);
  c.written_by = calloc(nv, sizeof *c.written_by);
  c.keep = calloc(nv, 1);
  c.stat = calloc(nv, 1);
  int rc = !c.readers || !c.written_by || !c.keep || !c.stat ? lt_fail(err, "out of memory")
                                                             : run_passes(&c);
  free(c.items);
  free(c.readers);
  free(c.written_by);
  free(c.keep);
  free(c.stat);
  return rc;
}



static void free_paths(gen_program *prog);

/* gen_config.decode's sizes: one sequence, a cache that holds a call. */
static int check_decode(const gen_config *cfg, const ir_model *m, lt_error *err) {
  if (cfg->B != 1) return lt_fail(err, "gen: decoding is for one sequence (B = 1), not %d", cfg->B);
  if (cfg->ctx < cfg->T)
    return lt_fail(err, "gen: a KV cache of %d positions is shorter than a call's %d rows",
                   cfg->ctx, cfg->T);
  if (m->max_seq && cfg->ctx > m->max_seq)
    return lt_fail(err, "gen: a KV cache of %d positions exceeds the model's %d", cfg->ctx,
                   m->max_seq);
  return 0;
}

/* gen_config.decode: the three forward paths generation runs. */
static int build_decode(gen_program *prog, lt_error *err) {
  static const struct { int section; const char *name; } paths[] = {
      {IR_EMBED, "embed_decode"}, {IR_BLOCK, "block_decode"}, {IR_HEAD, "head_decode"}};
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    if (build_path(prog, paths[i].section, PATH_FORWARD, paths[i].name, err)) {
      free_paths(prog);
      return -1;
    }
  return 0;
}

int gen_build(gen_program *prog, const ir_model *m, const gen_config *cfg, lt_error *err) {
  memset(prog, 0, sizeof *prog);
  prog->m = m;
  prog->cfg = *cfg;
  if (prog->cfg.grad_accum < 1) prog->cfg.grad_accum = 1;
  if (prog->cfg.sms < 1) prog->cfg.sms = GEN_DEFAULT_SMS;
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
  if (cfg->decode && check_decode(cfg, m, err)) return -1;
  if (!cfg->tuning) {
    if (gen_tune_load(&prog->own_tuning, NULL, err)) return -1;
    prog->cfg.tuning = prog->own_tuning;
  }
  if (cfg->decode) return build_decode(prog, err);
  static const struct { int section, mode; const char *name; } paths[] = {
      {IR_EMBED, PATH_ACTIVE, "embed_train"},    {IR_EMBED, PATH_FORWARD, "embed_forward"},
      {IR_BLOCK, PATH_ACTIVE, "block_active"},   {IR_BLOCK, PATH_FROZEN, "block_frozen"},
      {IR_BLOCK, PATH_FORWARD, "block_forward"}, {IR_HEAD, PATH_ACTIVE, "head_train"},
      {IR_HEAD, PATH_FROZEN, "head_frozen"},
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    if (build_path(prog, paths[i].section, paths[i].mode, paths[i].name, err)) {
      free_paths(prog);
      return -1;
    }
  }
  gen_path *opt = &prog->paths[prog->n_paths++];
  if (gen_build_optimizer(prog, opt, err) || gen_verify_steps(opt, 1, "optimizer", err) ||
      gen_emit_path(prog, opt, err)) {
    free_paths(prog);
    return -1;
  }
  return 0;
}

static void free_paths(gen_program *prog) {
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

void gen_free(gen_program *prog) {
  free_paths(prog);
  sb_free(&prog->dump);
}

const gen_path *gen_find_path(const gen_program *prog, const char *name) {
  for (int i = 0; i < prog->n_paths; i++)
    if (strcmp(prog->paths[i].name, name) == 0) return &prog->paths[i];
  return NULL;
}

int64_t gen_buffer_bytes(const gen_buffer *b) {
  return b->rows * gen_buffer_ld(b) * gen_dtype_bytes(b->dtype);
}

const char *gen_precision_name(const gen_config *c) {
  if (c->dtype != GEN_BF16) return "fp32";
  return c->grad_dtype == GEN_BF16 ? "bf16-true" : "bf16-mixed";
}

const char *gen_dtype_name(int dtype) {
  return dtype == GEN_BF16 ? "bf16" : dtype == GEN_I32 ? "i32" : "f32";
}
