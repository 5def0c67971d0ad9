/* plan_exec.c: a path's steps, resolved to pointers, handed to a backend. */
#include "plan_exec.h"

void *px_ref(const gen_path *p, void *const *bufs, gen_ref r) {
  if (r.buf < 0 || !bufs[r.buf]) return NULL;
  return (char *)bufs[r.buf] + (size_t)r.off * (size_t)gen_dtype_bytes(p->bufs[r.buf].dtype);
}

/* Argument storage for one launch: kernelParams point into it. */
typedef union {
  void *ptr;
  int i;
  unsigned u;
  float f;
} px_slot;

static int run_kernel(const gen_path *p, int s, void *const *bufs, const px_scalars *sc,
                      const px_backend *be, lt_error *err) {
  const gen_step *st = &p->steps[s];
  px_slot vals[GEN_MAX_ARGS];
  void *args[GEN_MAX_ARGS];
  for (int a = 0; a < st->n_args; a++) {
    const gen_arg *ar = &st->args[a];
    switch (ar->kind) {
    case GEN_ARG_BUF: vals[a].ptr = px_ref(p, bufs, ar->ref); break;
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
    default: return lt_fail(err, "%s step %d: unknown argument kind %d", p->name, s, ar->kind);
    }
    args[a] = &vals[a];
  }
  return be->launch(be->ctx, p, s, args, err);
}

static int run_gemm(const gen_path *p, int s, void *const *bufs, const px_backend *be,
                    lt_error *err) {
  const gen_gemm *g = &p->steps[s].gemm;
  px_gemm pg = {g,
                px_ref(p, bufs, g->a),
                px_ref(p, bufs, g->w),
                px_ref(p, bufs, g->d),
                g->beta ? px_ref(p, bufs, g->c) : NULL,
                px_ref(p, bufs, g->bias),
                px_ref(p, bufs, g->aux)};
  if (!pg.a || !pg.w || !pg.d)
    return lt_fail(err, "%s step %d: a GEMM operand has no memory", p->name, s);
  return be->gemm(be->ctx, p, s, &pg, err);
}

int px_run(const gen_path *p, int from, int to, void *const *bufs, const px_scalars *sc,
           const px_backend *be, lt_error *err) {
  for (int s = from; s < to; s++) {
    int rc = p->steps[s].kind == GEN_STEP_GEMM ? run_gemm(p, s, bufs, be, err)
                                               : run_kernel(p, s, bufs, sc, be, err);
    if (rc) return -1;
  }
  return 0;
}
