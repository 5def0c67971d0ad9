/* json_out.h: JSON text written by hand, for the JSONL rows of log and
 * profile (cJSON builds trees; a row is one fprintf). */
#ifndef LT_JSON_OUT_H
#define LT_JSON_OUT_H

#include <stdio.h>

/* s as a JSON string: quoted, quotes and backslashes escaped, control
 * characters dropped (so a row stays valid JSON whatever a name holds). */
void json_write_string(FILE *out, const char *s);

/* v as a JSON number ("%.*g" with digits significant digits), or null when
 * v is NaN or infinite: JSON has no spelling for those. */
void json_write_number(FILE *out, double v, int digits);

#endif
