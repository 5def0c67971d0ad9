#include "gen_cublaslt.h"

static int epilogue_of(const gen_gemm *g) {
  switch (g->epilogue) {
  case GEN_EPI_BIAS: return GEN_LT_BIAS;
  case GEN_EPI_GELU: return GEN_LT_GELU;
  case GEN_EPI_GELU_AUX: return GEN_LT_GELU_AUX;
  case GEN_EPI_GELU_BIAS: return GEN_LT_GELU_BIAS;
  case GEN_EPI_GELU_AUX_BIAS: return GEN_LT_GELU_AUX_BIAS;
  case GEN_EPI_DGELU: return GEN_LT_DGELU;
  case GEN_EPI_BGRAD: /* dy is A for an in_out weight, B for out_in */
    return g->layout == IR_LAYOUT_IN_OUT ? GEN_LT_BGRADA : GEN_LT_BGRADB;
  }
  return GEN_LT_DEFAULT;
}

/* FWD  y  = x W^T (out_in) | x W (in_out):  y^T = W^T' x^T, m = out, n = rows
 * DX   dx = dy W  (out_in) | dy W^T:        dx^T = W' dy^T,  m = in,  n = rows
 * DW   dW += dy^T x (out_in): dW^T = x^T dy,  m = in,  n = out, k = rows
 *      dW += x^T dy (in_out): dW^T = dy^T x,  m = out, n = in,  k = rows */
void gen_lt_of(const gen_gemm *g, gen_lt *o) {
  int in_out = g->layout == IR_LAYOUT_IN_OUT;
  o->beta = g->beta;
  o->epilogue = epilogue_of(g);
  o->ldd = g->d.ld;
  if (g->op == GEN_GEMM_FWD || g->op == GEN_GEMM_DX) {
    int fwd = g->op == GEN_GEMM_FWD;
    o->m = fwd ? g->out : g->in;
    o->n = g->rows;
    o->k = fwd ? g->in : g->out;
    o->a_from = GEN_LT_W, o->b_from = GEN_LT_A;
    o->trans_a = fwd ? !in_out : in_out;
    o->trans_b = 0;
    o->lda = g->w.ld, o->ldb = g->a.ld;
    return;
  }
  o->k = g->rows;
  o->trans_a = 0, o->trans_b = 1;
  if (in_out) { /* A = dy, B = x */
    o->m = g->out, o->n = g->in;
    o->a_from = GEN_LT_A, o->b_from = GEN_LT_W;
    o->lda = g->a.ld, o->ldb = g->w.ld;
  } else { /* A = x, B = dy */
    o->m = g->in, o->n = g->out;
    o->a_from = GEN_LT_W, o->b_from = GEN_LT_A;
    o->lda = g->w.ld, o->ldb = g->a.ld;
  }
}

const char *gen_lt_epilogue_name(int e) {
  static const char *names[] = {"DEFAULT", "BIAS", "GELU", "GELU_AUX", "GELU_BIAS",
                                "GELU_AUX_BIAS", "DGELU", "BGRADA", "BGRADB"};
  return names[e];
}

static int dtype_at(const gen_path *p, gen_ref r) { return r.buf < 0 ? -1 : p->bufs[r.buf].dtype; }

void gen_lt_types_of(const gen_path *p, const gen_gemm *g, gen_lt_types *o) {
  gen_lt lt;
  gen_lt_of(g, &lt);
  o->a = dtype_at(p, lt.a_from == GEN_LT_A ? g->a : g->w);
  o->b = dtype_at(p, lt.b_from == GEN_LT_A ? g->a : g->w);
  o->d = dtype_at(p, g->d);
  o->c = o->d;
  o->bias = dtype_at(p, g->bias);
  o->aux = dtype_at(p, g->aux);
}

unsigned gen_lt_tier_align(int tier, int elem_bytes) {
  unsigned a = tier <= 0 ? 256u : tier == 1 ? 16u : (unsigned)elem_bytes;
  return a < (unsigned)elem_bytes ? (unsigned)elem_bytes : a;
}

unsigned gen_lt_ptr_align(uintptr_t p) {
  unsigned a = 1;
  while (a < 256 && (p & a) == 0) a <<= 1;
  return p == 0 ? 256u : a;
}

int gen_lt_pick_tier(const int have[GEN_LT_NTIERS], int n, const uintptr_t *p, const int *elem) {
  for (int t = 0; t < GEN_LT_NTIERS; t++) {
    if (!have[t]) continue;
    int ok = 1;
    for (int i = 0; i < n && ok; i++)
      ok = !p[i] || gen_lt_ptr_align(p[i]) >= gen_lt_tier_align(t, elem[i]);
    if (ok) return t;
  }
  return -1;
}
