#!/bin/bash
# compare.sh: full fine-tuning against LISA E+H, E+H+2L and E+H+4L and LoRA
# rank 8 and 32 (alpha = 2 x rank, every block linear weight) on the same
# model, data and settings, as the paper's tables do. Methods run round-robin
# (ft, E+H, E+H+2L, E+H+4L, LoRA 8, LoRA 32, ft, ...) so a noisy machine hurts
# them alike. Prints a markdown table: median ms/step, peak RSS, both as
# ratios to FT, the range of the time ratio over the rounds (each against
# that round's FT run), and the mean loss of the last 10 steps.
#
#   scripts/compare.sh                       # GPT-2 124M, B=4 T=64, 2 rounds
#   MODEL=models/gpt2-bytes.yaml STEPS=200 ROUNDS=1 scripts/compare.sh
#
# Environment (defaults in brackets): BUILD [build], MODEL
# [models/gpt2-124m.yaml], DATA [data/tinyshakespeare.bin], STEPS [12],
# WARMUP [2] steps left out of the median, ROUNDS [2], BATCH [4], SEQ [64],
# LR [1e-4], INTERVAL [5], THREADS [2], OUT [a fresh temp dir].
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build} MODEL=${MODEL:-models/gpt2-124m.yaml} DATA=${DATA:-data/tinyshakespeare.bin}
STEPS=${STEPS:-12} WARMUP=${WARMUP:-2} ROUNDS=${ROUNDS:-2} BATCH=${BATCH:-4} SEQ=${SEQ:-64}
LR=${LR:-1e-4} INTERVAL=${INTERVAL:-5} THREADS=${THREADS:-2}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/compare.XXXXXX")}
mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS
command -v jq >/dev/null || { echo "compare.sh: jq missing (apt-get install jq)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "compare.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }

names=("FT" "LISA E+H" "LISA E+H+2L" "LISA E+H+4L" "LoRA r=8" "LoRA r=32")
lisa="--method lisa --interval $INTERVAL --gamma"
lora="--method lora --lora-rank"
args=("--method ft" "$lisa 0" "$lisa 2" "$lisa 4" "$lora 8 --lora-alpha 16" "$lora 32 --lora-alpha 64")

run() { # run INDEX ROUND
  local base=$OUT/$1.$2
  # shellcheck disable=SC2086 # args[i] is a word list
  /usr/bin/time -f %M -o "$base.rss" "$BUILD/lisa" train "$MODEL" --data "$DATA" ${args[$1]} \
    --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --lr "$LR" \
    --quiet --device cpu --log-jsonl "$base.jsonl" 2>"$base.err" \
    || { cat "$base.err" >&2; exit 1; }
}

for r in $(seq 1 "$ROUNDS"); do
  for i in "${!names[@]}"; do
    echo "round $r/$ROUNDS: ${names[$i]}" >&2
    run "$i" "$r"
  done
done

# median step_ms over all rounds' steps after WARMUP; max RSS; mean of last 10 losses
stats() {
  local i=$1 files=("$OUT/$1".*.jsonl)
  local ms loss rss
  ms=$(jq -s --argjson w "$WARMUP" '[.[] | select(.step != null and .event == null and .step >= $w)
        | .step_ms] | sort | .[length / 2 | floor]' "${files[@]}")
  loss=$(jq -s '[.[] | select(.loss != null)] | .[-10:] | (map(.loss) | add / length)' "${files[0]}")
  rss=$(cat "$OUT/$i".*.rss | sort -n | tail -1)
  echo "$ms $rss $loss"
}

# median step_ms of one round's run (file $1)
round_ms() {
  jq -s --argjson w "$WARMUP" '[.[] | select(.step != null and .event == null and .step >= $w)
        | .step_ms] | sort | .[length / 2 | floor]' "$1"
}

# the lowest and highest ratio to FT's run of the same round: how much the
# machine moved the ratio (adjacent runs share its state)
round_range() {
  local i=$1 lo="" hi="" r
  for r in $(seq 1 "$ROUNDS"); do
    local x
    x=$(awk -v a="$(round_ms "$OUT/$i.$r.jsonl")" -v b="$(round_ms "$OUT/0.$r.jsonl")" 'BEGIN { printf "%.2f", a / b }')
    lo=$(awk -v a="$x" -v b="${lo:-$x}" 'BEGIN { print (a < b ? a : b) }')
    hi=$(awk -v a="$x" -v b="${hi:-$x}" 'BEGIN { print (a > b ? a : b) }')
  done
  echo "$lo-$hi"
}

echo "$(basename "$MODEL" .yaml), B=$BATCH T=$SEQ, $STEPS steps, K=$INTERVAL, $THREADS threads," \
  "$ROUNDS rounds (median ms/step over steps >= $WARMUP); logs in $OUT"
echo
echo "| method | median ms/step | vs FT | vs FT, per round | peak RSS (MiB) | vs FT | mean loss, last 10 steps |"
echo "|---|---:|---:|---:|---:|---:|---:|"
read -r ft_ms ft_rss _ <<<"$(stats 0)"
printf 'method\tms_per_step\tpeak_rss_mib\tloss\n' >"$OUT/summary.tsv"
for i in "${!names[@]}"; do
  read -r ms rss loss <<<"$(stats "$i")"
  awk -v n="${names[$i]}" -v ms="$ms" -v rss="$rss" -v loss="$loss" -v fms="$ft_ms" -v frss="$ft_rss" \
    -v range="$(round_range "$i")" \
    'BEGIN { printf "| %s | %.1f | %.2fx | %s | %.0f | %.2fx | %.4f |\n", n, ms, ms / fms, range, rss / 1024, rss / frss, loss }'
  printf '%s\t%s\t%s\t%s\n' "${names[$i]}" "$ms" "$((rss / 1024))" "$loss" >>"$OUT/summary.tsv"
done
# The same as a figure, where matplotlib is installed (Python stays optional).
if python3 -c 'import matplotlib' 2>/dev/null; then
  echo
  python3 scripts/plot.py --compare "$OUT/summary.tsv" -o "$OUT"
fi
