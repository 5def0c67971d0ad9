/* Parameter init and checkpoints: GPT-2's init scheme from the YAML, a
 * save -> load round trip that is bit-exact, a checkpoint with tensors the
 * model does not use (Hugging Face's attention-mask buffers), and Hugging
 * Face sharded checkpoints: Hugging Face's sharding rule, round trips
 * through the folder and the index, and broken shards and indexes. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autodiff.h"
#include "bf16.h"
#include "check.h"
#include "model_yaml.h"
#include "safetensors.h"
#include "weights.h"

#define INDEX "model.safetensors.index.json"

static int load_tiny(ir_model *m, ms_state *s) {
  lt_error err;
  if (yml_load_model(src_path("models/gpt2-tiny.yaml"), m, &err) || ad_build_backward(m, &err) ||
      ms_create(s, m, 2, 5, m->n_layer, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    check_failures++;
    return -1;
  }
  return 0;
}

static double sample_std(const float *x, int64_t n) {
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; i++) sum += x[i], sq += (double)x[i] * x[i];
  double mean = sum / n;
  return sqrt(sq / n - mean * mean);
}

static void test_init_follows_yaml(void) {
  ir_model m;
  ms_state s;
  if (load_tiny(&m, &s)) return;
  wt_init_random(&s, 42);
  const float *ln = ms_param(&s, ir_find_param(&m, "ln_1_w"), 1);
  const float *bias = ms_param(&s, ir_find_param(&m, "fc_b"), 0);
  for (int i = 0; i < 24; i++) CHECK(ln[i] == 1.0f);
  for (int i = 0; i < 96; i++) CHECK(bias[i] == 0.0f);
  /* 24*72 = 1728 samples: the std is within ~10% of its target */
  int p = ir_find_param(&m, "attn_w");
  CHECK_CLOSE(sample_std(ms_param(&s, p, 0), 24 * 72), 0.02, 0, 0.1);
  p = ir_find_param(&m, "mproj_w"); /* GPT-2's residual projections: 0.02/sqrt(2 n_layer) */
  CHECK_CLOSE(sample_std(ms_param(&s, p, 1), 96 * 24), 0.01, 0, 0.1);
  /* layers differ, the same seed repeats, another seed differs */
  CHECK(memcmp(ms_param(&s, p, 0), ms_param(&s, p, 1), 96 * 24 * sizeof(float)) != 0);
  float first = ms_param(&s, p, 1)[7];
  wt_init_random(&s, 42);
  CHECK(ms_param(&s, p, 1)[7] == first);
  wt_init_random(&s, 43);
  CHECK(ms_param(&s, p, 1)[7] != first);
  ms_free(&s);
  ir_model_free(&m);
}

static void test_save_load_bit_exact(void) {
  ir_model m;
  ms_state a, b;
  if (load_tiny(&m, &a)) return;
  lt_error err;
  ms_create(&b, &m, 2, 5, m.n_layer, &err);
  wt_init_random(&a, 7);
  char dir[] = "/tmp/lisa-weights-XXXXXX", path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  CHECK_MSG(wt_save(&a, path, &err) == 0, "%s", err.msg);
  char note[256] = "unset";
  CHECK_MSG(wt_load(&b, path, note, sizeof note, &err) == 0, "%s", err.msg);
  CHECK(note[0] == '\0');
  CHECK(memcmp(a.params, b.params, a.bytes_params) == 0);
  /* Hugging Face names, first prefix (""), as the hub's GPT-2 files */
  st_file f;
  CHECK(st_open(&f, path, &err) == 0);
  CHECK(st_find(&f, "h.1.mlp.c_fc.weight") != NULL && st_find(&f, "wte.weight") != NULL);
  CHECK(f.n == 2 + 12 * 2 + 2);
  st_close(&f);
  unlink(path);
  rmdir(dir);
  ms_free(&a);
  ms_free(&b);
  ir_model_free(&m);
}

/* A BF16 save (--save-dtype bf16): every value rounded to nearest even
 * (not truncated: some values must differ), read back to those values, and
 * wt_source_dtype says BF16 for it, F32 for the F32 save. */
