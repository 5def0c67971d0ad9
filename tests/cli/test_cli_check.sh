#!/bin/bash
# lisa check: every generated path against the cpu backend, on the emulator,
# then 3 training steps against the CPU trainer (the optimizer path).
# Bundled models and a family folder pass in fp32 and bf16, LoRA too; mutant
# builds (layernorm's variance over C - 1, AdamW's bias correction a step
# ahead, by a compiler wrapper) fail with the values they break named; JSON;
# bad input says so. lisa tune: every
# variant of a kernel checked and timed (the emulator's clock here), a mutant
# variant wrong, a static_assert's variant rejected.
. "$LISA_SRC/tests/cli/lib.sh"
export XDG_CACHE_HOME=$TMP/cache
cd "$SRC" || exit 1

for args in "models/gpt2-tiny.yaml" "models/gpt2-tiny.yaml --dtype bf16 --batch 3 --seq 7" \
            "models/llama-tiny.yaml --dtype bf16-true" "models/llama-tiny.yaml --method lora --lora-rank 4" \
            "tests/fixtures/families/qwen2" "tests/fixtures/families/gpt2 --method lisa" \
            "tests/fixtures/families/phi" "tests/fixtures/families/gemma2 --dtype bf16" \
            "tests/fixtures/families/olmo2 --dtype bf16" "tests/fixtures/families/gpt_neox" \
            "tests/fixtures/families/gemma3_text --dtype bf16" \
            "tests/fixtures/families/qwen2-yarn --dtype bf16" \
            "tests/fixtures/families/phi3-longrope --dtype bf16" \
            "tests/fixtures/families/starcoder2 --dtype bf16" \
            "tests/fixtures/yaml/gpt2-tiny-lua-activation.yaml --dtype bf16"; do
  # shellcheck disable=SC2086
  out=$("$LISA" check $args 2>&1) && grep -Eq "[1-9][0-9]* values checked, 0 failed" <<<"$out" &&
    echo "ok   check $args: $(tail -1 <<<"$out")" || fail "check $args: $(tail -3 <<<"$out")"
done

