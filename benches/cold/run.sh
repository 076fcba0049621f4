#!/usr/bin/env bash
# Cold resolution (issue 17.5): a fresh resolver process answers one name it has never seen,
# against the shared bench lab (../../../shared/bench, NSD on 127.0.0.2-99). For each resolver
# and each of RUNS fresh starts: start it, wait until it answers `localhost. A` (answered locally
# by both, so nothing upstream is cached), then time one query for NAME from a client on the
# same machine, both by the client's clock and on the wire (from the question to the answer in
# the capture, which leaves out the client's own start-up and parse), and count every query the
# resolver sent to the lab from its start to the answer (tcpdump on lo: UDP datagrams and TCP
# SYNs to port 53 of 127.0.0.2-99; the queries of each run are listed in
# target/cold/PEER-RUN.queries), and how many of them left after the client's question arrived
# (the capture also holds the client's queries and answers and the lab's replies).
#
# usage: benches/cold/run.sh [NAME] [TYPE]      (default chain.example.com A)
#   RUNS=5 PEERS="unbound hopdns" HOPDNS_BIN=target/release/hopdns HOPDNS_ARGS="..."
# Needs root (tcpdump), nsd, unbound, tcpdump, python3 with dnspython. Loopback only; every
# process it starts is stopped by PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BENCH=${BENCH:-$(cd "$root/../shared/bench" && pwd)}
NAME=${1:-chain.example.com}
TYPE=${2:-A}
RUNS=${RUNS:-5}
read -r -a PEERS <<< "${PEERS:-unbound hopdns}"
BIN=${HOPDNS_BIN:-$root/target/release/hopdns}
read -r -a EXTRA <<< "${HOPDNS_ARGS:-}"
export LAB_RUN=${LAB_RUN:-/tmp/hopdns-cold-lab}
OUT=${OUT:-$root/target/cold}
mkdir -p "$OUT"
ADDR=127.0.0.1 PORT=5310

for t in tcpdump unbound nsd python3; do
  command -v "$t" >/dev/null || { echo "cold: needs $t (apt-get install tcpdump unbound nsd)" >&2; exit 2; }
done
[ -x "$BIN" ] || (cd "$root" && cargo build --release --quiet)

. "$here/../lab.sh"
lab_up_if_down
trap lab_cleanup EXIT

cat > "$OUT/unbound.conf" <<EOF
server:
  interface: $ADDR@$PORT
  access-control: 127.0.0.0/8 allow
  num-threads: 1
  do-not-query-localhost: no
  do-ip6: no
  root-hints: "$BENCH/root.hints"
  module-config: "iterator"
  trust-anchor-signaling: no
  root-key-sentinel: no
  username: ""
  chroot: ""
  directory: "$OUT"
  pidfile: ""
  use-syslog: no
  logfile: "$OUT/unbound.log"
  verbosity: 1
remote-control:
  control-enable: no
EOF

# The bench lab is unsigned: validation off (builds from before the validator lack the flag).
nodnssec=()
if "$BIN" serve --help 2>/dev/null | grep -q -- --no-dnssec; then nodnssec=(--no-dnssec); fi

# RESOLVER_CPUS=1 pins each resolver (and CLIENT_CPUS=0 the client) with taskset, so that
# every run places them alike (unpinned, runs fall into two groups by where they landed).
pin_resolver=(); pin_client=()
[ -n "${RESOLVER_CPUS:-}" ] && pin_resolver=(taskset -c "$RESOLVER_CPUS")
[ -n "${CLIENT_CPUS:-}" ] && pin_client=(taskset -c "$CLIENT_CPUS")

start() {
  case $1 in
    unbound) "${pin_resolver[@]}" unbound -d -c "$OUT/unbound.conf" >/dev/null 2>&1 & ;;
    hopdns) "${pin_resolver[@]}" "$BIN" serve --listen "$ADDR:$PORT" --root-hints "$BENCH/root.hints" --threads 1 \
              --query-loopback --no-ipv6 "${nodnssec[@]}" "${EXTRA[@]}" >"$OUT/hopdns.log" 2>&1 & ;;
    *) echo "cold: unknown peer $1 (unbound, hopdns)" >&2; exit 2 ;;
  esac
  echo $!
}

# One cold query: prints "<ms> <rcode> <answers>"; waits for the local readiness answer first.
probe() {
  "${pin_client[@]}" python3 - "$ADDR" "$PORT" "$NAME" "$TYPE" <<'EOF'
import sys, time, dns.message, dns.query, dns.rcode
addr, port, name, qtype = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
deadline = time.monotonic() + 10
while True:
    try:
        dns.query.udp(dns.message.make_query("localhost.", "A"), addr, port=port, timeout=0.2)
        break
    except Exception:
        if time.monotonic() > deadline:
            sys.exit("cold: resolver did not answer localhost. A within 10 s")
        time.sleep(0.02)
q = dns.message.make_query(name, qtype)
t0 = time.perf_counter_ns()
r = dns.query.udp(q, addr, port=port, timeout=5)
t1 = time.perf_counter_ns()
print(f"{(t1 - t0) / 1e6:.3f} {dns.rcode.to_text(r.rcode())} {sum(len(a) for a in r.answer)}")
EOF
}

