/* gen.h: the kernel generator. Turns a model's op graphs (after autodiff)
 * into, for each execution path of each section, an ordered list of steps
 * (generated kernels and cuBLASLt GEMMs), the buffers they touch, and one
 * CUDA C++ translation unit holding every kernel of that path.
 *
 * Paths (one translation unit each):
 *   embed_train    forward + backward of the embedding (it trains)
 *   embed_forward  forward only (--train-embed off: nothing below needs dX)
 *   block_active   forward saving what backward needs; backward dX and dW
 *   block_frozen   forward saving only what dX needs; backward dX only
 *   block_forward  forward, nothing saved
 *   head_train     forward, loss and backward with the head's dW
 *   head_frozen    the same without dW (--train-head off)
 *   optimizer      the step's clip and AdamW over a table of the tensors that
 *                  train (templates/adamw.cuh), and the widening copy that fills
 *                  an fp32 master from bf16 weights; no section (IR_NSECTIONS)
 * Sizes (widths, heads, sequence length) are compile-time constants in the
 * generated code; the row count N = B*T and the batch B are arguments.
 *
 * Fusion, decided by the fuse pass before lowering and recorded in the plan
 * (docs/codegen.md):
 *   - bias and GELU into GEMM epilogues (BIAS, GELU_AUX_BIAS forward;
 *     DGELU, BGRADB backward), a gradient sum into a GEMM's beta = 1;
 *   - residual add + layernorm/rmsnorm, and the backward's gradient sum
 *     into the norm's dX kernel;
 *   - chains of element-wise ops into one generated kernel;
 *   - split/concat of q, k, v into strided views (no copies);
 *   - cross-entropy's forward and backward into one chunked kernel. */
#ifndef LT_GEN_H
#define LT_GEN_H

#include <stdint.h>

#include "err.h"
#include "ir.h"
#include "path.h"
#include "sbuf.h"

enum gen_dtype { GEN_F32, GEN_BF16, GEN_I32 };

#define GEN_DEFAULT_SMS 132     /* H100, H200 */
#define GEN_OPT_BLOCKS_PER_SM 4 /* the optimizer's blocks per multiprocessor */

typedef struct gen_tuning gen_tuning; /* gen_tune.h */

typedef struct {
  int B, T;
  int dtype;       /* storage of activations and weights: GEN_F32 or GEN_BF16 */
  int grad_dtype;  /* storage of parameter gradients: GEN_F32 (the default, bf16-mixed)
                      or GEN_BF16 (bf16-true; only with dtype GEN_BF16). Either way a
                      gradient op adds in fp32 and rounds once on its store */
  int grad_accum;  /* micro-batches per step; > 1 rules out epilogues that
                      overwrite a gradient (BGRADB) */
  const unsigned char *trains; /* per param: it trains; NULL = all */
  const gen_tuning *tuning;    /* NULL: the defaults of templates/tuning.lua */
  int sms;         /* the device's multiprocessors (0: GEN_DEFAULT_SMS); sizes the split
                      of row reductions and the optimizer's grid. The CUDA run sets it
                      from the device; lisa gen and the tests keep the default */
  int opt_blocks;  /* the optimizer's grid (0: GEN_OPT_BLOCKS_PER_SM x sms); fixed, so
                      its sums have one order on every device */
  int opt_nearest; /* bf16-mixed: round the bf16 weight copy to nearest, not stochastically */
  unsigned no_epilogues; /* bits 1u << enum gen_epilogue: fusions not to make (GELU*,
                            DGELU, BGRAD; BIAS always fuses), the ops run as kernels of
                            their own: the CUDA backend's retry when cuBLASLt has no
                            algorithm for a fused GEMM */
  int no_mma;             /* the device has no bf16 mma.sync (before sm_80): SIMT attention */
  int decode;     /* 1: the decoding program instead (lisa sample): embed_decode,
                     block_decode and head_decode, forward only, for one sequence
                     (B = 1); each call's rows are new positions pos0 .. pos0 + N - 1
                     (N <= T), attention appends their keys and values to a KV
                     cache of ctx positions (GEN_BUF_CACHE) and attends over it,
                     rope and position embeddings start at pos0, and the head
                     stops at its logits (GEN_BUF_OUTPUT) */
  int ctx;        /* decode: the positions the cache holds (T <= ctx) */
  const char *dump_after; /* pass names ("fuse,lower", or "all"): each section path's items
                             and their groups after those passes go into gen_program.dump
                             (lisa gen: LISA_GEN_DUMP); NULL: none */
} gen_config;

