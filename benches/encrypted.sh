#!/usr/bin/env bash
# benches/encrypted.sh -- DoT and DoH: hopdns beside Unbound's DoT/DoH service, same
# certificate, same lab (the shared NSD hierarchy in ../shared/bench), same rounds.
#
# Each of REPS rounds starts Unbound and hopdns in turn (order alternating per round), each
# pinned to CPU 1 with one thread (dnsperf, the Python client and the authoritatives on CPU 0),
# and measures for DURATION seconds each:
#   hit_dot              dnsperf -m dot over 1000 cached names (warmed first), 8 connections,
#                        100 queries in flight: queries/s and mean latency
#   hit_doh              h2load (nghttp2-client) GETs of the same names, 8 connections, 100
#                        streams each (dnsperf's DoH mode is not used: against hopdns it got
#                        one reply per connection, then timed out; see docs/performance.md)
#   miss_dot, miss_doh   the same over unique names under the lab's wildcard (delegation
#                        cached); h2load with one connection, as each of its connections
#                        would send the same list
#   new_hs, resumed_hs   one query per new TLS connection, one after the other (Python ssl
#                        client, TLS 1.3): connections/s without and with session resumption
# It prints one key=value line per peer and round (with the resolver's CPU and the rest of
# the machine's, "bg", as % of one core), then per metric the median of each peer and the
# median of the same-round ratios hopdns/unbound.
#
#   benches/encrypted.sh                   # 3 rounds, 5 s per measurement (about 4 minutes)
#   REPS=5 DURATION=10 benches/encrypted.sh
#
# Needs root (ports 853/443), nsd, unbound (Debian's, built with nghttp2 for DoH), dnsperf
# (2.x: dot mode), h2load (nghttp2-client), kdig, openssl, python3. Resolvers listen on 127.54.20.1 (hopdns) and
# 127.54.20.2 (Unbound); everything stays on loopback; every process it starts is stopped by
# PID when it ends.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_LAB:-$ROOT/../shared/bench}
# shellcheck source=/dev/null
source "$BENCH/lib.sh"
# shellcheck source=benches/lab.sh
. "$ROOT/benches/lab.sh"
REPS=${REPS:-3}; DURATION=${DURATION:-5}; CONNS=${CONNS:-200}
OUT=$ROOT/target/encrypted; mkdir -p "$OUT"
RAW=$OUT/raw.txt; : > "$RAW"
HOP_IP=127.54.20.1; UNB_IP=127.54.20.2

cargo build --release --bin hopdns --manifest-path "$ROOT/Cargo.toml" >&2
BIN=$OUT/hopdns; cp "$ROOT/target/release/hopdns" "$BIN"

# One throwaway CA and a server certificate valid for both addresses: both peers serve the
# same certificate and key.
PKI=$OUT/pki; mkdir -p "$PKI"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench CA" \
  -keyout "$PKI/ca.key" -out "$PKI/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=dns.bench.test" \
  -keyout "$PKI/key.pem" -out "$PKI/req.pem" 2>/dev/null
openssl x509 -req -in "$PKI/req.pem" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial -days 2 \
  -extfile <(printf 'subjectAltName=DNS:dns.bench.test,IP:%s,IP:%s\n' "$HOP_IP" "$UNB_IP") \
  -out "$PKI/cert.pem" 2>/dev/null

