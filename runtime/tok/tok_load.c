/* tok_load.c: tokenizer.json (and tokenizer_config.json's EOS and BOS)
 * into the tables of tok_internal.h. Every part that is not understood is
 * an error naming the file and the part. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "tok_internal.h"

/* ---- tables ----------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33, x *= 0xff51afd7ed558ccdull, x ^= x >> 33;
  return x;
}

static int map_grow(tok_strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  char **keys = calloc(cap, sizeof *keys);
  int *vals = calloc(cap, sizeof *vals);
  if (!keys || !vals) return free(keys), free(vals), -1;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = hash_bytes(m->keys[i], strlen(m->keys[i])) & (cap - 1);
    while (keys[j]) j = (j + 1) & (cap - 1);
    keys[j] = m->keys[i], vals[j] = m->vals[i];
  }
  free(m->keys), free(m->vals);
  m->keys = keys, m->vals = vals, m->cap = cap;
  return 0;
}

/* Keys hold no NUL (JSON strings of tokens); an existing key is updated. */
int tok_map_put(tok_strmap *m, const char *key, size_t len, int val) {
  if ((m->n + 1) * 2 > m->cap && map_grow(m)) return -1;
  size_t j = hash_bytes(key, len) & (m->cap - 1);
  for (; m->keys[j]; j = (j + 1) & (m->cap - 1))
    if (strlen(m->keys[j]) == len && !memcmp(m->keys[j], key, len)) return m->vals[j] = val, 0;
  if (!(m->keys[j] = malloc(len + 1))) return -1;
  memcpy(m->keys[j], key, len);
  m->keys[j][len] = 0;
  m->vals[j] = val, m->n++;
  return 0;
}

int tok_map_get(const tok_strmap *m, const char *key, size_t len) {
  if (!m->cap) return -1;
  for (size_t j = hash_bytes(key, len) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1))
    if (!strncmp(m->keys[j], key, len) && m->keys[j][len] == 0) return m->vals[j];
  return -1;
}

static int pair_grow(tok_pairmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  uint64_t *keys = calloc(cap, sizeof *keys), *vals = calloc(cap, sizeof *vals);
  if (!keys || !vals) return free(keys), free(vals), -1;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = hash_u64(m->keys[i]) & (cap - 1);
    while (keys[j]) j = (j + 1) & (cap - 1);
    keys[j] = m->keys[i], vals[j] = m->vals[i];
  }
  free(m->keys), free(m->vals);
  m->keys = keys, m->vals = vals, m->cap = cap;
  return 0;
}

/* The first merge of a pair wins (tokenizers keeps the lowest rank). */
int tok_pair_put(tok_pairmap *m, int a, int b, int rank, int merged) {
  if ((m->n + 1) * 2 > m->cap && pair_grow(m)) return -1;
  uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  size_t j = hash_u64(key) & (m->cap - 1);
  for (; m->keys[j]; j = (j + 1) & (m->cap - 1))
    if (m->keys[j] == key) return 0;
  m->keys[j] = key, m->vals[j] = (uint64_t)(uint32_t)rank << 32 | (uint32_t)merged, m->n++;
  return 0;
}

int tok_pair_get(const tok_pairmap *m, int a, int b, int *rank, int *merged) {
  if (!m->cap) return 0;
  uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
  for (size_t j = hash_u64(key) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1))
    if (m->keys[j] == key) {
      *rank = (int)(m->vals[j] >> 32), *merged = (int)(uint32_t)m->vals[j];
      return 1;
    }
  return 0;
}

/* ---- files ------------------------------------------------------------------ */

static cJSON *read_json(const char *path, int missing_ok, lt_error *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    if (missing_ok && errno == ENOENT) return NULL;
    return lt_fail(err, "%s: cannot open: %s", path, strerror(errno)), NULL;
  }
  struct stat st;
  char *buf = NULL;
  size_t n = 0;
  if (fstat(fileno(fp), &st) == 0 && (buf = malloc((size_t)st.st_size + 1)))
    n = fread(buf, 1, (size_t)st.st_size, fp);
  fclose(fp);
  if (!buf) return lt_fail(err, "%s: cannot read", path), NULL;
  buf[n] = 0;
  cJSON *j = cJSON_ParseWithLength(buf, n);
  if (!j) {
    const char *at = cJSON_GetErrorPtr();
    lt_fail(err, "%s: not JSON (at byte %ld)", path, at ? (long)(at - buf) : 0L);
  }
  free(buf);
  return j;
}