/* A tensor as a step sees it: rows of buffer `buf`, starting at column
 * `off`, `ld` elements between rows. buf -1: none. */
typedef struct {
  int buf;
  int64_t off, ld;
} gen_ref;

enum gen_gemm_op {
  GEN_GEMM_FWD, /* d = a W^T (layout out_in) or a W (in_out); a = x */
  GEN_GEMM_DX,  /* d = a W or a W^T; a = dy */
  GEN_GEMM_DW,  /* d += a^T b in W's stored layout; a = dy, b = x */
};

enum gen_epilogue {
  GEN_EPI_NONE,
  GEN_EPI_BIAS,          /* + bias */
  GEN_EPI_GELU_BIAS,     /* gelu(. + bias) */
  GEN_EPI_GELU_AUX_BIAS, /* gelu(. + bias), the pre-activation into aux */
  GEN_EPI_GELU,          /* gelu(.) */
  GEN_EPI_GELU_AUX,      /* gelu(.), the pre-activation into aux */
  GEN_EPI_DGELU,         /* . * gelu'(aux) */
  GEN_EPI_BGRAD,         /* also the bias gradient: column sums of a (dy) */
};

typedef struct {
  int op;       /* enum gen_gemm_op */
  int layout;   /* enum ir_layout of the weight */
  int rows, in, out;
  gen_ref a, w, d;  /* w: the weight (FWD, DX) or x (DW) */
  int beta;         /* 1: d = c + result (DW: c is d, the gradient) */
  gen_ref c;        /* beta = 1: what the result is added to */
  int epilogue;     /* enum gen_epilogue */
  gen_ref bias;     /* BIAS, GELU_*: bias; BGRAD: bias gradient */
  gen_ref aux;      /* GELU_AUX_BIAS: written; DGELU: read */
} gen_gemm;

enum gen_arg_kind {
  GEN_ARG_BUF, GEN_ARG_ROWS, GEN_ARG_BATCH, GEN_ARG_LOSS_SCALE,
  /* the optimizer path's scalars (plan_exec's path_exec_opt) */
  GEN_ARG_OPT_COUNT, GEN_ARG_OPT_STEP, GEN_ARG_OPT_LR, GEN_ARG_OPT_BETA1, GEN_ARG_OPT_BETA2,
  GEN_ARG_OPT_EPS, GEN_ARG_OPT_WEIGHT_DECAY, GEN_ARG_OPT_MAX_NORM, GEN_ARG_OPT_SEED,
  GEN_ARG_LAYER, /* a block path's layer index */
  GEN_ARG_POS0,  /* decoding: the first row's position */
};

typedef struct {
  int kind;    /* enum gen_arg_kind */
  gen_ref ref; /* GEN_ARG_BUF */
  int writes;  /* GEN_ARG_BUF: the kernel writes it (maybe reading it too) */
} gen_arg;

#define GEN_MAX_ARGS 24

enum gen_step_kind { GEN_STEP_KERNEL, GEN_STEP_GEMM };

typedef struct {
  int kind;
  char kernel[96];  /* entry point in the path's module (kernels) */
  char label[192];  /* what the step computes, for the plan */
  unsigned grid[3], block[3], smem;
  int n_args;
  gen_arg args[GEN_MAX_ARGS];
  gen_gemm gemm;    /* GEN_STEP_GEMM */
} gen_step;

enum gen_buf_role {
  GEN_BUF_UNUSED,
  GEN_BUF_PARAM,      /* a weight (dtype of the config) */
  GEN_BUF_PARAM_GRAD, /* gen_config.grad_dtype, accumulates */
  GEN_BUF_INPUT,      /* from outside: ids, the stream, its gradient seed */
  GEN_BUF_OUTPUT,     /* to outside: the stream, the loss, dX */
  GEN_BUF_SAVED,      /* kept per instance from forward to backward */
  GEN_BUF_SCRATCH,    /* lives within the path's forward or backward */
  GEN_BUF_VIEW,       /* a strided window into another buffer */
  GEN_BUF_WORKSPACE,  /* a kernel's scratch, not an IR value */
  GEN_BUF_CACHE,      /* decoding: a block's KV cache [ctx, 2 * kv width], kept
                         per block instance from call to call */
};