mkdir -p "$RUN/peers" "$RUN/logs" "$PIDS" "$RUN/q"
LAB_STARTED=0
if ! pid_alive "$PIDS/nsd-bench.pid"; then AUTH_CPUS=0 "$BENCH/up.sh" >&2; LAB_STARTED=1; fi
PEER_PID=""
cleanup() {
  [ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null && wait "$PEER_PID" 2>/dev/null || true
  # Only the NSD instances this run started (down.sh would stop others' peers too).
  if [ "$LAB_STARTED" = 1 ]; then for f in "$PIDS"/nsd-*.pid; do stop_pidfile "$f"; done; fi
}
trap cleanup EXIT
trap 'exit 143' INT TERM

HIT=$RUN/q/enc-hit.txt
lab_hit_names > "$HIT"

start_peer() {  # start_peer NAME -> PEER_PID, IP
  case $1 in
  unbound)
    IP=$UNB_IP
    cat > "$RUN/peers/unbound-enc.conf" <<EOF
server:
  interface: $IP@853
  interface: $IP@443
  tls-port: 853
  https-port: 443
  tls-service-key: "$PKI/key.pem"
  tls-service-pem: "$PKI/cert.pem"
  http-endpoint: "/dns-query"
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
  directory: "$RUN"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 1
  msg-cache-size: 50m
  rrset-cache-size: 100m
  outgoing-range: 8192
  num-queries-per-thread: 4096
  incoming-num-tcp: 100
remote-control:
  control-enable: no
EOF
    taskset -c 1 unbound -d -c "$RUN/peers/unbound-enc.conf" > "$RUN/logs/unbound-enc.log" 2>&1 &
    ;;
  hopdns)
    IP=$HOP_IP
    taskset -c 1 "$BIN" serve --listen "$IP:5300" --listen-tls "$IP" --listen-https "$IP" \
      --tls-cert "$PKI/cert.pem" --tls-key "$PKI/key.pem" --root-hints "$BENCH/root.hints" \
      --no-dnssec --threads 1 --query-loopback --no-ipv6 --no-prime --cache-size 150m \
      > "$RUN/logs/hopdns-enc.log" 2>&1 &
    ;;
  esac
  PEER_PID=$!
  for _ in $(seq 100); do
    kdig +tls +tls-ca="$PKI/ca.pem" +tls-hostname=dns.bench.test +time=1 +retry=0 @"$IP" \
      www.example.com A 2>/dev/null | grep -q 127.1.0.2 && return 0
    sleep 0.2
  done
  log "$1 does not answer over DoT on $IP:853 (log: $RUN/logs/)"; exit 1
}

stop_peer() { kill "$PEER_PID" 2>/dev/null || true; wait "$PEER_PID" 2>/dev/null || true; PEER_PID=""; }

HZ=$(getconf CLK_TCK)
ticks() { sed 's/.*) //' "/proc/$PEER_PID/stat" | awk '{print $12 + $13}'; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# measure TAG CMD... -> appends TAG_* keys to LINE: the resolver's CPU and the rest ("bg"),
# both as % of one core over the command's run; the command prints "qps=N ms=M".
measure() {
  local tag=$1 p0 s0 t0 p1 s1 t1 res; shift
  p0=$(ticks); s0=$(busy); t0=$(date +%s.%N)
  res=$("$@")
  p1=$(ticks); s1=$(busy); t1=$(date +%s.%N)
  LINE+=" $(echo "$res" | sed "s/qps=/${tag}_qps=/; s/ms=/${tag}_ms=/; s/reused=/${tag}_reused=/")"
  LINE+=" $(awk -v p=$((p1 - p0)) -v s=$((s1 - s0)) -v hz="$HZ" -v a="$t0" -v b="$t1" -v t="$tag" \
    'BEGIN { w = b - a; printf "%s_cpu=%.0f %s_bg=%.0f", t, 100 * p / hz / w, t, 100 * (s - p) / hz / w }')"
}

perf() {  # perf MODE FILE [dnsperf args...] -> qps=N ms=M (dnsperf)
  local mode=$1 file=$2 out; shift 2
  out=$(taskset -c 0 dnsperf -m "$mode" -s "$IP" -d "$file" -c 8 -q 100 -t 5 "$@" 2>&1 || true)
  echo "$out" | awk '/Queries per second/ {q = $4} /Average Latency/ {m = $4 * 1000}
    END {printf "qps=%.0f ms=%.2f\n", q, m}'
}

# urls FILE NAMES_FILE: one DoH GET URI per name (RFC 8484 §4.1: base64url, no padding, ID 0).
urls() {
  python3 - "$IP" "$2" > "$1" <<'EOF'
import base64, struct, sys
ip = sys.argv[1]
for line in open(sys.argv[2]):
    name = line.split()[0].rstrip(".")
    q = bytes.fromhex("000001000001000000000000")
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    print(f"https://{ip}/dns-query?dns=" + base64.urlsafe_b64encode(q).decode().rstrip("="))
EOF
}

doh() {  # doh URLS CONNECTIONS -> qps=N ms=M (h2load: requests/s, mean time per request)
  local out
  out=$(taskset -c 0 h2load -c "$2" -m 100 -D "$DURATION" -i "$1" 2>&1 || true)
  echo "$out" | awk '/^finished in/ {gsub(",", ""); q = $4} /^time for request:/ {m = $6}
    END { if (m ~ /ms$/) { sub("ms", "", m) } else if (m ~ /us$/) { sub("us", "", m); m /= 1000 } else { sub("s", "", m); m *= 1000 }
          printf "qps=%.0f ms=%.2f\n", q, m }'
}

handshakes() {  # handshakes RESUME -> qps=connections/s ms=median ms per connection
  taskset -c 0 python3 - "$IP" "$PKI/ca.pem" "$CONNS" "$1" <<'EOF'
import socket, ssl, struct, sys, time, statistics
ip, ca, n, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["dot"])
q = bytes.fromhex("abcd01000001000000000000") + b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
session, times, reused = None, [], 0
start = time.monotonic()
for i in range(n):
    t = time.monotonic()
    with socket.create_connection((ip, 853), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="dns.bench.test",
                             session=session if resume else None) as s:
            s.sendall(struct.pack("!H", len(q)) + q)
            ln = struct.unpack("!H", s.recv(2))[0]
            got = b""
            while len(got) < ln:
                got += s.recv(ln - len(got))
            reused += s.session_reused
            session = s.session
    times.append(time.monotonic() - t)
took = time.monotonic() - start
print(f"qps={n / took:.0f} ms={statistics.median(times) * 1000:.2f} reused={reused}")
EOF
}

