/* ir.h: the model IR, shared by the YAML loader, autodiff, the planner and
 * every backend.
 *
 * A model is three sections (embed, block, head). Each section is one op
 * graph over named values; the block graph is instantiated once per layer.
 * Every activation is a row-major 2-D matrix [rows, cols] where rows is the
 * number of tokens N = B*T (or 1 for a scalar such as the loss), so an op
 * needs no other shape information. Parameters live in one model-wide table
 * and carry their Hugging Face names and stored layouts.
 *
 * Conventions the backends rely on:
 *  - An op overwrites its activation outputs.
 *  - An op whose output is a parameter gradient (IR_V_PARAM_GRAD) ADDS to it:
 *    gradients are zeroed once per step, so tied weights (GPT-2's wte used by
 *    embedding and head) and gradient accumulation need no special code.
 *  - out[0] is an op's main result; out[1..] are auxiliary values it saves for
 *    its backward (layernorm mean/rstd, attention log-sum-exp).
 */
#ifndef LT_IR_H
#define LT_IR_H

#include <stdint.h>

#include "err.h"
#include "expr.h"

enum ir_section { IR_EMBED, IR_BLOCK, IR_HEAD, IR_NSECTIONS };

/* How a linear weight is stored in the checkpoint. nn.Linear stores
 * [out, in]; GPT-2's Conv1D stores [in, out]. */
enum ir_layout { IR_LAYOUT_OUT_IN, IR_LAYOUT_IN_OUT };

enum ir_init { IR_INIT_NORMAL, IR_INIT_ZEROS, IR_INIT_ONES };

typedef struct {
  char key[48];       /* unique name in the YAML, e.g. "attn_w" */
  char hf_name[160];  /* checkpoint name; "{i}" is the layer index */
  int section;        /* enum ir_section; IR_BLOCK params exist per layer */
  int ndim;           /* 1 or 2 */
  int64_t shape[2];   /* as stored in the checkpoint */
  int layout;         /* enum ir_layout; used when the param feeds `linear` */
  int decay;          /* AdamW weight decay applies (default: ndim == 2) */
  int init;           /* enum ir_init */
  double init_std;    /* for IR_INIT_NORMAL */
  int adapter;        /* a LoRA adapter added by lora_apply (codegen/front/lora.h) */
  /* interleave: the checkpoint's rows (dim 0) are `groups` blocks of `parts`
   * equal pieces (GPT-NeoX's query_key_value: per head, its q, k, v rows);
   * lisa keeps them part-major (every head's q, then k, then v), so a plain
   * split takes q, k and v apart. 0: rows as stored. */
  int64_t interleave_groups;
  int interleave_parts;
  int line;           /* YAML line, for messages */
} ir_param;

enum ir_value_kind {
  IR_V_INPUT,      /* fed from outside: tokens, targets, previous section */
  IR_V_PARAM,      /* a parameter; .param indexes ir_model.params */
  IR_V_ACT,        /* an activation computed by a forward op */
  IR_V_GRAD,       /* an activation gradient computed by a backward op */
  IR_V_PARAM_GRAD, /* a parameter's gradient buffer; ops accumulate into it */
};

enum ir_dtype { IR_F32, IR_I32 };

typedef struct {
  char name[64];
  int kind;        /* enum ir_value_kind */
  int dtype;       /* enum ir_dtype; only token ids and targets are IR_I32 */
  int scalar;      /* rows = 1 instead of N */
  int64_t cols;    /* width; for IR_V_PARAM/PARAM_GRAD the param's numel */
  int param;       /* IR_V_PARAM, IR_V_PARAM_GRAD: index into params; else -1 */
  int grad;        /* value holding d(loss)/d(this), or -1 (set by autodiff) */
  int saved;       /* read by some backward op: keep it for the ACTIVE path */
  int saved_dx;    /* read by a backward op the FROZEN path runs (dX only) */
} ir_value;

/* Every op kind, in codegen/ir/ops.def's order; its facts are the table
 * ir_op_info (ir_ops.h). */
typedef enum ir_opkind {
#define IR_OP(id, ...) IR_OP_##id,
#define IR_FORMULA_OP(id, name, formula) IR_OP_##id, IR_OP_##id##_BWD,
#include "ops.def"
#undef IR_OP
#undef IR_FORMULA_OP
} ir_opkind;

