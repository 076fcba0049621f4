#!/usr/bin/env bash
# benches/differential/run.sh -- hopdns against Unbound on a lab of misbehaving authorities.
#
#   benches/differential/run.sh                     # every case, about a minute
#   benches/differential/run.sh --group qmin        # one group; --only ID,ID; --keep keeps logs
#   HOPDNS=target/debug/hopdns benches/differential/run.sh
#
# Starts the authorities (auth.py, 127.55.0.0/16 port 53), Unbound on 127.55.0.53 and hopdns
# on 127.55.0.54, asks every question of cases.py of both, prints the table, the differing
# cases and "N agree, M differ", and stops the three processes by PID. Exit 0 whatever the
# cases say; 2 when the lab cannot start. Needs root (port 53), unbound, python3 + dnspython.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# Debian's python3 has dnspython (python3-dnspython); PYTHON overrides it.
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import dns.version' 2>/dev/null || { echo "run.sh: $PY has no dnspython: apt-get install python3-dnspython, or set PYTHON" >&2; exit 2; }
[ -x "${UNBOUND:-/usr/sbin/unbound}" ] || { echo "run.sh: no unbound at ${UNBOUND:-/usr/sbin/unbound}: apt-get install unbound, or set UNBOUND" >&2; exit 2; }
cd "$HERE"
# The whole run is bounded: every question has a 9 s timeout, and this stops it at 170 s.
exec timeout -k 5 170 "$PY" diff.py "$@"
