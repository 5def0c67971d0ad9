#!/bin/bash
# lisa train --device emu: the generated kernels on the CPU in the CUDA
# emulator. fp32 LISA and LoRA follow the cpu backend's losses and gradient
# norms to float rounding, bf16-mixed to bf16's; the host build is cached by
# source; a missing or failing compiler says so; lisa sample decodes there.
. "$LISA_SRC/tests/cli/lib.sh"
export XDG_CACHE_HOME=$TMP/cache
TINY="$SRC/models/gpt2-tiny.yaml --data $SRC/tests/fixtures/tokens-67.bin --batch 2 --seq 8 --quiet"

# field NAME FILE: the values of NAME in a JSONL file's step rows, one a line
field() { grep '"step":' "$2" | grep -o "\"$1\":[-0-9.e+]*" | cut -d: -f2; }

# same_rows A B REL: loss and grad_norm of every step agree to REL (relative)
same_rows() {
  local a=$1 b=$2 rel=$3 k
  for k in loss grad_norm; do
    paste <(field "$k" "$a") <(field "$k" "$b") | awk -v rel="$rel" -v k="$k" '
      { n++; d = $1 - $2; if (d < 0) d = -d; s = $2 < 0 ? -$2 : $2
        if (d > rel * s) { printf "step %d %s: %s against %s\n", n - 1, k, $1, $2; bad = 1 } }
      END { exit bad || n < 4 }' || return 1
  done
}

for run in "lisa --method lisa --gamma 1 --interval 2" "lora --method lora --lora-rank 4"; do
  set -- $run
  name=$1; shift
  "$LISA" train $TINY --steps 6 "$@" --device cpu --log-jsonl "$TMP/cpu-$name.jsonl" &&
    "$LISA" train $TINY --steps 6 "$@" --device emu --dtype fp32 --log-jsonl "$TMP/emu-$name.jsonl" \
    || { fail "$name: a run failed"; continue; }
  same_rows "$TMP/emu-$name.jsonl" "$TMP/cpu-$name.jsonl" 1e-5 &&
    echo "ok   $name fp32 on emu: the cpu backend's losses and norms" || fail "$name fp32 on emu differs"
done
cmp <(grep -o '"active":\[[0-9,]*\]' "$TMP/emu-lisa.jsonl") \
    <(grep -o '"active":\[[0-9,]*\]' "$TMP/cpu-lisa.jsonl") >/dev/null &&
  echo "ok   the same active sets" || fail "the active sets differ"

builds=$(ls "$XDG_CACHE_HOME"/lisa/emu-prog-*.so | wc -l)
"$LISA" train $TINY --steps 6 --method lisa --gamma 1 --interval 2 --device emu --dtype bf16 \
  --profile --log-jsonl "$TMP/emu-bf16.jsonl" > "$TMP/profile.txt" || fail "bf16 on emu failed"
same_rows "$TMP/emu-bf16.jsonl" "$TMP/cpu-lisa.jsonl" 2e-2 &&
  echo "ok   bf16-mixed on emu: within bf16 of the cpu" || fail "bf16-mixed on emu is off"
grep -q "attention" "$TMP/profile.txt" && echo "ok   --profile on emu times the kernels" ||
  fail "no profile table"
"$LISA" train $TINY --steps 2 --method lisa --gamma 1 --device emu --dtype fp32 ||
  fail "a second fp32 run failed"
[ "$(ls "$XDG_CACHE_HOME"/lisa/emu-prog-*.so | wc -l)" -eq $((builds + 1)) ] &&
  echo "ok   a program already built is not built again" || fail "the cache did not hold"

expect_error "no compiler" "--device emu: no C\+\+ compiler.*CXX" \
  env CXX=/nonexistent/c++ "$LISA" train $TINY --steps 1 --device emu
expect_error "a compiler that fails" "could not compile" \
  env CXX="$SRC/tests/cli/fake-cxx.sh" "$LISA" train $TINY --steps 1 --device emu --dtype fp32
# lisa sample: the decoding program on emu picks cpu's greedy tokens
for d in cpu emu; do
  "$LISA" sample "$SRC/models/gpt2-tiny.yaml" --weights "$SRC/tests/fixtures/gpt2-tiny.safetensors" \
    --prompt-ids "1 2 3" --max-new-tokens 16 --device $d --json 2>/dev/null |
    grep -o '"ids":\[[0-9,]*\]' > "$TMP/sample-$d.txt" || fail "lisa sample --device $d failed"
done
[ -s "$TMP/sample-emu.txt" ] && cmp -s "$TMP/sample-cpu.txt" "$TMP/sample-emu.txt" &&
  echo "ok   lisa sample on emu: the cpu's greedy tokens" || fail "lisa sample on emu differs"
expect_error "sample without a compiler" "--device emu: no C\+\+ compiler" \
  env CXX=/nonexistent/c++ "$LISA" sample "$SRC/models/gpt2-tiny.yaml" --prompt-ids "1 2" --device emu
finish
