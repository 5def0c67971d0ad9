#!/bin/bash
# gpu-check.sh: the GPU checks and benchmarks in one go, on a build made on a
# CPU machine.
#
# Here (a CPU machine with the toolkit):
#   bash scripts/gpu-check.sh --bundle
# builds and packs build/lisa, build/tests/test_dev_train,
# build/tests/test_emu_gen, build/tests/test_dev_decode and the shared libraries a CUDA image may lack
# (libyaml, Lua, cJSON, libgomp) into build/gpu-bundle.tar.xz (about 5 MB;
# the binaries link OpenBLAS statically). Then, on the GPU machine (no
# package registry there), with build/gpu-bundle.tar.xz carried:
#   bash scripts/gpu-check.sh
# unpacks it and writes every result to $OUT/gpu-check.txt (or
# /tmp/gpu-check/), and the steps' own files (benchmark rows, profiles,
# peer results) to $OUT/details.tar.gz, refreshed after every step (the
# device tool brings back at most 8 files), within $BUDGET seconds (default
# 450): a step that could not finish in what is left is skipped and says so
# (ONLY="memcheck peer" runs just those steps). In order of importance:
#   probe        a 5-step LISA run of the tiny GPT-2 on the device; where it
#                fails, the same run again under compute-sanitizer (probe-memcheck)
#                and with CUDA_LAUNCH_BLOCKING=1, which name the failing kernel
#   dev-train    20 steps of FT, LISA and LoRA (fp32, bf16-mixed, bf16-true)
#                on the device against the CPU trainer (test_dev_train)
#   paths        every generated path against the CPU backend (test_emu_gen),
#                the tensor-core attention among them
#   decode       lisa sample's decoding program against the CPU decoder, every
#                family (test_dev_decode)
#   nccl         the collectives' CUDA side with the machine's NCCL: a 1-rank
#                communicator, sums on their own stream ordered with the
#                compute stream (test_gpu_nccl; skipped without libnccl.so.2)
#   bench-*      GPT-2 124M, B=16 T=1024: FT and LISA G=2 (bf16-mixed), LISA
#                G=2 bf16-true: median tokens/s, MFU, peak bytes
#   profile-*    the same FT and LISA runs, 4 steps with --profile: ms per
#                step of every kernel and GEMM (profile-*.txt, .jsonl)
#   bench-lisa-simt  LISA with the SIMT attention kernels (--tune), against
#                the tensor-core ones of bench-lisa
#   memcheck     compute-sanitizer memcheck on a short run of the tiny GPT-2
#   racecheck    compute-sanitizer racecheck and synccheck on 2 LISA steps of a
#                small GPT-2 (head size 64, bf16: the tensor-core attention)
#   peer-torch   scripts/peer-torch.py FT and LISA, where torch is installed
#   check-cuda   lisa check on the device: the tiny GPT-2 (fp32) and the small
#                hd-64 GPT-2 (bf16, the tensor-core attention), every value
#   tune-cuda    lisa tune on the device: GPT-2 124M's tensor-core attention
#                variants at B=2 T=256, checked and timed
#   nvrtc        the NVRTC build time of GPT-2 124M on this machine
#   sample-*     lisa sample on GPT-2 124M (weights from 2 bench steps): 256
#                new tokens, fp32 and bf16, tokens/s
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${BUNDLE:-build/gpu-bundle.tar.xz}

