#!/usr/bin/env bash
# benches/web/cost.sh -- what the web dashboard costs on the cache-hit path (issue 18): hopdns
# with --web and a headless chromium open on the page (its event stream connected) against
# hopdns without --web, in the same run: REPS rounds (3), the order alternating per round;
# at the end benches/web/summary.py prints the medians and the medians of same-round ratios
# (on / off), among them hits per hopdns CPU second, the per-query cost whatever CPU the
# neighbours leave.
#
# Each measurement is one `MODE=hit` run of the shared bench lab's bench-peer.sh
# (../shared/bench, see its README): dnsperf, then udp-blast, over 1000 cached names for
# DURATION seconds each; hopdns with one worker thread pinned to CPU 1, the load, the
# authoritatives and the browser on CPU 0. Every line prints hopdns's CPU and the background
# CPU (everything else on the machine, in % of one CPU): other engineers compile on the same
# two cores, so read the QPS beside it.
#
#   benches/web/cost.sh                        # 3 rounds, 10 s per measurement
#   REPS=5 DURATION=5 benches/web/cost.sh
#   BIN=target/release/hopdns benches/web/cost.sh   # skip the release build
#
# Loopback only: the bench lab's NSD servers on 127.0.0.2-99, hopdns on 127.0.0.1:5300 (the
# bench's address for a custom resolver), the dashboard on 127.0.0.1:5381; chromium gets a dead
# proxy for every other address. Holds /tmp/hopdns-bench.lock for the whole run (waiting at
# most LOCK_WAIT seconds, 1800, for it) and ends after
# TIMEOUT seconds (1200) at the latest. Every process it starts is stopped by PID (the
# browser by chromedriver's process group). Needs root, nsd, dnsperf, dig, gcc, python3,
# chromium, chromium-driver.
set -euo pipefail
if [ -z "${HOPDNS_BENCH_LOCKED:-}" ]; then
  exec env HOPDNS_BENCH_LOCKED=1 flock -w "${LOCK_WAIT:-1800}" /tmp/hopdns-bench.lock \
    timeout "${TIMEOUT:-1200}" "$0" "$@"
fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH_LAB:-$ROOT/../shared/bench}
REPS=${REPS:-3}; DURATION=${DURATION:-10}
ADDR=127.0.0.1:5300; WEB=127.0.0.1:5381
OUT=$ROOT/target/web-cost; rm -rf "$OUT"; mkdir -p "$OUT"
RAW=$OUT/raw.txt; : > "$RAW"
for tool in nsd dnsperf dig gcc python3 chromium chromedriver taskset; do
  command -v "$tool" >/dev/null || {
    echo "cost.sh: $tool is missing (apt-get install nsd dnsperf bind9-dnsutils gcc python3 chromium chromium-driver util-linux)" >&2
    exit 2
  }
done
[ -x "$BENCH/bench-peer.sh" ] || { echo "cost.sh: no bench lab at $BENCH (set BENCH_LAB)" >&2; exit 2; }

if [ -z "${BIN:-}" ]; then
  cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
  BIN=$ROOT/target/release/hopdns
fi
# A private copy, so a rebuild during the run cannot swap the binary under the benchmark.
cp "$BIN" "$OUT/hopdns"; BIN=$OUT/hopdns
VERSION=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)

