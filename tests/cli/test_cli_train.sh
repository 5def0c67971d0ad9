#!/bin/bash
# lisa train end to end on the tiny GPT-2: JSONL rows carry the contract's
# fields, the loss falls, a run is reproducible from its seed, a saved
# checkpoint loads back and saves bit-identically, and a run saved with
# --save-state and continued with --resume matches a straight run; --profile
# counts what each path runs.
. "$LISA_SRC/tests/cli/lib.sh"

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

# Sharded save (Hugging Face layout): a folder that --weights loads back.
run --steps 0 --weights "$TMP/a.safetensors" --save "$TMP/shards" --max-shard-size 0.00002 \
  || fail "sharded save failed"
[ -f "$TMP/shards/model.safetensors.index.json" ] || fail "no index in the sharded folder"
[ "$(ls "$TMP/shards" | grep -c '^model-.*-of-.*\.safetensors$')" -ge 3 ] || fail "expected >= 3 shards"
run --steps 0 --weights "$TMP/shards" --save "$TMP/e.safetensors" || fail "loading the shards failed"
cmp -s "$TMP/a.safetensors" "$TMP/e.safetensors" || fail "shards -> single file is not bit-exact"

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

# --profile: every op of the steps after the first, once per instance that ran
# it (one ACTIVE and one FROZEN block a step here), and the same losses as a
# run without it.
run --steps 6 --method lisa --gamma 1 --interval 2 --log-jsonl "$TMP/q0.jsonl" || fail "lisa run failed"
run --steps 6 --method lisa --gamma 1 --interval 2 --log-jsonl "$TMP/q.jsonl" --profile \
  >"$TMP/q.txt" || fail "--profile run failed"
grep -q "^profile of 5 steps" "$TMP/q.txt" || fail "no profile table: $(head -3 "$TMP/q.txt")"
calls() { grep '"event":"profile"' "$TMP/q.jsonl" | grep "\"path\":\"$1\"" |
  grep -o '"calls_per_step":[0-9.]*' | cut -d: -f2 | sort -u | tr '\n' ' '; }
[ "$(calls block)" = "2 " ] || fail "block forward ops ran '$(calls block)' times a step, want 2"
[ "$(calls block_active)" = "1 " ] || fail "block_active ops: '$(calls block_active)', want 1"
[ "$(calls block_frozen)" = "1 " ] || fail "block_frozen ops: '$(calls block_frozen)', want 1"
[ "$(calls optimizer)" = "1 " ] || fail "optimizer rows: '$(calls optimizer)', want 1"
grep -q '"path":"block_frozen".*linear_bwd_w' "$TMP/q.jsonl" && fail "a FROZEN block ran a dW GEMM"
losses() { grep -o '"loss":[-0-9.e]*' "$1"; }
[ "$(losses "$TMP/q.jsonl")" = "$(losses "$TMP/q0.jsonl")" ] || fail "--profile changed the losses"

# --norms-every: [embed, block 0, block 1, head] norms; null for the frozen block.
run --steps 4 --method lisa --gamma 1 --interval 4 --norms-every 2 --log-jsonl "$TMP/n.jsonl" \
  || fail "norms run failed"
[ "$(grep -c '"weight_norms":\[[0-9.e+-]*,[0-9.e+-]*,[0-9.e+-]*,[0-9.e+-]*\]' "$TMP/n.jsonl")" -eq 2 ] \
  || fail "expected weight norms of 4 parts in rows 0 and 2"
grep -q '"grad_norms":\[[0-9.e+-]*,\(null,[0-9.e+-]*\|[0-9.e+-]*,null\),[0-9.e+-]*\]' "$TMP/n.jsonl" \
  || fail "grad norms must be null exactly for the frozen block"
grep -q '"memory":{"weights":[0-9]*,"grads":[0-9]*,"optimizer":[0-9]*,"activations":[0-9]*' \
  "$TMP/n.jsonl" || fail "no memory breakdown"

# A Lua policy shipped with the project runs end to end.
run --steps 4 --method lisa --gamma 1 --interval 2 --lua "$SRC/models/policies/top_grad_norm.lua" \
  --log-jsonl "$TMP/p.jsonl" || fail "lua policy run failed"
[ "$(grep -c '"active":\[' "$TMP/p.jsonl")" -eq 4 ] || fail "lua policy run logged no active sets"

# --save-state / --resume: 4 steps, save, then on to 8 (--steps is the total)
# gives the rows of 8 straight steps; the final states are the same bytes.
# Warmup spans the resume point: the learning rate follows the absolute step.
# (Not cosine here: its horizon is --steps, so a 4-step run decays
# differently from the first half of an 8-step one; test_checkpoint resumes
# a cosine run interrupted with the same horizon.)
resume_args=(--method lisa --gamma 1 --interval 3 --warmup 6)
rows_from_4() { grep -E '^\{"step":[4-7],' "$1" | sed -E 's/,"step_ms".*//'; }
run --steps 8 "${resume_args[@]}" --save-state "$TMP/s8" --log-jsonl "$TMP/s8.jsonl" \
  || fail "straight run with --save-state failed"