typedef struct {
  char name[72];
  int role;           /* enum gen_buf_role */
  int dtype;          /* enum gen_dtype */
  int64_t rows, cols;
  int base;           /* GEN_BUF_VIEW: the buffer it looks into */
  int64_t off, ld;    /* GEN_BUF_VIEW: column offset and row stride; other buffers:
                         the row stride when wider than cols (0: cols), as the
                         head's vocabulary-wide values have (IR_VOCAB_PAD) */
} gen_buffer;

/* The head's [rows, vocab] values (logits and their gradient) are laid out with
 * rows of ir_vocab_padded elements: GPT-2's 50257 would leave every row but
 * the first misaligned for the GEMMs and vector loads. The logits GEMM writes
 * the pad columns (zeros: the weight's pad rows are zero), cross_entropy_fused
 * writes zeros there in the gradient, and the gradient's GEMM into the hidden
 * state reads them (k padded); nothing else touches them. The CPU backend and
 * checkpoints are unchanged. */

/* A buffer's row stride (a view's is into its base). */
static inline int64_t gen_buffer_ld(const gen_buffer *b) { return b->ld > 0 ? b->ld : b->cols; }

typedef struct {
  char name[32];      /* "block_active" */
  int section;        /* enum ir_section */
  path_kind mode;
  int n_bufs, cap_bufs;
  gen_buffer *bufs;   /* [0, n_values): the section graph's values; then workspaces */
  int n_steps, cap_steps;
  gen_step *steps;
  int n_fwd_steps;    /* steps[0, n_fwd_steps) are the forward */
  sbuf kernels;       /* generated __global__ wrappers and fused kernels */
  sbuf source;        /* the whole translation unit (gen_emit_path) */
} gen_path;

/* The optimizer path's buffers (gen_path.bufs index) and steps. The table
 * holds one templates/adamw.cuh descriptor per tensor that trains (fp32 and
 * bf16-mixed: AdamWTensor, 56 bytes; bf16-true: AdamWTensorBf16, 48); an
 * entry's AdamW step is its `step` field plus path_exec_opt.step, so a table stays
 * as it is between LISA switches. The counter must start at zero. */
enum gen_opt_buf {
  GEN_OPT_TABLE, GEN_OPT_NORM, GEN_OPT_CLIP, GEN_OPT_PARTIALS, GEN_OPT_COUNTER,
  GEN_OPT_WIDEN_DST, GEN_OPT_WIDEN_SRC, GEN_OPT_NBUFS
};
enum gen_opt_step { GEN_OPT_STEP_NORM, GEN_OPT_STEP_ADAMW, GEN_OPT_STEP_WIDEN, GEN_OPT_NSTEPS };
int gen_opt_entry_bytes(const gen_config *c);

#define GEN_MAX_PATHS 8

typedef struct {
  const ir_model *m;
  gen_config cfg;
  int n_paths;
  gen_path paths[GEN_MAX_PATHS];
  gen_tuning *own_tuning; /* cfg.tuning NULL: the embedded defaults, loaded by
                             gen_build and freed by gen_free */
  sbuf dump;              /* cfg.dump_after's text; kept when gen_build fails (a
                             verifier's failure is where it helps), freed by gen_free */
} gen_program;

/* Lowers every path of m (autodiff already run). Call gen_free after it
 * either way where cfg.dump_after is set. */
int gen_build(gen_program *p, const ir_model *m, const gen_config *c, lt_error *err);
void gen_free(gen_program *p);
const gen_path *gen_find_path(const gen_program *p, const char *name);

/* The readable plan: per path, launches in order, GEMMs with their
 * epilogues (and the cuBLASLt call they map to), buffers and sizes. */
void gen_print_plan(const gen_program *p, sbuf *out);

/* Every path's kernels in one translation unit (templates pasted once). */
int gen_emit_program(const gen_program *p, sbuf *out, lt_error *err);

/* Bytes of one element of a dtype, and of one buffer. */
static inline int gen_dtype_bytes(int dtype) { return dtype == GEN_BF16 ? 2 : 4; }
int64_t gen_buffer_bytes(const gen_buffer *b);
const char *gen_dtype_name(int dtype);
/* "fp32", "bf16-mixed" (bf16 storage, fp32 gradients) or "bf16-true". */
const char *gen_precision_name(const gen_config *c);

#endif
