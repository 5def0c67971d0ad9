/* tune_db.c: the tuning database (tune_db.h), JSON through cJSON. */
#include "tune_db.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "gen_tune.h"
#include "hash64.h"

#define TDB_FORMAT "lisa-tune 1"
#define TDB_MAX_BYTES (64 << 20)

/* "NVIDIA H200|sm_90|cuda 12040" -> "nvidia-h200-sm-90-cuda-12040-<hash>.json":
 * readable, one folder level, and distinct for keys that slug alike. */
static void slug_of(const char *device, char *out, size_t cap) {
  size_t n = 0;
  for (const char *s = device; *s && n + 1 < cap && n < 64; s++) {
    const char c = (char)tolower((unsigned char)*s);
    if (isalnum((unsigned char)c) || c == '.') out[n++] = c;
    else if (n && out[n - 1] != '-') out[n++] = '-';
  }
  snprintf(out + n, cap - n, "%s%08" PRIx64 ".json", n && out[n - 1] == '-' ? "" : "-",
           hash64_bytes(device, strlen(device), 0) & 0xffffffffu);
}

static int is_identifier(const char *s, size_t cap) {
  if (!*s || strlen(s) >= cap || isdigit((unsigned char)*s)) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

/* One entry from JSON: NULL, or why it is malformed. */
static const char *parse_entry(const cJSON *j, tdb_entry *e) {
  memset(e, 0, sizeof *e);
  const cJSON *kernel = cJSON_GetObjectItemCaseSensitive(j, "kernel"),
              *program = cJSON_GetObjectItemCaseSensitive(j, "program"),
              *values = cJSON_GetObjectItemCaseSensitive(j, "values"),
              *ms = cJSON_GetObjectItemCaseSensitive(j, "ms"),
              *dms = cJSON_GetObjectItemCaseSensitive(j, "default_ms"),
              *variants = cJSON_GetObjectItemCaseSensitive(j, "variants");
  if (!cJSON_IsObject(j)) return "not an object";
  if (!cJSON_IsString(kernel) || !is_identifier(kernel->valuestring, sizeof e->kernel))
    return "\"kernel\" is not a kernel's name";
  if (!cJSON_IsString(program) || !*program->valuestring ||
      strlen(program->valuestring) >= sizeof e->program)
    return "\"program\" is not a program signature";
  if (!cJSON_IsObject(values) || !values->child) return "\"values\" is not an object of tunables";
  if (!cJSON_IsNumber(ms) || !isfinite(ms->valuedouble) || ms->valuedouble < 0)
    return "\"ms\" is not a time";
  if (dms && (!cJSON_IsNumber(dms) || !isfinite(dms->valuedouble) || dms->valuedouble < 0))
    return "\"default_ms\" is not a time";
  if (variants && !cJSON_IsNumber(variants)) return "\"variants\" is not a count";
  snprintf(e->kernel, sizeof e->kernel, "%s", kernel->valuestring);
  snprintf(e->program, sizeof e->program, "%s", program->valuestring);
  for (const cJSON *v = values->child; v; v = v->next) {
    if (e->n_values == TDB_MAX_VALUES) return "\"values\" has too many tunables";
    const double x = v->valuedouble;
    if (!is_identifier(v->string, sizeof e->names[0]) || !cJSON_IsNumber(v) || x != floor(x) ||
        fabs(x) > 1 << 30)
      return "\"values\" holds something other than a tunable's integer";
    snprintf(e->names[e->n_values], sizeof e->names[0], "%s", v->string);
    e->values[e->n_values++] = (int)x;
  }
  e->ms = ms->valuedouble;
  e->default_ms = dms ? dms->valuedouble : 0;
  e->variants = variants ? (int)variants->valuedouble : 0;
  return NULL;
}

static int read_text(const char *path, char **text, lt_error *err) {
  *text = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return errno == ENOENT ? 0 : lt_fail(err, "%s: %s", path, strerror(errno));
  char *buf = malloc(TDB_MAX_BYTES + 1);
  size_t n = buf ? fread(buf, 1, TDB_MAX_BYTES + 1, f) : 0;
  const int bad = ferror(f);
  fclose(f);
  if (!buf) return lt_fail(err, "out of memory");
  if (bad || n > TDB_MAX_BYTES) {
    free(buf);
    return lt_fail(err, "%s: %s", path, bad ? "unreadable" : "larger than 64 MiB");
  }
  buf[n] = '\0';
  *text = buf;
  return 0;
}

/* The entries of a parsed file into db; what is wrong goes to warnings. */
static int load_entries(tune_db *db, const cJSON *root, lt_error *err) {
  const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format"),
              *device = cJSON_GetObjectItemCaseSensitive(root, "device"),
              *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
  if (!cJSON_IsString(format) || strcmp(format->valuestring, TDB_FORMAT) ||
      !cJSON_IsArray(entries)) {
    sb_printf(&db->warnings, "%s: not a tuning database (\"format\": \"%s\" and \"entries\"); "
                             "ignored, lisa tune rewrites it\n", db->path, TDB_FORMAT);
    return 0;
  }
  if (!cJSON_IsString(device) || strcmp(device->valuestring, db->device)) {
    sb_printf(&db->warnings, "%s: for device '%s', not '%s'; ignored\n", db->path,
              cJSON_IsString(device) ? device->valuestring : "?", db->device);
    return 0;
  }
  int i = 0;
  for (const cJSON *j = entries->child; j; j = j->next, i++) {
    tdb_entry e;
    const char *why = parse_entry(j, &e);
    if (why) sb_printf(&db->warnings, "%s: entry %d: %s; ignored\n", db->path, i, why);
    else if (tdb_put(db, &e, err)) return -1;
  }
  return 0;
}

int tdb_open_path(tune_db *db, const char *device, const char *path, lt_error *err) {
  memset(db, 0, sizeof *db);
  if (strlen(device) >= sizeof db->device || strlen(path) >= sizeof db->path)
    return lt_fail(err, "tuning database: device name or path too long");
  snprintf(db->device, sizeof db->device, "%s", device);
  snprintf(db->path, sizeof db->path, "%s", path);
  char *text;
  if (read_text(path, &text, err)) return -1;
  if (!text) return 0;
  cJSON *root = cJSON_Parse(text);
  int rc = 0;
  if (!root || !cJSON_IsObject(root)) {
    const char *at = cJSON_GetErrorPtr();
    sb_printf(&db->warnings, "%s: not JSON (at byte %td); ignored, lisa tune rewrites it\n",
              path, root || !at ? (ptrdiff_t)0 : at - text);
  } else
    rc = load_entries(db, root, err);
  cJSON_Delete(root);
  free(text);
  if (rc) tdb_free(db);
  return rc;
}

int tdb_open(tune_db *db, const char *device, lt_error *err) {
  char dir[1024], tune_dir[1100], slug[128], path[1200];
  slug_of(device, slug, sizeof slug);
  if (atomic_file_cache_dir(dir, sizeof dir, err) ||
      atomic_file_join(tune_dir, sizeof tune_dir, dir, "tune", err) ||
      atomic_file_make_dir(tune_dir, err) ||
      atomic_file_join(path, sizeof path, tune_dir, slug, err))
    return -1;
  return tdb_open_path(db, device, path, err);
}

void tdb_free(tune_db *db) {
  free(db->entries);
  sb_free(&db->warnings);
  db->entries = NULL, db->n = db->cap = 0;
}

const tdb_entry *tdb_find(const tune_db *db, const char *kernel, const char *program) {
  for (int i = 0; i < db->n; i++)
    if (!strcmp(db->entries[i].kernel, kernel) && !strcmp(db->entries[i].program, program))
      return &db->entries[i];
  return NULL;
}

int tdb_put(tune_db *db, const tdb_entry *e, lt_error *err) {
  tdb_entry *old = (tdb_entry *)tdb_find(db, e->kernel, e->program);
  if (old) return *old = *e, 0;
  if (db->n == db->cap) {
    const int cap = db->cap ? 2 * db->cap : 16;
    tdb_entry *grown = realloc(db->entries, sizeof *grown * (size_t)cap);
    if (!grown) return lt_fail(err, "out of memory");
    db->entries = grown, db->cap = cap;
  }
  db->entries[db->n++] = *e;
  return 0;
}

static cJSON *entry_json(const tdb_entry *e) {
  cJSON *j = cJSON_CreateObject(), *values = NULL;
  if (!j || !cJSON_AddStringToObject(j, "kernel", e->kernel) ||
      !cJSON_AddStringToObject(j, "program", e->program) ||
      !(values = cJSON_AddObjectToObject(j, "values")))
    return cJSON_Delete(j), NULL;
  for (int i = 0; i < e->n_values; i++)
    if (!cJSON_AddNumberToObject(values, e->names[i], e->values[i])) return cJSON_Delete(j), NULL;
  if (!cJSON_AddNumberToObject(j, "ms", e->ms) ||
      !cJSON_AddNumberToObject(j, "default_ms", e->default_ms) ||
      !cJSON_AddNumberToObject(j, "variants", e->variants))
    return cJSON_Delete(j), NULL;
  return j;
}

int tdb_save(const tune_db *db, lt_error *err) {
  cJSON *root = cJSON_CreateObject(), *entries = NULL;
  int ok = root && cJSON_AddStringToObject(root, "format", TDB_FORMAT) &&
           cJSON_AddStringToObject(root, "device", db->device) &&
           (entries = cJSON_AddArrayToObject(root, "entries"));
  for (int i = 0; ok && i < db->n; i++) {
    cJSON *e = entry_json(&db->entries[i]);
    ok = e && cJSON_AddItemToArray(entries, e);
    if (e && !ok) cJSON_Delete(e);
  }
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) return lt_fail(err, "%s: out of memory", db->path);
  const int rc = atomic_file_write_text(db->path, text, err);
  cJSON_free(text);
  return rc;
}

