#include "weights.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "bf16.h"
#include "hf_index.h"
#include "rng.h"
#include "safetensors.h"

/* Init streams are (seed, WT_INIT_STREAM + param, layer); data windows use
 * (seed, step, row) and layer sampling its own tag, so no two purposes ever
 * draw from the same stream. */
#define WT_INIT_STREAM (0x494e4954ULL << 32) /* "INIT" */

/* One tensor's initial values from its own stream of the seed. */
static void init_tensor(const ir_param *par, int p, int layer, uint64_t seed, float *w) {
  int64_t n = ir_param_numel(par);
  rng_state r;
  rng_seed_stream(&r, seed, WT_INIT_STREAM + (uint64_t)p, (uint64_t)layer);
  for (int64_t i = 0; i < n; i++) {
    switch (par->init) {
    case IR_INIT_ZEROS: w[i] = 0.0f; break;
    case IR_INIT_ONES: w[i] = 1.0f; break;
    default: w[i] = (float)(rng_normal(&r) * par->init_std); break;
    }
  }
}

void wt_init_random(ms_state *s, uint64_t seed) {
  const ir_model *m = s->ir;
  for (int p = 0; p < m->n_params; p++)
    for (int l = 0; l < ps_param_layers(m, p); l++)
      init_tensor(&m->params[p], p, l, seed, ms_param(s, p, l));
}

int wt_init_random_into(const ir_model *m, const param_store *ps, uint64_t seed,
                        int adapters_only, lt_error *err) {
  float *w = malloc(sizeof(float) * (size_t)ps_max_numel(m));
  if (!w) return lt_fail(err, "out of memory");
  int rc = 0;
  for (int p = 0; rc == 0 && p < m->n_params; p++)
    for (int l = 0; rc == 0 && l < ps_param_layers(m, p) && (!adapters_only || m->params[p].adapter);
         l++) {
      init_tensor(&m->params[p], p, l, seed, w);
      rc = ps->put(ps->ctx, p, l, w, err);
    }
  free(w);
  return rc;
}

void wt_interleave_rows(const ir_param *par, const float *from, float *to, int to_lisa) {
  int64_t G = par->interleave_groups, P = par->interleave_parts;
  int64_t width = par->ndim == 2 ? par->shape[1] : 1;
  int64_t piece = par->shape[0] / (G * P) * width; /* floats in one piece */
  for (int64_t g = 0; g < G; g++)
    for (int64_t p = 0; p < P; p++) {
      int64_t ckpt = (g * P + p) * piece, lisa = (p * G + g) * piece;
      memcpy(to + (to_lisa ? lisa : ckpt), from + (to_lisa ? ckpt : lisa),
             (size_t)piece * sizeof(float));
    }
}

/* ---- staging: the tensor in hand between a store and a file ------------- */

static int any_interleaved(const ir_model *m) {
  for (int p = 0; p < m->n_params; p++)
    if (m->params[p].interleave_groups) return 1;
  return 0;
}

uint64_t wt_staging_bytes(const ir_model *m) {
  return sizeof(float) * (uint64_t)ps_max_numel(m) * (1 + (uint64_t)any_interleaved(m));
}

int wt_staging_init(wt_staging *st, const ir_model *m, const param_store *ps, lt_error *err) {
  size_t bytes = sizeof(float) * (size_t)ps_max_numel(m);
  int twice = any_interleaved(m);
  *st = (wt_staging){ps, m, malloc(bytes), twice ? malloc(bytes) : NULL, -1, 0};
  if (st->values && (st->other_order || !twice)) return 0;
  wt_staging_free(st);
  return lt_fail(err, "out of memory");
}

void wt_staging_free(wt_staging *st) {
  free(st->values);
  free(st->other_order);
  st->values = st->other_order = NULL;
}

