# Sourced by the bench scripts (not run): the shared bench lab (NSD on 127.0.0.2-99) is
# started if it is down, and stopped on exit only if it was started here. Needs BENCH (the
# shared bench folder) and LAB_RUN; the script's EXIT trap calls `lab_stop_if_started`, or
# is `lab_cleanup`, which also stops the processes listed in `pids` by PID. It also holds the
# query lists and the readiness wait the scripts share.
lab_started=0

lab_up_if_down() {
  if ! dig +time=1 +tries=1 +norec -p 53 @127.0.0.2 . NS >/dev/null 2>&1; then
    "$BENCH/up.sh" >/dev/null; lab_started=1
  fi
}

lab_stop_if_started() {
  if [ "$lab_started" = 1 ]; then "$BENCH/down.sh" >/dev/null 2>&1 || true; fi
}

# Processes the script started, each stopped by PID on exit, and waited for: a script run
# right after must find their ports free (Unbound takes a moment to close its sockets).
pids=()

lab_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  lab_stop_if_started
}

# The bench's 1000 cache-hit names, one "NAME A" line each: h0..h333 under example.com and
# .net, h0..h331 under .org (the list ../shared/bench/bench-peer.sh measures hits with).
lab_hit_names() {
  awk 'BEGIN { for (i = 0; i < 334; i++) { print "h" i ".example.com A"; print "h" i ".example.net A"; if (i < 332) print "h" i ".example.org A" } }'
}

# lab_wait_answering ADDR PORT [TRIES] [PAUSE]: waits until the resolver there resolves a
# lab name (www.example.com A is 127.1.0.2), TRIES times PAUSE seconds at most (a resolver
# under valgrind starts slowly); fails, saying so, if it never does.
lab_wait_answering() {
  local _
  for _ in $(seq "${3:-50}"); do
    dig +time=1 +tries=1 -p "$2" @"$1" www.example.com A +short 2>/dev/null | grep -qx 127.1.0.2 && return 0
    sleep "${4:-0.1}"
  done
  echo "the resolver at $1 port $2 did not resolve www.example.com" >&2
  return 1
}

# lab_miss_load ADDR PORT TAG N FILE: N unique names under the lab's wildcard zone
# bench.example (tagged TAG, so no run repeats another's) into FILE, each a cache miss with
# one upstream query, once the resolver there has learnt the delegation to bench.example.
lab_miss_load() {
  awk -v t="$3" -v n="$4" 'BEGIN { for (i = 0; i < n; i++) printf "m%sx%d.bench.example A\n", t, i }' >"$5"
  dig +time=3 +tries=2 -p "$2" @"$1" "warm$3.bench.example" A +short >/dev/null
}

# lab_tool NAME DIR: the shared bench's ../shared/bench/tools/NAME.c built into DIR/NAME
# when that is missing or older than the source; prints the binary's path.
lab_tool() {
  local src=$BENCH/tools/$1.c bin=$2/$1
  [ -x "$bin" ] && [ "$bin" -nt "$src" ] || gcc -O2 -o "$bin" "$src"
  echo "$bin"
}

# lab_start_resolver PEER ADDR PORT DIR: PEER (a hopdns binary, or `unbound` with the bench's
# own configuration) on CPU 1, answering at ADDR:PORT with a 150 MB cache, logging into DIR;
# its PID is added to `pids`. Validation is off: the lab is unsigned.
lab_start_resolver() {
  if [ "$1" = unbound ]; then
    # As bench-peer.sh renders it (150 MB: msg 50, rrset 100).
    sed -e "s|@ADDR@|$2|g" -e "s|@PORT@|$3|g" -e "s|@THREADS@|1|g" \
      -e "s|@LAB@|$BENCH|g" -e "s|@RUN@|$4|g" -e "s|@MSG_CACHE_MB@|50|g" \
      -e "s|@RRSET_CACHE_MB@|100|g" "$BENCH/peers/unbound.conf" >"$4/unbound-$3.conf"
    taskset -c 1 unbound -d -c "$4/unbound-$3.conf" >"$4/unbound-$3.log" 2>&1 &
  else
    taskset -c 1 "$1" serve --listen "$2:$3" --root-hints "$BENCH/root.hints" \
      --threads 1 --query-loopback --no-ipv6 --no-prime --cache-size 150m --no-dnssec \
      >"$4/hopdns-$3.log" 2>&1 &
  fi
  pids+=($!)
}