static void test_save_bf16(void) {
  ir_model m;
  ms_state a, b;
  if (load_tiny(&m, &a)) return;
  lt_error err;
  ms_create(&b, &m, 2, 5, m.n_layer, &err);
  wt_init_random(&a, 7);
  char dir[] = "/tmp/lisa-weights-XXXXXX", path[64], f32_path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  snprintf(f32_path, sizeof f32_path, "%s/f.safetensors", dir);
  ps_host_arrays arrays = {&a, NULL, NULL};
  param_store ps = ps_host(&arrays);
  CHECK_MSG(wt_save_into(&m, &ps, path, 0, ST_BF16, &err) == 0, "%s", err.msg);
  CHECK(wt_save(&a, f32_path, &err) == 0);
  CHECK(wt_source_dtype(path) == ST_BF16 && wt_source_dtype(f32_path) == ST_F32);
  CHECK_MSG(wt_load(&b, path, NULL, 0, &err) == 0, "%s", err.msg);
  const float *want = a.params, *got = b.params;
  int64_t n = (int64_t)(a.bytes_params / sizeof(float)), wrong = 0, rounded_up = 0;
  for (int64_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &want[i], 4);
    u &= 0xffff0000u; /* truncated */
    float truncated;
    memcpy(&truncated, &u, 4);
    wrong += got[i] != bf16_to_f32(f32_to_bf16(want[i]));
    rounded_up += got[i] != truncated;
  }
  CHECK_MSG(wrong == 0, "%lld of %lld values not rounded to nearest", (long long)wrong, (long long)n);
  CHECK(rounded_up > n / 4); /* about half round away from zero */
  st_file f, f32;
  CHECK(st_open(&f, path, &err) == 0 && st_open(&f32, f32_path, &err) == 0);
  CHECK(f.n > 0 && f.tensors[0].dtype == ST_BF16 && f.data_len * 2 == f32.data_len);
  st_close(&f);
  st_close(&f32);
  unlink(path);
  unlink(f32_path);
  rmdir(dir);
  ms_free(&a);
  ms_free(&b);
  ir_model_free(&m);
}

/* Copies the tensors of src to dst as F32, each named prefix + its name,
 * leaving out `drop` (may be NULL) and adding n_extra entries. */
