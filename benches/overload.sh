#!/usr/bin/env bash
# Overload test (issue 6): a release hopdns under 3x its measured cache-miss capacity.
#
#   benches/overload.sh            # about 2 minutes; needs root (port 53), dnsperf, python3
#
# What it does, all on 127.53.$NET.0/24 (loopback only), bounded in time:
#  0. pins hopdns to CPU $SERVER_CPU and the lab, the load generator and the probe to CPU
#     $CLIENT_CPU / $LAB_CPU, so that the generator can offer 3x what hopdns takes;
#  1. starts the lab's authoritative servers (`hopdns lab --net $NET`, one process) and the
#     resolver under test (`hopdns serve` on 127.53.$NET.252, its own process, so its RSS is
#     its own);
#  2. measures the miss capacity: dnsperf for $CAP_SECS s, unique names under the lab's
#     wildcard zone (*.wild.net), so every query is a cache miss and costs one upstream query;
#  3. floods at 3x that rate for $DUR s with fresh unique names (benches/udp-flood.c, an
#     open-loop sender paced against the clock, built with gcc: dnsperf -Q cannot offer
#     more than about 20k queries/s from one shared core; FLOOD_TOOL=dnsperf uses it anyway), while a probe asks a cached
#     name (www.example.com A) every 20 ms with a 1 s timeout and the RSS is sampled;
#  4. after the flood, reports how soon the probe is back to its pre-flood latency and
#     checks that a new miss resolves.
# Pass/fail: no crash, peak RSS under $RSS_BOUND_MB, probe answer rate during the flood at
# least $MIN_HIT_RATE, back to normal within 1 s of the flood's end, and the flood really
# offered 3x (measured from what the sender sent).
set -euo pipefail
cd "$(dirname "$0")/.."

# One load run at a time on this machine.
if [ -z "${HOPDNS_BENCH_LOCKED:-}" ]; then
  export HOPDNS_BENCH_LOCKED=1
  exec flock /tmp/hopdns-bench.lock "$0" "$@"
fi

NET=${NET:-155}
DUR=${DUR:-60}
CAP_SECS=${CAP_SECS:-15}
THREADS=${THREADS:-1}
SERVER_CPU=${SERVER_CPU:-1}
LAB_CPU=${LAB_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-0}
FLOOD_TOOL=${FLOOD_TOOL:-udp-flood}
RSS_BOUND_MB=${RSS_BOUND_MB:-256}
# Cache hits arrive on the same socket as the flood: the kernel drops datagrams it cannot
# queue whatever they are, so under a 3x flood on one core some hits are lost before hopdns
# sees them. The bar: 9 in 10 answered.
MIN_HIT_RATE=${MIN_HIT_RATE:-0.90}
BIN=${BIN:-target/release/hopdns}
ADDR=127.53.$NET.252
RUN=$(mktemp -d /tmp/hopdns-overload.XXXXXX)

command -v dnsperf >/dev/null || { echo "overload: dnsperf is missing: apt-get install dnsperf" >&2; exit 2; }
[ -x "$BIN" ] || nice -n 19 cargo build --release

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "$RUN"/cap.txt "$RUN"/flood.txt # name lists (tens of MB); logs stay in $RUN
}
trap cleanup EXIT

taskset -c "$LAB_CPU" nice -n 19 "$BIN" lab --net "$NET" --threads 1 >"$RUN/lab.log" 2>&1 &
PIDS+=($!)
sed "s/127\.53\.0\./127.53.$NET./" root-hints/lab.root >"$RUN/hints"
sleep 1
taskset -c "$SERVER_CPU" nice -n 19 "$BIN" serve --listen "$ADDR:53" --root-hints "$RUN/hints" --no-dnssec --query-loopback --no-ipv6 \
  --threads "$THREADS" --log-level warn >"$RUN/serve.log" 2>&1 &
RES=$!
PIDS+=($RES)
for _ in $(seq 50); do
  dig +time=1 +tries=1 @"$ADDR" www.example.com A +short 2>/dev/null | grep -q 192.0.2.1 && break
  sleep 0.2
done
dig +time=1 +tries=1 @"$ADDR" www.example.com A +short | grep -q 192.0.2.1 \
  || { echo "overload: resolver did not come up" >&2; cat "$RUN/serve.log" >&2; exit 1; }

