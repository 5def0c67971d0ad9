#!/bin/bash
# Hostile files and accidents (issue 12): weights and optimizer state that
# are not finite are refused at load; a step that goes non-finite ends the
# run naming it, logs null and saves nothing over good files; the state
# folder's cleanup removes only our own folders; the JSONL is never opened
# through a link, fails loudly on a full disk and is continued, not cut, on
# --resume; an index cannot name a shard outside its folder; a sharded save
# that fails midway leaves the earlier save whole.
. "$LISA_SRC/tests/cli/lib.sh"

TINY=$SRC/models/gpt2-tiny.yaml
TOKENS=$SRC/tests/fixtures/tokens-67.bin
WEIGHTS=$SRC/tests/fixtures/gpt2-tiny.safetensors
run() { "$LISA" train "$TINY" --data "$TOKENS" --device cpu --quiet --batch 4 --seq 16 --lr 1e-2 "$@"; }
rows() { grep -E '^\{"step":' "$1" | sed -E 's/,"step_ms".*//'; }

# put_f32 FILE TENSOR HEX [N]: overwrite the first N (16) values of TENSOR's
# data with the 4 little-endian bytes HEX (e.g. '\x00\x00\xc0\x7f', a NaN).
put_f32() {
  local file=$1 tensor=$2 bytes=$3 count=${4:-16} hl begin
  hl=$(od -An -tu8 -N8 "$file" | tr -d ' ')
  begin=$(tail -c +9 "$file" | head -c "$hl" | grep -ao "\"$tensor\":{[^}]*}" \
    | sed -E 's/.*"data_offsets":\[([0-9]+),.*/\1/')
  [ -n "$begin" ] || { fail "no tensor $tensor in $file"; return; }
  for _ in $(seq "$count"); do printf "$bytes"; done \
    | dd of="$file" bs=1 seek=$((8 + hl + begin)) conv=notrunc 2>/dev/null
}

# ---- not finite -------------------------------------------------------------
cp "$WEIGHTS" "$TMP/nan.safetensors"
put_f32 "$TMP/nan.safetensors" transformer.h.0.attn.c_attn.weight '\x00\x00\xc0\x7f'
expect_error "a NaN weight" "nan.safetensors: tensor 'transformer.h.0.attn.c_attn.weight' holds nan at element 0" \
  run --steps 1 --weights "$TMP/nan.safetensors"
cp "$WEIGHTS" "$TMP/inf.safetensors"
put_f32 "$TMP/inf.safetensors" transformer.wte.weight '\x00\x00\x80\xff'
expect_error "an infinite weight" "tensor 'transformer.wte.weight' holds -inf at element 0" \
  run --steps 1 --weights "$TMP/inf.safetensors"

# Finite but huge weights overflow in the forward pass: loss NaN at step 0.
cp "$WEIGHTS" "$TMP/huge.safetensors"
put_f32 "$TMP/huge.safetensors" transformer.h.0.attn.c_attn.bias '\xff\xff\x7f\x7f'
run --steps 2 --save-state "$TMP/s" --save "$TMP/w.safetensors" || fail "good run failed"
cp -r "$TMP/s" "$TMP/s.before"; cp "$TMP/w.safetensors" "$TMP/w.before"
expect_error "a step that goes NaN" \
  "step 0: the loss is -?nan; stopped, nothing saved \(the last good state stays in $TMP/s\)" \
  run --steps 4 --weights "$TMP/huge.safetensors" --save-state "$TMP/s" --save "$TMP/w.safetensors" \
  --log-jsonl "$TMP/nan.jsonl"
grep -q '^{"step":0,"loss":null,"lr":[0-9.e-]*,"active":\[[0-9,]*\],"grad_norm":null,' "$TMP/nan.jsonl" \
  || fail "the NaN step's row is not JSON with null: $(head -c 200 "$TMP/nan.jsonl")"
