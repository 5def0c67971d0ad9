#include "ir_rope.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Each float expression below is one torch op on float32 tensors: a Python
 * number meets a float tensor as a float, `a / t` is t.reciprocal() * a, and
 * nothing is fused (C11 on x86-64 rounds every operation to float). */

/* theta^(2i/rot), as `base ** (arange(0, dim, 2).float() / dim)`. */
static float rope_power(double theta, int i, int rot) {
  return powf((float)theta, (float)(2 * i) / (float)rot);
}

static float llama3_freq(const ir_rope_scaling *s, float inv) {
  const float factor = (float)s->factor;
  const float low_wavelen = (float)(s->original_max / s->low_freq_factor);
  const float high_wavelen = (float)(s->original_max / s->high_freq_factor);
  const float wavelen = (1.0f / inv) * (float)(2.0 * M_PI);
  const float scaled = wavelen > low_wavelen ? inv / factor : inv;
  const float smooth = ((1.0f / wavelen) * (float)s->original_max - (float)s->low_freq_factor) /
                       (float)(s->high_freq_factor - s->low_freq_factor);
  const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
  const int medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
  return medium ? smoothed : scaled;
}

/* YaRN's ramp bounds: the dims that turn beta_fast and beta_slow times
 * over the original context (find_correction_range). */
static double yarn_dim(double rotations, int rot, double theta, double original_max) {
  return rot * log(original_max / (rotations * 2 * M_PI)) / (2 * log(theta));
}

static void yarn_freqs(const ir_rope_scaling *s, double theta, int rot, float *inv_freq) {
  double low = yarn_dim(s->beta_fast, rot, theta, s->original_max);
  double high = yarn_dim(s->beta_slow, rot, theta, s->original_max);
  if (s->truncate) low = floor(low), high = ceil(high);
  if (low < 0) low = 0;
  if (high > rot - 1) high = rot - 1;
  if (low == high) high += 0.001; /* transformers' guard against a zero width */
  for (int i = 0; i < rot / 2; i++) {
    const float p = rope_power(theta, i, rot);
    const float extrapolated = 1.0f / p, interpolated = 1.0f / ((float)s->factor * p);
    float ramp = ((float)i - (float)low) / (float)(high - low);
    ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
    const float keep = 1.0f - ramp; /* the extrapolation's share */
    inv_freq[i] = interpolated * (1.0f - keep) + extrapolated * keep;
  }
}

/* 1 / (ext_i * theta^(2i/rot)): longrope's per-frequency divisors. */
static void longrope_freqs(const ir_rope_scaling *s, double theta, int rot, int seq,
                           float *inv_freq) {
  const float *ext = seq > s->original_max ? s->long_factor : s->short_factor;
  for (int i = 0; i < rot / 2; i++) inv_freq[i] = 1.0f / (ext[i] * rope_power(theta, i, rot));
}

void ir_rope_inv_freq(const ir_rope_scaling *s, double theta, int rot, int seq,
                      float *inv_freq) {
  if (s->kind == IR_ROPE_YARN) {
    yarn_freqs(s, theta, rot, inv_freq);
    return;
  }
  if (s->kind == IR_ROPE_LONGROPE) {
    longrope_freqs(s, theta, rot, seq, inv_freq);
    return;
  }
  for (int i = 0; i < rot / 2; i++) {
    const float inv = 1.0f / rope_power(theta, i, rot);
    inv_freq[i] = s->kind == IR_ROPE_LINEAR   ? inv / (float)s->factor
                  : s->kind == IR_ROPE_LLAMA3 ? llama3_freq(s, inv)
                                              : inv;
  }
}

float ir_rope_cos_scale(const ir_rope_scaling *s) {
  return s->kind == IR_ROPE_YARN || s->kind == IR_ROPE_LONGROPE ? (float)s->attention_factor
                                                                 : 1.0f;
}

static const char *const kind_names[IR_ROPE_NKINDS] = {"default", "linear", "llama3", "yarn",
                                                        "longrope"};

const char *ir_rope_kind_name(ir_rope_kind kind) { return kind_names[kind]; }

int ir_rope_kind_of(const char *name) {
  for (int k = 0; k < IR_ROPE_NKINDS; k++)
    if (!strcmp(name, kind_names[k])) return k;
  return -1;
}

