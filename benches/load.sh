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
#   PEERS="unbound hopdns echo64" benches/load.sh
#                                              # with the batched echo limit (issue 17.2):
#                                              # ../shared/bench/tools/udp-responder.c with
#                                              # recvmmsg/sendmmsg batches of 64 on CPU 1,
#                                              # loaded by udp-blast as the resolvers' hits
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
# shellcheck source=benches/lab.sh
. "$ROOT/benches/lab.sh"

cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
# A private copy, so a rebuild during the run cannot swap the binary under the benchmark.
BIN=$OUT/hopdns; cp "$ROOT/target/release/hopdns" "$BIN"
VERSION=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)

PEERS=(${PEERS:-unbound hopdns})

# echo64: the packet-rate limit of one core, in the same rounds as the resolvers' hits.
echo_limit() {  # -> one key=value line, as ../shared/bench/limit-ref.sh prints
  local run=${LAB_RUN:-$BENCH/run} resp blast hit pid out
  hit=$run/q/hit.txt
  mkdir -p "$run/q"
  resp=$(lab_tool udp-responder "$run"); blast=$(lab_tool udp-blast "$run")
  # The resolvers' hit names (bench-peer.sh writes the same file): the echo answers any.
  [ -s "$hit" ] || lab_hit_names > "$hit"
  # Bounded: the responder ends itself after DURATION + 30 s even if this script is killed.
  taskset -c 1 "$resp" 127.0.0.1 5399 $((DURATION + 30)) 64 & pid=$!
  sleep 0.5
  out=$(taskset -c 0 "$blast" 127.0.0.1 5399 "$DURATION" "${HIT_Q:-200}" "${HIT_C:-8}" "$hit" | tail -n 1)
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  echo "ref=echo-batch64 client=udp-blast qps=${out##*qps=}"
}

run_peer() {  # run_peer NAME -> one key=value line
  local threads=$THREADS
  case $1 in
  unbound)
    THREADS=$threads DURATION=$DURATION CACHE_MB=$CACHE_MB "$BENCH/bench-peer.sh" unbound
    return ;;
  echo64) echo_limit; return ;;
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
    # bench-peer.sh starts the lab in its own run dir (LAB_RUN); it fails when a lab from
    # another run dir holds the lab's addresses. Say so, rather than end without a word.
    line=$(run_peer "$p") || {
      echo "load: measuring $p in round $r failed; if a bench lab is up from another run dir, stop it or set LAB_RUN to that dir" >&2
      exit 1
    }
    echo "round=$r $line" | tee -a "$RAW"
  done
done
python3 "$BENCH/summarize.py" "$RAW" | tee "$OUT/summary-$TAG.md"
# Hits as a share of the echo limit measured in the same round (issue 17.2).
python3 - "$RAW" <<'PY' | tee -a "$OUT/summary-$TAG.md"
import statistics, sys
from collections import defaultdict
rounds = defaultdict(dict)
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    if kv.get("ref") == "echo-batch64":
        rounds[kv["round"]]["echo"] = float(kv["qps"])
    elif "peer" in kv and kv.get("hit_blast_qps"):
        rounds[kv["round"]][kv["peer"]] = float(kv["hit_blast_qps"])
shares = defaultdict(list)
for r in rounds.values():
    for peer, qps in r.items():
        if peer != "echo" and r.get("echo"):
            shares[peer].append(100 * qps / r["echo"])
if shares:
    print("\nCache hits (udp-blast) as a share of the batched echo limit in the same round:\n")
    print("| resolver | rounds | share (median) | per round |\n|---|---|---|---|")
    for peer, s in shares.items():
        print(f"| {peer} | {len(s)} | {statistics.median(s):.0f}% | {', '.join(f'{x:.0f}%' for x in s)} |")
PY