RAW=$OUT/raw.txt
: > "$RAW"
for r in $(seq "$RUNS"); do
  for p in "${PEERS[@]}"; do
    cap=$OUT/$p-$r.pcap
    tcpdump -i lo --immediate-mode -U -n -w "$cap" \
      "((udp dst port 53 or (tcp dst port 53 and tcp[tcpflags] & tcp-syn != 0)) and dst net 127.0.0.0/25 and not dst host $ADDR) or (udp src port 53 and src net 127.0.0.0/25 and not src host $ADDR) or (udp port $PORT and host $ADDR)" \
      >/dev/null 2>"$OUT/tcpdump.err" &
    dump=$!; pids+=("$dump")
    for _ in $(seq 100); do grep -q "listening on" "$OUT/tcpdump.err" 2>/dev/null && break; sleep 0.05; done
    grep -q "listening on" "$OUT/tcpdump.err" || { echo "cold: tcpdump did not start: $(cat "$OUT/tcpdump.err")" >&2; exit 1; }
    pid=$(start "$p"); pids+=("$pid")
    res=$(probe) || { echo "cold: $p run $r failed" >&2; exit 1; }
    sleep 0.2 # the last packets reach the capture
    kill "$pid"; wait "$pid" 2>/dev/null || true
    kill -INT "$dump"; wait "$dump" 2>/dev/null || true
    # The queries themselves, one line each, to compare what each resolver asked.
    # Fields: time, "IP", source, ">", destination. The capture holds the client's questions
    # and their answers, the queries to the lab and the lab's replies.
    tcpdump -tt -r "$cap" -n 2>/dev/null > "$OUT/$p-$r.all" || true
    awk '$5 ~ /\.53:$/' "$OUT/$p-$r.all" > "$OUT/$p-$r.queries" || true
    n=$(wc -l < "$OUT/$p-$r.queries")
    # From the client's question (its last query; the ones before asked for localhost.) to the
    # resolver's answer, as the wire saw them: the queries sent in between (what the client
    # waited for; a resolver that primes at start-up, RFC 8109 §3, has sent its priming query
    # before), the time, and the part of it with no query to the lab outstanding (the
    # resolver's own work; a TCP query, whose reply is not captured, counts as own work). The
    # client's clock adds its own start-up and parse to the time.
    wire=$(awk -v q="$ADDR.$PORT:" -v a="$ADDR.$PORT" '
      $5 == q { t0 = $1; n = 0; open = 0; lab = 0; done = 0; next }
      done || t0 == "" { next }
      $5 ~ /\.53:$/ { n++; if (!/Flags \[/ && open++ == 0) since = $1; next }
      $3 ~ /\.53$/ { if (open > 0 && --open == 0) lab += $1 - since; next }
      $3 == a { out = sprintf("waited=%d wire_us=%.0f own_us=%.0f", n, ($1 - t0) * 1e6, ($1 - t0 - lab) * 1e6); done = 1 }
      END { print out }
    ' "$OUT/$p-$r.all")
    rm -f "$cap"
    echo "run=$r peer=$p $(awk '{printf "ms=%s rcode=%s answers=%s", $1, $2, $3}' <<< "$res") upstream=$n $wire" | tee -a "$RAW"
  done
done

echo
echo "Cold $NAME $TYPE, median of $RUNS fresh starts (raw: $RAW)"
python3 - "$RAW" <<'EOF'
import sys, statistics
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(sys.argv[1]) if l.strip()]
peers = list(dict.fromkeys(r["peer"] for r in rows))
print("| resolver | client's time ms (median) | runs ms | on the wire ms (median) | runs ms | own work ms (median) | upstream queries from start (median) | after the client's question (median) | rcode |")
print("|---|---|---|---|---|---|---|---|---|")
med, wire = {}, {}
for p in peers:
    rs = [r for r in rows if r["peer"] == p]
    ms = [float(r["ms"]) for r in rs]
    wi = [float(r["wire_us"]) / 1000 for r in rs]
    own = [float(r["own_us"]) / 1000 for r in rs]
    up = [int(r["upstream"]) for r in rs]
    waited = [int(r["waited"]) for r in rs]
    med[p], wire[p] = statistics.median(ms), statistics.median(wi)
    print(f"| {p} | {med[p]:.3f} | {', '.join(f'{m:.2f}' for m in ms)} | {wire[p]:.3f} | {', '.join(f'{m:.2f}' for m in wi)} | {statistics.median(own):.3f} | {statistics.median(up):g} | {statistics.median(waited):g} | {rs[0]['rcode']} |")
if "unbound" in med and "hopdns" in med:
    print(f"\nhopdns time over Unbound: {med['hopdns'] / med['unbound']:.2f} by the client's clock, {wire['hopdns'] / wire['unbound']:.2f} on the wire")
EOF
