#include "model_source.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ir_rope.h"
#include "model_yaml.h"

#ifndef LISA_MODELS_DIR
#define LISA_MODELS_DIR "models"
#endif

int model_is_folder(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *models_dir(void) {
  const char *env = getenv("LISA_MODELS");
  return env && env[0] ? env : LISA_MODELS_DIR;
}

static cJSON *read_json(const char *path, lt_error *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return lt_fail(err, "%s: cannot open: %s", path, strerror(errno)), NULL;
  char *text = NULL;
  size_t n = 0;
  long len = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
  if (len >= 0 && len < (64 << 20) && fseek(fp, 0, SEEK_SET) == 0 && (text = malloc((size_t)len + 1)))
    n = fread(text, 1, (size_t)len, fp);
  fclose(fp);
  if (!text || n != (size_t)len) {
    free(text);
    return lt_fail(err, "%s: cannot read", path), NULL;
  }
  cJSON *root = cJSON_ParseWithLength(text, n);
  free(text);
  if (!cJSON_IsObject(root)) {
    cJSON_Delete(root);
    return lt_fail(err, "%s: not a JSON object", path), NULL;
  }
  return root;
}

/* "a, b or c": the families models/ holds (files with an hf section are
 * the families; this lists every <type>.yaml whose name has no '-'). */
static void list_families(char *out, size_t cap) {
  out[0] = '\0';
  DIR *d = opendir(models_dir());
  size_t k = 0;
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t len = strlen(e->d_name);
    if (len > 5 && !strcmp(e->d_name + len - 5, ".yaml") && !strchr(e->d_name, '-') && k < cap)
      k += (size_t)snprintf(out + k, cap - k, "%s%.*s", k ? ", " : "", (int)(len - 5), e->d_name);
  }
  if (d) closedir(d);
}

/* transformers 5 writes rope_theta (and partial_rotary_factor) inside
 * "rope_parameters"; 4.x at the top level. Both read as the same names. */
static const cJSON *rope_parameters(const cJSON *root) {
  const cJSON *r = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
  return cJSON_IsObject(r) ? r : NULL;
}

/* rope_parameters is one object, or one per layer type (Gemma 3):
 * full_attention's is the global rope's (rope_theta, its scaling),
 * sliding_attention's the local layers' (its rope_theta reads as 4.x's
 * rope_local_base_freq). */
typedef struct {
  const cJSON *global, *local;
} rope_objects;

static rope_objects rope_objects_of(const cJSON *root) {
  rope_objects r = {NULL, NULL};
  const cJSON *p = rope_parameters(root);
  if (!p) return r;
  const cJSON *full = cJSON_GetObjectItemCaseSensitive(p, "full_attention"),
              *sliding = cJSON_GetObjectItemCaseSensitive(p, "sliding_attention");
  if (!cJSON_IsObject(full) && !cJSON_IsObject(sliding)) return r.global = p, r;
  r.global = cJSON_IsObject(full) ? full : NULL;
  r.local = cJSON_IsObject(sliding) ? sliding : NULL;
  return r;
}

/* Numbers, booleans (1/0) and nulls (NAN: yml_overrides says what they do). */
static int add_numbers(const cJSON *obj, ir_config_entry *out, int k) {
  for (const cJSON *e = obj ? obj->child : NULL; e; e = e->next) {
    if (!cJSON_IsNumber(e) && !cJSON_IsBool(e) && !cJSON_IsNull(e)) continue;
    snprintf(out[k].name, sizeof out[k].name, "%s", e->string);
    out[k++].value = cJSON_IsNumber(e) ? e->valuedouble : cJSON_IsNull(e) ? NAN : cJSON_IsTrue(e);
  }
  return k;
}

/* config.json's numbers and booleans, as overrides; strings and the rest
 * are checked after loading. */
static int numeric_entries(const cJSON *root, ir_config_entry **out, int *n) {
  rope_objects rope = rope_objects_of(root);
  int cap = cJSON_GetArraySize(root) + (rope.global ? cJSON_GetArraySize(rope.global) : 0) + 1;
  *out = calloc((size_t)cap + 1, sizeof **out);
  if (!*out) return -1;
  /* rope_parameters first: where both say, it is what transformers 5 uses */
  int k = add_numbers(rope.global, *out, 0);
  const cJSON *local = cJSON_GetObjectItemCaseSensitive(rope.local, "rope_theta");
  if (cJSON_IsNumber(local)) {
    snprintf((*out)[k].name, sizeof (*out)[k].name, "rope_local_base_freq");
    (*out)[k++].value = local->valuedouble;
  }
  *n = add_numbers(root, *out, k);
  return 0;
}

