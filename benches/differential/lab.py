"""The lab model: zones, servers with quirks, scripted replies, and the authoritative engine.

Shared by auth.py (which serves it) and diff.py (which asks the resolvers about it). Every case
gets its own zone `<case-id>.lab.` and its own addresses 127.55.<n>.<k>, so one case's cache
entries and server-health records never touch another's. 127.55.0.x holds the root and `lab.`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone

NET = "127.55"
ROOTS = {"a.root-servers.net.": f"{NET}.0.1", "b.root-servers.net.": f"{NET}.0.2"}
TLD_SERVERS = {"ns1.nic.lab.": f"{NET}.0.10", "ns2.nic.lab.": f"{NET}.0.11"}
UNBOUND_ADDR = f"{NET}.0.53"
HOPDNS_ADDR = f"{NET}.0.54"

IN = dns.rdataclass.IN


def soa(minimum: int = 300, ttl: int = 3600) -> str:
    return f"@ {ttl} SOA ns1 hostmaster 1 3600 600 86400 {minimum}"


@dataclass
class R:
    """A scripted reply. Record lines are `name ttl TYPE rdata`, names relative to the case zone
    (absolute when they end in a dot); `{z}`, `{id}` and `{a}` are filled in per case."""

    rcode: str = "NOERROR"
    aa: bool | None = None  # None: the server's own AA habit
    an: list[str] = field(default_factory=list)
    ns: list[str] = field(default_factory=list)
    ar: list[str] = field(default_factory=list)


@dataclass
class Z:
    """A zone of a case. `origin` like "{z}" (the case zone), "sub.{z}" or "{id}-h.lab.".
    `ns`: numbers k of the servers (address {a}.k) that serve it; unless `auto_ns` is off, the
    apex gets `NS ns<k>` + `ns<k> A {a}.k` for each and the parent zone gets the same as a
    delegation with glue (or `parent_ns`: list of (NS name, glue address or None))."""

    origin: str
    text: str = ""
    ns: list[int] = field(default_factory=lambda: [1])
    auto_ns: bool = True
    parent_ns: list[tuple[str, str | None]] | None = None
    soa_min: int = 300
    soa_ttl: int = 3600


@dataclass
class S:
    """Server quirks for address {a}.k.
    aa: set AA on authoritative data (False: never). ra: set RA. case: None, "lower", "upper",
    "random" (the question section as sent back), "lower-all" (question and every owner name).
    silent: never answers. rcode: answer everything with this rcode. soa_raw: negative answers
    carry the SOA with its own TTL instead of min(TTL, MINIMUM). over: {(name, TYPE or "*"): R}
    scripted replies that win over the zone data (name "*" matches every name)."""

    aa: bool = True
    ra: bool = False
    case: str | None = None
    silent: bool = False
    rcode: str | None = None
    soa_raw: bool = False
    over: dict = field(default_factory=dict)  # value R, or a list [R or None, ...]: the
    # n-th question from one resolver gets the n-th item (the last repeats; None: zone data)


@dataclass
class Exp:
    """What a reply should hold: rcode and answer records (`name TYPE rdata`, relative to the
    case zone). ordered: the answer's RRsets must come in this order (DNAME cases). ttl:
    expected TTL of the answer's last RRset; neg_ttl: of the SOA in the authority section."""

    rcode: str
    answer: list[str] = field(default_factory=list)
    ordered: bool = False
    ttl: int | None = None
    neg_ttl: int | None = None
    max_ms: int | None = None  # slower than this is wrong too (the case group: one round trip)


@dataclass
class Q:
    name: str
    qtype: str = "A"
    expect: Exp | None = None
    note: str = ""


@dataclass
class Case:
    id: str
    rfc: str
    what: str
    zones: list[Z]
    servers: dict[int, S]
    ask: list[Q]
    unbound: str = ""  # where Unbound is wrong by an RFC, or differs from the expected result
    bad: list[int] = field(default_factory=list)  # servers the case is about, beside good ones
    group: str = ""
    n: int = 0  # set by the table: the third octet of its addresses

    def fill(self, s: str) -> str:
        a = f"{NET}.{self.n}"
        return s.replace("{z}", self.zone).replace("{id}", self.id).replace("{a}", a)

    @property
    def zone(self) -> str:
        return f"{self.id}.lab."

    def origin(self) -> dns.name.Name:
        return dns.name.from_text(self.zone)


def _name(text: str, origin: dns.name.Name) -> dns.name.Name:
    return dns.name.from_text(text, origin)


