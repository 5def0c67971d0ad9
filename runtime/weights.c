#include "weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "safetensors.h"

/* Init streams are (seed, WT_INIT_STREAM + param, layer); data windows use
 * (seed, step, row) and layer sampling its own tag, so no two purposes ever
 * draw from the same stream. */
#define WT_INIT_STREAM (0x494e4954ULL << 32) /* "INIT" */

static int param_layers(const ms_state *s, const ir_param *p) {
  return p->section == IR_BLOCK ? s->ir->n_layer : 1;
}

void wt_init_random(ms_state *s, uint64_t seed) {
  const ir_model *m = s->ir;
  for (int p = 0; p < m->n_params; p++) {
    const ir_param *par = &m->params[p];
    int64_t n = ir_param_numel(par);
    for (int l = 0; l < param_layers(s, par); l++) {
      float *w = ms_param(s, p, l);
      rng_state r;
      rng_seed_stream(&r, seed, WT_INIT_STREAM + (uint64_t)p, (uint64_t)l);
      for (int64_t i = 0; i < n; i++) {
        switch (par->init) {
        case IR_INIT_ZEROS: w[i] = 0.0f; break;
        case IR_INIT_ONES: w[i] = 1.0f; break;
        default: w[i] = (float)(rng_normal(&r) * par->init_std); break;
        }
      }
    }
  }
}

static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
  int k = snprintf(out, cap, "[");
  for (int d = 0; d < ndim && k < (int)cap; d++)
    k += snprintf(out + k, cap - (size_t)k, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (k < (int)cap) snprintf(out + k, cap - (size_t)k, "]");
}

/* Finds the tensor of (p, layer) under any of the model's prefixes. */
static const st_tensor *find_param_tensor(const ms_state *s, const st_file *f,
                                          const ir_param *par, int layer,
                                          char *name, size_t cap) {
  char base[200];
  ir_param_hf_name(par, layer, base, sizeof base);
  int n_prefixes = s->ir->n_prefixes > 0 ? s->ir->n_prefixes : 1;
  for (int i = 0; i < n_prefixes; i++) {
    snprintf(name, cap, "%s%s", s->ir->n_prefixes ? s->ir->prefixes[i] : "", base);
    const st_tensor *t = st_find(f, name);
    if (t) return t;
  }
  snprintf(name, cap, "%s", base);
  return NULL;
}

static int load_one(ms_state *s, const st_file *f, int p, int layer,
                    unsigned char *used, lt_error *err) {
  const ir_param *par = &s->ir->params[p];
  char name[256];
  const st_tensor *t = find_param_tensor(s, f, par, layer, name, sizeof name);
  if (!t)
    return lt_fail(err, "%s: missing tensor '%s' (param '%s', %s:%d)", f->path, name, par->key,
                   s->ir->path, par->line);
  int same = t->ndim == par->ndim;
  for (int d = 0; same && d < par->ndim; d++) same = t->shape[d] == par->shape[d];
  if (!same) {
    char got[64], want[64];
    format_shape(got, sizeof got, t->ndim, t->shape);
    format_shape(want, sizeof want, par->ndim, par->shape);
    return lt_fail(err, "%s: tensor '%s' has shape %s, the model expects %s (param '%s', %s:%d)",
                   f->path, name, got, want, par->key, s->ir->path, par->line);
  }
  used[t - f->tensors] = 1;
  return st_read_f32(f, t, ms_param(s, p, layer), err);
}

static void summarize_unused(const st_file *f, const unsigned char *used, char *note, size_t cap) {
  int n_unused = 0;
  for (int i = 0; i < f->n; i++) n_unused += !used[i];
  note[0] = '\0';
  if (!n_unused) return;
  int k = snprintf(note, cap, "%s: ignored %d tensor%s the model does not use:", f->path, n_unused,
                   n_unused == 1 ? "" : "s");
  int shown = 0;
  for (int i = 0; i < f->n && k < (int)cap; i++) {
    if (used[i]) continue;
    if (shown++ == 4) {
      snprintf(note + k, cap - (size_t)k, " ...");
      break;
    }
    k += snprintf(note + k, cap - (size_t)k, " %s", f->tensors[i].name);
  }
}

int wt_load(ms_state *s, const char *path, char *note, size_t note_cap, lt_error *err) {
  st_file f;
  if (st_open(&f, path, err)) return -1;
  unsigned char *used = calloc((size_t)f.n + 1, 1);
  int rc = used ? 0 : lt_fail(err, "out of memory");
  for (int p = 0; rc == 0 && p < s->ir->n_params; p++)
    for (int l = 0; rc == 0 && l < param_layers(s, &s->ir->params[p]); l++)
      rc = load_one(s, &f, p, l, used, err);
  if (rc == 0 && note) summarize_unused(&f, used, note, note_cap);
  free(used);
  st_close(&f);
  return rc;
}

int wt_save(const ms_state *s, const char *path, lt_error *err) {
  const ir_model *m = s->ir;
  int n = 0;
  for (int p = 0; p < m->n_params; p++) n += param_layers(s, &m->params[p]);
  st_entry *entries = calloc((size_t)n, sizeof *entries);
  char (*names)[320] = calloc((size_t)n, sizeof *names);
  if (!entries || !names) {
    free(entries);
    free(names);
    return lt_fail(err, "out of memory");
  }
  int k = 0;
  for (int p = 0; p < m->n_params; p++) {
    const ir_param *par = &m->params[p];
    for (int l = 0; l < param_layers(s, par); l++, k++) {
      char base[200];
      ir_param_hf_name(par, l, base, sizeof base);
      snprintf(names[k], sizeof names[k], "%s%s", m->n_prefixes ? m->prefixes[0] : "", base);
      entries[k] = (st_entry){names[k], ST_F32, par->ndim, {par->shape[0], par->shape[1]},
                              ms_param(s, p, l)};
    }
  }
  const char *meta[] = {"format", "pt", "lisa_model", m->name};
  int rc = st_write(path, entries, n, meta, 2, err);
  free(entries);
  free(names);
  return rc;
}
