#!/usr/bin/env bash
# Installs the load generator the benchmarks drive, when it is missing: h2load,
# from Debian's nghttp2-client (a real HTTP/2 client none of us wrote). Run by
# `npm run bench` before anything else; needs root (or sudo) only to install.
set -euo pipefail

h2load="${BENCH_H2LOAD:-/usr/bin/h2load}"
if [[ -x "$h2load" ]]; then exit 0; fi

echo "bench-tools.sh: $h2load missing; installing Debian's nghttp2-client" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq nghttp2-client >/dev/null
[[ -x "$h2load" ]] || { echo "bench-tools.sh: nghttp2-client installed but $h2load is still missing (set BENCH_H2LOAD)" >&2; exit 1; }
