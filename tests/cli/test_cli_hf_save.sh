#!/bin/bash
# --save DIR of a model that came from a Hugging Face folder writes that
# folder again: its config.json and tokenizer files carried over, the trained
# weights under the checkpoint's names (one file, or shards with
# --max-shard-size). lisa reads the folder back to the loss it trained to;
# where Python has torch and transformers, AutoModelForCausalLM loads it and
# gives the same loss (that part is skipped otherwise). PATH.safetensors
# stays one file. LoRA without --merge-lora writes a PEFT adapter folder,
# which peft loads onto the base model to the loss lisa measured.
. "$LISA_SRC/tests/cli/lib.sh"

QWEN3=$SRC/tests/fixtures/families/qwen3
rows() { grep -E '^\{"step":' "$1"; }
loss_of() { rows "$1" | head -1 | grep -Eo '"loss":[^,]*' | cut -d: -f2; }
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

# --save-dtype bf16: the same tensors in BF16 (round to nearest), half the
# bytes, a loss near the F32 save's. Training from that folder again saves
# BF16 by itself (auto: the starting weights' dtype); with --lr 0 the
# weights come back bit for bit (bf16 -> f32 -> bf16 is exact), also sharded.
train "$TMP/src" --data "$TMP/train.bin" --steps 4 --lr 1e-2 --save "$TMP/bf16" \
  --save-dtype bf16 || fail "--save-dtype bf16 failed"
bf16_header=$(head -c 20000 "$TMP/bf16/model.safetensors" | tr -c '[:print:]' ' ')
f32_size=$(stat -c %s "$TMP/out/model.safetensors"); bf16_size=$(stat -c %s "$TMP/bf16/model.safetensors")
grep -q '"dtype":"BF16"' <<<"$bf16_header" && ! grep -q '"dtype":"F32"' <<<"$bf16_header" \
  && [ $((bf16_size * 2)) -lt $((f32_size + 20000)) ] && [ $((bf16_size * 2)) -gt $((f32_size - 20000)) ] \
  && echo "ok   --save-dtype bf16: BF16 tensors, half the bytes ($bf16_size of $f32_size)" \
  || fail "bf16 save: sizes $bf16_size/$f32_size, header $bf16_header"
bf16_loss=$(measure "$TMP/bf16")
awk -v a="$after" -v b="$bf16_loss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "" && d < 0.01 * a && a != b) }' \
  && echo "ok   the bf16 folder measures $bf16_loss (f32: $after)" || fail "bf16 loss '$bf16_loss', f32 '$after'"
train "$TMP/bf16" --data "$TMP/train.bin" --steps 1 --lr 0 --weight-decay 0 --save "$TMP/bf16-again" \
  && cmp -s "$TMP/bf16/model.safetensors" "$TMP/bf16-again/model.safetensors" \
  && echo "ok   auto saves a bf16 start in bf16: bit for bit after --lr 0" \
  || fail "bf16 -> auto save differs"
train "$TMP/bf16" --data "$TMP/train.bin" --steps 1 --lr 0 --weight-decay 0 --save "$TMP/bf16-f32" \
  --save-dtype f32 && [ "$(measure "$TMP/bf16-f32")" = "$bf16_loss" ] \
  && grep -q '"dtype":"F32"' <(head -c 20000 "$TMP/bf16-f32/model.safetensors" | tr -c '[:print:]' ' ') \
  && echo "ok   --save-dtype f32 from bf16 weights: F32, the same loss" || fail "bf16 -> f32 save"
train "$TMP/bf16" --data "$TMP/train.bin" --steps 1 --lr 0 --weight-decay 0 --save "$TMP/bf16-sharded" \
  --max-shard-size 0.00002 && [ "$(measure "$TMP/bf16-sharded")" = "$bf16_loss" ] \
  && grep -q '"dtype":"BF16"' <(head -c 4000 "$TMP/bf16-sharded/model-00001-of-"*.safetensors | tr -c '[:print:]' ' ') \
  && echo "ok   a sharded bf16 start saves bf16 shards of the same weights" || fail "bf16 sharded save"
