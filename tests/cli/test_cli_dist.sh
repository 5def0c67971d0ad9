#!/bin/bash
# Data parallel on the CPU: `mpirun -np 2 lisa train --batch 2` against one
# process at --batch 4. FT, LISA and LoRA follow it to float rounding over
# 20 steps (loss and gradient norm, every step); the bytes each LISA step
# sums over ranks are its trainable gradients' (lisa plan's) and the loss;
# rank 0 writes the files; --zero 1 shards the optimizer state and is the
# same run bit for bit; a state resumes at another rank count with the
# same whole batch; ranks that disagree on their settings, a rank
# that fails, is killed or stops end every rank, never a hang. The device
# trainer (--device emu, NCCL emulated over MPI) on 2 ranks follows one
# process at twice the batch too.
. "$LISA_SRC/tests/cli/lib.sh"
cd "$SRC" || exit 1
if ! command -v mpirun > /dev/null; then
  echo "skip: no mpirun (apt-get install openmpi-bin)"
  exit 77
fi
# Open MPI in a container, as root: allowed, and shared memory without CMA
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
RUN="models/gpt2-tiny.yaml --data tests/fixtures/tokens-67.bin --seq 8 --steps 20 --device cpu --quiet"
# Under AddressSanitizer the ranks do not check leaks: Open MPI's own
# allocations, its plugins unloaded by MPI_Finalize, read as leaks of unknown
# modules. The trainer's code is the one process's, leak-checked elsewhere.
MPIRUN=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun)
mpi() { timeout 120 "${MPIRUN[@]}" -np 2 "$@"; }

# field NAME FILE: the values of NAME in a JSONL file's step rows
field() { grep '"step":' "$2" | grep -o "\"$1\":[-0-9.e+]*" | cut -d: -f2; }
# follows NAME A B TOL N: B's last N values of NAME are A's last N within TOL
# (relative), saying where not
follows() {
  paste <(field "$1" "$2" | tail -"$5") <(field "$1" "$3") | awk -v k="$1" -v tol="$4" -v want="$5" '
    { n++; d = $1 - $2; if (d < 0) d = -d; s = $1 < 0 ? -$1 : $1
      if (d > tol * s) { printf "row %d %s: %s against %s\n", n, k, $1, $2; bad = 1 } }
    END { exit bad || n != want }'
}
# eval_loss WEIGHTS: lisa eval's loss of the tiny GPT-2 with them
eval_loss() {
  "$LISA" eval models/gpt2-tiny.yaml --weights "$1" --data tests/fixtures/tokens-67.bin --batch 2 --seq 8 2>/dev/null |
    grep -o '"loss":[0-9.]*' | cut -d: -f2
}
# near A B TOL: |A - B| <= TOL |A|, both numbers
near() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" -v tol="$3" 'BEGIN { d = a - b; exit !(d <= tol * a && -d <= tol * a) }'; }

