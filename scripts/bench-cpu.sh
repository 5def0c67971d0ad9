#!/bin/bash
# CPU benchmark: full fine-tuning of GPT-2 124M, B=4 T=64, lisa against the
# PyTorch eager peer (scripts/peer_torch_cpu.py). The two run alternately
# (lisa, torch, lisa, torch, ...) so that a noisy machine hurts both alike.
# Prints a markdown table: median ms/step, tokens/s, peak RSS and the ratios.
#
#   scripts/bench-cpu.sh                      # both, 3 rounds of 10 steps
#   ONLY=torch STEPS=6 ROUNDS=1 scripts/bench-cpu.sh
#
# Environment overrides (defaults in brackets):
#   BUILD [build]  MODEL [models/gpt2-124m.yaml]  DATA [data/tinyshakespeare.bin]
#   STEPS [10] steps per run, WARMUP [2] leading steps left out of the median,
#   ROUNDS [3], BATCH [4], SEQ [64], LR [1e-4], WD [0.1] weight decay on 2-D
#   weights, CLIP [1.0] global gradient norm, THREADS [2], PYTHON [python3],
#   ONLY [both|lisa|torch], OUT [a fresh temp dir] for the logs.
# A step's time is the median over its run's steps after WARMUP; a side's
# time is the median over its rounds. Peak RSS is the largest over rounds,
# from /usr/bin/time -v (same measure for both sides).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
MODEL=${MODEL:-models/gpt2-124m.yaml}
DATA=${DATA:-data/tinyshakespeare.bin}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
BATCH=${BATCH:-4}
SEQ=${SEQ:-64}
LR=${LR:-1e-4}
WD=${WD:-0.1}
CLIP=${CLIP:-1.0}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3}
ONLY=${ONLY:-both}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-cpu.XXXXXX")}
mkdir -p "$OUT"

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

die() { echo "bench-cpu.sh: $*" >&2; exit 1; }

check_setup() {
  case $ONLY in both|lisa|torch) ;; *) die "ONLY must be both, lisa or torch, not '$ONLY'" ;; esac
  [ "$STEPS" -gt "$WARMUP" ] || die "STEPS ($STEPS) must exceed WARMUP ($WARMUP)"
  [ -x /usr/bin/time ] || die "/usr/bin/time missing (apt-get install time)"
  command -v jq >/dev/null || die "jq missing (apt-get install jq)"
  if runs lisa; then
    [ -x "$BUILD/lisa" ] || die "$BUILD/lisa not found (meson setup $BUILD && meson compile -C $BUILD)"
    [ -f "$MODEL" ] || die "$MODEL not found"
    [ -f "$DATA" ] || die "$DATA not found"
  fi
  if runs torch; then
    "$PYTHON" -c "import torch, transformers" 2>/dev/null \
      || die "$PYTHON cannot import torch and transformers"
  fi
}

runs() { [ "$ONLY" = both ] || [ "$ONLY" = "$1" ]; }

# Runs a command under /usr/bin/time -v; its output goes to $1.log, the
# time report to $1.time. Stops the benchmark if the command fails.
timed() {
  local base=$1; shift
  if ! /usr/bin/time -v -o "$base.time" "$@" >"$base.log" 2>&1; then
    tail -n 20 "$base.log" >&2
    die "failed: $*  (log: $base.log)"
  fi
}

peak_rss_kib() {
  awk -F': ' '/Maximum resident set size/ { print $2 }' "$1.time"
}

# Median step_ms of a lisa JSONL log, leaving out the first WARMUP step rows.
lisa_median_ms() {
  jq -s --argjson w "$WARMUP" '
    [ .[] | select(.event == null and .step_ms != null) | .step_ms ] | .[$w:]
    | if length == 0 then error("no step rows after warm-up") else . end
    | sort | if length % 2 == 1 then .[length / 2 | floor]
             else (.[length / 2 - 1] + .[length / 2]) / 2 end' "$1"
}

run_lisa() {
  local base=$OUT/lisa.$1
  timed "$base" "$BUILD/lisa" train "$MODEL" --data "$DATA" --method ft \
    --steps "$STEPS" --batch "$BATCH" --seq "$SEQ" --lr "$LR" \
    --weight-decay "$WD" --grad-clip "$CLIP" --log-jsonl "$base.jsonl" --quiet --device cpu
  local ms
  ms=$(lisa_median_ms "$base.jsonl") || die "no usable step rows in $base.jsonl"
  printf 'lisa\t%s\t%s\n' "$ms" "$(peak_rss_kib "$base")" >>"$OUT/results.tsv"
}

run_torch() {
  local base=$OUT/torch.$1 data=()
  [ -f "$DATA" ] && data=(--data "$DATA")
  timed "$base" "$PYTHON" scripts/peer_torch_cpu.py "${data[@]}" \
    --steps "$STEPS" --warmup-steps "$WARMUP" --batch "$BATCH" --seq "$SEQ" \
    --lr "$LR" --weight-decay "$WD" --clip "$CLIP" --threads "$THREADS"
  local ms
  ms=$(grep '^{' "$base.log" | tail -n 1 | jq '.median_ms') \
    || die "no JSON summary in $base.log"
  printf 'torch\t%s\t%s\n' "$ms" "$(peak_rss_kib "$base")" >>"$OUT/results.tsv"
}

# Markdown table from results.tsv (impl, median ms of a round, peak RSS KiB).
print_table() {
  awk -F'\t' -v tokens=$((BATCH * SEQ)) '
    function median(impl,   n, i, j, t, a) {
      n = count[impl]
      for (i = 1; i <= n; i++) a[i] = ms[impl, i]
      for (i = 2; i <= n; i++)          # insertion sort: a handful of rounds
        for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function rounds(impl,   i, s) {
      for (i = 1; i <= count[impl]; i++) s = s (i > 1 ? " / " : "") sprintf("%.0f", ms[impl, i])
      return s
    }
    { count[$1]++; ms[$1, count[$1]] = $2; if ($3 > rss[$1]) rss[$1] = $3 }
    END {
      print "| impl | median ms/step | tokens/s | peak RSS (MiB) | rounds (ms) |"
      print "|---|---:|---:|---:|---|"
      names["lisa"] = "lisa ft (cpu)"; names["torch"] = "torch eager"
      for (k = 1; k <= 2; k++) {
        impl = k == 1 ? "lisa" : "torch"
        if (!count[impl]) continue
        med[impl] = median(impl)
        printf "| %s | %.1f | %.1f | %.0f | %s |\n", names[impl], med[impl],
          tokens * 1000 / med[impl], rss[impl] / 1024, rounds(impl)
      }
      if (count["lisa"] && count["torch"])
        printf "| ratio | torch/lisa %.2fx | lisa/torch %.2fx | torch/lisa %.2fx | |\n",
          med["torch"] / med["lisa"], med["torch"] / med["lisa"], rss["torch"] / rss["lisa"]
    }' "$OUT/results.tsv"
}

main() {
  check_setup
  : >"$OUT/results.tsv"
  local r
  for r in $(seq 1 "$ROUNDS"); do
    if runs lisa; then echo "round $r/$ROUNDS: lisa" >&2; run_lisa "$r"; fi
    if runs torch; then echo "round $r/$ROUNDS: torch" >&2; run_torch "$r"; fi
  done
  echo "GPT-2 124M full fine-tuning, B=$BATCH T=$SEQ, $THREADS threads," \
    "$STEPS steps/run (first $WARMUP left out), $ROUNDS rounds; logs in $OUT"
  echo
  print_table
}

main
