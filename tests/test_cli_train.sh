#!/bin/bash
# lisa train end to end on the tiny GPT-2: JSONL rows carry the contract's
# fields, the loss falls, a run is reproducible from its seed, and a saved
# checkpoint loads back and saves bit-identically.
. "$LISA_SRC/tests/lib.sh"

TINY=$SRC/models/gpt2-tiny.yaml
TOKENS=$SRC/tests/fixtures/tokens-67.bin
run() { "$LISA" train "$TINY" --data "$TOKENS" --device cpu --quiet --batch 4 --seq 16 --lr 1e-2 "$@"; }

run --steps 40 --log-jsonl "$TMP/a.jsonl" --save "$TMP/a.safetensors" || fail "training run failed"
rows=$(grep -c '"step"' "$TMP/a.jsonl")
[ "$rows" -eq 41 ] || fail "expected 40 step rows and a checkpoint event, got $rows lines with step"
for key in step loss lr active step_ms tokens_per_s peak_bytes; do
  n=$(grep -c "\"$key\":" "$TMP/a.jsonl")
  [ "$n" -ge 40 ] || fail "key $key in only $n rows"
done
grep -q '"active":\[0,1\]' "$TMP/a.jsonl" || fail "ft must list every block as active"
grep -q '"event":"checkpoint"' "$TMP/a.jsonl" || fail "no checkpoint event"
first=$(grep -o '"loss":[0-9.e+-]*' "$TMP/a.jsonl" | head -5 | cut -d: -f2 | awk '{s+=$1} END {print s/NR}')
last=$(grep -o '"loss":[0-9.e+-]*' "$TMP/a.jsonl" | tail -5 | cut -d: -f2 | awk '{s+=$1} END {print s/NR}')
awk -v f="$first" -v l="$last" 'BEGIN { exit !(l < 0.7 * f) }' \
  || fail "loss did not fall: first 5 steps $first, last 5 $last"
echo "loss: first 5 steps $first, last 5 $last"

# Same seed, same run.
run --steps 40 --log-jsonl "$TMP/b.jsonl" || fail "second run failed"
diff <(grep -o '"loss":[^,]*' "$TMP/a.jsonl") <(grep -o '"loss":[^,]*' "$TMP/b.jsonl") >/dev/null \
  || fail "same seed gave different losses"

# Load, then save without training: bit-identical file.
run --steps 0 --weights "$TMP/a.safetensors" --save "$TMP/c.safetensors" || fail "reload failed"
cmp -s "$TMP/a.safetensors" "$TMP/c.safetensors" || fail "save -> load -> save is not bit-exact"

# Continuing from the checkpoint starts at the trained loss, not from scratch.
run --steps 1 --weights "$TMP/a.safetensors" --log-jsonl "$TMP/d.jsonl" || fail "continue failed"
cont=$(grep -o '"loss":[0-9.e+-]*' "$TMP/d.jsonl" | head -1 | cut -d: -f2)
awk -v c="$cont" -v f="$first" 'BEGIN { exit !(c < 0.7 * f) }' || fail "loaded weights not used: $cont"

# LISA: one of the two blocks per period of 3 steps, listed in every row.
run --steps 9 --method lisa --gamma 1 --interval 3 --log-jsonl "$TMP/l.jsonl" || fail "lisa run failed"
n_one=$(grep -cE '"active":\[[01]\]' "$TMP/l.jsonl")
[ "$n_one" -eq 9 ] || fail "expected 9 rows with one active block, got $n_one"
for p in 0 3 6; do # the set holds within each period
  sets=$(sed -n "$((p + 1)),$((p + 3))p" "$TMP/l.jsonl" | grep -o '"active":\[[0-9]\]' | sort -u | wc -l)
  [ "$sets" -eq 1 ] || fail "active set changed inside the period starting at step $p"
done

# A Lua policy shipped with the project runs end to end.
run --steps 4 --method lisa --gamma 1 --interval 2 --lua "$SRC/models/policies/top_grad_norm.lua" \
  --log-jsonl "$TMP/p.jsonl" || fail "lua policy run failed"
[ "$(grep -c '"active":\[' "$TMP/p.jsonl")" -eq 4 ] || fail "lua policy run logged no active sets"

finish