static const char *const keys_none[] = {NULL};
static const char *const keys_linear[] = {"factor", NULL};
static const char *const keys_llama3[] = {"factor", "low_freq_factor", "high_freq_factor",
                                          "original_max_position_embeddings", NULL};
static const char *const keys_yarn[] = {"factor", "original_max_position_embeddings",
                                        "beta_fast", "beta_slow", "attention_factor",
                                        "mscale", "mscale_all_dim", "truncate", NULL};
static const char *const keys_longrope[] = {"short_factor", "long_factor", "factor",
                                            "original_max_position_embeddings",
                                            "attention_factor", NULL};

const char *const *ir_rope_keys(ir_rope_kind kind) {
  switch (kind) {
  case IR_ROPE_LINEAR: return keys_linear;
  case IR_ROPE_LLAMA3: return keys_llama3;
  case IR_ROPE_YARN: return keys_yarn;
  case IR_ROPE_LONGROPE: return keys_longrope;
  default: return keys_none;
  }
}

int ir_rope_is_key(int kind, const char *key) {
  for (int k = kind < 0 ? 0 : kind; k < (kind < 0 ? IR_ROPE_NKINDS : kind + 1); k++)
    for (const char *const *name = ir_rope_keys((ir_rope_kind)k); *name; name++)
      if (!strcmp(*name, key)) return 1;
  return 0;
}

/* A required parameter, positive. */
static int need(const ir_rope_source *src, const char *key, const char *type, double *out,
                lt_error *err) {
  if (!src->number(src->ctx, key, out))
    return lt_fail(err, "%s: rope_type \"%s\" needs \"%s\"", src->where, type, key);
  if (!(*out > 0))
    return lt_fail(err, "%s: rope \"%s\" must be positive, got %g", src->where, key, *out);
  return 0;
}

/* transformers' yarn_get_mscale: 0.1 * mscale * ln(scale) + 1. */
static double yarn_mscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

static int yarn_from(const ir_rope_source *src, ir_rope_scaling *s, lt_error *err) {
  if (need(src, "factor", "yarn", &s->factor, err) ||
      need(src, "original_max_position_embeddings", "yarn", &s->original_max, err))
    return -1;
  double v, mscale = 0, mscale_all = 0, truncate = 1;
  void *c = src->ctx;
  s->beta_fast = src->number(c, "beta_fast", &v) && v != 0 ? v : 32; /* `or 32`: 0 is unset */
  s->beta_slow = src->number(c, "beta_slow", &v) && v != 0 ? v : 1;
  src->number(c, "mscale", &mscale);
  src->number(c, "mscale_all_dim", &mscale_all);
  src->number(c, "truncate", &truncate);
  s->truncate = truncate != 0;
  if (src->number(c, "attention_factor", &s->attention_factor)) {
    if (!(s->attention_factor > 0))
      return lt_fail(err, "%s: rope \"attention_factor\" must be positive, got %g", src->where,
                     s->attention_factor);
  } else if (mscale != 0 && mscale_all != 0) {
    s->attention_factor = yarn_mscale(s->factor, mscale) / yarn_mscale(s->factor, mscale_all);
  } else {
    s->attention_factor = yarn_mscale(s->factor, 1);
  }
  if (!(s->beta_fast > s->beta_slow) || !(s->beta_slow > 0))
    return lt_fail(err, "%s: rope beta_fast (%g) must exceed beta_slow (%g) > 0", src->where,
                   s->beta_fast, s->beta_slow);
  return 0;
}

/* One of longrope's factor lists: positive numbers, n of them. */
static int factor_list(const ir_rope_source *src, const char *key, float *out, int *n,
                       lt_error *err) {
  int got = src->list(src->ctx, key, out, IR_ROPE_MAX_FACTORS);
  if (got == -1) return lt_fail(err, "%s: rope_type \"longrope\" needs \"%s\"", src->where, key);
  if (got < 1)
    return lt_fail(err, "%s: rope \"%s\" must be a list of 1 to %d numbers", src->where, key,
                   IR_ROPE_MAX_FACTORS);
  if (*n && got != *n)
    return lt_fail(err, "%s: rope \"%s\" has %d numbers, the other list %d", src->where, key,
                   got, *n);
  for (int i = 0; i < got; i++)
    if (!(out[i] > 0))
      return lt_fail(err, "%s: rope \"%s\"[%d] must be positive, got %g", src->where, key, i,
                     out[i]);
  *n = got;
  return 0;
}

