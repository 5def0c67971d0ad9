/* hf_index.c: reader and writer for model.safetensors.index.json.
 *
 * The reader keeps the parsed JSON and points into it. Entries and shard
 * names are sorted, so lookups are binary searches: an index may list tens
 * of thousands of tensors (mixture-of-experts models). */
#include "hf_index.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"

/* Far beyond any real index (a few MB for the largest hub models). */
#define HX_MAX_BYTES (100u * 1000u * 1000u)

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const hf_index_entry *)a)->name, ((const hf_index_entry *)b)->name);
}

/* ---- reading ------------------------------------------------------------ */

/* The whole file, NUL-terminated, or NULL with err set. */
static char *read_text(const char *path, size_t *len, lt_error *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    lt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  char *text = NULL;
  if (fstat(fileno(fp), &st) != 0)
    lt_fail(err, "%s: cannot stat: %s", path, strerror(errno));
  else if ((uint64_t)st.st_size > HX_MAX_BYTES)
    lt_fail(err, "%s: %lld bytes, too large for an index", path, (long long)st.st_size);
  else if (!(text = malloc((size_t)st.st_size + 1)))
    lt_fail(err, "%s: out of memory", path);
  else if (fread(text, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
    lt_fail(err, "%s: cannot read: %s", path, ferror(fp) ? strerror(errno) : "file shrank");
    free(text);
    text = NULL;
  }
  fclose(fp);
  if (text) text[*len = (size_t)st.st_size] = '\0';
  return text;
}

/* Parses text; only whitespace may follow the JSON value. */
static cJSON *parse_json(const char *path, const char *text, size_t len, lt_error *err) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (root && end)
    while (end < text + len && strchr(" \t\r\n", *end) && *end) end++;
  if (root && end == text + len) return root;
  size_t pos = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
  cJSON_Delete(root);
  lt_fail(err, "%s: not valid JSON (near byte %zu of %zu)", path, pos, len);
  return NULL;
}

/* No folders, so no way out of the index's folder ("../x", "/etc/x"), and
 * no control characters to garble messages. */
static int is_plain_file_name(const char *name) {
  if (!strcmp(name, ".") || !strcmp(name, "..")) return 0;
  for (const unsigned char *c = (const unsigned char *)name; *c; c++)
    if (*c == '/' || *c == '\\' || *c < 0x20) return 0;
  return 1;
}

static const cJSON *weight_map_of(const hf_index *x, lt_error *err) {
  const cJSON *map = cJSON_GetObjectItemCaseSensitive(x->root, "weight_map");
  if (!cJSON_IsObject(map)) {
    lt_fail(err, "%s: no \"weight_map\" object (not a Hugging Face index?)", x->path);
    return NULL;
  }
  for (const cJSON *e = map->child; e; e = e->next) {
    if (!cJSON_IsString(e) || !e->valuestring[0]) {
      lt_fail(err, "%s: weight_map entry '%s' is not a shard file name", x->path, e->string);
      return NULL;
    }
    if (!is_plain_file_name(e->valuestring)) {
      lt_fail(err, "%s: weight_map entry '%s' names shard '%s': a shard must be a plain file "
              "name in the index's own folder", x->path, e->string, e->valuestring);
      return NULL;
    }
  }
  return map;
}

/* x->shards: the distinct file names of map, sorted. */
static int collect_shards(hf_index *x, const cJSON *map, lt_error *err) {
  x->shards = calloc((size_t)x->n + 1, sizeof *x->shards);
  if (!x->shards) return lt_fail(err, "%s: out of memory", x->path);
  int k = 0;
  for (const cJSON *e = map->child; e; e = e->next) x->shards[k++] = e->valuestring;
  qsort(x->shards, (size_t)k, sizeof *x->shards, cmp_str);
  for (int i = 0; i < k; i++)
    if (x->n_shards == 0 || strcmp(x->shards[i], x->shards[x->n_shards - 1]))
      x->shards[x->n_shards++] = x->shards[i];
  return 0;
}

/* x->entries: (tensor, shard) sorted by tensor; a tensor listed twice is an
 * error (which of the two would be meant?). */