# --bundle: set up and build, then pack (paths in the archive are build/...).
# For the test suite's dry run (tests/cli/test_gpu_bundle.sh): NO_SETUP=1
# packs what is built, BUILD names the build folder (relative; default build).
if [ "${1:-}" = --bundle ]; then
  [ -n "${NO_SETUP:-}" ] || bash scripts/setup.sh >/dev/null || exit 1
  B=${BUILD:-build}
  BINS="$B/lisa $B/tests/test_dev_train $B/tests/test_emu_gen $B/tests/test_dev_decode $B/tests/test_gpu_nccl"
  rm -rf "$B/gpu-libs" && mkdir -p "$B/gpu-libs"
  for lib in libyaml-0.so.2 liblua5.4.so.0 libcjson.so.1 libgomp.so.1 libpcre2-8.so.0 libutf8proc.so.2; do
    # shellcheck disable=SC2086
    path=$(ldd $BINS | awk -v l="$lib" '$1 == l {print $3; exit}')
    [ -n "$path" ] && cp -L "$path" "$B/gpu-libs/"
  done
  # shellcheck disable=SC2086
  tar -cJf "$BUNDLE" --transform "s|^$B/|build/|" $BINS "$B/gpu-libs" || exit 1
  ls -l "$BUNDLE"
  echo "carry: $BUNDLE"
  exit 0
fi

if [ -f "$BUNDLE" ]; then tar -xJf "$BUNDLE" || exit 1; fi
OUT=${OUT:-/tmp/gpu-check}
BUDGET=${BUDGET:-450}
W=${WORK:-/tmp/gpu-work} # the steps' files; packed into $OUT/details.tar.gz
mkdir -p "$OUT" "$W"
R=$OUT/gpu-check.txt
: > "$R"
# cuBLASLt and NVRTC of CUDA 13: the toolkit's, else a Python wheel's
LIBS=/usr/local/cuda/lib64
for d in /usr/local/cuda/targets/x86_64-linux/lib $(ls -d /opt/*/.venv/lib/python3*/site-packages/nvidia/cu13/lib \
    /usr/local/lib/python3*/dist-packages/nvidia/cu13/lib 2>/dev/null); do LIBS=$LIBS:$d; done
export LD_LIBRARY_PATH=$PWD/build/gpu-libs:$LIBS:${LD_LIBRARY_PATH:-}
export PATH=/usr/local/cuda/bin:$PATH # compute-sanitizer
export CUBLASLT_LOG_LEVEL=${CUBLASLT_LOG_LEVEL:-1} # errors only: 2 traces every call, slowing the runs
export LISA_SRC=$PWD OMP_NUM_THREADS=8 XDG_CACHE_HOME=/tmp/gpu-check-cache
START=$(date +%s)
failed=0

# step NAME TIMEOUT CMD...: runs CMD, its output and status into the results;
# skipped when the budget left is less than TIMEOUT, or when ONLY (a list of
# step-name patterns, for a second run of what a first one skipped) does not
# name it.
step() {
  local name=$1 limit=$2; shift 2
  if [ -n "${ONLY:-}" ]; then
    local want=0 p
    for p in $ONLY; do [[ $name == $p* ]] && want=1; done
    [ "$want" -eq 1 ] || return 1
  fi
  local left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt "$limit" ]; then
    echo "== $name: skipped, ${left}s of the budget left, it may take ${limit}s" | tee -a "$R"
    return 1
  fi
  local t0=$(date +%s.%N)
  echo "== $name: $*" >> "$R"
  timeout -k 10 "$limit" "$@" > "$W/$name.log" 2>&1
  local rc=$?
  # the whole log in the details; its head and tail in the results
  if [ "$(stat -c %s "$W/$name.log")" -gt 120000 ]; then
    head -c 80000 "$W/$name.log"; echo; echo "[... $W/$name.log cut: its last 30000 bytes ...]"
    tail -c 30000 "$W/$name.log"
  else cat "$W/$name.log"; fi >> "$R"

  local t1=$(date +%s.%N)
  awk -v n="$name" -v rc="$rc" -v a="$t0" -v b="$t1" \
    'BEGIN {printf "== %s: exit %d, %.1f s\n\n", n, rc, b - a}' >> "$R"
  tar -czf "$OUT/details.tar.gz.part" -C "$W" . && mv "$OUT/details.tar.gz.part" "$OUT/details.tar.gz"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
  echo "$name: exit $rc"
  return "$rc"
}

