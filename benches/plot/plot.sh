#!/usr/bin/env bash
# benches/plot/plot.sh -- SVG pictures of the load results, for docs/performance.md.
#
#   benches/plot/plot.sh [RAW] [OUT_DIR]
#
# RAW is a benches/load.sh result (default target/load/raw-t1.txt: one key=value line per
# round and peer). Optional inputs beside it, when present:
#   target/load/memory-curve.txt   benches/memory.sh curve output (names=N rss_kb=K lines)
#   target/load/limit.txt          ../shared/bench/limit-ref.sh output (the echo limits), used
#                                  when RAW has no echo64 rounds of its own
# Writes OUT_DIR (default docs/img) qps.svg, latency.svg, and rss-curve.svg / hit-share.svg
# when their inputs exist. Medians of the rounds, as the tables quote them. Needs gnuplot
# (Debian gnuplot-nox) and python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RAW=${1:-$ROOT/target/load/raw-t1.txt}
OUT=${2:-$ROOT/docs/img}
DIR=$(dirname "$RAW")
mkdir -p "$OUT"
command -v gnuplot >/dev/null || { echo "plot.sh: gnuplot is missing (apt-get install gnuplot-nox)" >&2; exit 2; }
[ -s "$RAW" ] || { echo "plot.sh: no results in $RAW (run benches/load.sh first)" >&2; exit 2; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

python3 - "$RAW" "$TMP" "$DIR" <<'PY'
import re, statistics, sys, os
raw, tmp, d = sys.argv[1:4]
rows = {}
echo = {}  # load.sh's echo64 peer: the limit measured in each round
for line in open(raw):
    kv = dict(re.findall(r'(\w+)=(\S+)', line))
    if kv.get('ref') == 'echo-batch64':
        echo[kv.get('round')] = float(kv['qps'])
    if 'peer' not in kv:
        continue
    rows.setdefault(kv['peer'], []).append(kv)
def med(rs, k):
    vals = [float(r[k].rstrip('%')) for r in rs if k in r]
    return statistics.median(vals) if vals else 0
with open(f'{tmp}/qps.dat', 'w') as f:
    for p, rs in rows.items():
        f.write(f'{p} {med(rs,"hit_blast_qps"):.0f} {med(rs,"hit_qps"):.0f} {med(rs,"miss_qps"):.0f}\n')
with open(f'{tmp}/lat.dat', 'w') as f:
    for p, rs in rows.items():
        f.write(f'{p} {med(rs,"hit_avg_ms")} {med(rs,"hit_p99_ms")} {med(rs,"miss_avg_ms")} {med(rs,"miss_p99_ms")}\n')
curve = os.path.join(d, 'memory-curve.txt')
if os.path.exists(curve):
    with open(f'{tmp}/rss.dat', 'w') as f:
        for line in open(curve):
            kv = dict(re.findall(r'(\w+)=(\S+)', line))
            if 'names' in kv and 'rss_kb' in kv:
                f.write(f"{kv['names']} {int(kv['rss_kb'])/1024:.1f}\n")
limit = os.path.join(d, 'limit.txt')
if echo:
    # Same rounds as the resolvers (PEERS="... echo64"): preferred to a separate sitting.
    # Each round's hits over that round's limit, then the median, as load.sh's table has it.
    with open(f'{tmp}/share.dat', 'w') as f:
        for p, rs in rows.items():
            shares = [100 * float(r['hit_blast_qps']) / echo[r.get('round')]
                      for r in rs if r.get('hit_blast_qps') and echo.get(r.get('round'))]
            if shares:
                f.write(f'{p} {statistics.median(shares):.1f}\n')
        f.write(f'echo64-limit 100\n')
elif os.path.exists(limit):
    # The batched echo responder loaded by udp-blast (limit-ref.sh's "ref=echo-batch64
    # client=udp-blast" line): the packet rate the machine allows a server on one core.
    best = 0
    for line in open(limit):
        kv = dict(re.findall(r'(\w+)=(\S+)', line))
        if kv.get('ref') == 'echo-batch64' and kv.get('client') == 'udp-blast':
            best = max(best, float(kv.get('qps', 0)))
    if best:
        with open(f'{tmp}/share.dat', 'w') as f:
            for p, rs in rows.items():
                f.write(f'{p} {100 * med(rs, "hit_blast_qps") / best:.1f}\n')
            f.write(f'echo64-limit 100\n')
PY

common='set terminal svg size 760,420 dynamic font "sans,12" background "#ffffff"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set key top left
set grid ytics
set xtics nomirror
set ytics nomirror'

gnuplot <<GP
$common
set terminal svg size 900,420 dynamic font "sans,12" background "#ffffff"
set output "$OUT/qps.svg"
set multiplot layout 1,2 title "Queries per second (median of rounds, one pinned core each)"
set ylabel "QPS"
set format y "%.0s%c"
set yrange [0:*]
set title "cache hits"
plot "$TMP/qps.dat" using 2:xtic(1) title "udp-blast", "" using 3 title "dnsperf"
set title "cache misses"
plot "$TMP/qps.dat" using 4:xtic(1) title "dnsperf, unique names" lc rgb "#56b4e9"
unset multiplot
GP
gnuplot <<GP
$common
set output "$OUT/latency.svg"
set title "Latency under load (median of rounds)"
set ylabel "ms"
plot "$TMP/lat.dat" using 2:xtic(1) title "hit avg", "" using 3 title "hit p99", \
     "" using 4 title "miss avg", "" using 5 title "miss p99"
GP
if [ -s "$TMP/rss.dat" ]; then
gnuplot <<GP
set terminal svg size 760,420 dynamic font "sans,12" background "#ffffff"
set output "$OUT/rss-curve.svg"
set title "hopdns RSS over a stream of unique names"
set xlabel "names cached"; set ylabel "RSS (MiB)"; set grid
set format x "%.0s%c"
plot "$TMP/rss.dat" using 1:2 with linespoints title "RSS"
GP
fi
if [ -s "$TMP/share.dat" ]; then
gnuplot <<GP
$common
set output "$OUT/hit-share.svg"
set title "Cache-hit packet rate as a share of the batched echo limit"
set ylabel "% of echo64"; set yrange [0:110]
plot "$TMP/share.dat" using 2:xtic(1) title "udp-blast hits"
GP
fi
ls "$OUT"/*.svg