# name, the method's settings for train, and for plan (LoRA saves merged: eval reads a base model)
for run in "ft|--method ft|--method ft" "lisa|--method lisa --gamma 1 --interval 3|--method lisa --gamma 1" \
           "lora|--method lora --lora-rank 4 --merge-lora|--method lora --lora-rank 4" \
           "accum|--method lisa --gamma 1 --interval 3 --grad-accum 2|--method lisa --gamma 1"; do
  IFS='|' read -r name method plan_method <<<"$run"
  # shellcheck disable=SC2086
  "$LISA" train $RUN --batch 4 $method --log-jsonl "$TMP/one-$name.jsonl" --save "$TMP/one-$name.safetensors" &&
    mpi "$LISA" train $RUN --batch 2 $method --log-jsonl "$TMP/two-$name.jsonl" --save "$TMP/two-$name.safetensors" ||
    { fail "$name: a run failed"; continue; }
  ok=1
  for k in loss grad_norm; do follows "$k" "$TMP/one-$name.jsonl" "$TMP/two-$name.jsonl" 1e-5 20 || ok=0; done
  # the sum over ranks: the trainable gradients and the loss, as lisa plan --ranks says
  # shellcheck disable=SC2086
  plan=$("$LISA" plan models/gpt2-tiny.yaml $plan_method --batch 2 --seq 8 --ranks 2 --json)
  grads=$(grep -o '"grads":[0-9]*' <<<"$plan" | cut -d: -f2)
  bytes=$(field comm_bytes "$TMP/two-$name.jsonl" | sort -u)
  [ "$bytes" = "$((grads + 8))" ] && grep -q "\"ranks\":2,\"zero\":0,\"comm_bytes\":$bytes,\"ring_bytes\":$bytes[,}]" <<<"$plan" ||
    { echo "comm_bytes $bytes; plan: $plan"; ok=0; }
  [ "$(field ranks "$TMP/two-$name.jsonl" | sort -u)" = 2 ] || ok=0
  # rank 0's checkpoint is the run's: its loss is the one process's
  one=$(eval_loss "$TMP/one-$name.safetensors") two=$(eval_loss "$TMP/two-$name.safetensors")
  near "$one" "$two" 1e-5 ||
    { echo "eval: $one alone, $two from rank 0's save"; ok=0; }
  [ "$ok" = 1 ] && echo "ok   $name: 2 ranks x B=2 = 1 x B=4 over 20 steps, $bytes bytes a step summed" ||
    fail "$name: 2 ranks differ from one process"
done
ft=$(field comm_bytes "$TMP/two-ft.jsonl" | sort -u); lisa=$(field comm_bytes "$TMP/two-lisa.jsonl" | sort -u)
echo "     LISA (gamma 1) sums $lisa bytes a step, FT $ft"

# --zero 1: each rank receives the sum of its half of the gradients
# (reduce-scatter), keeps the moments of that half, and the weights are
# gathered after AdamW; the norm's squares are summed over the ranks
# share by share, as without it: the same run bit for bit (losses, norms,
# saved weights), half the optimizer's bytes, the gradients' bytes once
# and the weights' once, and a double per region (E, H, slots) per rank
for name in ft lisa lora; do
  case $name in # gpt2-tiny: 2 blocks
  ft) method="--method ft" regions=4 ;; lisa) method="--method lisa --gamma 1 --interval 3" regions=3 ;;
  lora) method="--method lora --lora-rank 4" regions=4 ;;
  esac
  # shellcheck disable=SC2086
  mpi "$LISA" train $RUN --batch 2 $method --zero 1 --log-jsonl "$TMP/zero-$name.jsonl" \
    --save "$TMP/zero-$name.safetensors" ${method/*lora*/--merge-lora} || { fail "zero $name: the run failed"; continue; }
  opt() { grep -m1 -o '"optimizer":[0-9]*' "$1" | cut -d: -f2; }
  # shellcheck disable=SC2086
  plan=$("$LISA" plan models/gpt2-tiny.yaml ${method/--interval 3/} --batch 2 --seq 8 --ranks 2 --zero 1 --json)
  full=$(field comm_bytes "$TMP/two-$name.jsonl" | sort -u); zero=$(field comm_bytes "$TMP/zero-$name.jsonl" | sort -u)
  [ "$(field loss "$TMP/zero-$name.jsonl")" = "$(field loss "$TMP/two-$name.jsonl")" ] &&
    [ "$(field grad_norm "$TMP/zero-$name.jsonl")" = "$(field grad_norm "$TMP/two-$name.jsonl")" ] &&
    cmp -s "$TMP/zero-$name.safetensors" "$TMP/two-$name.safetensors" &&
    [ "$(($(opt "$TMP/zero-$name.jsonl") * 2))" = "$(opt "$TMP/two-$name.jsonl")" ] &&
    [ "$zero" = "$((2 * (full - 8) + 8 + 8 * regions * 2))" ] && grep -q "\"optimizer\":$(opt "$TMP/zero-$name.jsonl")," <<<"$plan" &&
    grep -q "\"zero\":1,\"comm_bytes\":$zero," <<<"$plan" &&
    echo "ok   --zero 1 $name: the same bits, $(opt "$TMP/zero-$name.jsonl") of $(opt "$TMP/two-$name.jsonl") optimizer bytes a rank, $zero bytes a step" ||
    fail "--zero 1 $name: differs (optimizer $(opt "$TMP/zero-$name.jsonl") of $(opt "$TMP/two-$name.jsonl"), bytes $zero for $full)"
