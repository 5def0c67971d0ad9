#!/bin/bash
# lisa train --method lora end to end on the tiny GPT-2: every block is
# listed active, the loss falls, --save keeps the adapters under PEFT names,
# --merge-lora writes a plain base checkpoint that gives the adapted model's
# loss when loaded into the base model, and LoRA's option errors.
. "$LISA_SRC/tests/cli/lib.sh"

TINY=$SRC/models/gpt2-tiny.yaml
TOKENS=$SRC/tests/fixtures/tokens-67.bin
BASE=$SRC/tests/fixtures/gpt2-tiny.safetensors
run() { "$LISA" train "$TINY" --data "$TOKENS" --device cpu --quiet --batch 4 --seq 16 --lr 1e-2 "$@"; }
first_loss() { grep -o '"loss":[0-9.e+-]*' "$1" | head -1 | cut -d: -f2; }

run --method lora --lora-rank 4 --steps 30 --weights "$BASE" --log-jsonl "$TMP/a.jsonl" \
  --save "$TMP/adapters.safetensors" || fail "lora run failed"
grep -q '"active":\[0,1\]' "$TMP/a.jsonl" || fail "lora must list every block as active"
first=$(first_loss "$TMP/a.jsonl")
last=$(grep -o '"loss":[0-9.e+-]*' "$TMP/a.jsonl" | tail -1 | cut -d: -f2)
awk -v f="$first" -v l="$last" 'BEGIN { exit !(l < 0.9 * f) }' || fail "loss did not fall: $first -> $last"
echo "lora loss $first -> $last"
# safetensors headers are plain JSON: tensor names can be grepped
n=$(head -c 20000 "$TMP/adapters.safetensors" | grep -ao 'h\.[01]\.[a-z_.]*\.lora_[AB]\.weight' | sort -u | wc -l)
[ "$n" -eq 16 ] || fail "expected 16 adapter tensors (4 linears x A, B x 2 blocks), got $n"

# Merged: no adapter tensors, and the base model loads it and computes the
# adapted model's loss (same first batch: batches depend on seed and step).
run --method lora --lora-rank 4 --steps 0 --weights "$TMP/adapters.safetensors" \
  --log-jsonl /dev/null --save "$TMP/merged.safetensors" --merge-lora || fail "merge failed"
head -c 20000 "$TMP/merged.safetensors" | grep -aq lora_ && fail "merged file has adapter tensors"
run --method lora --lora-rank 4 --steps 1 --weights "$TMP/adapters.safetensors" \
  --log-jsonl "$TMP/u.jsonl" || fail "adapter reload failed"
run --steps 1 --weights "$TMP/merged.safetensors" --log-jsonl "$TMP/m.jsonl" || fail "merged load failed"
u=$(first_loss "$TMP/u.jsonl"); m=$(first_loss "$TMP/m.jsonl")
awk -v u="$u" -v m="$m" 'BEGIN { d = u - m; if (d < 0) d = -d; exit !(d <= 1e-5 * u) }' \
  || fail "merged model loss $m differs from the adapter model's $u"
awk -v u="$u" -v f="$first" 'BEGIN { exit !(u < f) }' || fail "adapters not loaded: $u vs $first"
echo "first-step loss: adapters $u, merged $m"

# --save-state / --resume: the adapters and their AdamW state come back.
run --method lora --steps 6 --weights "$BASE" --log-jsonl "$TMP/s.jsonl" || fail "straight run failed"
run --method lora --steps 3 --weights "$BASE" --save-state "$TMP/state" || fail "first half failed"
run --method lora --steps 6 --resume "$TMP/state" --log-jsonl "$TMP/r.jsonl" || fail "resume failed"
diff <(grep -o '"loss":[^,]*' "$TMP/s.jsonl" | tail -3) <(grep -o '"loss":[^,]*' "$TMP/r.jsonl") \
  >/dev/null || fail "resumed lora run differs from the straight run"
expect_error resume_other_rank "saved with lora_rank 8, this run has lora_rank 4" \
  run --method lora --lora-rank 4 --steps 6 --resume "$TMP/state"

expect_error lora_option_with_ft "--lora-rank applies to --method lora" \
  run --steps 1 --lora-rank 4
expect_error lisa_option_with_lora "--gamma applies to --method lisa" \
  run --steps 1 --method lora --gamma 1
expect_error merge_needs_save "--merge-lora needs --save PATH" run --steps 1 --method lora --merge-lora
expect_error unknown_target "LoRA target 'qkv_w' is not a block linear weight \(these are: attn_w, aproj_w, fc_w, mproj_w\)" \
  run --steps 1 --method lora --lora-targets attn_w,qkv_w
expect_error bad_rank "--lora-rank: '0' is not an integer in \[1, 65536\]" run --steps 1 --method lora --lora-rank 0
finish
