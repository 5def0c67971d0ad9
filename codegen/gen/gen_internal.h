/* gen_internal.h: what the generator's passes share (not a public API).
 *
 * A section path is built by an ordered list of passes over one gen_ctx
 * (gen_lower.c: select, fuse, buffers, lower, roles, emit), each followed by
 * the verifier (gen_verify.c). The fuse pass (gen_fuse.c) groups the path's
 * items: every item belongs to exactly one group, led by its first item and
 * formed by one rule; lowering makes the group's steps at the leader's place
 * and only reads the decision. Every value of the section graph is a buffer
 * of the path (gen_path.bufs[v]); kernels' workspaces are appended after. */
#ifndef LT_GEN_INTERNAL_H
#define LT_GEN_INTERNAL_H

#include "gen.h"

/* The fusion rules (gen_fuse.c's table): what formed an item's group. */
enum gen_rule {
  GEN_RULE_NONE = -1,     /* not decided yet (before the fuse pass) */
  GEN_RULE_ALONE,         /* the item is lowered by itself */
  GEN_RULE_VIEW,          /* split/concat as strided windows: no step */
  GEN_RULE_GELU_EPILOGUE, /* linear + gelu: GELU(_AUX)(_BIAS) epilogue */
  GEN_RULE_DGELU_EPILOGUE,/* linear_bwd_x + gelu_bwd: DGELU epilogue */
  GEN_RULE_BGRAD_EPILOGUE,/* linear_bwd_w + linear_bwd_b of the same dy: BGRAD */
  GEN_RULE_ADD_BETA,      /* a GEMM + an add of its output: beta = 1 */
  GEN_RULE_ADD_NORM,      /* add + the norm of its sum: one kernel */
  GEN_RULE_NORM_DX_ADD,   /* norm_bwd_x + the add of its dx: the dres argument */
  GEN_RULE_EMBED_POS,     /* embedding + position_embedding + add: one kernel */
  GEN_RULE_CE_BACKWARD,   /* cross_entropy + its backward: one kernel */
  GEN_RULE_ELEMENTWISE,   /* a run of element-wise ops: one generated kernel */
  GEN_NRULES
};
const char *gen_rule_name(int rule);

typedef struct {
  const ir_op *op;
  int backward;  /* from graph.bwd */
  int leader;    /* the item whose lowering computes this one (itself: it leads) */
  int rule;      /* enum gen_rule: the rule that formed the group */
  int epilogue;  /* a GEMM leader: enum gen_epilogue the rules chose */
  int addend;    /* GEN_RULE_ADD_BETA's add: which input the GEMM adds (C) */
  int workspace; /* a leader's kernel scratch buffer (the buffers pass), -1 */
  int lowered;   /* times the lower pass lowered it as a leader */
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
  int *written_by;      /* [n_values]: leader of the group that last writes it, -1 */
  unsigned char *keep;  /* [n_values]: must be in memory for outside reasons */
  unsigned char *stat;  /* [n_values]: a saved fp32 statistic (mean, rstd, lse) */
  int failed;           /* a lowering helper failed (gen_kb_end, gen_tune): message in err */
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
/* The later item of leader's group formed by `rule` whose op is `kind`
 * (-1: any), or -1. */
int gen_member(const gen_ctx *c, int leader, int rule, int kind);
/* A tunable of templates/tuning.lua (or the user's table over it). */
int gen_tune(gen_ctx *c, const char *kernel, const char *name);

/* --- kernel builder (gen_kernels.c): one __global__ wrapper per step ---
 * Arguments are named: the wrapper's parameters take the names given, and
 * the body calls the template with them, `@x` standing for a buffer and its
 * row stride ("x, 72"). Every argument must appear in the body. */
typedef struct {
  char name[48];
  int64_t ld;    /* a buffer's row stride; -1: a scalar */
} gen_kb_name;

typedef struct {
  gen_ctx *c;
  gen_step *st;
  sbuf params;   /* the wrapper's parameter list */
  sbuf unpack;   /* the emulator trampoline's argument list */
  gen_kb_name names[GEN_MAX_ARGS];
  int n, failed;
} gen_kb;

void gen_kb_begin(gen_kb *kb, gen_ctx *c, const char *what, const char *label);
/* Adds a pointer argument called `name` (name_<n> if taken: the name it
 * got is returned); `writes`: not const. dtype GEN_F32/GEN_BF16 as stored,
 * or -1 for the config's storage type (lisa_t). */
const char *gen_kb_buf(gen_kb *kb, const char *name, gen_ref r, int dtype, int writes);
void gen_kb_rows(gen_kb *kb);       /* int N */
void gen_kb_batch(gen_kb *kb);      /* int B */
void gen_kb_loss_scale(gen_kb *kb); /* float loss_scale */
/* A scalar argument of the optimizer path (enum gen_arg_kind). */
void gen_kb_scalar(gen_kb *kb, const char *type, const char *name, int kind);
void gen_kb_launch(gen_kb *kb, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned smem);
/* Emits the wrapper around `body`; -1 (the message in c->err, and
 * c->failed set) when the body names an unknown argument or leaves
 * one out. */
int gen_kb_end(gen_kb *kb, const char *body);
const char *gen_ctype(const gen_ctx *c, int dtype); /* "float", "__nv_bfloat16", "int" */
int gen_buf_dtype(const gen_ctx *c, int value);

/* --- the passes (gen_fuse.c, gen_verify.c) --- */
#define GEN_MAX_RUN 16 /* element-wise ops in one generated kernel */
int gen_pass_fuse(gen_ctx *c);
/* The pass table's order; the verifier checks what the passes so far made. */
enum gen_pass_id { GEN_PASS_SELECT, GEN_PASS_FUSE, GEN_PASS_BUFFERS, GEN_PASS_LOWER,
                   GEN_PASS_ROLES, GEN_PASS_EMIT, GEN_NPASSES };
/* After pass `done` of a section path: every item in one well-formed group
 * and lowered exactly once (from fuse, lower on); every step's buffers in
 * range, and (roles on) each buffer a step reads written by an earlier
 * step or coming from outside. -1 and a message naming path and pass. */
int gen_verify(const gen_ctx *c, int done, const char *pass);
/* The step and buffer checks alone (the optimizer path has no items). */
int gen_verify_steps(const gen_path *p, int roles, const char *pass, lt_error *err);
/* The items and their groups, one line each (LISA_GEN_DUMP). */
void gen_print_items(const gen_ctx *c, sbuf *out);

/* --- the optimizer path (gen_optim.c) --- */
int gen_build_optimizer(gen_program *prog, gen_path *p, lt_error *err);

/* --- lowering (gen_ops.c, gen_elementwise.c) --- */
int gen_lower_template_op(gen_ctx *c, int item);  /* norms, attention, rope, ... */
/* A leader's kernel scratch (norm dW partial sums, attention's dsum, the
 * per-row losses) into *ws (-1: it needs none); -1 on failure. */
int gen_plan_workspace(gen_ctx *c, int item, int *ws);
int gen_is_elementwise(ir_opkind kind);
int gen_lower_elementwise(gen_ctx *c, int first); /* the run `first` leads */

#endif