# summary FILE: medians over the rows after the first 5 (warm-up) of a
# --log-jsonl file.
summary() {
  awk -v f="$1" '
    function field(k,   m) { if (match($0, "\"" k "\":[-0-9.e+]+")) return substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3); return "" }
    /"step":/ { n++; if (n == 1) first = field("loss"); last = field("loss")
      if (n > 5) { tps[++k] = field("tokens_per_s") + 0; ms[k] = field("step_ms") + 0; mfu[k] = field("mfu") + 0 }
      p = field("peak_bytes") + 0; if (p > peak) peak = p
      u = field("device_used_bytes") + 0; if (u > used) used = u
      h = field("peak_rss_bytes") + 0; if (h > rss) rss = h }
    function median(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END { if (k == 0) { print f ": no rows after warm-up"; exit 1 }
      printf "%s: %d steps, median %.1f ms, %.0f tokens/s, mfu %.4f, arena %.2f GiB, device used %.2f GiB, host peak RSS %.2f GiB, loss %s -> %s\n",
        f, n, median(ms, k), median(tps, k), median(mfu, k), peak / 2^30, used / 2^30, rss / 2^30, first, last }' "$1"
}

TINY="models/gpt2-tiny.yaml --data tests/fixtures/tokens-67.bin"
# --no-tune-db: the default tunables, whatever tune-cuda stored before them
BENCH="models/gpt2-124m.yaml --data data/tinyshakespeare.bin --batch 16 --seq 1024 --steps 30 --device cuda --quiet --no-tune-db"
PROBE="build/lisa train $TINY --steps 5 --batch 2 --seq 8 --device cuda --method lisa --gamma 1 --interval 2"
SANITIZER="compute-sanitizer --error-exitcode 9 --print-limit 20"

{ date -u; uname -a; nvidia-smi 2>&1 | head -15; echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  command -v compute-sanitizer cuobjdump python3; } >> "$R"
# shellcheck disable=SC2086
if ! step probe 90 $PROBE --log-jsonl "$W/probe.jsonl"; then
  # shellcheck disable=SC2086
  step probe-memcheck 120 $SANITIZER --tool memcheck $PROBE --quiet
  # shellcheck disable=SC2086
  step probe-blocking 60 env CUDA_LAUNCH_BLOCKING=1 $PROBE --quiet
fi
cut -c1-400 "$W/probe.jsonl" >> "$R" 2>/dev/null
step dev-train 150 env LISA_TEST_DEVICE=cuda build/tests/test_dev_train
step paths 120 env LISA_TEST_DEVICE=cuda build/tests/test_emu_gen
step decode 60 env LISA_TEST_DEVICE=cuda build/tests/test_dev_decode
step nccl 60 bash -c 'build/tests/test_gpu_nccl; rc=$?; [ "$rc" = 77 ] && rc=0; exit "$rc"' # 77: no NCCL here
for run in "ft bf16 --method ft" "lisa bf16 --method lisa --gamma 2" \
           "lisa-true bf16-true --method lisa --gamma 2"; do
  set -- $run
  name=$1 dtype=$2; shift 2
  # shellcheck disable=SC2086
  step "bench-$name" 90 build/lisa train $BENCH --dtype "$dtype" "$@" --log-jsonl "$W/bench-$name.jsonl" &&
    summary "$W/bench-$name.jsonl" >> "$R"
done
# A small GPT-2 whose head size (64) and dtype take the tensor-core attention.
sed 's/n_embd: 768/n_embd: 128/; s/n_head: 12/n_head: 2/; s/n_layer: 12/n_layer: 3/' \
  models/gpt2-124m.yaml > "$W/gpt2-small-hd64.yaml"
if command -v compute-sanitizer >/dev/null; then
  # shellcheck disable=SC2086
  step memcheck 90 $SANITIZER --tool memcheck \
    build/lisa train $TINY --steps 3 --batch 2 --seq 8 --device cuda --method lisa --gamma 1 --quiet
  RACE="build/lisa train $W/gpt2-small-hd64.yaml --data data/tinyshakespeare.bin --batch 2 --seq 128
    --steps 2 --device cuda --dtype bf16 --method lisa --gamma 1 --quiet"
  # shellcheck disable=SC2086
  step racecheck 120 $SANITIZER --tool racecheck $RACE
  # shellcheck disable=SC2086
  step synccheck 90 $SANITIZER --tool synccheck $RACE
