#!/usr/bin/env bash
# CPU per cache miss of two resolvers run side by side (issue 17.1): both on CPU 1 at once,
# each loaded at RATE unique misses per second by its own dnsperf on CPU 0, for SECS seconds;
# prints each one's CPU microseconds per answered query (from /proc/PID/stat) and the ratio
# B/A. The two share the core, so the noise of a shared VM touches both alike; swap A and B
# between runs to cancel the order of start. Either may be `unbound` (Unbound with the bench's
# own configuration, ../shared/bench/peers/unbound.conf). The figure holds for RATE only: a
# resolver that batches its system calls pays less per query the busier it is, so this says
# nothing about the rate at saturation (benches/load.sh measures that); and it is no figure
# at all when either side lost queries (see the counts).
#
# With RATE=max each dnsperf asks as fast as its resolver answers (8 sockets, 200 queries in
# flight, as benches/load.sh does), so both resolvers are saturated and share the core; the
# figure is then CPU per query at saturation, batching included, with both under the same
# host at the same moment (a 10 s round of load.sh, one resolver after the other, is not).
#
# With MODE=hit the load is cache hits instead: the bench's 1000 names (h0..h333 under
# example.com, .net and .org), asked once before the measured RATE (40000 is a fair one).
#
# usage: benches/pair.sh A B       A, B: a hopdns binary or `unbound`
#   RATE=9000|max SECS=15 MODE=miss|hit BENCH=../shared/bench
# Needs dnsperf, dig, taskset (and unbound for `unbound`) and the shared bench lab (started
# here if it is down). Loopback only; every process it starts is stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
RATE=${RATE:-9000}
SECS=${SECS:-15}
MODE=${MODE:-miss}
case $MODE in miss|hit) ;; *) echo "pair: MODE is miss or hit, not $MODE" >&2; exit 2 ;; esac
case $RATE in max) ;; *[!0-9]*|'') echo "pair: RATE is a number of queries per second or max, not $RATE" >&2; exit 2 ;; esac
OUT=${OUT:-$root/target/pair}
ADDR=127.0.0.1
mkdir -p "$OUT"
[ "$#" = 2 ] || { echo "usage: benches/pair.sh A B (each a hopdns binary or unbound)" >&2; exit 2; }
for b in "$@"; do
  [ "$b" = unbound ] || [ -x "$b" ] || { echo "pair: no binary at $b (cargo build --release)" >&2; exit 2; }
done
[[ " $* " != *" unbound "* ]] || command -v unbound >/dev/null || { echo "pair: needs unbound (apt-get install unbound)" >&2; exit 2; }
for t in dnsperf dig taskset; do
  command -v "$t" >/dev/null || { echo "pair: needs $t (apt-get install dnsperf bind9-dnsutils util-linux)" >&2; exit 2; }
done

export LAB_RUN=${LAB_RUN:-/tmp/hopdns-pair-lab}
. "$here/lab.sh"
lab_up_if_down
trap lab_cleanup EXIT

ports=(5320 5322)
for i in 0 1; do
  lab_start_resolver "${@:i+1:1}" "$ADDR" "${ports[i]}" "$OUT"
done
tag=$(date +%s%N | tail -c 9)
for i in 0 1; do
  p=${ports[i]}
  lab_wait_answering "$ADDR" "$p"
  if [ "$MODE" = hit ]; then
    lab_hit_names >"$OUT/names-$i.txt"
    # Every name is cached before the measured hits.
    dnsperf -s "$ADDR" -p "$p" -d "$OUT/names-$i.txt" -n 2 >/dev/null 2>&1
  else
    # Enough unique names for the rate, or for the fastest miss rate seen here (40,000/s).
    lab_miss_load "$ADDR" "$p" "$tag$p" $(( ${RATE/max/40000} * SECS + 5000)) "$OUT/names-$i.txt"
  fi
done
# Misses ask each name once; hits go round the 1000 names until the time is up.
passes=(-n 1)
[ "$MODE" = hit ] && passes=(-n 1000000)
load=(-c 4 -q 100 -Q "$RATE")
[ "$RATE" = max ] && load=(-c 8 -q 200)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
a0=$(ticks "${pids[0]}"); b0=$(ticks "${pids[1]}")
clients=()
for i in 0 1; do
  taskset -c 0 dnsperf -s "$ADDR" -p "${ports[i]}" -d "$OUT/names-$i.txt" "${load[@]}" -t 5 \
    -l "$SECS" "${passes[@]}" >"$OUT/dnsperf-$i.out" 2>&1 &
  clients+=($!)
done
wait "${clients[@]}"
a1=$(ticks "${pids[0]}"); b1=$(ticks "${pids[1]}")
qa=$(awk '/Queries completed/ { print $3 }' "$OUT/dnsperf-0.out")
qb=$(awk '/Queries completed/ { print $3 }' "$OUT/dnsperf-1.out")
awk -v a=$((a1 - a0)) -v b=$((b1 - b0)) -v qa="$qa" -v qb="$qb" -v hz="$(getconf CLK_TCK)" 'BEGIN {
  ua = a / hz * 1e6 / qa; ub = b / hz * 1e6 / qb
  printf "A %.2f us/q (%d q)  B %.2f us/q (%d q)  B/A %.3f\n", ua, qa, ub, qb, ub / ua }'