diff -r "$TMP/s.before" "$TMP/s" >/dev/null || fail "the NaN run changed the saved state"
cmp -s "$TMP/w.before" "$TMP/w.safetensors" || fail "the NaN run changed the saved weights"

# Tampered optimizer state: NaN moments, negative second moments.
for case in "adamw.m:\x00\x00\xc0\x7f:tensor 'adamw.m' holds nan at element 0" \
            "adamw.v:\x00\x00\x80\xbf:tensor 'adamw.v' holds -1 at element 0: second moments cannot be negative"; do
  IFS=: read -r tensor bytes want <<<"$case"
  rm -rf "$TMP/t"; cp -r "$TMP/s.before" "$TMP/t"
  put_f32 "$TMP/t/step-2/optimizer.safetensors" "$tensor" "$bytes"
  expect_error "tampered $tensor" "$want" run --steps 4 --resume "$TMP/t"
done

# An AdamW step count beyond the steps run (I32 99 in adamw.t[0]).
rm -rf "$TMP/t"; cp -r "$TMP/s.before" "$TMP/t"
put_f32 "$TMP/t/step-2/optimizer.safetensors" adamw.t '\x63\x00\x00\x00' 1
expect_error "tampered adamw.t" "adamw.t\[0\] = 99, more than the 2 steps run" run --steps 4 --resume "$TMP/t"

# ---- the state folder: only our own folders go -------------------------------
mkdir -p "$TMP/theirs" "$TMP/c/step-7"
echo keep >"$TMP/theirs/model.safetensors"; echo keep >"$TMP/theirs/lisa-state"
echo mine >"$TMP/c/step-7/notes.txt"
ln -s "$TMP/theirs" "$TMP/c/step-99"
run --steps 2 --save-state "$TMP/c" || fail "save next to foreign step folders failed"
run --steps 4 --resume "$TMP/c" --save-state "$TMP/c" || fail "second save failed"
[ -f "$TMP/theirs/model.safetensors" ] && [ -f "$TMP/theirs/lisa-state" ] \
  || fail "cleanup followed the step-99 link and removed files it points to"
[ -L "$TMP/c/step-99" ] || fail "cleanup removed the step-99 link"
[ -f "$TMP/c/step-7/notes.txt" ] || fail "cleanup removed the user's step-7 folder"
[ ! -e "$TMP/c/step-2" ] || fail "cleanup left our own step-2"
ln -s "$TMP/theirs" "$TMP/c/step-6"
expect_error "a link where a state goes" "$TMP/c/step-6: exists and was not written by lisa" \
  run --steps 6 --resume "$TMP/c" --save-state "$TMP/c"
[ "$(cat "$TMP/theirs/model.safetensors")" = keep ] || fail "a save wrote through the step-6 link"

# ---- the JSONL -------------------------------------------------------------------
echo precious >"$TMP/target.txt"; ln -s "$TMP/target.txt" "$TMP/link.jsonl"
expect_error "--log-jsonl through a link" "link.jsonl: is a symbolic link" \
  run --steps 1 --log-jsonl "$TMP/link.jsonl"
[ "$(cat "$TMP/target.txt")" = precious ] || fail "--log-jsonl truncated the link's target"
if [ -w /dev/full ]; then
  expect_error "--log-jsonl on a full disk" "/dev/full: cannot write the log: No space left" \
    run --steps 2 --log-jsonl /dev/full
fi
# Resuming with the same log keeps the rows before the state and continues.
run --steps 8 --log-jsonl "$TMP/straight.jsonl" || fail "straight run failed"
run --steps 4 --save-state "$TMP/l" --log-jsonl "$TMP/l.jsonl" || fail "first half failed"
cp -r "$TMP/l" "$TMP/l4"
run --steps 8 --resume "$TMP/l" --save-state "$TMP/l" --log-jsonl "$TMP/l.jsonl" || fail "resume failed"
run --steps 8 --resume "$TMP/l4" --log-jsonl "$TMP/l.jsonl" || fail "second resume from step 4 failed"
diff <(rows "$TMP/straight.jsonl") <(rows "$TMP/l.jsonl") >/dev/null \
  || fail "the resumed log is not the straight run's 8 rows once each: $(rows "$TMP/l.jsonl" | cut -c1-20 | tr '\n' ' ')"