/* transformers' _compute_longrope_parameters: factor defaults to
 * max_position_embeddings / original, the attention factor to
 * sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1). */
static int longrope_from(const ir_rope_source *src, ir_rope_scaling *s, lt_error *err) {
  if (need(src, "original_max_position_embeddings", "longrope", &s->original_max, err) ||
      factor_list(src, "short_factor", s->short_factor, &s->n_factors, err) ||
      factor_list(src, "long_factor", s->long_factor, &s->n_factors, err))
    return -1;
  double max_pos;
  if (!src->number(src->ctx, "factor", &s->factor)) {
    if (!src->number(src->ctx, "max_position_embeddings", &max_pos) || !(max_pos > 0))
      return lt_fail(err, "%s: rope_type \"longrope\" needs \"factor\" (or "
                     "max_position_embeddings)", src->where);
    s->factor = max_pos / s->original_max;
  }
  if (src->number(src->ctx, "attention_factor", &s->attention_factor)) {
    if (!(s->attention_factor > 0))
      return lt_fail(err, "%s: rope \"attention_factor\" must be positive, got %g", src->where,
                     s->attention_factor);
  } else {
    s->attention_factor =
        s->factor <= 1 ? 1.0 : sqrt(1 + log(s->factor) / log(s->original_max));
  }
  return 0;
}

int ir_rope_scaling_from(const char *type, const ir_rope_source *src, ir_rope_scaling *s,
                         lt_error *err) {
  memset(s, 0, sizeof *s);
  int kind = ir_rope_kind_of(type);
  if (kind < 0)
    return lt_fail(err, "%s: rope_type \"%s\" is not computed (default, linear, llama3, yarn "
                   "and longrope are)", src->where, type);
  s->kind = (ir_rope_kind)kind;
  switch (s->kind) {
  case IR_ROPE_LINEAR: return need(src, "factor", type, &s->factor, err);
  case IR_ROPE_LLAMA3:
    if (need(src, "factor", type, &s->factor, err) ||
        need(src, "low_freq_factor", type, &s->low_freq_factor, err) ||
        need(src, "high_freq_factor", type, &s->high_freq_factor, err) ||
        need(src, "original_max_position_embeddings", type, &s->original_max, err))
      return -1;
    if (!(s->high_freq_factor > s->low_freq_factor))
      return lt_fail(err, "%s: rope high_freq_factor (%g) must exceed low_freq_factor (%g)",
                     src->where, s->high_freq_factor, s->low_freq_factor);
    return 0;
  case IR_ROPE_YARN: return yarn_from(src, s, err);
  case IR_ROPE_LONGROPE: return longrope_from(src, s, err);
  default: return 0;
  }
}

const ir_rope_scaling *ir_rope_at_layer(const ir_op *op, int layer, double *theta) {
  static const ir_rope_scaling unscaled = {IR_ROPE_DEFAULT};
  if (op->global_every > 0 && !ir_layer_is_global(op, layer)) {
    *theta = op->theta_local;
    return &unscaled;
  }
  *theta = op->theta;
  return &op->rope;
}

static int set_in(ir_graph *g, const ir_rope_scaling *s, const char *where, lt_error *err) {
  int n = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int k = 0; k < (pass ? g->n_bwd : g->n_fwd); k++) {
      ir_op *op = pass ? &g->bwd[k] : &g->fwd[k];
      if (op->kind != (pass ? IR_OP_ROPE_BWD : IR_OP_ROPE)) continue;
      if (s->kind == IR_ROPE_LONGROPE && op->rotary_dims / 2 != s->n_factors)
        return lt_fail(err, "%s: longrope gives %d factors, but the rope (line %d) turns %d "
                       "pairs", where, s->n_factors, op->line, op->rotary_dims / 2);
      op->rope = *s;
      n++;
    }
  return n;
}

int ir_model_set_rope_scaling(ir_model *m, const ir_rope_scaling *s, const char *where,
                              lt_error *err) {
  int n = 0;
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    int k = set_in(&m->sections[sec], s, where, err);
    if (k < 0) return -1;
    n += k;
  }
  return n;
}
