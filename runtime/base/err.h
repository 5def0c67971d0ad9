/* err.h: error reporting for library code.
 *
 * Library functions never exit or print; they fill an lt_error and return a
 * negative value. Only the CLI decides what to do with the message. Messages
 * name the file and the place ("models/x.yaml:12:5: unknown op 'foo'"). */
#ifndef LT_ERR_H
#define LT_ERR_H

#include <stddef.h>

typedef struct {
  char msg[1024];
} lt_error;

/* Formats the message into err (if non-NULL) and returns -1, so callers can
 * write `return lt_fail(err, "...", ...);`. */
int lt_fail(lt_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