run --steps 4 "${resume_args[@]}" --save-state "$TMP/s4" --log-jsonl "$TMP/s4.jsonl" \
  || fail "4-step run with --save-state failed"
[ "$(cat "$TMP/s4/latest")" = step-4 ] || fail "latest does not name step-4: $(cat "$TMP/s4/latest")"
grep -qF "{\"event\":\"checkpoint\",\"step\":4,\"path\":\"$TMP/s4/step-4\"}" "$TMP/s4.jsonl" \
  || fail "no checkpoint event for the saved state"
run --steps 8 "${resume_args[@]}" --resume "$TMP/s4" --save-state "$TMP/s4" \
  --log-jsonl "$TMP/r.jsonl" || fail "resumed run failed"
head -1 "$TMP/r.jsonl" | grep -q '^{"step":4,' || fail "the resumed run does not start at step 4"
[ "$(rows_from_4 "$TMP/r.jsonl" | wc -l)" -eq 4 ] || fail "the resumed run logged no steps 4..7"
diff <(rows_from_4 "$TMP/s8.jsonl") <(rows_from_4 "$TMP/r.jsonl") \
  || fail "steps 4..7 differ between the straight and the resumed run"
for f in model optimizer; do
  cmp -s "$TMP/s8/step-8/$f.safetensors" "$TMP/s4/step-8/$f.safetensors" \
    || fail "$f.safetensors at step 8 differs between the straight and the resumed run"
done
[ "$(ls "$TMP/s4" | tr '\n' ' ')" = "latest step-8 " ] || fail "old state left: $(ls "$TMP/s4")"

# --save-every: a state after steps 2 and 4 and at the end; only the last is kept.
run --steps 5 --save-every 2 --save-state "$TMP/e" --log-jsonl "$TMP/e.jsonl" \
  || fail "--save-every run failed"
saved=$(grep -o '"event":"checkpoint","step":[0-9]*' "$TMP/e.jsonl" | cut -d: -f3 | tr '\n' ' ')
[ "$saved" = "2 4 5 " ] || fail "--save-every 2 --steps 5 saved at steps '$saved', expected 2 4 5"
[ "$(ls "$TMP/e" | tr '\n' ' ')" = "latest step-5 " ] || fail "old states left: $(ls "$TMP/e")"

expect_error "resume with --weights" "--resume takes the weights from the saved state" \
  run --steps 8 --resume "$TMP/s4" --weights "$TMP/a.safetensors"
expect_error "--save-every alone" "--save-every needs --save-state" run --steps 8 --save-every 2
expect_error "resume with another gamma" \
  "optimizer.safetensors: the state was saved with gamma 1, this run has gamma 2" \
  run --steps 9 --method lisa --gamma 2 --interval 3 --warmup 6 --resume "$TMP/s4"
expect_error "resume past --steps" "the saved state is at step 8, past --steps 6" \
  run --steps 6 "${resume_args[@]}" --resume "$TMP/s4"
expect_error "resume from nothing" "$TMP/none/latest: cannot open" run --steps 6 --resume "$TMP/none"

# A resume that changes the trajectory is refused, unless --override, which
# says what changed; a change of the state's shape is refused even then.
expect_error "resume with another lr" \
  "saved with lr [0-9.e-]+, this run has lr 0.00200000009 \(--override resumes anyway\)" \
  run --steps 10 "${resume_args[@]}" --lr 0.002 --resume "$TMP/s4"
cp "$TOKENS" "$TMP/other.bin" # the same tokens but the first four
printf '\x00\x00\x01\x00\x00\x00\x01\x00' | dd of="$TMP/other.bin" bs=1 seek=1024 conv=notrunc 2>/dev/null
cmp -s "$TOKENS" "$TMP/other.bin" && fail "other.bin holds the same tokens"
expect_error "resume with other data" "saved with data [0-9a-f]{16}, 4000 tokens, this run has data" \
  run --steps 10 "${resume_args[@]}" --resume "$TMP/s4" --data "$TMP/other.bin"
out=$(run --steps 9 "${resume_args[@]}" --lr 0.002 --schedule cosine --resume "$TMP/s4" \
  --override 2>&1 >/dev/null) || fail "--override resume failed: $out"
grep -Eq -- "--override: lr [0-9.e-]+ -> 0.00200000009; schedule constant -> cosine" <<<"$out" \
  || fail "--override does not say what changed: $out"
expect_error "--override of train_embed" "saved with train_embed 1, this run has train_embed 0$" \
  run --steps 10 "${resume_args[@]}" --train-embed off --resume "$TMP/s4" --override
expect_error "--override alone" "--override needs --resume" run --steps 8 --override

finish
