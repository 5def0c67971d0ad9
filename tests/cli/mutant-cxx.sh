#!/bin/sh
# A C++ compiler that builds a mutant (test_cli_check.sh): layernorm's
# variance divided by C - 1 (the unbiased estimate, a classic slip) in the
# source it is given, then the real c++.
for a in "$@"; do
  case "$a" in
  *.cu) sed -i 's|rs = 1.0f / sqrtf(r2\[0\] / (float)C + eps);|rs = 1.0f / sqrtf(r2[0] / (float)(C - 1) + eps);|' "$a" ;;
  esac
done
exec c++ "$@"
