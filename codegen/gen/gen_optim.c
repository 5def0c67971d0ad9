/* gen_optim.c: the optimizer path. Three kernels over templates/adamw.cuh
 * and copy.cuh, launched by the trainer (not per section instance):
 *   global_norm  the global gradient norm of the table's tensors and the
 *                clip factor, on the device (no host sync);
 *   adamw        one AdamW step of every tensor in the table, reading clip;
 *   widen        fp32 master weights from the bf16 weights (bf16-mixed:
 *                a LISA block entering the active set).
 * The precision picks the descriptor and the update: fp32 updates the
 * weights in place; bf16-mixed updates fp32 masters and writes the bf16
 * weights from them (stochastic rounding unless opt_nearest); bf16-true
 * updates the bf16 weights in place with bf16 moments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen_internal.h"


int gen_opt_entry_bytes(const gen_config *c) { return c->grad_dtype == GEN_BF16 ? 48 : 56; }

/* Table entries the largest run can need: every tensor that trains, once
 * per block for block params. */
static int64_t max_entries(const gen_ctx *c) {
  int64_t n = 0;
  for (int p = 0; p < c->m->n_params; p++) {
    if (c->cfg->trains && !c->cfg->trains[p]) continue;
    n += c->m->params[p].section == IR_BLOCK ? c->m->n_layer : 1;
  }
  return n > 0 ? n : 1;
}

static void add_buffer(gen_ctx *c, int b, const char *name, int role, int dtype, int64_t rows,
                       int64_t cols) {
  gen_buffer *buf = &c->p->bufs[b];
  memset(buf, 0, sizeof *buf);
  snprintf(buf->name, sizeof buf->name, "%s", name);
  buf->role = role, buf->dtype = dtype, buf->rows = rows, buf->cols = cols, buf->base = -1;
}

static gen_ref ref(int b) { return (gen_ref){b, 0, 0}; }

static int make_buffers(gen_ctx *c, int blocks) {
  gen_path *p = c->p;
  p->bufs = calloc(GEN_OPT_NBUFS, sizeof *p->bufs);
  if (!p->bufs) return lt_fail(c->err, "out of memory");
  p->n_bufs = p->cap_bufs = GEN_OPT_NBUFS;
  add_buffer(c, GEN_OPT_TABLE, "tensors", GEN_BUF_INPUT, GEN_I32, max_entries(c),
             gen_opt_entry_bytes(c->cfg) / 4);
  add_buffer(c, GEN_OPT_NORM, "grad_norm", GEN_BUF_OUTPUT, GEN_F32, 1, 1);
  add_buffer(c, GEN_OPT_CLIP, "clip", GEN_BUF_OUTPUT, GEN_F32, 1, 1);
  add_buffer(c, GEN_OPT_PARTIALS, "norm_partials", GEN_BUF_WORKSPACE, GEN_F32, 1, 2 * blocks);
  add_buffer(c, GEN_OPT_COUNTER, "norm_counter", GEN_BUF_WORKSPACE, GEN_I32, 1, 1);
  /* the widening copy's two sides: any tensor, bound per launch */
  add_buffer(c, GEN_OPT_WIDEN_DST, "master", GEN_BUF_INPUT, GEN_F32, 0, 0);
  add_buffer(c, GEN_OPT_WIDEN_SRC, "weights", GEN_BUF_INPUT, c->cfg->dtype, 0, 0);
  return 0;
}

static void emit_norm(gen_ctx *c, int blocks, const char *desc) {
  gen_kb kb;
  gen_kb_begin(&kb, c, "global_norm", "global gradient norm and clip factor of the table");
  gen_kb_buf(&kb, "norm", ref(GEN_OPT_NORM), GEN_F32, 1);
  gen_kb_buf(&kb, "clip", ref(GEN_OPT_CLIP), GEN_F32, 1);
  gen_kb_buf(&kb, "partials", ref(GEN_OPT_PARTIALS), GEN_F32, 1);
  gen_kb_buf(&kb, "counter", ref(GEN_OPT_COUNTER), GEN_I32, 1);
  gen_kb_buf(&kb, "tensors", ref(GEN_OPT_TABLE), GEN_I32, 0);
  gen_kb_scalar(&kb, "int", "count", GEN_ARG_OPT_COUNT);
  gen_kb_scalar(&kb, "float", "max_norm", GEN_ARG_OPT_MAX_NORM);
  gen_kb_scalar(&kb, "int", "step", GEN_ARG_OPT_STEP);
  const int threads = gen_tune(c, "global_norm", "THREADS");
  gen_kb_launch(&kb, (unsigned)blocks, 1, 1, (unsigned)threads, 1, 0);
  char body[512];
  snprintf(body, sizeof body,
           "lisa::global_norm<%d>(norm, clip, (double *)partials, (unsigned *)counter, "
           "(const lisa::%s *)tensors, count, max_norm, step);",
           threads, desc);
  gen_kb_end(&kb, body);
}

