#!/usr/bin/env bash
# benches/dnssec/cold.sh -- cold resolution with validation on: a fresh resolver process
# resolving names across the signed lab's chain of zones, with no key cached, as hopdns
# validating, hopdns with --no-dnssec, and Unbound 1.17 validating, in the same run.
#
#   benches/dnssec/cold.sh               # RUNS=5 fresh processes per resolver
#   RUNS=3 NET=233 benches/dnssec/cold.sh
#
# Each run starts the resolver afresh (pinned to CPU 1, one thread; the lab on CPU 0), waits
# until it answers `localhost. A` (served locally by both, no upstream query), then asks in
# turn from one client (a few lines of Python: no process start between questions, times in
# microseconds), with DO set:
#   www.secure.net A   root, net. and secure.net. (NSEC): three zones' keys
#   www.secure.org A   org. and secure.org. (NSEC3)
#   nope.secure.org A  NXDOMAIN proved by NSEC3 (keys cached by now)
#   www.optout.com A   com. and optout.com. (NSEC3 opt-out)
# and counts the queries it sent to the lab's authorities (tcpdump on lo: UDP to port 53
# plus TCP connections, from process start to the last answer, priming included: hopdns
# primes at start, Unbound at its first question). Prints per run the first question's time,
# the four questions' total and the upstream query count, then the medians and the ratios.
# Everything stays on 127.53.NET.0/24 (default 233); every process started here is stopped
# by PID. Needs root, dig, python3, tcpdump and unbound (Debian packages).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=benches/dnssec/unbound.sh
. "$ROOT/benches/dnssec/unbound.sh"
NET=${NET:-233}; RUNS=${RUNS:-5}
BIN=${BIN:-$ROOT/target/release/hopdns}
[ -x "$BIN" ] || cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
for tool in dig tcpdump unbound taskset; do
  command -v "$tool" >/dev/null || { echo "cold.sh: no $tool (Debian: bind9-dnsutils, tcpdump, unbound, util-linux)" >&2; exit 2; }
done
NAMES=("www.secure.net A" "www.secure.org A" "nope.secure.org A" "www.optout.com A")
WORK=$(mktemp -d /tmp/hopdns-dnssec-cold.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 143' INT TERM
# Stops one process started here and forgets its PID.
stop() {
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
# Busy share of all CPUs over 2 s (from /proc/stat).
background() {
  local a b
  a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN { split(a, x); split(b, y); t = 0
    for (i = 2; i <= 9; i++) t += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6]); printf "%.0f%%", 100 * (t - idle) / t }'
}
echo "background CPU before: $(background) busy of $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

taskset -c 0 "$BIN" lab --net "$NET" --state-dir "$WORK/state" >"$WORK/lab.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "^Trust anchor for this lab:" "$WORK/lab.log" && break; sleep 0.1; done
HINTS=$(sed -n 's/^Root hints for this lab: //p' "$WORK/lab.log")
ANCHOR=$(sed -n 's/^Trust anchor for this lab: //p' "$WORK/lab.log")
[ -n "$ANCHOR" ] || { echo "cold.sh: the lab did not start" >&2; cat "$WORK/lab.log" >&2; exit 2; }
IP=127.53.$NET

