#!/usr/bin/env bash
# benches/dnssec/cost.sh -- what validation costs on cache misses: hopdns validating, hopdns
# with --no-dnssec, and Unbound 1.17 validating, against the signed lab, in the same run.
#
#   benches/dnssec/cost.sh                 # REPS=1 round, 10 s per resolver
#   REPS=3 ZONE=secure.org benches/dnssec/cost.sh   # NSEC3 instead of NSEC
#
# Every question is a new name under the zone's wildcard (`*.wild.secure.net`, NSEC, or
# `*.wild.secure.org`, NSEC3): once the keys are cached (a warm-up question first), a miss
# costs one upstream query and, when validating, the RRSIG of the answer and the wildcard's
# denial proof. Each resolver is pinned to CPU 1 with one thread, the lab and dnsperf to
# CPU 0. Everything stays on 127.53.NET.0/24 (default 231); every process started here is
# stopped by PID. Needs root, dnsperf and unbound (Debian packages).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=benches/dnssec/unbound.sh
. "$ROOT/benches/dnssec/unbound.sh"
NET=${NET:-231}; REPS=${REPS:-1}; DURATION=${DURATION:-10}; ZONE=${ZONE:-secure.net}
N=${N:-200000}
BIN=${BIN:-$ROOT/target/release/hopdns}
[ -x "$BIN" ] || cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
# Busy share of all CPUs over 2 s (from /proc/stat): the load other work puts on the machine,
# printed before and after the measurement so figures can be read against it.
background() {
  local a b
  a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN { split(a, x); split(b, y); t = 0
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); printf "%.0f%%", 100 * (t - idle) / t }'
}
echo "background CPU before: $(background) busy of $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
WORK=$(mktemp -d /tmp/hopdns-dnssec-cost.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 143' INT TERM

taskset -c 0 "$BIN" lab --net "$NET" --state-dir "$WORK/state" >"$WORK/lab.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "^Trust anchor for this lab:" "$WORK/lab.log" && break; sleep 0.1; done
HINTS=$(sed -n 's/^Root hints for this lab: //p' "$WORK/lab.log")
ANCHOR=$(sed -n 's/^Trust anchor for this lab: //p' "$WORK/lab.log")
[ -n "$ANCHOR" ] || { echo "cost.sh: the lab did not start" >&2; cat "$WORK/lab.log" >&2; exit 2; }

IP=127.53.$NET
start() {  # start NAME ADDR -> pid in $PID
  case $1 in
  hopdns-validating)
    taskset -c 1 "$BIN" serve --listen "$2:53" --root-hints "$HINTS" --trust-anchor "$ANCHOR" \
      --threads 1 --query-loopback --no-ipv6 --log-level warn >"$WORK/$1.log" 2>&1 & ;;
  hopdns-off)
    taskset -c 1 "$BIN" serve --listen "$2:53" --root-hints "$HINTS" --no-dnssec \
      --threads 1 --query-loopback --no-ipv6 --log-level warn >"$WORK/$1.log" 2>&1 & ;;
  unbound-validating)
    unbound_conf "$WORK/unbound" "$2" "$HINTS" "$ANCHOR" \
      "num-threads: 1" "msg-cache-size: 64m" "rrset-cache-size: 128m"
    taskset -c 1 unbound -c "$WORK/unbound/unbound.conf" >"$WORK/$1.log" 2>&1 & ;;
  esac
  PID=$!
  PIDS+=($PID)
  for _ in $(seq 100); do
    dig +short +tries=1 +time=1 @"$2" www."$ZONE" A 2>/dev/null | grep -q . && return 0
    sleep 0.1
  done
  echo "cost.sh: $1 did not answer www.$ZONE" >&2; cat "$WORK/$1.log" >&2; exit 2
}

seq 0 $((N - 1)) | sed "s/^/c/; s/\$/.wild.$ZONE A/" >"$WORK/names.txt"
PEERS=(hopdns-validating hopdns-off unbound-validating)
declare -A QPS
for r in $(seq "$REPS"); do
  for i in 0 1 2; do
    p=${PEERS[$(( (i + r - 1) % 3 ))]}
    addr=$IP.$((240 + i))
    start "$p" "$addr"
    ad=$(dig +dnssec +tries=1 +time=2 @"$addr" "w$r.wild.$ZONE" A | grep -c "flags:.* ad" || true)
    qps=$(taskset -c 0 dnsperf -s "$addr" -d "$WORK/names.txt" -l "$DURATION" -c 8 -q 100 2>&1 \
      | awk '/Queries per second/ {print int($4)}')
    lost=$(dig +short @"$addr" "zz$r.wild.$ZONE" A | grep -c . || true)
    echo "round=$r peer=$p miss_qps=$qps ad_on_a_fresh_name=$ad answers_after=$lost"
    QPS[$r,$p]=$qps
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
done
echo "background CPU after: $(background) busy of $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$REPS"); do
  awk -v v="${QPS[$r,hopdns-validating]}" -v o="${QPS[$r,hopdns-off]}" -v u="${QPS[$r,unbound-validating]}" -v r="$r" \
    'BEGIN { printf "round=%d validating/off=%.2f validating/unbound-validating=%.2f\n", r, v/o, v/u }'
done