grep -q '"event":"checkpoint","step":4' "$TMP/l.jsonl" || fail "the resumed log lost the step-4 event"

# ---- shard indexes and sharded saves ------------------------------------------------
mkdir -p "$TMP/ix"
printf '{"metadata":{},"weight_map":{"transformer.wte.weight":"../outside/x.safetensors"}}' \
  >"$TMP/ix/model.safetensors.index.json"
expect_error "an index naming ../outside" \
  "weight_map entry 'transformer.wte.weight' names shard '../outside/x.safetensors': a shard must be a plain file name" \
  run --steps 1 --weights "$TMP/ix/model.safetensors.index.json"

run --steps 1 --save "$TMP/sh" --max-shard-size 0.00002 || fail "sharded save failed"
ls "$TMP/sh" | grep -q 'model-00001-of-0000[2-9].safetensors' || fail "no shards: $(ls "$TMP/sh")"
echo '{}' >"$TMP/sh/config.json"
cp -r "$TMP/sh" "$TMP/sh.before"
(trap '' XFSZ; ulimit -f 18; run --steps 2 --save "$TMP/sh" --max-shard-size 0.00002) 2>/dev/null \
  && fail "the sharded save succeeded under an 18 KiB file limit (the third shard is 19 KiB)"
for f in $(ls "$TMP/sh.before"); do
  cmp -s "$TMP/sh.before/$f" "$TMP/sh/$f" || fail "a failed sharded save changed $f"
done
run --steps 1 --weights "$TMP/sh" >/dev/null || fail "the earlier sharded save no longer loads"
run --steps 2 --save "$TMP/sh" --max-shard-size 0.00002 || fail "the next sharded save failed"
ls "$TMP/sh" | grep -q '\.1\.safetensors$' || fail "the next save reused the index's shard names"
[ "$(ls "$TMP/sh" | grep -c 'safetensors$')" -eq "$(ls "$TMP/sh.before" | grep -c 'safetensors$')" ] \
  || fail "stale shards left: $(ls "$TMP/sh")"
[ -f "$TMP/sh/config.json" ] || fail "a sharded save removed the folder's config.json"
run --steps 1 --weights "$TMP/sh" >/dev/null || fail "the new sharded save does not load"

# ---- sizes ------------------------------------------------------------------------
# Widths whose products leave 64 bits are refused, not wrapped into a plan.
sed 's/  n_embd: 24/  n_embd: 4294967296/; s/  n_head: 3/  n_head: 1/' "$TINY" >"$TMP/wide.yaml"
expect_error "a 2^32-wide model" "wide.yaml:[0-9]+:[0-9]+: param 'wte' has 67 x 4294967296 elements|wide.yaml:[0-9]+:[0-9]+: param '[a-z0-9_]+' has [0-9]+ x [0-9]+ elements, more than 2\^40" \
  "$LISA" plan "$TMP/wide.yaml"
sed 's/  n_layer: 2/  n_layer: 1000000000/; s/  n_embd: 24/  n_embd: 4096/; s/  n_head: 3/  n_head: 32/' "$TINY" >"$TMP/deep.yaml"
expect_error "a model of more than 2^42 parameters" "deep.yaml:[0-9]+: param '[a-z0-9_]+': the model would hold more than 2\^42 parameters" \
  "$LISA" plan "$TMP/deep.yaml"
expect_error "rows beyond 2^31" "batch 2097152 x sequence 1024: the rows must number 1 to 2\^31-1" \
  "$LISA" plan "$SRC/models/gpt2-124m.yaml" --batch 2097152 --seq 1024

finish
