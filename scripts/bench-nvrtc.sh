#!/bin/bash
# bench-nvrtc.sh: how long NVRTC takes to build every generated path of a
# model (cold cache), and how long a cache hit takes. Median of ROUNDS runs
# of `lisa gen`, each in a fresh cache folder; results on stdout as a table.
# Usage: scripts/bench-nvrtc.sh [MODEL.yaml] (default models/gpt2-124m.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/gpt2-124m.yaml}
ROUNDS=${ROUNDS:-3}
B=${B:-4} T=${T:-64} ARCH=${ARCH:-sm_90}
[ -x build/lisa ] || bash scripts/setup.sh >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for r in $(seq "$ROUNDS"); do
  export XDG_CACHE_HOME=$tmp/cache-$r
  build/lisa gen "$MODEL" -o "$tmp/out" --batch "$B" --seq "$T" --arch "$ARCH" > "$tmp/cold-$r.txt"
  build/lisa gen "$MODEL" -o "$tmp/out" --batch "$B" --seq "$T" --arch "$ARCH" > "$tmp/hot-$r.txt"
  grep 'all paths' "$tmp/cold-$r.txt" | awk '{print $3}' >> "$tmp/cold"
  grep 'all paths' "$tmp/hot-$r.txt" | awk '{print $3}' >> "$tmp/hot"
done
echo "model $MODEL, B=$B T=$T, $ARCH, bf16, $(nproc) cores, $ROUNDS rounds"
echo "| | median wall ms | rounds (ms) |"
echo "|---|---:|---|"
echo "| first build, every path | $(median < "$tmp/cold") | $(paste -sd/ "$tmp/cold") |"
echo "| cache hit, every path | $(median < "$tmp/hot") | $(paste -sd/ "$tmp/hot") |"
echo
echo "per path, round 1 (NVRTC ms; paths compile in parallel, one per core):"
grep -E '^  [a-z_]+ +compiled' "$tmp/cold-1.txt"
