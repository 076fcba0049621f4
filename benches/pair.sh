#!/usr/bin/env bash
# CPU per cache miss of two hopdns binaries run side by side (issue 17.1): both on CPU 1 at
# once, each loaded at RATE unique misses per second by its own dnsperf on CPU 0, for SECS
# seconds; prints each one's CPU microseconds per answered query (from /proc/PID/stat) and
# the ratio B/A. The two share the core, so the noise of a shared VM touches both alike;
# swap A and B between runs to cancel the order of start.
#
# usage: benches/pair.sh BIN_A BIN_B        RATE=9000 SECS=15 BENCH=../shared/bench
# Needs dnsperf, dig, taskset and the shared bench lab (started here if it is down).
# Loopback only; every process it starts is stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
RATE=${RATE:-9000}
SECS=${SECS:-15}
OUT=${OUT:-$root/target/pair}
ADDR=127.0.0.1
mkdir -p "$OUT"
[ "$#" = 2 ] || { echo "usage: benches/pair.sh BIN_A BIN_B (two hopdns binaries)" >&2; exit 2; }
for b in "$@"; do [ -x "$b" ] || { echo "pair: no binary at $b (cargo build --release)" >&2; exit 2; }; done
for t in dnsperf dig taskset; do
  command -v "$t" >/dev/null || { echo "pair: needs $t (apt-get install dnsperf bind9-dnsutils util-linux)" >&2; exit 2; }
done

export LAB_RUN=${LAB_RUN:-/tmp/hopdns-pair-lab}
. "$here/lab.sh"
lab_up_if_down
trap lab_cleanup EXIT

ports=(5320 5322)
for i in 0 1; do
  taskset -c 1 "${@:i+1:1}" serve --listen "$ADDR:${ports[i]}" --root-hints "$BENCH/root.hints" \
    --threads 1 --query-loopback --no-ipv6 --no-prime --cache-size 150m --no-dnssec \
    >"$OUT/hopdns-$i.log" 2>&1 &
  pids+=($!)
done
tag=$(date +%s%N | tail -c 9)
for i in 0 1; do
  p=${ports[i]}
  for _ in $(seq 50); do
    dig +time=1 +tries=1 -p "$p" @"$ADDR" www.example.com A +short >/dev/null 2>&1 && break
    sleep 0.1
  done
  awk -v t="$tag$p" -v n=$((RATE * SECS + 5000)) \
    'BEGIN { for (i = 0; i < n; i++) printf "m%sx%d.bench.example A\n", t, i }' >"$OUT/names-$i.txt"
  # The delegation to bench.example is learnt before the measured misses.
  dig +time=3 +tries=2 -p "$p" @"$ADDR" "warm$tag$p.bench.example" A +short >/dev/null
done
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
a0=$(ticks "${pids[0]}"); b0=$(ticks "${pids[1]}")
clients=()
for i in 0 1; do
  taskset -c 0 dnsperf -s "$ADDR" -p "${ports[i]}" -d "$OUT/names-$i.txt" -c 4 -q 100 -t 5 \
    -l "$SECS" -n 1 -Q "$RATE" >"$OUT/dnsperf-$i.out" 2>&1 &
  clients+=($!)
done
wait "${clients[@]}"
a1=$(ticks "${pids[0]}"); b1=$(ticks "${pids[1]}")
qa=$(awk '/Queries completed/ { print $3 }' "$OUT/dnsperf-0.out")
qb=$(awk '/Queries completed/ { print $3 }' "$OUT/dnsperf-1.out")
awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v qa="$qa" -v qb="$qb" -v hz="$(getconf CLK_TCK)" 'BEGIN {
  ua = a / hz * 1e6 / qa; ub = b / hz * 1e6 / qb
  printf "A %.2f us/q (%d q)  B %.2f us/q (%d q)  B/A %.3f\n", ua, qa, ub, qb, ub / ua }'
