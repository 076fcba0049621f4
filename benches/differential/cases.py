"""The case table: each case is a small zone (or a few) with misbehaving servers, the questions
asked, the RFC section the expected result comes from, and, where Unbound does not follow it,
the section it breaks (field `unbound`). Written from the RFCs, one group per behaviour of
issue 10.

Addresses: case number n (its position below, from 1) owns 127.55.n.0/24; server k is
127.55.n.k. Names in zones, replies and expectations are relative to the case zone
`<id>.lab.` (`{z}`); `{id}-h.lab.` and `{id}-x.lab.` are helper zones of the case; `{a}` is
127.55.n; `{q}` in a scripted reply is the question name as the resolver sent it.
Expectation None means the RFCs leave the result open: the case only compares the resolvers.
"""

from lab import Case, Exp, Q, R, S, Z

W = "www 300 A 192.0.2.1"
W3 = "www1 300 A 192.0.2.1\nwww2 300 A 192.0.2.1\nwww3 300 A 192.0.2.1"
SOA_R = "@ 300 SOA ns1 hostmaster 1 3600 600 86400 300"  # for scripted negative replies
ROOT_REF = [". 518400 NS a.root-servers.net.", ". 518400 NS b.root-servers.net."]
ROOT_GLUE = ["a.root-servers.net. 518400 A 127.55.0.1", "b.root-servers.net. 518400 A 127.55.0.2"]


def ok(*records: str, **kw) -> Exp:
    return Exp("NOERROR", list(records), **kw)


NODATA = Exp("NOERROR", [])
NXDOMAIN = Exp("NXDOMAIN", [])
SERVFAIL = Exp("SERVFAIL", [])
A1 = ok("www A 192.0.2.1")


def three(prefix: str = "www") -> list[Q]:
    """Three names, so that a resolver choosing servers at random meets the bad one."""
    return [Q(f"{prefix}{i}", "A", ok(f"{prefix}{i} A 192.0.2.1")) for i in (1, 2, 3)]


def one(id, rfc, what, text=W, quirks=None, ask=None, unbound="", **zkw) -> Case:
    """A case with one zone served by one server (number 1)."""
    return Case(id, rfc, what, [Z("{z}", text, **zkw)], {1: quirks or S()},
                ask or [Q("www", "A", A1)], unbound)


ZONE_NS = ["@ 3600 NS ns1", "@ 3600 NS ns.{id}-h.lab."]  # the NS set of two()'s zone


def two(id, rfc, what, bad: S, text=W3, ask=None, unbound="") -> Case:
    """A zone with a misbehaving server 1 (ns1, with glue) beside a good server 2 (ns.{id}-h.lab.,
    glueless; its address is server 3's data). Both resolvers ask a server whose address they
    hold before they look up a glueless one, so every run meets the bad server first; with two
    glued servers the first pick is random, and once the good one is measured the bad one is
    never asked again, so half the runs would not test the case at all."""
    zone = Z("{z}", "\n".join(ZONE_NS) + "\nns1 3600 A {a}.1\n" + text, auto_ns=False,
             ns=[1, 2], parent_ns=[("ns1.{z}", "{a}.1"), ("ns.{id}-h.lab.", None)])
    helper = Z("{id}-h.lab.", "ns 3600 A {a}.2", ns=[3])
    return Case(id, rfc, what, [zone, helper], {1: bad, 2: S(), 3: S()},
                ask or three(), unbound, bad=[1])


NONAA = S(aa=False)
RECLAME = S(aa=False, ra=True)