done

# a state resumes at another rank count with the same whole batch: 10 steps
# on 2 ranks then 10 alone, and 10 alone then 10 on 2 ranks, are the 20 steps
# of one process (LISA: the active sets and the slots' moments carry over)
LISA_RUN="$RUN --method lisa --gamma 1 --interval 3"
# shellcheck disable=SC2086
mpi "$LISA" train ${LISA_RUN/--steps 20/--steps 10} --batch 2 --save-state "$TMP/st2" &&
  "$LISA" train $LISA_RUN --batch 4 --resume "$TMP/st2" --log-jsonl "$TMP/resumed1.jsonl" &&
  "$LISA" train ${LISA_RUN/--steps 20/--steps 10} --batch 4 --save-state "$TMP/st1" &&
  mpi "$LISA" train $LISA_RUN --batch 2 --resume "$TMP/st1" --log-jsonl "$TMP/resumed2.jsonl" ||
  fail "resume: a run failed"
# --zero 1's state: the moments gathered for rank 0 to write, each rank's
# shard taken back on a resume, with or without --zero
# shellcheck disable=SC2086
mpi "$LISA" train ${LISA_RUN/--steps 20/--steps 10} --batch 2 --zero 1 --save-state "$TMP/stz" &&
  "$LISA" train $LISA_RUN --batch 4 --resume "$TMP/stz" --log-jsonl "$TMP/resumed3.jsonl" &&
  mpi "$LISA" train $LISA_RUN --batch 2 --zero 1 --resume "$TMP/st1" --log-jsonl "$TMP/resumed4.jsonl" ||
  fail "resume with --zero 1: a run failed"
for r in resumed1 resumed2 resumed3 resumed4; do
  follows loss "$TMP/one-lisa.jsonl" "$TMP/$r.jsonl" 1e-5 10 || fail "$r: the resumed run left the one-process run"
done && echo "ok   a state resumes at another rank count: 2 ranks -> 1 and 1 -> 2 follow one process, with --zero 1 too"
expect_error "resume with another whole batch" "saved with batch 4, this run has batch 8" \
  mpi "$LISA" train $LISA_RUN --batch 4 --resume "$TMP/st1"