def parse_records(lines: list[str], origin: dns.name.Name) -> list[dns.rrset.RRset]:
    """`name ttl TYPE rdata` lines -> RRsets in order of first appearance."""
    out: list[dns.rrset.RRset] = []
    for line in lines:
        name, ttl, rtype, rdata = line.split(None, 3)
        owner = _name(name, origin)
        rd = dns.rdata.from_text(IN, dns.rdatatype.from_text(rtype), rdata, origin=origin,
                                 relativize=False)
        for rs in out:
            if rs.name == owner and rs.rdtype == rd.rdtype:
                rs.add(rd)
                break
        else:
            rs = dns.rrset.RRset(owner, IN, rd.rdtype)
            rs.add(rd)
            rs.ttl = int(ttl)  # as written, top bit and all
            out.append(rs)
    return out


class Zone:
    """One zone's data and the RFC 1034 §4.3.2 lookup (with RFC 4592 wildcards and RFC 6672
    DNAME, server side §3.1)."""

    def __init__(self, origin: dns.name.Name, text: str):
        self.origin = origin
        self.z = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
        self.names = set(self.z.nodes.keys())

    def soa_rrset(self, raw: bool) -> dns.rrset.RRset:
        rds = self.z.find_rdataset(self.origin, "SOA")
        rs = dns.rrset.RRset(self.origin, IN, dns.rdatatype.SOA)
        rs.update(rds)
        rs.ttl = rds.ttl if raw else min(rds.ttl, rds[0].minimum)
        return rs

    def rrset(self, name, rdtype):
        node = self.z.nodes.get(name)
        if node is None:
            return None
        rds = node.get_rdataset(IN, rdtype)
        if rds is None:
            return None
        rs = dns.rrset.RRset(name, IN, rdtype)
        rs.update(rds)
        rs.ttl = rds.ttl
        return rs

    def exists(self, name) -> bool:
        if name in self.names:
            return True
        return any(n.is_subdomain(name) for n in self.names)  # empty non-terminal

    def addresses(self, name) -> list[dns.rrset.RRset]:
        found = (self.rrset(name, t) for t in (dns.rdatatype.A, dns.rdatatype.AAAA))
        return [rs for rs in found if rs is not None]

    def glue(self, ns_rrset) -> list[dns.rrset.RRset]:
        return [a for rd in ns_rrset for a in self.addresses(rd.target)]

    def lookup(self, qname, qtype, raw_soa=False, depth=0):
        """-> (rcode, authoritative, answer, authority, additional)."""
        an: list = []
        # Walk down from the apex: the first cut (NS below the apex) or DNAME above qname wins.
        labels = qname.relativize(self.origin).labels if qname != self.origin else ()
        for i in range(len(labels) - 1, -1, -1):
            n = dns.name.Name(labels[i:]).derelativize(self.origin)
            ns = self.rrset(n, dns.rdatatype.NS)
            if ns is not None and not (n == qname and qtype == dns.rdatatype.DS):
                return ("NOERROR", False, [], [ns], self.glue(ns))
            dname = self.rrset(n, dns.rdatatype.DNAME)
            if dname is not None and n != qname:
                prefix = qname.relativize(n)
                try:
                    target = prefix.derelativize(dname[0].target)
                except dns.name.NameTooLong:
                    return ("YXDOMAIN", True, [dname], [], [])  # RFC 6672 §2.2
                cname = dns.rrset.from_text(qname, dname.ttl, IN, "CNAME", target.to_text())
                rest = self._chase(target, qtype, raw_soa, depth)
                return (rest[0], True, [dname, cname] + rest[2], rest[3], rest[4])
        node_exists = qname in self.names
        if node_exists:
            rs = self.rrset(qname, qtype)
            if rs is not None:
                # Addresses of NS and MX targets go along, as real servers send them (the
                # root's answer to the priming query carries them: RFC 8109 §4.1).
                extra = self.glue(rs) if qtype == dns.rdatatype.NS else []
                if qtype == dns.rdatatype.MX:
                    extra = [a for rd in rs for a in self.addresses(rd.exchange)]
                return ("NOERROR", True, [rs], [], extra)
            cn = self.rrset(qname, dns.rdatatype.CNAME)
            if cn is not None and qtype != dns.rdatatype.CNAME:
                rest = self._chase(cn[0].target, qtype, raw_soa, depth)
                return (rest[0], True, [cn] + rest[2], rest[3], rest[4])
            return ("NOERROR", True, [], [self.soa_rrset(raw_soa)], [])
        if self.exists(qname):
            return ("NOERROR", True, [], [self.soa_rrset(raw_soa)], [])
        # Wildcard at the closest encloser (RFC 4592 §3.3.1).
        ce = qname.parent()
        while not self.exists(ce) and ce != self.origin:
            ce = ce.parent()
        wild = dns.name.Name((b"*",) + ce.labels)
        if wild in self.names:
            rs = self.rrset(wild, qtype)
            if rs is not None:
                syn = dns.rrset.RRset(qname, IN, qtype)
                syn.update(rs)
                syn.ttl = rs.ttl
                return ("NOERROR", True, [syn], [], [])
            cn = self.rrset(wild, dns.rdatatype.CNAME)
            if cn is not None:
                syn = dns.rrset.from_text(qname, cn.ttl, IN, "CNAME", cn[0].target.to_text())
                rest = self._chase(cn[0].target, qtype, raw_soa, depth)
                return (rest[0], True, [syn] + rest[2], rest[3], rest[4])
            return ("NOERROR", True, [], [self.soa_rrset(raw_soa)], [])
        return ("NXDOMAIN", True, [], [self.soa_rrset(raw_soa)], [])

    def _chase(self, target, qtype, raw_soa, depth):
        """Follow a CNAME/DNAME target while it stays in this zone (RFC 1034 §4.3.2 step 3a)."""
        if depth > 8 or not target.is_subdomain(self.origin):
            return ("NOERROR", True, [], [], [])
        rc, _, an, ns, ar = self.lookup(target, qtype, raw_soa, depth + 1)
        if ns and ns[0].rdtype == dns.rdatatype.NS:  # the target is below a cut: stop there
            return ("NOERROR", True, an, [], [])
        return (rc, True, an, ns, ar)


