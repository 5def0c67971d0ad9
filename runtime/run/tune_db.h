/* tune_db.h: the tuning database, what `lisa tune` found per device, used
 * by lisa train, check and gen unless --tune or --no-tune-db says otherwise.
 *
 * One JSON file per device under the cache folder, <cache>/tune/<slug>.json:
 *
 *   {"format": "lisa-tune 1", "device": "NVIDIA H200|sm_90|cuda 12040",
 *    "entries": [{"kernel": "attention_forward",
 *                 "program": "gpt2-tiny B2 T8 fp32 5c0e...",
 *                 "values": {"BQ": 64, "THREADS": 128},
 *                 "ms": 0.0123, "default_ms": 0.0150, "variants": 12}]}
 *
 * An entry is a kernel's winning tunables (tuning.lua's names) at one
 * program signature (tdb_signature): the model's generated section code with
 * the default tunables, so a change of model, shapes, precision, method or
 * generator makes a new key rather than reusing a stale winner. Only a
 * variant checked against the CPU backend is ever stored (lisa tune). A
 * file that is not the format, or is another device's, is ignored whole; a
 * malformed entry, or one whose values the current tuning spaces refuse
 * (stale), is ignored alone; each with a line in `warnings`. */
#ifndef LT_TUNE_DB_H
#define LT_TUNE_DB_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"
#include "gen.h"
#include "sbuf.h"

#define TDB_MAX_VALUES 8

typedef struct {
  char kernel[64];
  char program[160];   /* tdb_signature */
  int n_values;
  char names[TDB_MAX_VALUES][32];
  int values[TDB_MAX_VALUES];
  double ms, default_ms; /* the winner's time and the default's (0: not timed) */
  int variants;          /* the variants lisa tune tried */
} tdb_entry;

typedef struct {
  char device[160];
  char path[1024];
  tdb_entry *entries;
  int n, cap;
  sbuf warnings; /* one line per file or entry ignored on load */
} tune_db;

/* The database of `device` (a dev_provider's tune_device) from the cache
 * folder; a missing file is an empty database. */
int tdb_open(tune_db *db, const char *device, lt_error *err);
/* The same at an explicit path. */
int tdb_open_path(tune_db *db, const char *device, const char *path, lt_error *err);
void tdb_free(tune_db *db);

/* Adds e, replacing the entry of the same kernel and program. */
int tdb_put(tune_db *db, const tdb_entry *e, lt_error *err);
const tdb_entry *tdb_find(const tune_db *db, const char *kernel, const char *program);
/* Writes the file (atomically: a temporary file renamed over it). */
int tdb_save(const tune_db *db, lt_error *err);

/* "BQ=64 THREADS=128" */
void tdb_values_text(const tdb_entry *e, char *out, size_t cap);

/* The signature of the program cfg builds for m, with the default tunables
 * (cfg->tuning is ignored): "<model> B<b> T<t> <dtype> <hash of every
 * section path's source>". */
int tdb_signature(const ir_model *m, const gen_config *cfg, char *out, size_t cap,
                  lt_error *err);

/* The tunables for a program of signature `program`: the embedded defaults
 * with every entry of db at that program over them, into *out (NULL when db
 * holds none); applied gets "kernel(values)" per entry used. A stale entry
 * is skipped with a warning. */
int tdb_tuning(tune_db *db, const char *program, gen_tuning **out, sbuf *applied,
               lt_error *err);

/* The whole lookup: device's database, the signature of the program cfg
 * builds for m, its tunables into *out (NULL: none); applied gets what they
 * set ("kernel(values), ...", "" for nothing). The database's warnings go to
 * warn (tdb_print_warnings). */
int tdb_lookup(const char *device, const ir_model *m, const gen_config *cfg, gen_tuning **out,
               char *applied, size_t cap, FILE *warn, lt_error *err);

/* Each line of warnings as "lisa: warning: LINE" on f (NULL: nowhere). */
void tdb_print_warnings(FILE *f, const char *warnings);

#endif
