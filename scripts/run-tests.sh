#!/bin/bash
# run-tests.sh: sets up, builds and runs every test. Last line of output:
# "N passed, N failed" (skipped tests are listed but counted in neither).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

# The foreign-reader test reads our safetensors with Hugging Face's Python
# reader. Python is optional for the project; the test skips without it.
if command -v python3 >/dev/null && ! python3 -c 'import safetensors, numpy' 2>/dev/null; then
  python3 -m pip install -q safetensors numpy 2>/dev/null \
    || apt-get install -y -qq python3-numpy >/dev/null 2>&1 || true
fi

meson test -C build --print-errorlogs --num-processes 2 | tee build/test-summary.txt
status=${PIPESTATUS[0]}
passed=$(grep -Eo '^Ok: +[0-9]+' build/test-summary.txt | grep -Eo '[0-9]+' || echo 0)
expfail=$(grep -Eo '^Expected Fail: +[0-9]+' build/test-summary.txt | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -Eo '^Fail: +[0-9]+' build/test-summary.txt | grep -Eo '[0-9]+' || echo 0)
timeout=$(grep -Eo '^Timeout: +[0-9]+' build/test-summary.txt | grep -Eo '[0-9]+' || echo 0)
failed=$((failed + timeout))
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$((passed + expfail)) passed, $failed failed"
[ "$failed" -eq 0 ]
