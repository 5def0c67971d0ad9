/* ir_ops.h: one table entry per op kind (codegen/ir/ops.def), the facts the
 * front end, autodiff and every backend share: the name, the arity, the YAML
 * attributes, the shape rule, the gradient rule, which inputs train in place,
 * what labels the op in a profile, and for an element-wise op defined by a
 * formula the formula itself.
 *
 * Rules that are code are functions here, written against two small
 * interfaces (ir_shape, ir_grad) that the front end and autodiff fill, so the
 * IR depends on neither. Backends keep tables of their own indexed by
 * ir_opkind (runtime/cpu/executor.c, codegen/gen/gen_elementwise.c). */
#ifndef LT_IR_OPS_H
#define LT_IR_OPS_H

#include "ir.h"

/* --- shape rules: the front end reads an op, the rule checks its inputs,
 * reads its attributes and decides its outputs --- */

typedef struct ir_shape ir_shape;
struct ir_shape {
  ir_model *m;
  int section;
  ir_op *op;                      /* kind and inputs set; the rule sets attributes */
  int n_names;                    /* output names the op gives */
  int64_t cols[IR_MAX_OUT];       /* out: width of every output */
  const char *suffix[IR_MAX_OUT]; /* out: NULL: a given name; else out[0] + suffix */
  int scalar;                     /* out: out[0] has one row (the loss) */
  /* Attribute readers (the front end's): 1 and *out when the op gives the
   * attribute, 0 when it does not, -1 when its value is bad (reported). */
  int (*number)(ir_shape *s, const char *key, double *out);
  int (*count)(ir_shape *s, const char *key, int64_t max, int64_t *out);
  int (*flag)(ir_shape *s, const char *key, int *out);
  /* n whole numbers in [1, max], each named `item` in messages */
  int (*counts)(ir_shape *s, const char *key, const char *item, int n, int64_t max,
                int64_t *out);
  /* Reports msg at attribute `key`, or at the op (prefixed with its name)
   * when key is NULL; returns -1. */
  int (*fail)(ir_shape *s, const char *key, const char *msg);
  void *reader;                   /* the front end's own state */
};
typedef int (*ir_shape_fn)(ir_shape *s);

/* --- gradient rules: called once per forward op on autodiff's reverse walk,
 * with dy[k] the total gradient of out[k] (-1: none) --- */

typedef struct ir_grad ir_grad;
struct ir_grad {
  const ir_graph *g;
  const ir_op *op;  /* the forward op */
  const int *dy;
  int (*needs)(ir_grad *r, int v);       /* v may get a gradient */
  int (*dx)(ir_grad *r, int v);          /* a new gradient value for input v */
  int (*dparam)(ir_grad *r, int v);      /* param value v's gradient buffer */
  void (*pass)(ir_grad *r, int v, int grad); /* grad is a term of v's gradient */
  /* Adds a backward op that copies op's attributes (eps, heads, ...). */
  void (*emit)(ir_grad *r, const ir_op *like, ir_opkind kind, int n_in, const int *in,
               int n_out, const int *out, int param_grad);
  void *ctx;                             /* autodiff's own state */
};
typedef void (*ir_grad_fn)(ir_grad *r);

/* --- the table --- */

typedef struct {
  int min, max;
} ir_range;

/* Where an element-wise op's function comes from: the model's
 * activations[op.activation], parsed from the op's attributes (activation)
 * or from the table's formula (formula ops). */
enum ir_tree { IR_TREE_NONE, IR_TREE_FN /* y = fn(x) */, IR_TREE_DFN /* dx = dy * dfn(x) */ };

#define IR_IN_BIT(k) (1u << (k))
#define IR_IN_REF(k) (1 + (k))     /* ir_op_info.weight: input k */
#define IR_OUT_REF(k) (-1 - (k))   /* output k */
#define IR_MAX_ATTRS 8

typedef struct {
  const char *name;          /* in the YAML, plans and profiles */
  ir_range in, out;          /* how many inputs and outputs */
  const char *sig;           /* forward: its inputs in messages, "x, w, b" */
  int n_aux;                 /* forward: outputs after out[0] that the rule
                                names out[0] + suffix (layernorm's mean, rstd) */
  const char *attrs[IR_MAX_ATTRS]; /* forward: YAML keys besides op, in, out */
  ir_shape_fn shape;         /* forward ops only (it makes an op forward) */
  ir_grad_fn grad;           /* forward ops only */
  ir_opkind grad_kind;       /* the kind ir_grad_unary emits */
  unsigned params;           /* IR_IN_BIT(k): input k trains in place, must be a param */
  int loss;                  /* the head's loss: d(loss) = 1 is implicit */
  int weight;                /* IR_IN_REF/IR_OUT_REF of a linear weight whose
                                dims label the op in profiles; 0: none */
  enum ir_tree tree;
  const char *formula;       /* formula ops: f(x), variable x, config names allowed */
} ir_op_entry;

extern const ir_op_entry ir_op_info[IR_OP_COUNT];

int ir_op_is_forward(ir_opkind kind);
/* The value a weight reference (.weight) names in op, or -1. */
int ir_op_weight(const ir_op *op);

/* Shape rules (ops.def names them). */
int ir_shape_embedding(ir_shape *s);
int ir_shape_pos_embedding(ir_shape *s);
int ir_shape_unary(ir_shape *s);
int ir_shape_binary(ir_shape *s);
int ir_shape_layernorm(ir_shape *s);
int ir_shape_linear(ir_shape *s);
int ir_shape_split(ir_shape *s);
int ir_shape_attention(ir_shape *s);
int ir_shape_rmsnorm(ir_shape *s);
int ir_shape_rope(ir_shape *s);
int ir_shape_scale(ir_shape *s);
int ir_shape_cross_entropy(ir_shape *s);

/* Gradient rules (ops.def names them). */
void ir_grad_embedding(ir_grad *r);
void ir_grad_pos_embedding(ir_grad *r);
void ir_grad_add(ir_grad *r);
void ir_grad_layernorm(ir_grad *r);
void ir_grad_linear(ir_grad *r);
void ir_grad_unary(ir_grad *r);
void ir_grad_split(ir_grad *r);
void ir_grad_attention(ir_grad *r);
void ir_grad_rmsnorm(ir_grad *r);
void ir_grad_rope(ir_grad *r);
void ir_grad_mul(ir_grad *r);
void ir_grad_scale(ir_grad *r);
void ir_grad_cross_entropy(ir_grad *r);

#endif
