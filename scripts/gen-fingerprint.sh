#!/bin/bash
# gen-fingerprint.sh: lisa gen's output for the bundled models, precisions and
# methods, as one checksum per file, so a generator refactor can show what it
# changed (nothing, or exactly the files it meant to):
#   scripts/gen-fingerprint.sh build/lisa DIR > sums.txt
set -euo pipefail
cd "$(dirname "$0")/.."
LISA=${1:-build/lisa}
OUT=${2:-$(mktemp -d)}
mkdir -p "$OUT"
gen() {  # name model args...
  local name=$1 model=$2
  shift 2
  "$LISA" gen "$model" -o "$OUT/$name" --no-compile "$@" >/dev/null
}
gen gpt2-tiny models/gpt2-tiny.yaml --batch 2 --seq 16
gen gpt2-tiny-bf16 models/gpt2-tiny.yaml --batch 2 --seq 16 --dtype bf16
gen gpt2-tiny-bf16-true models/gpt2-tiny.yaml --batch 2 --seq 16 --dtype bf16-true
gen gpt2-tiny-lora models/gpt2-tiny.yaml --batch 2 --seq 16 --method lora
gen gpt2-tiny-accum models/gpt2-tiny.yaml --batch 2 --seq 16 --grad-accum 2
gen llama-tiny models/llama-tiny.yaml --batch 2 --seq 16 --dtype bf16
gen mistral-tiny models/mistral-tiny.yaml --batch 2 --seq 16 --dtype bf16
gen activation tests/fixtures/yaml/gpt2-tiny-activation.yaml --batch 2 --seq 16
gen hd16 tests/fixtures/yaml/gpt2-tiny-hd16.yaml --batch 2 --seq 16 --dtype bf16
gen gpt2-124m models/gpt2-124m.yaml --batch 4 --seq 64 --dtype bf16
gen llama2-7b models/llama2-7b.yaml --batch 1 --seq 128 --dtype bf16
(cd "$OUT" && find . -type f ! -name compile.txt | sort | xargs sha256sum)
