#!/bin/bash
# --save DIR of a model that came from a Hugging Face folder writes that
# folder again: its config.json and tokenizer files carried over, the trained
# weights under the checkpoint's names (one file, or shards with
# --max-shard-size). lisa reads the folder back to the loss it trained to;
# where Python has torch and transformers, AutoModelForCausalLM loads it and
# gives the same loss (that part is skipped otherwise). PATH.safetensors
# stays one file.
. "$LISA_SRC/tests/cli/lib.sh"

QWEN3=$SRC/tests/fixtures/families/qwen3
rows() { grep -E '^\{"step":' "$1"; }
loss_of() { rows "$1" | head -1 | grep -Eo '"loss":[^,]*' | cut -d: -f2; }
# llm.c token file: the header, then uint16 ids ($@)
tokens() {
  printf '\x88\xd8\x34\x01\x01\x00\x00\x00'
  printf "\\x$(printf %02x $(($# % 256)))\\x$(printf %02x $(($# / 256)))\\x00\\x00"
  head -c $((253 * 4)) /dev/zero
  for id in "$@"; do printf "\\x$(printf %02x "$id")\\x00"; done
}
# 400 ids below 61 (the fixtures' vocabulary) to train on; one window of 9
# to measure: with --seq 8 every batch row is that sequence.
for i in $(seq 0 399); do echo $(((i * 37 + i / 7) % 61)); done >"$TMP/ids"
tokens $(cat "$TMP/ids") >"$TMP/train.bin"
WINDOW="5 17 3 44 60 0 29 11 38"
tokens $WINDOW >"$TMP/one.bin"
train() { "$LISA" train --quiet --device cpu --batch 2 --seq 8 "$@"; }
# measure FOLDER: the loss of its weights on the window (no update)
measure() { train "$1" --data "$TMP/one.bin" --steps 1 --lr 0 --log-jsonl "$TMP/m.jsonl" >/dev/null && loss_of "$TMP/m.jsonl"; }

cp -r "$QWEN3" "$TMP/src"
rm "$TMP/src/ref.safetensors"
printf '{"version": "1.0", "model": {"type": "BPE"}}\n' >"$TMP/src/tokenizer.json"
printf '{"model_max_length": 64}\n' >"$TMP/src/tokenizer_config.json"
train "$TMP/src" --data "$TMP/train.bin" --steps 4 --lr 1e-2 --save "$TMP/out" \
  || fail "training the qwen3 folder with --save DIR failed"
for f in config.json tokenizer.json tokenizer_config.json; do
  cmp -s "$TMP/src/$f" "$TMP/out/$f" && echo "ok   $f carried over" || fail "$f not carried over"
done
[ -f "$TMP/out/model.safetensors" ] && [ ! -e "$TMP/out/ref.safetensors" ] \
  && echo "ok   weights in model.safetensors, nothing else copied" || fail "folder contents: $(ls "$TMP/out")"
header=$(head -c 20000 "$TMP/out/model.safetensors" | tr -c '[:print:]' ' ')
grep -q '"model.layers.1.self_attn.q_norm.weight"' <<<"$header" && ! grep -q lm_head <<<"$header" \
  && echo "ok   Hugging Face names, the tied head not written" || fail "tensor names: $header"

before=$(measure "$TMP/src"); after=$(measure "$TMP/out")
[ -n "$before" ] && [ -n "$after" ] && [ "$before" != "$after" ] \
  && echo "ok   the saved folder holds the trained weights: loss $before -> $after" \
  || fail "losses before/after: '$before' '$after'"
# The state the run ended in gives the same loss as the folder it saved.
train "$TMP/src" --data "$TMP/train.bin" --steps 4 --lr 1e-2 --save "$TMP/out.safetensors" \
  || fail "single-file save failed"
train "$TMP/src" --weights "$TMP/out.safetensors" --data "$TMP/one.bin" --steps 1 --lr 0 \
  --log-jsonl "$TMP/f.jsonl" >/dev/null
