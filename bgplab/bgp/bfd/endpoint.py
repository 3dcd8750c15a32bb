"""The asyncio edge of BFD (RFC 5881 single hop): sockets and timers around sans-IO sessions.

A `BfdManager` owns any number of sessions in one network namespace. Per local address it
keeps two UDP sockets: one bound to port 3784 that receives, and one bound to a source port
in 49152-65535 that sends with TTL / hop limit 255 (RFC 5881 sections 4 and 5). Sessions on
one local address share them, which the RFC allows: it only asks that a session keep its
source port.

The RFC 5881 TTL check is done here in user space from IP_RECVTTL / IPV6_RECVHOPLIMIT
ancillary data: Linux enforces IP_MINTTL and IPV6_MINHOPCOUNT for TCP only, and a UDP socket
with them set still receives packets that crossed a router (measured on the 6.x kernel here).

Nothing polls: the receive socket is watched with `loop.add_reader`, and the two timers of a
session are `loop.call_later` handles, re-armed on every packet. Callbacks run in the loop
thread as soon as the expiry or the packet is handled, so on an idle loop a Down is reported
within a millisecond or two of the Detection Time (the interop tests and bench/bfd.py
measure it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from bgplab.bgp.bfd.packet import (
    MAX_U32,
    SINGLE_HOP_PORT,
    SINGLE_HOP_TTL,
    SOURCE_PORT_MAX,
    SOURCE_PORT_MIN,
    Discard,
    State,
    decode,
    diag_name,
)
from bgplab.bgp.bfd.session import Action, Send, Session, StartTimer, StateChanged, StopTimer, Timer
from bgplab.bgp.sockets import in_netns

log = logging.getLogger("bgplab.bfd")

IP_RECVTTL = 12
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
TOS_INTERNETWORK_CONTROL = 0xC0
"""IP precedence 6, as routing protocols (and FRR's bfdd) mark their packets."""
_CMSG_SPACE = socket.CMSG_SPACE(4)
_MAX_DATAGRAM = 512
_READ_BATCH = 64
_PORT_ATTEMPTS = 64


@dataclass(frozen=True, slots=True)
class BfdStateChange:
    """What a client (a BGP peer) is told when a session changes state.

    `time` is `time.monotonic()` when the change was processed. `remote_state` and
    `remote_diag` are what the peer last said, so `failed` can apply RFC 5882 section 3.2.
    """

    local: str
    remote: str
    old: State
    new: State
    diag: int
    remote_state: State
    remote_diag: int
    time: float

    @property
    def failed(self) -> bool:
        """Up to Down because the path failed: the client protocol must go down now.

        False when the peer signalled AdminDown (RFC 5882 section 3.2: an administrative
        act, not a failure) and for our own AdminDown; never true for a session that was not
        Up, so a BFD session that never came up cannot tear anything down.
        """
        return self.old is State.UP and self.new is State.DOWN and self.remote_state is not State.ADMIN_DOWN

    def describe(self) -> str:
        peer = f" (peer said {self.remote_state.label}, {diag_name(self.remote_diag)})"
        return f"BFD {self.local} -> {self.remote}: {self.old.label} -> {self.new.label}, {diag_name(self.diag)}{peer}"


OnChange = Callable[[BfdStateChange], None]


@dataclass
class SessionStats:
    """Counters and `time.monotonic()` stamps of one session."""

    packets_sent: int = 0
    packets_received: int = 0
    send_errors: int = 0
    state_changes: int = 0
    last_state_change: float | None = None
    last_up: float | None = None
    last_down: float | None = None
    last_received: float | None = None
    last_sent: float | None = None


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address.split("%", 1)[0]))


def _ms_to_us(ms: float) -> int:
    us = round(ms * 1000)
    if not 0 <= us <= MAX_U32:
        raise ValueError(f"{ms} ms is out of range for a BFD interval")
    return us


