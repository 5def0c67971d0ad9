/* hash64.h: a 64-bit identity hash (not cryptographic). A saved state
 * records the hash of the tokens and of the policy file it trained on, so a
 * resume can tell that the data or the policy changed under it. */
#ifndef LT_HASH64_H
#define LT_HASH64_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Hash of p[0..n), chained from h (start from 0). Eight bytes a step. */
uint64_t hash64_bytes(const void *p, size_t n, uint64_t h);

/* Hash of a whole file's bytes. */
int hash64_file(const char *path, uint64_t *out, lt_error *err);

#endif