/* Fetches (p, layer) into the staging unless it holds it already. */
static int stage(wt_fill *f, lt_error *err) {
  wt_staging *st = f->staging;
  if (st->p == f->p && st->layer == f->layer) return 0;
  const ir_param *par = &st->m->params[f->p];
  float *get = par->interleave_groups ? st->other_order : st->values;
  st->p = -1;
  if (st->ps->get(st->ps->ctx, f->p, f->layer, get, err)) return -1;
  if (par->interleave_groups) wt_interleave_rows(par, get, st->values, 0);
  st->p = f->p, st->layer = f->layer;
  return 0;
}

int wt_fill_param(void *ctx, uint64_t at, void *out, size_t bytes, lt_error *err) {
  wt_fill *f = ctx;
  if (stage(f, err)) return -1;
  const float *values = f->staging->values;
  if (f->dtype != ST_BF16) {
    memcpy(out, (const char *)values + at, bytes);
    return 0;
  }
  uint16_t *h = out; /* bf16: rounded to nearest even, as torch's .to(bfloat16) */
  for (size_t i = 0; i < bytes / 2; i++) h[i] = f32_to_bf16(values[at / 2 + i]);
  return 0;
}

/* ---- loading ------------------------------------------------------------ */

/* Where one (param, layer) is read from: its tensor's name and shard. */
typedef struct {
  int p, layer, shard;
  char name[320];
} wt_slot;

/* Tensors in the files that the model does not use: how many, and the
 * first few names for the note. */
typedef struct {
  int count;
  char first[4][256];
} wt_unused;

/* The shard of a tensor name in a checkpoint (a file or an index), or -1. */
typedef int (*wt_lookup)(const void *ckpt, const char *name);

static int lookup_file(const void *f, const char *name) { return st_find(f, name) ? 0 : -1; }
static int lookup_index(const void *x, const char *name) { return hf_index_find(x, name); }

static int count_slots(const ir_model *m) {
  int n = 0;
  for (int p = 0; p < m->n_params; p++) n += ps_param_layers(m, p);
  return n;
}

/* Names the slot by the first of the model's prefixes the checkpoint has;
 * if none, by the bare name, for the message. */
static int find_slot_name(const ir_model *m, wt_lookup lookup, const void *ckpt, wt_slot *slot) {
  char base[200];
  ir_param_hf_name(&m->params[slot->p], slot->layer, base, sizeof base);
  int n_prefixes = m->n_prefixes > 0 ? m->n_prefixes : 1;
  for (int i = 0; i < n_prefixes; i++) {
    snprintf(slot->name, sizeof slot->name, "%s%s", m->n_prefixes ? m->prefixes[i] : "",
             base);
    if ((slot->shard = lookup(ckpt, slot->name)) >= 0) return 0;
  }
  snprintf(slot->name, sizeof slot->name, "%s", base);
  return -1;
}

/* Finds every slot before any value is read, so a missing tensor leaves
 * the parameters as they were. */
static int locate_slots(const ir_model *m, wt_lookup lookup, const void *ckpt, const char *path,
                        wt_slot *slots, lt_error *err) {
  int k = 0;
  for (int p = 0; p < m->n_params; p++) {
    const ir_param *par = &m->params[p];
    for (int l = 0; l < ps_param_layers(m, p); l++, k++) {
      slots[k] = (wt_slot){.p = p, .layer = l};
      /* a base checkpoint has no LoRA adapters: they keep their init */
      if (find_slot_name(m, lookup, ckpt, &slots[k]) && !par->adapter)
        return lt_fail(err, "%s: missing tensor '%s' (param '%s', %s:%d)", path, slots[k].name,
                       par->key, m->path, par->line);
    }
  }
  return 0;
}

static void format_shape(char *out, size_t cap, int ndim, const int64_t *shape) {
  int k = snprintf(out, cap, "[");
  for (int d = 0; d < ndim && k < (int)cap; d++)
    k += snprintf(out + k, cap - (size_t)k, d ? ", %lld" : "%lld", (long long)shape[d]);
  if (k < (int)cap) snprintf(out + k, cap - (size_t)k, "]");
}

