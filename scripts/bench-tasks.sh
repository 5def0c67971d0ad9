#!/bin/bash
# bench-tasks.sh: the paper's comparison on instruction tasks. From one base
# (data/chat-bytes pretrained --from-scratch on the bundled Shakespeare), FT,
# LoRA and LISA (E+H+2L, bernoulli) fine-tune on scripts/make-tasks.py's
# train split for the same steps; each is then judged by its generated
# answers on the test split (scripts/eval-tasks.py, greedy exact match) and
# by its validation loss (lisa train --val-data, answers only). Prints a
# markdown table: accuracy per task and overall, val loss before and after,
# wall time, peak RSS and the run's peak tracked bytes.
#
#   scripts/bench-tasks.sh            # as in docs/benchmarks.md
#   STEPS=300 PRE_STEPS=100 scripts/bench-tasks.sh
#
# Environment [defaults]: BUILD [build], STEPS [2000], PRE_STEPS [300],
# BATCH [16], SEQ [128], LR [1e-3], LORA_LR [3e-3], LORA_RANK [16],
# INTERVAL [20], GAMMA [2], THREADS [2], OUT [a fresh temp dir].
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build} STEPS=${STEPS:-2000} PRE_STEPS=${PRE_STEPS:-300} BATCH=${BATCH:-16}
SEQ=${SEQ:-128} LR=${LR:-1e-3} LORA_LR=${LORA_LR:-3e-3} LORA_RANK=${LORA_RANK:-16}
INTERVAL=${INTERVAL:-20} GAMMA=${GAMMA:-2} THREADS=${THREADS:-2}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-tasks.XXXXXX")}
mkdir -p "$OUT"
export OMP_NUM_THREADS=$THREADS
[ -x /usr/bin/time ] || { echo "bench-tasks.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
MODEL=data/chat-bytes

python3 scripts/make-tasks.py -o "$OUT/tasks" >/dev/null
common=(--batch "$BATCH" --seq "$SEQ" --warmup 50 --schedule cosine --device cpu --quiet)
"$BUILD/lisa" train "$MODEL" --from-scratch --data data/tinyshakespeare.bin --method ft \
  --steps "$PRE_STEPS" --lr 2e-3 "${common[@]}" --save "$OUT/base" --log-jsonl "$OUT/pre.jsonl"

names=("FT" "LoRA r=$LORA_RANK" "LISA E+H+${GAMMA}L")
args=("--method ft --lr $LR" "--method lora --lora-rank $LORA_RANK --lora-alpha $((2 * LORA_RANK)) --lr $LORA_LR --merge-lora"
      "--method lisa --gamma $GAMMA --interval $INTERVAL --lisa-sampling bernoulli --lr $LR")
val() { grep '"event":"val"' "$1" | sed -n "$2" | grep -Eo '"val_loss":[^,]*' | cut -d: -f2; }
task() { grep -Eo "\"$2\": [0-9.]*" "$1" | head -1 | cut -d' ' -f2; }

echo "| method | add | reverse | sort | recall | accuracy | val loss before -> after | time (s) | peak RSS (MiB) | peak bytes (MiB) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for i in 0 1 2; do
  run=$OUT/run$i
  start=$(date +%s.%N)
  # shellcheck disable=SC2086 # args[i] is a word list
  /usr/bin/time -f %M -o "$run.rss" "$BUILD/lisa" train "$OUT/base" --data "$OUT/tasks/train.bin" \
    --val-data "$OUT/tasks/val.bin" ${args[$i]} --steps "$STEPS" "${common[@]}" \
    --save "$run" --log-jsonl "$run.jsonl"
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  python3 scripts/eval-tasks.py "$run" --tokenizer "$MODEL" --tasks "$OUT/tasks/test.jsonl" \
    --lisa "$BUILD/lisa" >"$run.eval"
  acc=$(tail -1 "$run.eval")
  peak=$(grep -E '^\{"step"' "$run.jsonl" | tail -1 | grep -Eo '"peak_bytes":[0-9]*' | cut -d: -f2)
  printf '| %s | %.2f | %.2f | %.2f | %.2f | %.3f | %.3f -> %.3f | %.0f | %.0f | %.0f |\n' "${names[$i]}" \
    "$(task "$run.eval" add)" "$(task "$run.eval" reverse)" "$(task "$run.eval" sort)" \
    "$(task "$run.eval" recall)" "$(grep -Eo '"accuracy": [0-9.]*' <<<"$acc" | cut -d' ' -f2)" \
    "$(val "$run.jsonl" 1p)" "$(val "$run.jsonl" '$p')" "$secs" \
    "$(echo "$(cat "$run.rss") / 1024" | bc)" "$(echo "$peak / 1048576" | bc)"
done
echo "(outputs in $OUT)"
