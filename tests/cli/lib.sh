# lib.sh: helpers for the shell tests. Sourced; needs LISA_BIN and LISA_SRC.
set -u
LISA=${LISA_BIN:?LISA_BIN not set}
SRC=${LISA_SRC:?LISA_SRC not set}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# expect_error NAME PATTERN CMD...: CMD must exit non-zero and print PATTERN
# (an extended regex) on stderr.
expect_error() {
  local name=$1 pattern=$2; shift 2
  local out rc
  out=$("$@" 2>&1 >/dev/null); rc=$?
  if [ "$rc" -eq 0 ]; then fail "$name: exit status 0, expected an error"; return; fi
  if ! grep -Eq -- "$pattern" <<<"$out"; then
    fail "$name: message does not match /$pattern/: $out"; return
  fi
  echo "ok   $name: $out" | head -c 300; echo
}

# tokens ID...: an llm.c token file (version 1: uint16 ids, fewer than 65536) on stdout
tokens() {
  printf '\x88\xd8\x34\x01\x01\x00\x00\x00'
  printf "\\x$(printf %02x $(($# % 256)))\\x$(printf %02x $(($# / 256)))\\x00\\x00"
  head -c $((253 * 4)) /dev/zero
  for id in "$@"; do printf "\\x$(printf %02x "$id")\\x00"; done
}

finish() {
  if [ "$failures" -ne 0 ]; then echo "$failures failure(s)" >&2; exit 1; fi
  exit 0
}
