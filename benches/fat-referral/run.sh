#!/usr/bin/env bash
# benches/fat-referral/run.sh -- the fat-referral attack (issue 11, item 1) against a release
# hopdns and against Unbound, side by side. About 2 minutes; needs root (port 53), python3
# with dnspython, unbound, taskset. Loopback only (127.56.0.0/16); everything it starts is
# stopped by PID; the whole run is bounded by LIMIT seconds.
#
#   benches/fat-referral/run.sh
#   HOPDNS=target/release/hopdns KINDS=fat PEERS=hopdns benches/fat-referral/run.sh
#
# Environment:
#   HOPDNS    the binary under test (default this checkout's target/release/hopdns; waited for up
#             to WAIT_BIN s if it does not exist yet; never built here)
#   UNBOUND   default /usr/sbin/unbound
#   PEERS     "hopdns unbound"
#   KINDS     "fat gfat": fat = ~3,170 NS names outside the child zone, no glue (the CPU
#             attack); gfat = ~1,540 in-zone NS names with one A glue each (the memory attack)
#   RES_CPU / LAB_CPU   CPU for the resolver / for the authority and the load (1 / 0)
#   ZONES     fat zones asked in phase 1 (1000)
#   QTIMEOUT  seconds each question waits for its answer (3)
#   LIMIT     whole-run bound in seconds (170)
#
# See README.md beside this file for what each phase does and the figures measured.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# One load run at a time on this machine (the lock benches/overload.sh takes too).
if [ -z "${HOPDNS_BENCH_LOCKED:-}" ]; then
  export HOPDNS_BENCH_LOCKED=1
  exec flock /tmp/hopdns-bench.lock "$0" "$@"
fi
HOPDNS=${HOPDNS:-$(cd "$(dirname "$0")/../.." && pwd)/target/release/hopdns}
UNBOUND=${UNBOUND:-/usr/sbin/unbound}
PEERS=${PEERS:-hopdns unbound}
KINDS=${KINDS:-fat gfat}
RES_CPU=${RES_CPU:-1}
LAB_CPU=${LAB_CPU:-0}
LIMIT=${LIMIT:-170}
WAIT_BIN=${WAIT_BIN:-1200}
ZONES=${ZONES:-1000}
QTIMEOUT=${QTIMEOUT:-3}
for p in $PEERS; do
  case $p in hopdns|unbound) ;; *) echo "fat-referral: PEERS takes hopdns and unbound, not '$p'" >&2; exit 2 ;; esac
done
for k in $KINDS; do
  case $k in fat|gfat) ;; *) echo "fat-referral: KINDS takes fat and gfat, not '$k'" >&2; exit 2 ;; esac
done
HOPDNS_ADDR=127.56.0.53
UNBOUND_ADDR=127.56.0.54

PY=python3
$PY -c 'import dns.message' 2>/dev/null || PY=/usr/bin/python3
$PY -c 'import dns.message' || { echo "fat-referral: dnspython is missing (pip install dnspython)" >&2; exit 2; }
PIN_RES=(); PIN_LAB=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 1 ]; then
  PIN_RES=(taskset -c "$RES_CPU"); PIN_LAB=(taskset -c "$LAB_CPU")
fi

case " $PEERS " in *" hopdns "*)
  waited=0
  while [ ! -x "$HOPDNS" ]; do
    [ "$waited" -ge "$WAIT_BIN" ] && { echo "fat-referral: $HOPDNS does not exist" >&2; exit 2; }
    echo "fat-referral: waiting for $HOPDNS" >&2; sleep 60; waited=$((waited + 60))
  done ;;
esac

RUN=$(mktemp -d /tmp/fat-referral.XXXXXX)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
# A copy, so that a rebuild during the run cannot change the binary under test.
HOPDNS_SRC=$HOPDNS
HOPDNS_MTIME=$(stat -c %y "$HOPDNS" 2>/dev/null | cut -d. -f1)
if [ -x "$HOPDNS" ]; then cp "$HOPDNS" "$RUN/hopdns"; HOPDNS=$RUN/hopdns; fi
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "$RUN/hopdns"
}
trap cleanup EXIT
trap 'exit 143' INT TERM
# The whole-run bound: the watchdog ends this script, whose EXIT trap stops the rest.
( trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "$LIMIT" & s=$!; wait "$s"
  echo "fat-referral: time limit of $LIMIT s reached" >&2; kill -TERM $$ ) &
WATCHDOG=$!
PIDS+=("$WATCHDOG")

printf '.\t3600000\tIN\tNS\ta.root.\na.root.\t3600000\tIN\tA\t127.56.0.1\n' >"$RUN/root.hints"

"${PIN_LAB[@]}" "$PY" "$HERE/authority.py" >"$RUN/authority.log" 2>&1 &
AUTH_PID=$!
PIDS+=("$AUTH_PID")
for _ in $(seq 50); do grep -q "authority up" "$RUN/authority.log" 2>/dev/null && break; sleep 0.1; done
grep -q "authority up" "$RUN/authority.log" || { echo "fat-referral: authority did not start" >&2; cat "$RUN/authority.log" >&2; exit 1; }
"$PY" "$HERE/authority.py" --selftest | sed 's/^/referral sizes: /'

