/* sbuf.h: a growable string, for the code and plans the generator writes.
 * An allocation failure is remembered (sb->failed) and later appends do
 * nothing, so emitters append freely and check once at the end. */
#ifndef LT_SBUF_H
#define LT_SBUF_H

#include <stddef.h>

typedef struct {
  char *s;     /* NUL-terminated; NULL until the first append */
  size_t len, cap;
  int failed;  /* an allocation failed: the text is incomplete */
} sbuf;

void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_puts(sbuf *b, const char *s);
void sb_putn(sbuf *b, const char *s, size_t n); /* n bytes of s */
const char *sb_str(const sbuf *b); /* "" when empty */
void sb_free(sbuf *b);

#endif