static const char *str_of(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int bool_of(const cJSON *o, const char *key, int dflt) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static char *dup_str(const char *s) {
  char *d = s ? malloc(strlen(s) + 1) : NULL;
  if (d) strcpy(d, s);
  return d;
}

/* {"String": s} or {"Regex": r}: the regex (a string is matched literally). */
static pcre2_code *compile_pattern(const tokenizer *t, const cJSON *pattern, const char *part,
                                   lt_error *err) {
  const char *s = str_of(pattern, "Regex");
  uint32_t flags = PCRE2_UTF | PCRE2_UCP;
  if (!s && (s = str_of(pattern, "String"))) flags |= PCRE2_LITERAL;
  if (!s) return lt_fail(err, "%s: %s: a pattern needs \"String\" or \"Regex\"", t->path, part), NULL;
  int code;
  PCRE2_SIZE at;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, flags, &code, &at, NULL);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    lt_fail(err, "%s: %s: pattern /%s/ at %zu: %s", t->path, part, s, (size_t)at, (char *)msg);
  }
  return re;
}

/* GPT-2's split pattern (tokenizers' ByteLevel with use_regex). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- the parts ---------------------------------------------------------------- */

static int unsupported(const tokenizer *t, const char *part, const cJSON *o, lt_error *err) {
  const char *type = str_of(o, "type");
  return lt_fail(err, "%s: %s \"%s\" is not supported (runtime/tok/tokenizer.h lists what is)",
                 t->path, part, type ? type : "?");
}

/* A Sequence's stages (its list under `key`), each through add, in order. */
typedef int (*add_stage)(tokenizer *t, const cJSON *o, lt_error *err);
static int add_each(tokenizer *t, const cJSON *seq, const char *key, add_stage add,
                    lt_error *err) {
  const cJSON *item;
  cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(seq, key))
    if (add(t, item, err)) return -1;
  return 0;
}

static int add_norm(tokenizer *t, const cJSON *o, lt_error *err) {
  const char *type = str_of(o, "type");
  if (type && !strcmp(type, "Sequence")) return add_each(t, o, "normalizers", add_norm, err);
  if (t->n_norms == TOK_MAX_STAGES) return lt_fail(err, "%s: too many normalizers", t->path);
  tok_norm *n = &t->norms[t->n_norms];
  if (type && !strcmp(type, "Prepend") && str_of(o, "prepend")) {
    *n = (tok_norm){TOK_NORM_PREPEND, dup_str(str_of(o, "prepend")), NULL, 0};
  } else if (type && !strcmp(type, "Replace") && str_of(o, "content")) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    if (!str_of(pat, "String")) return unsupported(t, "normalizer Replace with a regex:", o, err);
    *n = (tok_norm){TOK_NORM_REPLACE, dup_str(str_of(pat, "String")), dup_str(str_of(o, "content")),
                    0};
  } else if (type && (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") ||
                      !strcmp(type, "NFKD"))) {
    int form = UTF8PROC_STABLE | (type[2] == 'K' ? UTF8PROC_COMPAT : 0);
    form |= type[strlen(type) - 1] == 'C' ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
    *n = (tok_norm){TOK_NORM_UNICODE, NULL, NULL, form};
  } else {
    return unsupported(t, "normalizer", o, err);
  }
  t->n_norms++;
  return 0;
}

static int metaspace_scheme(const tokenizer *t, const cJSON *o, int *scheme, lt_error *err) {
  const char *s = str_of(o, "prepend_scheme");
  if (!s) s = bool_of(o, "add_prefix_space", 1) ? "always" : "never";
  *scheme = !strcmp(s, "never") ? 0 : !strcmp(s, "always") ? 1 : !strcmp(s, "first") ? 2 : -1;
  return *scheme < 0 ? lt_fail(err, "%s: Metaspace prepend_scheme \"%s\"", t->path, s) : 0;
}

