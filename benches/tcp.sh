#!/usr/bin/env bash
# Cache hits over TCP (issue 17.4): hopdns beside Unbound on the shared bench, same rounds.
# Each round starts each resolver fresh (one thread, pinned to CPU 1, 150 MB cache; the load
# generator and the lab on CPU 0), warms the shared bench's 1000 hit names over UDP, then runs
# dnsperf over TCP: C connections, Q queries outstanding in all (pipelined on each connection,
# RFC 7766 §6.2.1.1), DURATION seconds. Prints the QPS, the resolver's CPU and the background
# CPU of each measurement, then the same-round ratio hopdns / Unbound and its median.
#
# usage: REPS=3 DURATION=10 C=8 Q=200 benches/tcp.sh
# Loopback only (the shared bench's 127.0.0.0/24); every process is stopped by PID through the
# bench's down.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
REPS=${REPS:-3}; DURATION=${DURATION:-10}; C=${C:-8}; Q=${Q:-200}
export LAB_RUN=${LAB_RUN:-$BENCH/run}
BIN=${HOPDNS_BIN:-$root/target/release/hopdns}
OUT=$root/target/tcp; mkdir -p "$OUT"
[ -x "$BIN" ] && [ -z "${REBUILD:-}" ] || (cd "$root" && cargo build --release --quiet)

. "$here/lab.sh"
lab_up_if_down
trap '"$BENCH/down.sh" peers >/dev/null 2>&1 || true; lab_stop_if_started' EXIT

busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $0}' /proc/stat | cut -d' ' -f1; }
ticks() { local t=0 p; for p in $(ss -H -ltnp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
  t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)

start() {
  case $1 in
    unbound) MODE=start "$BENCH/bench-peer.sh" unbound >/dev/null; echo 5301 ;;
    hopdns) MODE=start "$BENCH/bench-peer.sh" custom 127.0.0.1:5300 -- "$BIN" serve \
              --listen @ADDR@:@PORT@ --root-hints @HINTS@ --threads 1 --query-loopback --no-ipv6 \
              --no-prime --cache-size 150m --no-dnssec >/dev/null; echo 5300 ;;
  esac
}

RAW=$OUT/raw.txt; : > "$RAW"
hit=$LAB_RUN/q/hit.txt
peers=(unbound hopdns)
for r in $(seq "$REPS"); do
  for i in 0 1; do
    p=${peers[$(( (i + r - 1) % 2 ))]}
    port=$(start "$p")
    taskset -c 0 dnsperf -s 127.0.0.1 -p "$port" -d "$hit" -n 2 -c 4 -q 50 -t 5 >/dev/null 2>&1 || true
    a_busy=$(busy); a_p=$(ticks "$port"); t0=$(date +%s.%N)
    cl=$( { TIMEFORMAT='%U %S'; time taskset -c 0 dnsperf -m tcp -s 127.0.0.1 -p "$port" -d "$hit" \
            -c "$C" -q "$Q" -l "$DURATION" -t 5 > "$OUT/dnsperf-$p-$r.out" 2>&1; } 2>&1 ) || true
    b_busy=$(busy); b_p=$(ticks "$port"); t1=$(date +%s.%N)
    qps=$(awk '/Queries per second/ {printf "%.0f", $4}' "$OUT/dnsperf-$p-$r.out")
    lost=$(awk '/Queries lost/ {print $3}' "$OUT/dnsperf-$p-$r.out")
    read -r cpu bg < <(awk -v a="$a_busy" -v b="$b_busy" -v pa="$a_p" -v pb="$b_p" -v hz="$HZ" \
      -v t0="$t0" -v t1="$t1" -v cl="$cl" 'BEGIN { split(cl, c, " "); w = t1 - t0;
        printf "%.0f %.0f\n", 100 * (pb - pa) / hz / w, 100 * ((b - a - (pb - pa)) / hz - c[1] - c[2]) / w }')
    echo "round=$r peer=$p tcp_hit_qps=$qps lost=$lost cpu=$cpu% bg_cpu=$bg%" | tee -a "$RAW"
    "$BENCH/down.sh" peers >/dev/null 2>&1 || true
  done
done

python3 - "$RAW" <<'EOF'
import sys, statistics
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["peer"]] = int(r["tcp_hit_qps"] or 0)
ratios = [v["hopdns"] / v["unbound"] for v in by.values() if v.get("unbound")]
for p in ("unbound", "hopdns"):
    print(f"{p}: median {statistics.median(v[p] for v in by.values()):,} q/s over TCP")
print("hopdns / Unbound, same round:", ", ".join(f"{x:.2f}" for x in ratios),
      f"-> median {statistics.median(ratios):.2f}")
EOF
