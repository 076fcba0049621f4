#!/usr/bin/env bash
# hopdns as the machine's resolver at 127.0.0.53, end to end, through glibc.
#
# In a network namespace of its own (with a private /etc/resolv.conf, which `ip netns exec`
# bind-mounts from /etc/netns/NAME/resolv.conf), this script starts the offline lab, then
# `hopdns serve` on 127.0.0.53:53 from a config file, exactly as docs/local-resolver.md
# sets it up, and resolves lab names with the system's resolver library (`getent`) and
# with `dig` when it is installed. Everything it starts is stopped by PID and the namespace
# removed, on success and on failure. Needs root (namespaces, port 53).
#
# Usage: tests/local-resolver.sh [HOPDNS_BINARY]    (default: target/debug/hopdns)
set -euo pipefail

BIN=$(realpath "${1:-${HOPDNS:-target/debug/hopdns}}")
NET=${LAB_NET:-120}
NS="hopdns-ops-$$"
WORK=$(mktemp -d /tmp/hopdns-ops-netns.XXXXXX)
PIDS=()

cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in {1..50}; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "local-resolver: process $pid survived SIGKILL" >&2
            rc=1
        fi
    done
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "/etc/netns/$NS" "$WORK"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL (exit $rc)"
    fi
    exit "$rc"
}
trap cleanup EXIT INT TERM
trap 'echo "local-resolver: line $LINENO failed: $BASH_COMMAND" >&2' ERR

fail() {
    echo "local-resolver: $*" >&2
    for f in "$WORK"/*.log; do
        echo "--- $f" >&2
        cat "$f" >&2 || true
    done
    exit 1
}

in_ns() { ip netns exec "$NS" "$@"; }
# Background processes are started with `ip netns exec` itself (not through the function
# above, whose subshell would be the PID recorded while the server lived on as its child):
# `ip netns exec` execs the command, so $! is the server's own PID.

[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces, port 53)"
[ -x "$BIN" ] || fail "no hopdns binary at $BIN: run cargo build first"

ip netns add "$NS"
mkdir -p "/etc/netns/$NS"
echo "nameserver 127.0.0.53" > "/etc/netns/$NS/resolv.conf"
in_ns ip link set lo up

# The lab: authoritative servers on 127.53.$NET.x inside the namespace. (Log files are
# created first: the background child opens them only when it gets to run.)
: > "$WORK/lab.log"
: > "$WORK/serve.log"
ip netns exec "$NS" "$BIN" lab --net "$NET" --threads 1 > "$WORK/lab.log" 2>&1 &
PIDS+=($!)
HINTS=""
for _ in {1..100}; do
    HINTS=$(sed -n 's/^Root hints for this lab: //p' "$WORK/lab.log")
    [ -n "$HINTS" ] && break
    kill -0 "${PIDS[0]}" 2>/dev/null || fail "the lab exited"
    sleep 0.1
done
[ -n "$HINTS" ] || fail "the lab did not start"
cp "$HINTS" "$WORK/lab.root"
# The lab's zones are signed with its own root key: validate from its trust anchor.
ANCHOR=$(sed -n 's/^Trust anchor for this lab: //p' "$WORK/lab.log")
[ -n "$ANCHOR" ] || fail "the lab printed no trust anchor"
cp "$ANCHOR" "$WORK/lab.anchor"

# hopdns on 127.0.0.53 from a config file, as docs/local-resolver.md has it (plus the
# lab's root hints; referrals to 127.53.x need query-loopback, the lab has no IPv6).
cat > "$WORK/hopdns.toml" <<TOML
listen = ["127.0.0.53:53"]
threads = 1
root-hints = "$WORK/lab.root"
trust-anchor = ["$WORK/lab.anchor"]
query-loopback = true
no-ipv6 = true
control-socket = "$WORK/control.sock"
TOML
"$BIN" config check "$WORK/hopdns.toml" || fail "config check"
ip netns exec "$NS" "$BIN" serve --config "$WORK/hopdns.toml" > "$WORK/serve.log" 2>&1 &
PIDS+=($!)

# glibc: getent goes through nsswitch (hosts: files dns) and the namespace's resolv.conf.
# (`getent hosts`, i.e. gethostbyname2: the getaddrinfo-based `ahosts` sets AI_ADDRCONFIG,
# which finds no configured address in a loopback-only namespace and never asks DNS.)
OUT=""
for _ in {1..100}; do
    OUT=$(in_ns getent hosts v4only.example.com 2>/dev/null || true)
    [ -n "$OUT" ] && break
    kill -0 "${PIDS[1]}" 2>/dev/null || fail "hopdns serve exited"
    sleep 0.1
done
echo "$OUT" | grep -q '^192\.0\.2\.3 ' || fail "getent hosts v4only.example.com gave: $OUT"
echo "getent hosts v4only.example.com: $OUT"

OUT=$(in_ns getent hosts chain.example.com) || fail "getent hosts chain.example.com failed"
echo "$OUT" | grep -q '^192\.0\.2\.60 ' || fail "getent hosts chain.example.com gave: $OUT"
echo "getent hosts chain.example.com: $OUT"

OUT=$(in_ns getent hosts www.example.com) || fail "getent hosts www.example.com failed"
echo "$OUT" | grep -q '^2001:db8::1 ' || fail "getent hosts www.example.com gave: $OUT"
echo "getent hosts www.example.com: $OUT"

if in_ns getent hosts nope.example.com > /dev/null; then
    fail "nope.example.com resolved but is NXDOMAIN in the lab"
fi
echo "getent hosts nope.example.com: not found (NXDOMAIN)"

if command -v dig > /dev/null; then
    OUT=$(in_ns dig +short +time=2 +tries=1 www.example.org A)
    [ "$OUT" = "192.0.2.30" ] || fail "dig www.example.org gave: $OUT"
    echo "dig www.example.org (server from resolv.conf): $OUT"
    OUT=$(in_ns dig +time=2 +tries=1 @127.0.0.53 big.example.com TXT)
    echo "$OUT" | grep -q 'ANSWER: 8' || fail "dig big.example.com TXT: $OUT"
    echo "dig big.example.com TXT: 8 answers"
else
    echo "dig not installed: skipped the dig checks"
fi

OUT=$("$BIN" ctl --socket "$WORK/control.sock" stats) || fail "ctl stats"
echo "$OUT" | grep -q '^cache_misses [1-9]' || fail "ctl stats: $OUT"

echo "PASS"
