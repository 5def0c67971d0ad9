/* ir_rope.h: a rope op's frequencies, as transformers computes them.
 *
 * Every backend rotates dims (i, i + rot/2) of a head by pos * inv_freq[i]
 * and scales cos and sin by ir_rope_cos_scale; this file is the one place
 * the table comes from, so the CPU, the generated kernels and decoding all
 * turn by the same floats. The scaled kinds follow transformers'
 * modeling_rope_utils (_compute_linear_scaling_rope_parameters,
 * _compute_llama3_parameters, _compute_yarn_parameters) operation by
 * operation in float, as torch does them: a pretrained model learned its
 * angles with exactly those roundings. */
#ifndef LT_IR_ROPE_H
#define LT_IR_ROPE_H

#include "err.h"
#include "ir.h"

#ifdef __cplusplus
extern "C" {
#endif

#define IR_ROPE_MAX_HALF 512 /* rotary_dims / 2 at most */

/* inv_freq[i], i < rot/2, for a rope of `rot` rotary dims and base theta,
 * in a run whose positions go up to seq (longrope's long factors beyond its
 * original_max, as transformers picks them by the sequence's length;
 * training: T, decoding: the context). */
void ir_rope_inv_freq(const ir_rope_scaling *s, double theta, int rot, int seq,
                      float *inv_freq);

/* What cos and sin are multiplied by (YaRN's attention factor; else 1). */
float ir_rope_cos_scale(const ir_rope_scaling *s);

/* The kind's name as transformers spells rope_type ("default", "llama3"). */
const char *ir_rope_kind_name(ir_rope_kind kind);
/* The kind a rope_type names, or -1. */
int ir_rope_kind_of(const char *name);

/* Where the parameters come from (config.json, a model YAML). */
typedef struct {
  void *ctx;
  const char *where; /* names the source in messages */
  /* 1 and *value, or 0 when the key is absent */
  int (*number)(void *ctx, const char *key, double *value);
  /* a list of numbers: how many (at most cap into out), -1 when absent, -2
   * when it is not a list of numbers or longer than cap */
  int (*list)(void *ctx, const char *key, float *out, int cap);
} ir_rope_source;

/* Fills *s from a rope_type name and its parameters. Checks what each kind
 * requires and that the values make sense (positive, low < high, ...). */
int ir_rope_scaling_from(const char *type, const ir_rope_source *src, ir_rope_scaling *s,
                         lt_error *err);

/* The parameters a kind reads (NULL-terminated), for "unknown key" checks. */
const char *const *ir_rope_keys(ir_rope_kind kind);
/* key is a parameter kind reads; or (kind -1) one of any kind's. */
int ir_rope_is_key(int kind, const char *key);

/* What a rope op turns by in block layer `layer`: its theta and scaling,
 * or, for an op with global_every whose layer is not a global one, its
 * theta_local unscaled (Gemma 3's local layers). */
const ir_rope_scaling *ir_rope_at_layer(const ir_op *op, int layer, double *theta);

/* Sets s on every rope (and rope backward) op of m; the number of ops set,
 * or -1 when a rope's rotary dims do not fit s (longrope's factors: one per
 * rotated pair), the message naming `where`. */
int ir_model_set_rope_scaling(ir_model *m, const ir_rope_scaling *s, const char *where,
                              lt_error *err);

#ifdef __cplusplus
}
#endif

#endif
