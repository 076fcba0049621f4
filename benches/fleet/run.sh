#!/usr/bin/env bash
# benches/fleet/run.sh -- a fleet of hopdns instances behind dnsdist, on the lab (issue 19).
#
#   client.py --> dnsdist 127.53.NET.200:53 --> hopdns 127.53.NET.211, .212, ... :53
#                                                   --> lab authorities 127.53.NET.x:53
#
# The lab is `hopdns lab --net NET` (its root hints are read from its output); every hopdns
# runs `serve --health-check-name health.fleet.` with a control socket; dnsdist's config is
# rendered from dnsdist.conf.in. Questions come from zipf.py (names under the lab's wild.net
# wildcard, fixed seed) and are sent by client.py at a fixed rate, each with a 1 s timeout.
# Figures are counts read with `hopdns ctl stats` before and after each run, not rates, so
# they hold on a busy machine. Modes (default: all but smoke):
#
#   locality  chashed vs roundrobin over INSTANCES, vs one instance with INSTANCES x CACHE:
#             hit ratio and upstream queries per client query
#   failover  an instance killed (SIGKILL) under load and started again: queries lost, time
#             until dnsdist marks it down, time until it is up and answering again
#   drain     an instance stopped with SIGTERM under load, with and without
#             --health-fail-before-stop: queries lost
#   warm      an instance started from another's `ctl dump-cache` vs a cold one: hit ratio
#             of their first WARM_QUERIES questions
#   smoke     the test's small version: 2 instances, chashed, a few hundred queries, one
#             drain (tests/fleet.rs runs it with the debug binary)
#
#   benches/fleet/run.sh [MODE...]
#   CACHE=64m benches/fleet/run.sh locality
#
# Needs root (port 53 on loopback), dnsdist (Debian: apt install dnsdist) and python3.
# Everything stays on 127.53.NET.0/24; every process it starts is stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NET=${NET:-223}
INSTANCES=${INSTANCES:-4}
CACHE=${CACHE:-1m}                  # per instance; the single instance gets INSTANCES x this
NAMES=${NAMES:-20000}               # Zipf name set size
QUERIES=${QUERIES:-50000}           # questions per locality run
ZIPF_S=${ZIPF_S:-1.0}
RATE=${RATE:-1000}                  # client questions per second
CHECK_NAME=health.fleet.
CHECK_INTERVAL=${CHECK_INTERVAL:-1}
CHECK_TIMEOUT_MS=${CHECK_TIMEOUT_MS:-500}
MAX_CHECK_FAILURES=${MAX_CHECK_FAILURES:-1}
FAIL_BEFORE_STOP=${FAIL_BEFORE_STOP:-3}
WARM_QUERIES=${WARM_QUERIES:-5000}
PROXY=${PROXY:-false}               # true: dnsdist sends PROXY v2, hopdns takes the client from it
BIN=${BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
  BIN=$ROOT/target/release/hopdns
fi
command -v dnsdist >/dev/null || { echo "fleet: dnsdist is missing: apt-get install dnsdist" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "fleet: needs root (the lab and the fleet bind port 53)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/hopdns-fleet.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
# A TERM or INT (`timeout`, Ctrl-C) exits through the EXIT trap, so nothing is left running.
trap 'exit 143' TERM INT
log() { echo "[fleet] $*" >&2; }
# Prefixes every line with the epoch time, so dnsdist's health transitions can be timed.
stamp() { python3 -u -c 'import sys,time
for l in sys.stdin: print(f"{time.time():.3f} {l}", end="", flush=True)'; }
ip_of() { echo "127.53.$NET.$((210 + $1))"; }
DNSDIST=127.53.$NET.200:53
PROXY_FLAGS=()
[ "$PROXY" = true ] && PROXY_FLAGS=(--proxy-protocol-from "127.53.$NET.200/32")
# proxy_report: which clients the instances' query logs name (PROXY=true only): the real
# clients when the PROXY headers are honoured, dnsdist's own address when not.
proxy_report() {
  [ "$PROXY" = true ] || return 0
  local lines dnsdist_seen
  lines=$(cat "$WORK"/qlog-*.json 2>/dev/null | grep -v "$CHECK_NAME" || true)
  dnsdist_seen=$(grep -c "\"client\":\"127.53.$NET.200\"" <<<"$lines" || true)
  echo "proxy logged=$(grep -c . <<<"$lines" || true) dnsdist_seen=$dnsdist_seen clients=$(grep -o '"client":"[^"]*"' <<<"$lines" | sort -u | cut -d'"' -f4 | paste -sd, -)"
}

# --- the lab -------------------------------------------------------------------------------
# The file exists before the lab starts: the background job opens it only when it runs, and
# on a busy machine the first look below can come first.
: >"$WORK/lab.out"
"$BIN" lab --net "$NET" --threads 1 >"$WORK/lab.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  HINTS=$(sed -n 's/^Root hints for this lab: //p' "$WORK/lab.out")
  [ -n "$HINTS" ] && break
  sleep 0.1
done
[ -n "$HINTS" ] || { cat "$WORK/lab.out" >&2; echo "fleet: the lab did not start" >&2; exit 1; }
cp "$HINTS" "$WORK/root.hints"

# --- instances -------------------------------------------------------------------------------
declare -A INST_PID
# start_instance I [extra serve flags...]: hopdns number I on 127.53.NET.(210+I):53.
start_instance() {
  local i=$1; shift
  "$BIN" serve --listen "$(ip_of "$i"):53" --threads 1 --root-hints "$WORK/root.hints" --no-dnssec \
    --query-loopback --no-ipv6 --control-socket "$WORK/hopdns-$i.sock" \
    --health-check-name "$CHECK_NAME" --drain-timeout 1 --log-level warn "${PROXY_FLAGS[@]}" \
    ${PROXY_FLAGS:+--query-log-file "$WORK/qlog-$i.json"} "$@" \
    >>"$WORK/hopdns-$i.log" 2>&1 &
  INST_PID[$i]=$!
  PIDS+=($!)
  for _ in $(seq 100); do
    "$BIN" ctl --socket "$WORK/hopdns-$i.sock" stats >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$WORK/hopdns-$i.log" >&2
  echo "fleet: hopdns $i did not start" >&2
  exit 1
}
# stop_instance I [SIGNAL]: by PID, and wait for it.
stop_instance() {
  local pid=${INST_PID[$1]}
  kill "-${2:-TERM}" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
# stats I...: the sum of `ctl stats` counters over the instances: "hits misses upstream".
stats() {
  for i in "$@"; do "$BIN" ctl --socket "$WORK/hopdns-$i.sock" --json stats; echo; done |
    python3 -c 'import json,sys
t=[0,0,0]
for l in sys.stdin:
    if l.strip():
        d=json.loads(l)["data"]
        for k,key in enumerate(("cache_hits","cache_misses","upstream_queries")): t[k]+=d[key]
print(*t)'
}

# --- dnsdist -------------------------------------------------------------------------------
DNSDIST_PID=
# start_dnsdist POLICY I...: dnsdist on 127.53.NET.200:53 in front of instances I...
start_dnsdist() {
  local policy=$1; shift
  local backends="" i
  for i in "$@"; do backends+="\"$(ip_of "$i"):53\", "; done
  sed -e "s|@LISTEN@|$DNSDIST|" -e "s|@BACKENDS@|$backends|" -e "s|@POLICY@|$policy|" \
    -e "s|@CHECK_NAME@|$CHECK_NAME|" -e "s|@CHECK_INTERVAL@|$CHECK_INTERVAL|" -e "s|@PROXY@|$PROXY|" -e "s|@SOURCE@|${DNSDIST%:*}|" \
    -e "s|@CHECK_TIMEOUT_MS@|$CHECK_TIMEOUT_MS|" -e "s|@MAX_CHECK_FAILURES@|$MAX_CHECK_FAILURES|" \
    "$HERE/dnsdist.conf.in" >"$WORK/dnsdist.conf"
  dnsdist --check-config -C "$WORK/dnsdist.conf" >/dev/null
  dnsdist --supervised --disable-syslog -C "$WORK/dnsdist.conf" > >(stamp >"$WORK/dnsdist.log") 2>&1 &
  DNSDIST_PID=$!
  PIDS+=($!)
  # Ready when the health name is answered through it.
  for _ in $(seq 50); do
    if python3 "$HERE/client.py" --server "$DNSDIST" --queries <(echo "$CHECK_NAME A") \
        --timeout 0.2 | grep -q 'noerror=1'; then
      return 0
    fi
    sleep 0.1
  done
  cat "$WORK/dnsdist.log" >&2
  echo "fleet: dnsdist did not answer" >&2
  exit 1
}
stop_dnsdist() { kill "$DNSDIST_PID" 2>/dev/null || true; wait "$DNSDIST_PID" 2>/dev/null || true; }
# when_marked NAME STATE: the epoch time of dnsdist's first "Marking downstream NAME ... as 'STATE'".
when_marked() { grep -m1 "Marking downstream $1 .*'$2'" "$WORK/dnsdist.log" | cut -d' ' -f1; }
# first_last FILE: the first and last line of a sorted list of epoch times, or "- -".
first_last() { if [ -s "$1" ]; then echo "$(head -1 "$1") $(tail -1 "$1")"; else echo "- -"; fi; }
sub() { python3 -c "import sys; a,b=sys.argv[1:]; print('-' if '-' in (a,b) else f'{float(a)-float(b):.2f}')" "$1" "$2"; }

seq_instances() { seq 1 "$INSTANCES"; }

# --- locality ------------------------------------------------------------------------------
# locality_run LABEL POLICY CACHE I...: fresh instances, the Zipf file through dnsdist.
locality_run() {
  local label=$1 policy=$2 cache=$3; shift 3
  local i
  for i in "$@"; do start_instance "$i" --cache-size "$cache"; done
  start_dnsdist "$policy" "$@"
  read -r h0 m0 u0 < <(stats "$@")
  local out
  out=$(python3 "$HERE/client.py" --server "$DNSDIST" --queries "$WORK/zipf.txt" --rate "$RATE")
  read -r h1 m1 u1 < <(stats "$@")
  # Questions each instance saw (hits + misses, since start: priming asks nothing of these).
  local per="" hi mi ui
  for i in "$@"; do read -r hi mi ui < <(stats "$i"); per+="$((hi + mi)),"; done
  stop_dnsdist
  for i in "$@"; do stop_instance "$i"; done
  python3 - "$label" "$cache" "$out" "${per%,}" $((h1 - h0)) $((m1 - m0)) $((u1 - u0)) <<'PY'
import sys
label, cache, out, per, h, m, u = *sys.argv[1:5], *map(int, sys.argv[5:])
kv = dict(x.split("=") for x in out.split())
sent = int(kv["sent"])
print(f"locality {label:<10} cache={cache:<5} queries={sent} lost={kv['lost']} hits={h} misses={m} "
      f"hit_ratio={h / max(1, h + m):.3f} upstream={u} upstream_per_query={u / sent:.3f} "
      f"per_instance={per}")
PY
}
locality() {
  python3 "$HERE/zipf.py" "$NAMES" "$QUERIES" "$ZIPF_S" 19 >"$WORK/zipf.txt"
  log "locality: $QUERIES questions over $NAMES names (Zipf s=$ZIPF_S, seed 19), $RATE/s"
  local all
  all=$(seq_instances | tr '\n' ' ')
  local big=$(( ${CACHE%m} * INSTANCES ))m
  # shellcheck disable=SC2086
  locality_run chashed chashed "$CACHE" $all
  # shellcheck disable=SC2086
  locality_run roundrobin roundrobin "$CACHE" $all
  locality_run single firstAvailable "$big" 1
}

# --- failover ------------------------------------------------------------------------------
# Load through dnsdist for SECS; instance 1 is killed at KILL_AT and started again at BACK_AT.
failover() {
  local secs=${FAILOVER_SECS:-20} kill_at=${KILL_AT:-6} back_at=${BACK_AT:-12}
  local n=$((RATE * secs)) i
  python3 "$HERE/zipf.py" "$NAMES" "$n" "$ZIPF_S" 21 >"$WORK/load.txt"
  for i in $(seq_instances); do start_instance "$i"; done
  # shellcheck disable=SC2046
  start_dnsdist chashed $(seq_instances)
  # Warm the fleet with the same questions first, so losses are the kill's, not cold misses.
  python3 "$HERE/client.py" --server "$DNSDIST" --queries "$WORK/load.txt" --rate $((RATE * 4)) >/dev/null
  local t0
  t0=$(python3 -c 'import time; print(f"{time.time() + 0.5:.3f}")')
  python3 "$HERE/client.py" --server "$DNSDIST" --queries "$WORK/load.txt" --rate "$RATE" \
    --start-at "$t0" --lost-log "$WORK/lost.txt" >"$WORK/client.out" &
  local client=$!
  PIDS+=($client)
  sleep_until "$(sub_add "$t0" "$kill_at")"
  local killed
  killed=$(now)
  stop_instance 1 KILL
  sleep_until "$(sub_add "$t0" "$back_at")"
  local restarted
  restarted=$(now)
  start_instance 1
  local listening
  listening=$(now)
  wait "$client"
  stop_dnsdist
  local down up
  down=$(when_marked hopdns-1 down)
  up=$(grep "Marking downstream hopdns-1 .*'up'" "$WORK/dnsdist.log" | tail -1 | cut -d' ' -f1)
  read -r lf ll < <(first_last "$WORK/lost.txt")
  echo "failover SIGKILL instances=$INSTANCES rate=$RATE/s check=${CHECK_INTERVAL}s/${CHECK_TIMEOUT_MS}ms" \
    "$(cat "$WORK/client.out") marked_down_after=$(sub "$down" "$killed")s" \
    "losses_from_kill=$(sub "$lf" "$killed")s..$(sub "$ll" "$killed")s" \
    "restart_to_listening=$(sub "$listening" "$restarted")s marked_up_after_restart=$(sub "$up" "$restarted")s"
  for i in $(seq_instances); do stop_instance "$i"; done
}
now() { python3 -c 'import time; print(f"{time.time():.3f}")'; }
sub_add() { python3 -c "import sys; print(f'{float(sys.argv[1]) + float(sys.argv[2]):.3f}')" "$1" "$2"; }
sleep_until() { python3 -c "import sys,time; time.sleep(max(0, float(sys.argv[1]) - time.time()))" "$1"; }

# --- drain ---------------------------------------------------------------------------------
# drain_run BEFORE: instance 1 gets SIGTERM under load with --health-fail-before-stop BEFORE.
drain_run() {
  local before=$1 secs=${DRAIN_SECS:-12} stop_at=${STOP_AT:-4}
  local n=$((RATE * secs)) i
  python3 "$HERE/zipf.py" "$NAMES" "$n" "$ZIPF_S" 22 >"$WORK/load.txt"
  start_instance 1 --health-fail-before-stop "$before"
  for i in $(seq 2 "$INSTANCES"); do start_instance "$i"; done
  # shellcheck disable=SC2046
  start_dnsdist chashed $(seq_instances)
  python3 "$HERE/client.py" --server "$DNSDIST" --queries "$WORK/load.txt" --rate $((RATE * 4)) >/dev/null
  local t0
  t0=$(python3 -c 'import time; print(f"{time.time() + 0.5:.3f}")')
  python3 "$HERE/client.py" --server "$DNSDIST" --queries "$WORK/load.txt" --rate "$RATE" \
    --start-at "$t0" --lost-log "$WORK/lost.txt" >"$WORK/client.out" &
  local client=$!
  PIDS+=($client)
  sleep_until "$(sub_add "$t0" "$stop_at")"
  local term exited
  term=$(now)
  stop_instance 1 TERM
  exited=$(now)
  wait "$client"
  stop_dnsdist
  local down
  down=$(when_marked hopdns-1 down)
  echo "drain SIGTERM fail_before_stop=${before}s drain_timeout=1s instances=$INSTANCES rate=$RATE/s" \
    "$(cat "$WORK/client.out") marked_down_after=$(sub "$down" "$term")s exited_after=$(sub "$exited" "$term")s"
  for i in $(seq 2 "$INSTANCES"); do stop_instance "$i"; done
}
drain() {
  drain_run 0
  drain_run "$FAIL_BEFORE_STOP"
}

# --- warm ----------------------------------------------------------------------------------
# Instance 1 serves the Zipf load; its dump starts instance 2 warm; instance 3 starts cold.
# Both then get the same WARM_QUERIES new questions (same popularity, another seed) directly.
warm() {
  python3 "$HERE/zipf.py" "$NAMES" "$QUERIES" "$ZIPF_S" 19 >"$WORK/zipf.txt"
  python3 "$HERE/zipf.py" "$NAMES" "$WARM_QUERIES" "$ZIPF_S" 23 >"$WORK/fresh.txt"
  start_instance 1 --cache-size 64m
  python3 "$HERE/client.py" --server "$(ip_of 1):53" --queries "$WORK/zipf.txt" --rate "$RATE" >/dev/null
  "$BIN" ctl --socket "$WORK/hopdns-1.sock" dump-cache "$WORK/dump.cache" >&2
  local entries
  entries=$(grep -c '^;; entry' "$WORK/dump.cache" || true)
  start_instance 2 --cache-size 64m --cache-file "$WORK/dump.cache"
  start_instance 3 --cache-size 64m
  local i out
  for i in 2 3; do
    read -r h0 m0 u0 < <(stats "$i")
    out=$(python3 "$HERE/client.py" --server "$(ip_of "$i"):53" --queries "$WORK/fresh.txt" --rate "$RATE")
    read -r h1 m1 u1 < <(stats "$i")
    local kind=cold
    [ "$i" = 2 ] && kind="warm($entries entries)"
    echo "warm $kind first=$WARM_QUERIES questions at $RATE/s: $out" \
      "hit_ratio=$(python3 -c "print(f'{$((h1 - h0)) / max(1, $((h1 - h0 + m1 - m0))):.3f}')")" \
      "upstream_per_query=$(python3 -c "print(f'{$((u1 - u0)) / $WARM_QUERIES:.3f}')")"
  done
  for i in 1 2 3; do stop_instance "$i"; done
}

# --- smoke ---------------------------------------------------------------------------------
# What tests/fleet.rs checks: both instances get queries through dnsdist and cache them;
# a SIGTERM with the health check failing first loses nothing.
smoke() {
  INSTANCES=2 NAMES=300 QUERIES=600 RATE=300
  python3 "$HERE/zipf.py" "$NAMES" "$QUERIES" "$ZIPF_S" 19 >"$WORK/zipf.txt"
  locality_run chashed chashed 1m 1 2
  proxy_report
  DRAIN_SECS=6 STOP_AT=1.5 RATE=200 drain_run 3
}

MODES=("$@")
[ ${#MODES[@]} -gt 0 ] || MODES=(locality failover drain warm)
for m in "${MODES[@]}"; do
  case $m in
    locality|failover|drain|warm) log "$m"; "$m" ;;
    smoke) smoke ;;
    *) echo "fleet: unknown mode $m (locality, failover, drain, warm, smoke)" >&2; exit 2 ;;
  esac
done
