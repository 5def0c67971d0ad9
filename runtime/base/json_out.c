#include "json_out.h"

#include <math.h>

void json_write_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', out);
    if ((unsigned char)*s >= 0x20) fputc(*s, out);
  }
  fputc('"', out);
}

void json_write_number(FILE *out, double v, int digits) {
  if (isfinite(v)) fprintf(out, "%.*g", digits, v);
  else fputs("null", out);
}
