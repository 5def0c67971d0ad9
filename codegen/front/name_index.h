/* name_index.h: a set of names kept elsewhere (config entries, checkpoint
 * names), found by hash: a model file with 200,000 config keys must load in
 * linear time, not compare every key with every other. The index stores
 * positions; the names stay in the caller's array, read through name_of. */
#ifndef LT_NAME_INDEX_H
#define LT_NAME_INDEX_H

typedef const char *(*name_of_fn)(const void *owner, int i);

typedef struct {
  int *slot;      /* position + 1, 0 when empty */
  unsigned mask;  /* capacity - 1 (a power of two) */
  int count;
  name_of_fn name_of;
  const void *owner;
} name_index;

void name_index_init(name_index *x, name_of_fn name_of, const void *owner);
void name_index_free(name_index *x);
/* The position of name, or -1. */
int name_index_find(const name_index *x, const char *name);
/* Adds position i (its name is name_of(owner, i)); -1 when out of memory. */
int name_index_add(name_index *x, int i);

#endif
