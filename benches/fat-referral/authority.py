#!/usr/bin/env python3
"""A hostile authority for the fat-referral bench (issue 11, item 1). Loopback only.

One process serves every zone, UDP and TCP port 53, on 127.56.0.0/16:

  127.56.0.1        the root: refers test. to ns1.test (127.56.0.2); answers `. NS`
  127.56.0.2        test.: under fatN.test. (out-of-zone NS) and gfatN.test. (in-zone NS
                    with glue) it answers UDP with TC=1 and TCP with a referral for the
                    zone carrying as many NS names as fit in 65,535 bytes; refers ok.test.
                    to 127.56.0.3; NXDOMAIN for the rest (so nsK.elsewhere-N.test., the
                    out-of-zone NS names, never resolve)
  127.56.0.3        ok.test.: www.ok.test. A 192.0.2.1 (the cached-name probe)
  127.56.1.1-64     the glue addresses of gfatN.test.'s NS names: REFUSED to everything

Every question under a fat zone therefore ends in SERVFAIL. The fat referrals are written
by hand (not by dnspython) so that 100 of them a second cost this process little CPU:
owner names are pointers to the zone name, NS targets a label plus a pointer.
"""
import argparse
import asyncio
import re
import socket
import struct
import sys

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

ROOT = "127.56.0.1"
TLD = "127.56.0.2"
OK = "127.56.0.3"
GLUE_NET = "127.56.1."
GLUE_COUNT = 64
TTL = 86400
NEG_TTL = 300
MAX_MSG = 65535

FAT = re.compile(rb"(?:^|\.)(g?)fat(\d+)\.test\.$")
TEST = dns.name.from_text("test.")
OKZ = dns.name.from_text("ok.test.")


def wire_name(text):
    return dns.name.from_text(text).to_wire()


def fat_body(kind, n, offset):
    """Authority (+ additional) of the fat referral for zone number n; `offset` is where the
    first record starts (header + question), so the pointers are absolute. Returns
    (body, ns_count, glue_count). Only the first record names N; the rest is shared by every
    zone whose name has as many digits, so it is built once (100 fat referrals a second must
    cost this one Python thread little)."""
    zw = wire_name(("gfat%d.test." if kind == "g" else "fat%d.test.") % n)
    zone_ptr = struct.pack("!H", 0xC000 | offset)
    if kind == "g":
        # NS nsK.gfatN.test. with one A glue each (in 127.56.1.1-64): 2 records a name.
        first = zw + struct.pack("!HHIH", 2, 1, TTL, 6) + b"\x03ns0" + zone_ptr
    else:
        # NS nsK.elsewhere-N.test.: outside the child zone, no glue; test. says NXDOMAIN.
        else_name = wire_name("ns0.elsewhere-%d.test." % n)
        first = zw + struct.pack("!HHIH", 2, 1, TTL, len(else_name)) + else_name
    rest, ns, glue = fat_rest(kind, offset, len(zw), len(first))
    if kind == "g":
        return first + rest[0] + glue0(offset) + rest[1], ns, glue
    return first + rest, ns, glue


def glue0(offset):
    """The A record of ns0.gfatN.test. (the first glue record)."""
    return (b"\x03ns0" + struct.pack("!H", 0xC000 | offset)
            + struct.pack("!HHIH", 1, 1, TTL, 4) + bytes([127, 56, 1, 1]))


_rest = {}


def fat_rest(kind, offset, zone_len, first_len):
    key = (kind, offset, zone_len, first_len)
    if key in _rest:
        return _rest[key]
    zone_ptr = struct.pack("!H", 0xC000 | offset)
    size = first_len
    room = MAX_MSG - offset
    parts, glue = [], []
    k = 1
    if kind == "g":
        size += len(glue0(offset))
        while True:
            lab = bytes([len(b"ns%d" % k)]) + b"ns%d" % k
            ns = zone_ptr + struct.pack("!HHIH", 2, 1, TTL, len(lab) + 2) + lab + zone_ptr
            a = lab + zone_ptr + struct.pack("!HHIH", 1, 1, TTL, 4) + bytes(
                [127, 56, 1, 1 + k % GLUE_COUNT])
            if size + len(ns) + len(a) > room:
                break
            parts.append(ns)
            glue.append(a)
            size += len(ns) + len(a)
            k += 1
        _rest[key] = ((b"".join(parts), b"".join(glue)), k, k)
        return _rest[key]
    else_ptr = struct.pack("!H", 0xC000 | (offset + zone_len + 10 + 4))  # after "\x03ns0"
    while True:
        label = b"ns%d" % k
        rdata = bytes([len(label)]) + label + else_ptr
        rr = zone_ptr + struct.pack("!HHIH", 2, 1, TTL, len(rdata)) + rdata
        if size + len(rr) > room:
            break
        parts.append(rr)
        size += len(rr)
        k += 1
    _rest[key] = (b"".join(parts), k, 0)
    return _rest[key]


