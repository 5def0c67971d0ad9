/* atomic_file.h: files are replaced only by renaming a complete, fsync'ed
 * temporary file from the same folder over them, so a crash never leaves a
 * half-written file where a good one was. Every writer of checkpoints, data
 * and indexes goes through here. */
#ifndef LT_ATOMIC_FILE_H
#define LT_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef struct {
  FILE *fp;           /* write the content here */
  char path[1024];    /* the file to replace */
  char tmp[1100];     /* "<path>.tmp.XXXXXX" */
} atomic_file;

/* Creates the temporary file (mode 0644: checkpoints are meant to be
 * shared). On failure nothing is left behind. */
int atomic_file_open(atomic_file *f, const char *path, lt_error *err);

/* Flushes, fsyncs and closes, then renames over the target. `write_failed`
 * says the caller's writes went wrong (errno tells why). On any failure the
 * temporary file is removed and the target is left as it was. */
int atomic_file_commit(atomic_file *f, int write_failed, lt_error *err);

/* The whole cycle for a small text file. */
int atomic_file_write_text(const char *path, const char *text, lt_error *err);

/* out = "dir/name", or an error if it does not fit in cap. */
int atomic_file_join(char *out, size_t cap, const char *dir, const char *name, lt_error *err);
/* Creates a folder (0755); an existing folder is fine, a file is an error. */
int atomic_file_make_dir(const char *path, lt_error *err);
/* The cache folder, made if missing: $XDG_CACHE_HOME/lisa, else
 * $HOME/.cache/lisa. */
int atomic_file_cache_dir(char *out, size_t cap, lt_error *err);
/* A new file, a rename or a removal is durable only once its folder is
 * synced. */
int atomic_file_sync_dir(const char *dir, lt_error *err);

#endif