/* Not an enumerator, so a switch over ir_opkind need not handle it. */
enum {
  IR_OP_COUNT = 0
#define IR_OP(id, ...) +1
#define IR_FORMULA_OP(id, name, formula) +2
#include "ops.def"
#undef IR_OP
#undef IR_FORMULA_OP
};

#define IR_MAX_IN 6
#define IR_MAX_OUT 4

/* How a rope's frequencies are scaled (transformers' rope_type; see
 * ir_rope.h). IR_ROPE_DEFAULT: inv_freq[i] = theta^(-2i/rot), no scaling. */
typedef enum {
  IR_ROPE_DEFAULT, IR_ROPE_LINEAR, IR_ROPE_LLAMA3, IR_ROPE_YARN, IR_ROPE_LONGROPE,
  IR_ROPE_NKINDS
} ir_rope_kind;

#define IR_ROPE_MAX_FACTORS 128 /* longrope: rotary_dims / 2 at most */

typedef struct {
  ir_rope_kind kind;
  double factor;               /* linear, llama3, yarn, longrope: the context's stretch */
  double low_freq_factor;      /* llama3 */
  double high_freq_factor;     /* llama3 */
  double original_max;         /* llama3, yarn, longrope: original_max_position_embeddings */
  double beta_fast, beta_slow; /* yarn: the ramp's bounds in rotations (32, 1) */
  double attention_factor;     /* yarn, longrope: cos and sin scaled by it */
  int truncate;                /* yarn: the ramp's bounds rounded outwards */
  /* longrope: each frequency's divisor, for runs within original_max (short)
   * and beyond it (long) */
  int n_factors;
  float short_factor[IR_ROPE_MAX_FACTORS], long_factor[IR_ROPE_MAX_FACTORS];
} ir_rope_scaling;

typedef struct {
  ir_opkind kind;
  int n_in, in[IR_MAX_IN];   /* value indices; -1 only where documented */
  int n_out, out[IR_MAX_OUT];
  float eps;             /* layernorm, rmsnorm */
  float w_offset;        /* rmsnorm: y = (w_offset + w) * x * rstd (Gemma's 1 + w) */
  int heads, kv_heads;   /* attention (kv_heads == heads unless grouped); rope: heads;
                            rmsnorm: groups normalised apart (per-head q/k norms) */
  int rotary_dims;       /* rope: leading dims of each head that rotate (even) */
  double theta;          /* rope: base of the rotation frequencies */
  ir_rope_scaling rope;  /* rope: frequency scaling (kind 0: none) */
  double theta_local;    /* rope with global_every: the base of the layers that are
                            not global, unscaled (Gemma 3's local layers) */
  double factor;         /* scale; attention: the score scale (0: 1/sqrt(head size)) */
  float softcap;         /* attention: scores soft-capped to softcap * tanh(s /
                            softcap) (Gemma 2); 0: none */
  int window;            /* attention (causal): query t sees keys t - window < j <= t
                            (a sliding window); 0: all earlier keys */
  int global_every;      /* attention with a window: every global_every-th block
                            (layers global_every-1, 2*global_every-1, ...) has
                            none (Gemma 2: 2); 0: the window is in every layer.
                            rope: those layers turn by theta and rope, the
                            others by theta_local (Gemma 3: 6) */
  int activation;        /* ops with an ir_op_info tree (activation, formula
                            ops and their backwards): index into
                            ir_model.activations */
  int causal;            /* attention */
  int64_t sizes[IR_MAX_IN]; /* concat: width of each piece (a piece may be -1) */
  int param_grad;        /* backward op that only writes parameter grads:
                            the FROZEN path skips it */
  int line;              /* YAML line of the forward op, for messages */
} ir_op;

/* Block layer `layer` is one of the global layers of an op with global_every. */
static inline int ir_layer_is_global(const ir_op *op, int layer) {
  return op->global_every > 0 && (layer + 1) % op->global_every == 0;
}

/* An attention's window in block layer `layer` (0: none there). */
static inline int ir_att_window(const ir_op *op, int layer) {
  if (op->window <= 0) return 0;
  return ir_layer_is_global(op, layer) ? 0 : op->window;
}

/* An rmsnorm's (or its backwards') column groups: 1 unless per-head. */
static inline int ir_norm_groups(const ir_op *op) { return op->heads > 1 ? op->heads : 1; }