@dataclass
class Server:
    addr: str
    quirks: S
    zones: list[Zone]
    origin: dns.name.Name  # the case zone, for scripted replies
    case: Case | None


def _case_flip(name: dns.name.Name, mode: str, rng: random.Random) -> dns.name.Name:
    labels = []
    for lab in name.labels:
        s = lab.decode("latin-1")
        if mode.startswith("lower"):
            s = s.lower()
        elif mode == "upper":
            s = s.upper()
        else:
            s = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in s)
        labels.append(s.encode("latin-1"))
    return dns.name.Name(labels)


ASKED: dict[tuple, int] = {}  # (client, server, qname, qtype) -> questions so far


def answer(server: Server, query: dns.message.Message, rng: random.Random, client: str = ""):
    """The reply `server` sends to `query` from `client`, or None to stay silent."""
    q = server.quirks
    if q.silent or not query.question:
        return None
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    key = (client, server.addr, qname, qtype)  # Name hashes and compares case-insensitively
    nth = ASKED.get(key, 0)
    ASKED[key] = nth + 1
    resp = dns.message.make_response(query)
    resp.flags &= ~dns.flags.AA
    if q.ra:
        resp.flags |= dns.flags.RA
    if q.rcode:
        resp.set_rcode(dns.rcode.from_text(q.rcode))
        return _finish(resp, q, qname, rng)
    scripted = None
    case = server.case
    for want in ((qname, qtype), (qname, None), (None, qtype), (None, None)):
        for (n, t), r in q.over.items():
            kn = None if n == "*" else _name(case.fill(n), server.origin)
            kt = None if t == "*" else dns.rdatatype.from_text(t)
            if kn == want[0] and kt == want[1]:
                scripted = r
                break
        if scripted:
            break
    if isinstance(scripted, list):
        scripted = scripted[min(nth, len(scripted) - 1)]
    if scripted is not None:
        resp.set_rcode(dns.rcode.from_text(scripted.rcode))
        aa = q.aa if scripted.aa is None else scripted.aa
        if aa:
            resp.flags |= dns.flags.AA
        fill = lambda x: case.fill(x).replace("{q}", qname.to_text())  # noqa: E731
        resp.answer = parse_records([fill(x) for x in scripted.an], server.origin)
        resp.authority = parse_records([fill(x) for x in scripted.ns], server.origin)
        resp.additional = parse_records([fill(x) for x in scripted.ar], server.origin)
        return _finish(resp, q, qname, rng)
    zone = None
    for z in server.zones:
        if qname.is_subdomain(z.origin) and (zone is None or z.origin.is_subdomain(zone.origin)):
            zone = z
    if zone is None:
        resp.set_rcode(dns.rcode.REFUSED)
        return _finish(resp, q, qname, rng)
    rc, auth, an, ns, ar = zone.lookup(qname, qtype, raw_soa=q.soa_raw)
    resp.set_rcode(dns.rcode.from_text(rc))
    if auth and q.aa:
        resp.flags |= dns.flags.AA
    resp.answer, resp.authority, resp.additional = an, ns, ar
    return _finish(resp, q, qname, rng)