PEERS=(unbound hopdns)
for r in $(seq "$REPS"); do
  for i in 0 1; do
    p=${PEERS[$(( (i + r - 1) % 2 ))]}
    echo "[encrypted] round $r: $p" >&2
    start_peer "$p"
    LINE="round=$r peer=$p"
    taskset -c 0 dnsperf -m dot -s "$IP" -d "$HIT" -n 1 -c 4 -q 50 -t 5 >/dev/null 2>&1 || true
    measure hit_dot perf dot "$HIT" -l "$DURATION"
    urls "$RUN/q/enc-hit-urls.txt" "$HIT"
    measure hit_doh doh "$RUN/q/enc-hit-urls.txt" 8
    for m in dot doh; do
      tag=$(date +%s%N | tail -c 9)$$
      MISS=$RUN/q/enc-miss.txt
      awk -v t="$tag" -v m="$m" 'BEGIN { for (i = 0; i < 200000; i++) printf "m%s%sx%d.bench.example A\n", t, m, i }' > "$MISS"
      kdig +tls +tls-ca="$PKI/ca.pem" +tls-hostname=dns.bench.test @"$IP" "warm$tag.bench.example" A >/dev/null 2>&1 || true
      if [ "$m" = dot ]; then
        measure miss_dot perf dot "$MISS" -l "$DURATION" -n 1
      else
        urls "$RUN/q/enc-miss-urls.txt" "$MISS"
        measure miss_doh doh "$RUN/q/enc-miss-urls.txt" 1
        rm -f "$RUN/q/enc-miss-urls.txt"
      fi
      rm -f "$MISS"
    done
    measure new_hs handshakes 0
    measure resumed_hs handshakes 1
    stop_peer
    echo "$LINE" | tee -a "$RAW"
  done
done

python3 - "$RAW" <<'EOF'
import sys, statistics, collections
rows = [dict(kv.split("=", 1) for kv in line.split()) for line in open(sys.argv[1]) if line.strip()]
keys = [k for k in rows[0] if k.endswith(("_qps", "_ms"))]
by = collections.defaultdict(dict)
for row in rows:
    by[row["round"]][row["peer"]] = row
print(f"{'metric':16} {'unbound':>9} {'hopdns':>9} {'hopdns/unbound (median of rounds)':>34}")
for k in keys:
    med = {p: statistics.median(float(r[p][k]) for r in by.values()) for p in ("unbound", "hopdns")}
    ratios = [float(r["hopdns"][k]) / float(r["unbound"][k]) for r in by.values() if float(r["unbound"][k]) > 0]
    ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
    print(f"{k:16} {med['unbound']:9.2f} {med['hopdns']:9.2f} {ratio:>34}")
bg = [float(r[p][k]) for r in by.values() for p in r for k in r[p] if k.endswith("_bg")]
print(f"background CPU during measurements (rest of the machine, % of one core): median {statistics.median(bg):.0f}, max {max(bg):.0f}")
EOF
