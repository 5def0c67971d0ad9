#!/bin/bash
# demo.sh: the main job. Sets up, builds, and fine-tunes the bundled byte-level
# GPT-2 (models/gpt2-bytes.yaml) on the bundled Shakespeare text, on the GPU
# if there is one, else on the CPU. Extra arguments go to `lisa train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
./build/lisa train models/gpt2-bytes.yaml --data data/tinyshakespeare.bin \
  --method ft --steps 300 --batch 8 --seq 128 --lr 2e-3 --warmup 20 --schedule cosine \
  --device auto --log-jsonl out/demo.jsonl --save out/demo.safetensors "$@"
echo "log: out/demo.jsonl   weights: out/demo.safetensors"
