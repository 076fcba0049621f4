"""Differential test: every question of cases.py through hopdns and through Unbound, on the
lab of auth.py; prints the per-case table, the differing cases and "N agree, M differ".

    python3 diff.py [--only ID,...] [--group G,...] [--jobs N] [--keep] [--all] [--no-trace]
                    [--markdown FILE]

Started by run.sh. Exit status 0 whatever the cases say; 2 when the lab cannot start.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

import cases as table
import lab

HERE = os.path.dirname(os.path.abspath(__file__))
QUERY_TIMEOUT = float(os.environ.get("DIFF_TIMEOUT", "9"))  # per question; hopdns gives up at 4.5 s
BUDGET = float(os.environ.get("DIFF_BUDGET", "140"))  # s for all questions; run.sh stops at 170
DEADLINE = [float("inf")]  # set when the questions start
TTL_TOLERANCE = 10   # seconds, for the TTL cases (run time, and a second of cache aging)
UNBOUND = os.environ.get("UNBOUND", "/usr/sbin/unbound")


def hopdns_path() -> str:
    env = os.environ.get("HOPDNS")
    if env:
        return env
    # This checkout's own build: benches/differential/ is two levels below the root.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [os.path.join(root, "target", kind, "hopdns") for kind in ("release", "debug")]
    for p in candidates:
        if os.access(p, os.X_OK):
            return p
    return candidates[0]


# ---------------------------------------------------------------- results

class Result:
    """One reply, reduced to what is compared: rcode, the answer's records (owner lowercased,
    TTL apart), the RRset order, the answer's last TTL and the authority SOA's TTL."""

    def __init__(self, rcode: str, records=(), order=(), ttl=None, neg_ttl=None, ms=0.0, ede=""):
        self.rcode, self.records, self.order = rcode, frozenset(records), tuple(order)
        self.ttl, self.neg_ttl, self.ms, self.ede = ttl, neg_ttl, ms, ede

    @classmethod
    def of(cls, msg: dns.message.Message, ms: float) -> "Result":
        recs, order = [], []
        for rs in msg.answer:
            order.append((rs.name.to_text().lower(), dns.rdatatype.to_text(rs.rdtype)))
            for rd in rs:
                recs.append(rec(rs.name, rs.rdtype, rd))
        ttl = msg.answer[-1].ttl if msg.answer else None
        neg = next((rs.ttl for rs in msg.authority if rs.rdtype == dns.rdatatype.SOA), None)
        ede = "; ".join(f"EDE {o.code}" + (f" {o.text}" if o.text else "")
                        for o in msg.options if o.otype == 15)  # shown, never compared
        return cls(dns.rcode.to_text(msg.rcode()), recs, order, ttl, neg, ms, ede)

    def show(self) -> str:
        if not self.records:
            body = "(empty)"
        else:
            body = "; ".join(f"{n} {t} {d}" for n, t, d in sorted(self.records, key=self._key))
        extra = ""
        if self.ttl is not None:
            extra += f" ttl={self.ttl}"
        if self.neg_ttl is not None:
            extra += f" soa-ttl={self.neg_ttl}"
        if self.ede:
            extra += f" [{self.ede}]"
        return f"{self.rcode} {body}{extra}"

    def _key(self, r):
        try:
            return (self.order.index((r[0], r[1])), r)
        except ValueError:
            return (99, r)


def rec(name: dns.name.Name, rdtype: int, rd) -> tuple[str, str, str]:
    return (name.to_text().lower(), dns.rdatatype.to_text(rdtype), rd.to_text().lower())


def expected_records(case: lab.Case, exp: lab.Exp):
    origin = case.origin()
    recs, order = [], []
    for line in exp.answer:
        name, rtype, data = case.fill(line).split(None, 2)
        owner = dns.name.from_text(name, origin)
        t = dns.rdatatype.from_text(rtype)
        rd = dns.rdata.from_text(dns.rdataclass.IN, t, data, origin=origin, relativize=False)
        recs.append(rec(owner, t, rd))
        key = (owner.to_text().lower(), rtype)
        if key not in order:
            order.append(key)
    return frozenset(recs), tuple(order)


def same(a: Result, b: Result, ttl: bool, neg: bool) -> bool:
    if a.rcode != b.rcode or a.records != b.records:
        return False
    if ttl and not close(a.ttl, b.ttl):
        return False
    if neg and not close(a.neg_ttl, b.neg_ttl):
        return False
    return True


def close(x, y) -> bool:
    if x is None or y is None:
        return x is y
    return abs(x - y) <= TTL_TOLERANCE


def matches(r: Result, case: lab.Case, exp: lab.Exp) -> bool:
    recs, order = expected_records(case, exp)
    if r.rcode != exp.rcode or r.records != recs:
        return False
    if exp.ordered and r.order != order:
        return False
    if exp.ttl is not None and not close(r.ttl, exp.ttl):
        return False
    if exp.neg_ttl is not None and not close(r.neg_ttl, exp.neg_ttl):
        return False
    if exp.max_ms is not None and r.ms > exp.max_ms:
        return False
    return True


def ask(server: str, qname: str, qtype: str) -> Result:
    q = dns.message.make_query(qname, qtype, use_edns=0, payload=1232)
    t0 = time.monotonic()
    try:
        msg = dns.query.udp(q, server, timeout=QUERY_TIMEOUT)
        if msg.flags & dns.flags.TC:
            msg = dns.query.tcp(q, server, timeout=QUERY_TIMEOUT)
    except dns.exception.Timeout:
        return Result("TIMEOUT", ms=(time.monotonic() - t0) * 1000)
    except Exception as e:  # noqa: BLE001 - any failure to get a reply is the result
        return Result(f"ERROR({type(e).__name__})", ms=(time.monotonic() - t0) * 1000)
    return Result.of(msg, (time.monotonic() - t0) * 1000)


def run_case(case: lab.Case):
    """Ask each question of the case, hopdns and Unbound in turn -> list of rows."""
    rows = []
    for q in case.ask:
        qname = dns.name.from_text(case.fill(q.name), case.origin()).to_text()
        if time.monotonic() > DEADLINE[0]:  # out of time: say so rather than be killed
            h = u = Result("SKIPPED")
        else:
            h = ask(lab.HOPDNS_ADDR, qname, q.qtype)
            u = ask(lab.UNBOUND_ADDR, qname, q.qtype)
        e = q.expect
        agree = same(h, u, ttl=bool(e and e.ttl is not None), neg=bool(e and e.neg_ttl is not None))
        rows.append({
            "q": f"{qname} {q.qtype}", "h": h, "u": u, "agree": agree,
            "h_ok": matches(h, case, e) if e else None,
            "u_ok": matches(u, case, e) if e else None,
            "expect": e, "note": q.note,
        })
    return rows


def trace_wrong(lab_: "Lab", case: lab.Case, rows: list[dict]):
    """For the first question hopdns gets wrong, `hopdns trace` from a cold cache: its result
    line says why (a delegation loop, no usable server, ...)."""
    row = next((r for r in rows if r["h_ok"] is False), None)
    if row is None:
        return
    name, qtype = row["q"].split()
    argv = [lab_.binary, "trace", name, qtype, "--root-hints", lab_.hints, "--no-dnssec", "--query-loopback",
            "--no-ipv6"]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    except subprocess.TimeoutExpired:
        row["trace"] = "(trace did not finish in 10 s)"
        return
    results = [ln.strip() for ln in out.splitlines() if ln.startswith(";; result:")]
    row["trace"] = results[-1] if results else "(no result line)"


def show_expect(case: lab.Case, e: lab.Exp | None) -> str:
    if e is None:
        return "(open)"
    recs, order = expected_records(case, e)
    r = Result(e.rcode, recs, order, e.ttl, e.neg_ttl)
    return (r.show() + (" (in this order)" if e.ordered else "")
            + (f" within {e.max_ms} ms" if e.max_ms is not None else ""))


# ---------------------------------------------------------------- the lab

class Lab:
    def __init__(self, keep: bool):
        self.dir = tempfile.mkdtemp(prefix="hopdns-diff-")
        self.keep = keep
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.binary = self.hints = ""

    def start(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        log = open(os.path.join(self.dir, f"{name}.log"), "w")
        p = subprocess.Popen(argv, stderr=log, stdout=kw.pop("stdout", log),
                             preexec_fn=die_with_parent, **kw)
        self.procs.append((name, p))
        return p

    def stop(self):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()  # this one process, by its PID
                    p.wait()
        if self.keep:
            print(f"logs kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def die_with_parent():
    """In the child: SIGTERM when this script dies, however it dies (prctl PR_SET_PDEATHSIG),
    so no lab process outlives a run that was killed."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def wait_ready(server: str, name: str, proc: subprocess.Popen, deadline: float):
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode}")
        q = dns.message.make_query(".", "NS")
        try:
            dns.query.udp(q, server, timeout=0.5)
            return
        except (dns.exception.Timeout, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{name} does not answer on {server}")


def unbound_conf(d: str, hints: str) -> str:
    return f"""server:
    interface: {lab.UNBOUND_ADDR}
    port: 53
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{d}"
    pidfile: "{d}/unbound.pid"
    logfile: "{d}/unbound-server.log"
    use-syslog: no
    verbosity: 1
    num-threads: 1
    root-hints: "{hints}"
    module-config: "iterator"
    do-not-query-localhost: no
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    outgoing-interface: {lab.UNBOUND_ADDR}
remote-control:
    control-enable: no
"""


def start_lab(lab_: Lab):
    d = lab_.dir
    hints = os.path.join(d, "root.hints")
    with open(hints, "w") as f:
        f.write(lab.root_hints())
    argv = [sys.executable, os.path.join(HERE, "auth.py"), "--log", os.path.join(d, "queries.log")]
    auth = lab_.start("auth", argv, stdout=subprocess.PIPE, text=True)
    line = auth.stdout.readline()
    if not line.startswith("ready"):
        raise RuntimeError("the authorities did not start: see auth.log" +
                           (f" in {d}" if lab_.keep else " (run with --keep)"))
    conf = os.path.join(d, "unbound.conf")
    with open(conf, "w") as f:
        f.write(unbound_conf(d, hints))
    unbound = lab_.start("unbound", [UNBOUND, "-d", "-c", conf])
    hop = hopdns_path()
    # A private copy, so that a rebuild during the run cannot swap the binary under it.
    copy = os.path.join(d, "hopdns")
    shutil.copy2(hop, copy)
    lab_.binary, lab_.hints = copy, hints
    desc = describe_binary(copy, hop)
    hopdns = lab_.start("hopdns", [copy, "serve", "--listen", f"{lab.HOPDNS_ADDR}:53",
                                   "--root-hints", hints, "--no-dnssec", "--query-loopback", "--no-ipv6",
                                   "--allow", "127.0.0.0/8",
                                   "--outgoing-address", lab.HOPDNS_ADDR])
    deadline = time.monotonic() + 15
    wait_ready(lab.UNBOUND_ADDR, "unbound", unbound, deadline)
    wait_ready(lab.HOPDNS_ADDR, "hopdns", hopdns, deadline)
    return desc, auth, unbound, hopdns


# ---------------------------------------------------------------- report

def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", help="comma-separated case ids")
    ap.add_argument("--group", help="comma-separated groups (nonaa, neg, reclame, ...)")
    ap.add_argument("--jobs", type=int, default=8, help="cases run at once (default 8)")
    ap.add_argument("--keep", action="store_true", help="keep the logs and the query log")
    ap.add_argument("--markdown", help="also write the result as Markdown to this file")
    ap.add_argument("--no-trace", action="store_true", help="do not run `hopdns trace` on "
                    "the questions hopdns gets wrong")
    ap.add_argument("--all", action="store_true", help="show every case's replies, not only "
                    "the differing ones")
    args = ap.parse_args()
    # run.sh's time limit sends SIGTERM: stop the lab on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))

    chosen = table.CASES
    if args.only:
        ids = set(args.only.split(","))
        chosen = [c for c in chosen if c.id in ids]
    if args.group:
        groups = set(args.group.split(","))
        chosen = [c for c in chosen if c.group in groups]
    if not chosen:
        print("differential: no case matches; groups: "
              + ", ".join(g for g, _ in table.GROUPS), file=sys.stderr)
        return 2

    lab_ = Lab(args.keep)
    t0 = time.monotonic()
    try:
        try:
            hop, auth, unbound, hopdns = start_lab(lab_)
        except (RuntimeError, OSError) as e:
            print(f"differential: the lab did not start: {e}", file=sys.stderr)
            return 2
        print(f"hopdns: pid {hopdns.pid}; unbound: {UNBOUND} (pid {unbound.pid}); "
              f"authorities: pid {auth.pid}; python {sys.executable}", file=sys.stderr)
        DEADLINE[0] = time.monotonic() + BUDGET
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_case, chosen))
            if not args.no_trace:
                list(pool.map(lambda cr: trace_wrong(lab_, *cr), zip(chosen, results)))
        alive = {n: p.poll() is None for n, p in lab_.procs}
        asked = servers_asked(os.path.join(lab_.dir, "queries.log"))
    finally:
        lab_.stop()
    elapsed = time.monotonic() - t0
    report(chosen, results, alive, elapsed, args.markdown, hop, asked, args.all)
    return 0


