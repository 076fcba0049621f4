#!/usr/bin/env python3
"""A paced UDP DNS client for the fleet bench: sends the questions of a query file (zipf.py's
"name TYPE" lines) to one server at a fixed rate, each with its own timeout, and says what
became of every one. Bounded: at most --count questions (default: the file), at --rate a second.

    client.py --server 127.53.223.200:53 --queries q.txt --rate 500 [--count N]
              [--timeout 1.0] [--lost-log FILE] [--start-at EPOCH]

Prints one line: sent=N answered=N lost=N noerror=N servfail=N other=N secs=S. With
--lost-log, writes the send time (epoch seconds) of every lost question, one a line, so the
caller can say when losses began and ended.
"""
import argparse
import select
import socket
import struct
import sys
import time

TYPES = {"A": 1, "AAAA": 28, "TXT": 16, "NS": 2}


def wire(name, qtype):
    """A query with RD set and no EDNS; the ID (first two bytes) is patched per send."""
    labels = b"".join(bytes([len(l)]) + l.encode() for l in name.strip(".").split("."))
    return struct.pack(">HHHHHH", 0, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", TYPES[qtype], 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1.0)
    ap.add_argument("--lost-log")
    ap.add_argument("--start-at", type=float, default=0.0, help="wait until this epoch time")
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    with open(a.queries) as f:
        queries = [wire(*line.split()[:2]) for line in f if line.strip()]
    if a.count:
        queries = queries[: a.count]
    if not queries or a.rate <= 0:
        sys.exit("client.py: no queries, or a rate of 0")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    if a.start_at:
        time.sleep(max(0.0, a.start_at - time.time()))

    pending = {}  # id -> send time
    lost = []
    answered = noerror = servfail = other = 0
    start = time.time()
    i = 0
    while i < len(queries) or pending:
        now = time.time()
        while i < len(queries) and start + i / a.rate <= now:
            qid = i & 0xFFFF
            if qid in pending:  # an old question with this ID is still out: count it lost
                lost.append(pending.pop(qid))
            q = queries[i]
            try:
                sock.send(struct.pack(">H", qid) + q[2:])
            except (BlockingIOError, ConnectionRefusedError):
                pass  # counted lost at its timeout
            pending[qid] = now
            i += 1
        wait = start + i / a.rate - now if i < len(queries) else 0.05
        r, _, _ = select.select([sock], [], [], max(0.0, min(wait, 0.05)))
        if r:
            while True:
                try:
                    data = sock.recv(4096)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if len(data) < 12:
                    continue
                qid = struct.unpack(">H", data[:2])[0]
                if pending.pop(qid, None) is None:
                    continue  # late or duplicate
                answered += 1
                rcode = data[3] & 0xF
                if rcode == 0:
                    noerror += 1
                elif rcode == 2:
                    servfail += 1
                else:
                    other += 1
        deadline = time.time() - a.timeout
        for qid in [q for q, t in pending.items() if t < deadline]:
            lost.append(pending.pop(qid))
    secs = time.time() - start
    if a.lost_log:
        with open(a.lost_log, "w") as f:
            f.write("".join(f"{t:.3f}\n" for t in sorted(lost)))
    print(f"sent={len(queries)} answered={answered} lost={len(lost)} noerror={noerror} "
          f"servfail={servfail} other={other} secs={secs:.1f}")


if __name__ == "__main__":
    main()
