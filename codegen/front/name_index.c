#include "name_index.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a: simple, and good enough for names. */
static unsigned hash_name(const char *s) {
  unsigned h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

void name_index_init(name_index *x, name_of_fn name_of, const void *owner) {
  memset(x, 0, sizeof *x);
  x->name_of = name_of, x->owner = owner;
}

void name_index_free(name_index *x) {
  free(x->slot);
  x->slot = NULL, x->mask = 0, x->count = 0;
}

int name_index_find(const name_index *x, const char *name) {
  if (!x->slot) return -1;
  for (unsigned k = hash_name(name) & x->mask;; k = (k + 1) & x->mask) {
    int at = x->slot[k] - 1;
    if (at < 0) return -1;
    if (!strcmp(x->name_of(x->owner, at), name)) return at;
  }
}

static void put(int *slot, unsigned mask, const char *name, int i) {
  unsigned k = hash_name(name) & mask;
  while (slot[k]) k = (k + 1) & mask;
  slot[k] = i + 1;
}

/* Doubles the table (load stays under one half, so probes stay short). */
static int grow(name_index *x) {
  unsigned cap = x->slot ? 2 * (x->mask + 1) : 64;
  int *slot = calloc(cap, sizeof *slot);
  if (!slot) return -1;
  for (unsigned k = 0; x->slot && k <= x->mask; k++)
    if (x->slot[k]) put(slot, cap - 1, x->name_of(x->owner, x->slot[k] - 1), x->slot[k] - 1);
  free(x->slot);
  x->slot = slot, x->mask = cap - 1;
  return 0;
}

int name_index_add(name_index *x, int i) {
  if ((!x->slot || 2 * (unsigned)(x->count + 1) > x->mask + 1) && grow(x)) return -1;
  put(x->slot, x->mask, x->name_of(x->owner, i), i);
  x->count++;
  return 0;
}