fi
if python3 -c 'import numpy, torch, transformers' 2>/dev/null; then
  P="python3 scripts/peer-torch.py --model gpt2-124m --device cuda --dtype bf16 --attn sdpa \
     --batch 16 --seq 1024 --steps 30 --warmup-steps 5 --data data/tinyshakespeare.bin"
  step peer-torch-ft 120 bash -c "$P --method ft > $W/peer-torch-ft.json"
  step peer-torch-lisa 120 bash -c "$P --method lisa --gamma 2 --interval 20 > $W/peer-torch-lisa.json"
  cat "$W"/peer-torch-*.json >> "$R" 2>/dev/null
else
  echo "== peer-torch: skipped, no numpy/torch/transformers on this machine" >> "$R"
fi
step check-cuda 90 bash -c "build/lisa check models/gpt2-tiny.yaml --device cuda | tail -3 &&
  build/lisa check $W/gpt2-small-hd64.yaml --device cuda --dtype bf16 --batch 2 --seq 128 | tail -3"
step tune-cuda 150 bash -c "build/lisa tune models/gpt2-124m.yaml --device cuda --dtype bf16 --batch 2 \
  --seq 256 --kernels attention_forward_mma && build/lisa tune models/gpt2-124m.yaml --device cuda \
  --dtype bf16 --batch 2 --seq 256 --report"
# Where the time goes: every launch and GEMM of 3 steps (after a warm-up
# step), FT and LISA; the first 25 rows into the results.
for run in "ft --method ft" "lisa --method lisa --gamma 2"; do
  set -- $run
  name=$1; shift
  # shellcheck disable=SC2086
  step "profile-$name" 60 bash -c "build/lisa train ${BENCH/--steps 30/--steps 4} --dtype bf16 $* \
    --profile --log-jsonl $W/profile-$name.jsonl > $W/profile-$name.txt" &&
    head -28 "$W/profile-$name.txt" >> "$R"
done
# The tensor-core attention against attention.cuh's SIMT kernels: LISA G=2
# with every attention_*_mma kernel switched off.
printf 'return {attention_forward_mma = {USE = 0}, attention_backward_dq_mma = {USE = 0},\n  attention_backward_dkdv_mma = {USE = 0}}\n' > "$W/simt.lua"
# shellcheck disable=SC2086
step bench-lisa-simt 60 build/lisa train ${BENCH/--steps 30/--steps 12} --dtype bf16 --method lisa \
  --gamma 2 --tune "$W/simt.lua" --log-jsonl "$W/bench-lisa-simt.jsonl" &&
  summary "$W/bench-lisa-simt.jsonl" >> "$R"
step nvrtc-gpt2-124m 60 build/lisa gen models/gpt2-124m.yaml -o "$W/gen" --batch 16 --seq 1024
cp "$W/gen/compile.txt" "$W/compile-gpt2-124m.txt" 2>/dev/null
rm -rf "$W/gen"
# shellcheck disable=SC2086
if step sample-weights 60 build/lisa train ${BENCH/--steps 30/--steps 2} --dtype bf16 \
     --save "/tmp/g124.safetensors"; then
  for dtype in fp32 bf16; do
    step "sample-$dtype" 45 bash -c "build/lisa sample models/gpt2-124m.yaml --weights \
      /tmp/g124.safetensors --prompt-ids '464 2068 7586 21831' --max-new-tokens 256 --device cuda \
      --dtype $dtype --json > $W/sample-$dtype.json" &&
      { echo "sample-$dtype:"; grep -o '"tokens_per_s":[0-9.]*' "$W/sample-$dtype.json"; } >> "$R"
  done
  rm -f /tmp/g124.safetensors
fi
echo "failed steps: $failed" >> "$R"
echo "failed steps: $failed (results in $R)"
[ "$failed" -eq 0 ]