# ranks that disagree: an error on every rank, not a hang
# shellcheck disable=SC2086
out=$(timeout 120 "${MPIRUN[@]}" -np 1 "$LISA" train $RUN --batch 2 : -np 1 "$LISA" train $RUN --batch 2 --seed 5 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "rank 1's settings, model or data differ from rank 0's" <<<"$out" &&
  echo "ok   settings that differ: $(grep -m1 -o "rank 1's settings.*" <<<"$out")" || fail "mismatch (rc $rc): $out"
# a rank that fails ends them all
# shellcheck disable=SC2086
out=$(timeout 120 "${MPIRUN[@]}" -np 1 "$LISA" train $RUN --batch 2 : -np 1 "$LISA" train ${RUN/tokens-67.bin/missing.bin} --batch 2 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "rank 1 of 2: .*missing.bin" <<<"$out" &&
  echo "ok   a failing rank ends every rank: $(grep -m1 -o 'rank 1 of 2: .*' <<<"$out" | head -c 120)" ||
  fail "a failing rank (rc $rc): $out"
# a rank killed (-9) mid-run: mpirun ends the others, no hang
# shellcheck disable=SC2086
(timeout 120 "${MPIRUN[@]}" -np 2 "$LISA" train ${RUN/--steps 20/--steps 1000000} --batch 2 > "$TMP/killed.out" 2>&1
 echo "rc=$?" >> "$TMP/killed.out") &
runner=$!
killed=0
for _ in $(seq 50); do
  sleep 0.2
  for p in $(pgrep -x lisa); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && kill -9 "$p" && killed=1
  done
  [ "$killed" = 1 ] && break
done
wait "$runner"
rc=$(grep -o "rc=[0-9]*" "$TMP/killed.out" | cut -d= -f2)
[ "$killed" = 1 ] && [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -q "rank 1 .* exited on signal 9" "$TMP/killed.out" &&
  echo "ok   a rank killed -9 ends the run (status $rc)" || fail "kill -9 (killed $killed, rc $rc): $(cat "$TMP/killed.out")"
# a rank stopped (SIGSTOP) mid-run: the other's sum times out (--comm-timeout)
# and ends the run, no hang
# shellcheck disable=SC2086
(timeout 120 "${MPIRUN[@]}" -np 2 "$LISA" train ${RUN/--steps 20/--steps 1000000} --batch 2 --comm-timeout 2 \
   > "$TMP/stopped.out" 2>&1
 echo "rc=$?" >> "$TMP/stopped.out") &
runner=$!
stopped=
for _ in $(seq 50); do
  sleep 0.2
  for p in $(pgrep -x lisa); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && kill -STOP "$p" && stopped=$p
  done
  [ -n "$stopped" ] && break
done
wait "$runner"
[ -n "$stopped" ] && kill -9 "$stopped" 2>/dev/null # whatever mpirun left behind
rc=$(grep -o "rc=[0-9]*" "$TMP/stopped.out" | cut -d= -f2)
[ -n "$stopped" ] && [ "$rc" != 0 ] && [ "$rc" != 124 ] &&
  grep -q "rank 0 of 2: no answer from the other ranks in 2 s" "$TMP/stopped.out" &&
  echo "ok   a stopped rank: the others time out (status $rc)" || fail "SIGSTOP (rc $rc): $(cat "$TMP/stopped.out")"
# The device trainer on 2 ranks: the emulator, with NCCL emulated over MPI
# (the calls, the bootstrap and the sums after each region's backward are
# those a GPU makes with NCCL). First the collectives' own test on 2 ranks.
if [ -n "${LISA_TEST_NCCL:-}" ]; then
  out=$(mpi "$LISA_TEST_NCCL" 2>&1) && [ "$(grep -c '^ok' <<<"$out")" = 6 ] &&
    echo "ok   the collectives' test on 2 ranks: fp32 and bf16 sums, the bootstrap, refusals" ||
    fail "test_nccl on 2 ranks: $out"
fi
EMU="models/gpt2-tiny.yaml --data tests/fixtures/tokens-67.bin --seq 8 --steps 6 --device emu --quiet"
# name, settings, tolerance (bf16-true sums bf16 gradients: rounding differs by batch split)
for run in "lisa|--method lisa --gamma 1 --interval 3 --dtype fp32|1e-5" \
           "lora|--method lora --lora-rank 4 --merge-lora --dtype fp32|1e-5" \
           "ft-accum|--method ft --grad-accum 2 --dtype fp32|1e-5" \
           "bf16-true|--method lisa --gamma 1 --interval 3 --dtype bf16-true|3e-3"; do
  IFS='|' read -r name method tol <<<"$run"
  # shellcheck disable=SC2086
  "$LISA" train $EMU --batch 4 $method --log-jsonl "$TMP/emu1-$name.jsonl" --save "$TMP/emu1-$name.safetensors" &&
    mpi "$LISA" train $EMU --batch 2 $method --log-jsonl "$TMP/emu2-$name.jsonl" --save "$TMP/emu2-$name.safetensors" ||
    { fail "emu $name: a run failed"; continue; }
  ok=1
  for k in loss grad_norm; do follows "$k" "$TMP/emu1-$name.jsonl" "$TMP/emu2-$name.jsonl" "$tol" 6 || ok=0; done
  one=$(eval_loss "$TMP/emu1-$name.safetensors") two=$(eval_loss "$TMP/emu2-$name.safetensors")
  near "$one" "$two" "$tol" ||
    { echo "eval: $one alone, $two from rank 0's save"; ok=0; }
  [ "$ok" = 1 ] && echo "ok   emu $name: 2 ranks x B=2 = 1 x B=4 over 6 steps (within $tol), $(field comm_bytes "$TMP/emu2-$name.jsonl" | sort -u) bytes a step summed" ||
    fail "emu $name: 2 ranks differ from one process"
done
# the bytes: LISA's trainable gradients (lisa plan's) and the loss; bf16-true
# sums half of them
plan=$("$LISA" plan models/gpt2-tiny.yaml --method lisa --gamma 1 --batch 2 --seq 8 --json)
grads=$(grep -o '"grads":[0-9]*' <<<"$plan" | cut -d: -f2)
fp32=$(field comm_bytes "$TMP/emu2-lisa.jsonl" | sort -u); bf16=$(field comm_bytes "$TMP/emu2-bf16-true.jsonl" | sort -u)
plan_bf16=$("$LISA" plan models/gpt2-tiny.yaml --method lisa --gamma 1 --batch 2 --seq 8 --ranks 2 --dtype bf16-true --json)
[ "$fp32" = "$((grads + 8))" ] && [ "$bf16" = "$((grads / 2 + 8))" ] && grep -q "\"comm_bytes\":$bf16," <<<"$plan_bf16" &&
  echo "ok   emu: a LISA step sums its $grads gradient bytes (bf16-true: $((grads / 2)), as lisa plan says) and the loss" ||
  fail "emu comm_bytes: fp32 $fp32, bf16 $bf16, plan's gradients $grads; bf16 plan: $plan_bf16"
# a device state resumes at another rank count: 3 steps on 2 ranks then 3
# alone, and the other way round, follow the one process's 6
ELISA="$EMU --method lisa --gamma 1 --interval 3 --dtype fp32"
# shellcheck disable=SC2086
mpi "$LISA" train ${ELISA/--steps 6/--steps 3} --batch 2 --save-state "$TMP/est2" &&
  "$LISA" train $ELISA --batch 4 --resume "$TMP/est2" --log-jsonl "$TMP/emu-resumed1.jsonl" &&
  "$LISA" train ${ELISA/--steps 6/--steps 3} --batch 4 --save-state "$TMP/est1" &&
  mpi "$LISA" train $ELISA --batch 2 --resume "$TMP/est1" --log-jsonl "$TMP/emu-resumed2.jsonl" ||
  fail "emu resume: a run failed"
for r in emu-resumed1 emu-resumed2; do
  follows loss "$TMP/emu1-lisa.jsonl" "$TMP/$r.jsonl" 1e-5 3 || fail "$r: the resumed device run left the one-process run"
done && echo "ok   emu: a state resumes at another rank count: 2 ranks -> 1 and 1 -> 2 follow one process"
# --zero 1 on a device: each rank keeps the moments of its share of every
# region, AdamW updates its pieces of the tensors (the norm still reads every
# gradient, all-reduced), and the pieces go to every rank from their owners
# (broadcasts). fp32, and bf16-mixed with nearest rounding, give the run
# without it bit for bit; bf16-true rounds stochastically, keyed by piece, so
# to rounding; a rank's optimizer bytes halve; bytes and memory as lisa plan
# says (bf16); its states hold the same moments and resume
# the device arena's optimizer bytes (a step row's device_memory)
dev_opt() { grep -m1 -o '"device_memory":{[^}]*}' "$1" | grep -o '"optimizer":[0-9]*' | cut -d: -f2; }
# shellcheck disable=SC2086
mpi "$LISA" train $EMU --batch 2 --method lisa --gamma 1 --interval 3 --dtype bf16 --rounding nearest \
  --log-jsonl "$TMP/emu2-mixed.jsonl" --save "$TMP/emu2-mixed.safetensors" || fail "emu mixed: the run failed"
for run in "lisa|--method lisa --gamma 1 --interval 3 --dtype fp32|0" \
           "lora|--method lora --lora-rank 4 --merge-lora --dtype fp32|0" \
           "mixed|--method lisa --gamma 1 --interval 3 --dtype bf16 --rounding nearest|0" \
           "bf16-true|--method lisa --gamma 1 --interval 3 --dtype bf16-true|3e-3"; do
  IFS='|' read -r name method tol <<<"$run"
  # shellcheck disable=SC2086
  mpi "$LISA" train $EMU --batch 2 $method --zero 1 --log-jsonl "$TMP/emuz-$name.jsonl" \
    --save "$TMP/emuz-$name.safetensors" || { fail "emu --zero 1 $name: the run failed"; continue; }
  ok=1
  if [ "$tol" = 0 ]; then
    [ "$(field loss "$TMP/emuz-$name.jsonl")" = "$(field loss "$TMP/emu2-$name.jsonl")" ] &&
      [ "$(field grad_norm "$TMP/emuz-$name.jsonl")" = "$(field grad_norm "$TMP/emu2-$name.jsonl")" ] &&
      cmp -s "$TMP/emuz-$name.safetensors" "$TMP/emu2-$name.safetensors" || ok=0
  else
    follows loss "$TMP/emu2-$name.jsonl" "$TMP/emuz-$name.jsonl" "$tol" 6 || ok=0
  fi
  z=$(dev_opt "$TMP/emuz-$name.jsonl") w=$(dev_opt "$TMP/emu2-$name.jsonl")
  [[ $z =~ ^[0-9]+$ && $w =~ ^[0-9]+$ ]] && [ "$((z * 2))" -le "$((w + 1024))" ] ||
    { echo "optimizer $z with --zero 1, $w without"; ok=0; }
  if [ "$name" != lisa ] && [ "$name" != lora ]; then # bf16 precisions: lisa plan's device numbers
    dtype=${method#*--dtype }; dtype=${dtype%% *}
    plan=$("$LISA" plan models/gpt2-tiny.yaml --method lisa --gamma 1 --batch 2 --seq 8 --ranks 2 --zero 1 --dtype "$dtype" --json)
    grep -q "\"optimizer\":$z," <<<"$plan" && grep -q "\"comm_bytes\":$(field comm_bytes "$TMP/emuz-$name.jsonl" | sort -u)," <<<"$plan" ||
      { echo "plan: $plan; run: optimizer $z, comm_bytes $(field comm_bytes "$TMP/emuz-$name.jsonl" | sort -u)"; ok=0; }
  fi
  [ "$ok" = 1 ] && echo "ok   emu --zero 1 $name: as without it ($([ "$tol" = 0 ] && echo "bit for bit" || echo "within $tol")), $z of $w optimizer bytes a rank" ||
    fail "emu --zero 1 $name: differs from the run without it"
done
# its state: the moments gathered from the ranks' shares are the run's
# without --zero 1 (est2: 3 steps on 2 ranks); a resume onto shards continues
# shellcheck disable=SC2086
mpi "$LISA" train ${ELISA/--steps 6/--steps 3} --batch 2 --zero 1 --save-state "$TMP/estz" &&
  mpi "$LISA" train $ELISA --batch 2 --zero 1 --resume "$TMP/est1" --log-jsonl "$TMP/emu-resumedz.jsonl" ||
  fail "emu --zero 1 states: a run failed"
cmp -s "$TMP/estz/step-3/optimizer.safetensors" "$TMP/est2/step-3/optimizer.safetensors" &&
  cmp -s "$TMP/estz/step-3/model.safetensors" "$TMP/est2/step-3/model.safetensors" &&
  follows loss "$TMP/emu1-lisa.jsonl" "$TMP/emu-resumedz.jsonl" 1e-5 3 &&
  echo "ok   emu --zero 1: its state is the run's without it, and resumes onto shards" ||
  fail "emu --zero 1: the state differs, or the resume left the run"
finish