static int add_pre(tokenizer *t, const cJSON *o, lt_error *err) {
  const char *type = str_of(o, "type");
  if (type && !strcmp(type, "Sequence")) return add_each(t, o, "pretokenizers", add_pre, err);
  if (t->n_pres == TOK_MAX_STAGES) return lt_fail(err, "%s: too many pre-tokenizers", t->path);
  tok_pre *p = &t->pres[t->n_pres];
  memset(p, 0, sizeof *p);
  if (type && !strcmp(type, "ByteLevel")) {
    p->kind = TOK_PRE_BYTELEVEL;
    p->add_prefix_space = bool_of(o, "add_prefix_space", 1);
    if (bool_of(o, "use_regex", 1)) {
      cJSON *pat = cJSON_CreateObject();
      cJSON_AddStringToObject(pat, "Regex", GPT2_PATTERN);
      p->re = compile_pattern(t, pat, "pre_tokenizer ByteLevel", err);
      cJSON_Delete(pat);
      if (!p->re) return -1;
    }
  } else if (type && !strcmp(type, "Split")) {
    const char *behavior = str_of(o, "behavior");
    if (!behavior || strcmp(behavior, "Isolated") || bool_of(o, "invert", 0))
      return lt_fail(err, "%s: pre_tokenizer Split: only behavior Isolated, not inverted, is "
                     "supported", t->path);
    p->kind = TOK_PRE_SPLIT;
    if (!(p->re = compile_pattern(t, cJSON_GetObjectItemCaseSensitive(o, "pattern"),
                                  "pre_tokenizer Split", err)))
      return -1;
  } else if (type && !strcmp(type, "Metaspace")) {
    p->kind = TOK_PRE_METASPACE;
    p->replacement = dup_str(str_of(o, "replacement") ? str_of(o, "replacement") : "\xe2\x96\x81");
    p->split = bool_of(o, "split", 1);
    if (metaspace_scheme(t, o, &p->prepend, err)) return -1;
  } else {
    return unsupported(t, "pre_tokenizer", o, err);
  }
  t->n_pres++;
  return 0;
}

static int add_dec(tokenizer *t, const cJSON *o, lt_error *err) {
  const char *type = str_of(o, "type");
  if (type && !strcmp(type, "Sequence")) return add_each(t, o, "decoders", add_dec, err);
  if (t->n_decs == TOK_MAX_STAGES) return lt_fail(err, "%s: too many decoders", t->path);
  tok_dec *d = &t->decs[t->n_decs];
  memset(d, 0, sizeof *d);
  if (type && !strcmp(type, "ByteLevel")) d->kind = TOK_DEC_BYTELEVEL;
  else if (type && !strcmp(type, "ByteFallback")) d->kind = TOK_DEC_BYTEFALLBACK;
  else if (type && !strcmp(type, "Fuse")) d->kind = TOK_DEC_FUSE;
  else if (type && !strcmp(type, "Replace") && str_of(o, "content") &&
           str_of(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String")) {
    d->kind = TOK_DEC_REPLACE;
    d->a = dup_str(str_of(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String"));
    d->b = dup_str(str_of(o, "content"));
  } else if (type && !strcmp(type, "Strip") && str_of(o, "content")) {
    d->kind = TOK_DEC_STRIP;
    d->a = dup_str(str_of(o, "content"));
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "start"),
                *b = cJSON_GetObjectItemCaseSensitive(o, "stop");
    d->start = cJSON_IsNumber(a) ? a->valueint : 0, d->stop = cJSON_IsNumber(b) ? b->valueint : 0;
  } else if (type && !strcmp(type, "Metaspace")) {
    d->kind = TOK_DEC_METASPACE;
    d->a = dup_str(str_of(o, "replacement") ? str_of(o, "replacement") : "\xe2\x96\x81");
    if (metaspace_scheme(t, o, &d->prepend, err)) return -1;
  } else {
    return unsupported(t, "decoder", o, err);
  }
  t->n_decs++;
  return 0;
}

/* TemplateProcessing's single template: special tokens around $A. */
static int add_post(tokenizer *t, const cJSON *o, lt_error *err) {
  const char *type = str_of(o, "type");
  if (!o || cJSON_IsNull(o) || (type && !strcmp(type, "ByteLevel"))) return 0;
  if (type && !strcmp(type, "Sequence")) return add_each(t, o, "processors", add_post, err);
  if (!type || strcmp(type, "TemplateProcessing")) return unsupported(t, "post_processor", o, err);
  const cJSON *piece, *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
  int seen_a = 0;
  cJSON_ArrayForEach(piece, cJSON_GetObjectItemCaseSensitive(o, "single")) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(piece, "SpecialToken");
    if (!sp) {
      seen_a = 1;
      continue;
    }
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(specials, str_of(sp, "id") ? str_of(sp, "id") : ""), "ids");
    const cJSON *id;
    cJSON_ArrayForEach(id, ids) {
      int *n = seen_a ? &t->n_suffix : &t->n_prefix;
      if (*n == 4 || !cJSON_IsNumber(id))
        return lt_fail(err, "%s: post_processor: a template of more than 4 special ids", t->path);
      (seen_a ? t->suffix : t->prefix)[(*n)++] = id->valueint;
    }
  }
  return 0;
}

/* ---- the model ---------------------------------------------------------------- */