typedef struct {
  int n_values, cap_values;
  ir_value *values;
  int n_fwd, cap_fwd;
  ir_op *fwd;
  int n_bwd, cap_bwd;
  ir_op *bwd;
  int input;    /* embed: token ids; block/head: the residual stream */
  int targets;  /* head only: target ids; else -1 */
  int output;   /* embed/block: stream passed on; head: the scalar loss */
} ir_graph;

typedef struct {
  char name[64];
  double value;
} ir_config_entry;

/* The function of an op with a tree (an `activation` op, a formula op; see
 * ir_ops.h): y = fn(x), dx = dy * dfn(x). The trees are codegen/ir/expr.h's, config names already bound to numbers, so the only
 * identifier left is the variable; expr_eval_x evaluates them and expr_to_c
 * prints them as C/CUDA. Owned by the model (ir_model_free frees them). */
typedef struct {
  expr_node *fn;   /* y = fn(x) */
  expr_node *dfn;  /* d fn / dx, built by expr_function */
  char *text;      /* the expression as written (or as Lua returned it) */
  char name[64];   /* the Lua function's name, a formula op's name, or "" for
                      an inline expr */
  int line;        /* YAML line of the op, for messages */
} ir_activation;

typedef struct {
  char name[64];
  char path[512];              /* the YAML file it came from */
  int n_config;
  ir_config_entry *config;
  int n_layer;                 /* how many times the block repeats */
  int n_params, cap_params;
  ir_param *params;
  ir_graph sections[IR_NSECTIONS];
  int n_prefixes;
  char prefixes[4][64];        /* tried in order when reading a checkpoint */
  int vocab_size;              /* rows of the table that `embedding` reads */
  int max_seq;                 /* rows of the position table, or 0 */
  int n_activations, cap_activations;
  ir_activation *activations;  /* what activation ops' .activation indexes */
} ir_model;

/* --- construction helpers (ir.c) --- */
void ir_model_init(ir_model *m);
void ir_model_free(ir_model *m);
int ir_add_param(ir_model *m, const ir_param *p);           /* returns index */
int ir_find_param(const ir_model *m, const char *key);      /* -1 if absent */
int ir_add_value(ir_graph *g, const ir_value *v);           /* returns index */
int ir_find_value(const ir_graph *g, const char *name);     /* -1 if absent */
int ir_add_fwd(ir_graph *g, const ir_op *op);
int ir_add_bwd(ir_graph *g, const ir_op *op);
/* Takes ownership of a's trees and text; returns the index. */
int ir_add_activation(ir_model *m, const ir_activation *a);
int64_t ir_param_numel(const ir_param *p);
/* The device and the layout pad the vocabulary to a multiple of this: the
 * head's GEMMs run at that extent (cuBLASLt has no Hopper kernel for an m or
 * k of GPT-2's 50257: docs/benchmarks.md) and vocabulary-wide rows stay
 * 16-byte aligned. */
#define IR_VOCAB_PAD 128
int64_t ir_vocab_padded(const ir_model *m);
/* The elements a param is stored with: a first dimension of vocab_size is
 * padded to ir_vocab_padded rows (1-D: elements), which stay zero; the
 * tensor itself (checkpoints, the store, AdamW, norms) is the first
 * ir_param_numel of them. */
int64_t ir_param_stored_numel(const ir_model *m, const ir_param *p);
const char *ir_op_name(ir_opkind kind);  /* "layernorm", "linear_bwd_w", ... */
int ir_op_from_name(const char *name);   /* forward ops only; -1 if unknown */
const char *ir_layout_name(int layout);  /* "out_in", "in_out" */
const char *ir_section_name(int section);

/* Hugging Face name of a param for a layer ("h.{i}.x" -> "h.3.x"). */
void ir_param_hf_name(const ir_param *p, int layer, char *out, int cap);

/* Total trainable scalars of the model (block params count n_layer times). */
int64_t ir_model_numel(const ir_model *m);

/* A sequence of seq tokens fits the model's positions (max_seq; 0: any):
 * else an error naming the model file. */
/* trains[p] for a run whose embed and head sections train or not (the
 * middle blocks may always): a param trains when a training section reads
 * it (a head tied to the embedding table trains that table). */
void ir_trained_by_sections(const ir_model *m, int embed, int head, unsigned char *trains);

int ir_check_seq(const ir_model *m, int seq, lt_error *err);

#endif