static void emit_adamw(gen_ctx *c, int blocks) {
  const gen_config *cfg = c->cfg;
  gen_kb kb;
  gen_kb_begin(&kb, c, "adamw", "AdamW over the table, clipped by the norm's factor");
  gen_kb_buf(&kb, "tensors", ref(GEN_OPT_TABLE), GEN_I32, 0);
  gen_kb_scalar(&kb, "int", "count", GEN_ARG_OPT_COUNT);
  gen_kb_buf(&kb, "clip", ref(GEN_OPT_CLIP), GEN_F32, 0);
  gen_kb_scalar(&kb, "float", "lr", GEN_ARG_OPT_LR);
  gen_kb_scalar(&kb, "float", "beta1", GEN_ARG_OPT_BETA1);
  gen_kb_scalar(&kb, "float", "beta2", GEN_ARG_OPT_BETA2);
  gen_kb_scalar(&kb, "float", "eps", GEN_ARG_OPT_EPS);
  gen_kb_scalar(&kb, "float", "weight_decay", GEN_ARG_OPT_WEIGHT_DECAY);
  gen_kb_scalar(&kb, "unsigned", "seed", GEN_ARG_OPT_SEED);
  gen_kb_scalar(&kb, "int", "step", GEN_ARG_OPT_STEP);
  const int threads = gen_tune(c, cfg->grad_dtype == GEN_BF16 ? "adamw_multi_bf16" : "adamw_multi",
                               "THREADS");
  gen_kb_launch(&kb, (unsigned)blocks, 1, 1, (unsigned)threads, 1, 0);
  char body[512];
  const char *args = "count, clip, lr, beta1, beta2, eps, weight_decay, seed, step";
  if (cfg->grad_dtype == GEN_BF16)
    snprintf(body, sizeof body,
             "lisa::adamw_multi_bf16<%d>((const lisa::AdamWTensorBf16 *)tensors, %s);", threads,
             args);
  else if (cfg->dtype == GEN_BF16)
    snprintf(body, sizeof body, "lisa::adamw_multi<__nv_bfloat16, %d, %s>((const lisa::AdamWTensor *)tensors, %s);",
             threads, cfg->opt_nearest ? "false" : "true", args);
  else
    snprintf(body, sizeof body, "lisa::adamw_multi<float, %d, false>((const lisa::AdamWTensor *)tensors, %s);",
             threads, args);
  gen_kb_end(&kb, body);
}

static void emit_widen(gen_ctx *c, int blocks) {
  gen_kb kb;
  gen_kb_begin(&kb, c, "widen", "fp32 master weights from the stored weights");
  gen_kb_buf(&kb, "master", ref(GEN_OPT_WIDEN_DST), GEN_F32, 1);
  gen_kb_buf(&kb, "weights", ref(GEN_OPT_WIDEN_SRC), c->cfg->dtype, 0);
  gen_kb_scalar(&kb, "int", "count", GEN_ARG_OPT_COUNT);
  const int threads = gen_tune(c, "copy2d", "THREADS");
  gen_kb_launch(&kb, (unsigned)blocks, 1, 1, (unsigned)threads, 1, 0);
  char body[256];
  snprintf(body, sizeof body, "lisa::copy2d<float, lisa_t, %d>(master, count, weights, count, 1, count);",
           threads);
  gen_kb_end(&kb, body);
}

int gen_build_optimizer(gen_program *prog, gen_path *p, lt_error *err) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "optimizer");
  p->section = IR_NSECTIONS;
  p->mode = PATH_ACTIVE;
  gen_ctx c = {.prog = prog, .p = p, .m = prog->m, .cfg = &prog->cfg, .err = err};
  int blocks = prog->cfg.opt_blocks > 0 ? prog->cfg.opt_blocks
                                         : GEN_OPT_BLOCKS_PER_SM * prog->cfg.sms;
  if (make_buffers(&c, blocks)) return -1;
  const char *desc = prog->cfg.grad_dtype == GEN_BF16 ? "AdamWTensorBf16" : "AdamWTensor";
  emit_norm(&c, blocks, desc);
  emit_adamw(&c, blocks);
  emit_widen(&c, blocks);
  p->n_fwd_steps = p->n_steps;
  if (c.failed) return -1;
  if (p->n_steps != GEN_OPT_NSTEPS || p->kernels.failed) return lt_fail(err, "out of memory");
  return 0;
}
