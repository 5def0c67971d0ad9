/* model_yaml.c: a model description (docs/model-yaml.md) -> the IR's
 * forward graphs.
 *
 * libyaml loads the whole file into a node tree; the loader then walks it
 * section by section (embed, block, head), so params and values only ever
 * refer backwards. The loader knows the schema, never an op or an
 * architecture: each op's keys, arity and shape rule come from the op table
 * (codegen/ir/ir_ops.h), every param and value name from the file. */
#include "model_yaml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "expr.h"
#include "ir_ops.h"
#include "ir_rope.h"
#include "lua_expr.h"
#include "name_index.h"

/* Limits that keep every size computed from a model in 64 bits: a tensor
 * of at most 2^40 elements, a model of at most 2^42 parameters, values at
 * most 2^40 wide. (The largest models are near 2^40 parameters in all.) */
#define MAX_TENSOR_NUMEL (INT64_C(1) << 40)
#define MAX_MODEL_NUMEL (INT64_C(1) << 42)
#define MAX_VALUE_COLS (INT64_C(1) << 40)

typedef struct {
  const char *file;  /* name used in messages */
  yaml_document_t *doc;
  ir_model *m;
  lt_error *err;
  name_index config; /* m->config by name */
  name_index hf;     /* m->params by checkpoint name */
  name_index keys;   /* m->params by key */
  const yml_overrides *ov; /* config values from config.json, or NULL */
  yml_hf *hf_out;    /* where the hf section goes, or NULL */
  yml_hf hf_sec;     /* the hf section (read before config: null_zero) */
  int n_ties;        /* params that are another param (tie:, when it holds) */
  struct {
    char key[64], to[64];
  } ties[8];
} yml_ctx;

/* --- node access and messages --- */