/* Where loaded values go: the store (NULL: only check every tensor's
 * presence and shape), through staging (its values in lisa's row order). */
typedef struct {
  const ir_model *m;
  const param_store *ps;
  wt_staging st; /* unused without a store */
} wt_loader;

/* index: the index that put the slot in f, or NULL for a single file. */
static int load_slot(const wt_loader *L, const st_file *f, const wt_slot *slot, const char *index,
                     unsigned char *used, lt_error *err) {
  const ir_model *m = L->m;
  const ir_param *par = &m->params[slot->p];
  const st_tensor *t = st_find(f, slot->name);
  if (!t) /* only with an index: locate_slots searched a single file */
    return lt_fail(err, "%s: no tensor '%s', which %s puts in this shard (param '%s', %s:%d)",
                   f->path, slot->name, index, par->key, m->path, par->line);
  int same = t->ndim == par->ndim;
  for (int d = 0; same && d < par->ndim; d++) same = t->shape[d] == par->shape[d];
  if (!same) {
    char got[64], want[64];
    format_shape(got, sizeof got, t->ndim, t->shape);
    format_shape(want, sizeof want, par->ndim, par->shape);
    return lt_fail(err, "%s: tensor '%s' has shape %s, the model expects %s (param '%s', %s:%d)",
                   f->path, slot->name, got, want, par->key, m->path, par->line);
  }
  used[t - f->tensors] = 1;
  if (!L->ps) return 0;
  /* read in the checkpoint's row order, kept in lisa's */
  float *read = par->interleave_groups ? L->st.other_order : L->st.values;
  if (st_read_f32_finite(f, t, read, err)) return -1;
  if (par->interleave_groups) wt_interleave_rows(par, read, L->st.values, 1);
  return L->ps->put(L->ps->ctx, slot->p, slot->layer, L->st.values, err);
}

static void unused_add(wt_unused *u, const st_file *f, const unsigned char *used) {
  for (int i = 0; i < f->n; i++)
    if (!used[i] && u->count++ < 4)
      snprintf(u->first[u->count - 1], sizeof u->first[0], "%s", f->tensors[i].name);
}

static void unused_format(const wt_unused *u, const char *path, char *note, size_t cap) {
  note[0] = '\0';
  if (!u->count) return;
  int k = snprintf(note, cap, "%s: ignored %d tensor%s the model does not use:", path, u->count,
                   u->count == 1 ? "" : "s");
  for (int i = 0; i < u->count && i < 4 && k < (int)cap; i++)
    k += snprintf(note + k, cap - (size_t)k, " %s", u->first[i]);
  if (u->count > 4 && k < (int)cap) snprintf(note + k, cap - (size_t)k, " ...");
}

/* Reads the slots in `shard` from f and notes f's tensors none of them use. */
static int load_slots(const wt_loader *L, const st_file *f, const wt_slot *slots, int n, int shard,
                      const char *index, wt_unused *unused, lt_error *err) {
  unsigned char *used = calloc((size_t)f->n + 1, 1);
  if (!used) return lt_fail(err, "%s: out of memory", f->path);
  int rc = 0;
  for (int i = 0; rc == 0 && i < n; i++)
    if (slots[i].shard == shard) rc = load_slot(L, f, &slots[i], index, used, err);
  if (rc == 0) unused_add(unused, f, used);
  free(used);
  return rc;
}

static int load_file(const wt_loader *L, const char *path, wt_slot *slots, int n,
                     wt_unused *unused, lt_error *err) {
  st_file f;
  if (st_open(&f, path, err)) return -1;
  int rc = locate_slots(L->m, lookup_file, &f, path, slots, err);
  if (rc == 0) rc = load_slots(L, &f, slots, n, 0, NULL, unused, err);
  st_close(&f);
  return rc;
}