# -- 1. Answers without AA (RFC 1034 §5.3.3 step 4a answers, 4b referrals, 4c CNAMEs, 4d
#    "server failure or other bizarre contents": next server. RFC 2181 §5.4.1 ranks non-AA answer
#    data lower but still data for the question).
nonaa = [
    one("nonaa-a", "RFC 1034 §5.3.3 step 4a; RFC 2181 §5.4.1",
        "the zone's only server answers A without AA", quirks=NONAA),
    one("nonaa-aaaa", "RFC 1034 §5.3.3 step 4a; RFC 2181 §5.4.1",
        "AAAA answered without AA", "www 300 AAAA 2001:db8::1", NONAA,
        [Q("www", "AAAA", ok("www AAAA 2001:db8::1"))]),
    one("nonaa-mx", "RFC 1034 §5.3.3 step 4a",
        "MX (with its target's A as additional data) answered without AA",
        "@ 300 MX 10 mail\nmail 300 A 192.0.2.25", NONAA, [Q("@", "MX", ok("@ MX 10 mail"))]),
    one("nonaa-cname-inzone", "RFC 1034 §5.3.3 step 4c, §4.3.2 step 3a",
        "non-AA reply with a CNAME and its in-zone target's A",
        "www 300 CNAME web\nweb 300 A 192.0.2.1", NONAA,
        [Q("www", "A", ok("www CNAME web", "web A 192.0.2.1"))]),
    one("nonaa-cname-alone", "RFC 1034 §5.3.3 step 4c",
        "non-AA reply with only a CNAME to a name of the same zone",
        "www 300 CNAME web\nweb 300 A 192.0.2.1",
        S(aa=False, over={("www", "A"): R(an=["www 300 CNAME web"])}),
        [Q("www", "A", ok("www CNAME web", "web A 192.0.2.1"))]),
    Case("nonaa-cname-out", "RFC 1034 §5.3.3 step 4c",
         "non-AA CNAME to a name in another zone",
         [Z("{z}", "www 300 CNAME www.{id}-h.lab."), Z("{id}-h.lab.", W, ns=[2])],
         {1: NONAA},
         [Q("www", "A", ok("www CNAME www.{id}-h.lab.", "www.{id}-h.lab. A 192.0.2.1"))]),
    Case("cname-deleg-aa", "RFC 1034 §5.3.3 step 4c (the CNAME answers; the NS set is a hint)",
         "AA CNAME whose reply also delegates the target's zone in the authority section",
         [Z("{z}", "www 300 CNAME x.sub"), Z("sub.{z}", "x 300 A 192.0.2.1", ns=[2])],
         {1: S(over={("www", "A"): R(an=["www 300 CNAME x.sub"], ns=["sub 3600 NS ns2.sub"],
                                     ar=["ns2.sub 3600 A {a}.2"])})},
         [Q("www", "A", ok("www CNAME x.sub", "x.sub A 192.0.2.1"))]),
    Case("cname-deleg-nonaa", "RFC 1034 §5.3.3 step 4c",
         "non-AA CNAME whose reply also delegates the target's zone",
         [Z("{z}", "www 300 CNAME x.sub"), Z("sub.{z}", "x 300 A 192.0.2.1", ns=[2])],
         {1: S(aa=False, over={("www", "A"): R(an=["www 300 CNAME x.sub"],
                                               ns=["sub 3600 NS ns2.sub"],
                                               ar=["ns2.sub 3600 A {a}.2"])})},
         [Q("www", "A", ok("www CNAME x.sub", "x.sub A 192.0.2.1"))]),
    Case("glueless-nonaa", "RFC 1034 §5.3.3 step 4b + 4a; RFC 2181 §5.4.1",
         "glueless NS whose address comes from a server that answers without AA",
         [Z("{z}", "@ 3600 NS ns.{id}-h.lab.\n" + W, auto_ns=False,
            parent_ns=[("ns.{id}-h.lab.", None)]),
          Z("{id}-h.lab.", "ns 3600 A {a}.1", ns=[2])],
         {1: S(), 2: NONAA}, [Q("www", "A", A1)]),
    Case("glueless-nonaa-both", "RFC 1034 §5.3.3 step 4a; RFC 2181 §5.4.1",
         "glueless NS answered without AA, and the zone's server too",
         [Z("{z}", "@ 3600 NS ns.{id}-h.lab.\n" + W, auto_ns=False,
            parent_ns=[("ns.{id}-h.lab.", None)]),
          Z("{id}-h.lab.", "ns 3600 A {a}.1", ns=[2])],
         {1: NONAA, 2: NONAA}, [Q("www", "A", A1)]),
    one("nonaa-answer-with-ns", "RFC 1034 §5.3.3 step 4a",
        "non-AA answer that also carries the zone's own NS set (no RA)",
        quirks=S(aa=False, over={("www", "A"): R(an=[W], ns=["@ 3600 NS ns1"])})),
]

U_NOSOA = ("1.17 answers the repeat from its cache (one query in the lab's log); RFC 2308 §5: "
           "negative answers without SOA SHOULD NOT be cached")

# -- 2. Negative answers without AA, and empty replies (RFC 2308 §2.1, §2.2).
neg = [
    one("nonaa-nxdomain-soa", "RFC 2308 §2.1; RFC 1034 §5.3.3 step 4a",
        "NXDOMAIN with the zone's SOA, AA clear", quirks=NONAA, ask=[Q("nope", "A", NXDOMAIN)]),
    one("nonaa-nodata-soa", "RFC 2308 §2.2",
        "NODATA with the zone's SOA, AA clear", quirks=NONAA, ask=[Q("www", "AAAA", NODATA)]),
    one("aa-nxdomain-nosoa", "RFC 2308 §2.1 (NXDOMAIN type 3)",
        "AA NXDOMAIN with an empty authority section",
        quirks=S(over={("nope", "*"): R("NXDOMAIN")}), ask=[Q("nope", "A", NXDOMAIN)]),
    one("nonaa-nxdomain-nosoa", "RFC 2308 §2.1; RFC 1034 §5.3.3 step 4a",
        "non-AA NXDOMAIN with an empty authority section",
        quirks=S(aa=False, over={("nope", "*"): R("NXDOMAIN")}), ask=[Q("nope", "A", NXDOMAIN)]),
    one("aa-nodata-nosoa", "RFC 2308 §2.2 (NODATA type 3: no SOA, no NS)",
        "AA empty NOERROR with neither SOA nor NS",
        quirks=S(over={("www", "AAAA"): R()}), ask=[Q("www", "AAAA", NODATA)]),
    one("nonaa-nodata-nosoa", "RFC 2308 §2.2 (open: non-AA and no SOA; do what peers do)",
        "non-AA empty NOERROR with neither SOA nor NS, the zone's only server",
        quirks=S(aa=False, over={("www", "AAAA"): R()}), ask=[Q("www", "AAAA", None)]),
    one("aa-nodata-nosoa-cache", "RFC 2308 §5 (no SOA: SHOULD NOT be cached)",
        "AA empty NOERROR without SOA on the first question only; the data is there after",
        W + "\nwww 300 AAAA 2001:db8::1", S(over={("www", "AAAA"): [R(), None]}),
        [Q("www", "AAAA", None, "the first reply is empty: NODATA, or ask again"),
         Q("www", "AAAA", ok("www AAAA 2001:db8::1"))], U_NOSOA),
    one("nonaa-nodata-nosoa-cache", "RFC 2308 §5 (no SOA: SHOULD NOT be cached)",
        "the same without AA", W + "\nwww 300 AAAA 2001:db8::1",
        S(over={("www", "AAAA"): [R(aa=False), None]}),
        [Q("www", "AAAA", None, "the first reply is empty: NODATA, or ask again"),
         Q("www", "AAAA", ok("www AAAA 2001:db8::1"))], U_NOSOA),
    one("aa-nxdomain-nosoa-cache", "RFC 2308 §5 (no SOA: SHOULD NOT be cached)",
        "AA NXDOMAIN without SOA on the first question only; the name exists after",
        W + "\nnew 300 A 192.0.2.1", S(over={("new", "*"): [R("NXDOMAIN"), None]}),
        [Q("new", "A", NXDOMAIN), Q("new", "A", ok("new A 192.0.2.1"))], U_NOSOA),
    two("nonaa-empty-beside-good", "RFC 1034 §5.3.3 step 4d; RFC 2308 §2.2",
        "server 1 answers every question with a non-AA empty NOERROR (no SOA, no NS); "
        "server 2 has the data", S(aa=False, over={("*", "*"): R()}),
        unbound="1.17 takes the empty non-AA reply as NODATA when it asks server 1 first; "
        "Unbound 1.19 (fix for its issue #946, EMPTY_NODATA_RETRY_COUNT) tries the other "
        "servers first"),
]

