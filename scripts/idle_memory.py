#!/usr/bin/env python3
"""Idle-connection memory of one running rpcx server: RSS (from /proc/PID/status) empty, with
1,000 and 10,000 idle connections, right after every connection made one 581-byte Echo.Echo call,
and once they are all idle again; then, with BULK (4th argument, default 1000; 0 skips it), right
after the first BULK connections each made one 48 KiB call, all sent before any reply is read, and
once quiet again. Used by scripts/idle-memory.sh; prints one JSON object."""

import json
import resource
import socket
import struct
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled(pid, within=6.0):
    """RSS once it stops moving (allocators return memory with a delay)."""
    deadline = time.time() + within
    last = rss_kib(pid)
    while True:
        time.sleep(0.5)
        now = rss_kib(pid)
        if abs(now - last) < 256 or time.time() > deadline:
            return now
        last = now


def echo_frame(seq, payload):
    # docs/protocol.md 1.1: magic, version, flags (request), serialize (raw), seq, total length.
    body = b"".join(
        struct.pack(">I", len(field)) + field for field in (b"Echo", b"Echo", b"")
    ) + struct.pack(">I", len(payload)) + payload
    return struct.pack(">BBBBQI", 0x08, 0, 0, 0, seq, len(body)) + body


def call_all(conns, frame):
    """Sends `frame` on every connection, then reads every reply (an echo: as long as the frame)."""
    for conn in conns:
        conn.sendall(frame)
    for conn in conns:
        conn.settimeout(30)
        got = 0
        while got < len(frame):
            chunk = conn.recv(min(len(frame) - got, 1 << 16))
            if not chunk:
                raise RuntimeError("server closed a connection")
            got += len(chunk)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    pid = int(sys.argv[2])
    counts = [int(n) for n in sys.argv[3].split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(counts) + 1000), hard))
    result = {"empty_kib": settled(pid)}
    conns = []
    for count in counts:
        while len(conns) < count:
            conns.append(socket.create_connection((host, int(port))))
        result[f"idle_{count}_kib"] = settled(pid)
    call_all(conns, echo_frame(1, b"x" * 581))
    result["after_one_call_kib"] = rss_kib(pid)
    time.sleep(6)
    result["idle_again_kib"] = settled(pid, within=10)
    bulk = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    if bulk:
        call_all(conns[:bulk], echo_frame(2, b"y" * (48 << 10)))
        result["after_bulk_kib"] = rss_kib(pid)
        time.sleep(6)
        result["bulk_idle_kib"] = settled(pid, within=10)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