expect_error "--save-dtype without --save" "--save-dtype needs --save" \
  train "$TMP/src" --data "$TMP/train.bin" --steps 1 --save-dtype bf16

# LoRA to a folder: the adapters alone, as a PEFT adapter folder; the same
# run to one file keeps base and adapters, whose loss lisa measures.
train "$TMP/src" --data "$TMP/train.bin" --steps 3 --lr 1e-2 --method lora --lora-rank 4 \
  --save "$TMP/lora" || fail "LoRA to a PEFT folder failed"
train "$TMP/src" --data "$TMP/train.bin" --steps 3 --lr 1e-2 --method lora --lora-rank 4 \
  --save "$TMP/lora.safetensors" || fail "LoRA to a file failed"
train "$TMP/src" --method lora --lora-rank 4 --weights "$TMP/lora.safetensors" --data "$TMP/one.bin" \
  --steps 1 --lr 0 --log-jsonl "$TMP/l.jsonl" >/dev/null
lora_loss=$(loss_of "$TMP/l.jsonl")
# GPT-2: Conv1D weights (fan_in_fan_out) and modules under "transformer."
cp -r "$SRC/tests/fixtures/families/gpt2" "$TMP/gpt2"
rm "$TMP/gpt2/ref.safetensors" "$TMP/gpt2/masked.safetensors"
train "$TMP/gpt2" --data "$TMP/train.bin" --steps 3 --lr 1e-2 --method lora --lora-rank 2 \
  --lora-alpha 5 --save "$TMP/gpt2-lora" || fail "GPT-2 LoRA to a PEFT folder failed"
train "$TMP/gpt2" --data "$TMP/train.bin" --steps 3 --lr 1e-2 --method lora --lora-rank 2 \
  --lora-alpha 5 --save "$TMP/gpt2-lora.safetensors" || fail "GPT-2 LoRA to a file failed"
train "$TMP/gpt2" --method lora --lora-rank 2 --lora-alpha 5 --weights "$TMP/gpt2-lora.safetensors" \
  --data "$TMP/one.bin" --steps 1 --lr 0 --log-jsonl "$TMP/g.jsonl" >/dev/null
gpt2_lora_loss=$(loss_of "$TMP/g.jsonl")
grep -q '"fan_in_fan_out":	true' "$TMP/gpt2-lora/adapter_config.json" \
  && head -c 20000 "$TMP/gpt2-lora/adapter_model.safetensors" | grep -aq '"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"' \
  && echo "ok   GPT-2's PEFT folder: fan_in_fan_out, transformer.h.* modules" \
  || fail "GPT-2 PEFT folder: $(cat "$TMP/gpt2-lora/adapter_config.json")"
header=$(head -c 20000 "$TMP/lora/adapter_model.safetensors" | tr -c '[:print:]' ' ')
[ -f "$TMP/lora/adapter_config.json" ] && grep -q '"base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"' <<<"$header" \
  && ! grep -q '"model.embed_tokens' <<<"$header" && grep -q '"r":	4' "$TMP/lora/adapter_config.json" \
  && echo "ok   LoRA without merging: a PEFT folder of the adapters alone" \
  || fail "PEFT folder: $(ls "$TMP/lora") $header"
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
import os
if os.environ.get("PEFT_BASE"):  # an adapter folder onto its base model
    from peft import PeftModel
    base = AutoModelForCausalLM.from_pretrained(os.environ["PEFT_BASE"], dtype=torch.float32)
    model = PeftModel.from_pretrained(base, folder).eval()
else:
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
  hf_loss "$TMP/bf16" "$bf16_loss" || fail "transformers load-back (a BF16 save)"
  if python3 -c 'import peft' 2>/dev/null; then
    PEFT_BASE=$TMP/src hf_loss "$TMP/lora" "$lora_loss" || fail "peft load of the adapter folder"
    PEFT_BASE=$TMP/gpt2 hf_loss "$TMP/gpt2-lora" "$gpt2_lora_loss" || fail "peft load of GPT-2's adapters"
  else
    echo "skip the PEFT load: python3 lacks peft"
  fi
else
  echo "skip transformers load-back: python3 lacks torch or transformers"
fi

finish