static int set_id(tokenizer *t, const char *text, int id, int special, lt_error *err) {
  if (id < 0 || id > (1 << 24)) return lt_fail(err, "%s: token id %d out of range", t->path, id);
  if (id >= t->n_ids) {
    int n = id + 1;
    char **txt = realloc(t->id_text, sizeof *txt * (size_t)n);
    if (!txt) return lt_fail(err, "out of memory");
    t->id_text = txt;
    unsigned char *sp = realloc(t->id_special, (size_t)n);
    if (!sp) return lt_fail(err, "out of memory");
    t->id_special = sp;
    for (int i = t->n_ids; i < n; i++) t->id_text[i] = NULL, t->id_special[i] = 0;
    t->n_ids = n;
  }
  free(t->id_text[id]);
  t->id_text[id] = dup_str(text);
  t->id_special[id] = (unsigned char)special;
  if (!t->id_text[id] || tok_map_put(&t->vocab, text, strlen(text), id))
    return lt_fail(err, "out of memory");
  return 0;
}

/* "a b" (the older format) or ["a", "b"]. */
static int merge_parts(const cJSON *m, const char **a, size_t *na, const char **b, size_t *nb) {
  if (cJSON_IsString(m)) {
    const char *sp = strchr(m->valuestring, ' ');
    if (!sp) return -1;
    *a = m->valuestring, *na = (size_t)(sp - m->valuestring), *b = sp + 1, *nb = strlen(sp + 1);
    return 0;
  }
  const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
  if (!cJSON_IsString(x) || !cJSON_IsString(y) || cJSON_GetArraySize(m) != 2) return -1;
  *a = x->valuestring, *na = strlen(*a), *b = y->valuestring, *nb = strlen(*b);
  return 0;
}

static int load_merges(tokenizer *t, const cJSON *merges, lt_error *err) {
  char *buf = NULL;
  size_t cap = 0;
  int rank = 0;
  const cJSON *m;
  cJSON_ArrayForEach(m, merges) {
    const char *a, *b;
    size_t na, nb;
    if (merge_parts(m, &a, &na, &b, &nb))
      return free(buf), lt_fail(err, "%s: model.merges[%d] is not \"a b\" or [a, b]", t->path, rank);
    if (na + nb + 1 > cap && !(buf = realloc(buf, cap = 2 * (na + nb + 1))))
      return lt_fail(err, "out of memory");
    memcpy(buf, a, na), memcpy(buf + na, b, nb);
    int ia = tok_map_get(&t->vocab, a, na), ib = tok_map_get(&t->vocab, b, nb),
        im = tok_map_get(&t->vocab, buf, na + nb);
    if (ia < 0 || ib < 0 || im < 0)
      return free(buf), lt_fail(err, "%s: model.merges[%d] names a token not in the vocabulary",
                                t->path, rank);
    if (tok_pair_put(&t->merges, ia, ib, rank++, im)) return free(buf), lt_fail(err, "out of memory");
  }
  free(buf);
  return 0;
}

static int load_model(tokenizer *t, const cJSON *model, lt_error *err) {
  const char *type = str_of(model, "type");
  if (!type || strcmp(type, "BPE")) return unsupported(t, "model", model, err);
  const char *cont = str_of(model, "continuing_subword_prefix"), *suf = str_of(model, "end_of_word_suffix");
  if ((cont && *cont) || (suf && *suf))
    return lt_fail(err, "%s: model: continuing_subword_prefix and end_of_word_suffix are not "
                   "supported", t->path);
  const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
  if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
    return lt_fail(err, "%s: model: BPE dropout is not supported", t->path);
  const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *v;
  if (!cJSON_IsObject(vocab)) return lt_fail(err, "%s: model.vocab is not an object", t->path);
  cJSON_ArrayForEach(v, vocab) {
    if (!cJSON_IsNumber(v)) return lt_fail(err, "%s: model.vocab[\"%s\"] is not an id", t->path, v->string);
    if (set_id(t, v->string, v->valueint, 0, err)) return -1;
  }
  t->byte_fallback = bool_of(model, "byte_fallback", 0);
  t->fuse_unk = bool_of(model, "fuse_unk", 0);
  t->ignore_merges = bool_of(model, "ignore_merges", 0);
  const char *unk = str_of(model, "unk_token");
  t->unk = unk ? tok_map_get(&t->vocab, unk, strlen(unk)) : -1;
  for (int b = 0; b < 256; b++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    t->byte_ids[b] = tok_map_get(&t->vocab, name, strlen(name));
  }
  return load_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), err);
}