# -- 3. Recursion-lame servers: RA set, AA clear, answering from "cache".
reclame = [
    one("reclame-only", "RFC 1034 §5.3.3 step 4a (issue 10 item 3: use it when alone)",
        "the zone's only server is recursion-lame (RA, no AA, NS set in authority)",
        quirks=S(aa=False, ra=True, over={("www", "A"): R(an=[W], ns=["@ 3600 NS ns1"])})),
    one("reclame-only-plain", "RFC 1034 §5.3.3 step 4a",
        "the only server answers with RA and without AA, answer section only", quirks=RECLAME),
    two("reclame-stale-beside-good", "RFC 1034 §5.3.3 step 4a; RFC 2181 §5.4.1 (prefer AA)",
        "server 1 is recursion-lame with a stale address (192.0.2.99); server 2 is good",
        S(aa=False, ra=True, over={("*", "A"): R(an=["{q} 300 A 192.0.2.99"], ns=ZONE_NS)})),
    two("reclame-same-beside-good", "RFC 1034 §5.3.3 step 4a",
        "server 1 is recursion-lame with the right data; server 2 is good", RECLAME),
    one("reclame-nxdomain-only", "RFC 2308 §2.1 (issue 10 item 3)",
        "the only server is recursion-lame and says NXDOMAIN with SOA", quirks=RECLAME,
        ask=[Q("nope", "A", NXDOMAIN)]),
    two("reclame-nodata-beside-good", "RFC 1034 §5.3.3 step 4d; RFC 2181 §5.4.1",
        "server 1 is recursion-lame and says NODATA (SOA, no AA) for everything; server 2 has "
        "the data", S(aa=False, ra=True, over={("*", "*"): R(ns=[SOA_R])})),
    two("reclame-rootref-beside-good", "RFC 1034 §5.3.3 step 4d",
        "server 1 is recursion-lame and refers to the root (old BIND habit); server 2 good",
        S(aa=False, ra=True, over={("*", "*"): R(ns=ROOT_REF, ar=ROOT_GLUE)})),
]

# -- 4. Upward referral inside a negative answer (RFC 1034 §5.3.3 step 4b: a referral must be
#    closer to the answer; anything else is step 4d, "bizarre contents": next server).
upward = [
    two("upward-aa-beside-good", "RFC 1034 §5.3.3 step 4b/4d",
        "server 1: AA, empty answer, the root's NS set in authority; server 2 good",
        S(over={("*", "*"): R(ns=ROOT_REF, ar=ROOT_GLUE)})),
    one("upward-aa-only", "RFC 1034 §5.3.3 step 4d",
        "the only server gives AA + empty answer + the root's NS set",
        quirks=S(over={("*", "*"): R(ns=ROOT_REF, ar=ROOT_GLUE)}), ask=[Q("www", "A", SERVFAIL)]),
    two("upward-tld-beside-good", "RFC 1034 §5.3.3 step 4b/4d",
        "server 1: AA, empty answer, the parent lab.'s NS set; server 2 good",
        S(over={("*", "*"): R(ns=["lab. 172800 NS ns1.nic.lab."])})),
    one("upward-nonaa-only", "RFC 1034 §5.3.3 step 4d",
        "the only server gives a non-AA referral to the root",
        quirks=S(aa=False, over={("*", "*"): R(ns=ROOT_REF, ar=ROOT_GLUE)}),
        ask=[Q("www", "A", SERVFAIL)]),
]