static int in_ignore(const yml_hf *hf, const char *key) {
  for (int i = 0; i < hf->n_ignore; i++)
    if (!strcmp(hf->ignore[i], key)) return 1;
  return 0;
}

/* The value as config.json spells it, for comparing with hf.require. */
static void json_text(const cJSON *e, char *out, size_t cap) {
  if (cJSON_IsString(e)) snprintf(out, cap, "%s", e->valuestring);
  else if (cJSON_IsBool(e)) snprintf(out, cap, "%s", cJSON_IsTrue(e) ? "true" : "false");
  else if (cJSON_IsNumber(e)) snprintf(out, cap, "%.17g", e->valuedouble);
  else snprintf(out, cap, "%s", cJSON_IsArray(e) ? "a list" : "an object");
}

static int layer_type_ok(const yml_hf *hf, const char *type) {
  if (hf->n_layer_types == 0) return !strcmp(type, "full_attention");
  for (int i = 0; i < hf->n_layer_types; i++)
    if (!strcmp(hf->layer_types[i], type)) return 1;
  return 0;
}

/* layer_types (transformers 5) lists each layer's attention; a family
 * computes full attention in every layer unless its hf.layer_types lists
 * more (Gemma 2's sliding layers, exact while --seq fits the window, which
 * its max_seq enforces). */
static int check_layer_types(const char *json_path, const cJSON *e, const yml_hf *hf,
                             lt_error *err) {
  if (!cJSON_IsArray(e)) return lt_fail(err, "%s: \"layer_types\" is not a list", json_path);
  int i = 0;
  for (const cJSON *t = e->child; t; t = t->next, i++)
    if (!cJSON_IsString(t) || !layer_type_ok(hf, t->valuestring))
      return lt_fail(err, "%s: \"layer_types\"[%d] is not \"full_attention\"; layers of "
                     "other attention (sliding windows) are not in this family's graph",
                     json_path, i);
  return 0;
}

/* Where the family computes sliding layers (Gemma 2's attention window and
 * global_every), config.json's layer_types must name the same layers. */
static int check_layer_pattern(const char *json_path, const cJSON *root, const ir_model *m,
                               lt_error *err) {
  const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
  const ir_graph *g = &m->sections[IR_BLOCK];
  for (int k = 0; cJSON_IsArray(types) && k < g->n_fwd; k++) {
    const ir_op *op = &g->fwd[k];
    if (op->kind != IR_OP_ATTENTION) continue;
    int i = 0;
    for (const cJSON *t = types->child; t && i < m->n_layer; t = t->next, i++) {
      const char *want = ir_att_window(op, i) ? "sliding_attention" : "full_attention";
      if (!cJSON_IsString(t) || strcmp(t->valuestring, want))
        return lt_fail(err, "%s: \"layer_types\"[%d] is %s, but the family computes %s there",
                       json_path, i, cJSON_IsString(t) ? t->valuestring : "not a string", want);
    }
  }
  return 0;
}

/* Where config.json scales RoPE: transformers 5's rope_parameters (the
 * global rope's), else 4.x's rope_scaling (null there: no scaling). */
static const cJSON *rope_scaling_source(const cJSON *root) {
  const cJSON *r = rope_parameters(root);
  if (r) return rope_objects_of(root).global;
  r = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  return cJSON_IsObject(r) ? r : NULL;
}

/* rope_type (4.x also spells it "type"); "default" when absent. */
static const char *rope_type_of(const cJSON *obj) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "rope_type");
  if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(obj, "type");
  return cJSON_IsString(t) ? t->valuestring : "default";
}

/* The scaling's object, then config.json's top level for the two sizes
 * transformers 4 keeps there (Phi-3's longrope). */
typedef struct {
  const cJSON *obj, *root;
} rope_json;

static const cJSON *rope_item(const rope_json *r, const char *key) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->obj, key);
  if (!e && (!strcmp(key, "original_max_position_embeddings") ||
             !strcmp(key, "max_position_embeddings")))
    e = cJSON_GetObjectItemCaseSensitive(r->root, key);
  return e;
}

static int rope_number(void *ctx, const char *key, double *value) {
  const cJSON *e = rope_item(ctx, key);
  if (cJSON_IsNumber(e)) *value = e->valuedouble;
  else if (cJSON_IsBool(e)) *value = cJSON_IsTrue(e);
  else return 0; /* absent or null: the kind's default */
  return 1;
}

