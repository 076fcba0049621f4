#!/usr/bin/env bash
# Two servers measured in turns short enough that the host's speed does not move between the
# two sides of a pair (issue 17). Both run on CPU 1 the whole time; the load generator on
# CPU 0 loads one of them at a time for SECS seconds, then the other, PAIRS times, the order
# swapped each pair. Each pair gives hopdns's rate over the other's; the figure is the median
# of those. (benches/load.sh measures the two 10 s or more apart, and on a shared VM that gap
# alone moves a ratio by 10-30%.)
#
#   MODE=hit  (default): hopdns's cache hits against the batched echo limit
#             (../shared/bench/tools/udp-responder.c, recvmmsg/sendmmsg batches of 64), both
#             flooded by udp-blast over the bench's 1000 names (issue 17.2's share);
#   MODE=miss: hopdns's cache misses against Unbound's (the bench's configuration), each
#             saturated by dnsperf (8 sockets, 200 in flight) with unique names under the
#             lab's wildcard, fresh ones for every turn (issue 17.1's ratio).
#
# usage: benches/alternate.sh [BIN]     BIN: hopdns binary (default target/release/hopdns)
#   MODE=hit|miss PAIRS=10 SECS=3 (hit) or 5 (miss) BENCH=../shared/bench
# Needs gcc, dnsperf, dig, taskset (and unbound for MODE=miss) and the shared bench lab
# (started here if it is down). Loopback only; every process it starts is stopped by PID, and
# the echo also ends by itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
BIN=${1:-$root/target/release/hopdns}
MODE=${MODE:-hit}
case $MODE in
  hit) SECS=${SECS:-3}; OTHER=echo ;;
  miss) SECS=${SECS:-5}; OTHER=unbound ;;
  *) echo "alternate: MODE is hit or miss, not $MODE" >&2; exit 2 ;;
esac
PAIRS=${PAIRS:-10}
OUT=${OUT:-$root/target/alternate}
ADDR=127.0.0.1
HOP_PORT=5340
OTHER_PORT=5341
for v in PAIRS SECS; do
  case ${!v} in *[!0-9]*|''|0) echo "alternate: $v is a positive whole number, not ${!v}" >&2; exit 2 ;; esac
done
[ -x "$BIN" ] || { echo "alternate: no hopdns binary at $BIN (cargo build --release)" >&2; exit 2; }
for t in gcc dnsperf dig taskset; do
  command -v "$t" >/dev/null || { echo "alternate: needs $t (apt-get install gcc dnsperf bind9-dnsutils util-linux)" >&2; exit 2; }
done
[ "$MODE" = hit ] || command -v unbound >/dev/null || { echo "alternate: MODE=miss needs unbound (apt-get install unbound)" >&2; exit 2; }
mkdir -p "$OUT"

export LAB_RUN=${LAB_RUN:-/tmp/hopdns-alternate-lab}
. "$here/lab.sh"
lab_up_if_down
trap lab_cleanup EXIT

lab_start_resolver "$BIN" "$ADDR" "$HOP_PORT" "$OUT"
if [ "$MODE" = hit ]; then
  lab_tool udp-blast "$OUT" >/dev/null
  # Bounded: the echo ends itself after the whole run and a minute more.
  taskset -c 1 "$(lab_tool udp-responder "$OUT")" "$ADDR" "$OTHER_PORT" $((PAIRS * SECS * 2 + 60)) 64 &
  pids+=($!)
  lab_hit_names >"$OUT/names.txt"
  lab_wait_answering "$ADDR" "$HOP_PORT"
  # Every name is cached before the measured hits.
  dnsperf -s "$ADDR" -p "$HOP_PORT" -d "$OUT/names.txt" -n 2 >/dev/null 2>&1
else
  lab_start_resolver unbound "$ADDR" "$OTHER_PORT" "$OUT"
  lab_wait_answering "$ADDR" "$HOP_PORT"
  lab_wait_answering "$ADDR" "$OTHER_PORT"
fi

measure() {  # measure PORT -> answered per second in one turn (run in a subshell)
  if [ "$MODE" = hit ]; then
    local out
    out=$(taskset -c 0 "$OUT/udp-blast" "$ADDR" "$1" "$SECS" "${HIT_Q:-200}" "${HIT_C:-8}" \
      "$OUT/names.txt" | tail -n 1)
    echo "${out##*qps=}"
  else
    # Names no turn has asked (tagged with the clock's nanoseconds), enough for 40,000
    # misses a second.
    lab_miss_load "$ADDR" "$1" "$(date +%s%N | tail -c 9)" $((SECS * 40000 + 5000)) "$OUT/miss.txt"
    taskset -c 0 dnsperf -s "$ADDR" -p "$1" -d "$OUT/miss.txt" -c 8 -q 200 -t 5 -l "$SECS" -n 1 \
      2>&1 | awk '/Queries per second/ { printf "%.0f\n", $4 }'
  fi
}

: >"$OUT/raw-$MODE.txt"
for i in $(seq "$PAIRS"); do
  if [ $((i % 2)) = 1 ]; then
    h=$(measure "$HOP_PORT"); o=$(measure "$OTHER_PORT")
  else
    o=$(measure "$OTHER_PORT"); h=$(measure "$HOP_PORT")
  fi
  echo "pair=$i hopdns=$h $OTHER=$o" | tee -a "$OUT/raw-$MODE.txt"
done
python3 - "$OUT/raw-$MODE.txt" "$OTHER" <<'PY'
import statistics, sys
path, other = sys.argv[1], sys.argv[2]
rows = [dict(f.split("=") for f in line.split()) for line in open(path)]
ratios = [float(r["hopdns"]) / float(r[other]) for r in rows if float(r[other] or 0) > 0]
if not ratios:
    sys.exit(f"alternate: {other} answered nothing")
print(f"hopdns over {other}, {len(ratios)} pairs of turns ({path}):")
print(f"median {statistics.median(ratios):.3f}, pairs {', '.join(f'{x:.2f}' for x in ratios)}")
print(f"hopdns median {statistics.median(float(r['hopdns']) for r in rows):,.0f} q/s, "
      f"{other} median {statistics.median(float(r[other]) for r in rows):,.0f} q/s")
PY
