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
