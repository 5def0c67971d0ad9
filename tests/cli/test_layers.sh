#!/bin/bash
# test_layers.sh: the libraries form a DAG and nothing crosses it backwards.
# Arguments: one per library, "name=folder=archive=dep,dep" (direct deps).
# Checks, for every library:
#  - each "header.h" its sources include lives in its folder or in the
#    folder of a library it depends on (directly or through others);
#  - each symbol its objects need that one of our libraries defines is
#    defined in itself or in a library it depends on (no call reaches up,
#    so no call cycle crosses a library boundary);
#  - its folder holds at most 16 source files.
set -uo pipefail
. "$LISA_SRC/tests/cli/lib.sh"

declare -A folder archive deps
names=()
for spec in "$@"; do
  IFS='=' read -r n f a d <<<"$spec"
  names+=("$n"); folder[$n]=$LISA_SRC/$f; archive[$n]=$a; deps[$n]=${d//,/ }
done

closure() {  # every library n depends on, itself included
  local seen=" $1 " todo=($1) x d
  while [ ${#todo[@]} -gt 0 ]; do
    x=${todo[0]}; todo=("${todo[@]:1}")
    for d in ${deps[$x]}; do
      case "$seen" in *" $d "*) ;; *) seen+="$d "; todo+=("$d") ;; esac
    done
  done
  echo $seen
}

# symbol -> defining library
declare -A owner
for n in "${names[@]}"; do
  for s in $(nm --defined-only -g "${archive[$n]}" 2>/dev/null | awk 'NF == 3 && $2 ~ /[TDBRC]/ {print $3}'); do
    owner[$s]=$n
  done
done

for n in "${names[@]}"; do
  allowed=$(closure "$n")
  # headers
  for src in "${folder[$n]}"/*.c "${folder[$n]}"/*.h; do
    [ -e "$src" ] || continue
    for h in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$src"); do
      found=""
      for d in $allowed; do [ -e "${folder[$d]}/$h" ] && found=$d; done
      [ -n "$found" ] && continue
      where=""
      for d in "${names[@]}"; do [ -e "${folder[$d]}/$h" ] && where=$d; done
      [ -z "$where" ] && continue  # generated or system header
      fail "$src includes $h of library $where, which $n does not depend on"
    done
  done
  # symbols
  for s in $(nm -u "${archive[$n]}" 2>/dev/null | awk '$1 == "U" {print $2}' | sort -u); do
    o=${owner[$s]:-}
    [ -z "$o" ] && continue
    case " $allowed " in *" $o "*) ;; *) fail "library $n calls $s of library $o, which it does not depend on" ;; esac
  done
  count=$(ls "${folder[$n]}" | grep -cE '\.(c|h|cpp|cuh)$')
  [ "$count" -le 16 ] || fail "${folder[$n]} holds $count source files (at most 16)"
done
[ ${#names[@]} -ge 10 ] || fail "only ${#names[@]} libraries given"
finish
