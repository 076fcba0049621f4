#!/usr/bin/env bash
# User-space instructions per cache miss (issue 17.1), counted by valgrind's callgrind: a
# figure the machine's noise does not move, where QPS on a shared VM swings by 25% between
# runs. For each hopdns binary: one process under callgrind answers SMALL unique names under
# the bench lab's wildcard (one upstream query each), another answers LARGE; the difference of
# the two totals over LARGE - SMALL is the cost of one miss, start-up and warm-up cancelled.
# The rate is low (300/s) so nothing times out under valgrind; the kernel's share is not
# counted, and a count is not a time (copies and hashing run at several instructions a cycle,
# cache misses at less than one), so a change is judged by this and by a same-run load ratio.
# Runs of one binary agree within about 2% (the runtime's idle work depends on timing).
#
# usage: benches/instructions.sh [BIN...]       (default target/release/hopdns)
#   SMALL=1000 LARGE=4000 BENCH=../shared/bench
# Needs valgrind, dnsperf, dig and the shared bench lab (started here if it is down).
# Loopback only; every process it starts is stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
SMALL=${SMALL:-1000}
LARGE=${LARGE:-4000}
OUT=${OUT:-$root/target/instructions}
ADDR=127.0.0.1 PORT=5311
mkdir -p "$OUT"
[ "$#" -gt 0 ] || set -- "$root/target/release/hopdns"

for t in valgrind dnsperf dig; do
  command -v "$t" >/dev/null || { echo "instructions: needs $t (apt-get install valgrind dnsperf bind9-dnsutils)" >&2; exit 2; }
done
[ "$LARGE" -gt "$SMALL" ] || { echo "instructions: LARGE ($LARGE) must be above SMALL ($SMALL)" >&2; exit 2; }

export LAB_RUN=${LAB_RUN:-/tmp/hopdns-instructions-lab}
. "$here/lab.sh"
lab_up_if_down
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  lab_stop_if_started
}
trap cleanup EXIT

# The instructions one callgrind run of BIN counted while it answered N misses.
count() {
  local bin=$1 n=$2 tag
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$n.out" \
    "$bin" serve --listen "$ADDR:$PORT" --root-hints "$BENCH/root.hints" --threads 1 \
    --query-loopback --no-ipv6 --no-prime --cache-size 150m --no-dnssec \
    >"$OUT/hopdns.log" 2>"$OUT/valgrind.$n.log" &
  pid=$!
  lab_wait_answering "$ADDR" "$PORT" 100 0.3
  tag=$(date +%s%N | tail -c 9)
  lab_miss_load "$ADDR" "$PORT" "$tag" "$n" "$OUT/names.txt"
  dnsperf -s "$ADDR" -p "$PORT" -d "$OUT/names.txt" -c 4 -q 20 -t 5 -n 1 -Q 300 >"$OUT/dnsperf.$n.out" 2>&1
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=
  local lost
  lost=$(awk '/Queries lost/ {print $3}' "$OUT/dnsperf.$n.out")
  [ "${lost:-1}" = 0 ] || echo "instructions: $lost of $n queries lost (see $OUT/dnsperf.$n.out)" >&2
  awk '/I   refs/ { gsub(",", "", $4); print $4 }' "$OUT/valgrind.$n.log"
}

for bin in "$@"; do
  [ -x "$bin" ] || { echo "instructions: no binary at $bin (cargo build --release)" >&2; exit 2; }
  small=$(count "$bin" "$SMALL")
  large=$(count "$bin" "$LARGE")
  echo "$bin: $(( (large - small) / (LARGE - SMALL) )) instructions per miss ($SMALL and $LARGE misses: $small and $large)"
done