# -- 5. Records of the wrong type only (RFC 1034 §4.3.2 step 3: data of another type at the
#    name is NODATA; RFC 2181 §5.4.1: data not asked for is not cached as an answer).
wrongtype = [
    one("wrongtype-aa", "RFC 1034 §4.3.2 step 3; RFC 2308 §2.2",
        "AAAA question, AA reply holding only an A record (192.0.2.66); then the A question",
        quirks=S(over={("www", "AAAA"): R(an=["www 300 A 192.0.2.66"])}),
        ask=[Q("www", "AAAA", NODATA), Q("www", "A", A1)]),
    one("wrongtype-nonaa", "RFC 1034 §4.3.2 step 3; RFC 2308 §2.2",
        "the same without AA",
        quirks=S(aa=False, over={("www", "AAAA"): R(an=["www 300 A 192.0.2.66"])}),
        ask=[Q("www", "AAAA", NODATA), Q("www", "A", A1)]),
    one("wrongtype-othername", "RFC 2181 §5.4.1; RFC 2308 §2.2",
        "TXT question answered with only an A record of another name; then that name's A",
        "www 300 TXT \"t\"\nother 300 A 192.0.2.1",
        S(over={("www", "TXT"): R(an=["other 300 A 192.0.2.66"])}),
        [Q("www", "TXT", None, "no TXT in the reply: NODATA, or SERVFAIL"),
         Q("other", "A", ok("other A 192.0.2.1"))]),
]

# -- 6. Parent glue against the child's own addresses (RFC 2181 §5.4.1 ranks the child's
#    authoritative data above glue, but the glue still reaches the zone when the child's
#    addresses do not).
CHILD9 = "@ 3600 NS ns1\nns1 3600 A {a}.9\n" + W3
glue = [
    Case("child-addr-dead", "RFC 2181 §5.4.1; RFC 1034 §5.3.3 step 3",
         "parent glue ns1 = .1 (works); the child says ns1 = .9, which never answers",
         [Z("{z}", CHILD9, auto_ns=False, parent_ns=[("ns1.{z}", "{a}.1")])],
         {1: S(), 9: S(silent=True)},
         [Q("ns1", "A", ok("ns1 A {a}.9"))] + three()[:2],
         unbound="1.17 keeps asking the child's dead address and gives no answer within 9 s "
         "(its parent-side glue is only a last resort)"),
    Case("child-addr-refused", "RFC 2181 §5.4.1; RFC 1034 §5.3.3 step 4d",
         "parent glue ns1 = .1; the child says ns1 = .9, which answers REFUSED",
         [Z("{z}", CHILD9, auto_ns=False, parent_ns=[("ns1.{z}", "{a}.1")])],
         {1: S(), 9: S(rcode="REFUSED")},
         [Q("ns1", "A", ok("ns1 A {a}.9"))] + three()[:2]),
    Case("child-addr-additional", "RFC 2181 §5.4.1",
         "the child sends its own ns1 = .9 (dead) as additional data with every answer",
         [Z("{z}", CHILD9, auto_ns=False, parent_ns=[("ns1.{z}", "{a}.1")])],
         {1: S(over={("ns1", "A"): R(an=["ns1 3600 A {a}.9"]),
                     ("*", "A"): R(an=["{q} 300 A 192.0.2.1"], ns=["@ 3600 NS ns1"],
                                   ar=["ns1 3600 A {a}.9"])}),
          9: S(silent=True)},
         three()),
    Case("child-ns-nxdomain", "RFC 2308 §2.1; RFC 2181 §5.4.1",
         "the child answers NXDOMAIN for its own name server's address; parent glue works",
         [Z("{z}", "@ 3600 NS ns1\n" + W3, auto_ns=False, parent_ns=[("ns1.{z}", "{a}.1")])],
         {1: S(over={("ns1", "*"): R("NXDOMAIN", ns=[SOA_R])})},
         [Q("ns1", "A", NXDOMAIN)] + three()[:2]),
    Case("child-ns-subdeleg", "RFC 2181 §5.4.1; RFC 1034 §5.3.3",
         "the child answers its name server's address with a sub-delegation to a dead server",
         [Z("{z}", "@ 3600 NS ns1\n" + W3, auto_ns=False, parent_ns=[("ns1.{z}", "{a}.1")])],
         {1: S(over={("ns1", "*"): R(aa=False, ns=["ns1 3600 NS ns1"], ar=["ns1 3600 A {a}.9"])}),
          9: S(silent=True)},
         [Q("ns1", "A", None, "the sub-delegation is dead: SERVFAIL is fair")] + three()[:2],
         unbound="1.17 gives no answer within 9 s for the zone's names once it holds the bogus "
         "sub-delegation of ns1, though the parent's glue (RFC 2181 §5.4.1) still reaches the "
         "zone"),
]

# -- 7. Self-referring servers (RFC 1034 §5.3.3 step 4b: a referral must get closer).
U_SELF = ("1.17 takes a non-AA referral to the zone it asked as NODATA (iter_resptype.c: NS "
          "set == zone -> ANSWER); RFC 2308 §2.2.1: NS without SOA is a referral, and RFC 1034 "
          "§5.3.3 step 4b: a referral must lead closer. Fixed upstream in 2026 (commit "
          "bc703c9, 'Fix lame server detection, for selfpointed glue records')")
