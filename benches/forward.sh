#!/usr/bin/env bash
# benches/forward.sh -- what a forwarded cache miss costs (issue 15): hopdns forwarding over
# UDP, hopdns forwarding over DNS over TLS, and Unbound forwarding over DNS over TLS, all to
# the same upstream. The upstream is an Unbound that answers every name under bench.example
# itself (a local-zone redirect), over UDP and over TLS, so what is measured is the
# forwarding path: client -> forwarder (cache miss) -> upstream -> back.
#
#   benches/forward.sh                  # one run of 10 s per forwarder
#   DURATION=5 OUTSTANDING=20 benches/forward.sh
#
# Each forwarder gets its own unique names (no cache hits, no help from the upstream's
# cache), one after the other, with dnsperf (-l DURATION, at most OUTSTANDING queries in
# flight). Addresses: 127.57.15.0/24 on loopback (not the lab's 127.53, not the shared
# bench's 127.0.0.2-99). Needs root, unbound, openssl, dnsperf. Every process it starts is
# stopped by PID at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}; OUTSTANDING=${OUTSTANDING:-50}; NAMES=${NAMES:-400000}
NET=127.57.15
OUT=$ROOT/target/forward-bench; rm -rf "$OUT"; mkdir -p "$OUT"
for tool in unbound openssl dnsperf; do
  command -v "$tool" >/dev/null || { echo "forward.sh: $tool is missing (apt-get install $tool)" >&2; exit 2; }
done

cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
BIN=$OUT/hopdns; cp "$ROOT/target/release/hopdns" "$BIN"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# A throwaway CA and a certificate for dns.bench.example.
cd "$OUT"
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${EC[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req "${EC[@]}" -keyout key.pem -out req.csr -subj "/CN=dns.bench.example" 2>/dev/null
printf 'subjectAltName=DNS:dns.bench.example\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 \
  -extfile ext.cnf 2>/dev/null

common() {  # common DIR -> unbound server: lines shared by both instances
  cat <<EOF
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$1"
  pidfile: "$1/unbound-$2.pid"
  use-syslog: no
  logfile: "$1/unbound-$2.log"
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  do-ip6: no
  num-threads: 1
  module-config: "iterator"
  verbosity: 0
EOF
}

# The upstream: UDP on .50:53, TLS on .50:853; every name under bench.example is A 192.0.2.7.
{
  echo "server:"
  echo "  interface: $NET.50"
  echo "  interface: $NET.50@853"
  echo "  tls-port: 853"
  echo "  tls-service-key: \"$OUT/key.pem\""
  echo "  tls-service-pem: \"$OUT/cert.pem\""
  echo "  incoming-num-tcp: 100"
  common "$OUT" upstream
  echo "  local-zone: \"bench.example.\" redirect"
  echo "  local-data: \"bench.example. 300 IN A 192.0.2.7\""
} > upstream.conf
unbound -c upstream.conf & PIDS+=($!)

# Unbound forwarding everything over TLS to the upstream, on .43.
{
  echo "server:"
  echo "  interface: $NET.43"
  echo "  tls-cert-bundle: \"$OUT/ca.pem\""
  echo "  qname-minimisation: no"
  common "$OUT" forwarder
  echo "forward-zone:"
  echo "  name: \".\""
  echo "  forward-addr: $NET.50@853#dns.bench.example"
  echo "  forward-tls-upstream: yes"
} > forwarder.conf
unbound -c forwarder.conf & PIDS+=($!)

# hopdns forwarding over UDP (.41) and over TLS (.42), one worker thread each.
# The upstream's bench.example is unsigned under the real root's anchor: validation off, as
# Unbound forwards here without it.
"$BIN" serve --listen "$NET.41:53" --threads 1 --no-prime --no-dnssec --log-level warn \
  --forward ".=$NET.50" & PIDS+=($!)
"$BIN" serve --listen "$NET.42:53" --threads 1 --no-prime --no-dnssec --log-level warn \
  --forward ".=tls://$NET.50@dns.bench.example" --forward-ca-file "$OUT/ca.pem" & PIDS+=($!)

ready() {  # ready ADDR: answers a query within 10 s
  for _ in $(seq 100); do
    dig +short +tries=1 +time=1 @"$1" ready.bench.example 2>/dev/null | grep -q 192.0.2.7 && return 0
    sleep 0.1
  done
  echo "forward.sh: $1 does not answer" >&2; exit 1
}
for a in 50 41 42 43; do ready "$NET.$a"; done

printf '%-28s %10s %12s %10s\n' forwarder "queries/s" "avg latency" "lost"
for peer in "hopdns-udp:41" "hopdns-dot:42" "unbound-dot:43"; do
  name=${peer%%:*}; host=${peer##*:}
  seq 1 "$NAMES" | sed "s/^/$name-/; s/\$/.bench.example A/" > "names-$name.txt"
  dnsperf -s "$NET.$host" -d "names-$name.txt" -l "$DURATION" -q "$OUTSTANDING" -t 5 \
    > "dnsperf-$name.txt" 2>&1 || true
  qps=$(awk '/Queries per second:/ {print $4}' "dnsperf-$name.txt")
  lat=$(awk '/Average Latency/ {print $4}' "dnsperf-$name.txt")
  lost=$(awk '/Queries lost:/ {print $3}' "dnsperf-$name.txt")
  sent=$(awk '/Queries sent:/ {print $3}' "dnsperf-$name.txt")
  if [ "$sent" -ge "$NAMES" ]; then
    echo "forward.sh: $name used every name: raise NAMES, answers repeated from the cache" >&2
  fi
  printf '%-28s %10s %10s s %10s\n' "$name ($NET.$host)" "$qps" "$lat" "$lost"
done
echo "(one run, $DURATION s each, $OUTSTANDING outstanding; raw output in $OUT)"
