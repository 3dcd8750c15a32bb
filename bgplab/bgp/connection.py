"""One BGP connection and the session state machine it drives: sockets, timers, actions.

`Link` is the only place where `fsm.Session` actions become side effects; everything the
session decides about routes it hands to its `Peer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import deque
from typing import TYPE_CHECKING

from bgplab.bgp.fsm import (
    Action,
    Connect,
    Disconnect,
    NotificationReceived,
    NotificationSent,
    Received,
    RefreshRequested,
    Send,
    Session,
    SessionDown,
    SessionUp,
    StartTimer,
    State,
    StateChanged,
    StopTimer,
    Timer,
    UpdateErrors,
)
from bgplab.bgp.sockets import family_of, new_tcp_socket

if TYPE_CHECKING:
    from bgplab.bgp.peer import Peer
    from bgplab.bgp.speaker import Speaker

log = logging.getLogger("bgplab.speaker")

_JITTERED = (Timer.KEEPALIVE, Timer.CONNECT_RETRY)  # RFC 4271 section 10: jitter these
_SLICE = 8 * 1024
"""Bytes decoded per event-loop turn: a socket read can hold 256 KiB of UPDATEs, hundreds of
milliseconds of work; slicing it keeps keepalives and BFD on time (perf-robustness.md B.5 23).
With a Loc-RIB an 8 KiB slice is 5-12 ms of work: measured at 100k prefixes from each of two
peers, 16 KiB let the loop stall up to 71 ms, 8 KiB 37 ms, at the same throughput."""


class Connection(asyncio.Protocol):
    """One TCP connection; hands everything to the link that owns it (or to the speaker until one does)."""

    def __init__(self, speaker: Speaker, link: Link | None = None) -> None:
        self.speaker = speaker
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._backlog: deque[memoryview] = deque()
        self._holds: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.link is None:
            self.speaker.connection_accepted(self, transport)
        else:
            self.link.attached(self, transport)

    def data_received(self, data: bytes) -> None:
        if self.link is None or self.link.conn is not self:
            return
        if len(data) <= _SLICE and not self._backlog:
            self.link.run(self.link.session.data_received(data))
            self.speaker.ingested(len(data))
            return
        view = memoryview(data)
        self._backlog.extend(view[i : i + _SLICE] for i in range(0, len(view), _SLICE))
        if "drain" not in self._holds:
            self.hold("drain", True)
            asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        """Decode one slice, then let the loop run timers before the next."""
        link = self.link
        if link is None or link.conn is not self or not self._backlog:
            self._backlog.clear()
            self.hold("drain", False)
            return
        chunk = self._backlog.popleft()
        link.run(link.session.data_received(chunk.tobytes()))
        self.speaker.ingested(len(chunk))
        if self._backlog:
            asyncio.get_running_loop().call_soon(self._drain)
        else:
            self.hold("drain", False)

    def hold(self, reason: str, on: bool) -> None:
        """Stop reading from the socket while any reason holds (draining a backlog, a slow event consumer)."""
        was_held = bool(self._holds)
        if on:
            self._holds.add(reason)
        else:
            self._holds.discard(reason)
        transport = self.transport
        if transport is None or transport.is_closing() or was_held == bool(self._holds):
            return
        if self._holds:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.link is not None and self.link.conn is self:
            self.link.conn = None
            self.link.run(self.link.session.connection_failed(f"connection lost: {exc or 'closed by peer'}"))

    def pause_writing(self) -> None:
        if self.link is not None and self.link.conn is self:
            self.link.writable.clear()
            self.link.run(self.link.session.send_blocked())

    def resume_writing(self) -> None:
        if self.link is not None and self.link.conn is self:
            self.link.writable.set()
            self.link.run(self.link.session.send_unblocked())


class Link:
    """A Session with the connection and timers it drives; a peer has one, two during a collision."""

    def __init__(self, peer: Peer, session: Session) -> None:
        self.peer = peer
        self.session = session
        self.conn: Connection | None = None
        self.outgoing = False
        self.writable = asyncio.Event()
        self.writable.set()
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._connecting: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.conn.transport if self.conn is not None else None

    def attached(self, conn: Connection, transport: asyncio.Transport) -> None:
        """An outgoing connection completed; use it only if the session still wants one."""
        if self.conn is None and self.session.state in (State.CONNECT, State.ACTIVE):
            self.conn = conn
            self.outgoing = True
            self.run(self.session.connection_made())
        else:
            conn.link = None
            transport.close()

    def adopt(self, conn: Connection) -> None:
        """Take over an accepted connection."""
        self.cancel_connect()
        conn.link = self
        self.conn = conn
        self.outgoing = False
        self.writable.set()
        self.run(self.session.connection_made())

    def run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Received):
                self.peer.on_update(action.update)
            elif isinstance(action, Send):
                transport = self.transport
                if transport is not None and not transport.is_closing() and not self.peer.muted:
                    transport.write(action.data)
            elif isinstance(action, StartTimer):
                self._arm(action.timer, action.seconds)
            elif isinstance(action, StopTimer):
                handle = self._timers.pop(action.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, StateChanged):
                self.peer.on_state(self, action)
            elif isinstance(action, Connect):
                self.cancel_connect()
                self._connecting = self._loop.create_task(self._connect())
            elif isinstance(action, Disconnect):
                self.cancel_connect()
                conn, self.conn = self.conn, None
                if conn is not None and conn.transport is not None:
                    conn.link = None
                    conn.transport.close()
                self.writable.set()
            elif isinstance(action, SessionUp):
                self.peer.on_up(self, action.negotiated)
            elif isinstance(action, SessionDown):
                self.peer.on_down(action.reason)
            elif isinstance(action, NotificationReceived | NotificationSent):
                self.peer.on_notification(action)
            elif isinstance(action, UpdateErrors):
                self.peer.on_update_errors(action.errors)
            elif isinstance(action, RefreshRequested):
                self.peer.on_refresh(action.request)

    def _arm(self, timer: Timer, seconds: float) -> None:
        old = self._timers.pop(timer, None)
        if old is not None:
            old.cancel()
        if timer in _JITTERED:
            seconds *= random.uniform(0.75, 1.0)
        self._timers[timer] = self._loop.call_later(seconds, self._fire, timer)

    def _fire(self, timer: Timer) -> None:
        self._timers.pop(timer, None)
        self.run(self.session.timer_expired(timer))

    def cancel_connect(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None

    def cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def _connect(self) -> None:
        cfg = self.peer.config
        speaker = self.peer.speaker
        sock: socket.socket | None = None
        try:
            sock = new_tcp_socket(speaker.netns, family_of(cfg.address))
            self.peer.secure(sock)
            if cfg.local_address:
                sock.bind((cfg.local_address, 0))
            await self._loop.sock_connect(sock, (cfg.address, cfg.port))
            await self._loop.create_connection(lambda: speaker.track(Connection(speaker, self)), sock=sock)
            sock = None
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            self._connecting = None
            self.run(self.session.connection_failed(f"connect to {cfg.address}: {exc.strerror or exc}"))
        finally:
            if sock is not None:
                sock.close()