start_peer() {  # start_peer hopdns|unbound; sets PEER_PID, ADDR, STATS
  local who=$1
  if [ "$who" = hopdns ]; then
    ADDR=$HOPDNS_ADDR
    rm -f "$RUN/hopdns.ctl"
    "${PIN_RES[@]}" "$HOPDNS" serve --listen "$ADDR:53" --root-hints "$RUN/root.hints" --no-dnssec \
      --query-loopback --no-ipv6 --allow 127.0.0.0/8 --cache-size 16m --threads 1 \
      --control-socket "$RUN/hopdns.ctl" --log-level warn >>"$RUN/hopdns.log" 2>&1 &
    PEER_PID=$!
    STATS="'$HOPDNS' ctl --socket '$RUN/hopdns.ctl' stats | grep -E '^(replies_servfail|cache_(hits|misses)|in_flight|overloaded|upstream_(queries|timeouts)|cache_delegations|cache_.*bytes|cache_evictions) '"
  else
    ADDR=$UNBOUND_ADDR
    cat >"$RUN/unbound.conf" <<EOF
server:
  interface: $ADDR
  port: 53
  num-threads: 1
  do-ip6: no
  do-not-query-localhost: no
  module-config: "iterator"
  root-hints: "$RUN/root.hints"
  username: ""
  chroot: ""
  directory: "$RUN"
  pidfile: "$RUN/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  # test. is one of Unbound's built-in local zones (RFC 6761): let it be resolved.
  local-zone: "test." nodefault
  extended-statistics: yes
  msg-cache-size: 8m
  rrset-cache-size: 8m
remote-control:
  control-enable: yes
  control-interface: $RUN/unbound.ctl
  control-use-cert: no
EOF
    "${PIN_RES[@]}" "$UNBOUND" -d -c "$RUN/unbound.conf" >>"$RUN/unbound.log" 2>&1 &
    PEER_PID=$!
    STATS="unbound-control -c '$RUN/unbound.conf' stats_noreset | grep -E '^(mem\\.cache|total\\.num\\.(queries|cachehits|cachemiss)=|total\\.requestlist\\.(avg|max|exceeded)|total\\.recursion\\.time\\.avg|num\\.answer\\.rcode\\.SERVFAIL)'"
  fi
  PIDS+=("$PEER_PID")
  for _ in $(seq 50); do
    dig +time=1 +tries=1 @"$ADDR" www.ok.test A +short 2>/dev/null | grep -q 192.0.2.1 && return 0
    kill -0 "$PEER_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "fat-referral: $who did not come up" >&2; tail -n 20 "$RUN/$who.log" >&2; exit 1
}
stop_peer() {
  kill "$PEER_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$PEER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PEER_PID" 2>/dev/null || true
  wait "$PEER_PID" 2>/dev/null || true
}

FILES=()
for kind in $KINDS; do
  for who in $PEERS; do
    echo "== $who, $kind zones" >&2
    start_peer "$who"
    alive=yes
    "${PIN_LAB[@]}" timeout $((60 + 4 * QTIMEOUT)) "$PY" "$HERE/load.py" run --server "$ADDR" --pid "$PEER_PID" \
      --kind "$kind" --zones "$ZONES" --timeout "$QTIMEOUT" --out "$RUN/$who-$kind.json" --stats-cmd "$STATS" || echo "fat-referral: load run failed" >&2
    kill -0 "$PEER_PID" 2>/dev/null || alive="NO (crashed)"
    echo "   $who alive after the run: $alive" >&2
    [ -s "$RUN/$who-$kind.json" ] && FILES+=("$RUN/$who-$kind.json")
    stop_peer
  done
done

echo
echo "fat-referral bench: $(date -u +%FT%TZ); hopdns $HOPDNS_SRC (built $HOPDNS_MTIME; its checkout at $(git -C "$(dirname "$HOPDNS_SRC")" rev-parse --short HEAD 2>/dev/null || echo "?")); $("$UNBOUND" -V 2>/dev/null | head -n1)"
echo "resolver on CPU ${PIN_RES[*]:-any}; authority and load on CPU ${PIN_LAB[*]:-any}; logs in $RUN"
echo "load average (1, 5, 15 min) at start: $LOAD0; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
verdict=0
if [ "${#FILES[@]}" -gt 0 ]; then
  "$PY" "$HERE/load.py" report "${FILES[@]}" || verdict=$?
fi
echo
grep "^stats" "$RUN/authority.log" | tail -n 1 | sed 's/^/authority /'
# The authority's own CPU (utime+stime), to see that it was not the bottleneck.
awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "authority CPU: %.1f s in all\n", ($12 + $13) / t }' "/proc/$AUTH_PID/stat"
# Non-zero when a hopdns pass bar (load.py: RSS, probes, CPU) was missed.
exit "$verdict"