static int fail_at(yml_ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "file:line:col: message" at node n (libyaml marks are 0-based). */
static int fail_at(yml_ctx *c, const yaml_node_t *n, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lt_fail(c->err, "%.200s:%zu:%zu: %s", c->file, n->start_mark.line + 1,
                 n->start_mark.column + 1, msg);
}

static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static yaml_node_t *node(yml_ctx *c, int id) {
  return yaml_document_get_node(c->doc, id);
}

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int seq_len(const yaml_node_t *n) {
  return (int)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static yaml_node_t *seq_item(yml_ctx *c, const yaml_node_t *n, int i) {
  return node(c, n->data.sequence.items.start[i]);
}

static int map_len(const yaml_node_t *n) {
  return (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

static yaml_node_t *map_key(yml_ctx *c, const yaml_node_t *n, int i) {
  return node(c, n->data.mapping.pairs.start[i].key);
}

static yaml_node_t *map_value(yml_ctx *c, const yaml_node_t *n, int i) {
  return node(c, n->data.mapping.pairs.start[i].value);
}

/* Value of `key` in mapping n, or NULL if absent. */
static yaml_node_t *map_get(yml_ctx *c, const yaml_node_t *n, const char *key) {
  for (int i = 0; i < map_len(n); i++) {
    const char *k = scalar(map_key(c, n, i));
    if (k && strcmp(k, key) == 0) return map_value(c, n, i);
  }
  return NULL;
}

static int need_map(yml_ctx *c, const yaml_node_t *n, const char *what) {
  if (n->type == YAML_MAPPING_NODE) return 0;
  return fail_at(c, n, "%s must be a mapping", what);
}

static int need_seq(yml_ctx *c, const yaml_node_t *n, const char *what) {
  if (n->type == YAML_SEQUENCE_NODE) return 0;
  return fail_at(c, n, "%s must be a list", what);
}

static int in_list(const char *s, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strcmp(s, list[i]) == 0) return i;
  return -1;
}

static void join(const char *const *list, char *out, size_t cap) {
  out[0] = '\0';
  for (int i = 0; list[i]; i++)
    snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? ", " : "", list[i]);
}

/* Rejects keys outside `known` (NULL-terminated) and repeated keys: a typo
 * must not silently fall back to a default. */
static int check_keys(yml_ctx *c, const yaml_node_t *n, const char *const *known,
                      const char *what) {
  for (int i = 0; i < map_len(n); i++) {
    yaml_node_t *key = map_key(c, n, i);
    const char *k = scalar(key);
    if (!k) return fail_at(c, key, "keys of %s must be plain names", what);
    if (in_list(k, known) < 0) {
      char names[256];
      join(known, names, sizeof names);
      return fail_at(c, key, "unknown key '%s' in %s (known: %s)", k, what, names);
    }
    for (int j = 0; j < i; j++)
      if (strcmp(scalar(map_key(c, n, j)), k) == 0)
        return fail_at(c, key, "key '%s' appears twice in %s", k, what);
  }
  return 0;
}

/* Copies a non-empty scalar into out[cap]. */
static int get_name(yml_ctx *c, const yaml_node_t *n, const char *what, char *out,
                    size_t cap) {
  const char *s = scalar(n);
  if (!s || !s[0]) return fail_at(c, n, "%s must be a name", what);
  if (strlen(s) >= cap)
    return fail_at(c, n, "%s '%s' is too long (max %zu characters)", what, s, cap - 1);
  memcpy(out, s, strlen(s) + 1);
  return 0;
}

/* Index of the scalar n in `choices`, or an error listing them. */
static int get_choice(yml_ctx *c, const yaml_node_t *n, const char *what,
                      const char *const *choices, int *out) {
  const char *s = scalar(n);
  *out = s ? in_list(s, choices) : -1;
  if (*out >= 0) return 0;
  char names[128];
  join(choices, names, sizeof names);
  return fail_at(c, n, "%s must be one of: %s", what, names);
}

static int get_bool(yml_ctx *c, const yaml_node_t *n, const char *what, int *out) {
  static const char *const bools[] = {"false", "true", NULL};
  return get_choice(c, n, what, bools, out);
}

/* --- expressions over the config --- */

/* ctx: the yml_ctx (its index of the config entries so far). */
static int config_lookup(void *ctx, const char *name, double *out) {
  const yml_ctx *c = ctx;
  int i = name_index_find(&c->config, name);
  if (i < 0) return -1;
  *out = c->m->config[i].value;
  return 0;
}

static const char *config_name(const void *m, int i) {
  return ((const ir_model *)m)->config[i].name;
}

static const char *hf_name(const void *m, int i) { return ((const ir_model *)m)->params[i].hf_name; }
static const char *param_key(const void *m, int i) { return ((const ir_model *)m)->params[i].key; }

/* The column where a scalar's text starts (inside the quotes, if any). */
static int text_column(const yaml_node_t *n) {
  int style = n->data.scalar.style;
  int quoted = style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
               style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  return (int)n->start_mark.column + 1 + quoted;
}

static int get_number(yml_ctx *c, const yaml_node_t *n, const char *what, double *out) {
  const char *text = scalar(n);
  if (!text) return fail_at(c, n, "%s must be a number or an expression", what);
  return expr_eval_text_at(text, c->file, line_of(n), text_column(n), config_lookup,
                           c, out, c->err);
}

/* A whole number in [1, max]: shapes, head counts, repeats. */
static int get_count(yml_ctx *c, const yaml_node_t *n, const char *what, int64_t max,
                     int64_t *out) {
  double v;
  if (get_number(c, n, what, &v)) return -1;
  if (v < 1 || v > (double)max || v != floor(v))
    return fail_at(c, n, "%s must be a whole number from 1 to %lld, got %g", what,
                   (long long)max, v);
  *out = (int64_t)v;
  return 0;
}

static int get_int_count(yml_ctx *c, const yaml_node_t *n, const char *what, int *out) {
  int64_t v;
  if (get_count(c, n, what, 1 << 30, &v)) return -1;
  *out = (int)v;
  return 0;
}

/* --- top level: name, config, checkpoint --- */

/* A config.json null for this entry means 0 (hf.null_zero). */
static int null_is_zero(const yml_ctx *c, const char *name) {
  for (int i = 0; i < c->hf_sec.n_null_zero; i++)
    if (!strcmp(c->hf_sec.null_zero[i], name)) return 1;
  return 0;
}

/* 1 when a value from outside replaces entry e's own (then its expression
 * is not evaluated: the file's value is the truth). */
static int override_config(yml_ctx *c, ir_config_entry *e) {
  for (int i = 0; c->ov && i < c->ov->n; i++)
    if (!strcmp(c->ov->entries[i].name, e->name)) {
      double v = c->ov->entries[i].value;
      if (isnan(v) && !null_is_zero(c, e->name)) return 0; /* null: the YAML's value */
      e->value = isnan(v) ? 0 : v;
      c->ov->used[i] = 1;
      return 1;
    }
  return 0;
}

/* hf: {model_type: T, ignore: [k, ...], require: {k: v, ...}, layer_types: [t, ...],
 *      null_zero: [k, ...]} */
static int load_hf(yml_ctx *c, const yaml_node_t *n) {
  static const char *const keys[] = {"model_type", "ignore", "require", "layer_types",
                                     "null_zero", NULL};
  yml_hf hf = {0};
  if (need_map(c, n, "hf") || check_keys(c, n, keys, "hf")) return -1;
  const yaml_node_t *type = map_get(c, n, "model_type"), *ig = map_get(c, n, "ignore"),
                    *rq = map_get(c, n, "require");
  if (!type) return fail_at(c, n, "hf needs model_type (config.json's)");
  if (get_name(c, type, "hf model_type", hf.model_type, sizeof hf.model_type)) return -1;
  if (ig && ig->type != YAML_SEQUENCE_NODE) return fail_at(c, ig, "hf ignore must be a list");
  for (int i = 0; ig && i < seq_len(ig); i++) {
    if (hf.n_ignore == YML_HF_MAX) return fail_at(c, ig, "hf ignore: at most %d keys", YML_HF_MAX);
    if (get_name(c, seq_item(c, ig, i), "hf ignore key", hf.ignore[hf.n_ignore++], 48)) return -1;
  }
  if (rq && need_map(c, rq, "hf require")) return -1;
  for (int i = 0; rq && i < map_len(rq); i++) {
    if (hf.n_require == 16) return fail_at(c, rq, "hf require: at most 16 keys");
    if (get_name(c, map_key(c, rq, i), "hf require key", hf.require[hf.n_require].key, 48) ||
        get_name(c, map_value(c, rq, i), "hf require value", hf.require[hf.n_require].value, 48))
      return -1;
    hf.n_require++;
  }
  const yaml_node_t *lt = map_get(c, n, "layer_types");
  if (lt && lt->type != YAML_SEQUENCE_NODE) return fail_at(c, lt, "hf layer_types must be a list");
  for (int i = 0; lt && i < seq_len(lt); i++) {
    if (hf.n_layer_types == 4) return fail_at(c, lt, "hf layer_types: at most 4");
    if (get_name(c, seq_item(c, lt, i), "hf layer type", hf.layer_types[hf.n_layer_types++], 32))
      return -1;
  }
  const yaml_node_t *nz = map_get(c, n, "null_zero");
  if (nz && nz->type != YAML_SEQUENCE_NODE) return fail_at(c, nz, "hf null_zero must be a list");
  for (int i = 0; nz && i < seq_len(nz); i++) {
    if (hf.n_null_zero == 4) return fail_at(c, nz, "hf null_zero: at most 4");
    if (get_name(c, seq_item(c, nz, i), "hf null_zero key", hf.null_zero[hf.n_null_zero++], 48))
      return -1;
  }
  c->hf_sec = hf;
  if (c->hf_out) *c->hf_out = hf;
  return 0;
}

/* Entries in order; each may use the ones above it. */
static int load_config(yml_ctx *c, const yaml_node_t *n) {
  ir_model *m = c->m;
  if (need_map(c, n, "config")) return -1;
  m->config = calloc((size_t)map_len(n) + 1, sizeof *m->config);
  if (!m->config) return lt_fail(c->err, "%s: out of memory", c->file);
  for (int i = 0; i < map_len(n); i++) {
    ir_config_entry e;
    double unused;
    yaml_node_t *key = map_key(c, n, i);
    if (get_name(c, key, "config name", e.name, sizeof e.name)) return -1;
    if (config_lookup(c, e.name, &unused) == 0)
      return fail_at(c, key, "config '%s' is defined twice", e.name);
    char what[96];
    snprintf(what, sizeof what, "config '%s'", e.name);
    if (!override_config(c, &e) && get_number(c, map_value(c, n, i), what, &e.value)) return -1;
    m->config[m->n_config++] = e;
    if (name_index_add(&c->config, m->n_config - 1))
      return lt_fail(c->err, "%s: out of memory", c->file);
  }
  return 0;
}

static int load_checkpoint(yml_ctx *c, const yaml_node_t *n) {
  static const char *const keys[] = {"prefixes", NULL};
  ir_model *m = c->m;
  m->n_prefixes = 1; /* default: names are used as written */
  if (!n) return 0;
  if (need_map(c, n, "checkpoint") || check_keys(c, n, keys, "checkpoint")) return -1;
  yaml_node_t *list = map_get(c, n, "prefixes");
  if (!list) return 0;
  if (need_seq(c, list, "checkpoint.prefixes")) return -1;
  int count = seq_len(list);
  if (count < 1 || count > 4)
    return fail_at(c, list, "checkpoint.prefixes lists %d prefixes; give 1 to 4", count);
  for (int i = 0; i < count; i++) {
    yaml_node_t *item = seq_item(c, list, i);
    const char *s = scalar(item);
    if (!s) return fail_at(c, item, "a checkpoint prefix must be a string");
    if (strlen(s) >= sizeof m->prefixes[0])
      return fail_at(c, item, "checkpoint prefix '%s' is too long", s);
    memcpy(m->prefixes[i], s, strlen(s) + 1);
  }
  m->n_prefixes = count;
  return 0;
}

/* --- params --- */

static const char *const param_keys[] = {"hf", "shape", "layout", "init", "std",
                                         "decay", "tie", "interleave", NULL};

static int param_readable(const ir_param *p, int section);
static const char *const layout_names[] = {"out_in", "in_out", NULL};
static const char *const init_names[] = {"normal", "zeros", "ones", NULL};

static int load_shape(yml_ctx *c, const yaml_node_t *n, ir_param *p) {
  if (need_seq(c, n, "shape")) return -1;
  p->ndim = seq_len(n);
  if (p->ndim < 1 || p->ndim > 2)
    return fail_at(c, n, "param '%s' has %d dims; shape must have 1 or 2", p->key,
                   p->ndim);
  for (int d = 0; d < p->ndim; d++) {
    char what[96];
    snprintf(what, sizeof what, "shape[%d] of param '%s'", d, p->key);
    if (get_count(c, seq_item(c, n, d), what, INT64_C(1) << 40, &p->shape[d]))
      return -1;
  }
  if (p->ndim == 2 && p->shape[0] > MAX_TENSOR_NUMEL / p->shape[1])
    return fail_at(c, n, "param '%s' has %lld x %lld elements, more than 2^40", p->key,
                   (long long)p->shape[0], (long long)p->shape[1]);
  return 0;
}

/* The checkpoint name; block params need "{i}" or every layer would load the
 * same tensor, and only block params have a layer index to put there. */
static int load_hf_name(yml_ctx *c, const yaml_node_t *key, const yaml_node_t *n,
                        int section, ir_param *p) {
  if (!n) return fail_at(c, key, "param '%s' has no 'hf' (its checkpoint name)", p->key);
  if (get_name(c, n, "hf name", p->hf_name, sizeof p->hf_name)) return -1;
  int i = name_index_find(&c->hf, p->hf_name);
  if (i >= 0)
    return fail_at(c, n, "param '%s': hf name '%s' is already param '%s' (to share "
                         "a weight, read the same param)", p->key, p->hf_name,
                   c->m->params[i].key);
  int has_index = strstr(p->hf_name, "{i}") != NULL;
  if (section == IR_BLOCK && !has_index)
    return fail_at(c, n, "block param '%s': hf name '%s' lacks \"{i}\" (the layer "
                         "index), so all layers would share one tensor", p->key,
                   p->hf_name);
  if (section != IR_BLOCK && has_index)
    return fail_at(c, n, "param '%s': \"{i}\" (the layer index) only means "
                         "something in block params", p->key);
  return 0;
}

/* interleave: {groups: EXPR, parts: EXPR}: dim 0 must split into groups x
 * parts equal pieces. */
static int load_interleave(yml_ctx *c, const yaml_node_t *n, ir_param *p) {
  static const char *const keys[] = {"groups", "parts", NULL};
  if (need_map(c, n, "interleave") || check_keys(c, n, keys, "interleave")) return -1;
  const yaml_node_t *g = map_get(c, n, "groups"), *pa = map_get(c, n, "parts");
  if (!g || !pa) return fail_at(c, n, "interleave needs 'groups' and 'parts'");
  int64_t groups, parts;
  if (get_count(c, g, "interleave.groups", p->shape[0], &groups) ||
      get_count(c, pa, "interleave.parts", p->shape[0], &parts))
    return -1;
  if (p->shape[0] % (groups * parts))
    return fail_at(c, n, "param '%s': %lld rows do not split into %lld groups of %lld parts",
                   p->key, (long long)p->shape[0], (long long)groups, (long long)parts);
  p->interleave_groups = groups;
  p->interleave_parts = (int)parts;
  return 0;
}

/* The optional fields, with their defaults. */
static int load_param_options(yml_ctx *c, const yaml_node_t *n, ir_param *p) {
  yaml_node_t *v;
  p->layout = IR_LAYOUT_OUT_IN;
  p->init = IR_INIT_NORMAL;
  p->init_std = 0.02;
  p->decay = p->ndim == 2;
  if ((v = map_get(c, n, "layout")) && get_choice(c, v, "layout", layout_names, &p->layout))
    return -1;
  if ((v = map_get(c, n, "init")) && get_choice(c, v, "init", init_names, &p->init))
    return -1;
  if ((v = map_get(c, n, "std"))) {
    if (get_number(c, v, "std", &p->init_std)) return -1;
    if (p->init_std < 0) return fail_at(c, v, "std must not be negative");
  }
  if ((v = map_get(c, n, "decay")) && get_bool(c, v, "decay", &p->decay)) return -1;
  if ((v = map_get(c, n, "interleave")) && load_interleave(c, v, p)) return -1;
  return 0;
}

/* tie: {to: PARAM, when: EXPR}: while EXPR (over the config: config.json's
 * tie_word_embeddings) is non-zero, this param is PARAM itself, a name for
 * it, with no tensor of its own (save_pretrained leaves it out too). */
static int load_tie(yml_ctx *c, int section, const yaml_node_t *n, const ir_param *p,
                    int *tied) {
  static const char *const keys[] = {"to", "when", NULL};
  *tied = 0;
  if (need_map(c, n, "tie") || check_keys(c, n, keys, "tie")) return -1;
  const yaml_node_t *to = map_get(c, n, "to"), *when = map_get(c, n, "when");
  if (!to || !when) return fail_at(c, n, "tie needs 'to' (a param) and 'when' (an expression)");
  double on;
  if (get_number(c, when, "tie.when", &on)) return -1;
  const char *target = scalar(to);
  int t = target ? name_index_find(&c->keys, target) : -1;
  if (t < 0) return fail_at(c, to, "tie.to: '%s' is not a param defined above", target ? target : "");
  const ir_param *q = &c->m->params[t];
  if (!param_readable(q, section) || q->ndim != p->ndim ||
      memcmp(q->shape, p->shape, sizeof p->shape[0] * (size_t)p->ndim))
    return fail_at(c, to, "param '%s' cannot be '%s': %s", p->key, target,
                   param_readable(q, section) ? "their shapes differ" : "not readable here");
  if (!on) return 0;
  if (c->n_ties == (int)(sizeof c->ties / sizeof c->ties[0]))
    return fail_at(c, n, "too many tied params");
  snprintf(c->ties[c->n_ties].key, sizeof c->ties[0].key, "%s", p->key);
  snprintf(c->ties[c->n_ties++].to, sizeof c->ties[0].to, "%s", target);
  *tied = 1;
  return 0;
}

/* The param a tied name stands for, else name itself. */
static const char *untie(const yml_ctx *c, const char *name) {
  for (int i = 0; i < c->n_ties; i++)
    if (!strcmp(c->ties[i].key, name)) return c->ties[i].to;
  return name;
}

static int load_param(yml_ctx *c, int section, const yaml_node_t *key,
                      const yaml_node_t *n) {
  ir_param p;
  memset(&p, 0, sizeof p);
  if (get_name(c, key, "param name", p.key, sizeof p.key)) return -1;
  if (name_index_find(&c->keys, p.key) >= 0)
    return fail_at(c, key, "param '%s' is defined twice (param names are unique "
                           "across sections)", p.key);
  char what[96];
  snprintf(what, sizeof what, "param '%s'", p.key);
  if (need_map(c, n, what) || check_keys(c, n, param_keys, what)) return -1;
  p.section = section;
  p.line = line_of(key);
  if (load_hf_name(c, key, map_get(c, n, "hf"), section, &p)) return -1;
  yaml_node_t *shape = map_get(c, n, "shape");
  if (!shape) return fail_at(c, key, "param '%s' has no 'shape'", p.key);
  if (load_shape(c, shape, &p) || load_param_options(c, n, &p)) return -1;
  const yaml_node_t *tie = map_get(c, n, "tie");
  int tied = 0;
  if (tie && load_tie(c, section, tie, &p, &tied)) return -1;
  if (tied) return 0;
  int at = ir_add_param(c->m, &p);
  if (name_index_add(&c->keys, at) || name_index_add(&c->hf, at))
    return lt_fail(c->err, "%s: out of memory", c->file);
  return 0;
}

static int load_params(yml_ctx *c, int section, const yaml_node_t *n) {
  if (!n) return 0;
  if (need_map(c, n, "params")) return -1;
  for (int i = 0; i < map_len(n); i++)
    if (load_param(c, section, map_key(c, n, i), map_value(c, n, i))) return -1;
  return 0;
}

/* --- values --- */

/* Params of the own section and of earlier ones, except the block's: those
 * exist once per layer, so nothing outside the block can name one. */
static int param_readable(const ir_param *p, int section) {
  return p->section == section || (p->section < section && p->section != IR_BLOCK);
}

static ir_value make_value(const char *name, int kind, int dtype, int64_t cols) {
  ir_value v;
  memset(&v, 0, sizeof v);
  snprintf(v.name, sizeof v.name, "%s", name);
  v.kind = kind;
  v.dtype = dtype;
  v.cols = cols;
  v.param = v.grad = -1;
  return v;
}

/* Adds the value named by scalar `at` + `suffix` to the section's graph; a
 * name is defined once and must not shadow a param the section can read. */
static int define_value(yml_ctx *c, int section, const yaml_node_t *at,
                        const char *suffix, ir_value v, int *out) {
  const char *name = scalar(at);
  if (!name || !name[0]) return fail_at(c, at, "expected a value name");
  char full[128];
  snprintf(full, sizeof full, "%.64s%s", name, suffix);
  if (strlen(full) >= sizeof v.name)
    return fail_at(c, at, "value name '%s' is too long (max %zu characters)", full,
                   sizeof v.name - 1);
  ir_graph *g = &c->m->sections[section];
  if (ir_find_value(g, full) >= 0)
    return fail_at(c, at, "value '%s' is already defined in the %s", full,
                   ir_section_name(section));
  int p = ir_find_param(c->m, full);
  if (p >= 0 && param_readable(&c->m->params[p], section))
    return fail_at(c, at, "value '%s' has the name of a param", full);
  memcpy(v.name, full, strlen(full) + 1);
  *out = ir_add_value(g, &v);
  return 0;
}

/* Resolves an op input: a value of the section, else a readable param (which
 * gets one IR_V_PARAM value per graph, named by its key). */
static int resolve_input(yml_ctx *c, int section, const yaml_node_t *n, int *out) {
  const char *name = scalar(n);
  if (!name || !name[0]) return fail_at(c, n, "op inputs must be value names");
  name = untie(c, name);
  ir_graph *g = &c->m->sections[section];
  if ((*out = ir_find_value(g, name)) >= 0) return 0;
  int p = ir_find_param(c->m, name);
  if (p < 0)
    return fail_at(c, n, "unknown value '%s' (not the %s input, an earlier output "
                         "or a param)", name, ir_section_name(section));
  const ir_param *param = &c->m->params[p];
  if (!param_readable(param, section))
    return fail_at(c, n, "param '%s' belongs to the %s; only the %s can read it",
                   name, ir_section_name(param->section),
                   ir_section_name(param->section));
  ir_value v = make_value(name, IR_V_PARAM, IR_F32, ir_param_numel(param));
  v.param = p;
  *out = ir_add_value(g, &v);
  return 0;
}

/* --- ops: the table's shape rules (ir_ops.h), reading the op's YAML --- */

/* What an op is being built from; s is what its shape rule reads and decides. */
typedef struct {
  yml_ctx *c;
  const yaml_node_t *node;       /* the op's mapping: where messages point */
  ir_op op;
  ir_shape s;
  const yaml_node_t *names[IR_MAX_OUT];
} op_build;

static const ir_op_entry *entry_of(const op_build *b) { return &ir_op_info[b->op.kind]; }

static int op_fail(op_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int op_fail(op_build *b, const char *fmt, ...) {
  char msg[640];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return fail_at(b->c, b->node, "%s: %s", entry_of(b)->name, msg);
}

/* Attribute `key` of the op, or NULL. */
static yaml_node_t *op_attr(op_build *b, const char *key) {
  return map_get(b->c, b->node, key);
}

static op_build *build_of(ir_shape *s) { return s->reader; }

static int read_number(ir_shape *s, const char *key, double *out) {
  op_build *b = build_of(s);
  yaml_node_t *n = op_attr(b, key);
  if (!n) return 0;
  return get_number(b->c, n, key, out) ? -1 : 1;
}

static int read_count(ir_shape *s, const char *key, int64_t max, int64_t *out) {
  op_build *b = build_of(s);
  yaml_node_t *n = op_attr(b, key);
  if (!n) return 0;
  return get_count(b->c, n, key, max, out) ? -1 : 1;
}

static int read_flag(ir_shape *s, const char *key, int *out) {
  op_build *b = build_of(s);
  yaml_node_t *n = op_attr(b, key);
  if (!n) return 0;
  return get_bool(b->c, n, key, out) ? -1 : 1;
}

static int read_counts(ir_shape *s, const char *key, const char *item, int count,
                       int64_t max, int64_t *out) {
  op_build *b = build_of(s);
  yaml_node_t *n = op_attr(b, key);
  if (!n) return 0;
  if (need_seq(b->c, n, key)) return -1;
  if (seq_len(n) != count)
    return fail_at(b->c, n, "%s: %d %s for %d outputs", entry_of(b)->name, seq_len(n), key,
                   count);
  for (int i = 0; i < count; i++)
    if (get_count(b->c, seq_item(b->c, n, i), item, max, &out[i])) return -1;
  return 1;
}

static int report(ir_shape *s, const char *key, const char *msg) {
  op_build *b = build_of(s);
  if (key) return fail_at(b->c, op_attr(b, key), "%s", msg);
  return op_fail(b, "%s", msg);
}

/* Keeps a copy of the text in a; on failure frees a's trees. */
static int keep_text(yml_ctx *c, ir_activation *a, const char *text) {
  if ((a->text = strdup(text))) return 0;
  expr_free(a->fn);
  expr_free(a->dfn);
  return lt_fail(c->err, "%s: out of memory", c->file);
}

static int activation_inline(yml_ctx *c, const yaml_node_t *n, ir_activation *a) {
  const char *text = scalar(n);
  if (!text) return fail_at(c, n, "expr must be an expression string");
  if (expr_function_at(text, "x", c->file, line_of(n), text_column(n), config_lookup,
                       c, &a->fn, &a->dfn, c->err))
    return -1;
  return keep_text(c, a, text);
}

/* A relative path names a file beside the YAML file. */
static int beside(yml_ctx *c, const yaml_node_t *n, const char *rel, char *out,
                  size_t cap) {
  const char *slash = strrchr(c->file, '/');
  int dir = rel[0] == '/' || !slash ? 0 : (int)(slash - c->file) + 1;
  if ((size_t)snprintf(out, cap, "%.*s%s", dir, c->file, rel) >= cap)
    return fail_at(c, n, "lua path '%s' is too long", rel);
  return 0;
}

static int activation_lua(yml_ctx *c, const yaml_node_t *lua, const yaml_node_t *fn,
                          ir_activation *a) {
  char path[1024];
  lt_error why;
  if (!scalar(lua) || !scalar(lua)[0]) return fail_at(c, lua, "lua must be a file name");
  if (get_name(c, fn, "fn", a->name, sizeof a->name) ||
      beside(c, lua, scalar(lua), path, sizeof path))
    return -1;
  char *text;
  int rc = lua_expr_load(path, a->name, c->m->config, c->m->n_config, &text, &why);
  if (rc) return fail_at(c, rc == LUA_EXPR_NO_NAME ? fn : lua, "%s", why.msg);
  rc = expr_function(text, "x", config_lookup, c, &a->fn, &a->dfn, &why);
  if (rc) fail_at(c, fn, "%s '%s': %s", scalar(lua), a->name, why.msg);
  else rc = keep_text(c, a, text);
  free(text);
  return rc;
}

/* `expr: "..."` inline, or `lua: file.lua, fn: name`; the variable is x,
 * other names are config values. */
static int function_from_attrs(op_build *b, ir_activation *a) {
  yaml_node_t *expr = op_attr(b, "expr"), *lua = op_attr(b, "lua"), *fn = op_attr(b, "fn");
  if (!expr == !lua) return op_fail(b, "needs either 'expr' or 'lua' (with 'fn')");
  if (expr && fn) return fail_at(b->c, fn, "'fn' goes with 'lua', not with 'expr'");
  if (lua && !fn) return op_fail(b, "'lua' needs 'fn' (the activation's name in the file)");
  return expr ? activation_inline(b->c, expr, a) : activation_lua(b->c, lua, fn, a);
}

/* A formula op's f(x) from the table; config names are allowed in it. */
static int function_from_formula(op_build *b, const char *formula, ir_activation *a) {
  lt_error why;
  if (expr_function(formula, "x", config_lookup, b->c, &a->fn, &a->dfn, &why))
    return op_fail(b, "formula '%s': %s", formula, why.msg);
  snprintf(a->name, sizeof a->name, "%s", entry_of(b)->name);
  return keep_text(b->c, a, formula);
}

/* An op whose element-wise function is a tree: parsed once per model, which
 * owns it; op.activation indexes it. */
static int load_function(op_build *b) {
  const ir_op_entry *e = entry_of(b);
  if (e->tree != IR_TREE_FN) return 0;
  ir_activation a;
  memset(&a, 0, sizeof a);
  a.line = b->op.line;
  if (e->formula ? function_from_formula(b, e->formula, &a) : function_from_attrs(b, &a))
    return -1;
  b->op.activation = ir_add_activation(b->c->m, &a);
  return 0;
}

/* --- ops: reading one --- */

static int unknown_op(yml_ctx *c, const yaml_node_t *n) {
  char known[512] = "";
  for (int k = 0; k < IR_OP_COUNT; k++)
    if (ir_op_is_forward((ir_opkind)k))
      snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
               known[0] ? ", " : "", ir_op_info[k].name);
  return fail_at(c, n, "unknown op '%s' (known: %s)", scalar(n) ? scalar(n) : "?", known);
}

/* `in` and `out` take a list of names or a single name. */
static int name_list(yml_ctx *c, const yaml_node_t *n, const yaml_node_t **items,
                     int cap, const char *what, int *count) {
  if (n->type == YAML_SCALAR_NODE) {
    items[0] = n;
    *count = 1;
    return 0;
  }
  if (need_seq(c, n, what)) return -1;
  *count = seq_len(n);
  if (*count < 1 || *count > cap)
    return fail_at(c, n, "%s lists %d names; expected 1 to %d", what, *count, cap);
  for (int i = 0; i < *count; i++) items[i] = seq_item(c, n, i);
  return 0;
}

static int read_op_inputs(op_build *b) {
  yaml_node_t *in = op_attr(b, "in");
  const yaml_node_t *items[IR_MAX_IN];
  if (!in) return op_fail(b, "needs 'in'");
  if (name_list(b->c, in, items, IR_MAX_IN, "in", &b->op.n_in)) return -1;
  for (int i = 0; i < b->op.n_in; i++)
    if (resolve_input(b->c, b->s.section, items[i], &b->op.in[i])) return -1;
  return 0;
}

/* An op names out[0], or all its outputs where it has several (split); the
 * auxiliary outputs (n_aux) are named after out[0] by the shape rule. */
static int read_op_output_names(op_build *b) {
  const ir_op_entry *e = entry_of(b);
  yaml_node_t *out = op_attr(b, "out");
  if (!out) return op_fail(b, "needs 'out'");
  if (name_list(b->c, out, b->names, IR_MAX_OUT, "out", &b->s.n_names)) return -1;
  int lo = e->out.min - e->n_aux, hi = e->out.max - e->n_aux, n = b->s.n_names;
  if (hi == 1 && n != 1) return op_fail(b, "takes one output name, got %d", n);
  if (n < lo || n > hi) return op_fail(b, "needs at least %d output names", lo);
  return 0;
}

static int check_arity(op_build *b) {
  const ir_op_entry *e = entry_of(b);
  if (b->op.n_in >= e->in.min && b->op.n_in <= e->in.max) return 0;
  return op_fail(b, "takes inputs [%s], got %d", e->sig, b->op.n_in);
}

static int define_op_outputs(op_build *b) {
  b->op.n_out = b->s.n_names + entry_of(b)->n_aux;
  for (int i = 0; i < b->op.n_out; i++) {
    const yaml_node_t *name = i < b->s.n_names ? b->names[i] : b->names[0];
    const char *suffix = b->s.suffix[i] ? b->s.suffix[i] : "";
    ir_value v = make_value("", IR_V_ACT, IR_F32, b->s.cols[i]);
    v.scalar = i == 0 && b->s.scalar;
    if (define_value(b->c, b->s.section, name, suffix, v, &b->op.out[i])) return -1;
  }
  return 0;
}

/* op, in, out and the table's attributes, NULL-terminated. */
static void op_keys(const ir_op_entry *e, const char **keys) {
  int n = 0;
  keys[n++] = "op", keys[n++] = "in", keys[n++] = "out";
  for (int i = 0; i < IR_MAX_ATTRS && e->attrs[i]; i++) keys[n++] = e->attrs[i];
  keys[n] = NULL;
}

static void init_build(op_build *b, yml_ctx *c, int section, const yaml_node_t *n,
                       ir_opkind kind) {
  memset(b, 0, sizeof *b);
  b->c = c;
  b->node = n;
  b->op.kind = kind;
  b->op.line = line_of(n);
  b->s = (ir_shape){.m = c->m, .section = section, .op = &b->op, .number = read_number,
                    .count = read_count, .flag = read_flag, .counts = read_counts,
                    .fail = report, .reader = b};
}

static int load_op(yml_ctx *c, int section, const yaml_node_t *n) {
  if (need_map(c, n, "an op")) return -1;
  yaml_node_t *kind_node = map_get(c, n, "op");
  if (!kind_node) return fail_at(c, n, "op has no 'op' key (its kind)");
  int kind = scalar(kind_node) ? ir_op_from_name(scalar(kind_node)) : -1;
  if (kind < 0) return unknown_op(c, kind_node);
  op_build b;
  init_build(&b, c, section, n, (ir_opkind)kind);
  const ir_op_entry *e = entry_of(&b);
  const char *keys[3 + IR_MAX_ATTRS + 1];
  op_keys(e, keys);
  char what[64];
  snprintf(what, sizeof what, "op '%s'", e->name);
  if (check_keys(c, n, keys, what) || read_op_inputs(&b) || read_op_output_names(&b) ||
      check_arity(&b) || e->shape(&b.s) || load_function(&b) || define_op_outputs(&b))
    return -1;
  ir_add_fwd(&c->m->sections[section], &b.op);
  return 0;
}

/* --- sections --- */

static const char *const section_keys[IR_NSECTIONS][6] = {
    [IR_EMBED] = {"input", "params", "ops", "output"},
    [IR_BLOCK] = {"repeat", "input", "params", "ops", "output"},
    [IR_HEAD] = {"input", "targets", "params", "ops", "output"},
};

static yaml_node_t *need_key(yml_ctx *c, const yaml_node_t *map, const char *key,
                             const char *what) {
  yaml_node_t *v = map_get(c, map, key);
  if (!v) fail_at(c, map, "%s has no '%s'", what, key);
  return v;
}

/* The input stream: token ids for embed, the embed output's width after. */
static int define_inputs(yml_ctx *c, int section, const yaml_node_t *n) {
  ir_graph *g = &c->m->sections[section];
  const char *what = ir_section_name(section);
  yaml_node_t *input = need_key(c, n, "input", what);
  if (!input) return -1;
  const ir_graph *embed = &c->m->sections[IR_EMBED];
  ir_value v = section == IR_EMBED
                   ? make_value("", IR_V_INPUT, IR_I32, 1)
                   : make_value("", IR_V_INPUT, IR_F32, embed->values[embed->output].cols);
  if (define_value(c, section, input, "", v, &g->input)) return -1;
  if (section != IR_HEAD) return 0;
  yaml_node_t *targets = need_key(c, n, "targets", what);
  if (!targets) return -1;
  return define_value(c, section, targets, "", make_value("", IR_V_INPUT, IR_I32, 1),
                      &g->targets);
}

static int load_ops(yml_ctx *c, int section, const yaml_node_t *n) {
  yaml_node_t *ops = need_key(c, n, "ops", ir_section_name(section));
  if (!ops || need_seq(c, ops, "ops")) return -1;
  for (int i = 0; i < seq_len(ops); i++)
    if (load_op(c, section, seq_item(c, ops, i))) return -1;
  return 0;
}

/* embed and block pass on a float stream of one width (the block repeats, so
 * its output must match its input); the head ends in the scalar loss. */
static int check_output(yml_ctx *c, int section, const yaml_node_t *at) {
  ir_graph *g = &c->m->sections[section];
  const ir_value *out = &g->values[g->output];
  if (out->kind == IR_V_PARAM)
    return fail_at(c, at, "output '%s' is a param, not a value", out->name);
  if (section == IR_HEAD) {
    if (!out->scalar)
      return fail_at(c, at, "head output '%s' must be the scalar loss (cross_entropy)",
                     out->name);
    return 0;
  }
  if (out->dtype != IR_F32 || out->scalar)
    return fail_at(c, at, "%s output '%s' must be a float activation",
                   ir_section_name(section), out->name);
  const ir_value *in = &g->values[g->input];
  if (section == IR_BLOCK && out->cols != in->cols)
    return fail_at(c, at, "block output '%s' has width %lld but its input '%s' has "
                          "%lld; the block repeats, so they must match", out->name,
                   (long long)out->cols, in->name, (long long)in->cols);
  return 0;
}

static int load_output(yml_ctx *c, int section, const yaml_node_t *n) {
  ir_graph *g = &c->m->sections[section];
  yaml_node_t *out = need_key(c, n, "output", ir_section_name(section));
  if (!out) return -1;
  const char *name = scalar(out);
  g->output = name ? ir_find_value(g, name) : -1;
  if (g->output < 0)
    return fail_at(c, out, "output '%s' is not a value of the %s", name ? name : "?",
                   ir_section_name(section));
  return check_output(c, section, out);
}

static int load_section(yml_ctx *c, int section, const yaml_node_t *n) {
  const char *what = ir_section_name(section);
  if (need_map(c, n, what) || check_keys(c, n, section_keys[section], what)) return -1;
  if (section == IR_BLOCK) {
    yaml_node_t *repeat = need_key(c, n, "repeat", what);
    if (!repeat || get_int_count(c, repeat, "repeat", &c->m->n_layer)) return -1;
  }
  if (load_params(c, section, map_get(c, n, "params")) || define_inputs(c, section, n) ||
      load_ops(c, section, n))
    return -1;
  return load_output(c, section, n);
}

/* max_seq: the longest sequence the graph computes exactly (Mistral's
 * sliding window, which the graph's causal attention equals up to the
 * window), on top of any position table's rows. */
static int load_max_seq(yml_ctx *c, const yaml_node_t *n) {
  int v;
  if (get_int_count(c, n, "max_seq", &v)) return -1;
  if (!c->m->max_seq || v < c->m->max_seq) c->m->max_seq = v;
  return 0;
}

/* The whole model within the limits above, summed without overflow (each
 * term is at most 2^40 x 2^30). */
static int check_sizes(yml_ctx *c) {
  const ir_model *m = c->m;
  int64_t total = 0;
  for (int i = 0; i < m->n_params; i++) {
    const ir_param *p = &m->params[i];
    int64_t copies = p->section == IR_BLOCK ? m->n_layer : 1;
    if (ir_param_numel(p) > (MAX_MODEL_NUMEL - total) / (copies ? copies : 1))
      return lt_fail(c->err, "%s:%d: param '%s': the model would hold more than 2^42 "
                     "parameters", c->file, p->line, p->key);
    total += ir_param_numel(p) * copies;
  }
  for (int sec = 0; sec < IR_NSECTIONS; sec++)
    for (int v = 0; v < m->sections[sec].n_values; v++)
      if (m->sections[sec].values[v].cols > MAX_VALUE_COLS)
        return lt_fail(c->err, "%s: value '%s' is %lld wide, more than 2^40", c->file,
                       m->sections[sec].values[v].name,
                       (long long)m->sections[sec].values[v].cols);
  return 0;
}

/* rope_scaling: {rope_type: llama3, factor: 8, ...}: config.json's scaling
 * (transformers' keys; values are numbers or config expressions, longrope's
 * factors lists of them), set on every rope of the model. */
typedef struct {
  yml_ctx *c;
  const yaml_node_t *n;
  int bad; /* a value failed to evaluate (the message is in c->err) */
} rope_yaml;

static int rope_yaml_number(void *ctx, const char *key, double *value) {
  rope_yaml *r = ctx;
  const yaml_node_t *v = map_get(r->c, r->n, key);
  if (!v || r->bad) return 0;
  char what[64];
  snprintf(what, sizeof what, "rope_scaling %s", key);
  if (get_number(r->c, v, what, value)) return r->bad = 1, 0;
  return 1;
}

static int rope_yaml_list(void *ctx, const char *key, float *out, int cap) {
  rope_yaml *r = ctx;
  const yaml_node_t *v = map_get(r->c, r->n, key);
  if (!v || r->bad) return -1;
  if (v->type != YAML_SEQUENCE_NODE || seq_len(v) > cap) return -2;
  for (int i = 0; i < seq_len(v); i++) {
    double x;
    char what[64];
    snprintf(what, sizeof what, "rope_scaling %s[%d]", key, i);
    if (get_number(r->c, seq_item(r->c, v, i), what, &x)) return r->bad = 1, -1;
    out[i] = (float)x;
  }
  return seq_len(v);
}

static int load_rope_scaling(yml_ctx *c, const yaml_node_t *n) {
  if (need_map(c, n, "rope_scaling")) return -1;
  const yaml_node_t *type = map_get(c, n, "rope_type");
  char kind_name[32] = "default", where[300];
  if (type && get_name(c, type, "rope_scaling rope_type", kind_name, sizeof kind_name)) return -1;
  snprintf(where, sizeof where, "%.200s:%d: rope_scaling", c->file, line_of(n));
  int kind = ir_rope_kind_of(kind_name);
  if (kind < 0)
    return fail_at(c, type, "rope_type '%s' is not computed (default, linear, llama3, yarn and "
                   "longrope are)", kind_name);
  const char *known[18] = {"rope_type"};
  const char *const *keys = ir_rope_keys((ir_rope_kind)kind);
  for (int i = 0; keys[i] && i < 16; i++) known[i + 1] = keys[i];
  if (check_keys(c, n, known, "rope_scaling")) return -1;
  rope_yaml ctx = {c, n, 0};
  ir_rope_source src = {&ctx, where, rope_yaml_number, rope_yaml_list};
  ir_rope_scaling sc;
  lt_error scaling_err;
  int rc = ir_rope_scaling_from(kind_name, &src, &sc, &scaling_err);
  if (ctx.bad) return -1; /* the value's own message */
  if (rc) return lt_fail(c->err, "%s", scaling_err.msg);
  int n_ropes = sc.kind != IR_ROPE_DEFAULT ? ir_model_set_rope_scaling(c->m, &sc, where, c->err)
                                           : 1;
  if (n_ropes < 0) return -1;
  if (n_ropes == 0) return fail_at(c, n, "rope_scaling: the model has no rope op to scale");
  return 0;
}

static int load_root(yml_ctx *c, const yaml_node_t *root) {
  static const char *const keys[] = {"name", "config", "checkpoint", "embed", "block",
                                     "head", "hf", "max_seq", "rope_scaling", NULL};
  if (need_map(c, root, "the model description") ||
      check_keys(c, root, keys, "the model description"))
    return -1;
  yaml_node_t *name = need_key(c, root, "name", "the model description");
  if (!name || get_name(c, name, "name", c->m->name, sizeof c->m->name)) return -1;
  yaml_node_t *hf = map_get(c, root, "hf");
  if (hf && load_hf(c, hf)) return -1;
  yaml_node_t *config = map_get(c, root, "config");
  if (config && load_config(c, config)) return -1;
  if (load_checkpoint(c, map_get(c, root, "checkpoint"))) return -1;
  for (int s = 0; s < IR_NSECTIONS; s++) {
    yaml_node_t *section = need_key(c, root, ir_section_name(s), "the model description");
    if (!section || load_section(c, s, section)) return -1;
  }
  yaml_node_t *max_seq = map_get(c, root, "max_seq");
  if (max_seq && load_max_seq(c, max_seq)) return -1;
  yaml_node_t *rope_scaling = map_get(c, root, "rope_scaling");
  if (rope_scaling && load_rope_scaling(c, rope_scaling)) return -1;
  return check_sizes(c);
}

/* --- entry points --- */

static int parser_problem(const char *file, const yaml_parser_t *p, lt_error *err) {
  if (p->error == YAML_MEMORY_ERROR) return lt_fail(err, "%s: out of memory", file);
  if (p->error == YAML_READER_ERROR)
    return lt_fail(err, "%s: byte %zu: %s", file, p->problem_offset, p->problem);
  if (p->context)
    return lt_fail(err, "%s:%zu:%zu: %s (%s started at line %zu, column %zu)", file,
                   p->problem_mark.line + 1, p->problem_mark.column + 1, p->problem,
                   p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  return lt_fail(err, "%s:%zu:%zu: %s", file, p->problem_mark.line + 1,
                 p->problem_mark.column + 1, p->problem);
}

/* Loads the document the parser is set up for into m. */
static int load_from_parser(yaml_parser_t *parser, const char *file, const yml_overrides *ov,
                            yml_hf *hf, ir_model *m, lt_error *err) {
  yaml_document_t doc;
  if (!yaml_parser_load(parser, &doc)) return parser_problem(file, parser, err);
  yml_ctx c = {.file = file, .doc = &doc, .m = m, .err = err, .ov = ov, .hf_out = hf};
  if (hf) memset(hf, 0, sizeof *hf);
  name_index_init(&c.config, config_name, m);
  name_index_init(&c.hf, hf_name, m);
  name_index_init(&c.keys, param_key, m);
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  int rc = root ? load_root(&c, root) : lt_fail(err, "%s: empty model description", file);
  name_index_free(&c.config);
  name_index_free(&c.hf);
  name_index_free(&c.keys);
  yaml_document_delete(&doc);
  return rc;
}

/* On failure m is left empty, so callers need no cleanup. */
static int finish(int rc, ir_model *m) {
  if (rc) ir_model_free(m);
  return rc;
}

int yml_load_model_string(const char *text, const char *name, ir_model *m,
                          lt_error *err) {
  ir_model_init(m);
  snprintf(m->path, sizeof m->path, "%s", name);
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return lt_fail(err, "%s: out of memory", name);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
  int rc = load_from_parser(&parser, name, NULL, NULL, m, err);
  yaml_parser_delete(&parser);
  return finish(rc, m);
}

int yml_load_model(const char *path, ir_model *m, lt_error *err) {
  return yml_load_model_ex(path, NULL, NULL, m, err);
}

int yml_load_model_ex(const char *path, const yml_overrides *ov, yml_hf *hf, ir_model *m,
                      lt_error *err) {
  ir_model_init(m);
  if (strlen(path) >= sizeof m->path) return lt_fail(err, "%s: path too long", path);
  snprintf(m->path, sizeof m->path, "%s", path);
  FILE *f = fopen(path, "rb");
  if (!f) return lt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    fclose(f);
    return lt_fail(err, "%s: out of memory", path);
  }
  yaml_parser_set_input_file(&parser, f);
  int rc = load_from_parser(&parser, path, ov, hf, m, err);
  yaml_parser_delete(&parser);
  fclose(f);
  return finish(rc, m);
}
