#!/bin/bash
# run.sh: builds each libFuzzer harness here with clang (ASan + UBSan) from
# the sources it needs and runs it for SECONDS (default 8) over its corpus
# in corpus/<name>/; any crash, leak, hang or undefined behaviour fails.
# Exit 77 (skipped) without clang or libFuzzer. Run longer by hand:
#   tests/fuzz/run.sh 600 safetensors      (new inputs land in build/fuzz/)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd); src=$(cd "$here/../.." && pwd)
seconds=${1:-8}; only=${2:-}
out=${FUZZ_OUT:-$src/build/fuzz}
cc=$(command -v clang || command -v clang-14 || true)
[ -n "$cc" ] || { echo "skip: no clang"; exit 77; }
mkdir -p "$out"
probe=$out/probe.c
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$probe"
"$cc" -fsanitize=fuzzer "$probe" -o "$out/probe" 2>/dev/null || { echo "skip: no libFuzzer"; exit 77; }

deps=$(pkg-config --cflags --libs lua5.4 libcjson yaml-0.1)
cflags=(-std=c11 -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -g -O1
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -I"$here" -I"$src/runtime/base" -I"$src/runtime/io" -I"$src/runtime/lua"
        -I"$src/codegen/ir" -I"$src/codegen/front")
base=("$src"/runtime/base/{err,sbuf,rng,atomic_file,profile,json_out}.c)
lua=("$src"/runtime/lua/*.c)
declare -A sources=(
  [safetensors]="${base[*]} $src/runtime/io/safetensors.c"
  [hf_index]="${base[*]} $src/runtime/io/hf_index.c"
  [data]="${base[*]} $src/runtime/io/data.c"
  [model_yaml]="${base[*]} ${lua[*]} $src/codegen/ir/ir.c $src/codegen/ir/ir_ops.c $src/codegen/ir/ir_rope.c $src/codegen/ir/expr.c $(ls "$src"/codegen/front/*.c | tr '\n' ' ')"
  [lua_sandbox]="${base[*]} ${lua[*]}"
)
failed=0
for name in safetensors hf_index data model_yaml lua_sandbox; do
  [ -n "$only" ] && [ "$only" != "$name" ] && continue
  bin=$out/fuzz_$name
  # shellcheck disable=SC2086
  if ! "$cc" "${cflags[@]}" "$here/fuzz_$name.c" ${sources[$name]} $deps -lm -o "$bin" 2>"$out/$name.build.log"; then
    echo "FAIL: fuzz_$name does not build:"; tail -5 "$out/$name.build.log"; failed=1; continue
  fi
  mkdir -p "$out/corpus_$name"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -artifact_prefix="$out/$name-" "$out/corpus_$name" "$here/corpus/$name" \
       >"$out/$name.log" 2>&1; then
    echo "ok   fuzz_$name: $(grep -Eo '#[0-9]+.*DONE.*' "$out/$name.log" | head -c 120)"
  else
    echo "FAIL: fuzz_$name:"; grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$out/$name.log" | head -8
    failed=1
  fi
done
[ "$failed" -eq 0 ] && echo "fuzz: all harnesses clean" || exit 1
