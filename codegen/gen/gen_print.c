/* gen_print.c: the readable plan `lisa gen` writes (plan.txt): for each
 * path the launches in order, each GEMM with its epilogue and the cuBLASLt
 * call it maps to, and the buffers with their roles and sizes. */
#include <stdio.h>

#include "gen_cublaslt.h"
#include "gen_internal.h"

static const char *role_name(int role) {
  static const char *names[] = {"unused", "param", "param-grad", "input", "output",
                                "saved", "scratch", "view", "workspace", "kv-cache"};
  return names[role];
}

static void ref_name(sbuf *o, const gen_path *p, gen_ref r) {
  if (r.buf < 0) return sb_puts(o, "-");
  const gen_buffer *b = &p->bufs[r.buf];
  sb_puts(o, b->name);
  if (r.off || r.ld != gen_buffer_ld(b))
    sb_printf(o, "[:, %lld:] (ld %lld)", (long long)r.off, (long long)r.ld);
}

/* The column-major cuBLASLt form of a row-major GEMM (gen_cublaslt.h). */
static void cublaslt_form(sbuf *o, const gen_lt *lt) {
  sb_printf(o, "        cublasLt: m=%lld n=%lld k=%lld opA=%c opB=%c lda=%lld ldb=%lld ldd=%lld "
               "beta=%d epilogue=%s\n",
            lt->m, lt->n, lt->k, lt->trans_a ? 'T' : 'N', lt->trans_b ? 'T' : 'N', lt->lda,
            lt->ldb, lt->ldd, lt->beta, gen_lt_epilogue_name(lt->epilogue));
}

static void print_gemm(sbuf *o, const gen_path *p, const gen_step *st) {
  const gen_gemm *g = &st->gemm;
  gen_lt lt;
  gen_lt_of(g, &lt);
  static const char *ops[] = {"y = x W", "dx = dy W", "dW += dy^T x"};
  sb_printf(o, "gemm    %s [%d x %d x %d, W %s]: ", ops[g->op], g->rows, g->in, g->out,
            g->layout == IR_LAYOUT_IN_OUT ? "in_out" : "out_in");
  ref_name(o, p, g->d);
  sb_puts(o, " <- ");
  ref_name(o, p, g->a);
  sb_puts(o, ", ");
  ref_name(o, p, g->w);
  if (g->beta && g->op != GEN_GEMM_DW) sb_puts(o, " + "), ref_name(o, p, g->c);
  if (g->epilogue != GEN_EPI_NONE) {
    sb_printf(o, "; epilogue %s", gen_lt_epilogue_name(lt.epilogue));
    if (g->bias.buf >= 0) sb_puts(o, " bias "), ref_name(o, p, g->bias);
    if (g->aux.buf >= 0) sb_puts(o, " aux "), ref_name(o, p, g->aux);
  }
  sb_puts(o, "\n");
  cublaslt_form(o, &lt);
}

/* A scalar argument's name (enum gen_arg_kind from GEN_ARG_OPT_COUNT on). */
static const char *scalar_arg_name(int kind) {
  static const char *const names[] = {"count", "step", "lr", "beta1", "beta2", "eps",
                                      "weight_decay", "max_norm", "seed", "layer", "pos0"};
  int i = kind - GEN_ARG_OPT_COUNT;
  return i >= 0 && i < (int)(sizeof names / sizeof names[0]) ? names[i] : "?";
}

static void print_kernel(sbuf *o, const gen_path *p, const gen_step *st) {
  sb_printf(o, "kernel  %s  grid (%u,%u,%u) block (%u,%u) smem %u\n        %s\n        args:",
            st->kernel, st->grid[0], st->grid[1], st->grid[2], st->block[0], st->block[1],
            st->smem, st->label);
  for (int a = 0; a < st->n_args; a++) {
    const gen_arg *ar = &st->args[a];
    sb_puts(o, " ");
    if (ar->kind == GEN_ARG_ROWS) sb_puts(o, "N");
    else if (ar->kind == GEN_ARG_BATCH) sb_puts(o, "B");
    else if (ar->kind == GEN_ARG_LOSS_SCALE) sb_puts(o, "loss_scale");
    else if (ar->kind != GEN_ARG_BUF) sb_puts(o, scalar_arg_name(ar->kind));
    else ref_name(o, p, ar->ref);
  }
  sb_puts(o, "\n");
}

static void print_buffers(sbuf *o, const gen_path *p) {
  int64_t by_role[GEN_BUF_CACHE + 1] = {0};
  sb_puts(o, "  buffers:\n");
  for (int b = 0; b < p->n_bufs; b++) {
    const gen_buffer *bf = &p->bufs[b];
    if (bf->role == GEN_BUF_UNUSED) continue;
    sb_printf(o, "    %-22s %-10s %-4s [%lld, %lld]", bf->name, role_name(bf->role),
              gen_dtype_name(bf->dtype), (long long)bf->rows, (long long)bf->cols);
    if (bf->role == GEN_BUF_VIEW)
      sb_printf(o, " = %s[:, %lld:] ld %lld\n", p->bufs[bf->base].name, (long long)bf->off,
                (long long)bf->ld);
    else if (gen_buffer_ld(bf) != bf->cols)
      sb_printf(o, " ld %lld, %lld bytes\n", (long long)gen_buffer_ld(bf),
                (long long)gen_buffer_bytes(bf));
    else
      sb_printf(o, " %lld bytes\n", (long long)gen_buffer_bytes(bf));
    if (bf->role != GEN_BUF_VIEW) by_role[bf->role] += gen_buffer_bytes(bf);
  }
  sb_puts(o, "  bytes by role:");
  for (int r = GEN_BUF_PARAM; r <= GEN_BUF_CACHE; r++)
    if (by_role[r]) sb_printf(o, " %s %lld", role_name(r), (long long)by_role[r]);
  sb_puts(o, "\n");
}

void gen_print_plan(const gen_program *prog, sbuf *o) {
  sb_printf(o, "# plan for %s: B=%d T=%d, %s: %s weights and activations, %s parameter "
               "gradients, fp32 accumulation\n",
            prog->m->path, prog->cfg.B, prog->cfg.T, gen_precision_name(&prog->cfg),
            gen_dtype_name(prog->cfg.dtype), gen_dtype_name(prog->cfg.grad_dtype));
  for (int i = 0; i < prog->n_paths; i++) {
    const gen_path *p = &prog->paths[i];
    int kernels = 0;
    for (int s = 0; s < p->n_steps; s++) kernels += p->steps[s].kind == GEN_STEP_KERNEL;
    sb_printf(o, "\n## %s: %d steps (%d kernels, %d GEMMs), %s.cu\n", p->name, p->n_steps, kernels,
              p->n_steps - kernels, p->name);
    for (int s = 0; s < p->n_steps; s++) {
      int sectioned = p->section < IR_NSECTIONS; /* the optimizer has neither */
      if (sectioned && s == 0 && p->n_fwd_steps > 0) sb_puts(o, "  forward:\n");
      if (sectioned && s == p->n_fwd_steps) sb_puts(o, "  backward:\n");
      sb_printf(o, "  %3d ", s);
      if (p->steps[s].kind == GEN_STEP_GEMM) print_gemm(o, p, &p->steps[s]);
      else print_kernel(o, p, &p->steps[s]);
    }
    print_buffers(o, p);
  }
}
