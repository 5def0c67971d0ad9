/* fuzz_util.h: the input as a file, for parsers that take a path. A memfd
 * keeps it off the disk; /proc/self/fd/N names it. */
#ifndef LT_FUZZ_UTIL_H
#define LT_FUZZ_UTIL_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static int fuzz_file(const uint8_t *data, size_t size, char *path, size_t cap) {
  int fd = memfd_create("fuzz", 0);
  if (fd < 0) return -1;
  if (size && write(fd, data, size) != (ssize_t)size) {
    close(fd);
    return -1;
  }
  snprintf(path, cap, "/proc/self/fd/%d", fd);
  return fd;
}

#endif
