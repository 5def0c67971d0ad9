/* gen_internal.h: what the generator's passes share (not a public API).
 *
 * Lowering walks one path's ops in order. Each op is lowered once; a fusion
 * rule that takes later ops marks them absorbed. Every value of the section
 * graph is a buffer of the path (gen_path.bufs[v]); kernels' workspaces are
 * appended after them. */
#ifndef LT_GEN_INTERNAL_H
#define LT_GEN_INTERNAL_H

#include "gen.h"

typedef struct {
  const ir_op *op;
  int backward;  /* from graph.bwd */
  int absorbed;  /* lowered as part of an earlier op's step */
} gen_item;

typedef struct {
  gen_program *prog;
  gen_path *p;
  const ir_model *m;
  const ir_graph *g;
  const gen_config *cfg;
  int n_items;
  gen_item *items;
  int *readers;         /* [n_values]: how many of the path's ops read it */
  int *producer_step;   /* [n_values]: step that last wrote it, -1 */
  unsigned char *keep;  /* [n_values]: must be in memory for outside reasons */
  unsigned char *stat;  /* [n_values]: a saved fp32 statistic (mean, rstd, lse) */
  lt_error *err;
} gen_ctx;

/* --- buffers and steps (gen_lower.c) --- */
gen_ref gen_ref_of(const gen_ctx *c, int value);  /* through views */
int gen_value_rows(const gen_ctx *c, int value);
int gen_add_workspace(gen_ctx *c, const char *name, int dtype, int64_t rows, int64_t cols);
gen_step *gen_new_step(gen_ctx *c, int kind);
/* The only reader of value v is item index `reader` (and v is not kept). */
int gen_sole_reader(const gen_ctx *c, int v);
const char *gen_vname(const gen_ctx *c, int v);
/* A C float literal for v in buf (40 bytes): "1e-05f", "10000.0f". */
const char *gen_float(char *buf, double v);
/* add(a, b) with b fresh from a GEMM: the GEMM adds a (beta = 1). 1 if fused. */
int gen_try_fuse_add_gemm(gen_ctx *c, int item);
/* add(a, b) -> s, then a norm of s: one add + norm kernel. 1 if fused. */
int gen_try_residual_norm(gen_ctx *c, int item);
int gen_tune(const gen_ctx *c, const char *kernel, const char *name, int fallback);

/* --- kernel builder (gen_kernels.c): one __global__ wrapper per step --- */
typedef struct {
  gen_ctx *c;
  gen_step *st;
  sbuf params;   /* the wrapper's parameter list */
  sbuf unpack;   /* the emulator trampoline's argument list */
  sbuf args;     /* "a0, a1, ..." for the template call */
  int n;
} gen_kb;

void gen_kb_begin(gen_kb *kb, gen_ctx *c, const char *what, const char *label);
/* Adds a pointer argument; `writes`: not const. dtype GEN_F32/GEN_BF16 as
 * stored, or -1 for the config's storage type (lisa_t). */
void gen_kb_buf(gen_kb *kb, gen_ref r, int dtype, int writes);
void gen_kb_rows(gen_kb *kb);   /* int N */
void gen_kb_batch(gen_kb *kb);  /* int B */
void gen_kb_loss_scale(gen_kb *kb); /* float loss_scale */
/* A scalar argument of the optimizer path (enum gen_arg_kind). */
void gen_kb_scalar(gen_kb *kb, const char *type, int kind);
void gen_kb_launch(gen_kb *kb, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned smem);
/* Emits the wrapper; `body` may use %A for the comma-joined arguments. */
void gen_kb_end(gen_kb *kb, const char *body);
const char *gen_ctype(const gen_ctx *c, int dtype); /* "float", "__nv_bfloat16", "int" */
int gen_buf_dtype(const gen_ctx *c, int value);

/* --- the optimizer path (gen_optim.c) --- */
int gen_build_optimizer(gen_program *prog, gen_path *p, lt_error *err);

/* --- lowering rules (gen_kernels.c, gen_elementwise.c) --- */
int gen_lower_template_op(gen_ctx *c, int item);  /* norms, attention, rope, ... */
int gen_is_elementwise(ir_opkind kind);
int gen_lower_elementwise(gen_ctx *c, int first); /* a run starting at first */

#endif
