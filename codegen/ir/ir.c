#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir_ops.h"

/* Grows *arr to hold one more element of `size` bytes; aborts on OOM since
 * the IR is tiny and an allocation failure here means the machine is gone. */
static void *grow(void *arr, int *cap, int n, size_t size) {
  if (n < *cap) return arr;
  int ncap = *cap ? *cap * 2 : 16;
  void *p = realloc(arr, (size_t)ncap * size);
  if (!p) {
    fprintf(stderr, "out of memory growing the model IR\n");
    abort();
  }
  *cap = ncap;
  return p;
}

void ir_model_init(ir_model *m) {
  memset(m, 0, sizeof *m);
  for (int s = 0; s < IR_NSECTIONS; s++) {
    m->sections[s].input = m->sections[s].targets = m->sections[s].output = -1;
  }
}

void ir_model_free(ir_model *m) {
  for (int i = 0; i < m->n_activations; i++) {
    expr_free(m->activations[i].fn);
    expr_free(m->activations[i].dfn);
    free(m->activations[i].text);
  }
  free(m->activations);
  free(m->config);
  free(m->params);
  for (int s = 0; s < IR_NSECTIONS; s++) {
    free(m->sections[s].values);
    free(m->sections[s].fwd);
    free(m->sections[s].bwd);
  }
  ir_model_init(m);
}

int ir_add_param(ir_model *m, const ir_param *p) {
  m->params = grow(m->params, &m->cap_params, m->n_params, sizeof *p);
  m->params[m->n_params] = *p;
  return m->n_params++;
}

int ir_find_param(const ir_model *m, const char *key) {
  for (int i = 0; i < m->n_params; i++)
    if (strcmp(m->params[i].key, key) == 0) return i;
  return -1;
}

int ir_add_value(ir_graph *g, const ir_value *v) {
  g->values = grow(g->values, &g->cap_values, g->n_values, sizeof *v);
  g->values[g->n_values] = *v;
  return g->n_values++;
}

int ir_find_value(const ir_graph *g, const char *name) {
  for (int i = 0; i < g->n_values; i++)
    if (strcmp(g->values[i].name, name) == 0) return i;
  return -1;
}

int ir_add_fwd(ir_graph *g, const ir_op *op) {
  g->fwd = grow(g->fwd, &g->cap_fwd, g->n_fwd, sizeof *op);
  g->fwd[g->n_fwd] = *op;
  return g->n_fwd++;
}

int ir_add_bwd(ir_graph *g, const ir_op *op) {
  g->bwd = grow(g->bwd, &g->cap_bwd, g->n_bwd, sizeof *op);
  g->bwd[g->n_bwd] = *op;
  return g->n_bwd++;
}

int ir_add_activation(ir_model *m, const ir_activation *a) {
  m->activations = grow(m->activations, &m->cap_activations, m->n_activations, sizeof *a);
  m->activations[m->n_activations] = *a;
  return m->n_activations++;
}

int64_t ir_param_numel(const ir_param *p) {
  return p->ndim == 1 ? p->shape[0] : p->shape[0] * p->shape[1];
}

int64_t ir_vocab_padded(const ir_model *m) {
  return ((int64_t)m->vocab_size + IR_VOCAB_PAD - 1) / IR_VOCAB_PAD * IR_VOCAB_PAD;
}

int64_t ir_param_stored_numel(const ir_model *m, const ir_param *p) {
  if (m->vocab_size <= 0 || p->shape[0] != m->vocab_size) return ir_param_numel(p);
  return ir_vocab_padded(m) * (p->ndim == 1 ? 1 : p->shape[1]);
}

const char *ir_op_name(ir_opkind kind) {
  return (int)kind >= 0 && (int)kind < IR_OP_COUNT ? ir_op_info[kind].name : "?";
}

int ir_op_from_name(const char *name) {
  for (int k = 0; k < IR_OP_COUNT; k++)
    if (ir_op_is_forward((ir_opkind)k) && strcmp(ir_op_info[k].name, name) == 0) return k;
  return -1;
}

const char *ir_layout_name(int layout) {
  return layout == IR_LAYOUT_IN_OUT ? "in_out" : "out_in";
}

const char *ir_section_name(int section) {
  static const char *const names[IR_NSECTIONS] = {"embed", "block", "head"};
  return section >= 0 && section < IR_NSECTIONS ? names[section] : "?";
}

void ir_param_hf_name(const ir_param *p, int layer, char *out, int cap) {
  const char *mark = strstr(p->hf_name, "{i}");
  if (!mark) {
    snprintf(out, (size_t)cap, "%s", p->hf_name);
    return;
  }
  snprintf(out, (size_t)cap, "%.*s%d%s", (int)(mark - p->hf_name), p->hf_name,
           layer, mark + 3);
}

int64_t ir_model_numel(const ir_model *m) {
  int64_t n = 0;
  for (int i = 0; i < m->n_params; i++) {
    int64_t k = ir_param_numel(&m->params[i]);
    n += m->params[i].section == IR_BLOCK ? k * m->n_layer : k;
  }
  return n;
}

int ir_check_seq(const ir_model *m, int seq, lt_error *err) {
  if (m->max_seq > 0 && seq > m->max_seq)
    return lt_fail(err, "--seq %d is longer than %s allows (%d positions)", seq, m->path,
                   m->max_seq);
  return 0;
}

void ir_trained_by_sections(const ir_model *m, int embed, int head, unsigned char *trains) {
  const int on[IR_NSECTIONS] = {[IR_EMBED] = embed, [IR_BLOCK] = 1, [IR_HEAD] = head};
  memset(trains, 0, (size_t)m->n_params);
  for (int sec = 0; sec < IR_NSECTIONS; sec++) {
    const ir_graph *g = &m->sections[sec];
    for (int v = 0; v < g->n_values && on[sec]; v++)
      if (g->values[v].kind == IR_V_PARAM) trains[g->values[v].param] = 1;
  }
}
