"""The ingest benchmark's sender: one process, one plain socket, one `sendall()` of the whole table.

It runs in its own namespace and process so that it never shares a CPU-bound loop with the
receiver it measures. Protocol with the orchestrator (JSON lines on stdout, signals in):

* connects to the receiver, handshakes, prints `established`;
* on SIGUSR1 prints `sending` with `t_first` (monotonic time just before the first UPDATE byte is
  written), `sendall()`s the blob, prints `sent` with the time it returned and the CPU it used;
* keeps the session alive (its own KEEPALIVEs every hold/3 once the table is out; UPDATEs keep
  the receiver's hold timer fed before that) and records when each of the receiver's
  KEEPALIVEs arrives, which is the evidence that the receiver's keepalives leave on time;
* on SIGTERM prints `final` with those arrival times and exits.

Signals are taken with `sigwait` in the main thread (blocked everywhere else), so no handler
ever runs in the middle of a `sendall()`.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
import time
from pathlib import Path

from bench.ingest_common import (
    BGP_PORT,
    HOLD_TIME,
    RECEIVER_ADDRESS,
    SENDER_ADDRESS,
    SENDER_ASN,
    SENDER_ROUTER_ID,
    emit,
    handshake,
    split_messages,
)
from bgplab.bgp.wire.constants import HEADER_LEN, MessageType
from bgplab.bgp.wire.messages import KEEPALIVE, decode_notification

_GO, _STOP = signal.SIGUSR1, {signal.SIGTERM, signal.SIGINT}


class PeerRecorder(threading.Thread):
    """Reads everything the receiver sends, so it never blocks on us, and timestamps its KEEPALIVEs.

    Some receivers (FRR) advertise the whole table back to us; reading it must cost far less than
    it costs them to send it, or the reader would throttle the receiver it measures.
    """

    def __init__(self, sock: socket.socket, buf: bytearray, established_at: float) -> None:
        super().__init__(daemon=True, name="peer-recorder")
        self.sock = sock
        self.buf = buf
        # The handshake KEEPALIVE starts the receiver's keepalive timer: it is the first point of any gap.
        self.keepalives: list[float] = [established_at]
        self.other_messages = 0
        self.notification: str | None = None
        self.closed_at: float | None = None

    def run(self) -> None:
        buf = self.buf
        try:
            while True:
                messages, used = split_messages(buf)
                for msg_type, start, end in messages:
                    if msg_type == MessageType.KEEPALIVE:
                        self.keepalives.append(time.monotonic())
                    elif msg_type == MessageType.NOTIFICATION:
                        self.notification = decode_notification(bytes(buf[start + HEADER_LEN : end])).describe()
                    else:
                        self.other_messages += 1
                del buf[:used]
                data = self.sock.recv(1 << 20)
                if not data:
                    break
                buf += data
        except OSError:
            pass
        self.closed_at = time.monotonic()


def connect(local: str, peer: str, timeout: float) -> socket.socket:
    """Connect, retrying while the receiver is not listening yet (daemons take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((local, 0))
        try:
            sock.connect((peer, BGP_PORT))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def send_table(sock: socket.socket, blob: bytes) -> None:
    cpu = os.times()
    t_first = time.monotonic()
    emit("sending", t_first=t_first)
    sock.sendall(blob)
    t_sent = time.monotonic()
    used = os.times()
    emit("sent", t_first=t_first, t_sent=t_sent,
         cpu_s=(used.user - cpu.user) + (used.system - cpu.system))


def keep_alive(sock: socket.socket, interval: float) -> None:
    """Send KEEPALIVEs until told to stop."""
    while signal.sigtimedwait(_STOP, interval) is None:
        try:
            sock.sendall(KEEPALIVE)
        except OSError:
            signal.sigwait(_STOP)
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="file of encoded UPDATE messages")
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    # Two senders side by side (bench.bestpath) differ in these; the defaults are bench.ingest's one sender.
    parser.add_argument("--local", default=SENDER_ADDRESS, help="source address to connect from")
    parser.add_argument("--asn", type=int, default=SENDER_ASN)
    parser.add_argument("--router-id", default=SENDER_ROUTER_ID)
    args = parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {_GO, *_STOP})  # before any thread starts
    blob = args.table.read_bytes()
    sock = connect(args.local, RECEIVER_ADDRESS, args.connect_timeout)
    peer_open, buf = handshake(sock, args.asn, args.router_id)
    hold = min(HOLD_TIME, peer_open.hold_time) or HOLD_TIME
    emit("established", peer_asn=peer_open.asn, hold=hold)
    recorder = PeerRecorder(sock, buf, time.monotonic())
    recorder.start()
    if signal.sigwait({_GO, *_STOP}) == _GO:
        send_table(sock, blob)
        keep_alive(sock, hold / 3)
    emit("final", keepalives=recorder.keepalives, other_messages=recorder.other_messages,
         notification=recorder.notification, closed_at=recorder.closed_at)
    sock.close()


if __name__ == "__main__":
    main()
