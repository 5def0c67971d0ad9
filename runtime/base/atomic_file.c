#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int atomic_file_open(atomic_file *f, const char *path, lt_error *err) {
  memset(f, 0, sizeof *f);
  if (strlen(path) >= sizeof f->path) return lt_fail(err, "%s: path too long", path);
  strcpy(f->path, path);
  snprintf(f->tmp, sizeof f->tmp, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(f->tmp);
  if (fd < 0)
    return lt_fail(err, "%s: cannot create temporary file %s: %s", path, f->tmp, strerror(errno));
  fchmod(fd, 0644); /* mkstemp makes 0600 */
  f->fp = fdopen(fd, "wb");
  if (!f->fp) {
    int saved = errno;
    close(fd);
    unlink(f->tmp);
    return lt_fail(err, "%s: cannot open temporary file %s: %s", path, f->tmp, strerror(saved));
  }
  return 0;
}

int atomic_file_commit(atomic_file *f, int write_failed, lt_error *err) {
  int saved = errno, ok = !write_failed;
  if (ok && (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)) ok = 0, saved = errno;
  if (fclose(f->fp) != 0 && ok) ok = 0, saved = errno;
  f->fp = NULL;
  if (ok && rename(f->tmp, f->path) == 0) return 0;
  const char *what = ok ? "rename from temporary file" : "write";
  if (ok) saved = errno;
  unlink(f->tmp);
  return lt_fail(err, "%s: %s failed: %s", f->path, what, strerror(saved ? saved : EIO));
}

int atomic_file_write_text(const char *path, const char *text, lt_error *err) {
  atomic_file f;
  if (atomic_file_open(&f, path, err)) return -1;
  size_t len = strlen(text);
  errno = 0;
  return atomic_file_commit(&f, fwrite(text, 1, len, f.fp) != len, err);
}

int atomic_file_join(char *out, size_t cap, const char *dir, const char *name, lt_error *err) {
  if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
    return lt_fail(err, "%s/%s: path too long", dir, name);
  return 0;
}

int atomic_file_make_dir(const char *path, lt_error *err) {
  struct stat st;
  if (mkdir(path, 0755) == 0) return 0;
  if (errno != EEXIST) return lt_fail(err, "%s: cannot create folder: %s", path, strerror(errno));
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return lt_fail(err, "%s: exists and is not a folder", path);
  return 0;
}

int atomic_file_sync_dir(const char *dir, lt_error *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return lt_fail(err, "%s: cannot open folder to sync: %s", dir, strerror(errno));
  int rc = fsync(fd), saved = errno;
  close(fd);
  return rc ? lt_fail(err, "%s: fsync failed: %s", dir, strerror(saved)) : 0;
}

int atomic_file_cache_dir(char *out, size_t cap, lt_error *err) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char base[1024];
  if (xdg && *xdg) snprintf(base, sizeof base, "%s", xdg);
  else if (home && *home) {
    if (atomic_file_join(base, sizeof base, home, ".cache", err)) return -1;
  } else
    return lt_fail(err, "cache: neither XDG_CACHE_HOME nor HOME is set");
  if (atomic_file_make_dir(base, err) || atomic_file_join(out, cap, base, "lisa", err)) return -1;
  return atomic_file_make_dir(out, err);
}