class _LocalSockets:
    """The receive and transmit sockets of one local address, shared by its sessions."""

    def __init__(self, manager: BfdManager, local: str) -> None:
        self._loop = asyncio.get_running_loop()  # first: fail before any socket exists
        self.manager = manager
        self.local = local
        self.family = socket.AF_INET6 if ipaddress.ip_address(local).version == 6 else socket.AF_INET
        self.users = 0
        self.rx = self._rx_socket()
        try:
            self.tx = self._tx_socket()
        except BaseException:
            self.rx.close()
            raise
        self.port: int = self.tx.getsockname()[1]
        self._loop.add_reader(self.rx.fileno(), self._readable)

    def _new(self) -> socket.socket:
        sock = in_netns(self.manager.netns, lambda: socket.socket(self.family, socket.SOCK_DGRAM))
        sock.setblocking(False)
        if self.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        return sock

    def _rx_socket(self) -> socket.socket:
        sock = self._new()
        try:
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                sock.bind((self.local, SINGLE_HOP_PORT, 0, 0))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                sock.bind((self.local, SINGLE_HOP_PORT))
        except BaseException:
            sock.close()
            raise
        return sock

    def _tx_socket(self) -> socket.socket:
        sock = self._new()
        try:
            if self.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, SINGLE_HOP_TTL)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, TOS_INTERNETWORK_CONTROL)
            else:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, SINGLE_HOP_TTL)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_INTERNETWORK_CONTROL)
            # Linux picks ephemeral ports from 32768-60999 by default, partly outside the range
            # RFC 5881 requires, so the port is chosen here.
            rng = random.SystemRandom()
            for _ in range(_PORT_ATTEMPTS):
                port = rng.randint(SOURCE_PORT_MIN, SOURCE_PORT_MAX)
                try:
                    sock.bind((self.local, port, 0, 0) if self.family == socket.AF_INET6 else (self.local, port))
                    break
                except OSError as exc:
                    if exc.errno != 98:  # EADDRINUSE: try another
                        raise
            else:
                raise OSError(98, f"no free BFD source port on {self.local}")
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        self._loop.remove_reader(self.rx.fileno())
        self.rx.close()
        self.tx.close()

    def _readable(self) -> None:
        for _ in range(_READ_BATCH):
            try:
                data, ancdata, _flags, addr = self.rx.recvmsg(_MAX_DATAGRAM, _CMSG_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("BFD receive on %s: %s", self.local, exc)
                return
            ttl = None
            for level, kind, value in ancdata:
                if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
                    ttl = struct.unpack("=i", value[:4])[0]
            self.manager._datagram(self, data, addr[0], ttl)


class _Peer:
    """One session with its timers, sockets and callback."""

    def __init__(
        self,
        manager: BfdManager,
        local: str,
        remote: str,
        session: Session,
        sockets: _LocalSockets,
        on_change: OnChange | None,
    ) -> None:
        self.manager = manager
        self.local = local
        self.remote = remote
        self.session = session
        self.sockets = sockets
        self.on_change = on_change
        self.stats = SessionStats()
        self.dest: tuple[str, int] | tuple[str, int, int, int] = (
            (remote, SINGLE_HOP_PORT, 0, 0) if sockets.family == socket.AF_INET6 else (remote, SINGLE_HOP_PORT)
        )
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._loop = asyncio.get_running_loop()

    def run(self, actions: list[Action]) -> None:
        """Carry actions out; state changes are reported last, once the packets have left."""
        changes: list[StateChanged] = []
        for action in actions:
            if isinstance(action, Send):
                self._send(action.data)
            elif isinstance(action, StartTimer):
                old = self._timers.pop(action.timer, None)
                if old is not None:
                    old.cancel()
                self._timers[action.timer] = self._loop.call_later(action.seconds, self._fire, action.timer)
            elif isinstance(action, StopTimer):
                handle = self._timers.pop(action.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, StateChanged):
                changes.append(action)
        for change in changes:
            self._report(change)

    def _send(self, data: bytes) -> None:
        try:
            self.sockets.tx.sendto(data, self.dest)
        except OSError as exc:  # full buffer, link down, no route: BFD is datagram and lossy by design
            self.stats.send_errors += 1
            log.debug("BFD send %s -> %s: %s", self.local, self.remote, exc)
            return
        self.stats.packets_sent += 1
        self.stats.last_sent = time.monotonic()

    def _fire(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self.run(self.session.timer_expired(timer))

    def cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    def _report(self, change: StateChanged) -> None:
        now = time.monotonic()
        stats = self.stats
        stats.state_changes += 1
        stats.last_state_change = now
        if change.new is State.UP:
            stats.last_up = now
        elif change.old is State.UP:
            stats.last_down = now
        event = BfdStateChange(
            self.local, self.remote, change.old, change.new, change.diag, change.remote_state, change.remote_diag, now
        )
        log.info("%s", event.describe())
        for callback in (self.on_change, self.manager.on_change):
            if callback is None:
                continue
            try:
                callback(event)
            except Exception:  # a client's bug must not stop the session or the other clients
                log.exception("BFD on_change callback failed for %s", self.remote)


class BfdManager:
    """Every BFD session of one network namespace, keyed by the remote address.

    Intervals are given in milliseconds (fractions allowed) and carried in microseconds.
    Methods are synchronous and must be called from the running event loop's thread; `add`
    creates the sockets of a new local address, which must already be configured.
    `on_change` here is called for every session, after the session's own callback.
    """

    def __init__(
        self, netns: str | None = None, *, rng: Callable[[], float] | None = None, on_change: OnChange | None = None
    ) -> None:
        self.netns = netns
        self.on_change = on_change
        self.discards: Counter[str] = Counter()
        """Packets dropped before reaching a session, by reason (see `packet.decode`, plus
        "ttl" and "no-session")."""
        self._rng = rng if rng is not None else random.random
        self._discriminators = random.SystemRandom()
        self._peers: dict[str, _Peer] = {}
        self._by_discriminator: dict[int, _Peer] = {}
        self._sockets: dict[str, _LocalSockets] = {}
        self._canonical_sources: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- sessions

    def add(
        self,
        local: str,
        remote: str,
        *,
        desired_min_tx: float = 300.0,
        required_min_rx: float = 300.0,
        detect_mult: int = 3,
        on_change: OnChange | None = None,
        passive: bool = False,
        admin_down: bool = False,
    ) -> Session:
        """Start a single-hop session from `local` to `remote`; intervals in milliseconds.

        Returns the sans-IO session for inspection (its state, negotiated intervals); drive
        it only through the manager.
        """
        local, remote = _canonical(local), _canonical(remote)
        if ipaddress.ip_address(local).version != ipaddress.ip_address(remote).version:
            raise ValueError(f"{local} and {remote} are not of one address family")
        if remote in self._peers:
            raise ValueError(f"a BFD session with {remote} already exists")
        discriminator = self._new_discriminator()
        session = Session(
            discriminator,
            desired_min_tx=_ms_to_us(desired_min_tx),
            required_min_rx=_ms_to_us(required_min_rx),
            detect_mult=detect_mult,
            passive=passive,
            admin_down=admin_down,
            rng=self._rng,
        )
        sockets = self._sockets.get(local)
        if sockets is None:
            sockets = self._sockets[local] = _LocalSockets(self, local)
        sockets.users += 1
        peer = _Peer(self, local, remote, session, sockets, on_change)
        self._peers[remote] = peer
        self._by_discriminator[discriminator] = peer
        peer.run(session.start())
        return session

    def remove(self, remote: str) -> None:
        """End a session, telling the peer AdminDown first (one packet, best effort), so that
        its clients do not take the end of the session for a failure (RFC 5882 section 3.2).
        The session's callbacks see that last change to AdminDown."""
        peer = self._peer(remote)
        peer.run(peer.session.admin_down())
        peer.run(peer.session.stop())
        peer.cancel_timers()
        del self._peers[peer.remote]
        del self._by_discriminator[peer.session.local_discriminator]
        peer.sockets.users -= 1
        if peer.sockets.users == 0:
            del self._sockets[peer.local]
            peer.sockets.close()

    def set_params(
        self,
        remote: str,
        *,
        desired_min_tx: float | None = None,
        required_min_rx: float | None = None,
        detect_mult: int | None = None,
    ) -> None:
        """Change intervals (milliseconds) or the multiplier; while Up, through a Poll Sequence."""
        peer = self._peer(remote)
        peer.run(
            peer.session.set_params(
                None if desired_min_tx is None else _ms_to_us(desired_min_tx),
                None if required_min_rx is None else _ms_to_us(required_min_rx),
                detect_mult,
            )
        )

    def admin_down(self, remote: str) -> None:
        peer = self._peer(remote)
        peer.run(peer.session.admin_down())

    def admin_up(self, remote: str) -> None:
        peer = self._peer(remote)
        peer.run(peer.session.admin_up())

    def state(self, remote: str) -> State:
        return self._peer(remote).session.state

    def session(self, remote: str) -> Session:
        return self._peer(remote).session

    def stats(self, remote: str) -> SessionStats:
        return self._peer(remote).stats

    def source_port(self, remote: str) -> int:
        return self._peer(remote).sockets.port

    @property
    def remotes(self) -> list[str]:
        return list(self._peers)

    def close(self) -> None:
        """Remove every session (each peer is told AdminDown) and close every socket."""
        for remote in list(self._peers):
            self.remove(remote)
        for sockets in self._sockets.values():
            sockets.close()
        self._sockets.clear()

    # ---- internals

    def _peer(self, remote: str) -> _Peer:
        try:
            return self._peers[_canonical(remote)]
        except KeyError:
            raise KeyError(f"no BFD session with {remote}") from None

    def _new_discriminator(self) -> int:
        while True:
            value = self._discriminators.randint(1, MAX_U32)
            if value not in self._by_discriminator:
                return value

    def _datagram(self, sockets: _LocalSockets, data: bytes, source: str, ttl: int | None) -> None:
        if ttl != SINGLE_HOP_TTL:
            self.discards["ttl"] += 1
            return
        try:
            packet = decode(data)
        except Discard as exc:
            self.discards[exc.reason] += 1
            return
        canonical = self._canonical_sources.get(source)
        if canonical is None:
            if len(self._canonical_sources) > 4096:  # forged sources must not grow it without bound
                self._canonical_sources.clear()
            canonical = self._canonical_sources[source] = _canonical(source)
        source = canonical
        if packet.your_discriminator:
            peer = self._by_discriminator.get(packet.your_discriminator)
        else:
            peer = self._peers.get(source)
        # A discriminator is only trusted from the address its session runs to (as FRR does).
        if peer is None or peer.remote != source or peer.local != sockets.local:
            self.discards["no-session"] += 1
            return
        peer.stats.packets_received += 1
        peer.stats.last_received = time.monotonic()
        peer.run(peer.session.receive(packet))
