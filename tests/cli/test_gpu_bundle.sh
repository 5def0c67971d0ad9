#!/bin/bash
# The GPU check's bundle, built as scripts/gpu-check.sh --bundle builds it for
# a GPU machine (no package registry there): it unpacks elsewhere, every
# binary finds all its libraries in the bundle and the base system (ldd: none
# "not found" with the bundle's folder first), and the unpacked lisa runs
# (`lisa gen` of the tiny GPT-2, sources only). A dry run: no GPU is needed.
. "$LISA_SRC/tests/cli/lib.sh"

cd "$SRC" || exit 1
build=$(realpath --relative-to="$SRC" "$(dirname "$LISA")")
BUNDLE=$TMP/gpu-bundle.tar.xz BUILD=$build NO_SETUP=1 bash scripts/gpu-check.sh --bundle >/dev/null \
  || fail "gpu-check.sh --bundle"
mkdir -p "$TMP/unpacked" && tar -xJf "$TMP/gpu-bundle.tar.xz" -C "$TMP/unpacked" \
  || fail "the bundle does not unpack"
for bin in lisa tests/test_dev_train tests/test_emu_gen tests/test_dev_decode tests/test_gpu_nccl; do
  [ -x "$TMP/unpacked/build/$bin" ] || { fail "the bundle lacks build/$bin"; continue; }
  missing=$(LD_LIBRARY_PATH=$TMP/unpacked/build/gpu-libs ldd "$TMP/unpacked/build/$bin" | grep "not found")
  [ -z "$missing" ] && echo "ok   build/$bin: every library found" || fail "build/$bin: $missing"
done
LD_LIBRARY_PATH=$TMP/unpacked/build/gpu-libs "$TMP/unpacked/build/lisa" gen models/gpt2-tiny.yaml \
  -o "$TMP/gen" --batch 2 --seq 8 --no-compile >/dev/null && [ -f "$TMP/gen/plan.txt" ] \
  && echo "ok   the unpacked lisa generates" || fail "the unpacked lisa does not run"
finish
