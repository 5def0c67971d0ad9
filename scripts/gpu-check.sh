#!/bin/bash
# gpu-check.sh: the GPU checks in one go, on a build made on a CPU machine.
#
# Here (a CPU machine with the toolkit):
#   bash scripts/gpu-check.sh --bundle
# builds, and copies the shared libraries the binaries need that a CUDA image
# may lack (libyaml, Lua, cJSON, libgomp) into build/gpu-libs. Then, on the GPU
# machine (no package registry there), with build/lisa, build/tests/test_emu_gen
# and build/gpu-libs carried:
#   bash scripts/gpu-check.sh
# writes every result to $OUT/gpu-check.txt (or /tmp/gpu-check/) within about
# 8 minutes: the device, the probe, every generated path of GPT-2 and LLaMA
# (fp32, bf16, LoRA, tuned variants) run on the device and compared with the
# CPU backend, compute-sanitizer memcheck on one model, and NVRTC's build time
# for GPT-2 124M on the machine itself.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = --bundle ]; then
  bash scripts/setup.sh >/dev/null || exit 1
  mkdir -p build/gpu-libs
  for lib in libyaml-0.so.2 liblua5.4.so.0 libcjson.so.1 libgomp.so.1; do
    path=$(ldd build/lisa build/tests/test_emu_gen | awk -v l="$lib" '$1 == l {print $3; exit}')
    [ -n "$path" ] && cp -L "$path" build/gpu-libs/
  done
  ls -l build/lisa build/tests/test_emu_gen build/gpu-libs
  echo "carry: build/lisa build/tests/test_emu_gen build/gpu-libs"
  exit 0
fi

OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
R=$OUT/gpu-check.txt
: > "$R"
export LD_LIBRARY_PATH=$PWD/build/gpu-libs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export LISA_SRC=$PWD OMP_NUM_THREADS=8 XDG_CACHE_HOME=$OUT/cache
failed=0

# step NAME TIMEOUT CMD...: runs CMD, its output and status into the results.
step() {
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s.%N)
  echo "== $name: $*" >> "$R"
  timeout "$limit" "$@" >> "$R" 2>&1
  local rc=$?
  local t1=$(date +%s.%N)
  awk -v n="$name" -v rc="$rc" -v a="$t0" -v b="$t1" \
    'BEGIN {printf "== %s: exit %d, %.1f s\n\n", n, rc, b - a}' >> "$R"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
  echo "$name: exit $rc"
}

{ date -u; uname -a; nvidia-smi 2>&1 | head -15; } >> "$R"
# The probe: expected to find the device and say the CUDA trainer is not built.
step probe 60 bash -c 'build/lisa train models/gpt2-tiny.yaml --data tests/fixtures/tokens-67.bin \
  --steps 1 --batch 2 --seq 8 --device cuda; true'
step paths-on-device 300 env LISA_TEST_DEVICE=cuda build/tests/test_emu_gen
if command -v compute-sanitizer >/dev/null; then
  step memcheck 180 compute-sanitizer --tool memcheck --error-exitcode 9 \
    env LISA_TEST_DEVICE=cuda LISA_TEST_ONLY=gpt2_bf16 build/tests/test_emu_gen
fi
step nvrtc-gpt2-124m 120 build/lisa gen models/gpt2-124m.yaml -o "$OUT/gen" --batch 16 --seq 1024 \
  --arch sm_90
cp "$OUT/gen/compile.txt" "$OUT/compile-gpt2-124m.txt" 2>/dev/null
rm -rf "$OUT/gen" "$OUT/cache"
echo "failed steps: $failed" >> "$R"
echo "failed steps: $failed (results in $R)"
[ "$failed" -eq 0 ]
