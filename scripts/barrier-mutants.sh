#!/bin/bash
# barrier-mutants.sh: removes each __syncthreads() in templates/ in turn and
# reports which emulator test catches the mutant, under each schedule of
# SCHEDULES (default "fifo random greedy"; templates/emu/emu_sched.h: greedy runs
# one warp ahead of the others, which write-after-read races need). A barrier no
# test catches must say why it stays anyway: a `mutant-survives:` comment on
# its line or the line above. Exit status 1 if any survivor lacks one.
#
#   bash scripts/barrier-mutants.sh                  every barrier
#   bash scripts/barrier-mutants.sh templates/norm.cuh:73 ...   just those
#
# Works on a copy (WORK, default /tmp/lisa-barrier-mutants): a git worktree of
# the current tree (uncommitted changes to tracked files included) with its
# own build, so the checkout stays as it is. Each mutant rebuilds only the
# tests that read its template and runs them fastest first, stopping at the
# first that fails. About a minute per barrier on 2 cores.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/lisa-barrier-mutants}
SCHEDULES=${SCHEDULES:-fifo random greedy}

# The tests that exercise each template, fastest first.
tests_for() {
  case $(basename "$1") in
    adamw.cuh) echo emu_adamw dev_train ;;
    attention.cuh) echo emu_attention emu_gen ;;
    attention_decode.cuh) echo dev_decode ;;
    attention_mma.cuh) echo emu_attention_mma emu_gen ;;
    cross_entropy.cuh) echo emu_classifier emu_gen ;;
    embedding.cuh) echo emu_classifier emu_gen ;;
    norm.cuh) echo emu_norm emu_gen ;;
    rope.cuh) echo emu_rope emu_gen ;;
    *) echo emu_emu emu_norm emu_classifier emu_adamw emu_extreme dev_decode emu_gen ;;
  esac
}

setup() {
  cd "$SRC" || exit 1
  local rev
  rev=$(git stash create) && [ -n "$rev" ] || rev=$(git rev-parse HEAD)
  if [ ! -e "$WORK/.git" ]; then git worktree add --detach "$WORK" "$rev" >/dev/null || exit 1
  else git -C "$WORK" checkout -q -f --detach "$rev" || exit 1; fi
  [ -f "$WORK/build/build.ninja" ] || meson setup "$WORK/build" "$WORK" --buildtype=release >/dev/null || exit 1
}

# "file:line" of every barrier (or the arguments).
barriers() {
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; return; fi
  (cd "$WORK" && grep -n "__syncthreads()" templates/*.cuh | cut -d: -f1,2)
}

justified() { # file line: the mutant-survives comment, if any
  sed -n "$(( $2 > 1 ? $2 - 1 : 1 )),$2p" "$WORK/$1" | grep -o "mutant-survives:.*" | head -1
}

run_mutant() { # file line
  local file=$1 line=$2 t sch
  git -C "$WORK" checkout -q -- templates
  sed -i "${line}s/__syncthreads();/(void)0; \/* mutant: barrier removed *\//" "$WORK/$file"
  local tests; tests=$(tests_for "$file")
  local targets=""
  for t in $tests; do targets="$targets tests/test_$t"; done
  # shellcheck disable=SC2086
  if ! nice ninja -C "$WORK/build" $targets >/dev/null 2>&1; then
    echo "$file:$line  build failed"; return 0
  fi
  for sch in $SCHEDULES; do
    for t in $tests; do
      if ! (cd "$WORK/build" && LISA_SRC=$WORK LISA_EMU_SCHEDULE=$sch LISA_EMU_SEED=7 \
              OMP_NUM_THREADS=2 timeout 900 "tests/test_$t" >/dev/null 2>&1); then
        echo "$file:$line  caught by $t ($sch)"; return 0
      fi
    done
  done
  local why; why=$(justified "$file" "$line")
  if [ -n "$why" ]; then echo "$file:$line  survives, justified: ${why#mutant-survives: }"
  else echo "$file:$line  SURVIVES: no test catches it and no mutant-survives comment"; return 1; fi
}

setup
bad=0
while IFS=: read -r file line; do
  run_mutant "$file" "$line" || bad=$((bad + 1))
done < <(barriers "$@")
git -C "$WORK" checkout -q -- templates
echo "unjustified survivors: $bad"
[ "$bad" -eq 0 ]
