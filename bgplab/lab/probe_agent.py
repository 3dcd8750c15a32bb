"""The probe's two processes, each run inside a lab node through the runtime: the sender, on an
absolute schedule, and the receiver, which writes a record per packet (`bgplab.lab.probes` says
what they measure and how the lab starts them).

    python -m bgplab.lab.probe_agent send --address A --port P --id N --rate R --status FILE
    python -m bgplab.lab.probe_agent receive --port P --id N --out FILE
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import signal
import socket
import struct
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bgplab.lab.probe_report import INITIAL_TTL, RECORD

MAGIC = b"BLPR"
PACKET = struct.Struct("!4sQQq")
"""magic, probe id, sequence number, send time (CLOCK_MONOTONIC ns)."""

_IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux value; Python's socket module lacks it



class _Stop:
    def __init__(self) -> None:
        self.flag = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._set)

    def _set(self, *_: object) -> None:
        self.flag = True


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def send(address: str, port: int, probe_id: int, rate: float, size: int, status: Path,
         count: int | None = None) -> int:
    """Send `count` packets (or until SIGTERM) at `rate`/s on an absolute schedule."""
    stop = _Stop()
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, INITIAL_TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, INITIAL_TTL)
    target = (address, port)
    interval_ns = round(1e9 / rate)
    pad = bytes(size - PACKET.size)
    origin = time.monotonic_ns() + 5_000_000
    seq = errors = 0
    last_status = 0

    def report(done: bool) -> None:
        _write_json(status, {"origin_ns": origin, "interval_ns": interval_ns, "sent": seq, "errors": errors,
                             "done": done, "at_ns": time.monotonic_ns()})

    report(False)
    while not stop.flag and (count is None or seq < count):
        due = origin + seq * interval_ns
        now = time.monotonic_ns()
        if now < due:
            time.sleep(min(due - now, 50_000_000) / 1e9)  # short naps: a SIGTERM is seen within 50 ms
            continue
        now = time.monotonic_ns()
        try:
            sock.sendto(PACKET.pack(MAGIC, probe_id, seq, now) + pad, target)
        except OSError:
            errors += 1
        seq += 1
        if now - last_status >= 200_000_000:
            report(False)
            last_status = now
    report(True)
    return 0


def receive(port: int, probe_id: int, out: Path, family: int = 4) -> int:
    """Record every packet of this probe until SIGTERM; flush every 100 ms."""
    stop = _Stop()
    if family == 6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.bind(("::", port))
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        sock.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
        sock.bind(("0.0.0.0", port))
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE (we are root): minutes of backlog
    sock.settimeout(0.1)
    ancillary = socket.CMSG_SPACE(4) * 4
    pending = bytearray()
    foreign = 0
    last_flush = time.monotonic_ns()
    with open(out, "ab") as sink:
        print("ready", flush=True)
        while not stop.flag:
            try:
                data, cmsgs, _, _ = sock.recvmsg(2048, ancillary)
            except TimeoutError:
                data = b""
            now = time.monotonic_ns()
            if len(data) >= PACKET.size:
                magic, pid, seq, sent = PACKET.unpack_from(data)
                if magic == MAGIC and pid == probe_id:
                    tos = ttl = 0
                    for level, kind, value in cmsgs:
                        if level == socket.IPPROTO_IP and kind == socket.IP_TOS:
                            tos = value[0]
                        elif level == socket.IPPROTO_IP and kind == socket.IP_TTL:
                            ttl = int.from_bytes(value[:4], sys.byteorder)
                        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_TCLASS:
                            tos = int.from_bytes(value[:4], sys.byteorder)
                        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT:
                            ttl = int.from_bytes(value[:4], sys.byteorder)
                    pending += RECORD.pack(seq, sent, now, (tos >> 2) & 0x3F, min(ttl, 255))
                else:
                    foreign += 1
            if pending and now - last_flush >= 100_000_000:
                sink.write(pending)
                sink.flush()
                pending.clear()
                last_flush = now
        sink.write(pending)
        sink.flush()
    if foreign:
        print(f"ignored {foreign} packets of other probes", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bgplab.lab.probe_agent", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("send", help="the sender, run in the source namespace")
    s.add_argument("--address", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--id", type=int, required=True)
    s.add_argument("--rate", type=float, required=True)
    s.add_argument("--size", type=int, default=64)
    s.add_argument("--status", type=Path, required=True)
    s.add_argument("--count", type=int)
    r = sub.add_parser("receive", help="the receiver, run in the destination namespace")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--id", type=int, required=True)
    r.add_argument("--family", type=int, choices=(4, 6), default=4)
    r.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "send":
        return send(args.address, args.port, args.id, args.rate, args.size, args.status, args.count)
    return receive(args.port, args.id, args.out, args.family)


if __name__ == "__main__":
    sys.exit(main())
