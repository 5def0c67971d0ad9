#!/bin/bash
# loss-fingerprint.sh: the losses of the bundled runs, printed exactly (as
# %a hex floats), so a refactor can show they are the same to the bit:
#   scripts/loss-fingerprint.sh build/lisa > before.txt
#   (change, rebuild)
#   scripts/loss-fingerprint.sh build/lisa | diff before.txt -
# Short CPU runs of every bundled family and method: GPT-2 bytes (the demo's
# model) FT, LISA and LoRA; LLaMA and Mistral tiny; a custom activation.
set -euo pipefail
cd "$(dirname "$0")/.."
LISA=${1:-build/lisa}
DATA=data/tinyshakespeare.bin
TOK=tests/fixtures/tokens-67.bin
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# ids below 53 (the tiny Mistral vocabulary, smaller than LLaMA's), llm.c format
python3 - "$tmp/small.bin" <<'PY'
import struct, sys
ids = [(i * 37 + i // 7) % 53 for i in range(4096)]
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<256i', 20240520, 1, len(ids), *([0] * 253)))
    f.write(struct.pack('<%dH' % len(ids), *ids))
PY
SMALL=$tmp/small.bin

run() {  # name model data args...
  local name=$1 model=$2 data=$3
  shift 3
  "$LISA" train "$model" --data "$data" --device cpu --quiet --log-jsonl "$tmp/$name.jsonl" "$@" >/dev/null
  python3 - "$tmp/$name.jsonl" "$name" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l and '"event"' not in l]
print(sys.argv[2], ' '.join(float(r['loss']).hex() for r in rows))
PY
}

run bytes-ft models/gpt2-bytes.yaml $DATA --method ft --steps 6 --batch 4 --seq 64 --lr 2e-3
run bytes-lisa models/gpt2-bytes.yaml $DATA --method lisa --gamma 1 --interval 2 --steps 6 --batch 4 --seq 64 --lr 2e-3
run bytes-lora models/gpt2-bytes.yaml $DATA --method lora --steps 6 --batch 4 --seq 64 --lr 2e-3
run gpt2-tiny-lisa models/gpt2-tiny.yaml $TOK --method lisa --gamma 1 --interval 2 --steps 6 --batch 2 --seq 16
run llama-tiny-ft models/llama-tiny.yaml $SMALL --method ft --steps 6 --batch 2 --seq 16
run mistral-tiny-lisa models/mistral-tiny.yaml $SMALL --method lisa --gamma 1 --interval 2 --steps 6 --batch 2 --seq 16
run activation-ft tests/fixtures/yaml/gpt2-tiny-activation.yaml $TOK --method ft --steps 6 --batch 2 --seq 16