def _finish(resp, q: S, qname, rng):
    # Owner names equal to the question take its exact case, as name compression does on
    # real servers (so a 0x20 resolver sees its own case echoed back).
    for rs in resp.answer:
        if rs.name == qname:
            rs.name = qname
    if q.case:
        flipped = _case_flip(qname, q.case, rng)
        resp.question[0].name = flipped
        if q.case == "lower-all":
            for sec in (resp.answer, resp.authority, resp.additional):
                for rs in sec:
                    rs.name = _case_flip(rs.name, "lower", rng)
    return resp


def root_zone_text() -> str:
    lines = ["@ 86400 SOA a.root-servers.net. hostmaster.root. 1 1800 900 604800 86400"]
    for n, a in ROOTS.items():
        lines += [f"@ 518400 NS {n}", f"{n} 518400 A {a}"]
    for n, a in TLD_SERVERS.items():
        lines += [f"lab. 172800 NS {n}", f"{n} 172800 A {a}"]
    return "\n".join(lines) + "\n"


def root_hints() -> str:
    out = []
    for n, a in ROOTS.items():
        out += [f".\t3600000\tNS\t{n}", f"{n}\t3600000\tA\t{a}"]
    return "\n".join(out) + "\n"


def build(cases: list[Case]) -> dict[str, Server]:
    """All servers of the lab, by address."""
    root = dns.name.root
    tld = dns.name.from_text("lab.")
    lab_lines = ["@ 86400 SOA ns1.nic.lab. hostmaster.nic.lab. 1 1800 900 604800 300"]
    for n, a in TLD_SERVERS.items():
        lab_lines += [f"@ 172800 NS {n}", f"{n} 172800 A {a}"]
    servers: dict[str, Server] = {}
    root_zone = Zone(root, root_zone_text())
    for a in ROOTS.values():
        servers[a] = Server(a, S(), [root_zone], root, None)

    for case in cases:
        origin = case.origin()
        texts: dict[str, list[str]] = {}
        for z in case.zones:
            zo = case.fill(z.origin)
            lines = [] if "SOA" in z.text else [soa(z.soa_min, z.soa_ttl)]
            if z.auto_ns:
                for k in z.ns:
                    lines += [f"@ 3600 NS ns{k}", f"ns{k} 3600 A {case.fill('{a}')}.{k}"]
            lines += [case.fill(x) for x in z.text.strip().splitlines() if x.strip()]
            texts[zo] = lines
        # Delegations into each zone, from the case zone or from lab.
        for z in case.zones:
            zo = case.fill(z.origin)
            zname = dns.name.from_text(zo)
            parent = zname.parent()
            if z.parent_ns is not None:
                deleg = [(case.fill(n), case.fill(a) if a else None) for n, a in z.parent_ns]
            else:
                deleg = [(f"ns{k}.{zo}", f"{case.fill('{a}')}.{k}") for k in z.ns]
            target = lab_lines if parent == tld else texts.get(parent.to_text())
            if target is None:
                raise ValueError(f"{case.id}: no parent zone for {zo}")
            for n, a in deleg:
                target.append(f"{zo} 3600 NS {n}")
                if a:
                    target.append(f"{n} 3600 A {a}")
        zones = {zo: Zone(dns.name.from_text(zo), "\n".join(lines) + "\n")
                 for zo, lines in texts.items()}
        numbers = set(case.servers) | {k for z in case.zones for k in z.ns}
        for k in sorted(numbers):
            quirks = case.servers.get(k, S())
            addr = f"{NET}.{case.n}.{k}"
            served = [zones[case.fill(z.origin)] for z in case.zones if k in z.ns]
            servers[addr] = Server(addr, quirks, served, origin, case)
    lab_zone = Zone(tld, "\n".join(lab_lines) + "\n")
    for a in TLD_SERVERS.values():
        servers[a] = Server(a, S(), [lab_zone], tld, None)
    return servers
