#!/bin/bash
# A file written by our st_write must load in the reference Python reader
# (safetensors.numpy) with every dtype, shape, value and metadata entry
# exact. The writer is `test_safetensors --write PATH` (its write_known).
set -eu
writer=${LISA_TEST_SAFETENSORS:?set by tests/meson.build}
if ! python3 -c 'import numpy, safetensors' 2>/dev/null; then
  echo "skip: python3 with numpy and safetensors is needed"
  exit 77
fi
dir=$(mktemp -d /tmp/lisa-foreign-XXXXXX)
trap 'rm -rf "$dir"' EXIT
"$writer" --write "$dir/known.safetensors"

python3 - "$dir/known.safetensors" <<'PY'
import sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
got = load_file(path)
f32 = np.float32
want = {
    "wte.weight": (np.array([(i * 37 % 101 - 50) / 16 for i in range(21)],
                            f32).reshape(7, 3)),
    "h.0.ln_1.bias": np.array([-0.0, 2.0**-149, np.finfo(f32).max,
                               -np.finfo(f32).tiny, 0.1], f32),
    "step": np.array(123456789, np.int32),
    "ids": np.array([-2**31, -1, 0, 1, 2**31 - 1, 42],
                    np.int32).reshape(2, 1, 3),
    "empty": np.zeros((0, 4), f32),
}
bad = []
if sorted(got) != sorted(want):
    bad.append(f"tensor names {sorted(got)} != {sorted(want)}")
for name, w in want.items():
    g = got.get(name)
    if g is None:
        continue
    if g.dtype != w.dtype or g.shape != w.shape:
        bad.append(f"{name}: {g.dtype}{g.shape} != {w.dtype}{w.shape}")
    elif g.tobytes() != w.tobytes():  # bit-exact, so -0.0 counts
        bad.append(f"{name}: values {g.ravel()[:8]} != {w.ravel()[:8]}")
with safe_open(path, framework="numpy") as fh:
    meta = fh.metadata()
if meta != {"format": "pt", "note": 'say "hi"\\n'}:
    bad.append(f"metadata {meta}")
for line in bad:
    print(f"{path}: {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "ok: Python safetensors reads $writer's file exactly"
