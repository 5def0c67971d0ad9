/* gen_verify.c: the checks run after every pass of a path (gen_lower.c's
 * table). A pass that breaks an invariant fails the build there, naming
 * the path, the pass and the item or step, rather than as wrong numbers in
 * a kernel far downstream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"

#define FAIL(...) lt_fail(err, __VA_ARGS__)

/* err's message, prefixed with where the check ran. */
static int in_pass(lt_error *err, const char *path, const char *pass) {
  char msg[sizeof err->msg];
  memcpy(msg, err ? err->msg : "", err ? sizeof msg : 1);
  return lt_fail(err, "gen: %s after %s: %s", path, pass, msg);
}

/* ---------------------------------------------------------------------- */
/* groups */

static int is_norm(int k) { return k == IR_OP_LAYERNORM || k == IR_OP_RMSNORM; }
static int is_norm_dx(int k) { return k == IR_OP_LAYERNORM_BWD_X || k == IR_OP_RMSNORM_BWD_X; }

/* May an op of `kind` lead a group of `rule`? */
static int leader_ok(int rule, int kind) {
  switch (rule) {
  case GEN_RULE_ALONE: return 1;
  case GEN_RULE_VIEW: return kind == IR_OP_SPLIT || kind == IR_OP_CONCAT;
  case GEN_RULE_GELU_EPILOGUE: return kind == IR_OP_LINEAR;
  case GEN_RULE_DGELU_EPILOGUE: return kind == IR_OP_LINEAR_BWD_X;
  case GEN_RULE_BGRAD_EPILOGUE: return kind == IR_OP_LINEAR_BWD_W;
  case GEN_RULE_ADD_BETA: return kind == IR_OP_LINEAR || kind == IR_OP_LINEAR_BWD_X;
  case GEN_RULE_ADD_NORM: return kind == IR_OP_ADD;
  case GEN_RULE_NORM_DX_ADD: return is_norm_dx(kind);
  case GEN_RULE_EMBED_POS: return kind == IR_OP_EMBEDDING;
  case GEN_RULE_CE_BACKWARD: return kind == IR_OP_CROSS_ENTROPY;
  case GEN_RULE_ELEMENTWISE: return gen_is_elementwise(kind);
  }
  return 0;
}

/* May an op of `kind` join a group of `rule`? */
static int member_ok(int rule, int kind) {
  switch (rule) {
  case GEN_RULE_GELU_EPILOGUE: return kind == IR_OP_GELU;
  case GEN_RULE_DGELU_EPILOGUE: return kind == IR_OP_GELU_BWD;
  case GEN_RULE_BGRAD_EPILOGUE: return kind == IR_OP_LINEAR_BWD_B;
  case GEN_RULE_ADD_BETA: case GEN_RULE_NORM_DX_ADD: return kind == IR_OP_ADD;
  case GEN_RULE_ADD_NORM: return is_norm(kind);
  case GEN_RULE_EMBED_POS: return kind == IR_OP_POS_EMBEDDING || kind == IR_OP_ADD;
  case GEN_RULE_CE_BACKWARD: return kind == IR_OP_CROSS_ENTROPY_BWD;
  case GEN_RULE_ELEMENTWISE: return gen_is_elementwise(kind);
  }
  return 0; /* alone and view groups have no members */
}

/* How many members a group of `rule` has: [least, most]. */
static void member_count(int rule, int *least, int *most) {
  *least = *most = 1;
  if (rule == GEN_RULE_ALONE || rule == GEN_RULE_VIEW) *least = *most = 0;
  if (rule == GEN_RULE_EMBED_POS) *least = *most = 2;
  if (rule == GEN_RULE_CE_BACKWARD) *most = 4;
  if (rule == GEN_RULE_ELEMENTWISE) *least = 0, *most = GEN_MAX_RUN - 1;
}

static int check_item(const gen_ctx *c, int i, int lowered, lt_error *err) {
  const gen_item *it = &c->items[i];
  const char *op = ir_op_name(it->op->kind);
  int l = it->leader;
  if (l < 0 || l > i) return FAIL("item %d (%s) is in no group (leader %d)", i, op, l);
  const gen_item *ld = &c->items[l];
  if (ld->leader != l) return FAIL("item %d (%s): its leader %d leads no group", i, op, l);
  if (it->rule != ld->rule || it->rule <= GEN_RULE_NONE || it->rule >= GEN_NRULES)
    return FAIL("item %d (%s): rule %s in a group of %s", i, op, gen_rule_name(it->rule),
                gen_rule_name(ld->rule));
  if (l == i ? !leader_ok(it->rule, it->op->kind) : !member_ok(it->rule, it->op->kind))
    return FAIL("item %d (%s) cannot %s a %s group", i, op, l == i ? "lead" : "join",
                gen_rule_name(it->rule));
  if (it->rule == GEN_RULE_ELEMENTWISE && it->backward != ld->backward)
    return FAIL("item %d (%s): an element-wise run across forward and backward", i, op);
  if (lowered && it->lowered != (l == i))
    return FAIL("item %d (%s) lowered %d times as a leader%s", i, op, it->lowered,
                l == i ? "" : " (it is a member)");
  return 0;
}