void tdb_values_text(const tdb_entry *e, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (int i = 0; i < e->n_values && n < cap; i++)
    n += (size_t)snprintf(out + n, cap - n, "%s%s=%d", i ? " " : "", e->names[i], e->values[i]);
}

static const char *dtype_name(const gen_config *c) {
  return c->dtype == GEN_F32 ? "fp32" : c->grad_dtype == GEN_BF16 ? "bf16-true" : "bf16-mixed";
}

int tdb_signature(const ir_model *m, const gen_config *cfg, char *out, size_t cap,
                  lt_error *err) {
  gen_config c = *cfg;
  c.tuning = NULL, c.dump_after = NULL;
  gen_program prog;
  if (gen_build(&prog, m, &c, err)) return -1;
  uint64_t h = 0;
  for (int i = 0; i < prog.n_paths; i++) {
    const gen_path *p = &prog.paths[i];
    if (p->section == IR_NSECTIONS) continue; /* the optimizer's kernels are not tuned */
    h = hash64_bytes(p->name, strlen(p->name), h);
    h = hash64_bytes(sb_str(&p->source), strlen(sb_str(&p->source)), h);
  }
  gen_free(&prog);
  char name[48];
  snprintf(name, sizeof name, "%.47s", m->name);
  for (char *s = name; *s; s++)
    if (isspace((unsigned char)*s)) *s = '_';
  snprintf(out, cap, "%s B%d T%d %s %016" PRIx64, name, c.B, c.T, dtype_name(&c), h);
  return 0;
}

