/* emu_gemm.c: GEMM steps with cpu_ops, through fp32 copies of the operands. */
#include "emu_gemm.h"

#include <stdlib.h>

#include "cpu_ops.h"

/* rows x cols at a row stride of ld elements of dtype dt, as new floats. */
static float *read_at(const void *base, int dt, int64_t ld, int64_t rows, int64_t cols) {
  float *out = malloc(sizeof(float) * (size_t)(rows * cols > 0 ? rows * cols : 1));
  if (out) path_read_floats(base, dt, ld, rows, cols, out);
  return out;
}

static int dtype_of(const gen_path *p, gen_ref r) { return p->bufs[r.buf].dtype; }

/* dW += a^T w (D = C, beta 1), in the gradient's dtype, rounded once;
 * BGRAD's bias gradient written, not added to (cuBLASLt's BGRADB). */
static int weight_gradient(const gen_path *p, const path_exec_gemm *pg, const float *a,
                           const float *w) {
  const gen_gemm *g = pg->g;
  const gen_buffer *db = &p->bufs[g->d.buf];
  float *dw = read_at(pg->d, db->dtype, g->d.ld, db->rows, db->cols), *bg = NULL;
  if (!dw) return -1;
  cpu_linear_backward_w(dw, a, w, g->rows, g->in, g->out, g->layout);
  path_write_floats(pg->d, db->dtype, g->d.ld, db->rows, db->cols, dw);
  free(dw);
  if (g->epilogue != GEN_EPI_BGRAD) return 0;
  if (!(bg = calloc((size_t)g->out, sizeof(float)))) return -1;
  cpu_linear_backward_b(bg, a, g->rows, g->out);
  path_write_floats(pg->bias, dtype_of(p, g->bias), g->out, 1, g->out, bg);
  free(bg);
  return 0;
}

/* D = a W^T (+ bias) or dy W, then + C (beta 1) and the epilogue. */
static int product(const gen_path *p, const path_exec_gemm *pg, const float *a, const float *w) {
  const gen_gemm *g = pg->g;
  const int64_t cols = g->op == GEN_GEMM_FWD ? g->out : g->in, n = g->rows * cols;
  float *d = malloc(sizeof(float) * (size_t)n), *bias = NULL, *c = NULL, *aux = NULL;
  int rc = -1;
  if (!d) return -1;
  if (g->op == GEN_GEMM_FWD) {
    if (pg->bias && !(bias = read_at(pg->bias, dtype_of(p, g->bias), g->out, 1, g->out))) goto out;
    cpu_linear_forward(d, a, w, bias, g->rows, g->in, g->out, g->layout);
  } else {
    cpu_linear_backward_x(d, a, w, g->rows, g->in, g->out, g->layout);
  }
  if (g->beta) {
    if (!(c = read_at(pg->c, dtype_of(p, g->c), g->c.ld, g->rows, cols))) goto out;
    for (int64_t i = 0; i < n; i++) d[i] += c[i];
  }
  switch (g->epilogue) { /* aux at D's leading dimension, as cuBLASLt is told */
  case GEN_EPI_GELU_AUX_BIAS: case GEN_EPI_GELU_AUX:
    path_write_floats(pg->aux, dtype_of(p, g->aux), g->d.ld, g->rows, cols, d);
    /* fall through */
  case GEN_EPI_GELU_BIAS: case GEN_EPI_GELU: cpu_gelu_forward(d, d, n); break;
  case GEN_EPI_DGELU:
    if (!(aux = read_at(pg->aux, dtype_of(p, g->aux), g->d.ld, g->rows, cols))) goto out;
    cpu_gelu_backward(d, d, aux, n);
    break;
  default: break;
  }
  path_write_floats(pg->d, dtype_of(p, g->d), g->d.ld, g->rows, cols, d);
  rc = 0;
out:
  free(d), free(bias), free(c), free(aux);
  return rc;
}

int emu_gemm_run(const gen_path *p, const path_exec_gemm *pg, lt_error *err) {
  const gen_gemm *g = pg->g;
  const int out_in = g->layout == IR_LAYOUT_OUT_IN, dw = g->op == GEN_GEMM_DW;
  /* W as the GEMM's extents say: the head's may run into the stored zero
   * pad rows of the vocabulary (ir_vocab_padded) */
  const int64_t ka = g->op == GEN_GEMM_FWD ? g->in : g->out;
  const int64_t wrows = dw ? g->rows : out_in ? g->out : g->in;
  const int64_t wcols = dw ? g->in : out_in ? g->in : g->out;
  float *a = read_at(pg->a, dtype_of(p, g->a), g->a.ld, g->rows, ka);
  float *w = read_at(pg->w, dtype_of(p, g->w), g->w.ld, wrows, wcols);
  int rc = a && w ? (dw ? weight_gradient(p, pg, a, w) : product(p, pg, a, w)) : -1;
  free(a), free(w);
  return rc ? lt_fail(err, "emu: out of memory in a GEMM of %s", p->name) : 0;
}