/* One shard open at a time (its tensors read one by one). */
static int load_shard(const wt_loader *L, const hf_index *x, int shard, const wt_slot *slots, int n,
                      wt_unused *unused, lt_error *err) {
  char path[1100];
  st_file f;
  if (hf_index_shard_path(x, shard, path, sizeof path, err)) return -1;
  if (st_open(&f, path, err)) {
    lt_error cause = *err;
    return lt_fail(err, "%s (%s puts '%s' in this shard)", cause.msg, x->path,
                   hf_index_first_in_shard(x, shard));
  }
  int rc = load_slots(L, &f, slots, n, shard, x->path, unused, err);
  st_close(&f);
  return rc;
}

static int load_indexed(const wt_loader *L, const char *path, wt_slot *slots, int n,
                        wt_unused *unused, lt_error *err) {
  hf_index x;
  if (hf_index_open(&x, path, err)) return -1;
  int rc = locate_slots(L->m, lookup_index, &x, path, slots, err);
  for (int k = 0; rc == 0 && k < x.n_shards; k++)
    rc = load_shard(L, &x, k, slots, n, unused, err);
  hf_index_close(&x);
  return rc;
}

/* A folder stands for its model.safetensors, else its index: the order in
 * which Hugging Face's loader looks for them. */
static int resolve_path(const char *path, char *out, size_t cap, lt_error *err) {
  static const char *const names[] = {"model.safetensors", "model.safetensors.index.json"};
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    if ((size_t)snprintf(out, cap, "%s", path) >= cap)
      return lt_fail(err, "%s: path too long", path);
    return 0;
  }
  for (int i = 0; i < 2; i++) {
    if ((size_t)snprintf(out, cap, "%s/%s", path, names[i]) >= cap)
      return lt_fail(err, "%s: path too long", path);
    if (access(out, F_OK) == 0) return 0;
  }
  return lt_fail(err, "%s: folder holds neither model.safetensors nor model.safetensors.index.json",
                 path);
}

static int is_index(const char *path) {
  size_t n = strlen(path);
  return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}


int wt_source_dtype(const char *path) {
  char file[1100];
  lt_error err;
  if (resolve_path(path, file, sizeof file, &err)) return ST_F32;
  if (is_index(file)) {
    hf_index x;
    if (hf_index_open(&x, file, &err)) return ST_F32;
    int rc = x.n_shards > 0 ? hf_index_shard_path(&x, 0, file, sizeof file, &err) : -1;
    hf_index_close(&x);
    if (rc) return ST_F32;
  }
  st_file f;
  if (st_open(&f, file, &err)) return ST_F32;
  int dtype = f.n > 0 && f.tensors[0].dtype == ST_BF16 ? ST_BF16 : ST_F32;
  st_close(&f);
  return dtype;
}

int wt_load_into(const ir_model *m, const param_store *ps, const char *path, char *note,
                 size_t note_cap, lt_error *err) {
  char file[1024];
  if (resolve_path(path, file, sizeof file, err)) return -1;
  int n = count_slots(m);
  wt_loader L = {m, ps, {0}};
  if (ps && wt_staging_init(&L.st, m, ps, err)) return -1;
  wt_slot *slots = calloc((size_t)n + 1, sizeof *slots);
  wt_unused unused = {0};
  int rc = !slots          ? lt_fail(err, "%s: out of memory", file)
           : is_index(file) ? load_indexed(&L, file, slots, n, &unused, err)
                            : load_file(&L, file, slots, n, &unused, err);
  if (rc == 0 && note) unused_format(&unused, file, note, note_cap);
  free(slots);
  wt_staging_free(&L.st);
  return rc;
}

int wt_load_strict_into(const ir_model *m, const param_store *ps, const char *path,
                        int ignore_unused, char *note, size_t note_cap, lt_error *err) {
  if (wt_load_into(m, ps, path, note, note_cap, err)) return -1;
  if (note[0] && !ignore_unused)
    return lt_fail(err, "%s; a weight the model does not read would be lost (a fused or "
                   "renamed tensor?): check the model, or pass --ignore-unused", note);
  return 0;
}