out=$(CXX="$SRC/tests/cli/mutant-cxx.sh" "$LISA" check models/gpt2-tiny.yaml 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "block_active .* fwd .*FAIL" <<<"$out" && grep -Eq "[1-9][0-9]* failed" <<<"$out" &&
  echo "ok   a mutant layernorm fails: $(grep -c FAIL <<<"$out") values" || fail "the mutant passed (rc $rc): $(tail -2 <<<"$out")"

# the optimizer path is checked by steps on the device against the CPU
# trainer: a mutant AdamW passes every section path and fails the steps
out=$(XDG_CACHE_HOME=$TMP/cache-adamw MUTANT=adamw CXX="$SRC/tests/cli/mutant-cxx.sh" "$LISA" check models/gpt2-tiny.yaml 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "^steps .* all weights .*FAIL" <<<"$out" && grep -q "^steps  *2 fwd loss .*FAIL" <<<"$out" &&
  [ "$(grep FAIL <<<"$out" | grep -vc '^steps')" -eq 0 ] && grep -q "^steps  *1 fwd loss .* ok" <<<"$out" &&
  echo "ok   a mutant AdamW fails the steps only: $(grep -c FAIL <<<"$out") values" ||
  fail "the AdamW mutant (rc $rc): $(grep -E 'FAIL|failed' <<<"$out" | head -5)"
out=$("$LISA" check models/gpt2-tiny.yaml --steps 0 2>&1) && ! grep -q "^steps" <<<"$out" &&
  echo "ok   --steps 0: the paths only" || fail "--steps 0: $(tail -2 <<<"$out")"
expect_error "tune --steps" "--steps is lisa check's" "$LISA" tune models/gpt2-tiny.yaml --steps 2
"$LISA" check models/gpt2-tiny.yaml --json > "$TMP/check.json" || fail "check --json"
if command -v python3 >/dev/null; then
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["failed"] == 0 and d["checked"] == len(d["rows"]) > 100, d["checked"]
assert all(r["ok"] and (not r["judged"] or r["nmse"] <= r["limit"]) for r in d["rows"])
assert {r["path"] for r in d["rows"]} >= {"embed_train", "block_active", "block_frozen", "block_forward", "head_train", "head_frozen", "steps"}
steps = [r for r in d["rows"] if r["path"] == "steps"]
assert [r["value"] for r in steps[:6]] == ["loss", "grad norm"] * 3 and steps[6]["value"] == "all weights", steps[:7]
assert all(r["judged"] and r["nmse"] <= r["limit"] for r in steps), steps  # fp32: every row judged
' "$TMP/check.json" && echo "ok   --json: every path, a row per value" || fail "--json"
else
  grep -q '"failed":0}' "$TMP/check.json" && echo "ok   --json (no python3 to parse it)" || fail "--json"
fi

# lisa tune: attention_forward's 12 variants; the mutant compiler breaks one
# (BQ 64, 64 threads), a static_assert rejects one, the rest check out
# (a cache of its own: the layernorm mutant above was built by the same CXX)
out=$(XDG_CACHE_HOME=$TMP/cache-bq64 MUTANT=bq64 CXX="$SRC/tests/cli/mutant-cxx.sh" "$LISA" tune models/gpt2-tiny.yaml \
  --kernels attention_forward 2>&1) || fail "tune: $(tail -2 <<<"$out")"
grep -Eq "^attention_forward +BQ=64 THREADS=64 +WRONG" <<<"$out" &&
  grep -Eq "^attention_forward +BQ=16 THREADS=256 +rejected .*static assert" <<<"$out" &&
  grep -Eq "^attention_forward +BQ=32 THREADS=128 +ok .* [0-9.]+ +1.00x \(default\)" <<<"$out" &&
  grep -q "12 variants: 10 ok, 1 wrong, 1 rejected, 0 pruned; times on .*(an emulator's, not a GPU's)" <<<"$out" &&
  grep -Eq "^attention_forward: fastest BQ=[0-9]+ THREADS=[0-9]+, [0-9.]+x the default's speed \(timed alternately" <<<"$out" &&
  echo "ok   tune: $(tail -1 <<<"$out"), the mutant variant wrong" || fail "tune: $out"
"$LISA" tune models/gpt2-tiny.yaml --kernels cross_entropy_mean --json > "$TMP/tune.json" &&
  grep -q '"ok":4,"wrong":0,"rejected":0,"pruned":0,"default_timings":4}' "$TMP/tune.json" &&
  grep -q '"variant":"THREADS=256","default":true,"status":"ok"' "$TMP/tune.json" &&
  ! grep -q '"ms":0,' "$TMP/tune.json" &&
  echo "ok   tune --json: cross_entropy_mean's 4 variants" || fail "tune --json: $(cat "$TMP/tune.json")"
# a variant is --tune's table with one kernel varied: a file that sets another
# kernel to a setting its static_assert refuses makes every variant rejected
printf 'return {attention_forward = {BQ = 16, THREADS = 256}}\n' > "$TMP/bad-attention.lua"
out=$("$LISA" tune models/gpt2-tiny.yaml --kernels cross_entropy_mean --tune "$TMP/bad-attention.lua" 2>&1)
grep -q "4 variants: 0 ok, 0 wrong, 4 rejected" <<<"$out" &&
  echo "ok   tune keeps --tune's other settings in every variant" || fail "tune --tune: $(tail -2 <<<"$out")"
expect_error "tune: nothing matches" "no tunable kernel of gpt2-tiny matches nosuch" \
  "$LISA" tune models/gpt2-tiny.yaml --kernels nosuch
expect_error "tune: not the optimizer's kernels (check does not run them)" \
  "no tunable kernel of gpt2-tiny matches global_norm" "$LISA" tune models/gpt2-tiny.yaml --kernels global_norm
expect_error "check --kernels" "--kernels is lisa tune's" "$LISA" check models/gpt2-tiny.yaml --kernels x

expect_error "no model" "missing MODEL" "$LISA" check
expect_error "bad device" "--device: 'gpu' is not emu or cuda" "$LISA" check models/gpt2-tiny.yaml --device gpu
expect_error "missing weights" "nosuch.safetensors" "$LISA" check models/gpt2-tiny.yaml --weights "$TMP/nosuch.safetensors"
finish
