#!/bin/bash
# lisa check: every generated path against the cpu backend, on the emulator.
# Bundled models and a family folder pass in fp32 and bf16, LoRA too; a
# mutant build (layernorm's variance over C - 1, by a compiler wrapper) fails
# with the values it breaks named; JSON; bad input says so.
. "$LISA_SRC/tests/cli/lib.sh"
export XDG_CACHE_HOME=$TMP/cache
cd "$SRC" || exit 1

for args in "models/gpt2-tiny.yaml" "models/gpt2-tiny.yaml --dtype bf16 --batch 3 --seq 7" \
            "models/llama-tiny.yaml --dtype bf16-true" "models/llama-tiny.yaml --method lora --lora-rank 4" \
            "tests/fixtures/families/qwen2"; do
  # shellcheck disable=SC2086
  out=$("$LISA" check $args 2>&1) && grep -Eq "[1-9][0-9]* values checked, 0 failed" <<<"$out" &&
    echo "ok   check $args: $(tail -1 <<<"$out")" || fail "check $args: $(tail -3 <<<"$out")"
done

out=$(CXX="$SRC/tests/cli/mutant-cxx.sh" "$LISA" check models/gpt2-tiny.yaml 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "block_active .* fwd .*FAIL" <<<"$out" && grep -Eq "[1-9][0-9]* failed" <<<"$out" &&
  echo "ok   a mutant layernorm fails: $(grep -c FAIL <<<"$out") values" || fail "the mutant passed (rc $rc): $(tail -2 <<<"$out")"

"$LISA" check models/gpt2-tiny.yaml --json > "$TMP/check.json" || fail "check --json"
if command -v python3 >/dev/null; then
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["failed"] == 0 and d["checked"] == len(d["rows"]) > 100, d["checked"]
assert all(r["ok"] and r["nmse"] <= r["limit"] for r in d["rows"])
assert {r["path"] for r in d["rows"]} >= {"embed_train", "block_active", "block_frozen", "block_forward", "head_train", "head_frozen"}
' "$TMP/check.json" && echo "ok   --json: every path, a row per value" || fail "--json"
else
  grep -q '"failed":0}' "$TMP/check.json" && echo "ok   --json (no python3 to parse it)" || fail "--json"
fi

expect_error "no model" "missing MODEL" "$LISA" check
expect_error "bad device" "--device: 'gpu' is not emu or cuda" "$LISA" check models/gpt2-tiny.yaml --device gpu
expect_error "missing weights" "nosuch.safetensors" "$LISA" check models/gpt2-tiny.yaml --weights "$TMP/nosuch.safetensors"
finish