# run PEER ADDR: sets R_FIRST and R_TOTAL (ms) and R_QUERIES.
run() {
  local peer=$1 addr=$2 cap=$WORK/cap.txt pid tpid
  : >"$cap"
  tcpdump -i lo -n -l -q --immediate-mode \
    "dst net $IP.0/24 and not dst host $addr and dst port 53 and (udp or (tcp[tcpflags] & tcp-syn != 0))" \
    >"$cap" 2>"$WORK/tcpdump.err" &
  tpid=$!; PIDS+=($tpid)
  for _ in $(seq 50); do grep -q "listening on" "$WORK/tcpdump.err" && break; sleep 0.1; done
  case $peer in
  hopdns-validating)
    taskset -c 1 "$BIN" serve --listen "$addr:53" --root-hints "$HINTS" --trust-anchor "$ANCHOR" \
      --threads 1 --query-loopback --no-ipv6 --log-level warn >"$WORK/$peer.log" 2>&1 & ;;
  hopdns-off)
    taskset -c 1 "$BIN" serve --listen "$addr:53" --root-hints "$HINTS" --no-dnssec \
      --threads 1 --query-loopback --no-ipv6 --log-level warn >"$WORK/$peer.log" 2>&1 & ;;
  unbound-validating)
    rm -rf "$WORK/unbound"
    unbound_conf "$WORK/unbound" "$addr" "$HINTS" "$ANCHOR" "num-threads: 1"
    taskset -c 1 unbound -c "$WORK/unbound/unbound.conf" >"$WORK/$peer.log" 2>&1 & ;;
  esac
  pid=$!; PIDS+=($pid)
  local up=0
  for _ in $(seq 100); do
    dig +short +tries=1 +time=1 @"$addr" localhost. A 2>/dev/null | grep -q . && { up=1; break; }
    sleep 0.05
  done
  [ "$up" = 1 ] || { echo "cold.sh: $peer did not answer localhost." >&2; cat "$WORK/$peer.log" >&2; exit 2; }
  # One client asks the four in turn (no process start between them) and times each
  # question to its reply in microseconds.
  python3 - "$addr" "${NAMES[@]}" >"$WORK/times.txt" <<'PY' || true
import random, socket, struct, sys, time
addr, names = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for q in names:
    name, qtype = q.split()
    qid = random.randrange(65536)
    wire = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)  # RD, one question, one OPT
    wire += b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split(".")) + b"\0"
    wire += struct.pack(">HH", {"A": 1, "AAAA": 28}[qtype], 1)
    wire += b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)  # EDNS, DO
    t0 = time.perf_counter()
    s.sendto(wire, (addr, 53))
    rcode = "TIMEOUT"
    try:
        while True:
            reply = s.recv(65535)
            if struct.unpack(">H", reply[:2])[0] == qid:
                rcode = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN"}.get(reply[3] & 15, "other")
                break
    except socket.timeout:
        pass
    print(int((time.perf_counter() - t0) * 1e6), rcode, q.replace(" ", "/"))
PY
  grep -qv " NOERROR \| NXDOMAIN " "$WORK/times.txt" \
    && { echo "cold.sh: $peer: not every question answered:" >&2; cat "$WORK/times.txt" >&2; }
  R_FIRST=$(awk 'NR == 1 { printf "%.2f", $1 / 1000 }' "$WORK/times.txt")
  R_TOTAL=$(awk '{ s += $1 } END { printf "%.2f", s / 1000 }' "$WORK/times.txt")
  sleep 0.2
  stop "$pid"
  stop "$tpid"
  R_QUERIES=$(wc -l <"$cap")
}

PEERS=(hopdns-validating hopdns-off unbound-validating)
declare -A FIRST TOTAL QUERIES
for r in $(seq "$RUNS"); do
  for i in 0 1 2; do
    p=${PEERS[$(( (i + r - 1) % 3 ))]}
    run "$p" "$IP.$((240 + i))"
    f=$R_FIRST; t=$R_TOTAL; q=$R_QUERIES
    echo "run=$r peer=$p first_ms=$f total_ms=$t upstream_queries=$q"
    FIRST[$p]+="$f "; TOTAL[$p]+="$t "; QUERIES[$p]+="$q "
  done
done
echo "background CPU after: $(background) busy of $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A MF MT MQ
for p in "${PEERS[@]}"; do
  MF[$p]=$(echo "${FIRST[$p]}" | median); MT[$p]=$(echo "${TOTAL[$p]}" | median); MQ[$p]=$(echo "${QUERIES[$p]}" | median)
  echo "median peer=$p first_ms=${MF[$p]} total_ms=${MT[$p]} upstream_queries=${MQ[$p]}"
done
awk -v v="${MT[hopdns-validating]}" -v o="${MT[hopdns-off]}" -v u="${MT[unbound-validating]}" \
  'BEGIN { printf "total time: validating/off=%.2f validating/unbound-validating=%.2f\n", v/o, v/u }'
awk -v v="${MF[hopdns-validating]}" -v o="${MF[hopdns-off]}" -v u="${MF[unbound-validating]}" \
  'BEGIN { printf "first question: validating/off=%.2f validating/unbound-validating=%.2f\n", v/o, v/u }'