def fat_referral(query_wire, qend, kind, n):
    """The whole fat referral for a query whose question ends at `qend` (raw question bytes
    are copied, so the 0x20 case comes back as sent)."""
    body, ns, ar = fat_body(kind, n, qend)
    qid, flags = struct.unpack("!HH", query_wire[:4])
    hdr = struct.pack("!HHHHHH", qid, 0x8000 | (flags & 0x0100), 1, 0, ns, ar)
    return hdr + query_wire[12:qend] + body


def truncated(query_wire, qend):
    qid, flags = struct.unpack("!HH", query_wire[:4])
    return struct.pack("!HHHHHH", qid, 0x8000 | 0x0200 | (flags & 0x0100), 1, 0, 0,
                       0) + query_wire[12:qend]


def header(query_wire, bits, ns=0):
    """A response header for the query: its ID and RD, QR set, `bits` (AA, RCODE) added."""
    qid, flags = struct.unpack("!HH", query_wire[:4])
    return struct.pack("!HHHHHH", qid, 0x8000 | bits | (flags & 0x0100), 1, 0, ns, 0)


def lower_name(wire, qend):
    """The question name as lowercased text bytes with a final dot ("." for the root)."""
    labels, i = [], 12
    while wire[i]:
        labels.append(wire[i + 1:i + 1 + wire[i]].lower())
        i += wire[i] + 1
    return b".".join(labels) + b"." if labels else b"."


TLD_OWN = (b"test.", b"ns1.test.")
TEST_SOA = (wire_name("test.") + struct.pack("!HHI", 6, 1, NEG_TTL)
            + (lambda rd: struct.pack("!H", len(rd)) + rd)(
                wire_name("ns1.test.") + wire_name("hostmaster.test.")
                + struct.pack("!IIIII", 1, 3600, 600, 86400, NEG_TTL)))


def question_end(wire):
    """Offset just past the (single) question, or None."""
    if len(wire) < 12 or struct.unpack("!H", wire[4:6])[0] != 1:
        return None
    i = 12
    while i < len(wire):
        ln = wire[i]
        if ln == 0:
            return i + 5 if i + 5 <= len(wire) else None
        if ln & 0xC0:
            return None
        i += ln + 1
    return None


def soa(zone):
    return dns.rrset.from_text(zone, NEG_TTL, "IN", "SOA",
                               "ns1.test. hostmaster.test. 1 3600 600 86400 %d" % NEG_TTL)


def plain(msg, where, tcp):
    """Answers of the root, test. (outside fat zones), ok.test. and the glue addresses."""
    q = msg.question[0]
    r = dns.message.make_response(msg)
    r.flags &= ~dns.flags.RA
    name = q.name
    if where.startswith(GLUE_NET):
        r.set_rcode(dns.rcode.REFUSED)
        return r
    if where == ROOT:
        if name == dns.name.root or name == dns.name.from_text("a.root."):
            r.flags |= dns.flags.AA
            if name == dns.name.root and q.rdtype == dns.rdatatype.NS:
                r.answer.append(dns.rrset.from_text(".", TTL, "IN", "NS", "a.root."))
                r.additional.append(dns.rrset.from_text("a.root.", TTL, "IN", "A", ROOT))
            elif name != dns.name.root and q.rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text("a.root.", TTL, "IN", "A", ROOT))
            else:
                r.authority.append(soa("."))
        elif name.is_subdomain(TEST):
            r.authority.append(dns.rrset.from_text("test.", TTL, "IN", "NS", "ns1.test."))
            r.additional.append(dns.rrset.from_text("ns1.test.", TTL, "IN", "A", TLD))
        else:
            r.flags |= dns.flags.AA
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(soa("."))
        return r
    if where == OK:
        r.flags |= dns.flags.AA
        if name == dns.name.from_text("www.ok.test.") and q.rdtype == dns.rdatatype.A:
            r.answer.append(dns.rrset.from_text(name, 3600, "IN", "A", "192.0.2.1"))
        elif name == OKZ and q.rdtype == dns.rdatatype.NS:
            r.answer.append(dns.rrset.from_text(OKZ, TTL, "IN", "NS", "ns.ok.test."))
        elif name in (OKZ, dns.name.from_text("www.ok.test."), dns.name.from_text("ns.ok.test.")):
            if name == dns.name.from_text("ns.ok.test.") and q.rdtype == dns.rdatatype.A:
                r.answer.append(dns.rrset.from_text(name, TTL, "IN", "A", OK))
            else:
                r.authority.append(soa("ok.test."))
        else:
            r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(soa("ok.test."))
        return r
    # test.
    if name.is_subdomain(OKZ):
        r.authority.append(dns.rrset.from_text(OKZ, TTL, "IN", "NS", "ns.ok.test."))
        r.additional.append(dns.rrset.from_text("ns.ok.test.", TTL, "IN", "A", OK))
        return r
    r.flags |= dns.flags.AA
    if name == TEST and q.rdtype == dns.rdatatype.NS:
        r.answer.append(dns.rrset.from_text(TEST, TTL, "IN", "NS", "ns1.test."))
        r.additional.append(dns.rrset.from_text("ns1.test.", TTL, "IN", "A", TLD))
    elif name == dns.name.from_text("ns1.test.") and q.rdtype == dns.rdatatype.A:
        r.answer.append(dns.rrset.from_text(name, TTL, "IN", "A", TLD))
    elif name in (TEST, dns.name.from_text("ns1.test.")):
        r.authority.append(soa("test."))
    else:
        r.set_rcode(dns.rcode.NXDOMAIN)
        r.authority.append(soa("test."))
    return r