static int collect_entries(hf_index *x, const cJSON *map, lt_error *err) {
  x->entries = calloc((size_t)x->n + 1, sizeof *x->entries);
  if (!x->entries) return lt_fail(err, "%s: out of memory", x->path);
  int k = 0;
  for (const cJSON *e = map->child; e; e = e->next, k++) {
    const char **file = bsearch(&e->valuestring, x->shards, (size_t)x->n_shards,
                                sizeof *x->shards, cmp_str);
    x->entries[k] = (hf_index_entry){e->string, (int)(file - x->shards)};
  }
  qsort(x->entries, (size_t)k, sizeof *x->entries, cmp_entry);
  for (int i = 1; i < k; i++)
    if (strcmp(x->entries[i].name, x->entries[i - 1].name) == 0)
      return lt_fail(err, "%s: weight_map lists tensor '%s' twice", x->path, x->entries[i].name);
  return 0;
}

/* path is shorter than x->path (hf_index_open checked). */
static void set_paths(hf_index *x, const char *path) {
  memcpy(x->path, path, strlen(path) + 1);
  const char *slash = strrchr(x->path, '/');
  size_t len = !slash ? 0 : slash == x->path ? 1 : (size_t)(slash - x->path);
  memcpy(x->dir, slash ? x->path : ".", slash ? len : 1);
  x->dir[slash ? len : 1] = '\0';
}

int hf_index_open(hf_index *x, const char *path, lt_error *err) {
  memset(x, 0, sizeof *x);
  if (strlen(path) >= sizeof x->path) return lt_fail(err, "%s: path too long", path);
  set_paths(x, path);
  size_t len;
  char *text = read_text(path, &len, err);
  if (!text) return -1;
  x->root = parse_json(path, text, len, err);
  free(text);
  const cJSON *map = x->root ? weight_map_of(x, err) : NULL;
  if (map) x->n = cJSON_GetArraySize(map);
  if (!map || collect_shards(x, map, err) || collect_entries(x, map, err)) {
    hf_index_close(x);
    return -1;
  }
  return 0;
}

void hf_index_close(hf_index *x) {
  cJSON_Delete(x->root);
  free(x->entries);
  free(x->shards);
  x->root = NULL;
  x->entries = NULL;
  x->shards = NULL;
  x->n = x->n_shards = 0;
}

int hf_index_find(const hf_index *x, const char *name) {
  hf_index_entry key = {name, 0};
  const hf_index_entry *e = bsearch(&key, x->entries, (size_t)x->n, sizeof key, cmp_entry);
  return e ? e->shard : -1;
}

const char *hf_index_first_in_shard(const hf_index *x, int shard) {
  for (int i = 0; i < x->n; i++)
    if (x->entries[i].shard == shard) return x->entries[i].name;
  return NULL;
}

int hf_index_shard_path(const hf_index *x, int shard, char *out, size_t cap, lt_error *err) {
  if ((size_t)snprintf(out, cap, "%s/%s", x->dir, x->shards[shard]) >= cap)
    return lt_fail(err, "%s: shard path %s/%s too long", x->path, x->dir, x->shards[shard]);
  return 0;
}

/* ---- writing ------------------------------------------------------------ */

/* The index text, or NULL (out of memory). Caller frees with free(). */
static char *build_index(const hf_index_entry *entries, int n, const char *const *shards,
                         uint64_t total_size) {
  char size[32];
  snprintf(size, sizeof size, "%" PRIu64, total_size); /* raw: exact at any size */
  cJSON *root = cJSON_CreateObject();
  cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
  cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
  int ok = meta && map && cJSON_AddRawToObject(meta, "total_size", size);
  for (int i = 0; ok && i < n; i++)
    ok = cJSON_AddStringToObject(map, entries[i].name, shards[entries[i].shard]) != NULL;
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  return text;
}

int hf_index_write(const char *path, const hf_index_entry *entries, int n,
                   const char *const *shards, uint64_t total_size, lt_error *err) {
  char *text = build_index(entries, n, shards, total_size);
  size_t len = text ? strlen(text) : 0;
  char *line = text ? realloc(text, len + 2) : NULL; /* the file ends with a newline */
  if (!line) {
    free(text);
    return lt_fail(err, "%s: out of memory for the index", path);
  }
  memcpy(line + len, "\n", 2);
  int rc = atomic_file_write_text(path, line, err);
  free(line);
  return rc;
}