def describe_binary(copy: str, origin: str) -> str:
    """Which hopdns ran (`copy`, taken from `origin`): build time, hash, and the checkout's
    commit when `origin` lies in a target/ directory."""
    st = os.stat(copy)
    with open(copy, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(st.st_mtime))
    out = f"{origin} (built {when}, sha256 {digest}"
    parts = os.path.abspath(origin).split(os.sep)
    if len(parts) > 3 and parts[-3] == "target":
        root = os.sep.join(parts[:-3])
        try:
            rev = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"],
                                 capture_output=True, text=True, timeout=5).stdout.strip()
            if rev:
                out += f", checkout {root} at {rev} now"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return out + ")"


def servers_asked(path: str) -> dict[tuple[int, str], dict[int, int]]:
    """From the authorities' query log: (case number, resolver) -> {server k: queries}."""
    out: dict = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 4 or parts[1] not in ("hopdns", "unbound"):
                continue
            octets = parts[3].split(".")
            n, k = int(octets[2]), int(octets[3])
            if n:
                per = out.setdefault((n, parts[1]), {})
                per[k] = per.get(k, 0) + 1
    return out


def report(chosen, results, alive, elapsed, md_path, hop, asked, show_all=False):
    agree = differ = h_right = u_right = judged = 0
    lines, diffs, unmet = [], [], []
    for case, rows in zip(chosen, results):
        ok = all(r["agree"] for r in rows)
        agree += ok
        differ += not ok
        judged_rows = [r for r in rows if r["expect"] is not None]
        h_ok = all(r["h_ok"] for r in judged_rows) if judged_rows else None
        u_ok = all(r["u_ok"] for r in judged_rows) if judged_rows else None
        if judged_rows:
            judged += 1
            h_right += h_ok
            u_right += u_ok
        mark = lambda v: "-" if v is None else ("ok" if v else "WRONG")  # noqa: E731
        ms_h = max(r["h"].ms for r in rows)
        ms_u = max(r["u"].ms for r in rows)
        lines.append(f"{case.n:3} {case.id:28} {'agree ' if ok else 'DIFFER'} "
                     f"hopdns:{mark(h_ok):5} unbound:{mark(u_ok):5} "
                     f"{ms_h:6.0f}/{ms_u:5.0f} ms  {case.rfc}")
        for who in ("hopdns", "unbound"):
            per = asked.get((case.n, who), {})
            missed = [k for k in case.bad if not per.get(k)]
            if missed:
                unmet.append(f"{case.id}: {who} never asked server "
                             f"{', '.join(f'{lab.NET}.{case.n}.{k}' for k in missed)}")
        if show_all or not ok or h_ok is False or u_ok is False:
            diffs.append((case, rows, ok, h_ok, u_ok))
    out = [f"hopdns: {hop}", f"unbound: {UNBOUND} {unbound_version()}", ""]
    out.append(f"{'#':>3} {'case':28} {'result':6} {'vs expected':26} {'max ms h/u':>14}  RFC")
    out += lines
    out.append("")
    for case, rows, ok, h_ok, u_ok in diffs:
        off = [w for w, v in (("hopdns", h_ok), ("unbound", u_ok)) if v is False]
        tag = "DIFFER" if not ok else "agree"
        if off:
            tag += f"; off the expected result: {' and '.join(off)}"
        out.append(f"[{case.n}] {case.id} ({case.group}) -- {tag}: {case.what}")
        out.append(f"    {case.rfc}")
        if case.unbound:
            out.append(f"    Unbound: {case.unbound}")
        for r in rows:
            flag = "" if r["agree"] else "   <-- differs"
            out.append(f"    ? {r['q']}{flag}")
            out.append(f"      hopdns   {r['h'].show()}  ({r['h'].ms:.0f} ms)")
            out.append(f"      unbound  {r['u'].show()}  ({r['u'].ms:.0f} ms)")
            out.append(f"      expected {show_expect(case, r['expect'])}"
                       + (f"  [{r['note']}]" if r["note"] else ""))
            if r.get("trace"):
                out.append(f"      hopdns trace (cold cache): {r['trace']}")
        out.append("")
    if unmet:
        out.append("Not tested this run (the resolver chose the good server every time; "
                   "its 'ok' says nothing about the bad one):")
        out += [f"    {u}" for u in unmet]
        out.append("")
    skipped = sum(r["h"].rcode == "SKIPPED" for rows in results for r in rows)
    if skipped:
        out.append(f"WARNING: {skipped} questions skipped: the run passed its {BUDGET:.0f} s "
                   "budget (DIFF_BUDGET)")
    dead = [n for n, a in alive.items() if not a]
    if dead:
        out.append(f"WARNING: exited during the run: {', '.join(dead)}")
    for who, idx in (("hopdns", 3), ("unbound", 4)):
        wrong = [c.id for c, *rest in diffs if rest[idx - 1] is False]
        out.append(f"{who} off the expected result ({len(wrong)}): {', '.join(wrong) or '-'}")
    out.append(f"{len(chosen)} cases, {sum(len(r) for r in results)} questions, "
               f"{elapsed:.0f} s; against the expected result ({judged} cases): "
               f"hopdns {h_right} right, unbound {u_right} right")
    out.append(f"{agree} agree, {differ} differ")
    text = "\n".join(out)
    print(text)
    if md_path:
        with open(md_path, "w") as f:
            f.write(f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}:\n\n"
                    f"```\n{text}\n```\n")


def unbound_version() -> str:
    try:
        out = subprocess.run([UNBOUND, "-V"], capture_output=True, text=True, timeout=5).stdout
        return out.split()[1]
    except Exception:  # noqa: BLE001
        return "?"


if __name__ == "__main__":
    sys.exit(main())
