#!/bin/bash
# Accidents during lisa train: SIGINT stops after the step in flight and
# saves a state that resumes exactly; kill -9 at arbitrary moments (during
# saves too) leaves `latest` naming a complete state that resumes exactly; a
# full disk (a file-size limit: writes fail with EFBIG) fails the run with a
# message and leaves the earlier state and weights as they were.
. "$LISA_SRC/tests/cli/lib.sh"

TINY=$SRC/models/gpt2-tiny.yaml
TOKENS=$SRC/tests/fixtures/tokens-67.bin
# an array, not a function: `cmd &` must be lisa's own pid for the signals
train=("$LISA" train "$TINY" --data "$TOKENS" --device cpu --quiet --batch 4 --seq 16 --lr 1e-2
  --method lisa --gamma 1 --interval 3)
run() { "${train[@]}" "$@"; }
rows() { grep -E '^\{"step":' "$1" | sed -E 's/,"step_ms".*//'; }

# saved_step DIR: the step `latest` names, or nothing
saved_step() { sed -n 's/^step-\([0-9]*\)$/\1/p' "$1/latest" 2>/dev/null; }

# wait_for_state DIR MIN: until DIR/latest names a step >= MIN (2 minutes at most)
wait_for_state() {
  for _ in $(seq 1200); do  # up to 2 minutes: saves fsync, slow on a busy disk
    local s; s=$(saved_step "$1")
    [ -n "$s" ] && [ "$s" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# A resume from DIR to step N+2 gives the rows of a straight run.
check_resumes_exactly() {
  local dir=$1 name=$2 n; n=$(saved_step "$dir")
  [ -n "$n" ] || { fail "$name: no state in $dir"; return; }
  rm -f "$TMP/straight.jsonl" "$TMP/resumed.jsonl" # a resume continues an existing log
  run --steps $((n + 2)) --log-jsonl "$TMP/straight.jsonl" || fail "$name: straight run failed"
  run --steps $((n + 2)) --resume "$dir" --log-jsonl "$TMP/resumed.jsonl" \
    || { fail "$name: resume from step $n failed"; return; }
  if diff <(rows "$TMP/straight.jsonl" | tail -2) <(rows "$TMP/resumed.jsonl") >/dev/null; then
    echo "ok   $name: resumed at step $n, exact"
  else
    fail "$name: steps $n, $((n + 1)) after the resume differ from a straight run"
  fi
}

# SIGINT: the step in flight ends, the state is saved, exit 130, and the
# message says how to go on.
"${train[@]}" --steps 1000000 --save-every 2 --save-state "$TMP/int" --log-jsonl "$TMP/int.jsonl" \
  2>"$TMP/int.err" &
pid=$!
wait_for_state "$TMP/int" 4 || fail "SIGINT: no state saved in time"
kill -INT $pid
wait $pid; rc=$?
[ "$rc" -eq 130 ] || fail "SIGINT: exit status $rc, expected 130"
grep -Eq "interrupted before step [0-9]+; the state is saved: --resume $TMP/int continues" \
  "$TMP/int.err" || fail "SIGINT: message: $(cat "$TMP/int.err")"
grep -q '"event":"interrupted"' "$TMP/int.jsonl" || fail "SIGINT: no interrupted event in the JSONL"
n=$(saved_step "$TMP/int")
[ "$n" = "$(grep -Eo 'before step [0-9]+' "$TMP/int.err" | grep -Eo '[0-9]+')" ] \
  || fail "SIGINT: latest names step $n, the message another"
check_resumes_exactly "$TMP/int" "SIGINT"

# kill -9 at three moments of a run that saves after every step: each time
# the latest state is complete and the run goes on from it.
for i in 1 2 3; do
  resume=()
  [ -f "$TMP/k/latest" ] && resume=(--resume "$TMP/k")
  "${train[@]}" --steps 1000000 --save-every 1 --save-state "$TMP/k" "${resume[@]}" 2>"$TMP/k$i.err" &
  pid=$!
  wait_for_state "$TMP/k" $((3 * i)) || fail "kill -9 #$i: no state saved in time: $(cat "$TMP/k$i.err")"
  sleep "0.0$((RANDOM % 10))"
  kill -9 $pid
  wait $pid 2>/dev/null
done
check_resumes_exactly "$TMP/k" "kill -9 three times"

# kill -9 while the marker of a new step folder was being written leaves a
# folder holding only its temporary file: ours, started afresh, not refused
# as a foreign folder (a kill -9 #3 above once hit this).
run --steps 2 --save-state "$TMP/m" || fail "marker: the first run failed"
mkdir "$TMP/m/step-3" && : >"$TMP/m/step-3/lisa-state.tmp.Ab12Cd"
run --steps 4 --save-every 1 --resume "$TMP/m" --save-state "$TMP/m" \
  && [ "$(saved_step "$TMP/m")" = 4 ] && [ ! -e "$TMP/m/step-3" ] \
  && echo "ok   a step folder holding only the marker's temporary file is taken over" \
  || fail "marker: a crash in the marker's write blocks the next save"
mkdir "$TMP/m/step-5" && : >"$TMP/m/step-5/notes.txt"
expect_error "a step folder with a file of the user's" "step-5: exists and was not written by lisa" \
  run --steps 5 --resume "$TMP/m" --save-state "$TMP/m"

# A full disk while saving the state: the run fails saying so; latest and
# the earlier state are as they were, and resume from them still works.
run --steps 4 --save-state "$TMP/d" || fail "disk full: the first run failed"
cp -r "$TMP/d" "$TMP/d.before"
out=$( (trap '' XFSZ; ulimit -f 72; run --steps 8 --resume "$TMP/d" --save-state "$TMP/d") 2>&1)
rc=$?
[ "$rc" -ne 0 ] || fail "disk full: state save succeeded under a 72 KiB file limit (the model fits, the optimizer not)"
grep -q "File too large" <<<"$out" || fail "disk full: message does not say why: $out"
[ "$(saved_step "$TMP/d")" = 4 ] || fail "disk full: latest changed to $(cat "$TMP/d/latest")"
for f in model optimizer; do
  cmp -s "$TMP/d.before/step-4/$f.safetensors" "$TMP/d/step-4/$f.safetensors" \
    || fail "disk full: step-4/$f.safetensors changed"
done
check_resumes_exactly "$TMP/d" "disk full while saving the state"

# ... and while saving the weights: the earlier file stays, no temporary left.
run --steps 2 --save "$TMP/w.safetensors" || fail "disk full: the weights run failed"
cp "$TMP/w.safetensors" "$TMP/w.before"
out=$( (trap '' XFSZ; ulimit -f 20; run --steps 3 --save "$TMP/w.safetensors") 2>&1)
[ $? -ne 0 ] || fail "disk full: --save succeeded under a 20 KiB file limit"
grep -q "File too large" <<<"$out" || fail "disk full (--save): message does not say why: $out"
cmp -s "$TMP/w.before" "$TMP/w.safetensors" || fail "disk full: --save damaged the earlier file"
left=$(find "$TMP" -maxdepth 1 -name 'w.safetensors?*' | head -1)
[ -z "$left" ] || fail "disk full: a temporary file was left behind: $left"

finish