SERVE=; BROWSER=; LAB_STARTED=0
cleanup() {
  if [ -n "$BROWSER" ]; then kill -TERM "$BROWSER" 2>/dev/null || true; wait "$BROWSER" 2>/dev/null || true; fi
  if [ -n "$SERVE" ]; then kill -TERM "$SERVE" 2>/dev/null || true; wait "$SERVE" 2>/dev/null || true; fi
  if [ "$LAB_STARTED" = 1 ]; then LAB_RUN=$LAB_RUN "$BENCH/down.sh" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

# The bench lab, once for the whole run (bench-peer.sh would start and stop it every time).
# The lab's folder may be read-only, so its run dir (LAB_RUN) is writable: the one of a lab
# already up (found from its NSD's command line), else our own, and then the lab is ours to
# stop at the end.
if [ -z "${LAB_RUN:-}" ]; then
  for p in $(pgrep -f '^nsd -c .*/nsd/bench\.conf' || true); do
    c=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null || true)
    case $c in *"/nsd/bench.conf"*) c=${c#*-c }; LAB_RUN=${c%/nsd/bench.conf*}; break ;; esac
  done
  export LAB_RUN=${LAB_RUN:-$OUT/benchrun}
fi
echo "[web-cost] bench lab run dir: $LAB_RUN" >&2
# shellcheck source=/dev/null
source "$BENCH/lib.sh"
if ! pid_alive "$PIDS/nsd-bench.pid"; then
  AUTH_CPUS=0 "$BENCH/up.sh" >&2 || { echo "cost.sh: the bench lab did not start (logs: $LAB_RUN/nsd/)" >&2; exit 1; }
  LAB_STARTED=1
fi

busy() {  # busy SECONDS -> % of one CPU the machine spent busy (everything) over SECONDS
  local a b
  a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat); sleep "$1"
  b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6}' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
    busy = y[1] - x[1]; idle = y[2] - x[2]; printf "%.0f", 100 * n * busy / (busy + idle + 1e-9) }'
}

run() {  # run on|off ROUND -> one key=value line
  local mode=$1 r=$2 web=() ticks=browser_ticks=none i
  [ "$mode" = on ] && web=(--web "$WEB")
  taskset -c 1 "$BIN" serve --listen "$ADDR" --root-hints "$BENCH/root.hints" --threads 1 \
    --query-loopback --no-ipv6 --no-prime --no-dnssec --cache-size 150m --log-level warn \
    "${web[@]}" > "$OUT/serve-$mode-$r.log" 2>&1 &
  SERVE=$!
  for i in $(seq 200); do
    dig +time=1 +tries=1 -p "${ADDR##*:}" @"${ADDR%:*}" www.example.com A +short 2>/dev/null | grep -q 127.1.0.2 && break
    kill -0 "$SERVE" 2>/dev/null || { echo "cost.sh: hopdns ended; $OUT/serve-$mode-$r.log" >&2; exit 1; }
    sleep 0.1
  done
  if [ "$mode" = on ]; then
    rm -f "$OUT/ready"
    taskset -c 0 python3 "$ROOT/benches/web/browser.py" "http://$WEB/" "$OUT/ready" \
      > "$OUT/browser-$r.out" 2> "$OUT/browser-$r.err" &
    BROWSER=$!
    for i in $(seq 900); do
      [ -e "$OUT/ready" ] && break
      kill -0 "$BROWSER" 2>/dev/null || { echo "cost.sh: the browser ended: $(cat "$OUT/browser-$r.err")" >&2; exit 1; }
      sleep 0.1
    done
    [ -e "$OUT/ready" ] || { echo "cost.sh: the page never went live" >&2; exit 1; }
  fi
  local line
  line=$(MODE=hit DURATION=$DURATION VERSION_STR="hopdns-$VERSION" "$BENCH/bench-peer.sh" custom "$ADDR")
  if [ "$mode" = on ]; then
    kill -TERM "$BROWSER"; wait "$BROWSER" || true; BROWSER=
    ticks=$(tr -d '\n' < "$OUT/browser-$r.out")
  fi
  kill -TERM "$SERVE"; wait "$SERVE" || true; SERVE=
  echo "round=$r web=$mode ${line/peer=custom /} $ticks"
}

echo "[web-cost] $VERSION, $REPS rounds of ${DURATION}s; machine busy before the run: $(busy 3)% of one CPU (of $((100 * $(nproc))))" | tee "$OUT/summary.txt" >&2
for r in $(seq "$REPS"); do
  if [ $((r % 2)) = 1 ]; then order="off on"; else order="on off"; fi
  for mode in $order; do
    echo "[web-cost] round $r: web $mode" >&2
    run "$mode" "$r" | tee -a "$RAW"
  done
done

python3 "$ROOT/benches/web/summary.py" "$RAW" | tee -a "$OUT/summary.txt"