static int rope_list(void *ctx, const char *key, float *out, int cap) {
  const cJSON *e = rope_item(ctx, key);
  if (!e || cJSON_IsNull(e)) return -1;
  if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) > cap) return -2;
  int n = 0;
  for (const cJSON *x = e->child; x; x = x->next) {
    if (!cJSON_IsNumber(x)) return -2;
    out[n++] = (float)x->valuedouble;
  }
  return n;
}

/* The scaling config.json asks for (kind default when none). */
static int read_rope_scaling(const char *json_path, const cJSON *root, ir_rope_scaling *s,
                             lt_error *err) {
  const cJSON *obj = rope_scaling_source(root);
  memset(s, 0, sizeof *s);
  if (!obj) return 0;
  char where[1300];
  snprintf(where, sizeof where, "%s: \"%s\"", json_path, obj->string);
  rope_json ctx = {obj, root};
  ir_rope_source src = {&ctx, where, rope_number, rope_list};
  return ir_rope_scaling_from(rope_type_of(obj), &src, s, err);
}

/* The scaling's object: rope_type and the kind's parameters are read by
 * read_rope_scaling; rope_parameters' other numbers are config values
 * (checked as the top level's); anything else is an error. */
static int check_rope(const char *json_path, const cJSON *obj, ir_rope_kind kind,
                      lt_error *err) {
  int legacy = obj != NULL && !strcmp(obj->string, "rope_scaling");
  for (const cJSON *e = obj ? obj->child : NULL; e; e = e->next) {
    if (!strcmp(e->string, "rope_type") || !strcmp(e->string, "type") || cJSON_IsNull(e) ||
        ir_rope_is_key(kind, e->string))
      continue;
    /* rope_parameters' other numbers are config values (rope_theta, ...),
     * unless they are another kind's parameters */
    if (!legacy && !ir_rope_is_key(-1, e->string) && (cJSON_IsNumber(e) || cJSON_IsBool(e)))
      continue;
    char have[64];
    json_text(e, have, sizeof have);
    return lt_fail(err, "%s: \"%s\".\"%s\" is %s; it is not a parameter of rope_type \"%s\"",
                   json_path, obj->string, e->string, have, ir_rope_kind_name(kind));
  }
  return 0;
}

/* sliding_attention's rope (Gemma 3's local layers): unscaled, its
 * rope_theta a base the family reads (rope_local_base_freq). */
static int check_local_rope(const char *json_path, const cJSON *local,
                            const ir_config_entry *nums, const unsigned char *used, int n_nums,
                            lt_error *err) {
  int read = 0; /* the family read the local base */
  for (int i = 0; i < n_nums && !read; i++)
    read = used[i] && !strcmp(nums[i].name, "rope_local_base_freq");
  for (const cJSON *e = local ? local->child : NULL; e; e = e->next) {
    if (cJSON_IsNull(e)) continue;
    if (!strcmp(e->string, "rope_type") && cJSON_IsString(e) &&
        !strcmp(e->valuestring, "default"))
      continue;
    if (!strcmp(e->string, "rope_theta") && read) continue;
    char have[64];
    json_text(e, have, sizeof have);
    return lt_fail(err, "%s: \"rope_parameters\".\"sliding_attention\".\"%s\" is %s; %s",
                   json_path, e->string, have,
                   !strcmp(e->string, "rope_theta")
                       ? "the family has no local rope base (rope_local_base_freq)"
                       : "the local layers' rope is computed unscaled (rope_type \"default\")");
  }
  return 0;
}

/* One key: a config value the family used, or required with this value. */
static int check_key(const char *json_path, const char *yaml, const cJSON *e,
                     const ir_config_entry *nums, const unsigned char *used, int n_nums,
                     const yml_hf *hf, lt_error *err) {
  int done = 0;
  for (int i = 0; i < n_nums && !done; i++) done = used[i] && !strcmp(nums[i].name, e->string);
  if (done) return 0;
  char have[64];
  json_text(e, have, sizeof have);
  for (int r = 0; r < hf->n_require && !done; r++) {
    if (strcmp(hf->require[r].key, e->string)) continue;
    if (strcmp(hf->require[r].value, have))
      return lt_fail(err, "%s: \"%s\" is %s, but %s computes it as %s", json_path, e->string,
                     have, yaml, hf->require[r].value);
    done = 1;
  }
  if (!done)
    return lt_fail(err, "%s: \"%s\" (%s) is not known to %s, so what it changes would be "
                   "lost; if it changes nothing in training, add it to the family's hf.ignore",
                   json_path, e->string, have, yaml);
  return 0;
}

/* Every key of config.json is accounted for: used as a config value,
 * ignored by the family, or required with the value it has. */