[ "$(loss_of "$TMP/f.jsonl")" = "$after" ] && echo "ok   folder = .safetensors file of the same run" \
  || fail "folder loss $after, file loss $(loss_of "$TMP/f.jsonl")"

# Shards: the same weights, an index, the same files beside them.
train "$TMP/src" --data "$TMP/train.bin" --steps 4 --lr 1e-2 --save "$TMP/sharded" \
  --max-shard-size 0.00002 || fail "sharded folder save failed"
[ -f "$TMP/sharded/model.safetensors.index.json" ] && cmp -s "$TMP/src/config.json" "$TMP/sharded/config.json" \
  && [ "$(measure "$TMP/sharded")" = "$after" ] && echo "ok   sharded folder: index, config.json, same loss" \
  || fail "sharded folder: $(ls "$TMP/sharded")"

# LoRA: a model folder needs the adapters merged in.
expect_error "LoRA to a folder without --merge-lora" "--merge-lora \(base and adapters go to --save FILE.safetensors\)" \
  train "$TMP/src" --data "$TMP/train.bin" --method lora --save "$TMP/lora"
train "$TMP/src" --data "$TMP/train.bin" --steps 3 --lr 1e-2 --method lora --merge-lora \
  --save "$TMP/merged" || fail "LoRA --merge-lora to a folder failed"
header=$(head -c 20000 "$TMP/merged/model.safetensors" | tr -c '[:print:]' ' ')
! grep -q lora <<<"$header" && [ "$(measure "$TMP/merged")" != "$before" ] \
  && echo "ok   LoRA merged into a model folder" || fail "merged LoRA folder: $header"

# GPT-NeoX: its fused query_key_value is kept de-interleaved (q, k, v of all
# heads) and written back interleaved per head, as the checkpoint had it.
cp -r "$SRC/tests/fixtures/families/gpt_neox" "$TMP/neox"
rm "$TMP/neox/ref.safetensors"
train "$TMP/neox" --data "$TMP/train.bin" --steps 0 --save "$TMP/neox0" || fail "neox save failed"
cmp -s "$TMP/neox/model.safetensors" "$TMP/neox0/model.safetensors" \
  || [ "$(measure "$TMP/neox")" = "$(measure "$TMP/neox0")" ] \
  && echo "ok   gpt_neox: saved untrained, the folder loads to the same loss" \
  || fail "gpt_neox round trip changed the model"
train "$TMP/neox" --data "$TMP/train.bin" --steps 4 --lr 1e-2 --save "$TMP/neox4" \
  || fail "neox training failed"
neox_after=$(measure "$TMP/neox4")

# transformers loads each folder and gives the loss lisa measured.
# hf_loss FOLDER LISA_LOSS: transformers' loss of FOLDER on the window, within 1e-5
hf_loss() {
  python3 - "$1" "$2" $WINDOW <<'PY'
import sys, torch, torch.nn.functional as F
from transformers import AutoModelForCausalLM
folder, want, ids = sys.argv[1], float(sys.argv[2]), [int(t) for t in sys.argv[3:]]
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
x = torch.tensor([ids])
with torch.no_grad():
    logits = model(x[:, :-1]).logits
loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1)).item()
ok = abs(loss - want) <= 1e-5 * abs(want)
print(f"{'ok  ' if ok else 'FAIL'} transformers loads {folder}: loss {loss:.7f}, lisa {want:.7f}")
sys.exit(0 if ok else 1)
PY
}
if python3 -c 'import torch, transformers' 2>/dev/null; then
  hf_loss "$TMP/out" "$after" || fail "transformers load-back (qwen3)"
  hf_loss "$TMP/neox4" "$neox_after" || fail "transformers load-back (gpt_neox)"
else
  echo "skip transformers load-back: python3 lacks torch or transformers"
fi

finish