# Unique names: every one a miss (the wildcard answers each with a fresh upstream query).
# The flood list is only for dnsperf; udp-flood makes up its names itself.
python3 - "$RUN" "$FLOOD_TOOL" <<'EOF'
import sys, random
run, tool = sys.argv[1], sys.argv[2]
tag = random.getrandbits(32)
lists = [("cap", 400_000)] + ([("flood", 2_000_000)] if tool == "dnsperf" else [])
for name, n in lists:
    with open(f"{run}/{name}.txt", "w") as f:
        for i in range(n):
            f.write(f"{name}{tag:08x}-{i}.wild.net A\n")
EOF

echo "== miss capacity: $CAP_SECS s of unique names, unthrottled"
taskset -c "$CLIENT_CPU" nice -n 19 dnsperf -s "$ADDR" -d "$RUN/cap.txt" -l "$CAP_SECS" -c 4 -q 500 -t 2 >"$RUN/cap.out" 2>&1 || true
CAP=$(awk '/Queries per second:/ {printf "%d", $4}' "$RUN/cap.out")
[ "${CAP:-0}" -gt 0 ] || { echo "overload: capacity run failed" >&2; cat "$RUN/cap.out" >&2; exit 1; }
RATE=$((CAP * 3))
echo "miss capacity: $CAP answers/s -> flood at $RATE queries/s for $DUR s"
FLOOD=""
if [ "$FLOOD_TOOL" = udp-flood ]; then
  command -v gcc >/dev/null || { echo "overload: gcc is missing (or set FLOOD_TOOL=dnsperf)" >&2; exit 2; }
  gcc -O2 -o "$RUN/udp-flood" benches/udp-flood.c
  FLOOD="$RUN/udp-flood"
fi
kill -0 "$RES" || { echo "overload: hopdns died during the capacity run" >&2; exit 1; }

