#!/bin/bash
# lisa tune on the emulator. A user's search in Lua measures what it asks
# for (scripts/tune-coordinate.lua: a coordinate descent), and its mistakes
# are errors naming the file; --budget ends a search. The tuning database:
# lisa tune times each variant alternately with the default and stores
# each kernel's fastest variant that checked out, never a wrong one (the
# tests' FLIP tunable negates the generated element-wise kernels' stores);
# lisa gen, check and train --device emu use the entry for their program
# (the emitted source shows its values) unless --tune or --no-tune-db;
# --report prints it against the default; a malformed file or a stale entry
# is ignored with a warning.
. "$LISA_SRC/tests/cli/lib.sh"
export XDG_CACHE_HOME=$TMP/cache
cd "$SRC" || exit 1
TINY="models/gpt2-tiny.yaml --batch 2 --seq 8"
db() { ls "$XDG_CACHE_HOME"/lisa/tune/*.json 2>/dev/null; }

# a deliberately wrong variant fails lisa check ...
printf 'return {elementwise = {FLIP = 1}}\n' > "$TMP/flip.lua"
out=$(LISA_TEST_TUNABLES=1 "$LISA" check models/llama-tiny.yaml --tune "$TMP/flip.lua" 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -Eq "block_active .* FAIL" <<<"$out" &&
  echo "ok   check: FLIP=1 fails $(grep -c FAIL <<<"$out") values" || fail "check FLIP=1 (rc $rc): $(tail -2 <<<"$out")"
expect_error "FLIP is the tests' only" "has no tunable 'FLIP'" \
  "$LISA" check models/llama-tiny.yaml --tune "$TMP/flip.lua"

# ... and is never stored by lisa tune: the winner is the fastest ok row
out=$(LISA_TEST_TUNABLES=1 "$LISA" tune models/llama-tiny.yaml --kernels elementwise 2>&1) ||
  fail "tune elementwise: $(tail -2 <<<"$out")"
fastest=$(grep -E '^elementwise .*\(fastest\)' <<<"$out" | awk '{print $2, $3}')
stored=$(LISA_TEST_TUNABLES=1 "$LISA" tune models/llama-tiny.yaml --report 2>&1 | awk '$1 == "elementwise" {print $2, $3}')
grep -q "10 variants: 5 ok, 5 wrong, 0 rejected" <<<"$out" && grep -q "^FLIP=0 THREADS=" <<<"$stored" &&
  [ "$stored" = "$fastest" ] && grep -q "1 winner stored in" <<<"$out" &&
  echo "ok   tune stores $stored, the fastest of the 5 right variants" ||
  fail "tune stored '$stored', fastest '$fastest': $out"
# without the tests' tunables that entry is stale: ignored, with a warning
out=$("$LISA" check models/llama-tiny.yaml 2>&1) && grep -q "stale.*FLIP" <<<"$out" &&
  grep -q " 0 failed" <<<"$out" && ! grep -q "tunables from the tuning database" <<<"$out" &&
  echo "ok   a stale entry is ignored: $(grep -o 'warning: .*stale' <<<"$out" | head -c 120)" ||
  fail "stale entry: $(head -3 <<<"$out")"

# gen, check and train use an entry for their program; the stored
# cross_entropy_mean is set to 512 threads so that it differs from the default
# shellcheck disable=SC2086
"$LISA" tune $TINY --kernels cross_entropy_mean > "$TMP/tune.txt" 2>&1 || fail "tune: $(tail -2 "$TMP/tune.txt")"
file=$(db)
sed -i 's/"THREADS":[[:space:]]*[0-9]*/"THREADS": 512/' "$file"
# shellcheck disable=SC2086
out=$("$LISA" tune $TINY --report 2>&1)
grep -Eq "^cross_entropy_mean +THREADS=512 +[0-9.]+ +[0-9.]+ +[0-9.]+x" <<<"$out" &&
  grep -q "^gpt2-tiny B2 T8 fp32 [0-9a-f]\{16\}$" <<<"$out" &&
  echo "ok   --report: $(grep ^cross_entropy_mean <<<"$out")" || fail "--report: $out"
"$LISA" gen models/gpt2-tiny.yaml --batch 2 --seq 8 --dtype fp32 --device emu --no-compile \
  -o "$TMP/tuned" > /dev/null 2> "$TMP/gen.err" &&
  "$LISA" gen models/gpt2-tiny.yaml --batch 2 --seq 8 --dtype fp32 --device emu --no-compile \
  --no-tune-db -o "$TMP/plain" > /dev/null 2>&1 &&
  "$LISA" gen models/gpt2-tiny.yaml --batch 4 --seq 8 --dtype fp32 --device emu --no-compile \
  -o "$TMP/other" > /dev/null 2>&1 || fail "gen"
grep -q "__launch_bounds__(512) head_train_03_cross_entropy_mean" "$TMP/tuned/head_train.cu" &&
  grep -q "cross_entropy_mean<67, 512>" "$TMP/tuned/head_train.cu" &&
  grep -q "kernels tuned by lisa tune on CUDA emulator.*cross_entropy_mean(THREADS=512)" "$TMP/gen.err" &&
  grep -q "cross_entropy_mean<67, 256>" "$TMP/plain/head_train.cu" &&
  grep -q "cross_entropy_mean<67, 256>" "$TMP/other/head_train.cu" &&
  echo "ok   gen: the entry's 512 threads in the source; 256 with --no-tune-db or at B4" ||
  fail "gen: $(grep -ho 'cross_entropy_mean<67, [0-9]*>' "$TMP"/{tuned,plain,other}/head_train.cu | tr '\n' ' ')"
# shellcheck disable=SC2086
out=$("$LISA" check $TINY 2>&1) && grep -q "tunables from the tuning database: cross_entropy_mean(THREADS=512)" <<<"$out" &&
  grep -q " 0 failed" <<<"$out" && echo "ok   check runs the tuned program" || fail "check: $(tail -2 <<<"$out")"
out=$("$LISA" check $TINY --json 2>/dev/null) && grep -q '"tuned":"cross_entropy_mean(THREADS=512)"' <<<"$out" &&
  echo "ok   check --json names it" || fail "check --json: $(head -c 300 <<<"$out")"
printf 'return {cross_entropy_mean = {THREADS = 128}}\n' > "$TMP/ce128.lua"
TRAIN="--data tests/fixtures/tokens-67.bin --steps 2 --device emu --dtype fp32"
# shellcheck disable=SC2086
out=$("$LISA" train $TINY $TRAIN 2>&1) && grep -q "kernels tuned by lisa tune .*cross_entropy_mean(THREADS=512)" <<<"$out" &&
  out=$("$LISA" train $TINY $TRAIN --no-tune-db 2>&1) && ! grep -q "kernels tuned" <<<"$out" &&
  out=$("$LISA" train $TINY $TRAIN --tune "$TMP/ce128.lua" 2>&1) && ! grep -q "kernels tuned" <<<"$out" &&
  echo "ok   train --device emu: the entry; not with --no-tune-db or --tune" || fail "train: $out"

# a malformed file: a warning naming it, the defaults, and tune rewrites it
cp "$file" "$TMP/good.json"
printf '{"format": "lisa-tune 1", "entries": [' > "$file"
# shellcheck disable=SC2086
out=$("$LISA" check $TINY 2>&1) && grep -q "warning: .*$(basename "$file"): not JSON" <<<"$out" &&
  ! grep -q "tunables from the tuning database" <<<"$out" &&
  echo "ok   a file that is not JSON: $(grep -o 'warning: .*' <<<"$out" | head -c 150)" || fail "not JSON: $out"
sed 's/"ms":[^,]*,/"ms": "fast",/' "$TMP/good.json" > "$file"
# shellcheck disable=SC2086
out=$("$LISA" check $TINY 2>&1) && grep -q "entry 0: \"ms\" is not a time; ignored" <<<"$out" &&
  echo "ok   a malformed entry: $(grep -o 'entry 0: .*' <<<"$out")" || fail "malformed entry: $out"
# shellcheck disable=SC2086
"$LISA" tune $TINY --kernels cross_entropy_mean > /dev/null 2>&1 && grep -q '"kernel":[[:space:]]*"cross_entropy_mean"' "$file" &&
  out=$("$LISA" check $TINY 2>&1) && ! grep -q "warning" <<<"$out" &&
  echo "ok   tune rewrites it whole" || fail "rewrite: $(cat "$file")"

# tune --no-tune-db stores nothing
# shellcheck disable=SC2086
XDG_CACHE_HOME=$TMP/cache2 "$LISA" tune $TINY --kernels cross_entropy_mean --no-tune-db > /dev/null 2>&1 &&
  ! ls "$TMP"/cache2/lisa/tune/*.json > /dev/null 2>&1 && echo "ok   tune --no-tune-db stores nothing" ||
  fail "--no-tune-db stored"
# --search: the coordinate descent from the default sweeps BQ at 128 threads
# first, then THREADS at the best BQ (the second sweep follows the times);
# each variant measured once (one rejected by a static_assert), fewer than 12
# shellcheck disable=SC2086
out=$("$LISA" tune $TINY --kernels attention_forward --search scripts/tune-coordinate.lua --no-tune-db 2>&1)
rows=$(grep '^attention_forward  ' <<<"$out" | awk '{print $2, $3}')
n=$(wc -l <<<"$rows")
[ "$n" -ge 6 ] && [ "$n" -lt 12 ] && [ "$(sort -u <<<"$rows" | wc -l)" -eq "$n" ] &&
  [ "$(head -1 <<<"$rows")" = "BQ=32 THREADS=128" ] &&
  for bq in 16 32 64 128; do grep -qx "BQ=$bq THREADS=128" <<<"$rows" || false; done &&
  grep -q "^$n variants: .* 0 wrong, 1 rejected" <<<"$out" &&
  echo "ok   --search: $(tail -1 <<<"$out")" || fail "--search: $out"
# measure's answers: nil and why for a value outside the space, a wrong or a
# rejected variant; the search sees them
cat > "$TMP/answers.lua" <<'EOF'
return function(space, measure)
  assert(space.kernel == "elementwise" and space.default.FLIP == 0 and #space.params.THREADS == 5)
  local ms, why = measure({THREADS = 100})
  assert(ms == nil and why == "not in the space: THREADS = 100", why)
  ms, why = measure({FLIP = 1})
  assert(ms == nil and why == "wrong", why)
  ms, why = measure({})
  assert(type(ms) == "number" and ms > 0 and why == nil)
  ms, why = measure({THREADS = 64, FLIP = 0})
  assert(type(ms) == "number")
end
EOF
out=$(LISA_TEST_TUNABLES=1 "$LISA" tune models/llama-tiny.yaml --kernels elementwise --search "$TMP/answers.lua" \
  --no-tune-db 2>&1) && grep -q "^3 variants: 2 ok, 1 wrong, 0 rejected" <<<"$out" &&
  echo "ok   measure answers nil and why: $(tail -1 <<<"$out")" || fail "answers: $out"
printf 'return function(space, measure) measure({WARPS = 2}) end\n' > "$TMP/unknown.lua"
expect_error "search: an unknown tunable" "unknown.lua:1: measure: cross_entropy_mean has no tunable 'WARPS'" \
  "$LISA" tune models/gpt2-tiny.yaml --kernels cross_entropy_mean --search "$TMP/unknown.lua" --no-tune-db
printf 'return 42\n' > "$TMP/number.lua"
expect_error "search: not a function" "number.lua: must return a function\(space, measure\), not a number" \
  "$LISA" tune models/gpt2-tiny.yaml --kernels cross_entropy_mean --search "$TMP/number.lua" --no-tune-db
printf 'return function(space, measure) while true do end end\n' > "$TMP/forever.lua"
expect_error "search: a runaway loop" "forever.lua.*instruction" \
  "$LISA" tune models/gpt2-tiny.yaml --kernels cross_entropy_mean --search "$TMP/forever.lua" --no-tune-db
printf 'return function(space, measure) io.open("/etc/passwd") end\n' > "$TMP/io.lua"
expect_error "search: no io" "io.lua:1: .*nil" \
  "$LISA" tune models/gpt2-tiny.yaml --kernels cross_entropy_mean --search "$TMP/io.lua" --no-tune-db
# --budget: the default, then nothing new once the budget is spent
# shellcheck disable=SC2086
out=$("$LISA" tune $TINY --kernels attention_forward --budget 0.001 --no-tune-db 2>&1) &&
  grep -q "^1 variants: 1 ok" <<<"$out" && grep -q "the budget of 0.001 s ended the search after 1 variants" <<<"$out" &&
  grep -Eq "^attention_forward +BQ=32 THREADS=128 +ok" <<<"$out" &&
  echo "ok   --budget: $(grep 'budget of' <<<"$out")" || fail "--budget: $out"
# pruning: each variant's compile (NVRTC, sm_90 for the emulator) gives
# registers, spills and occupancy; attention_backward_dq's variants that spill
# where the default does not are not checked, and never stored (ptxas's
# allocation: a new toolkit may spill elsewhere)
# shellcheck disable=SC2086
if ! "$LISA" tune $TINY --kernels cross_entropy_mean --no-tune-db 2>&1 | grep -q "this build has no NVRTC"; then
  # shellcheck disable=SC2086
  out=$("$LISA" tune $TINY --kernels attention_backward_dq --json 2>/dev/null)
  if command -v python3 > /dev/null; then
    python3 - "$out" "$(db)" <<'EOF' && echo "ok   pruning by compile statistics; timing alternates with the default" || fail "pruning: $out"
import json, sys
d = json.loads(sys.argv[1])
rows = d["variants"]
assert len(rows) == 12 and all("registers" in r for r in rows if r["status"] != "rejected"), rows
pruned = [r for r in rows if r["status"] == "pruned"]
assert d["pruned"] == len(pruned) >= 1 and not any(r["default"] for r in pruned), d
assert all(r["why"].startswith("pruned: spills") and r["spill_bytes"] > 0 and r["ms"] == 0 for r in pruned)
assert all(0 < r["occupancy"] <= 1 for r in rows if "occupancy" in r)
db = json.load(open(sys.argv[2]))
won = [e for e in db["entries"] if e["kernel"] == "attention_backward_dq" and e["program"].startswith("gpt2-tiny B2 T8 fp32")]
stored = " ".join("%s=%d" % kv for kv in sorted(won[0]["values"].items()))
assert len(won) == 1 and stored not in {r["variant"] for r in pruned}, (stored, pruned)
# timed alternately with the default: timed again after each ok variant, each
# judged against the default's times around it; the stored winner is the
# fastest so judged, its default_ms the default's time around it
ok = [r for r in rows if r["status"] == "ok"]
dflt = [r for r in rows if r["default"]][0]
assert dflt["default_ms"] == dflt["ms"] > 0 and all(r["default_ms"] > 0 for r in ok), ok
assert d["default_timings"] == 1 + len([r for r in ok if not r["default"]]), d["default_timings"]
best = min(ok, key=lambda r: r["ms"] / r["default_ms"])
assert set(stored.split()) == set(best["variant"].split()), (stored, best)
assert won[0]["default_ms"] == best["default_ms"] or abs(won[0]["default_ms"] / best["default_ms"] - 1) < 1e-5
EOF
  else
    grep -q '"status":"pruned"' <<<"$out" && echo "ok   pruning (no python3 to parse it)" || fail "pruning: $out"
  fi
  # shellcheck disable=SC2086
  out=$("$LISA" tune $TINY --kernels cross_entropy_mean --no-prune --no-tune-db 2>&1) &&
    grep -q "^no compile statistics: --no-prune" <<<"$out" && grep -q "0 pruned" <<<"$out" &&
    echo "ok   --no-prune" || fail "--no-prune: $out"
else
  echo "skip pruning: this build has no NVRTC"
fi
expect_error "search is tune's" "--search is lisa tune's" "$LISA" check models/gpt2-tiny.yaml --search x.lua
expect_error "report is tune's" "--report is lisa tune's" "$LISA" check models/gpt2-tiny.yaml --report
finish
