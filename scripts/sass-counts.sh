#!/usr/bin/env bash
# sass-counts.sh: memory instructions of generated kernels, from their SASS.
#
#   scripts/sass-counts.sh FILE.cu PATTERN [ARCH]
#
# Compiles a `lisa gen` source to a CUBIN with nvcc (ARCH: sm_90), disassembles
# it with cuobjdump -sass (CUOBJDUMP: the toolkit's, else the one Triton's
# wheel carries in triton/backends/nvidia/bin), and prints, for each kernel
# whose name matches PATTERN (grep -E), its global loads and stores by width,
# its shared loads (LDS, LDSM) and its asynchronous copies (LDGSTS). Static
# counts: an unrolled loop counts once per copy.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 FILE.cu PATTERN [ARCH]" >&2; exit 2; }
src=$1 pattern=$2 arch=${3:-sm_90}
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
cuobjdump=${CUOBJDUMP:-/usr/local/cuda/bin/cuobjdump}
[ -x "$cuobjdump" ] || { echo "$0: no cuobjdump at $cuobjdump (set CUOBJDUMP)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$nvcc" -std=c++17 -arch="$arch" -cubin "$src" -o "$tmp/all.cubin"
"$cuobjdump" -sass "$tmp/all.cubin" > "$tmp/all.sass"
# one file per kernel: from "Function : NAME" to the next
awk -v dir="$tmp" '/Function : / { name = $NF; out = dir "/" name ".k" } out { print > out }' "$tmp/all.sass"
printf '%-52s %7s %7s %7s %7s %7s %7s %7s %7s %7s\n' kernel LDG.16 LDG.32 LDG.128 STG.16 STG.32 \
  STG.128 LDS LDSM LDGSTS
for k in "$tmp"/*.k; do
  name=$(basename "$k" .k)
  grep -Eq "$pattern" <<<"$name" || continue
  count() { grep -Ec "$1" "$k" || true; }
  printf '%-52s %7d %7d %7d %7d %7d %7d %7d %7d %7d\n' "$name" \
    "$(count '\bLDG\.E\.(U16|S16)\b')" "$(count '\bLDG\.E(\.(STRONG|CONSTANT|EF|EL|LU|NA|SYS|GPU|CTA)+)*(\.64)? ')" \
    "$(count '\bLDG\.E\.128\b')" "$(count '\bSTG\.E\.(U16|S16)\b')" \
    "$(count '\bSTG\.E(\.(STRONG|EF|EL|NA|SYS|GPU|CTA)+)* ')" "$(count '\bSTG\.E\.128\b')" \
    "$(count '\bLDS(\.(U|S)?(8|16|32|64|128))? ')" "$(count '\bLDSM\.')" "$(count '\bLDGSTS\.')"
done
