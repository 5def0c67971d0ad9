#!/bin/bash
# demo.sh: the main job. Sets up and builds, then a LISA instruction
# fine-tune of the bundled small model, on the GPU if there is one, else on
# the CPU (a few minutes on two cores):
#   1. pretrain data/chat-bytes (a 4-layer byte-level GPT-2, config.json and
#      tokenizer only) from scratch on the bundled Shakespeare;
#   2. make the bundled instruction tasks (scripts/make-tasks.py: addition,
#      reversal, sorting, recall; token files with loss masks);
#   3. LISA (E+H+2L, bernoulli) on the tasks, validation loss every 500 steps;
#   4. task accuracy before and after (greedy answers through lisa sample),
#      and a few sampled answers.
# Extra arguments go to the LISA run's `lisa train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
mkdir -p out
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
MODEL=data/chat-bytes
echo "== 1. pretraining $MODEL from scratch on data/tinyshakespeare.bin"
./build/lisa train "$MODEL" --from-scratch --data data/tinyshakespeare.bin --method ft \
  --steps 300 --batch 16 --seq 128 --lr 2e-3 --warmup 20 --schedule cosine --device auto \
  --log-jsonl out/pretrain.jsonl --save out/base
echo "== 2. instruction tasks"
python3 scripts/make-tasks.py -o out/tasks
echo "== 3. LISA fine-tune (embedding, head and 2 of 4 blocks, redrawn every 20 steps)"
./build/lisa train out/base --data out/tasks/train.bin --val-data out/tasks/val.bin \
  --eval-every 500 --method lisa --gamma 2 --interval 20 --lisa-sampling bernoulli \
  --steps 2000 --batch 16 --seq 128 --lr 1e-3 --warmup 50 --schedule cosine --device auto \
  --log-jsonl out/lisa.jsonl --save out/lisa "$@"
echo "== 4. task accuracy (greedy, exact match) before and after"
echo "-- before (the pretrained base):"
python3 scripts/eval-tasks.py out/base --tokenizer "$MODEL" --tasks out/tasks/test.jsonl --limit 20
echo "-- after LISA, with a few answers:"
python3 scripts/eval-tasks.py out/lisa --tokenizer "$MODEL" --tasks out/tasks/test.jsonl --limit 20 \
  --show 2
echo "-- a sampled answer (temperature 0.7, top-p 0.9):"
./build/lisa sample out/lisa --chat --prompt "Reverse the letters: lisa" --temperature 0.7 \
  --top-p 0.9 --seed 1 --max-new-tokens 12
echo "logs: out/pretrain.jsonl out/lisa.jsonl (val rows: \"event\":\"val\")   model: out/lisa/"
