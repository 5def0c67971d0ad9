#!/bin/sh
# A C++ compiler that answers --version and fails every build (test_cli_emu.sh).
[ "$1" = --version ] && { echo "fake-cxx 1.0"; exit 0; }
echo "fake-cxx: cannot build $*" >&2
exit 1
