#!/bin/sh
# A C++ compiler that builds mutants (test_cli_check.sh), then runs the real
# c++ on the source it is given:
#   MUTANT=layernorm  layernorm's variance over C - 1 (a classic slip)
#   MUTANT=bq64       scores scaled wrong, only in a program whose attention
#                     forward runs BQ = 64 with 64 threads (one tune variant)
#   MUTANT=adamw      AdamW's first-moment bias correction one step ahead
#                     (the optimizer path only: lisa check's steps)
for a in "$@"; do
  case "$a" in
  *.cu)
    case "${MUTANT:-layernorm}" in
    layernorm) sed -i 's|rs = 1.0f / sqrtf(r2\[0\] / (float)C + eps);|rs = 1.0f / sqrtf(r2[0] / (float)(C - 1) + eps);|' "$a" ;;
    bq64) grep -Eq 'attention_forward<[^>]*, 64, [0-9]+, 64>\(' "$a" &&
      sed -i 's|return scale > 0.f ? scale : 1.f / sqrtf((float)HD);|return scale > 0.f ? scale : 1.1f / sqrtf((float)HD);|' "$a" ;;
    adamw) sed -i 's|(1.0 - pow((double)beta1, t))|(1.0 - pow((double)beta1, t + 1))|' "$a" ;;
    esac ;;
  esac
done
exec c++ "$@"