SELF_REF = R(aa=False, ns=ZONE_NS, ar=["ns1 3600 A {a}.1"])
selfref = [
    two("selfref-beside-good", "RFC 1034 §5.3.3 step 4b/4d; RFC 2308 §2.2.1",
        "server 1 refers every question to its own zone (no AA); server 2 (glueless) good",
        S(aa=False, over={("*", "*"): SELF_REF}), unbound=U_SELF),
    two("selfref-aa-beside-good", "RFC 1034 §5.3.3 step 4b/4d; RFC 2308 §2.2.1",
        "server 1 refers every question to its own zone and sets AA; server 2 (glueless) good "
        "(RFC 2308 §2.2.1 tells NODATA from a referral by SOA and NS, not by AA)",
        S(over={("*", "*"): R(aa=True, ns=ZONE_NS, ar=["ns1 3600 A {a}.1"])}), unbound=U_SELF),
    one("selfref-only", "RFC 1034 §5.3.3 step 4d",
        "the only server refers every question to its own zone",
        quirks=S(aa=False, over={("*", "*"): R(ns=["@ 3600 NS ns1"], ar=["ns1 3600 A {a}.1"])}),
        ask=[Q("www", "A", SERVFAIL)], unbound=U_SELF),
]

# -- 8. DNAME (RFC 6672).
D = ("old 300 DNAME new\nnew 300 A 192.0.2.7\nwww.new 300 A 192.0.2.1\n"
     "a.new 300 A 192.0.2.1\nb.new 300 A 192.0.2.2")
DWWW = ok("old DNAME new", "www.old CNAME www.new", "www.new A 192.0.2.1", ordered=True)
L63 = "l" * 63
LONG_T = f"{L63}.{L63}.{L63}.{{id}}-h.lab."
X50 = "x" * 50
dname = [
    one("dname-fresh", "RFC 6672 §2.2, §3 (DNAME, then the synthesised CNAME, then data)",
        "DNAME old -> new, question below it", D, ask=[Q("www.old", "A", DWWW)]),
    one("dname-cache", "RFC 6672 §3 (a cached DNAME answers names below it too)",
        "two names below the DNAME, the second after the DNAME is cached", D,
        ask=[Q("a.old", "A", ok("old DNAME new", "a.old CNAME a.new", "a.new A 192.0.2.1",
                               ordered=True)),
             Q("b.old", "A", ok("old DNAME new", "b.old CNAME b.new", "b.new A 192.0.2.2",
                               ordered=True))]),
    one("dname-nocname", "RFC 6672 §3 (the resolver synthesises the CNAME)",
        "an old server sends the DNAME and the target's A but no CNAME", D,
        S(over={("www.old", "A"): R(an=["old 300 DNAME new", "www.new 300 A 192.0.2.1"])}),
        [Q("www.old", "A", DWWW)]),
    Case("dname-otherzone", "RFC 6672 §2.2, §3",
         "DNAME into another zone",
         [Z("{z}", "old 300 DNAME {id}-h.lab."), Z("{id}-h.lab.", W, ns=[2])], {1: S()},
         [Q("www.old", "A", ok("old DNAME {id}-h.lab.", "www.old CNAME www.{id}-h.lab.",
                               "www.{id}-h.lab. A 192.0.2.1", ordered=True))]),
    Case("dname-yxdomain", "RFC 6672 §2.2 (YXDOMAIN is the answer, with the DNAME)",
         "the rewritten name would pass 255 octets: the authority says YXDOMAIN",
         [Z("{z}", f"long 300 DNAME {LONG_T}"),
          Z("{id}-h.lab.", f"a.{L63}.{L63}.{L63} 300 A 192.0.2.1", ns=[2])], {1: S()},
         [Q(f"{X50}.long", "A", Exp("YXDOMAIN", [f"long DNAME {LONG_T}"])),
          Q("a.long", "A", ok(f"long DNAME {LONG_T}", f"a.long CNAME a.{LONG_T}",
                              f"a.{LONG_T} A 192.0.2.1", ordered=True))],
         ),
    one("dname-nonaa", "RFC 6672 §3; RFC 1034 §5.3.3 step 4c",
        "DNAME answer without AA", D, NONAA, [Q("www.old", "A", DWWW)]),
    one("dname-owner", "RFC 6672 §2 (a DNAME redirects the names below its owner, not the owner)",
        "question at the DNAME's owner", D, ask=[Q("old", "A", NODATA)]),
]

# -- 9. QNAME minimisation, relaxed (RFC 9156; RFC 8020 §2). b.{z} is an empty
#    non-terminal above a.b and c.b; a resolver's minimised query asks b.{z}.
QM = "a.b 300 A 192.0.2.1\nc.b 300 A 192.0.2.3"
QM_ASK = [Q("a.b", "A", ok("a.b A 192.0.2.1")), Q("c.b", "A", ok("c.b A 192.0.2.3"))]
QMIN = ("RFC 9156 §2.3 and its note on RFC 8020 (servers that answer NXDOMAIN for empty "
        "non-terminals)")


def ent(id, what, reply: R, rfc=QMIN, unbound=""):
    return one(id, rfc, what, QM, S(over={("b", "*"): reply}), list(QM_ASK), unbound)


