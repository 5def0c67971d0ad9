#!/bin/bash
# lisa eval: the loss of a model on a token file, as one JSON object. Windows
# of T + 1 tokens in order, B a batch: a one-window file gives the loss lisa
# train measures at step 0; two windows give the mean of the two; --batches
# cuts; where Python has safetensors, the families fixture's batch, written
# as two windows, gives the loss transformers computed, and with a loss mask
# beside it the masked loss (labels -100). Bad input is an error.
. "$LISA_SRC/tests/cli/lib.sh"

QWEN3=$SRC/tests/fixtures/families/qwen3
field() { grep -Eo "\"$1\":[^,}]*" | cut -d: -f2; }
close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-6 * (b < 0 ? -b : b)) }'; }
eval_() { "$LISA" eval "$@"; }

W1="5 17 3 44 60 0 29 11 38"
W2="7 7 12 50 1 33 21 9 58"
tokens $W1 >"$TMP/w1.bin"
tokens $W2 >"$TMP/w2.bin"
tokens $W1 $W2 >"$TMP/w12.bin"

out=$(eval_ "$QWEN3" --data "$TMP/w1.bin" --batch 1 --seq 8) || fail "eval of one window failed"
l1=$(field loss <<<"$out")
[ "$(field tokens <<<"$out")" = 8 ] && [ "$(field batches <<<"$out")" = 1 ] \
  && echo "ok   one window: $out" || fail "one window: $out"
"$LISA" train "$QWEN3" --quiet --device cpu --batch 1 --seq 8 --steps 1 --lr 0 \
  --data "$TMP/w1.bin" --log-jsonl "$TMP/t.jsonl" || fail "train --lr 0 failed"
lt=$(grep -m1 '"step":0' "$TMP/t.jsonl" | field loss)
close "$l1" "$lt" && echo "ok   eval = lisa train's step-0 loss ($l1, $lt)" || fail "eval $l1, train $lt"

l2=$(eval_ "$QWEN3" --data "$TMP/w2.bin" --batch 1 --seq 8 | field loss)
mean=$(awk -v a="$l1" -v b="$l2" 'BEGIN { printf "%.9g", (a + b) / 2 }')
for b in 1 2; do
  out=$(eval_ "$QWEN3" --data "$TMP/w12.bin" --batch $b --seq 8) || fail "two windows, batch $b"
  close "$(field loss <<<"$out")" "$mean" && [ "$(field tokens <<<"$out")" = 16 ] \
    && echo "ok   two windows, batch $b: the mean of both" || fail "two windows, batch $b: $out, mean $mean"
done
out=$(eval_ "$QWEN3" --data "$TMP/w12.bin" --batch 1 --seq 8 --batches 1)
close "$(field loss <<<"$out")" "$l1" && echo "ok   --batches 1: the first window only" \
  || fail "--batches 1: $out"
pp=$(field perplexity <<<"$out")
close "$pp" "$(awk -v l="$l1" 'BEGIN { printf "%.9g", exp(l) }')" && echo "ok   perplexity = exp(loss)" \
  || fail "perplexity $pp"

