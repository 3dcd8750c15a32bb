"""The receivers the ingest benchmark runs as its own processes: our speaker, and a framing-only sink.

`--impl ours` runs `bgplab.bgp.speaker.Speaker` as shipped (one passive peer, no event
subscribers) and measures from inside: a timer every 5 ms reads `peer.received_count()` and
how late it fired itself. Lateness of a timer is exactly what a KEEPALIVE due at that moment
would suffer, so its maximum over the ingest is the "event loop never stalls" figure.

`--impl sink` is a plain socket that frames messages and counts prefixes by walking the NLRI
length bytes, decoding no attribute. It is the floor any receiver could reach on this machine
through this sender: if the sink holds the table in a fraction of a real receiver's time, the
sender is not what the real receiver's figure measures.

Both print JSON lines: `listening` once they accept connections, `full` when the whole table is
held (monotonic time, count, loop lag, own memory), and stop on SIGTERM.

`--peers A,B --max-paths 2` (bench.bestpath) turns the speaker into a router: a Loc-RIB with
that ECMP width over several peers, "full" meaning every peer's Adj-RIB-In holds the whole
table. The decision process runs inside each UPDATE's handling, so at that moment every prefix
has been selected over all its paths; the `full` line then adds the Loc-RIB's own census
(prefixes, and how many have 1, 2, ... selected paths), taken after the time and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.ingest_common import (
    BGP_PORT,
    HOLD_TIME,
    RECEIVER_ADDRESS,
    RECEIVER_ASN,
    RECEIVER_ROUTER_ID,
    SENDER_ADDRESS,
    SENDER_ASN,
    emit,
    handshake,
    memory,
    split_messages,
)
from bgplab.bgp.peer import Peer
from bgplab.bgp.policy import REJECT, Policy
from bgplab.bgp.rib import DecisionOptions
from bgplab.bgp.speaker import PeerConfig, Speaker
from bgplab.bgp.wire.constants import HEADER_LEN, MessageType
from bgplab.bgp.wire.update import IPV4_UNICAST
from bgplab.expressroute.control import ControlServer, EventHub

PROBE_INTERVAL = 0.005
KEEPALIVE = 1
"""Our keepalive interval: short, so the sender sees several KEEPALIVEs during an ingest."""


class IngestProbe:
    """A 5 ms timer that polls the received count and, once routes flow, records how late it ran."""

    def __init__(self, count: Callable[[], int], expected: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.count = count
        self.expected = expected
        self.lags: list[float] = []
        self.first_seen: float | None = None
        self.full: asyncio.Future[float] = self.loop.create_future()
        self._due = self.loop.time() + PROBE_INTERVAL
        self.loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()  # time.monotonic(), comparable with the sender's clock
        n = self.count()
        if n:  # the first such tick already carries the stall of the first read
            self.lags.append(now - self._due)
            if self.first_seen is None:
                self.first_seen = now
        if n >= self.expected:
            self.full.set_result(now)
            return
        self._due = now + PROBE_INTERVAL
        self.loop.call_at(self._due, self._tick)

    def lag_summary(self) -> dict[str, float | int]:
        lags = sorted(self.lags) or [0.0]
        return {"max_lag_s": lags[-1], "p99_lag_s": lags[int(0.99 * (len(lags) - 1))],
                "ticks": len(self.lags), "ticks_over_100ms": sum(lag > 0.1 for lag in lags)}


async def run_ours(expected: int, gc_mode: str, addresses: tuple[str, ...] = (SENDER_ADDRESS,),
                   max_paths: int = 0, control_path: str | None = None) -> None:
    if gc_mode == "off":
        gc.disable()
    routing = DecisionOptions(max_paths=max_paths) if max_paths else None
    speaker = Speaker(RECEIVER_ASN, RECEIVER_ROUTER_ID, listen=[(RECEIVER_ADDRESS, BGP_PORT)], routing=routing)
    # A router advertises its selection to its other peers. The daemons this is compared with are
    # told to send nothing (FRR: a deny-all outbound route-map; BIRD: export none), so ours too
    # only runs its export policy, which rejects every route.
    export = Policy(default=REJECT) if routing else None
    peers = [speaker.add_peer(PeerConfig(address=address, asn=SENDER_ASN, passive=True, hold_time=HOLD_TIME,
                                         keepalive=KEEPALIVE, families=(IPV4_UNICAST,), export_policy=export))
             for address in addresses]
    peer = peers[0]
    count: Callable[[], int] = peer.received_count
    if routing or len(peers) > 1:
        count = functools.partial(_least_accepted, peers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await speaker.start()
    server = None
    if control_path is not None:  # counted from outside, as the daemons are: `count` over a Unix socket
        async def answer_count(_: Any) -> dict[str, int]:
            return {"count": count()}
        server = ControlServer(control_path, {"count": answer_count}, EventHub())
        await server.start()
    if gc_mode == "freeze":
        gc.freeze()
    emit("listening", memory=memory())
    probe = IngestProbe(count, expected)
    done = await _first(probe.full, stop)
    if done:
        held = memory()
        extra: dict[str, Any] = {}
        if speaker.rib is not None:
            extra["rib"] = rib_census(speaker.rib.table(IPV4_UNICAST))
        if len(peers) > 1:
            extra["peers"] = {p.address: {"established_at": p.established_at, "stats": p.stats} for p in peers}
        emit("full", t_full=probe.full.result(), first_seen=probe.first_seen, count=count(),
             established_at=peer.established_at, memory=held, stats=peer.stats, gc=gc_mode,
             **probe.lag_summary(), **extra)
        await stop.wait()
    if server is not None:
        await server.stop()
    await speaker.stop()


def _least_accepted(peers: list[Peer]) -> int:
    """The smallest Adj-RIB-In after import policy (as the daemons count theirs): all are full when it is."""
    return min(p.accepted_count(IPV4_UNICAST) for p in peers)


def rib_census(table: dict[int, tuple[int, ...]]) -> dict[str, Any]:
    """Prefixes in the Loc-RIB and how many have each number of selected paths: the proof of multipath."""
    widths = Counter(map(len, table.values()))
    return {"prefixes": len(table), "paths_per_prefix": {str(k): v for k, v in sorted(widths.items())}}


async def _first(full: asyncio.Future[float], stop: asyncio.Event) -> bool:
    """Wait for the table or for a stop signal; True if the table came first."""
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    waits: list[asyncio.Future[Any]] = [full, stopping]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    return full.done()


def count_prefixes(buf: bytearray) -> tuple[int, int]:
    """Prefixes in the whole UPDATEs at the start of buf, and how many bytes those messages take."""
    prefixes = 0
    messages, used = split_messages(buf)
    for msg_type, start, end in messages:
        if msg_type == MessageType.UPDATE:
            attrs = start + HEADER_LEN + 2 + ((buf[start + 19] << 8) | buf[start + 20])
            i = attrs + 2 + ((buf[attrs] << 8) | buf[attrs + 1])
            while i < end:
                i += 1 + ((buf[i] + 7) >> 3)
                prefixes += 1
    return prefixes, used


def run_sink(expected: int) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((RECEIVER_ADDRESS, BGP_PORT))
    server.listen(1)
    emit("listening", memory=memory())
    conn, _ = server.accept()
    _, buf = handshake(conn, RECEIVER_ASN, RECEIVER_ROUTER_ID)
    count = 0
    first_seen: float | None = None
    while True:
        found, used = count_prefixes(buf)
        count += found
        del buf[:used]
        if count >= expected:
            break
        data = conn.recv(1 << 20)
        if not data:
            raise ConnectionError("sender closed before the whole table arrived")
        first_seen = first_seen or time.monotonic()
        buf += data
    emit("full", t_full=time.monotonic(), first_seen=first_seen, count=count, memory=memory())
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    conn.close()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impl", choices=("ours", "sink"), default="ours")
    parser.add_argument("--expected", type=int, required=True, help="prefixes in the whole table")
    parser.add_argument("--gc", choices=("default", "off", "freeze"), default="default",
                        help="ours only: run with the cyclic GC as shipped, disabled, or frozen after start-up")
    parser.add_argument("--peers", default=SENDER_ADDRESS,
                        help=f"ours only: comma-separated sender addresses, each a passive peer in AS {SENDER_ASN}")
    parser.add_argument("--max-paths", type=int, default=0,
                        help="ours only: run with a Loc-RIB of this ECMP width (0: no Loc-RIB, as bench.ingest)")
    parser.add_argument("--control", help="ours only: answer `count` on this Unix socket (bgplab's control protocol)")
    args = parser.parse_args()
    if args.impl == "sink":
        run_sink(args.expected)
    else:
        asyncio.run(run_ours(args.expected, args.gc, tuple(args.peers.split(",")), args.max_paths, args.control))


if __name__ == "__main__":
    main()