# The probe and RSS sampler run from before the flood until 5 s after it.
taskset -c "$CLIENT_CPU" python3 - "$ADDR" "$RES" "$RUN" "$DUR" >"$RUN/probe.out" <<'EOF' &
import socket, struct, sys, time, random
addr, pid, run, dur = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
def query(name):
    qid = random.getrandbits(16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return qid, q + b"\0" + struct.pack(">HH", 1, 1)
def rss_kb():
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return -1
    return -1
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
start = time.monotonic()
last_rss = 0.0
with open(f"{run}/probe.csv", "w") as out:
    while time.monotonic() - start < dur + 12:
        t = time.monotonic() - start
        qid, q = query("www.example.com")
        s.sendto(q, (addr, 53))
        lat = -1.0
        try:
            while True:
                data, _ = s.recvfrom(4096)
                if struct.unpack(">H", data[:2])[0] == qid:
                    lat = (time.monotonic() - start - t) * 1000
                    break
        except socket.timeout:
            pass
        if t - last_rss >= 0.5:
            out.write(f"rss,{t:.3f},{rss_kb()}\n")
            last_rss = t
        out.write(f"probe,{t:.3f},{lat:.3f}\n")
        time.sleep(max(0.0, 0.02 - (time.monotonic() - start - t)))
EOF
PROBE=$!
PIDS+=($PROBE)
sleep 4
FLOOD_START=$(python3 -c 'import time; print(time.monotonic())')
if [ -n "$FLOOD" ]; then
  echo "== flood: udp-flood at $RATE queries/s of unique names for $DUR s"
  taskset -c "$CLIENT_CPU" nice -n 19 "$FLOOD" "$ADDR" "$RATE" "$DUR" wild.net "$RANDOM$RANDOM" >"$RUN/flood.out" 2>&1 || true
  SENT=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' "$RUN/flood.out")
else
  echo "== flood: dnsperf at $RATE queries/s of unique names for $DUR s"
  taskset -c "$CLIENT_CPU" nice -n 19 dnsperf -s "$ADDR" -d "$RUN/flood.txt" -l "$DUR" -Q "$RATE" -c 4 -q 20000 -t 2 >"$RUN/flood.out" 2>&1 || true
  SENT=$(awk '/Queries sent:/ {print $3}' "$RUN/flood.out")
fi
FLOOD_END=$(python3 -c 'import time; print(time.monotonic())')
ALIVE=yes
kill -0 "$RES" 2>/dev/null || ALIVE=no
sleep 1.2
T0=$(date +%s%N)
MISS=$(dig +time=2 +tries=1 @"$ADDR" "after-$RANDOM-$RANDOM.wild.net" A +short || true)
MISS_MS=$(( ($(date +%s%N) - T0) / 1000000 ))
wait "$PROBE" || true

grep -E "Queries (sent|completed|lost)|Queries per second|Average Latency" "$RUN/flood.out" | sed 's/^ */flood: /' || true
grep -E "sent=" "$RUN/flood.out" | sed 's/^/flood: /' || true
OFFERED=$(python3 -c "print(f'{${SENT:-0} / $DUR:.0f} queries/s offered = {${SENT:-0} / $DUR / $CAP:.2f}x the miss capacity')")
echo "flood: $OFFERED"
python3 - "$RUN" 4 "$(python3 -c "print($FLOOD_END - $FLOOD_START + 4)")" "$RSS_BOUND_MB" "$MIN_HIT_RATE" "$ALIVE" "$MISS" "$MISS_MS" "$OFFERED" "$(python3 -c "print(${SENT:-0} / $DUR / $CAP)")" <<'EOF'
import sys, statistics
run, t_start, t_end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
bound_mb, min_rate, alive, miss, miss_ms = float(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
offered, ratio = sys.argv[9], float(sys.argv[10])
probes, rss = [], []
for line in open(f"{run}/probe.csv"):
    kind, t, v = line.strip().split(",")
    (probes if kind == "probe" else rss).append((float(t), float(v)))
def window(a, b):
    w = [v for t, v in probes if a <= t < b]
    ok = [v for v in w if v >= 0]
    return len(w), len(ok), (statistics.median(ok) if ok else float("nan")), (max(ok) if ok else float("nan"))
def report(label, a, b):
    n, ok, med, worst = window(a, b)
    rate = ok / n if n else 0.0
    print(f"{label}: {ok}/{n} cached-name probes answered ({rate:.1%}), median {med:.2f} ms, max {worst:.2f} ms")
    return rate, med
_, base = report("before flood", 0, t_start)
during, _ = report("during flood", t_start, t_end)
report("first second after", t_end, t_end + 1)
report("seconds 1-5 after", t_end + 1, t_end + 5)
# Back to normal: the first moment after the flood from which a whole second of probes is
# answered, with a median within 2x the pre-flood median (at least 1 ms): single slow probes
# on a shared 2-core machine are noise, a backlog is not.
limit = max(2 * base, 1.0)
after = [(t, v) for t, v in probes if t >= t_end]
recovered = None
for t, _ in after:
    w = [v for u, v in after if t <= u < t + 1]
    if w and all(v >= 0 for v in w) and statistics.median(w) <= limit:
        recovered = t - t_end
        break
peak = max(v for _, v in rss) / 1024
print(f"peak RSS {peak:.1f} MiB (bound {bound_mb:.0f} MiB); RSS samples: "
      + " ".join(f"{v/1024:.0f}" for _, v in rss[:: max(1, len(rss) // 12)]))
print(f"back to normal (1 s of probes all answered, median within {limit:.1f} ms) {recovered if recovered is None else f'{recovered:.2f} s'} after the flood")
print(f"new miss after the flood: {miss or 'no answer'} in {miss_ms} ms; hopdns alive: {alive}")
print(f"offered load: {offered}")
fails = []
if alive != "yes": fails.append("hopdns died")
if peak > bound_mb: fails.append(f"RSS {peak:.0f} MiB over {bound_mb:.0f}")
if during < min_rate: fails.append(f"cache hits answered {during:.1%} < {min_rate:.0%}")
if recovered is None or recovered > 1.0: fails.append("not back to normal within 1 s")
if not miss: fails.append("no answer to a new miss after the flood")
if ratio < 2.95: fails.append(f"offered only {ratio:.2f}x the capacity (the generator is CPU-bound)")
print("RESULT: " + ("PASS" if not fails else "FAIL: " + "; ".join(fails)))
sys.exit(1 if fails else 0)
EOF
