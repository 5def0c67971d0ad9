#!/bin/bash
# lisa plan through the CLI: the JSON total is the sum of its breakdown, the
# precisions order as they should, --device-mem answers "fits", and bad
# settings end with a message and a non-zero exit.
. "$(dirname "$0")/lib.sh"
L7=$SRC/models/llama2-7b.yaml

json_field() { sed -n "s/.*\"$1\":\([0-9a-z]*\).*/\1/p"; }

# JSON: total_bytes = the sum of the breakdown
out=$("$LISA" plan "$L7" --method lisa --gamma 2 --dtype bf16-true --json --device-mem 24)
total=$(json_field total_bytes <<<"$out")
sum=0
for c in weights master_weights grads optimizer activations workspace; do
  v=$(json_field "$c" <<<"$out")
  [ -n "$v" ] || fail "json: no $c in $out"
  sum=$((sum + ${v:-0}))
done
[ "$sum" -eq "$total" ] && echo "ok   json: total $total = sum of breakdown" ||
  fail "json: total $total, breakdown sums to $sum"
# the paper's claim in its precision: 7B LISA E+H+2L fits a 24 GB GPU
[ "$(json_field fits <<<"$out")" = true ] && echo "ok   7b E+H+2L bf16-true fits in 24 GiB" ||
  fail "7b E+H+2L bf16-true should fit in 24 GiB: $out"
grep -q '"dtype":"bf16-true"' <<<"$out" || fail "json: dtype missing: $out"
# The host side of a device run: a tensor in hand (the 0.52 GB embedding, in
# staging and in conversion), the batch and a writer's piece; never the
# parameters (6.74e9 x 4 bytes).
host=$(json_field host_bytes <<<"$out")
[ -n "$host" ] && [ "$host" -gt 1000000000 ] && [ "$host" -lt 1200000000 ] &&
  echo "ok   7b host side $host bytes" ||
  fail "json: host_bytes '$host' (want 1.0e9 to 1.2e9: two embedding-sized stagings and the batch)"
"$LISA" plan "$L7" --method lisa --dtype fp32 --json | grep -q host_bytes &&
  fail "an fp32 (CPU) plan reports a separate host side"

# bf16-mixed keeps fp32 master weights; bf16-true none; fp32 (CPU) none
for d in bf16 bf16-mixed bf16-true fp32; do
  m=$("$LISA" plan "$L7" --method lisa --dtype $d --json | json_field master_weights)
  echo "     $d master_weights $m"
  case $d in bf16-true|fp32) [ "$m" -eq 0 ] || fail "$d: master weights $m" ;;
             *) [ "$m" -gt 0 ] || fail "$d: no master weights" ;; esac
done
mixed=$("$LISA" plan "$L7" --method lisa --dtype bf16 --json | json_field total_bytes)
alias=$("$LISA" plan "$L7" --method lisa --dtype bf16-mixed --json | json_field total_bytes)
[ "$mixed" -eq "$alias" ] || fail "bf16 and bf16-mixed differ: $mixed $alias"

human=$("$LISA" plan "$L7" --method ft --device-mem 24)
grep -q "does not fit in 24 GiB" <<<"$human" && echo "ok   7b FT does not fit in 24 GiB" ||
  fail "FT should not fit: $human"

expect_error bad_dtype "--dtype: 'fp16' is not fp32, bf16, bf16-mixed or bf16-true" \
  "$LISA" plan "$L7" --dtype fp16
expect_error gamma_too_big "--gamma 40 exceeds the model's 32 middle blocks" \
  "$LISA" plan "$L7" --method lisa --gamma 40
expect_error no_model "missing MODEL.yaml" "$LISA" plan --method ft
expect_error bad_batch "--batch: 'x' is not an integer in \[1, 16777216\]" "$LISA" plan "$L7" --batch x
expect_error zero_seq "--seq: '0' is not an integer in \[1, 16777216\]" "$LISA" plan "$L7" --seq 0
expect_error seq_beyond_positions "--seq 64 is longer than .*gpt2-tiny.yaml allows \(32 positions\)" \
  "$LISA" plan "$SRC/models/gpt2-tiny.yaml" --seq 64
expect_error negative_mem "--device-mem: '-1' is not a number in \[0, 1e\+09\]" \
  "$LISA" plan "$L7" --device-mem -1
# --help: the usage on stdout, exit 0, for each command
for c in train gen plan; do
  "$LISA" $c --help | grep -q "^usage: lisa $c MODEL.yaml" || fail "lisa $c --help: no usage"
done
finish
