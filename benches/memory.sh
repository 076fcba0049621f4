#!/usr/bin/env bash
# benches/memory.sh -- memory per cached name (hopdns and Unbound) and hopdns's RSS under a
# stream of unique names, on the shared NSD lab (../shared/bench).
#
#   benches/memory.sh per-name [N]        # RSS after caching N (100000) unique names, minus RSS empty
#   benches/memory.sh curve [N] [STEP]    # hopdns, default --cache-size: RSS every STEP (100000) of N (1000000) names
#
# Unique names are <prefix><i>.bench.example (the lab's wildcard zone, one upstream query each
# once the delegation is cached), sent by dnsperf, each name once. Needs root, nsd, dnsperf,
# unbound. Loopback only; the processes it starts are stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_LAB:-$ROOT/../shared/bench}
OUT=$ROOT/target/load; mkdir -p "$OUT"
WHAT=${1:-per-name}
ADDR=127.0.0.1; PORT=5300

cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
BIN=$OUT/hopdns-mem; cp "$ROOT/target/release/hopdns" "$BIN"

# The lab is found by asking it (it may run from another run dir), and stopped at the end
# only if it was started here.
export LAB_RUN=${LAB_RUN:-/tmp/hopdns-memory-lab}
. "$ROOT/benches/lab.sh"
lab_up_if_down
PEER_PID=
cleanup() {
  [ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null || true
  lab_stop_if_started
}
trap cleanup EXIT
trap 'exit 143' INT TERM

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PEER_PID/status"; }
start() {  # start hopdns|unbound [hopdns args...]
  local who=$1; shift
  if [ "$who" = unbound ]; then
    local run=$OUT/unbound-mem; mkdir -p "$run"
    sed -e "s|@ADDR@|$ADDR|g; s|@PORT@|$PORT|g; s|@THREADS@|1|g; s|@LAB@|$BENCH|g; s|@RUN@|$run|g" \
        -e "s|@CACHE_MB@|150|g; s|@MSG_CACHE_MB@|50|g; s|@RRSET_CACHE_MB@|100|g" \
        "$BENCH/peers/unbound.conf" > "$run/unbound.conf"
    taskset -c 1 unbound -d -c "$run/unbound.conf" >"$run/log" 2>&1 &
  else
    taskset -c 1 "$BIN" serve --listen "$ADDR:$PORT" --root-hints "$BENCH/root.hints" --no-dnssec --threads 1 \
      --query-loopback --no-ipv6 --no-prime "$@" >"$OUT/hopdns-mem.log" 2>&1 &
  fi
  PEER_PID=$!
  lab_wait_answering "$ADDR" "$PORT" 100 0.1
}
stop() { kill "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=; }
send() {  # send PREFIX FROM TO: each name once
  local f=$OUT/names-$1-$2.txt
  seq "$2" "$(( $3 - 1 ))" | sed "s/^/$1/; s/$/.bench.example A/" > "$f"
  taskset -c 0 dnsperf -s "$ADDR" -p "$PORT" -d "$f" -n 1 -c 8 -q 200 -l 600 -t 5 > "$OUT/dnsperf-$1.log" 2>&1
  grep -E "Queries completed" "$OUT/dnsperf-$1.log" | sed 's/^ *//' >&2
  rm -f "$f"
}

case $WHAT in
per-name)
  N=${2:-100000}
  for who in unbound hopdns; do
    if [ "$who" = hopdns ]; then start hopdns --cache-size 150m; else start unbound; fi
    sleep 1; before=$(rss_kb)
    send "p$who" 0 "$N"; sleep 1; after=$(rss_kb)
    echo "peer=$who names=$N rss_empty_kb=$before rss_full_kb=$after bytes_per_name=$(( (after - before) * 1024 / N ))"
    stop
  done
  ;;
curve)
  N=${2:-1000000}; STEP=${3:-100000}
  # jemalloc's own counts beside RSS (hopdns_allocator_bytes): live bytes against what the
  # allocator keeps resident tells cache growth from allocator slack.
  METRICS=$ADDR:9317
  start hopdns --metrics "$METRICS" "${@:4}"
  alloc() {
    curl -s "http://$METRICS/metrics" | awk -F'[{}" ]+' '/^hopdns_allocator_bytes\{/ {printf "%s_kb=%d ", $3, $NF / 1024}
      /^hopdns_cache_bytes\{/ {c += $NF} END {printf "cache_counted_kb=%d", c / 1024}'
  }
  echo "names=0 rss_kb=$(rss_kb) $(alloc)"
  for from in $(seq 0 "$STEP" $(( N - 1 ))); do
    send c "$from" $(( from + STEP ))
    echo "names=$(( from + STEP )) rss_kb=$(rss_kb) $(alloc)"
  done
  stop
  ;;
*) echo "usage: $0 per-name [N] | curve [N] [STEP] [hopdns args...]" >&2; exit 2 ;;
esac