static int load_added(tokenizer *t, const cJSON *added, lt_error *err) {
  int n = cJSON_GetArraySize(added), i = 0;
  if (n && !(t->added = calloc((size_t)n, sizeof *t->added))) return lt_fail(err, "out of memory");
  const cJSON *a;
  cJSON_ArrayForEach(a, added) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
    const char *text = str_of(a, "content");
    if (!cJSON_IsNumber(id) || !text || !*text)
      return lt_fail(err, "%s: added_tokens[%d] needs an id and content", t->path, i);
    if (bool_of(a, "lstrip", 0) || bool_of(a, "rstrip", 0) || bool_of(a, "single_word", 0))
      return lt_fail(err, "%s: added_tokens[%d] (%s): lstrip, rstrip and single_word are not "
                     "supported", t->path, i, text);
    int special = bool_of(a, "special", 0);
    if (set_id(t, text, id->valueint, special, err)) return -1;
    t->added[i++] = (tok_added){dup_str(text), id->valueint, special};
    t->n_added = i;
  }
  return 0;
}

/* tokenizer_config.json beside it: eos_token and bos_token, as strings or
 * {"content": ...}. */
static int load_config(tokenizer *t, const char *dir, lt_error *err) {
  char path[1100];
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  lt_error e2 = {{0}};
  cJSON *c = read_json(path, 1, &e2);
  if (!c && e2.msg[0]) return *err = e2, -1;
  if (!c) return 0;
  const char *keys[2] = {"eos_token", "bos_token"};
  int *ids[2] = {&t->eos, &t->bos};
  for (int k = 0; k < 2; k++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, keys[k]);
    const char *s = cJSON_IsString(v) ? v->valuestring : str_of(v, "content");
    if (s && (*ids[k] = tok_map_get(&t->vocab, s, strlen(s))) < 0) {
      lt_fail(err, "%s: %s \"%s\" is not a token of %s", path, keys[k], s, t->path);
      cJSON_Delete(c);
      return -1;
    }
  }
  cJSON_Delete(c);
  return 0;
}

static int load(tokenizer *t, const char *path, lt_error *err) {
  struct stat st;
  char dir[1024];
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(t->path, sizeof t->path, "%s/tokenizer.json", path);
  } else {
    snprintf(t->path, sizeof t->path, "%s", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else strcpy(dir, ".");
  }
  cJSON *j = read_json(t->path, 0, err);
  if (!j) return -1;
  const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalizer"),
              *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"),
              *dec = cJSON_GetObjectItemCaseSensitive(j, "decoder");
  int rc = load_model(t, cJSON_GetObjectItemCaseSensitive(j, "model"), err) ||
           load_added(t, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), err) ||
           (norm && !cJSON_IsNull(norm) && add_norm(t, norm, err)) ||
           (pre && !cJSON_IsNull(pre) && add_pre(t, pre, err)) ||
           (dec && !cJSON_IsNull(dec) && add_dec(t, dec, err)) ||
           add_post(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), err) ||
           load_config(t, dir, err);
  cJSON_Delete(j);
  /* no config naming it: the usual end-of-text tokens */
  static const char *const eos_names[] = {"<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>"};
  for (int i = 0; !rc && t->eos < 0 && i < 4; i++) t->eos = tok_id(t, eos_names[i]);
  return rc ? -1 : 0;
}

int tok_load(tokenizer **out, const char *path, lt_error *err) {
  tokenizer *t = calloc(1, sizeof *t);
  *out = NULL;
  if (!t) return lt_fail(err, "out of memory");
  t->eos = t->bos = t->unk = -1;
  if (load(t, path, err)) return tok_free(t), -1;
  *out = t;
  return 0;
}

void tok_free(tokenizer *t) {
  if (!t) return;
  for (size_t i = 0; i < t->vocab.cap; i++) free(t->vocab.keys[i]);
  free(t->vocab.keys), free(t->vocab.vals);
  free(t->merges.keys), free(t->merges.vals);
  for (int i = 0; i < t->n_ids; i++) free(t->id_text[i]);
  free(t->id_text), free(t->id_special);
  for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
  free(t->added);
  for (int i = 0; i < t->n_norms; i++) free(t->norms[i].a), free(t->norms[i].b);
  for (int i = 0; i < t->n_pres; i++) pcre2_code_free(t->pres[i].re), free(t->pres[i].replacement);
  for (int i = 0; i < t->n_decs; i++) free(t->decs[i].a), free(t->decs[i].b);
  free(t);
}

int tok_vocab_size(const tokenizer *t) { return t->n_ids; }
int tok_eos(const tokenizer *t) { return t->eos; }
int tok_bos(const tokenizer *t) { return t->bos; }
int tok_id(const tokenizer *t, const char *token) {
  return tok_map_get(&t->vocab, token, strlen(token));
}
