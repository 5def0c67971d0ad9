#!/bin/bash
# bench-profile.sh: FT and LISA with --profile, alternating, on the CPU; then
# scripts/profile-ratio.py: LISA's step over FT's as measured, scaled by the
# forward both run (which takes out the machine's drift between two runs),
# and the share of FT's step spent on work LISA skips (its floor).
#
#   scripts/bench-profile.sh                  # GPT-2 124M, B=4 T=64, G=2, 5 rounds
#   GAMMA=4 ROUNDS=3 scripts/bench-profile.sh
#
# Environment (defaults in brackets): BUILD [build], MODEL
# [models/gpt2-124m.yaml], DATA [data/tinyshakespeare.bin], STEPS [6: 5
# profiled], ROUNDS [5], BATCH [4], SEQ [64], GAMMA [2], THREADS [2], OUT [a
# fresh temp dir].
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build} MODEL=${MODEL:-models/gpt2-124m.yaml} DATA=${DATA:-data/tinyshakespeare.bin}
STEPS=${STEPS:-6} ROUNDS=${ROUNDS:-5} BATCH=${BATCH:-4} SEQ=${SEQ:-64} GAMMA=${GAMMA:-2}
THREADS=${THREADS:-2} OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-profile.XXXXXX")}
export OMP_NUM_THREADS=$THREADS
pairs=()
for r in $(seq 1 "$ROUNDS"); do
  for m in ft lisa; do
    args=(--method ft)
    [ "$m" = lisa ] && args=(--method lisa --gamma "$GAMMA" --interval 5)
    echo "round $r/$ROUNDS: $m" >&2
    "$BUILD/lisa" train "$MODEL" --data "$DATA" "${args[@]}" --steps "$STEPS" --batch "$BATCH" \
      --seq "$SEQ" --lr 1e-4 --device cpu --quiet --profile --log-jsonl "$OUT/$m.$r.jsonl" \
      >"$OUT/$m.$r.txt"
    pairs+=("$OUT/$m.$r.jsonl")
  done
done
echo "$(basename "$MODEL" .yaml), B=$BATCH T=$SEQ, LISA G=$GAMMA, $THREADS threads; logs in $OUT"
python3 scripts/profile-ratio.py "${pairs[@]}"