int wt_load(ms_state *s, const char *path, char *note, size_t note_cap, lt_error *err) {
  ps_host_arrays a = {s, NULL, NULL};
  param_store ps = ps_host(&a);
  return wt_load_into(s->ir, &ps, path, note, note_cap, err);
}

int wt_load_strict(ms_state *s, const char *path, int ignore_unused, char *note,
                   size_t note_cap, lt_error *err) {
  ps_host_arrays a = {s, NULL, NULL};
  param_store ps = ps_host(&a);
  return wt_load_strict_into(s->ir, &ps, path, ignore_unused, note, note_cap, err);
}

const char *wt_frozen_source(const char *weights, const char *folder) {
  return weights ? weights : folder[0] ? folder : NULL;
}

int wt_open_frozen(ms_state *s, const ir_model *m, int B, int T, const char *weights,
                   const char *folder, int ignore_unused, int layout_only, lt_error *err) {
  const char *path = wt_frozen_source(weights, folder);
  if (!path) return lt_fail(err, "%s: a YAML model needs --weights", m->path);
  unsigned char *none = calloc((size_t)m->n_params + 1, 1); /* nothing trains */
  int rc = !none                ? lt_fail(err, "out of memory")
           : layout_only        ? ms_create_layout(s, m, B, T, 0, 1, none, err)
                                : ms_create_trains(s, m, B, T, 0, 1, none, err);
  free(none);
  if (rc) return -1;
  char note[512];
  if (layout_only ? wt_load_strict_into(m, NULL, path, ignore_unused, note, sizeof note, err)
                  : wt_load_strict(s, path, ignore_unused, note, sizeof note, err))
    return ms_free(s), -1;
  return 0;
}

/* ---- saving ------------------------------------------------------------- */

/* Every parameter as an F32 (or BF16) entry under its Hugging Face name
 * (first prefix), in model order, filled from the store. */
typedef struct {
  int n;
  st_entry *entries;
  char (*names)[320]; /* a prefix (< 64) and a name (< 200) */
  wt_fill *fills;
  wt_staging staging;
} wt_entries;

static void entries_free(wt_entries *e) {
  free(e->entries);
  free(e->names);
  free(e->fills);
  wt_staging_free(&e->staging);
}

static int entries_build(const ir_model *m, const param_store *ps, wt_entries *e,
                         int skip_adapters, int dtype, lt_error *err) {
  e->n = count_slots(m);
  e->entries = calloc((size_t)e->n + 1, sizeof *e->entries);
  e->names = calloc((size_t)e->n + 1, sizeof *e->names);
  e->fills = calloc((size_t)e->n + 1, sizeof *e->fills);
  e->staging = (wt_staging){0}; /* entries_free frees it whatever failed */
  if (!e->entries || !e->names || !e->fills || wt_staging_init(&e->staging, m, ps, err)) {
    entries_free(e);
    return lt_fail(err, "out of memory");
  }
  int k = 0;
  for (int p = 0; p < m->n_params; p++) {
    const ir_param *par = &m->params[p];
    for (int l = 0; l < ps_param_layers(m, p) && !(skip_adapters && par->adapter); l++, k++) {
      char base[200];
      ir_param_hf_name(par, l, base, sizeof base);
      snprintf(e->names[k], sizeof e->names[k], "%s%s", m->n_prefixes ? m->prefixes[0] : "", base);
      e->fills[k] = (wt_fill){&e->staging, p, l, dtype};
      e->entries[k] = (st_entry){e->names[k], dtype, par->ndim, {par->shape[0], par->shape[1]},
                                 NULL, wt_fill_param, &e->fills[k]};
    }
  }
  e->n = k;
  return 0;
}

static uint64_t entry_bytes(const st_entry *e) {
  uint64_t n = e->dtype == ST_BF16 ? 2 : 4;
  for (int d = 0; d < e->ndim; d++) n *= (uint64_t)e->shape[d];
  return n;
}

static int write_file(const ir_model *m, const char *path, const st_entry *entries, int n,
                      lt_error *err) {
  const char *meta[] = {"format", "pt", "lisa_model", m->name};
  return st_write(path, entries, n, meta, 2, err);
}

