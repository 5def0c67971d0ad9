/* path_exec.c: a path's steps, resolved to pointers, handed to a backend. */
#include "path_exec.h"

#include "bf16.h"

void *path_exec_ref(const gen_path *p, void *const *bufs, gen_ref r) {
  if (r.buf < 0 || !bufs[r.buf]) return NULL;
  return (char *)bufs[r.buf] + (size_t)r.off * (size_t)gen_dtype_bytes(p->bufs[r.buf].dtype);
}

/* Argument storage for one launch: kernelParams point into it. */
typedef union {
  void *ptr;
  int i;
  unsigned u;
  float f;
} path_exec_slot;

static int run_kernel(const gen_path *p, int s, void *const *bufs, const path_exec_scalars *sc,
                      const path_exec_backend *be, lt_error *err) {
  const gen_step *st = &p->steps[s];
  path_exec_slot vals[GEN_MAX_ARGS];
  void *args[GEN_MAX_ARGS];
  for (int a = 0; a < st->n_args; a++) {
    const gen_arg *ar = &st->args[a];
    switch (ar->kind) {
    case GEN_ARG_BUF: vals[a].ptr = path_exec_ref(p, bufs, ar->ref); break;
    case GEN_ARG_ROWS: vals[a].i = sc->N; break;
    case GEN_ARG_BATCH: vals[a].i = sc->B; break;
    case GEN_ARG_LOSS_SCALE: vals[a].f = sc->loss_scale; break;
    case GEN_ARG_OPT_COUNT: vals[a].i = sc->opt.count; break;
    case GEN_ARG_OPT_STEP: vals[a].i = sc->opt.step; break;
    case GEN_ARG_OPT_LR: vals[a].f = sc->opt.lr; break;
    case GEN_ARG_OPT_BETA1: vals[a].f = sc->opt.beta1; break;
    case GEN_ARG_OPT_BETA2: vals[a].f = sc->opt.beta2; break;
    case GEN_ARG_OPT_EPS: vals[a].f = sc->opt.eps; break;
    case GEN_ARG_OPT_WEIGHT_DECAY: vals[a].f = sc->opt.weight_decay; break;
    case GEN_ARG_OPT_MAX_NORM: vals[a].f = sc->opt.max_norm; break;
    case GEN_ARG_OPT_SEED: vals[a].u = sc->opt.seed; break;
    case GEN_ARG_LAYER: vals[a].i = sc->layer; break;
    case GEN_ARG_POS0: vals[a].i = sc->pos0; break;
    default: return lt_fail(err, "%s step %d: unknown argument kind %d", p->name, s, ar->kind);
    }
    args[a] = &vals[a];
  }
  return be->launch(be->ctx, p, s, args, err);
}

static int run_gemm(const gen_path *p, int s, void *const *bufs, const path_exec_backend *be,
                    lt_error *err) {
  const gen_gemm *g = &p->steps[s].gemm;
  path_exec_gemm pg = {g,
                       path_exec_ref(p, bufs, g->a),
                       path_exec_ref(p, bufs, g->w),
                       path_exec_ref(p, bufs, g->d),
                       g->beta ? path_exec_ref(p, bufs, g->c) : NULL,
                       path_exec_ref(p, bufs, g->bias),
                       path_exec_ref(p, bufs, g->aux)};
  if (!pg.a || !pg.w || !pg.d)
    return lt_fail(err, "%s step %d: a GEMM operand has no memory", p->name, s);
  return be->gemm(be->ctx, p, s, &pg, err);
}

int path_exec_run(const gen_path *p, int from, int to, void *const *bufs,
                  const path_exec_scalars *sc, const path_exec_backend *be, lt_error *err) {
  for (int s = from; s < to; s++) {
    int rc = p->steps[s].kind == GEN_STEP_GEMM ? run_gemm(p, s, bufs, be, err)
                                               : run_kernel(p, s, bufs, sc, be, err);
    if (rc) return -1;
  }
  return 0;
}

void path_read_floats(const void *base, int dtype, int64_t ld, int64_t rows, int64_t cols,
                      float *out) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++)
      out[i * cols + j] = dtype == GEN_BF16 ? bf16_to_f32(((const uint16_t *)base)[i * ld + j])
                                            : ((const float *)base)[i * ld + j];
}

void path_write_floats(void *base, int dtype, int64_t ld, int64_t rows, int64_t cols,
                       const float *src) {
  for (int64_t i = 0; i < rows; i++)
    for (int64_t j = 0; j < cols; j++) {
      if (dtype == GEN_BF16) ((uint16_t *)base)[i * ld + j] = f32_to_bf16(src[i * cols + j]);
      else ((float *)base)[i * ld + j] = src[i * cols + j];
    }
}