qmin = [
    ent("qmin-ent-nx-aa-soa", "the empty non-terminal answers NXDOMAIN, AA, with SOA",
        R("NXDOMAIN", ns=[SOA_R])),
    ent("qmin-ent-nx-nonaa-soa", "the empty non-terminal answers NXDOMAIN, no AA, with SOA",
        R("NXDOMAIN", aa=False, ns=[SOA_R])),
    ent("qmin-ent-nx-aa-nosoa", "the empty non-terminal answers NXDOMAIN, AA, no SOA",
        R("NXDOMAIN")),
    ent("qmin-ent-nx-nonaa-nosoa", "the empty non-terminal answers NXDOMAIN, no AA, no SOA",
        R("NXDOMAIN", aa=False)),
    ent("qmin-ent-own-ns", "the minimised query is answered with the zone's own NS set (no AA)",
        R(aa=False, ns=["@ 3600 NS ns1"], ar=["ns1 3600 A {a}.1"]),
        "RFC 9156 §3 (no zone cut here: one label more)"),
    ent("qmin-ent-nonaa-soa", "the minimised query gets an empty non-AA answer with the SOA",
        R(aa=False, ns=[SOA_R]), "RFC 9156 §3; RFC 2308 §2.2"),
    ent("qmin-ent-refused", "the minimised query gets REFUSED (full names are answered)",
        R("REFUSED"), "RFC 9156 (relaxed mode: fall back to the full name)"),
    one("qmin-rfc8020-nx", "RFC 8020 §2; RFC 9156 §3",
        "a name below a name that does not exist", "x 300 A 192.0.2.1",
        ask=[Q("q.y.nx", "A", NXDOMAIN)]),
    one("qmin-rfc8020-cache", "RFC 8020 §2; RFC 2308 §5",
        "NXDOMAIN, then a name below it (from cache or asked again)", "x 300 A 192.0.2.1",
        ask=[Q("nx", "A", NXDOMAIN), Q("deep.nx", "A", NXDOMAIN)]),
    one("qmin-deep", "RFC 9156 §2.3 (limit on minimised steps)",
        "a name eight labels below the zone, empty non-terminals all the way",
        "a.b.c.d.e.f.g.h 300 A 192.0.2.1", ask=[Q("a.b.c.d.e.f.g.h", "A",
                                                   ok("a.b.c.d.e.f.g.h A 192.0.2.1"))]),
    one("qmin-below-cname", "RFC 1034 §3.6.2 (a CNAME applies to its owner only); RFC 9156 §3",
        "the minimised query meets a CNAME at an intermediate name",
        "alias 300 CNAME elsewhere\nelsewhere 300 A 192.0.2.9\nx.alias 300 A 192.0.2.1",
        ask=[Q("x.alias", "A", ok("x.alias A 192.0.2.1"))]),
]

# -- 10. Negative TTL = min(SOA TTL, SOA MINIMUM) (RFC 2308 §3, §5). These servers send the
#    SOA with its own TTL, as some do, so the resolver must take the minimum itself.
RAW = S(soa_raw=True)
negttl = [
    one("negttl-nx-minimum", "RFC 2308 §3, §5", "NXDOMAIN; SOA TTL 3600, MINIMUM 60",
        quirks=RAW, soa_min=60, ask=[Q("nope", "A", Exp("NXDOMAIN", neg_ttl=60))]),
    one("negttl-nodata-soattl", "RFC 2308 §3, §5", "NODATA; SOA TTL 30, MINIMUM 3600",
        quirks=RAW, soa_min=3600, soa_ttl=30,
        ask=[Q("www", "AAAA", Exp("NOERROR", neg_ttl=30))]),
    one("negttl-cache", "RFC 2308 §5", "NXDOMAIN twice; SOA TTL 3600, MINIMUM 60",
        quirks=RAW, soa_min=60, ask=[Q("nope", "A", Exp("NXDOMAIN", neg_ttl=60)),
                                     Q("nope", "A", Exp("NXDOMAIN", neg_ttl=60))]),
    one("negttl-capped", "RFC 2308 §5 (cap: both resolvers default to 3600)",
        "NXDOMAIN; SOA TTL and MINIMUM 86400", quirks=RAW, soa_min=86400, soa_ttl=86400,
        ask=[Q("nope", "A", Exp("NXDOMAIN", neg_ttl=3600))]),
]

# -- 11. TTLs with the top bit set: positive, capped (RFC 8767 §4, updating RFC 2181 §8).
U8767 = ("RFC 8767 §4: a TTL with the high-order bit set is positive, capped (Unbound follows "
         "the older RFC 2181 §8 and reads it as 0)")
ttl = [
    one("ttl-topbit", "RFC 8767 §4", "A with TTL 2147483649 (0x80000001)",
        "www 2147483649 A 192.0.2.1", ask=[Q("www", "A", ok("www A 192.0.2.1", ttl=86400))],
        unbound=U8767),
    one("ttl-allones", "RFC 8767 §4", "A with TTL 4294967295",
        "www 4294967295 A 192.0.2.1", ask=[Q("www", "A", ok("www A 192.0.2.1", ttl=86400))],
        unbound=U8767),
    one("ttl-max31", "RFC 2181 §8 (cap at the resolver's maximum)", "A with TTL 2147483647",
        "www 2147483647 A 192.0.2.1", ask=[Q("www", "A", ok("www A 192.0.2.1", ttl=86400))]),
    one("ttl-topbit-cache", "RFC 8767 §4", "TTL 0x80000001, asked twice (second from cache)",
        "www 2147483649 A 192.0.2.1", ask=[Q("www", "A", ok("www A 192.0.2.1", ttl=86400)),
                                           Q("www", "A", ok("www A 192.0.2.1", ttl=86400))],
        unbound=U8767),
]