int wt_save_into(const ir_model *m, const param_store *ps, const char *path, int skip_adapters,
                 int dtype, lt_error *err) {
  wt_entries e;
  if (entries_build(m, ps, &e, skip_adapters, dtype, err)) return -1;
  int rc = write_file(m, path, e.entries, e.n, err);
  entries_free(&e);
  return rc;
}

int wt_save(const ms_state *s, const char *path, lt_error *err) {
  ps_host_arrays a = {(ms_state *)s, NULL, NULL}; /* the host store only reads through get */
  param_store ps = ps_host(&a);
  return wt_save_into(s->ir, &ps, path, 0, ST_F32, err);
}

int wt_save_base(const ms_state *s, const char *path, lt_error *err) {
  ps_host_arrays a = {(ms_state *)s, NULL, NULL};
  param_store ps = ps_host(&a);
  return wt_save_into(s->ir, &ps, path, 1, ST_F32, err);
}

/* Hugging Face's rule, in model order: a new shard when the next tensor
 * would pass the limit, so a tensor larger than the limit is alone in its
 * shard. Returns the number of shards. */
static int assign_shards(const wt_entries *e, uint64_t max_bytes, hf_index_entry *map) {
  int shard = 0;
  uint64_t filled = 0;
  for (int i = 0; i < e->n; i++) {
    uint64_t bytes = entry_bytes(&e->entries[i]);
    if (filled > 0 && filled + bytes > max_bytes) shard++, filled = 0;
    filled += bytes;
    map[i] = (hf_index_entry){e->entries[i].name, shard};
  }
  return shard + 1;
}

/* A save's shards never overwrite the shards the folder's index names: when
 * Hugging Face's names (set 0) are taken, this save uses set 1
 * ("model-KKKKK-of-NNNNN.1.safetensors"), and the next save set 0 again. The
 * index, renamed into place last, names only the new set; then the other
 * set goes. A crash anywhere leaves the old index with all its shards, or
 * the new one with all of its. */
static const char *const shard_formats[2] = {"model-%05d-of-%05d.safetensors",
                                             "model-%05d-of-%05d.1.safetensors"};

/* N of a shard name of either set (*set: which), or -1. */
static int shard_count_of(const char *name, int *set) {
  size_t len = strlen(name);
  if (strncmp(name, "model-", 6) || len < 32 || strncmp(name + 11, "-of-", 4)) return -1;
  if (!strcmp(name + 20, ".safetensors")) *set = 0;
  else if (!strcmp(name + 20, ".1.safetensors")) *set = 1;
  else return -1;
  int k = 0, n = 0;
  for (int i = 0; i < 5; i++) {
    if (name[6 + i] < '0' || name[6 + i] > '9' || name[15 + i] < '0' || name[15 + i] > '9')
      return -1;
    k = 10 * k + (name[6 + i] - '0');
    n = 10 * n + (name[15 + i] - '0');
  }
  return k >= 1 && k <= n ? n : -1;
}

/* The set whose first shard name is free in dir. */
static int free_shard_set(const char *dir, int n_shards, lt_error *err) {
  char name[48], path[1100];
  struct stat st;
  snprintf(name, sizeof name, shard_formats[0], 1, n_shards);
  if (atomic_file_join(path, sizeof path, dir, name, err)) return -1;
  return lstat(path, &st) == 0 ? 1 : 0;
}

/* Removes what a save of another layout left in dir (n_shards 0: the new
 * one is model.safetensors): shards not of the new count and set, and the
 * single file or the index the new layout does not use. A stale
 * model.safetensors must go, or it would be loaded instead of the new index. */
