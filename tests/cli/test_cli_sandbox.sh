#!/bin/bash
# The Lua sandbox holds (issue 12): every user Lua file (a layer-sampling
# policy, an activation file, a tuning table) is refused bytecode, stopped
# by its instruction budget, its memory cap and the pattern-matching budget,
# each with an error naming the file and a non-zero exit; and a policy keeps
# no state from one period's draw to the next.
. "$LISA_SRC/tests/cli/lib.sh"

TINY=$SRC/models/gpt2-tiny.yaml
TOKENS=$SRC/tests/fixtures/tokens-67.bin
train() { "$LISA" train --quiet --device cpu --steps 1 --batch 2 --seq 8 "$@"; }
policy() { train "$TINY" --data "$TOKENS" --method lisa --gamma 1 --lua "$@"; }
ok_fn='function sample_layers(ctx) return {0} end'
BAD_PATTERN='string.find(("a"):rep(40), ("a*"):rep(40) .. "b")'

# Bytecode: a file, and a string handed to load.
printf '\x1bLuaT\x00\x19\x93\r\n\x1a\n\x04\x08\x08' >"$TMP/bytecode.lua"
expect_error "bytecode policy file" "bytecode.lua: .*attempt to load a binary chunk" \
  policy "$TMP/bytecode.lua"
printf '%s\nassert(load("\\27LuaT\\0\\25\\147\\r\\n\\26\\n"))\n' "$ok_fn" >"$TMP/load.lua"
expect_error "load of a bytecode string" "load.lua:2: .*attempt to load a binary chunk" \
  policy "$TMP/load.lua"
printf '%s\nassert(string.dump == nil and dofile == nil and loadfile == nil and require == nil)\n' \
  "$ok_fn" >"$TMP/gone.lua"
policy "$TMP/gone.lua" || fail "string.dump, dofile, loadfile or require is still there"

# Endless loops: at load and in sample_layers.
printf 'while true do end\n%s\n' "$ok_fn" >"$TMP/spin.lua"
expect_error "endless loop at load" "spin.lua:1: ran for more than 100000000 instructions" \
  policy "$TMP/spin.lua"
printf 'function sample_layers(ctx)\n  while true do end\nend\n' >"$TMP/spin2.lua"
expect_error "endless loop in sample_layers" \
  "spin2.lua:2: ran for more than 100000000 instructions .*\(sample_layers at step 0\)" \
  policy "$TMP/spin2.lua"

# Memory: a growing table, a huge string.
printf 'local t = {}\nfor i = 1, 1e9 do t[i] = i end\n%s\n' "$ok_fn" >"$TMP/fill.lua"
expect_error "memory bomb (table)" "fill.lua: used more than 64 MiB of memory" policy "$TMP/fill.lua"
printf 'local s = string.rep("x", 1 << 28)\n%s\n' "$ok_fn" >"$TMP/rep.lua"
expect_error "memory bomb (string.rep)" "rep.lua: used more than 64 MiB of memory" policy "$TMP/rep.lua"

# Catastrophic backtracking, in each kind of file.
printf 'function sample_layers(ctx)\n  %s\n  return {0}\nend\n' "$BAD_PATTERN" >"$TMP/pattern.lua"
expect_error "pattern in a policy" "pattern.lua:2: pattern matching ran for more than 10000000 steps" \
  policy "$TMP/pattern.lua"
sed 's/lua: activations.lua/lua: bad-activations.lua/' \
  "$SRC/tests/fixtures/yaml/gpt2-tiny-lua-activation.yaml" >"$TMP/act.yaml"
printf '%s\nreturn {quick_gelu = "x"}\n' "$BAD_PATTERN" >"$TMP/bad-activations.lua"
expect_error "pattern in an activation file" \
  "bad-activations.lua:1: pattern matching ran for more than 10000000 steps" \
  train "$TMP/act.yaml" --data "$TOKENS"
printf '%s\nreturn {}\n' "$BAD_PATTERN" >"$TMP/tune.lua"
expect_error "pattern in a tuning file" "tune.lua:1: pattern matching ran for more than 10000000 steps" \
  "$LISA" gen "$TINY" -o "$TMP/gen" --tune "$TMP/tune.lua"
# Scans the matcher's steps did not count: %b over a long unbalanced string at
# every position, a plain find of a long repeated needle (each was minutes).
printf 'local s = ("(x"):rep(1 << 18)\nlocal n = 0\nfor _ in s:gmatch("%%b()") do n = n + 1 end\n%s\n' \
  "$ok_fn" >"$TMP/balance.lua"
expect_error "%b at every position" "balance.lua:3: pattern matching ran for more than 10000000 steps" \
  policy "$TMP/balance.lua"
printf 'local s = ("a"):rep(1 << 22)\nlocal found = s:find(("a"):rep(1 << 16) .. "b", 1, true)\n%s\n' \
  "$ok_fn" >"$TMP/plainfind.lua"
expect_error "plain find of a repeated needle" "plainfind.lua:2: string.find ran for more than 10000000 steps" \
  policy "$TMP/plainfind.lua"
# Patterns still work within the budget.
printf 'assert(("a1b22"):gsub("%%d+", "#") == "a#b#")\nassert(("k=v"):match("(%%w+)=(%%w+)") == "k")\n%s\n' \
  "$ok_fn" >"$TMP/patterns-ok.lua"
policy "$TMP/patterns-ok.lua" || fail "ordinary patterns fail in the sandbox"

# No state between draws: a global counter sees a fresh state every period,
# so the set is the same each period (it would walk 1, 2, 3 otherwise), and
# a resumed run draws what a straight one did.
printf 'function sample_layers(ctx)\n  calls = (calls or 0) + 1\n  return {calls %% ctx.n_layers}\nend\n' \
  >"$TMP/counter.lua"
"$LISA" train "$TINY" --data "$TOKENS" --quiet --device cpu --batch 2 --seq 8 --steps 9 \
  --method lisa --gamma 1 --interval 3 --lua "$TMP/counter.lua" --log-jsonl "$TMP/c.jsonl" \
  || fail "counter policy run failed"
sets=$(grep -o '"active":\[[0-9,]*\]' "$TMP/c.jsonl" | sort -u | tr '\n' ' ')
[ "$sets" = '"active":[1] ' ] || fail "a policy's global survived between draws: sets $sets"

finish
