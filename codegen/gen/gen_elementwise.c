/* gen_elementwise.c: a run of consecutive element-wise ops (add, mul,
 * scale, gelu, silu and their backwards, custom activations, formula ops)
 * becomes one generated kernel: each element is loaded once, the chain is
 * evaluated in fp32 registers, and only values someone outside the run reads
 * are stored. The code is written here, not taken from a template, because the
 * chain is different for every graph. */
#include <stdio.h>
#include <string.h>

#include "gen_internal.h"
#include "gen_tune.h"
#include "ir_ops.h"

#define MAX_VALS (3 * GEN_MAX_RUN)

/* The fp32 expression of each built-in element-wise op over registers:
 * "%0" and "%1" stand for the registers of in[0] and in[1], "%f" for the
 * factor. Ops with a tree (ir_op_info[].tree: activations, formula ops)
 * print their trees instead. */
static const char *const builtin_expr[IR_OP_COUNT] = {
    [IR_OP_ADD] = "%0 + %1",
    [IR_OP_MUL] = "%0 * %1",
    [IR_OP_SCALE] = "%f * %0",
    [IR_OP_GELU] = "lisa::gelu_forward(%0)",
    [IR_OP_GELU_BWD] = "lisa::gelu_backward(%0, %1)",
    [IR_OP_SILU] = "lisa::silu_forward(%0)",
    [IR_OP_SILU_BWD] = "lisa::silu_backward(%0, %1)",
};

int gen_is_elementwise(ir_opkind kind) {
  return builtin_expr[kind] != NULL || ir_op_info[kind].tree != IR_TREE_NONE;
}

typedef struct {
  int value[MAX_VALS];
  int reg[MAX_VALS];   /* register number v<reg> holding it */
  int n;
} reg_map;

static void bind_reg(reg_map *rm, int v, int reg) {
  rm->value[rm->n] = v;
  rm->reg[rm->n++] = reg;
}

static int find_reg(const reg_map *rm, int v) {
  for (int i = 0; i < rm->n; i++)
    if (rm->value[i] == v) return rm->reg[i];
  return -1;
}

static int64_t elements(const gen_ctx *c, int v) {
  return (int64_t)gen_value_rows(c, v) * c->g->values[v].cols;
}

/* The run `first` leads (the fuse pass's elementwise rule), in order. */
static int collect_run(const gen_ctx *c, int first, int *run) {
  int n = 0;
  for (int i = first; i < c->n_items && n < GEN_MAX_RUN; i++)
    if (c->items[i].leader == first) run[n++] = i;
  return n;
}

/* Reads of v by ops outside the run. */
static int outside_reads(const gen_ctx *c, const int *run, int n, int v) {
  int inside = 0;
  for (int r = 0; r < n; r++) {
    const ir_op *op = c->items[run[r]].op;
    for (int k = 0; k < op->n_in; k++) inside += op->in[k] == v;
  }
  return c->readers[v] - inside;
}

/* A custom activation's tree (or its derivative) as C over register v<x>. */
static int activation_expr(gen_ctx *c, sbuf *b, const ir_op *op, int derivative, int x) {
  const ir_activation *a = &c->m->activations[op->activation];
  char var[16], code[4096];
  snprintf(var, sizeof var, "v%d", x);
  if (expr_to_c(derivative ? a->dfn : a->fn, var, code, sizeof code, c->err))
    return lt_fail(c->err, "%s:%d: activation '%s': %s", c->m->path, a->line, a->text,
                   c->err->msg);
  sb_puts(b, code);
  return 0;
}

static void builtin_op_expr(sbuf *b, const ir_op *op, const int *in) {
  for (const char *p = builtin_expr[op->kind]; *p; p++) {
    char f[40];
    if (p[0] != '%') sb_printf(b, "%c", p[0]);
    else if (p[1] == 'f') sb_puts(b, gen_float(f, op->factor)), p++;
    else sb_printf(b, "v%d", in[p[1] - '0']), p++;
  }
}

/* The fp32 expression of one op over registers. */
static int op_expr(gen_ctx *c, sbuf *b, const ir_op *op, const int *in) {
  switch (ir_op_info[op->kind].tree) {
  case IR_TREE_FN: return activation_expr(c, b, op, 0, in[0]);
  case IR_TREE_DFN:
    sb_printf(b, "v%d * ", in[0]);
    return activation_expr(c, b, op, 1, in[1]);
  case IR_TREE_NONE: break;
  }
  builtin_op_expr(b, op, in);
  return 0;
}

typedef struct {
  gen_kb kb;
  sbuf loads, math, stores;
  reg_map regs;
  int next_reg;
  int64_t cols;
  int flip; /* templates/tuning_test.lua's FLIP: every store negated (tests only) */
} run_code;

/* The element of buffer argument `arg` at row r, column col. */
static void element_at(sbuf *b, const gen_ref *r, const char *arg, int64_t cols) {
  if (r->off == 0 && r->ld == cols) sb_printf(b, "%s[i]", arg);
  else sb_printf(b, "%s[r * %lldLL + %lld + col]", arg, (long long)r->ld, (long long)r->off);
}