static int remove_stale(const char *dir, int n_shards, int set, lt_error *err) {
  DIR *d = opendir(dir);
  if (!d) return lt_fail(err, "%s: cannot list folder: %s", dir, strerror(errno));
  const char *other = n_shards ? "model.safetensors" : "model.safetensors.index.json";
  char path[1100];
  int rc = 0;
  for (struct dirent *de; rc == 0 && (de = readdir(d));) {
    int of_set = -1, of = shard_count_of(de->d_name, &of_set);
    if (of < 0 ? strcmp(de->d_name, other) != 0 : of == n_shards && of_set == set) continue;
    rc = atomic_file_join(path, sizeof path, dir, de->d_name, err);
    if (rc == 0 && unlink(path) != 0 && errno != ENOENT)
      rc = lt_fail(err, "%s: cannot remove stale file: %s", path, strerror(errno));
  }
  closedir(d);
  return rc;
}

static int save_whole(const ir_model *m, const char *dir, const wt_entries *e, lt_error *err) {
  char path[1100];
  if (atomic_file_join(path, sizeof path, dir, "model.safetensors", err) ||
      write_file(m, path, e->entries, e->n, err))
    return -1;
  return remove_stale(dir, 0, 0, err);
}

/* Shards first, under names the current index does not use, the index
 * last, so until the index is renamed into place the folder loads as it was. */
static int save_shards(const ir_model *m, const char *dir, const wt_entries *e,
                       const hf_index_entry *map, int n_shards, lt_error *err) {
  char (*files)[48] = calloc((size_t)n_shards, sizeof *files);
  const char **shards = calloc((size_t)n_shards, sizeof *shards);
  int set = free_shard_set(dir, n_shards, err);
  int rc = set < 0 ? -1 : files && shards ? 0 : lt_fail(err, "%s: out of memory", dir);
  char path[1100];
  uint64_t total = 0;
  for (int k = 0, start = 0; rc == 0 && k < n_shards; k++) {
    snprintf(files[k], sizeof files[k], shard_formats[set], k + 1, n_shards);
    shards[k] = files[k];
    int end = start;
    for (; end < e->n && map[end].shard == k; end++) total += entry_bytes(&e->entries[end]);
    if (atomic_file_join(path, sizeof path, dir, files[k], err) ||
        write_file(m, path, e->entries + start, end - start, err))
      rc = -1;
    start = end;
  }
  if (rc == 0 && (atomic_file_join(path, sizeof path, dir, "model.safetensors.index.json", err) ||
                  hf_index_write(path, map, e->n, shards, total, err) ||
                  atomic_file_sync_dir(dir, err) || remove_stale(dir, n_shards, set, err)))
    rc = -1;
  free(files);
  free(shards);
  return rc;
}

int wt_save_sharded_into(const ir_model *m, const param_store *ps, const char *dir,
                         uint64_t max_shard_bytes, int skip_adapters, int dtype, lt_error *err) {
  wt_entries e;
  if (atomic_file_make_dir(dir, err) || entries_build(m, ps, &e, skip_adapters, dtype, err))
    return -1;
  hf_index_entry *map = calloc((size_t)e.n + 1, sizeof *map);
  int rc = map ? 0 : lt_fail(err, "%s: out of memory", dir);
  int n_shards = map ? assign_shards(&e, max_shard_bytes, map) : 0;
  if (rc == 0 && n_shards > 99999)
    rc = lt_fail(err, "%s: %d shards of at most %llu bytes; Hugging Face's names allow 99999",
                 dir, n_shards, (unsigned long long)max_shard_bytes);
  if (rc == 0)
    rc = n_shards == 1 ? save_whole(m, dir, &e, err) : save_shards(m, dir, &e, map, n_shards, err);
  if (rc == 0) rc = atomic_file_sync_dir(dir, err);
  free(map);
  entries_free(&e);
  return rc;
}

int wt_save_sharded(const ms_state *s, const char *dir, uint64_t max_shard_bytes,
                    int skip_adapters, lt_error *err) {
  ps_host_arrays a = {(ms_state *)s, NULL, NULL};
  param_store ps = ps_host(&a);
  return wt_save_sharded_into(s->ir, &ps, dir, max_shard_bytes, skip_adapters, ST_F32, err);
}
