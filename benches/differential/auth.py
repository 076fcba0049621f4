"""The lab's authorities: one process answering UDP and TCP on port 53 of every lab address
(127.55.0.0/16), each address per its zones and quirks (lab.py, cases.py).

    python3 auth.py [--log FILE]

Prints "ready N" on stdout once every socket is bound; runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import socket
import struct
import sys
import time

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

import cases
import lab


class Udp(asyncio.DatagramProtocol):
    def __init__(self, server: lab.Server, log):
        self.server, self.log = server, log
        self.rng = random.Random(hash(server.addr))

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        out = reply(self.server, data, self.rng, self.log, "udp", addr[0])
        if out is not None:
            self.transport.sendto(out, addr)


def reply(server: lab.Server, data: bytes, rng, log, proto: str, src: str) -> bytes | None:
    try:
        query = dns.message.from_wire(data)
    except Exception:  # malformed: a real server would say FORMERR; the lab just drops it
        return None
    try:
        resp = lab.answer(server, query, rng, src)
        wire = None if resp is None else resp.to_wire(max_size=65535)
    except Exception as e:  # a bug in a scripted case must not take the lab down
        print(f"auth: {server.addr}: {e!r}", file=sys.stderr)
        return None
    if log:
        q = query.question[0] if query.question else None
        what = "silent" if resp is None else dns.rcode.to_text(resp.rcode())
        if resp is not None:
            what += " aa" if resp.flags & dns.flags.AA else ""
            what += f" an={len(resp.answer)} ns={len(resp.authority)}"
        who = {lab.UNBOUND_ADDR: "unbound", lab.HOPDNS_ADDR: "hopdns"}.get(src, src)
        log.write(f"{time.time():.3f} {who:7} {proto} {server.addr} "
                  f"{q.name if q is not None else '-'} "
                  f"{dns.rdatatype.to_text(q.rdtype) if q is not None else '-'} -> {what}\n")
    if resp is None:
        return None
    if proto == "udp":
        limit = max(512, query.payload if query.edns >= 0 else 512)
        if len(wire) > limit:
            resp.flags |= dns.flags.TC
            resp.answer, resp.authority, resp.additional = [], [], []
            wire = resp.to_wire()
    return wire


async def tcp_conn(server: lab.Server, log, reader, writer):
    rng = random.Random()
    try:
        while True:
            head = await asyncio.wait_for(reader.readexactly(2), 10)
            data = await reader.readexactly(struct.unpack("!H", head)[0])
            out = reply(server, data, rng, log, "tcp", writer.get_extra_info("peername")[0])
            if out is not None:
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log")
    args = ap.parse_args()
    log = open(args.log, "a", buffering=1) if args.log else None
    servers = lab.build(cases.CASES)
    loop = asyncio.get_running_loop()
    for addr, srv in servers.items():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((addr, 53))
        await loop.create_datagram_endpoint(lambda s=srv: Udp(s, log), sock=sock)
        await asyncio.start_server(lambda r, w, s=srv: tcp_conn(s, log, r, w), addr, 53,
                                   reuse_address=True)
    print(f"ready {len(servers)}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
