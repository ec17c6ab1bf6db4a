#!/usr/bin/env bash
# Sandbox throughput: how many creates per second `dbprov sandbox` answers on loopback.
# Needs wrk (Debian package `wrk`). Not part of the test run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench/sandbox.sh needs wrk: apt-get install wrk" >&2; exit 2; }
cargo build --release --quiet

out=$(mktemp)
./target/release/dbprov sandbox --listen 127.0.0.1:0 >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
until [ -s "$out" ]; do sleep 0.1; done
url=$(head -n1 "$out")

wrk -t2 -c64 -d10s -s bench/sandbox-create.lua "$url"
echo "sandbox stats after the run:"
curl -s "$url/_sandbox/stats"; echo