# -- 12. Case in replies (RFC 4343 §2, §3: comparisons are case-insensitive; a 0x20
#    resolver must still accept these servers, draft-vixie-dnsext-dns0x20 §3).
FAST = 250  # ms: one extra round trip on loopback, far below the 400 ms first timeout
A1_FAST = ok("www A 192.0.2.1", max_ms=FAST)
case = [
    one("case-lower", "RFC 4343 §3 (issue 10 item 12: at most one extra round trip)",
        "the server lowercases the question", quirks=S(case="lower"), ask=[Q("www", "A", A1_FAST)]),
    one("case-random", "RFC 4343 §3", "the server randomises the question's case",
        quirks=S(case="random"), ask=[Q("www", "A", A1_FAST)]),
    one("case-upper", "RFC 4343 §3", "the server uppercases the question",
        quirks=S(case="upper"), ask=[Q("www", "A", A1_FAST)]),
    one("case-lower-all", "RFC 4343 §3", "the server lowercases the question and every owner",
        quirks=S(case="lower-all"), ask=[Q("www", "A", A1_FAST)]),
    Case("case-lower-referral", "RFC 4343 §3", "the parent that refers lowercases the question",
         [Z("{z}", ""), Z("sub.{z}", W, ns=[2])], {1: S(case="lower"), 2: S()},
         [Q("www.sub", "A", ok("www.sub A 192.0.2.1", max_ms=FAST))]),
    one("case-random-nx", "RFC 4343 §3; RFC 2308 §2.1", "random case, NXDOMAIN",
        quirks=S(case="random"), ask=[Q("nope", "A", Exp("NXDOMAIN", max_ms=FAST))]),
]

# -- 13. Wildcards (RFC 4592).
WZ = ("*.w 300 A 192.0.2.1\nhost.w 300 TXT \"here\"\nz.ent.w 300 A 192.0.2.9\n"
      "*.c 300 CNAME target\ntarget 300 A 192.0.2.5")
wild = [
    one("wild-a", "RFC 4592 §3.3.1", "a name matched by *.w", WZ,
        ask=[Q("x.w", "A", ok("x.w A 192.0.2.1"))]),
    one("wild-multilabel", "RFC 4592 §2.2.1, §3.3.1", "two labels below *.w's closest encloser",
        WZ, ask=[Q("a.b.w", "A", ok("a.b.w A 192.0.2.1"))]),
    one("wild-nodata", "RFC 4592 §3.3.2; RFC 2308 §2.2", "the wildcard has no AAAA", WZ,
        ask=[Q("x.w", "AAAA", NODATA)]),
    one("wild-existing", "RFC 4592 §2.2", "an existing name (TXT only) is not wildcard-matched",
        WZ, ask=[Q("host.w", "A", NODATA)]),
    one("wild-ent-block", "RFC 4592 §2.2.2 (an empty non-terminal blocks the wildcard)",
        "ent.w exists as an empty non-terminal", WZ,
        ask=[Q("ent.w", "A", NODATA), Q("q.ent.w", "A", NXDOMAIN)]),
    one("wild-cname", "RFC 4592 §3.3.1; RFC 1034 §4.3.2 step 3a", "*.c is a CNAME", WZ,
        ask=[Q("x.c", "A", ok("x.c CNAME target", "target A 192.0.2.5"))]),
    one("wild-nonaa", "RFC 4592 §3.3.1; RFC 1034 §5.3.3 step 4a", "wildcard answer without AA",
        WZ, NONAA, [Q("x.w", "A", ok("x.w A 192.0.2.1"))]),
]

# -- 14. Delegation cycles (RFC 1034 §5.3.3: bound the work; the answer is SERVFAIL).
cycle = [
    Case("cycle-two", "RFC 1034 §5.3.3", "zone and helper each name the other's server (glueless)",
         [Z("{z}", "@ 3600 NS ns.{id}-h.lab.\n" + W, auto_ns=False,
            parent_ns=[("ns.{id}-h.lab.", None)]),
          Z("{id}-h.lab.", "@ 3600 NS ns.{z}\nns 3600 A {a}.1", auto_ns=False, ns=[2],
            parent_ns=[("ns.{z}", None)])],
         {1: S(), 2: S()}, [Q("www", "A", SERVFAIL)]),
    one("cycle-self-glueless", "RFC 1034 §5.3.3", "the zone's only NS is inside it, without glue",
        "@ 3600 NS ns\nns 3600 A {a}.1\n" + W, auto_ns=False, parent_ns=[("ns.{z}", None)],
        ask=[Q("www", "A", SERVFAIL)]),
    Case("cycle-beside-good", "RFC 1034 §5.3.3 step 4d",
         "one NS has glue and works; the other sits in a cycle of two helper zones",
         [Z("{z}", "@ 3600 NS ns1\n@ 3600 NS ns.{id}-h.lab.\nns1 3600 A {a}.1\n" + W3,
            auto_ns=False, parent_ns=[("ns1.{z}", "{a}.1"), ("ns.{id}-h.lab.", None)]),
          Z("{id}-h.lab.", "@ 3600 NS ns.{id}-x.lab.\nns 3600 A {a}.1", auto_ns=False, ns=[2],
            parent_ns=[("ns.{id}-x.lab.", None)]),
          Z("{id}-x.lab.", "@ 3600 NS ns.{id}-h.lab.", auto_ns=False, ns=[3],
            parent_ns=[("ns.{id}-h.lab.", None)])],
         {1: S(), 2: S(), 3: S()}, three()[:2]),
]

