#!/bin/bash
# setup.sh: installs what building and testing need on Debian 12 (as root),
# then configures and builds build/. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(meson ninja-build pkg-config gcc g++ libyaml-dev liblua5.4-dev libopenblas-openmp-dev
      libcjson-dev libomp-dev libpcre2-dev libutf8proc-dev openmpi-bin)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -f build/build.ninja ]; then meson setup build >/dev/null; fi
meson compile -C build