static int copy_tensors(const char *src, const char *dst, const char *prefix, const char *drop,
                        const st_entry *extra, int n_extra) {
  lt_error err;
  st_file f;
  if (st_open(&f, src, &err)) return -1;
  st_entry *e = calloc((size_t)(f.n + n_extra), sizeof *e);
  char (*names)[300] = calloc((size_t)f.n + 1, sizeof *names);
  float *vals = malloc(f.data_len + 4);
  int n = 0, rc = 0;
  int64_t off = 0;
  for (int i = 0; rc == 0 && i < f.n; i++) {
    const st_tensor *t = &f.tensors[i];
    if (drop && strcmp(t->name, drop) == 0) continue;
    rc = st_read_f32(&f, t, vals + off, &err);
    snprintf(names[n], sizeof names[n], "%s%s", prefix, t->name);
    e[n] = (st_entry){names[n], ST_F32, t->ndim, {t->shape[0], t->shape[1]}, vals + off, NULL, NULL};
    off += st_numel(t);
    n++;
  }
  for (int i = 0; i < n_extra; i++) e[n++] = extra[i];
  if (rc == 0) rc = st_write(dst, e, n, NULL, 0, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  st_close(&f);
  free(e);
  free(names);
  free(vals);
  return rc;
}

static int count_files(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  char path[600];
  for (struct dirent *e; d && (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (unlink(path) != 0) remove_tree(path);
  }
  if (d) closedir(d);
  rmdir(dir);
}

static int exists(const char *dir, const char *name) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

static cJSON *read_json(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  static char text[1 << 16];
  size_t n = fread(text, 1, sizeof text - 1, fp);
  fclose(fp);
  text[n] = '\0';
  return cJSON_Parse(text);
}

static void write_text(const char *path, const char *text) {
  FILE *fp = fopen(path, "wb");
  if (fp) fputs(text, fp), fclose(fp);
}

static void write_json(const char *path, const cJSON *json) {
  char *text = cJSON_Print(json);
  write_text(path, text);
  free(text);
}

/* A param key and its YAML line for a tensor name, for expected messages. */
static const ir_param *param_of(const ir_model *m, const char *name) {
  for (int p = 0; p < m->n_params; p++)
    for (int l = 0; l < (m->params[p].section == IR_BLOCK ? m->n_layer : 1); l++) {
      char hf[200];
      ir_param_hf_name(&m->params[p], l, hf, sizeof hf);
      if (strcmp(hf, name) == 0) return &m->params[p];
    }
  return NULL;
}

static int64_t tensor_bytes(const st_tensor *t) { return 4 * st_numel(t); }

/* A checkpoint with every model tensor plus two the model does not use. */
static void test_extra_tensors_are_noted(void) {
  ir_model m;
  ms_state s;
  if (load_tiny(&m, &s)) return;
  lt_error err;
  char dir[] = "/tmp/lisa-weights-XXXXXX", path[64], extra_path[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  snprintf(extra_path, sizeof extra_path, "%s/extra.safetensors", dir);
  wt_init_random(&s, 3);
  CHECK(wt_save(&s, path, &err) == 0);
  static const float mask[4] = {1, 0, 1, 1};
  st_entry biases[2] = {{"h.0.attn.bias", ST_F32, 2, {2, 2}, mask, NULL, NULL},
                        {"h.1.attn.bias", ST_F32, 2, {2, 2}, mask, NULL, NULL}};
  CHECK(copy_tensors(path, extra_path, "", NULL, biases, 2) == 0);
  float before = ms_param(&s, 0, 0)[5];
  wt_init_random(&s, 4);
  char note[256];
  CHECK_MSG(wt_load(&s, extra_path, note, sizeof note, &err) == 0, "%s", err.msg);
  CHECK(ms_param(&s, 0, 0)[5] == before);
  CHECK_MSG(strstr(note, "ignored 2 tensors the model does not use: h.0.attn.bias h.1.attn.bias"),
            "note: %s", note);
  remove_tree(dir);
  ms_free(&s);
  ir_model_free(&m);
}

/* Shard k's file name, 1-based as Hugging Face's. */
static void shard_name(char *out, size_t cap, int k, int n) {
  snprintf(out, cap, "model-%05d-of-%05d.safetensors", k, n);
}

/* The number of shards the index in dir names, after checking it lists
 * every tensor of the single-file save `whole` exactly once, in the order
 * of `whole`, with the right total_size and each tensor in the shard it
 * names. */
static int check_index(const char *dir, const char *whole, uint64_t total) {
  char path[600], name[64];
  snprintf(path, sizeof path, "%s/" INDEX, dir);
  cJSON *index = read_json(path);
  const cJSON *map = cJSON_GetObjectItem(index, "weight_map");
  const cJSON *size = cJSON_GetObjectItem(cJSON_GetObjectItem(index, "metadata"), "total_size");
  CHECK(cJSON_IsNumber(size) && size->valuedouble == (double)total);
  lt_error err;
  st_file w, shard = {0};
  CHECK(st_open(&w, whole, &err) == 0);
  CHECK(cJSON_GetArraySize(map) == w.n);
  const cJSON *e = map ? map->child : NULL;
  int n_shards = -1, k = 0, at = 0;
  for (int i = 0; i < w.n && e; i++, e = e->next) {
    CHECK_MSG(strcmp(e->string, w.tensors[i].name) == 0, "%d: %s", i, e->string);
    if (i == 0) CHECK(sscanf(e->valuestring, "model-00001-of-%5d.safetensors", &n_shards) == 1);
    if (at == shard.n) { /* the next shard starts here */
      st_close(&shard);
      shard_name(name, sizeof name, ++k, n_shards);
      snprintf(path, sizeof path, "%s/%s", dir, name);
      CHECK_MSG(st_open(&shard, path, &err) == 0, "%s", err.msg);
      at = 0;
    }
    CHECK_MSG(strcmp(e->valuestring, name) == 0, "%s in %s, expected %s", e->string,
              e->valuestring, name);
    CHECK(at < shard.n && strcmp(shard.tensors[at++].name, e->string) == 0);
  }
  CHECK(k == n_shards && at == shard.n);
  st_close(&shard);
  st_close(&w);
  cJSON_Delete(index);
  return n_shards;
}

/* Hugging Face's rule: a shard holds at most max bytes, or one tensor; the
 * next shard's first tensor would not have fitted. */
static void check_shard_sizes(const char *dir, int n_shards, int64_t max) {
  char path[600], name[64];
  lt_error err;
  int64_t prev = -1;
  for (int k = 1; k <= n_shards; k++) {
    shard_name(name, sizeof name, k, n_shards);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    st_file f;
    if (st_open(&f, path, &err)) continue; /* check_index said why */
    int64_t bytes = 0;
    for (int i = 0; i < f.n; i++) bytes += tensor_bytes(&f.tensors[i]);
    CHECK_MSG(bytes <= max || f.n == 1, "%s: %lld bytes in %d tensors", name, (long long)bytes,
              f.n);
    if (prev >= 0) CHECK(prev + tensor_bytes(&f.tensors[0]) > max);
    prev = bytes;
    st_close(&f);
  }
}

/* A sharded save loads back bit-exactly from the folder and the index;
 * other layouts replace each other without leftovers. */
static void test_sharded_round_trip(void) {
  ir_model m;
  ms_state a, b, c;
  if (load_tiny(&m, &a)) return;
  lt_error err;
  ms_create(&b, &m, 2, 5, m.n_layer, &err);
  ms_create(&c, &m, 2, 5, m.n_layer, &err);
  wt_init_random(&a, 11);
  char tmp[] = "/tmp/lisa-weights-XXXXXX", dir[64], whole[64], path[128];
  CHECK(mkdtemp(tmp) != NULL);
  snprintf(dir, sizeof dir, "%s/out", tmp); /* wt_save_sharded creates it */
  snprintf(whole, sizeof whole, "%s/whole.safetensors", tmp);
  CHECK(wt_save(&a, whole, &err) == 0);
  /* 8000 bytes: c_fc and mlp.c_proj weights (9216) are larger: alone */
  CHECK_MSG(wt_save_sharded(&a, dir, 8000, 0, &err) == 0, "%s", err.msg);
  int n = check_index(dir, whole, 4 * (uint64_t)ir_model_numel(&m));
  CHECK_MSG(n >= 3, "%d shards", n);
  check_shard_sizes(dir, n, 8000);
  CHECK(count_files(dir) == n + 1 && !exists(dir, "model.safetensors"));
  char note[256] = "unset";
  CHECK_MSG(wt_load(&b, dir, note, sizeof note, &err) == 0, "%s", err.msg);
  CHECK(note[0] == '\0');
  CHECK(memcmp(a.params, b.params, a.bytes_params) == 0);
  snprintf(path, sizeof path, "%s/" INDEX, dir);
  CHECK_MSG(wt_load(&c, path, NULL, 0, &err) == 0, "%s", err.msg);
  CHECK(memcmp(a.params, c.params, a.bytes_params) == 0);

  /* Another shard count replaces the old shards. */
  CHECK(wt_save_sharded(&a, dir, 20000, 0, &err) == 0);
  int n2 = check_index(dir, whole, 4 * (uint64_t)ir_model_numel(&m));
  CHECK(n2 >= 2 && n2 != n && count_files(dir) == n2 + 1);
  check_shard_sizes(dir, n2, 20000);
  /* A model that fits one shard: model.safetensors alone, as the hub's. */
  CHECK(wt_save_sharded(&a, dir, UINT64_MAX, 0, &err) == 0);
  CHECK(count_files(dir) == 1 && exists(dir, "model.safetensors"));
  wt_init_random(&b, 12);
  CHECK(wt_load(&b, dir, NULL, 0, &err) == 0 && memcmp(a.params, b.params, a.bytes_params) == 0);
  /* ...and back: the single file must go, or it would shadow the index. */
  CHECK(wt_save_sharded(&a, dir, 8000, 0, &err) == 0);
  CHECK(count_files(dir) == n + 1 && !exists(dir, "model.safetensors"));
  remove_tree(tmp);
  ms_free(&a);
  ms_free(&b);
  ms_free(&c);
  ir_model_free(&m);
}

/* Saves the tiny model into DIR/out in shards of at most 8000 bytes;
 * returns the shard count. */
static int save_shards(const ms_state *s, char *tmp, char *dir, size_t cap) {
  lt_error err;
  if (!mkdtemp(tmp)) return -1;
  snprintf(dir, cap, "%s/out", tmp);
  if (wt_save_sharded(s, dir, 8000, 0, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  for (int n = 1; n < 100; n++) {
    char name[64];
    shard_name(name, sizeof name, 1, n);
    if (exists(dir, name)) return n;
  }
  return -1;
}

/* Hub checkpoints of GPT2LMHeadModel name tensors "transformer.h.0...":
 * the model's second prefix; an unused tensor in a shard is noted. */
static void test_sharded_prefix_and_extra(void) {
  ir_model m;
  ms_state a, b;
  if (load_tiny(&m, &a)) return;
  lt_error err;
  ms_create(&b, &m, 2, 5, m.n_layer, &err);
  wt_init_random(&a, 21);
  char tmp[] = "/tmp/lisa-weights-XXXXXX", dir[64], path[128], name[64], index[128];
  int n = save_shards(&a, tmp, dir, sizeof dir);
  CHECK(n >= 3);
  snprintf(index, sizeof index, "%s/" INDEX, dir);
  static const float mask[4] = {1, 0, 1, 1};
  st_entry bias = {"transformer.h.0.attn.bias", ST_F32, 2, {2, 2}, mask, NULL, NULL};
  for (int k = 1; k <= n; k++) {
    shard_name(name, sizeof name, k, n);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(copy_tensors(path, path, "transformer.", NULL, &bias, k == 2) == 0);
  }
  cJSON *json = read_json(index), *renamed = cJSON_CreateObject();
  for (const cJSON *e = cJSON_GetObjectItem(json, "weight_map")->child; e; e = e->next) {
    char key[300];
    snprintf(key, sizeof key, "transformer.%s", e->string);
    cJSON_AddStringToObject(renamed, key, e->valuestring);
  }
  cJSON_ReplaceItemInObject(json, "weight_map", renamed);
  write_json(index, json);
  cJSON_Delete(json);
  char note[256], want[300];
  CHECK_MSG(wt_load(&b, dir, note, sizeof note, &err) == 0, "%s", err.msg);
  CHECK(memcmp(a.params, b.params, a.bytes_params) == 0);
  snprintf(want, sizeof want, "%s: ignored 1 tensor the model does not use: %s", index,
           bias.name);
  CHECK_MSG(strcmp(note, want) == 0, "note: %s", note);
  remove_tree(tmp);
  ms_free(&a);
  ms_free(&b);
  ir_model_free(&m);
}

/* wt_load's message for a broken sharded checkpoint in dir; the params
 * must be as they were when the index itself is at fault. */
static const char *load_error(ms_state *s, const char *dir, int params_kept) {
  static lt_error err;
  float *before = malloc(s->bytes_params);
  memcpy(before, s->params, s->bytes_params);
  CHECK(wt_load(s, dir, NULL, 0, &err) == -1);
  if (params_kept) CHECK(memcmp(before, s->params, s->bytes_params) == 0);
  free(before);
  return err.msg;
}

static void test_sharded_errors(void) {
  ir_model m;
  ms_state s;
  if (load_tiny(&m, &s)) return;
  wt_init_random(&s, 31);
  char tmp[] = "/tmp/lisa-weights-XXXXXX", dir[64], index[128], shard[128], name[64];
  char want[2048];
  int n = save_shards(&s, tmp, dir, sizeof dir);
  CHECK(n >= 3);
  snprintf(index, sizeof index, "%s/" INDEX, dir);
  shard_name(name, sizeof name, 2, n);
  snprintf(shard, sizeof shard, "%s/%s", dir, name);
  cJSON *good = read_json(index);
  lt_error err;
  st_file f;
  CHECK(st_open(&f, shard, &err) == 0);
  char first[256], lowest[256]; /* shard 2's first tensor, and its first by name */
  snprintf(first, sizeof first, "%s", f.tensors[0].name);
  snprintf(lowest, sizeof lowest, "%s", f.tensors[0].name);
  for (int i = 1; i < f.n; i++)
    if (strcmp(f.tensors[i].name, lowest) < 0)
      snprintf(lowest, sizeof lowest, "%s", f.tensors[i].name);
  st_close(&f);

  /* A tensor the index puts in a shard that lacks it. */
  const ir_param *par = param_of(&m, first);
  CHECK(copy_tensors(shard, shard, "", first, NULL, 0) == 0);
  snprintf(want, sizeof want,
           "%s: no tensor '%s', which %s puts in this shard (param '%s', %s:%d)", shard, first,
           index, par->key, m.path, par->line);
  const char *msg = load_error(&s, dir, 0);
  CHECK_MSG(strcmp(msg, want) == 0, "%s", msg);

  /* A shard file that is not there. */
  unlink(shard);
  snprintf(want, sizeof want,
           "%s: cannot open: No such file or directory (%s puts '%s' in this shard)", shard,
           index, lowest);
  msg = load_error(&s, dir, 0);
  CHECK_MSG(strcmp(msg, want) == 0, "%s", msg);

  /* An index whose weight_map leaves out a model tensor. */
  cJSON *json = cJSON_Duplicate(good, 1);
  cJSON_DeleteItemFromObject(cJSON_GetObjectItem(json, "weight_map"), "ln_f.bias");
  write_json(index, json);
  cJSON_Delete(json);
  par = param_of(&m, "ln_f.bias");
  snprintf(want, sizeof want, "%s: missing tensor 'ln_f.bias' (param '%s', %s:%d)", index,
           par->key, m.path, par->line);
  msg = load_error(&s, dir, 1);
  CHECK_MSG(strcmp(msg, want) == 0, "%s", msg);

  /* Malformed indexes: each message names the index and the place. */
  static const struct {
    const char *text, *msg;
  } bad[] = {
      {"{\"weight_map\": {\"wte.weight\": \"model-00001-of-00002.safetensors\",",
       "not valid JSON (near byte 64 of 65)"},
      {"{\"weight_map\": {}} trailing", "not valid JSON (near byte 19 of 27)"},
      {"{\"metadata\": {\"total_size\": 1}}",
       "no \"weight_map\" object (not a Hugging Face index?)"},
      {"{\"weight_map\": {\"wte.weight\": 7}}",
       "weight_map entry 'wte.weight' is not a shard file name"},
      {"{\"weight_map\": {\"a\": \"x\", \"wte.weight\": \"x\", \"a\": \"y\"}}",
       "weight_map lists tensor 'a' twice"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    write_text(index, bad[i].text);
    snprintf(want, sizeof want, "%s: %s", index, bad[i].msg);
    msg = load_error(&s, dir, 1);
    CHECK_MSG(strcmp(msg, want) == 0, "%s", msg);
  }

  /* Saving into a path that is a file. */
  CHECK(wt_save_sharded(&s, index, 8000, 0, &err) == -1);
  snprintf(want, sizeof want, "%s: exists and is not a folder", index);
  CHECK_MSG(strcmp(err.msg, want) == 0, "%s", err.msg);

  /* A folder with neither model.safetensors nor an index. */
  unlink(index);
  snprintf(want, sizeof want, "%s: folder holds neither model.safetensors nor " INDEX, dir);
  msg = load_error(&s, dir, 1);
  CHECK_MSG(strcmp(msg, want) == 0, "%s", msg);
  cJSON_Delete(good);
  remove_tree(tmp);
  ms_free(&s);
  ir_model_free(&m);
}

int main(void) {
  RUN(test_init_follows_yaml);
  RUN(test_save_load_bit_exact);
  RUN(test_save_bf16);
  RUN(test_extra_tensors_are_noted);
  RUN(test_sharded_round_trip);
  RUN(test_sharded_prefix_and_extra);
  RUN(test_sharded_errors);
  return check_exit();
}