# -- 15. The scrub stays strict (RFC 2181 §5.4.1: out-of-zone data is not believed).
HELP = [Z("{z}", W), Z("{id}-h.lab.", W, ns=[2])]
HELP_ASK = [Q("www", "A", A1), Q("www.{id}-h.lab.", "A", ok("www.{id}-h.lab. A 192.0.2.1"))]
scrub = [
    Case("poison-additional", "RFC 2181 §5.4.1 (out-of-zone additional data is ignored)",
         "non-AA answer with a forged A for another zone's name in the additional section",
         HELP, {1: S(aa=False, over={("www", "A"): R(an=[W],
                                                    ar=["www.{id}-h.lab. 300 A 192.0.2.66"])})},
         list(HELP_ASK)),
    Case("poison-answer", "RFC 2181 §5.4.1", "a forged A for another zone's name in the answer",
         HELP, {1: S(over={("www", "A"): R(an=[W, "www.{id}-h.lab. 300 A 192.0.2.66"])})},
         list(HELP_ASK)),
    Case("poison-authority-ns", "RFC 2181 §5.4.1",
         "a non-AA answer claims the other zone's NS set in its authority section",
         HELP, {1: S(aa=False, over={("www", "A"): R(an=[W], ns=["{id}-h.lab. 3600 NS ns1.{z}"])})},
         list(HELP_ASK)),
    Case("poison-cname-target", "RFC 2181 §5.4.1; RFC 1034 §5.3.3 step 4c (chase the target)",
         "non-AA CNAME to another zone, with a forged A for the target in the same answer",
         [Z("{z}", "www 300 CNAME www.{id}-h.lab."), Z("{id}-h.lab.", W, ns=[2])],
         {1: S(aa=False, over={("www", "A"): R(an=["www 300 CNAME www.{id}-h.lab.",
                                                   "www.{id}-h.lab. 300 A 192.0.2.66"])})},
         [Q("www", "A", ok("www CNAME www.{id}-h.lab.", "www.{id}-h.lab. A 192.0.2.1"))]),
    Case("poison-glue", "RFC 2181 §5.4.1 (glue for a name outside the referred zone is not used)",
         "a referral to sub.{z} with NS ns.{id}-h.lab. and forged glue pointing at a liar",
         [Z("{z}", ""),
          Z("sub.{z}", "@ 3600 NS ns.{id}-h.lab.\n" + W, auto_ns=False, ns=[2],
            parent_ns=[("ns.{id}-h.lab.", None)]),
          Z("{id}-h.lab.", "ns 3600 A {a}.2", ns=[3])],
         {1: S(over={(n, "*"): R(ns=["sub 3600 NS ns.{id}-h.lab."],
                                 ar=["ns.{id}-h.lab. 3600 A {a}.9"]) for n in ("sub", "www.sub")}),
          2: S(), 3: S(), 9: S(over={("*", "*"): R(an=["{q} 300 A 192.0.2.66"])})},
         [Q("www.sub", "A", ok("www.sub A 192.0.2.1"))]),
    Case("nonaa-answer-with-referral", "RFC 1034 §5.3.3 step 4b; RFC 2181 §5.4.1, §6.1",
         "a non-AA answer (192.0.2.66) that also delegates the name's zone: the child knows",
         [Z("{z}", ""), Z("sub.{z}", W, ns=[2])],
         {1: S(aa=False, over={(n, "A"): R(an=["{q} 300 A 192.0.2.66"],
                                           ns=["sub 3600 NS ns2.sub"],
                                           ar=["ns2.sub 3600 A {a}.2"]) for n in ("sub", "www.sub")}),
          2: S()},
         [Q("www.sub", "A", ok("www.sub A 192.0.2.1"))],
         unbound="1.17 returns the non-AA 192.0.2.66 and never asks the child (lab query log); "
         "RFC 2181 §6.1: below the cut the child's data is the authoritative one, and §5.4.1 "
         "ranks non-AA answer data below it"),
    Case("cname-chain-nonaa", "RFC 1034 §5.3.3 step 4c; RFC 1034 §3.6.2",
         "a CNAME chain across two zones, every server without AA",
         [Z("{z}", "www 300 CNAME mid\nmid 300 CNAME end.{id}-h.lab."),
          Z("{id}-h.lab.", "end 300 A 192.0.2.1", ns=[2])], {1: NONAA, 2: NONAA},
         [Q("www", "A", ok("www CNAME mid", "mid CNAME end.{id}-h.lab.",
                           "end.{id}-h.lab. A 192.0.2.1"))]),
]

GROUPS = [("nonaa", nonaa), ("neg", neg), ("reclame", reclame), ("upward", upward),
          ("wrongtype", wrongtype), ("glue", glue), ("selfref", selfref), ("dname", dname),
          ("qmin", qmin), ("negttl", negttl), ("ttl", ttl), ("case", case), ("wild", wild),
          ("cycle", cycle), ("scrub", scrub)]

CASES: list[Case] = []
for _group, _cases in GROUPS:
    for _c in _cases:
        _c.group = _group
        _c.n = len(CASES) + 1
        CASES.append(_c)
assert len(CASES) < 250, "one /24 per case"
assert len({c.id for c in CASES}) == len(CASES), "case ids are unique"