static int check_groups(const gen_ctx *c, int lowered, lt_error *err) {
  for (int i = 0; i < c->n_items; i++)
    if (check_item(c, i, lowered, err)) return -1;
  for (int l = 0; l < c->n_items; l++) {
    if (c->items[l].leader != l) continue;
    int n = 0, least, most;
    for (int j = l + 1; j < c->n_items; j++) n += c->items[j].leader == l;
    member_count(c->items[l].rule, &least, &most);
    if (n < least || n > most)
      return FAIL("item %d (%s) leads a %s group of %d members", l,
                  ir_op_name(c->items[l].op->kind), gen_rule_name(c->items[l].rule), n);
  }
  return 0;
}

static int check_undecided(const gen_ctx *c, lt_error *err) {
  for (int i = 0; i < c->n_items; i++)
    if (c->items[i].leader != -1 || c->items[i].rule != GEN_RULE_NONE)
      return FAIL("item %d (%s) grouped before the fuse pass", i,
                  ir_op_name(c->items[i].op->kind));
  return 0;
}

/* ---------------------------------------------------------------------- */
/* buffers and steps */

static int check_views(const gen_path *p, lt_error *err) {
  for (int b = 0; b < p->n_bufs; b++) {
    const gen_buffer *v = &p->bufs[b];
    if (v->role != GEN_BUF_VIEW) continue;
    if (v->base < 0 || v->base >= p->n_bufs || p->bufs[v->base].role == GEN_BUF_VIEW)
      return FAIL("view %s looks into buffer %d, not a buffer of its own", v->name, v->base);
  }
  return 0;
}

typedef struct {
  gen_ref ref;
  int writes;
} access;

/* The buffers step st reads and writes (GEMM operands by their epilogue). */
static int step_accesses(const gen_step *st, access *out) {
  int n = 0;
  if (st->kind == GEN_STEP_KERNEL) {
    for (int a = 0; a < st->n_args; a++)
      if (st->args[a].kind == GEN_ARG_BUF) out[n++] = (access){st->args[a].ref, st->args[a].writes};
    return n;
  }
  const gen_gemm *g = &st->gemm;
  int epi = g->epilogue;
  int writes_aux = epi == GEN_EPI_GELU_AUX_BIAS || epi == GEN_EPI_GELU_AUX;
  out[n++] = (access){g->a, 0};
  out[n++] = (access){g->w, 0};
  if (g->beta) out[n++] = (access){g->c, 0};
  if (epi != GEN_EPI_NONE) out[n++] = (access){g->bias, epi == GEN_EPI_BGRAD};
  if (epi != GEN_EPI_NONE) out[n++] = (access){g->aux, writes_aux};
  out[n++] = (access){g->d, 1};
  return n;
}

static int from_outside(int role) {
  return role == GEN_BUF_INPUT || role == GEN_BUF_PARAM || role == GEN_BUF_PARAM_GRAD;
}

/* Every reference in range; with roles, nothing read before it is written
 * (unless it comes from outside) and no step touches an unused buffer. */
int gen_verify_steps(const gen_path *p, int roles, const char *pass, lt_error *err) {
  if (check_views(p, err)) return in_pass(err, p->name, pass);
  unsigned char *written = calloc((size_t)p->n_bufs + 1, 1);
  if (!written) return lt_fail(err, "out of memory");
  int rc = 0;
  for (int s = 0; s < p->n_steps && !rc; s++) {
    access acc[GEN_MAX_ARGS + 6];
    int n = step_accesses(&p->steps[s], acc);
    for (int pass_w = 0; pass_w < 2 && !rc; pass_w++) /* reads first, then writes */
      for (int k = 0; k < n && !rc; k++) {
        int b = acc[k].ref.buf;
        if (b < 0 || acc[k].writes != pass_w) continue;
        if (b >= p->n_bufs) {
          rc = FAIL("step %d (%s) refers to buffer %d of %d", s, p->steps[s].label, b, p->n_bufs);
          break;
        }
        if (p->bufs[b].role == GEN_BUF_VIEW) b = p->bufs[b].base;
        if (!roles) continue;
        int role = p->bufs[b].role;
        if (role == GEN_BUF_UNUSED)
          rc = FAIL("step %d (%s) touches %s, a buffer no step uses", s, p->steps[s].label,
                    p->bufs[b].name);
        else if (!pass_w && !written[b] && !from_outside(role))
          rc = FAIL("step %d (%s) reads %s before any step writes it", s, p->steps[s].label,
                    p->bufs[b].name);
        if (pass_w) written[b] = 1;
      }
  }
  free(written);
  return rc ? in_pass(err, p->name, pass) : 0;
}

int gen_verify(const gen_ctx *c, int done, const char *pass) {
  lt_error *err = c->err;
  int rc = 0;
  if (done == GEN_PASS_SELECT) rc = check_undecided(c, err);
  else rc = check_groups(c, done >= GEN_PASS_LOWER, err);
  if (rc) return in_pass(err, c->p->name, pass);
  if (done < GEN_PASS_FUSE) return 0;
  return gen_verify_steps(c->p, done >= GEN_PASS_ROLES, pass, err);
}

void gen_print_items(const gen_ctx *c, sbuf *out) {
  for (int i = 0; i < c->n_items; i++) {
    const gen_item *it = &c->items[i];
    sb_printf(out, "  %3d %-24s %s", i, ir_op_name(it->op->kind), it->backward ? "bwd" : "fwd");
    if (it->leader == i) sb_printf(out, "  leads %s", gen_rule_name(it->rule));
    else if (it->leader >= 0) sb_printf(out, "  in %d's %s", it->leader, gen_rule_name(it->rule));
    if (it->workspace >= 0) sb_printf(out, "  workspace %s", c->p->bufs[it->workspace].name);
    sb_puts(out, "\n");
  }
}
