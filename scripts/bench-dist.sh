#!/bin/bash
# bench-dist.sh: data parallel on the CPU, FT against LISA: one process at
# --batch 2B against `mpirun -np 2` at --batch B (the same global batch),
# without and with --zero 1 (reduce-scatter, sharded AdamW, gather):
# median step time, the bytes each step moves over ranks (JSONL
# comm_bytes) and a rank's optimizer bytes. Needs build/lisa and mpirun (apt-get install openmpi-bin).
#   bash scripts/bench-dist.sh [MODEL] [B] [T] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/gpt2-bytes.yaml} B=${2:-4} T=${3:-64} STEPS=${4:-20}
command -v mpirun > /dev/null || { echo "bench-dist.sh: no mpirun (apt-get install openmpi-bin)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
# one core a rank: two ranks on two cores, against one process on both
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=1
DATA=tests/fixtures/tokens-67.bin
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# median of a JSONL field over the steps after the first
median() { grep '"step":' "$2" | tail -n +2 | grep -o "\"$1\":[0-9.e+]*" | cut -d: -f2 | sort -g |
  awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%-5s %-9s %10s %12s %14s %12s\n" method ranks "step ms" "tokens/s" "comm bytes" "optimizer"
optimizer() { grep -m1 -o '"optimizer":[0-9]*' "$1" | cut -d: -f2; }
for method in "ft" "lisa --gamma 1"; do
  # shellcheck disable=SC2086
  build/lisa train "$MODEL" --data "$DATA" --batch $((2 * B)) --seq "$T" --steps "$STEPS" --device cpu \
    --method $method --quiet --log-jsonl "$W/one.jsonl"
  # shellcheck disable=SC2086
  mpirun -np 2 build/lisa train "$MODEL" --data "$DATA" --batch "$B" --seq "$T" --steps "$STEPS" \
    --device cpu --method $method --quiet --log-jsonl "$W/two.jsonl"
  # shellcheck disable=SC2086
  mpirun -np 2 build/lisa train "$MODEL" --data "$DATA" --batch "$B" --seq "$T" --steps "$STEPS" \
    --device cpu --method $method --zero 1 --quiet --log-jsonl "$W/zero.jsonl"
  printf "%-5s %-9s %10.1f %12.0f %14s %12s\n" "${method%% *}" 1 "$(median step_ms "$W/one.jsonl")" \
    "$(median tokens_per_s "$W/one.jsonl")" - "$(optimizer "$W/one.jsonl")"
  printf "%-5s %-9s %10.1f %12.0f %14s %12s\n" "${method%% *}" 2 "$(median step_ms "$W/two.jsonl")" \
    "$(median tokens_per_s "$W/two.jsonl")" "$(median comm_bytes "$W/two.jsonl")" "$(optimizer "$W/two.jsonl")"
  printf "%-5s %-9s %10.1f %12.0f %14s %12s\n" "${method%% *}" "2 zero 1" "$(median step_ms "$W/zero.jsonl")" \
    "$(median tokens_per_s "$W/zero.jsonl")" "$(median comm_bytes "$W/zero.jsonl")" "$(optimizer "$W/zero.jsonl")"
done
echo "$MODEL, global batch $((2 * B)) x $T, $STEPS steps, medians after the first step; OMP_NUM_THREADS=$OMP_NUM_THREADS"