/* The argument for value v: "in_" or "out_" and its name as an identifier
 * (the prefix keeps it clear of the body's own names and C's keywords). */
static const char *arg_name(gen_ctx *c, int v, const char *prefix, char *buf, size_t cap) {
  snprintf(buf, cap, "%s%s", prefix, gen_vname(c, v));
  for (char *p = buf; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      *p = '_';
  return buf;
}

static int load_input(run_code *rc, gen_ctx *c, int v) {
  int reg = find_reg(&rc->regs, v);
  if (reg >= 0) return reg;
  gen_ref r = gen_ref_of(c, v);
  char name[48];
  const char *arg = gen_kb_buf(&rc->kb, arg_name(c, v, "in_", name, sizeof name), r, -1, 0);
  reg = rc->next_reg++;
  sb_printf(&rc->loads, "    const float v%d = lisa::to_f32(", reg);
  element_at(&rc->loads, &r, arg, rc->cols);
  sb_puts(&rc->loads, ");\n");
  bind_reg(&rc->regs, v, reg);
  return reg;
}

static void store_output(run_code *rc, gen_ctx *c, int v, int reg) {
  gen_ref r = gen_ref_of(c, v);
  int dt = gen_buf_dtype(c, r.buf);
  char name[48];
  const char *arg = gen_kb_buf(&rc->kb, arg_name(c, v, "out_", name, sizeof name), r, -1, 1);
  sb_puts(&rc->stores, "    ");
  element_at(&rc->stores, &r, arg, rc->cols);
  const char *sign = rc->flip ? "-" : "";
  if (dt == GEN_F32) sb_printf(&rc->stores, " = %sv%d;\n", sign, reg);
  else sb_printf(&rc->stores, " = lisa::from_f32<lisa_t>(%sv%d);\n", sign, reg);
}

static void label_run(gen_ctx *c, const int *run, int n, char *out, size_t cap) {
  size_t len = 0;
  out[0] = 0;
  for (int r = 0; r < n && len + 1 < cap; r++) {
    const ir_op *op = c->items[run[r]].op;
    len += (size_t)snprintf(out + len, cap - len, "%s%s -> %s", r ? "; " : "",
                            ir_op_name(op->kind), gen_vname(c, op->out[0]));
    if (len >= cap) break;
  }
}

int gen_lower_elementwise(gen_ctx *c, int first) {
  int run[GEN_MAX_RUN];
  int n = collect_run(c, first, run);
  char label[192];
  label_run(c, run, n, label, sizeof label);
  run_code rc;
  memset(&rc, 0, sizeof rc);
  const ir_op *op0 = c->items[first].op;
  rc.cols = c->g->values[op0->out[0]].cols;
  if (gen_tune_get(c->prog->cfg.tuning, "elementwise", "FLIP", &rc.flip)) rc.flip = 0;
  int scalar = c->g->values[op0->out[0]].scalar;
  gen_kb_begin(&rc.kb, c, "elementwise", label);
  if (!scalar) gen_kb_rows(&rc.kb);
  int bad = 0;
  for (int r = 0; r < n && !bad; r++) {
    const ir_op *op = c->items[run[r]].op;
    int in[IR_MAX_IN];
    for (int k = 0; k < op->n_in; k++) in[k] = load_input(&rc, c, op->in[k]);
    int reg = rc.next_reg++;
    sb_printf(&rc.math, "    const float v%d = ", reg);
    if (op_expr(c, &rc.math, op, in)) bad = 1;
    sb_puts(&rc.math, ";\n");
    int out = op->out[0];
    bind_reg(&rc.regs, out, reg);
    if (c->keep[out] || outside_reads(c, run, n, out) > 0) store_output(&rc, c, out, reg);
  }
  const unsigned threads = (unsigned)gen_tune(c, "elementwise", "THREADS");
  int64_t total = elements(c, op0->out[0]);
  int64_t blocks = (total + threads - 1) / threads;
  gen_kb_launch(&rc.kb, (unsigned)(blocks < 1024 ? blocks : 1024), 1, 1, threads, 1, 0);
  sbuf body = {0};
  sb_printf(&body,
            "const long long n = %s%lldLL;\n"
            "  for (long long i = (long long)blockIdx.x * %u + threadIdx.x; i < n;\n"
            "       i += (long long)gridDim.x * %u) {\n"
            "    const long long r = i / %lld, col = i %% %lld;\n"
            "    (void)r, (void)col;\n%s%s%s  }",
            scalar ? "" : "(long long)N * ", (long long)(scalar ? total : rc.cols), threads,
            threads, (long long)rc.cols, (long long)rc.cols, sb_str(&rc.loads), sb_str(&rc.math),
            sb_str(&rc.stores));
  gen_kb_end(&rc.kb, sb_str(&body));
  int failed = body.failed || rc.loads.failed || rc.math.failed || rc.stores.failed;
  sb_free(&body);
  sb_free(&rc.loads);
  sb_free(&rc.math);
  sb_free(&rc.stores);
  if (bad) return -1;
  return failed ? lt_fail(c->err, "out of memory") : 0;
}