# The fixture's batch as two windows: transformers' loss.
if python3 -c 'import safetensors.numpy' 2>/dev/null; then
  read -r want ids < <(python3 - "$QWEN3/ref.safetensors" <<'PY'
import sys
from safetensors.numpy import load_file
r = load_file(sys.argv[1])
rows = [list(i) + [t[-1]] for i, t in zip(r["inputs"], r["targets"])]
print(repr(float(r["loss"][0])), " ".join(str(int(x)) for row in rows for x in row))
PY
)
  # shellcheck disable=SC2086
  tokens $ids >"$TMP/ref.bin"
  got=$(eval_ "$QWEN3" --data "$TMP/ref.bin" --batch 2 --seq 9 | field loss)
  awk -v a="$got" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }' \
    && echo "ok   the fixture's batch: $got, transformers $want" || fail "fixture batch: $got vs $want"
  # the masked batch (labels -100): a loss mask beside the tokens, 0 where they do not count
  want=$(python3 - "$QWEN3/masked.safetensors" "$TMP/ref.bin.mask" <<'PY'
import struct, sys
from safetensors.numpy import load_file
r = load_file(sys.argv[1])
mask = []
for t in r["targets"]:
    mask += [1] + [int(x != -100) for x in t]  # the first token of a window is never a target
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<256i", 20240801, 1, len(mask), *([0] * 253)) + bytes(mask))
print(repr(float(r["loss"][0])))
PY
)
  got=$(eval_ "$QWEN3" --data "$TMP/ref.bin" --batch 2 --seq 9) || fail "masked eval failed"
  awk -v a="$(field loss <<<"$got")" -v b="$want" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }' \
    && [ "$(field tokens <<<"$got")" = 10 ] \
    && echo "ok   the masked batch: $got, transformers (labels -100) $want" || fail "masked: $got vs $want"
  # lisa train --val-data: the masked batch at step 0 is transformers' loss,
  # and at the end the loss lisa eval gives of the saved weights
  "$LISA" train "$QWEN3" --quiet --device cpu --batch 2 --seq 9 --steps 3 --data "$TMP/w12.bin" \
    --val-data "$TMP/ref.bin" --eval-every 2 --log-jsonl "$TMP/v.jsonl" --save "$TMP/v.safetensors" \
    || fail "train --val-data failed"
  steps=$(grep '"event":"val"' "$TMP/v.jsonl" | field step | tr '\n' ' ')
  [ "$steps" = "0 2 3 " ] && echo "ok   val rows at steps 0, 2 and the end" || fail "val rows at $steps"
  v0=$(grep -m1 '"event":"val"' "$TMP/v.jsonl" | field val_loss)
  close "$v0" "$want" && echo "ok   val_loss at step 0 = transformers' masked loss ($v0)" \
    || fail "val_loss at step 0: $v0, transformers $want"
  v3=$(grep '"event":"val","step":3' "$TMP/v.jsonl" | field val_loss)
  e3=$(eval_ "$QWEN3" --weights "$TMP/v.safetensors" --data "$TMP/ref.bin" --batch 2 --seq 9 | field loss)
  close "$v3" "$e3" && echo "ok   val_loss at the end = lisa eval of the saved weights ($v3)" \
    || fail "val_loss at the end: $v3, lisa eval $e3"
  rm "$TMP/ref.bin.mask"
else
  echo "skip the transformers loss: python3 lacks safetensors"
fi

expect_error "fewer tokens than a batch" "w1.bin: 9 tokens, fewer than one batch of 2 windows of 9" \
  eval_ "$QWEN3" --data "$TMP/w1.bin" --batch 2 --seq 8
tokens 1 2 200 4 5 6 7 8 9 >"$TMP/big.bin"
expect_error "an id beyond the vocabulary" "big.bin: token id 200 at position 2 is beyond the vocabulary size 61" \
  eval_ "$QWEN3" --data "$TMP/big.bin" --batch 1 --seq 8
expect_error "no --data" "missing --data FILE" eval_ "$QWEN3"
expect_error "--eval-every without --val-data" "--eval-every needs --val-data FILE" \
  "$LISA" train "$QWEN3" --data "$TMP/w12.bin" --seq 8 --batch 1 --steps 1 --eval-every 2
expect_error "--val-data shorter than a batch" "w1.bin: 9 tokens, fewer than one batch of 2 windows of 9" \
  "$LISA" train "$QWEN3" --device cpu --quiet --data "$TMP/w12.bin" --seq 8 --batch 2 --steps 1 \
  --val-data "$TMP/w1.bin" --log-jsonl "$TMP/never.jsonl"
[ ! -e "$TMP/never.jsonl" ] && echo "ok   a bad --val-data fails before step 0 (no log started)" \
  || fail "the run started despite a bad --val-data"
expect_error "a YAML model without weights" "needs --weights" \
  eval_ "$SRC/models/gpt2-tiny.yaml" --data "$TMP/w1.bin" --batch 1 --seq 8
mkdir -p "$TMP/empty"
expect_error "lisa eval of a folder without config.json" "empty/config.json: cannot open" \
  eval_ "$TMP/empty" --data "$TMP/w1.bin"
expect_error "lisa plan of a folder without config.json" "empty/config.json: cannot open" \
  "$LISA" plan "$TMP/empty"
expect_error "lisa gen of a folder without config.json" "empty/config.json: cannot open" \
  "$LISA" gen "$TMP/empty" -o "$TMP/gen" --no-compile
# ... and exit 1, not a crash (plan and gen freed a model never loaded)
exits_1() {
  local cmd=$1; shift
  "$LISA" "$cmd" "$TMP/empty" "$@" >/dev/null 2>&1
  local rc=$?
  [ "$rc" = 1 ] && echo "ok   lisa $cmd of it exits 1" || fail "lisa $cmd: exit $rc"
}
exits_1 eval --data "$TMP/w1.bin"
exits_1 plan
exits_1 gen -o "$TMP/gen" --no-compile

finish