static int check_keys(const char *json_path, const char *yaml, const cJSON *root,
                      const ir_config_entry *nums, const unsigned char *used, int n_nums,
                      const yml_hf *hf, ir_rope_kind kind, lt_error *err) {
  const cJSON *params = rope_parameters(root), *scaling = rope_scaling_source(root);
  rope_objects objs = rope_objects_of(root);
  const cJSON *rope = objs.global;
  if (check_rope(json_path, scaling, kind, err) ||
      check_local_rope(json_path, objs.local, nums, used, n_nums, err))
    return -1;
  for (const cJSON *e = params && rope != params ? params->child : NULL; e; e = e->next)
    if (e != objs.global && e != objs.local)
      return lt_fail(err, "%s: \"rope_parameters\".\"%s\": per layer type, only "
                     "full_attention and sliding_attention are known", json_path, e->string);
  /* pass 0: the global rope's numbers (the scaling's checked above), 1: the top level */
  for (int pass = rope ? 0 : 1; pass < 2; pass++)
    for (const cJSON *e = pass ? root->child : rope->child; e; e = e->next) {
      if (!strcmp(e->string, "model_type") || cJSON_IsNull(e) || in_ignore(hf, e->string) ||
          e == params || e == scaling || (!pass && !cJSON_IsNumber(e) && !cJSON_IsBool(e)) ||
          (!pass && ir_rope_is_key(kind, e->string)))
        continue;
      if (!strcmp(e->string, "layer_types")) {
        if (check_layer_types(json_path, e, hf, err)) return -1;
        continue;
      }
      if (check_key(json_path, yaml, e, nums, used, n_nums, hf, err)) return -1;
    }
  return 0;
}

static int open_folder(const char *dir, ir_model *m, lt_error *err) {
  char json_path[1200], yaml[1200], families[512];
  snprintf(json_path, sizeof json_path, "%s/config.json", dir);
  cJSON *root = read_json(json_path, err);
  if (!root) return -1;
  const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
  int rc = -1;
  ir_config_entry *nums = NULL;
  unsigned char *used = NULL;
  int n_nums = 0;
  yml_hf hf;
  if (!cJSON_IsString(type) || !type->valuestring[0] || strchr(type->valuestring, '/') ||
      strchr(type->valuestring, '.')) {
    lt_fail(err, "%s: no \"model_type\" naming a family", json_path);
  } else if (snprintf(yaml, sizeof yaml, "%s/%s.yaml", models_dir(), type->valuestring),
             access(yaml, R_OK) != 0) {
    list_families(families, sizeof families);
    lt_fail(err, "%s: model_type \"%s\" has no family file (%s); known: %s", json_path,
            type->valuestring, yaml, families);
  } else if (numeric_entries(root, &nums, &n_nums) || !(used = calloc((size_t)n_nums + 1, 1))) {
    lt_fail(err, "%s: out of memory", json_path);
  } else {
    yml_overrides ov = {n_nums, nums, used};
    rc = yml_load_model_ex(yaml, &ov, &hf, m, err);
    if (rc == 0 && strcmp(hf.model_type, type->valuestring))
      rc = lt_fail(err, "%s: its hf.model_type is \"%s\", not \"%s\"", yaml, hf.model_type,
                   type->valuestring);
    ir_rope_scaling scaling;
    if (rc == 0) rc = read_rope_scaling(json_path, root, &scaling, err);
    if (rc == 0)
      rc = check_keys(json_path, yaml, root, nums, used, n_nums, &hf, scaling.kind, err);
    int n_ropes = rc == 0 && scaling.kind != IR_ROPE_DEFAULT
                      ? ir_model_set_rope_scaling(m, &scaling, json_path, err) : 1;
    if (n_ropes < 0) rc = -1;
    if (n_ropes == 0)
      rc = lt_fail(err, "%s: rope_type \"%s\", but %s has no rope op to scale", json_path,
                   ir_rope_kind_name(scaling.kind), yaml);
    if (rc == 0 && hf.n_layer_types) rc = check_layer_pattern(json_path, root, m, err);
    if (rc) ir_model_free(m);
  }
  free(nums);
  free(used);
  cJSON_Delete(root);
  return rc;
}

int model_open(const char *path, ir_model *m, char *weights, size_t cap, lt_error *err) {
  weights[0] = '\0';
  memset(m, 0, sizeof *m); /* ir_model_free-able whatever fails */
  if (!model_is_folder(path)) return yml_load_model(path, m, err);
  if (open_folder(path, m, err)) return -1;
  snprintf(weights, cap, "%s", path);
  return 0;
}
