"""What the ingest benchmark's processes share: addresses, a plain-socket BGP handshake, /proc reading.

The sender, the sink and the orchestrator are separate processes (so none of them shares a
CPU-bound loop with the receiver under test); they agree on the session's numbers through this
module and talk to the orchestrator in JSON lines on stdout. Timestamps are `time.monotonic()`,
which on Linux is the system-wide CLOCK_MONOTONIC, so they compare across processes.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from bgplab.bgp.wire.capabilities import FourOctetAs, Multiprotocol
from bgplab.bgp.wire.constants import HEADER_LEN, MessageType
from bgplab.bgp.wire.messages import KEEPALIVE, Open, decode_notification, decode_open, encode_open
from bgplab.testing.netns import LinkedPair

SENDER_ADDRESS = LinkedPair.A4
RECEIVER_ADDRESS = LinkedPair.B4
SENDER_ASN = 65001
RECEIVER_ASN = 65000
SENDER_ROUTER_ID = "10.255.0.1"
RECEIVER_ROUTER_ID = "10.255.0.2"
BGP_PORT = 179
HOLD_TIME = 90
"""The sender's proposed hold time; UPDATEs refresh the receiver's hold timer while the table flows."""


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed at once: the orchestrator reads these as they come."""
    print(json.dumps({"event": event, **fields}), flush=True)


def memory(pid: int | str = "self") -> dict[str, int]:
    """Resident set now (VmRSS) and its peak (VmHWM) in bytes; empty if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def split_messages(buf: bytearray | memoryview) -> tuple[list[tuple[int, int, int]], int]:
    """(type, start, end) of each whole message at the start of buf, and how many bytes they take.

    Offsets rather than copies: the sink and the sender's reader see hundreds of thousands of
    messages, and must stay far faster than any receiver they are there to measure.
    """
    out: list[tuple[int, int, int]] = []
    off, end = 0, len(buf)
    while end - off >= HEADER_LEN:
        length = (buf[off + 16] << 8) | buf[off + 17]
        if length < HEADER_LEN:
            raise ConnectionError(f"bad message length {length}")
        if off + length > end:
            break
        out.append((buf[off + 18], off, off + length))
        off += length
    return out, off


def read_message(sock: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """The next whole message from a blocking socket; `buf` keeps bytes that arrived beyond it."""
    while True:
        if len(buf) >= HEADER_LEN:
            length = int.from_bytes(buf[16:18], "big")
            if length < HEADER_LEN:
                raise ConnectionError(f"bad message length {length}")
            if len(buf) >= length:
                msg_type, body = buf[18], bytes(buf[HEADER_LEN:length])
                del buf[:length]
                return msg_type, body
        data = sock.recv(1 << 16)
        if not data:
            raise ConnectionError("closed by the peer")
        buf += data


def handshake(sock: socket.socket, asn: int, router_id: str, hold: int = HOLD_TIME) -> tuple[Open, bytearray]:
    """OPEN/KEEPALIVE exchange for IPv4 unicast with 4-octet AS; either side may call it first.

    Returns the peer's OPEN and the bytes already read past its KEEPALIVE, so a caller that
    switches to its own framing loses nothing.
    """
    buf = bytearray()
    sock.sendall(encode_open(Open(asn, hold, router_id, (Multiprotocol(1, 1), FourOctetAs(asn)))))
    peer: Open | None = None
    while True:
        msg_type, body = read_message(sock, buf)
        if msg_type == MessageType.OPEN:
            peer = decode_open(body)
            sock.sendall(KEEPALIVE)
        elif msg_type == MessageType.KEEPALIVE and peer is not None:
            return peer, buf
        elif msg_type == MessageType.NOTIFICATION:
            raise ConnectionError(f"peer sent NOTIFICATION {decode_notification(body).describe()}")
