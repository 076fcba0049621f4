#!/usr/bin/env python3
"""Summary of benches/web/cost.sh's raw lines: medians per mode, and medians of same-round
ratios (web on / web off), the figure to read on a shared machine.

    benches/web/summary.py target/web-cost/raw.txt

Queries per CPU second (QPS / hopdns's CPU share) is the cost of one hit whatever CPU the
neighbours left to hopdns; it is rough, since the CPU share is a whole percent.
"""

import statistics
import sys


def num(run, key):
    v = run.get(key, "").rstrip("%")
    return float(v) if v else None


def main():
    runs = [dict(kv.split("=", 1) for kv in line.split() if "=" in kv) for line in open(sys.argv[1])]
    for r in runs:
        for q, c in (("hit_qps", "hit_cpu"), ("hit_blast_qps", "hit_blast_cpu")):
            qps, cpu = num(r, q), num(r, c)
            if qps and cpu:
                r[q + "_per_cpu_s"] = str(qps / (cpu / 100))
    rounds = sorted({r["round"] for r in runs})
    keys = [
        ("hit_qps", "hit QPS, dnsperf"),
        ("hit_blast_qps", "hit QPS, udp-blast"),
        ("hit_qps_per_cpu_s", "hits per hopdns CPU second, dnsperf"),
        ("hit_blast_qps_per_cpu_s", "hits per hopdns CPU second, udp-blast"),
        ("hit_cpu", "hopdns CPU % (dnsperf run)"),
        ("hit_p99_ms", "hit p99 latency ms (dnsperf)"),
        ("hit_bg_cpu", "background CPU % of one CPU (dnsperf run)"),
        ("hit_blast_bg_cpu", "background CPU % of one CPU (udp-blast run)"),
        ("rss_peak_mb", "hopdns peak RSS MB"),
    ]
    print("| measure | web off | web on + browser | on / off, median of same-round ratios |")
    print("|---|---|---|---|")
    for key, what in keys:
        cols, ratios = [], []
        for mode in ("off", "on"):
            vals = [num(r, key) for r in runs if r.get("web") == mode and num(r, key) is not None]
            cols.append(statistics.median(vals) if vals else float("nan"))
        for rnd in rounds:
            pair = {r["web"]: num(r, key) for r in runs if r["round"] == rnd}
            if pair.get("off") and pair.get("on") is not None:
                ratios.append(pair["on"] / pair["off"])
        ratio = f"{statistics.median(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})" if ratios else "-"
        fmt = (lambda v: f"{v:,.0f}") if cols[0] >= 100 else (lambda v: f"{v:.1f}")
        print(f"| {what} | {fmt(cols[0])} | {fmt(cols[1])} | {ratio} |")
    ticks = [f"{r.get('browser_ticks')} ticks ({r.get('browser_live')} live at the end)"
             for r in runs if r.get("web") == "on"]
    print(f"\nMedians of {len(rounds)} rounds; the order alternated per round. Background CPU is "
          "everything else on the machine (the browser included in the 'on' runs). "
          f"Events the page received per 'on' run: {', '.join(ticks)}.")


main()