STATS = {"udp": 0, "tcp": 0, "tc": 0, "fat": 0, "fat_bytes": 0, "nx": 0, "bad": 0}


def answer(wire, where, tcp):
    """Bytes to send back for `wire` received at `where`, or None (drop)."""
    qend = question_end(wire)
    if qend is None or wire[2] & 0x80:
        STATS["bad"] += 1
        return None
    if where.startswith(GLUE_NET):
        return header(wire, 0x0400 | 5) + wire[12:qend]  # REFUSED
    if where == TLD:
        qname = lower_name(wire, qend)
        if qname not in TLD_OWN and not qname.endswith(b".ok.test.") and qname != b"ok.test.":
            m = FAT.search(qname)
            if m:
                if not tcp:
                    STATS["tc"] += 1
                    return truncated(wire, qend)
                STATS["fat"] += 1
                out = fat_referral(wire, qend, m.group(1).decode(), int(m.group(2)))
                STATS["fat_bytes"] += len(out)
                return out
            # NXDOMAIN (AA) with test.'s SOA, written by hand: it is most of the traffic
            # (the resolvers asking for nsK.elsewhere-N.test.).
            STATS["nx"] += 1
            return header(wire, 0x0400 | 3, ns=1) + wire[12:qend] + TEST_SOA
    try:
        msg = dns.message.from_wire(wire)
    except Exception:
        STATS["bad"] += 1
        return None
    r = plain(msg, where, tcp)
    try:
        return r.to_wire(max_size=MAX_MSG if tcp else 512)
    except dns.exception.TooBig:
        return truncated(wire, qend)


class Udp(asyncio.DatagramProtocol):
    def __init__(self, where):
        self.where = where

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        STATS["udp"] += 1
        out = answer(data, self.where, False)
        if out is not None:
            self.transport.sendto(out, addr)


def tcp_handler(where):
    async def handle(reader, writer):
        try:
            while True:
                hdr = await asyncio.wait_for(reader.readexactly(2), 10)
                data = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", hdr)[0]), 10)
                STATS["tcp"] += 1
                out = answer(data, where, True)
                if out is None:
                    break
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
    return handle


def selftest():
    """The fat referrals decode (dnspython), fit 65,535 bytes, and say how many names."""
    for kind, label in (("", "fat"), ("g", "gfat")):
        q = dns.message.make_query("q.%s7.test." % label, "A")
        wire = q.to_wire()
        out = fat_referral(wire, question_end(wire), kind, 7)
        m = dns.message.from_wire(out)
        ns = sum(len(r) for r in m.authority)
        glue = sum(len(r) for r in m.additional)
        assert len(out) <= MAX_MSG and ns > 1000, (len(out), ns)
        print("%s: %d bytes, %d NS names, %d glue A records" % (label, len(out), ns, glue))


async def main(args):
    loop = asyncio.get_running_loop()
    addrs = [ROOT, TLD, OK] + ["%s%d" % (GLUE_NET, i) for i in range(1, GLUE_COUNT + 1)]
    for a in addrs:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A deep receive queue: the resolvers' bursts of NS-address queries must not be lost
        # while this one thread writes a 64 KB referral (that would show as upstream timeouts
        # that are the bench's fault). SO_RCVBUFFORCE (root) passes net.core.rmem_max.
        try:
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 4 << 20)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((a, args.port))
        await loop.create_datagram_endpoint(lambda a=a: Udp(a), sock=sock)
        await asyncio.start_server(tcp_handler(a), a, args.port, reuse_address=True)
    print("authority up on %d addresses" % len(addrs), flush=True)
    while True:
        await asyncio.sleep(5)
        print("stats", " ".join("%s=%d" % kv for kv in STATS.items()), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--selftest", action="store_true")
    a = p.parse_args()
    if a.selftest:
        selftest()
        sys.exit(0)
    try:
        asyncio.run(main(a))
    except KeyboardInterrupt:
        pass
