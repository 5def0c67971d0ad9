#!/bin/sh
# The paper's memory setting (batch 1, length 1024) through `lisa plan`, as
# the markdown tables of docs/memory.md: FT, LISA E+H / E+H+2L / E+H+4L and
# LoRA r128 / r256 / r512 for each model, in GiB.
#   scripts/plan-table.sh [build/lisa] [bf16|bf16-true|fp32]
set -eu
LISA=${1:-build/lisa}
DTYPE=${2:-bf16-true}
MODELS="gpt2-124m tinyllama-1.1b gemma3_text mistral-7b llama2-7b llama3-8b phi3 llama2-70b"

total() { # MODEL OPTIONS...: prints the plan's total in GiB
  model=$1; shift
  "$LISA" plan "models/$model.yaml" --batch 1 --seq 1024 --dtype "$DTYPE" --json "$@" |
    sed 's/.*"total_bytes":\([0-9]*\).*/\1/' | awk '{ printf "%.2f", $1 / 1073741824 }'
}
row() { model=$1; shift; line="| $model"; for a in "$@"; do
  # shellcheck disable=SC2086
  line="$line | $(total "$model" $a)"; done; echo "$line |"; }

echo "\`lisa plan --dtype $DTYPE --batch 1 --seq 1024\` ($(date -u +%Y-%m-%d)), GiB:"
echo
echo "| model | FT | LISA E+H | LISA E+H+2L | LISA E+H+4L | LoRA r128 | LoRA r256 | LoRA r512 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for m in $MODELS; do
  row "$m" "--method ft" "--method lisa --gamma 0" "--method lisa --gamma 2" \
    "--method lisa --gamma 4" "--method lora --lora-rank 128" "--method lora --lora-rank 256" \
    "--method lora --lora-rank 512"
done
