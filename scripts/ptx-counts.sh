#!/usr/bin/env bash
# ptx-counts.sh: memory instructions of generated kernels, from their PTX.
#
#   scripts/ptx-counts.sh FILE.cu PATTERN [ARCH]
#
# Compiles a `lisa gen` source to PTX with nvcc (ARCH: sm_90) and prints,
# for each kernel whose name matches PATTERN (grep -E), how many global and
# shared loads and stores it has by width, and its ldmatrix and cp.async.
# Static counts of the PTX, not of SASS (cuobjdump and nvdisasm are not in
# every toolkit install; where they are, count SASS instead): unrolled
# loops count once per copy, and ptxas may still merge or split accesses.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 FILE.cu PATTERN [ARCH]" >&2; exit 2; }
src=$1 pattern=$2 arch=${3:-sm_90}
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$nvcc" -std=c++17 -arch="$arch" -ptx "$src" -o "$tmp/all.ptx"
# one file per entry: from ".entry NAME" to the next ".entry"
awk -v dir="$tmp" '/^\.visible \.entry|^\.entry/ { name = $0; sub(/.*\.entry[ \t]+/, "", name);
  sub(/\(.*/, "", name); out = dir "/" name ".k" } out { print > out }' "$tmp/all.ptx"
printf '%-48s %8s %8s %8s %8s %8s %8s %8s %8s %8s\n' kernel ld.g.16 ld.g.32 ld.g.128 st.g.16 \
  st.g.32 st.g.128 ld.s.32 ldmatrix cp.async
for k in "$tmp"/*.k; do
  name=$(basename "$k" .k)
  grep -Eq "$pattern" <<<"$name" || continue
  count() { grep -Ec "$1" "$k" || true; }
  printf '%-48s %8d %8d %8d %8d %8d %8d %8d %8d %8d\n' "$name" \
    "$(count '^\s*ld\.global(\.[a-z]+)*\.(u16|b16|s16)\s')" \
    "$(count '^\s*ld\.global(\.[a-z]+)*\.(u32|b32|s32|f32)\s')" \
    "$(count '^\s*ld\.global(\.[a-z]+)*\.v4\.(u32|b32|f32)\s')" \
    "$(count '^\s*st\.global(\.[a-z]+)*\.(u16|b16|s16)\s')" \
    "$(count '^\s*st\.global(\.[a-z]+)*\.(u32|b32|s32|f32)\s')" \
    "$(count '^\s*st\.global(\.[a-z]+)*\.v4\.(u32|b32|f32)\s')" \
    "$(count '^\s*ld\.shared(\.[a-z]+)*\.(u32|b32|s32|f32)\s')" \
    "$(count '^\s*ldmatrix')" "$(count '^\s*cp\.async\.(ca|cg)')"
done
