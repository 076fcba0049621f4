#!/usr/bin/env bash
# benches/load.sh -- hopdns beside Unbound under load, on the shared NSD lab (../shared/bench).
#
# Each of REPS rounds runs ../shared/bench/bench-peer.sh once for Unbound and once for hopdns
# (order alternating per round; each resolver pinned to CPU 1, load and authoritatives on
# CPU 0 when THREADS=1): cache-hit QPS with dnsperf and udp-blast over 1000 cached names,
# cache-miss QPS over unique names under the lab's wildcard (delegation cached), peak RSS.
# The summary (medians, same-round ratios) comes from the bench's summarize.py.
#
#   benches/load.sh                      # 3 rounds, one thread, 10 s per measurement
#   REPS=3 THREADS=2 benches/load.sh     # two worker threads (unpinned, as the bench does)
#   PEERS="hopdns hopdns-t2" benches/load.sh   # hopdns with one thread (pinned) and two
#                                              # (unpinned) in the same rounds
#   PEERS="unbound hopdns hopdns-base" BASE_BIN=/path/to/old/hopdns benches/load.sh
#                                              # before/after a change, same rounds
#
# Needs root, nsd, dnsperf, unbound, gcc (see ../shared/bench/README.md). Everything stays on
# loopback; every process it starts is stopped by PID when it ends.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_LAB:-$ROOT/../shared/bench}
REPS=${REPS:-3}; THREADS=${THREADS:-1}; DURATION=${DURATION:-10}; CACHE_MB=${CACHE_MB:-150}
TAG=${TAG:-t$THREADS}
OUT=$ROOT/target/load; mkdir -p "$OUT"
RAW=$OUT/raw-$TAG.txt; : > "$RAW"

cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
# A private copy, so a rebuild during the run cannot swap the binary under the benchmark.
BIN=$OUT/hopdns; cp "$ROOT/target/release/hopdns" "$BIN"
VERSION=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)

PEERS=(${PEERS:-unbound hopdns})

run_peer() {  # run_peer NAME -> one key=value line
  local threads=$THREADS
  case $1 in
  unbound)
    THREADS=$threads DURATION=$DURATION CACHE_MB=$CACHE_MB "$BENCH/bench-peer.sh" unbound
    return ;;
  hopdns-t2) threads=2 ;;
  esac
  # hopdns-base: another build (BASE_BIN, e.g. the commit before a change) in the same rounds,
  # for before/after ratios.
  local bin=$BIN
  if [ "$1" = hopdns-base ]; then
    bin=$OUT/hopdns-base; cp "${BASE_BIN:?hopdns-base needs BASE_BIN=path/to/hopdns}" "$bin"
  fi
  # The bench lab's root is unsigned and Unbound there does not validate: validation off
  # (builds from before the validator do not know the flag).
  local nodnssec=()
  if "$bin" serve --help 2>/dev/null | grep -q -- --no-dnssec; then nodnssec=(--no-dnssec); fi
  THREADS=$threads DURATION=$DURATION CACHE_MB=$CACHE_MB VERSION_STR="hopdns-$VERSION" \
    "$BENCH/bench-peer.sh" custom 127.0.0.1:5300 -- "$bin" serve --listen @ADDR@:@PORT@ \
    --root-hints @HINTS@ --threads @THREADS@ --query-loopback --no-ipv6 --no-prime \
    --cache-size "${CACHE_MB}m" "${nodnssec[@]}" | sed "s/peer=custom/peer=$1/"
}

n=${#PEERS[@]}
for r in $(seq "$REPS"); do
  for i in $(seq 0 $((n - 1))); do
    p=${PEERS[$(( (i + r - 1) % n ))]}   # rotate the order each round
    echo "[load] round $r: $p" >&2
    line=$(run_peer "$p")
    echo "round=$r $line" | tee -a "$RAW"
  done
done
python3 "$BENCH/summarize.py" "$RAW" | tee "$OUT/summary-$TAG.md"