/* Lua for entry e: "kernel = {P = v, ...}, " */
static void entry_lua(const tdb_entry *e, sbuf *lua) {
  sb_printf(lua, "%s = {", e->kernel);
  for (int i = 0; i < e->n_values; i++) sb_printf(lua, "%s = %d, ", e->names[i], e->values[i]);
  sb_puts(lua, "}, ");
}

int tdb_tuning(tune_db *db, const char *program, gen_tuning **out, sbuf *applied,
               lt_error *err) {
  *out = NULL;
  sbuf all = {0};
  int used = 0;
  sb_puts(&all, "return {");
  for (int i = 0; i < db->n; i++) {
    const tdb_entry *e = &db->entries[i];
    if (strcmp(e->program, program)) continue;
    sbuf one = {0};
    sb_puts(&one, "return {");
    entry_lua(e, &one);
    sb_puts(&one, "}");
    gen_tuning *t = NULL;
    lt_error why = {{0}};
    char values[200];
    tdb_values_text(e, values, sizeof values);
    if (gen_tune_load_text(&t, sb_str(&one), "entry", &why)) {
      sb_printf(&db->warnings, "%s: entry %s (%s): stale, the tuning spaces refuse it (%s); "
                               "ignored\n", db->path, e->kernel, values, why.msg);
    } else {
      entry_lua(e, &all);
      if (applied) sb_printf(applied, "%s%s(%s)", used ? ", " : "", e->kernel, values);
      used++;
    }
    gen_tune_free(t);
    sb_free(&one);
  }
  sb_puts(&all, "}");
  int rc = used && gen_tune_load_text(out, sb_str(&all), db->path, err) ? -1 : 0;
  if (all.failed) rc = lt_fail(err, "out of memory");
  sb_free(&all);
  return rc;
}

int tdb_lookup(const char *device, const ir_model *m, const gen_config *cfg, gen_tuning **out,
               char *applied, size_t cap, FILE *warn, lt_error *err) {
  tune_db db;
  char program[160];
  sbuf used = {0};
  *out = NULL;
  if (tdb_open(&db, device, err)) return -1;
  int rc = db.n ? tdb_signature(m, cfg, program, sizeof program, err) : 0;
  if (rc == 0 && db.n) rc = tdb_tuning(&db, program, out, &used, err);
  snprintf(applied, cap, "%s", sb_str(&used));
  tdb_print_warnings(warn, sb_str(&db.warnings));
  sb_free(&used);
  tdb_free(&db);
  return rc;
}

void tdb_print_warnings(FILE *f, const char *warnings) {
  if (!f) return;
  for (const char *w = warnings, *nl; *w; w = *nl ? nl + 1 : nl) {
    nl = strchr(w, '\n');
    if (!nl) nl = w + strlen(w);
    fprintf(f, "lisa: warning: %.*s\n", (int)(nl - w), w);
  }
}
