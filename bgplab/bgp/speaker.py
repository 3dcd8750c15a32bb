"""The asyncio edge of the BGP speaker: sockets, timers and tables around the sans-IO `Session`.

Everything protocol-shaped is decided in `fsm.Session`; this module only carries its actions
out. Received bytes go through `asyncio.Protocol.data_received`, so one socket read of many
UPDATEs is handled in one call with no await per message, and the loop is back to timers
within one read's worth of work: keepalives leave on time while a full table arrives.
Outbound routes go through a per-peer queue of pending changes drained by a task that yields
between batches and waits whenever the peer's socket buffer is full (perf-robustness.md B.5,
cases 23, 24 and 27).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from bgplab.bgp.events import (
    EndOfRib,
    Event,
    MaxPrefixWarning,
    NotificationEvent,
    PeerStateChanged,
    RoutesReceived,
    RoutesWithdrawn,
    UpdateErrorsEvent,
)
from bgplab.bgp.fsm import (
    Action,
    Connect,
    Disconnect,
    Negotiated,
    NotificationReceived,
    NotificationSent,
    Received,
    RefreshRequested,
    Send,
    Session,
    SessionConfig,
    SessionDown,
    SessionUp,
    StartTimer,
    State,
    StateChanged,
    StopTimer,
    Timer,
    UpdateErrors,
    collision_loser,
)
from bgplab.bgp.policy import MaxPrefix, Policy
from bgplab.bgp.rib import LOCAL, Change, DecisionOptions, LocRib, PeerInfo
from bgplab.bgp.sockets import family_of, new_tcp_socket, set_md5, set_ttl_security
from bgplab.bgp.wire.attributes import PathAttributes, prepend
from bgplab.bgp.wire.constants import CeaseSubcode, ErrorCode, Origin, RouteRefreshSubtype
from bgplab.bgp.wire.errors import UpdateError
from bgplab.bgp.wire.messages import Notification, encode_notification, encode_route_refresh, shutdown_data
from bgplab.bgp.wire.messages import RouteRefresh as RouteRefreshMessage
from bgplab.bgp.wire.update import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    Family,
    Update,
    end_of_rib,
    pack_announcements,
    pack_withdrawals,
)

log = logging.getLogger("bgplab.speaker")

_JITTERED = (Timer.KEEPALIVE, Timer.CONNECT_RETRY)  # RFC 4271 section 10: jitter these
_WRITE_BATCH = 256 * 1024
_EVENT_HIGH_WATER = 20000
_EVENT_LOW_WATER = 2000
_REFRESH_INTERVAL = 1.0
_BORR = RouteRefreshSubtype.BEGINNING_OF_ROUTE_REFRESH
_EORR = RouteRefreshSubtype.END_OF_ROUTE_REFRESH


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """One neighbour, as an operator configures it."""

    address: str
    asn: int | None
    passive: bool = False
    md5: str | None = None
    hold_time: int = 90
    keepalive: int | None = None
    port: int = 179
    local_address: str | None = None
    ttl_security: bool = False
    families: tuple[Family, ...] = (IPV4_UNICAST, IPV6_UNICAST)
    connect_retry: float = 5.0
    idle_hold: float = 1.0
    idle_hold_max: float = 60.0
    min_hold_time: int = 3
    enforce_first_as: bool = True
    extended_message: bool = True
    send_hold_time: float | None = None
    allow_own_as: int = 0
    """allowas-in: how many times our own AS may appear in a received path before it is a loop."""
    import_policy: Policy | None = None
    export_policy: Policy | None = None
    max_prefix: Mapping[Family, MaxPrefix] | None = None
    """Per family limits on accepted prefixes (RFC 4486), e.g. {IPV4_UNICAST: MaxPrefix(4000, restart=60)}."""

    @property
    def key(self) -> str:
        return str(ipaddress.ip_address(self.address))


class _Conn(asyncio.Protocol):
    """One TCP connection; hands everything to the link that owns it (or to the speaker until one does)."""

    def __init__(self, speaker: Speaker, link: _Link | None = None) -> None:
        self.speaker = speaker
        self.link = link
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.link is None:
            self.speaker._incoming(self, transport)
        else:
            self.link.attached(self, transport)

    def data_received(self, data: bytes) -> None:
        if self.link is not None and self.link.conn is self:
            self.link.run(self.link.session.data_received(data))

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


class _Link:
    """A Session with the connection and timers it drives; a peer has one, two during a collision."""

    def __init__(self, peer: Peer, session: Session) -> None:
        self.peer = peer
        self.session = session
        self.conn: _Conn | None = None
        self.outgoing = False
        self.writable = asyncio.Event()
        self.writable.set()
        self._timers: dict[Timer, asyncio.TimerHandle] = {}
        self._connecting: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()

    @property
    def transport(self) -> asyncio.Transport | None:
        return self.conn.transport if self.conn is not None else None

    def attached(self, conn: _Conn, transport: asyncio.Transport) -> None:
        """An outgoing connection completed; use it only if the session still wants one."""
        if self.conn is None and self.session.state in (State.CONNECT, State.ACTIVE):
            self.conn = conn
            self.outgoing = True
            self.run(self.session.connection_made())
        else:
            conn.link = None
            transport.close()

    def adopt(self, conn: _Conn) -> None:
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
                self.peer._on_update(action.update)
            elif isinstance(action, Send):
                transport = self.transport
                if transport is not None and not transport.is_closing():
                    transport.write(action.data)
            elif isinstance(action, StartTimer):
                self._arm(action.timer, action.seconds)
            elif isinstance(action, StopTimer):
                handle = self._timers.pop(action.timer, None)
                if handle is not None:
                    handle.cancel()
            elif isinstance(action, StateChanged):
                self.peer._on_state(self, action)
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
                self.peer._on_up(self, action.negotiated)
            elif isinstance(action, SessionDown):
                self.peer._on_down(action.reason)
            elif isinstance(action, NotificationReceived | NotificationSent):
                self.peer._on_notification(action)
            elif isinstance(action, UpdateErrors):
                self.peer._on_update_errors(action.errors)
            elif isinstance(action, RefreshRequested):
                self.peer._on_refresh(action.request)

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
            self.peer._secure(sock)
            if cfg.local_address:
                sock.bind((cfg.local_address, 0))
            await self._loop.sock_connect(sock, (cfg.address, cfg.port))
            await self._loop.create_connection(lambda: speaker._track(_Conn(speaker, self)), sock=sock)
            sock = None
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            self._connecting = None
            self.run(self.session.connection_failed(f"connect to {cfg.address}: {exc.strerror or exc}"))
        finally:
            if sock is not None:
                sock.close()


class Peer:
    """One configured neighbour: its session(s), its Adj-RIB-In and its outbound queue."""

    def __init__(self, speaker: Speaker, config: PeerConfig) -> None:
        self.speaker = speaker
        self.config = config
        self.main = _Link(self, Session(self._session_config()))
        self.candidate: _Link | None = None
        self.rib_in: dict[Family, dict[int, PathAttributes]] = {}
        self.negotiated: Negotiated | None = None
        self.established_at: float | None = None
        self.stats = {
            "updates_received": 0,
            "prefixes_received": 0,
            "loop_discarded": 0,
            "notifications_sent": 0,
            "notifications_received": 0,
            "flaps": 0,
        }
        self._pending: dict[Family, dict[int, PathAttributes | None]] = {}
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._derived: dict[tuple[int, str], tuple[PathAttributes, PathAttributes]] = {}
        self._closing: list[asyncio.Future[None]] = []
        self._refresh: list[Family] = []
        self._refresh_last: dict[Family, float] = {}
        self._refresh_timers: dict[Family, asyncio.TimerHandle] = {}
        self._stale: dict[Family, set[int]] = {}
        self.adj_rib_out: dict[Family, dict[int, PathAttributes]] = {}
        self._warned: set[Family] = set()

    @property
    def address(self) -> str:
        return self.config.key

    @property
    def state(self) -> State:
        return self.main.session.state

    def received_count(self) -> int:
        return sum(len(t) for t in self.rib_in.values())

    def _session_config(self) -> SessionConfig:
        cfg = self.config
        return SessionConfig(
            local_asn=self.speaker.asn,
            router_id=self.speaker.router_id,
            peer_asn=cfg.asn,
            hold_time=cfg.hold_time,
            keepalive=cfg.keepalive,
            min_hold_time=cfg.min_hold_time,
            passive=cfg.passive,
            connect_retry=cfg.connect_retry,
            idle_hold=cfg.idle_hold,
            idle_hold_max=cfg.idle_hold_max,
            families=cfg.families,
            extended_message=cfg.extended_message,
            enforce_first_as=cfg.enforce_first_as,
            send_hold_time=cfg.send_hold_time,
        )

    def _secure(self, sock: socket.socket) -> None:
        if self.config.md5:
            set_md5(sock, self.config.address, self.config.md5)
        if self.config.ttl_security:
            set_ttl_security(sock)

    # ---- control

    def start(self) -> None:
        self.main.run(self.main.session.start())

    def stop(self, subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, message: str = "") -> None:
        data = shutdown_data(message) if message and subcode in (2, 4) else b""
        for link in self._links():
            if link.conn is not None:
                self._closing.append(link.conn.closed)
            link.run(link.session.stop(subcode, data))
        self.candidate = None

    def reset(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        """Tear the session down with a NOTIFICATION of the caller's choosing; it restarts by itself."""
        self.main.run(self.main.session.fail(code, subcode, data, reason))

    def _links(self) -> list[_Link]:
        return [self.main] + ([self.candidate] if self.candidate is not None else [])

    async def closed(self) -> None:
        """Wait (briefly) until the connections `stop` closed are gone, so a final NOTIFICATION has left."""
        waits, self._closing = self._closing, []
        if waits:
            await asyncio.wait(waits, timeout=1.0)

    # ---- incoming connections and collisions (RFC 4271 section 6.8)

    def incoming(self, conn: _Conn, transport: asyncio.Transport) -> None:
        state = self.main.session.state
        if state is State.IDLE:
            transport.close()
        elif state in (State.CONNECT, State.ACTIVE):
            self.main.adopt(conn)
        elif state is State.ESTABLISHED or self.candidate is not None:
            note = Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
            transport.write(encode_notification(note))
            transport.close()
        else:
            session = Session(self._session_config(), state=State.ACTIVE, auto_restart=False)
            self.candidate = _Link(self, session)
            self.candidate.adopt(conn)

    def _resolve_collision(self) -> None:
        main, cand = self.main, self.candidate
        if cand is None:
            return
        if main.session.state is State.ESTABLISHED:
            if cand.session.state is State.OPENCONFIRM:
                cand.run(cand.session.close_collision())
                self.candidate = None
            return
        if cand.session.state is not State.OPENCONFIRM:
            return
        if main.session.state is State.OPENCONFIRM:
            remote_id = cand.session.peer_router_id or "0.0.0.0"
            remote_asn = cand.session.negotiated.peer_open.asn if cand.session.negotiated else 0
            loser = collision_loser(self.speaker.router_id, remote_id, self.speaker.asn, remote_asn)
            main_loses = main.outgoing == (loser == "local")
        else:
            main_loses = True  # the main session has no connection left to keep
        if main_loses:
            main.run(main.session.close_collision())
            main.cancel_timers()
            cand.session.auto_restart = True
            self.main = cand
        else:
            cand.run(cand.session.close_collision())
        self.candidate = None

    # ---- session callbacks

    def _on_state(self, link: _Link, change: StateChanged) -> None:
        if link is self.candidate and change.new is State.IDLE:
            self.candidate = None
            return
        if change.new is State.OPENCONFIRM:
            self._resolve_collision()
        if link is self.main:
            self.speaker._emit(
                PeerStateChanged(time.monotonic(), self.address, change.old.value, change.new.value, change.reason)
            )

    def _on_up(self, link: _Link, negotiated: Negotiated) -> None:
        self.negotiated = negotiated
        self.established_at = time.monotonic()
        self.speaker._register(self, negotiated)
        self.adj_rib_out = {}
        self._pending = {fam: self.speaker._export_view(self, fam) for fam in negotiated.families}
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(link, negotiated))
        self._wake.set()

    def _on_down(self, reason: str) -> None:
        self.stats["flaps"] += 1
        self.negotiated = None
        self.established_at = None
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        self._pending = {}
        self._refresh = []
        for handle in self._refresh_timers.values():
            handle.cancel()
        self._refresh_timers = {}
        self._stale = {}
        self._derived = {}
        self._warned = set()
        self.adj_rib_out = {}
        rib, self.rib_in = self.rib_in, {}
        self.speaker._routes_gone(self)
        now = time.monotonic()
        for family, table in rib.items():
            if table:
                self.speaker._emit(RoutesWithdrawn(now, self.address, family, list(table), f"session down: {reason}"))

    def _on_notification(self, action: NotificationReceived | NotificationSent) -> None:
        note = action.notification
        direction = "received" if isinstance(action, NotificationReceived) else "sent"
        self.stats[f"notifications_{direction}"] += 1
        log.info("%s %s NOTIFICATION %s", self.address, direction, note.describe())
        self.speaker._emit(
            NotificationEvent(
                time.monotonic(), self.address, direction, note.code, note.subcode, note.data, note.describe()
            )
        )

    def _on_update_errors(self, errors: tuple[UpdateError, ...]) -> None:
        for error in errors:
            log.warning("%s UPDATE error handled per RFC 7606: %s", self.address, error)
        self.speaker._emit(UpdateErrorsEvent(time.monotonic(), self.address, errors))

    def _on_refresh(self, request: RouteRefreshMessage) -> None:
        family = (request.afi, request.safi)
        if request.subtype == _BORR:
            # RFC 7313: everything the peer had sent is stale until re-sent before its EoRR.
            self._stale[family] = set(self.rib_in.get(family, ()))
        elif request.subtype == _EORR:
            stale = self._stale.pop(family, None)
            if stale:
                listening = bool(self.speaker._subscribers)
                now = time.monotonic() if listening else 0.0
                self._remove(family, list(stale), now, listening, "not re-sent in an enhanced route refresh")
        else:
            self._schedule_refresh(family)

    def _schedule_refresh(self, family: Family) -> None:
        """Resend at most once a second per family: a peer looping on refreshes costs us little."""
        if family in self._refresh or family in self._refresh_timers:
            return
        loop = asyncio.get_running_loop()
        wait = self._refresh_last.get(family, -_REFRESH_INTERVAL) + _REFRESH_INTERVAL - loop.time()

        def queue() -> None:
            self._refresh_timers.pop(family, None)
            if self.negotiated is not None:
                self._refresh_last[family] = loop.time()
                self._refresh.append(family)
                self._wake.set()

        if wait <= 0:
            queue()
        else:
            self._refresh_timers[family] = loop.call_later(wait, queue)

    def _on_update(self, update: Update) -> None:
        self.stats["updates_received"] += 1
        speaker = self.speaker
        listening = bool(speaker._subscribers)
        now = time.monotonic() if listening else 0.0
        attrs = update.attributes
        if attrs is not None:
            looped = self._looped(attrs)
            for family, keys, next_hops in update.announced():
                if looped:
                    # RFC 4271 section 9.1.2: a path through our own AS is unusable; it
                    # replaces (so removes) whatever the peer sent before for these prefixes.
                    self.stats["loop_discarded"] += len(keys)
                    self._remove(family, keys, now, listening, "AS path holds our AS")
                    continue
                if family != IPV4_UNICAST:
                    attrs = self._with_next_hop(attrs, next_hops[0])
                table = self.rib_in.get(family)
                if table is None:
                    table = self.rib_in[family] = {}
                table.update(dict.fromkeys(keys, attrs))
                self.stats["prefixes_received"] += len(keys)
                if self._stale:
                    stale = self._stale.get(family)
                    if stale:
                        stale.difference_update(keys)
                if listening:
                    speaker._emit(RoutesReceived(now, self.address, family, keys, attrs))
                if speaker.rib is not None:
                    speaker._accept(self, family, keys, attrs)
                if self.config.max_prefix and self._over_limit(family):
                    return
        for family, keys in update.withdrawals():
            self._remove(family, keys, now, listening, "withdrawn")
        if listening and not update.nlri and not update.withdrawn:
            family_eor = update.end_of_rib()
            if family_eor is not None:
                speaker._emit(EndOfRib(now, self.address, family_eor))

    def _remove(self, family: Family, keys: list[int], now: float, listening: bool, reason: str) -> None:
        table = self.rib_in.get(family)
        if table is not None:
            pop = table.pop
            for key in keys:
                pop(key, None)
        if listening:
            self.speaker._emit(RoutesWithdrawn(now, self.address, family, keys, reason))
        rib = self.speaker.rib
        if rib is not None:
            self.speaker._propagate(rib.withdraw(self.address, family, keys))

    def accepted_count(self, family: Family) -> int:
        """Prefixes accepted by import policy (all received ones when the speaker keeps no Loc-RIB)."""
        rib = self.speaker.rib
        if rib is not None and self.address in rib.peers():
            return len(rib.adj_rib_in(self.address, family))
        return len(self.rib_in.get(family, ()))

    def _over_limit(self, family: Family) -> bool:
        """RFC 4486: past the limit, Cease 6/1 carrying AFI, SAFI and the limit; warn once at the threshold."""
        assert self.config.max_prefix is not None
        limit = self.config.max_prefix.get(family)
        if limit is None:
            return False
        count = self.accepted_count(family)
        if count > limit.limit:
            data = struct.pack("!HBI", family[0], family[1], limit.limit)
            reason = f"maximum prefix limit {limit.limit} exceeded ({count}) for {family}"
            log.warning("%s: %s", self.address, reason)
            restart = limit.restart if limit.restart is not None else None
            self.main.run(
                self.main.session.fail(ErrorCode.CEASE, CeaseSubcode.MAXIMUM_PREFIXES_REACHED, data, reason, restart)
            )
            return True
        threshold = limit.limit * limit.warning_percent / 100
        if count >= threshold and family not in self._warned:
            self._warned.add(family)
            log.warning(
                "%s: %d prefixes, %d%% of the limit %d", self.address, count, limit.warning_percent, limit.limit
            )
            self.speaker._emit(MaxPrefixWarning(time.monotonic(), self.address, family, count, limit.limit))
        elif count < threshold:
            self._warned.discard(family)
        return False

    def _looped(self, attrs: PathAttributes) -> bool:
        asn = self.speaker.asn
        count = sum(seg.count(asn) for _, seg in attrs.as_path or ())
        return count > self.config.allow_own_as

    def _with_next_hop(self, attrs: PathAttributes, next_hop: str) -> PathAttributes:
        """MP_REACH next hops are per UPDATE, not attributes; fold them in so a route is one object."""
        return self._derive(attrs, next_hop, next_hop=next_hop)

    def _derive(self, attrs: PathAttributes, tag: str, **changes: object) -> PathAttributes:
        """`attrs` with changes, made once per source object so prefixes keep sharing one object.

        The cache holds the source too: an id is only trusted while that object is alive.
        """
        key = (id(attrs), tag)
        hit = self._derived.get(key)
        if hit is None or hit[0] is not attrs:
            if len(self._derived) > 65536:
                self._derived.clear()
            hit = self._derived[key] = (attrs, replace(attrs, **changes))  # type: ignore[arg-type]
        return hit[1]

    # ---- outbound

    def enqueue(self, family: Family, keys: Iterable[int], attrs: PathAttributes | None) -> None:
        if self.negotiated is None or family not in self.negotiated.families:
            return
        self._pending.setdefault(family, {}).update(dict.fromkeys(keys, attrs))
        self._wake.set()

    def enqueue_many(self, family: Family, routes: Mapping[int, PathAttributes | None]) -> None:
        if self.negotiated is None or family not in self.negotiated.families:
            return
        self._pending.setdefault(family, {}).update(routes)
        self._wake.set()

    async def _send_loop(self, link: _Link, negotiated: Negotiated) -> None:
        eor_sent = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending or self._refresh:
                if self._refresh:
                    await self._resend(link, negotiated, self._refresh.pop(0))
                    continue
                family, batch = next(iter(self._pending.items()))
                del self._pending[family]
                await self._send_batch(link, negotiated, family, batch)
            if not eor_sent:
                for family in sorted(negotiated.families):
                    await self._write(link, [end_of_rib(family)])
                eor_sent = True

    async def _resend(self, link: _Link, negotiated: Negotiated, family: Family) -> None:
        """Answer a ROUTE-REFRESH with the whole table, framed by BoRR/EoRR when the peer knows RFC 7313."""
        batch = self._pending.pop(family, {})
        batch.update(self.speaker._export_view(self, family))
        enhanced = negotiated.enhanced_route_refresh
        afi, safi = family
        if enhanced:
            await self._write(link, [encode_route_refresh(RouteRefreshMessage(afi, safi, _BORR))])
        await self._send_batch(link, negotiated, family, batch)
        if enhanced:
            await self._write(link, [encode_route_refresh(RouteRefreshMessage(afi, safi, _EORR))])

    async def _send_batch(
        self, link: _Link, negotiated: Negotiated, family: Family, batch: dict[int, PathAttributes | None]
    ) -> None:
        """Send a batch of changes: export policy per attribute set, Adj-RIB-Out kept to send only real changes."""
        max_len = negotiated.max_message_length
        out = self.adj_rib_out.setdefault(family, {})
        withdrawn: list[int] = []
        groups: dict[int, tuple[PathAttributes, list[int]]] = {}
        for key, attrs in batch.items():
            if attrs is None:
                if out.pop(key, None) is not None:
                    withdrawn.append(key)
                continue
            group = groups.get(id(attrs))
            if group is None:
                group = groups[id(attrs)] = (attrs, [])
            group[1].append(key)
        policy = self.config.export_policy
        announce: list[tuple[PathAttributes, list[int]]] = []
        ebgp = negotiated.codec.ebgp
        for attrs, keys in groups.values():
            if ebgp and attrs.med is not None and not self.speaker._is_local(attrs):
                # RFC 4271 5.1.4: a MED learned from one AS is not passed on to another.
                attrs = self._derive(attrs, "no-med", med=None)
            verdicts = [(attrs, keys)] if policy is None else policy.apply(family, keys, attrs, self.speaker.asn)
            for result, ks in verdicts:
                exported = None if result is None else self._export(link, negotiated, family, result)
                if exported is None:
                    withdrawn += [k for k in ks if out.pop(k, None) is not None]
                else:
                    announce.append((exported, ks))
        if withdrawn:
            await self._write(link, pack_withdrawals(family, withdrawn, max_len))
        for exported, keys in announce:
            out.update(dict.fromkeys(keys, exported))
            hops = (exported.next_hop,) if exported.next_hop else ()
            await self._write(link, pack_announcements(family, exported, keys, negotiated.codec, max_len, hops))

    async def _write(self, link: _Link, messages: list[bytes]) -> None:
        """Write in batches, yielding to the loop and waiting while the socket buffer is full."""
        start = 0
        while start < len(messages):
            transport = link.transport
            if transport is None or transport.is_closing():
                return
            size = 0
            end = start
            while end < len(messages) and size < _WRITE_BATCH:
                size += len(messages[end])
                end += 1
            transport.writelines(messages[start:end])
            start = end
            await link.writable.wait()
            await asyncio.sleep(0)

    def _export(
        self, link: _Link, negotiated: Negotiated, family: Family, attrs: PathAttributes
    ) -> PathAttributes | None:
        """What a route looks like on the wire to this peer (RFC 4271 section 5.1).

        Our own routes keep the next hop they were given; learned routes sent to an external
        peer get ours (next-hop-self), as the peer cannot be assumed to reach the original one.
        """
        next_hop = attrs.next_hop
        if negotiated.codec.ebgp and next_hop is not None and not self.speaker._is_local(attrs):
            next_hop = None
        if next_hop is None:
            transport = link.transport
            local = transport.get_extra_info("sockname")[0] if transport is not None else None
            if local is None:
                return None
            local_is_v6 = ":" in local
            if local_is_v6 != (family == IPV6_UNICAST):
                log.warning("%s: no %s next hop for a route without one; not sent", self.address, family)
                return None
            next_hop = local.split("%")[0]
        if negotiated.codec.ebgp:
            as_path = prepend(attrs.as_path, self.speaker.asn)
            local_pref = None
        else:
            as_path = attrs.as_path or ()
            local_pref = attrs.local_pref if attrs.local_pref is not None else 100
        origin = attrs.origin if attrs.origin is not None else int(Origin.IGP)
        return replace(attrs, as_path=as_path, next_hop=next_hop, local_pref=local_pref, origin=origin)


@dataclass
class Subscription:
    """An event stream; iterating it yields events until the speaker stops or it is closed."""

    speaker: Speaker
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            if self.speaker._reading_paused and self.queue.qsize() < _EVENT_LOW_WATER:
                self.speaker._pause_reading(False)
            yield event

    def close(self) -> None:
        if self in self.speaker._subscribers:
            self.speaker._subscribers.remove(self)
        self.queue.put_nowait(None)


class Speaker:
    """A BGP speaker: one AS, one router id, any number of peers, all in one network namespace."""

    def __init__(
        self,
        asn: int,
        router_id: str,
        *,
        listen: Sequence[tuple[str, int]] = (),
        netns: str | None = None,
        routing: DecisionOptions | None = None,
    ) -> None:
        """`routing` turns the speaker into a router: a Loc-RIB selects best paths from all peers
        and they are advertised to the others. Without it the speaker only originates routes and
        collects what peers send (an injector, like ExaBGP)."""
        self.rib = LocRib(asn, router_id, routing) if routing is not None else None
        self.rib_listeners: list[Callable[[list[Change]], None]] = []
        self.asn = asn
        self.router_id = router_id
        self.listen = list(listen)
        self.netns = netns
        self.peers: dict[str, Peer] = {}
        self._originated: dict[Family, dict[int, PathAttributes]] = {}
        self._subscribers: list[Subscription] = []
        self._servers: list[asyncio.Server] = []
        self._listen_socks: list[socket.socket] = []
        self._conns: set[_Conn] = set()
        self._local_attrs: dict[int, PathAttributes] = {}
        self._reading_paused = False
        self._started = False

    # ---- lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for address, port in self.listen:
            family = family_of(address)
            sock = new_tcp_socket(self.netns, family)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address, port))
                sock.listen(64)
                for peer in self.peers.values():
                    self._secure_listener(sock, peer.config)
            except OSError:
                sock.close()
                await self._close_servers()
                raise
            self._listen_socks.append(sock)
            self._servers.append(await loop.create_server(lambda: self._track(_Conn(self)), sock=sock))
        self._started = True
        for peer in self.peers.values():
            peer.start()

    async def stop(self, message: str = "") -> None:
        """Cease (administrative shutdown) to every peer, wait for the NOTIFICATIONs to leave, close."""
        self._started = False
        for peer in self.peers.values():
            peer.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, message)
        await asyncio.gather(*(peer.closed() for peer in self.peers.values()))
        for peer in self.peers.values():
            for link in peer._links():
                link.cancel_timers()
                link.cancel_connect()
        await self._close_servers()
        for sub in list(self._subscribers):
            sub.close()

    async def _close_servers(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._conns):
            if conn.transport is not None:
                conn.transport.abort()
        self._servers.clear()
        for sock in self._listen_socks:
            sock.close()
        self._listen_socks.clear()

    def _track(self, conn: _Conn) -> _Conn:
        self._conns.add(conn)
        conn.closed.add_done_callback(lambda _: self._conns.discard(conn))
        return conn

    # ---- peers

    def add_peer(self, config: PeerConfig) -> Peer:
        if config.key in self.peers:
            raise ValueError(f"peer {config.key} already configured")
        if self.rib is None and (config.import_policy or config.export_policy):
            raise ValueError(f"peer {config.key}: policies need a speaker with routing enabled")
        peer = Peer(self, config)
        self.peers[config.key] = peer
        for sock in self._listen_socks:
            self._secure_listener(sock, config)
        if self._started:
            peer.start()
        return peer

    async def remove_peer(self, address: str) -> None:
        peer = self.peers.pop(str(ipaddress.ip_address(address)))
        peer.stop(CeaseSubcode.PEER_DECONFIGURED)
        await peer.closed()
        for sock in self._listen_socks:
            if peer.config.md5:
                with contextlib.suppress(OSError):
                    set_md5(sock, peer.config.address, None)

    async def reconfigure_peer(self, config: PeerConfig) -> Peer:
        """Apply a changed configuration: the session restarts with Cease 6/6, as routers do."""
        old = self.peers.get(config.key)
        if old is not None and old.config == config:
            return old
        if old is not None:
            self.peers.pop(config.key)
            old.stop(CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
            await old.closed()
        return self.add_peer(config)

    def peer(self, address: str) -> Peer:
        return self.peers[str(ipaddress.ip_address(address))]

    def _secure_listener(self, sock: socket.socket, config: PeerConfig) -> None:
        if config.md5 and family_of(config.address) == sock.family:
            set_md5(sock, config.address, config.md5)
        if config.ttl_security and family_of(config.address) == sock.family:
            set_ttl_security(sock)

    def _incoming(self, conn: _Conn, transport: asyncio.Transport) -> None:
        host = transport.get_extra_info("peername")[0].split("%")[0]
        peer = self.peers.get(str(ipaddress.ip_address(host)))
        if peer is None:
            log.info("connection from unconfigured %s refused", host)
            transport.close()
            return
        peer.incoming(conn, transport)

    # ---- routes

    def announce(self, family: Family, keys: Iterable[int], attrs: PathAttributes) -> None:
        """Originate prefixes with one attribute set; `attrs.next_hop` None means our own address."""
        keys = list(keys)
        self._originated.setdefault(family, {}).update(dict.fromkeys(keys, attrs))
        self._local_attrs[id(attrs)] = attrs
        if self.rib is not None:
            self._propagate(self.rib.update(LOCAL, family, keys, attrs))
            return
        for peer in self.peers.values():
            peer.enqueue(family, keys, attrs)

    def withdraw(self, family: Family, keys: Iterable[int]) -> None:
        table = self._originated.get(family, {})
        gone = [k for k in keys if table.pop(k, None) is not None]
        if self.rib is not None:
            self._propagate(self.rib.withdraw(LOCAL, family, gone))
            return
        for peer in self.peers.values():
            peer.enqueue(family, gone, None)

    def originated(self, family: Family) -> dict[int, PathAttributes]:
        return self._originated.get(family, {})

    def _is_local(self, attrs: PathAttributes) -> bool:
        return self._local_attrs.get(id(attrs)) is attrs

    # ---- routing (with a Loc-RIB)

    def _accept(self, peer: Peer, family: Family, keys: list[int], attrs: PathAttributes) -> None:
        """Import policy, then the decision process, then the other peers and the listeners."""
        assert self.rib is not None
        policy = peer.config.import_policy
        verdicts = [(attrs, keys)] if policy is None else policy.apply(family, keys, attrs, self.asn)
        changes: list[Change] = []
        for result, ks in verdicts:
            if result is None:
                changes += self.rib.withdraw(peer.address, family, ks)
            else:
                changes += self.rib.update(peer.address, family, ks, result)
        self._propagate(changes)

    def _propagate(self, changes: list[Change]) -> None:
        if not changes:
            return
        for listener in self.rib_listeners:
            listener(changes)
        for peer in self.peers.values():
            if peer.negotiated is None:
                continue
            for change in changes:
                best = change.best
                value = best[1] if best is not None and self._exportable(peer, best[0]) else None
                peer.enqueue(change.family, (change.key,), value)

    def _exportable(self, peer: Peer, source: str) -> bool:
        """Not back to the peer it came from; nothing learned over iBGP to another iBGP peer (no reflection)."""
        if source == peer.address:
            return False
        if source == LOCAL:
            return True
        assert self.rib is not None
        learned_ibgp = not self.rib.peer_info(source).ebgp
        return not (learned_ibgp and peer.negotiated is not None and not peer.negotiated.codec.ebgp)

    def _export_view(self, peer: Peer, family: Family) -> dict[int, PathAttributes | None]:
        """Everything this peer should hold from us right now, before export policy."""
        if self.rib is None:
            return dict(self._originated.get(family, {}))
        view: dict[int, PathAttributes | None] = {}
        for key in self.rib.table(family):
            best = self.rib.selected(family, key)[0]
            if self._exportable(peer, best[0]):
                view[key] = best[1]
        return view

    def _routes_gone(self, peer: Peer) -> None:
        """A session ended: its routes leave the Loc-RIB (the peer stays known for its next session)."""
        if self.rib is None or peer.address not in self.rib.peers():
            return
        for family in list(self.rib.families(peer.address)):
            self._propagate(self.rib.withdraw(peer.address, family, list(self.rib.adj_rib_in(peer.address, family))))

    def _register(self, peer: Peer, negotiated: Negotiated) -> None:
        if self.rib is not None:
            open_ = negotiated.peer_open
            self.rib.add_peer(peer.address, PeerInfo(peer.address, open_.router_id, open_.asn, negotiated.codec.ebgp))

    def set_policies(self, address: str, import_policy: Policy | None, export_policy: Policy | None) -> None:
        """Replace a peer's policies while it runs: soft reconfiguration, no session reset.

        Import is re-run over the routes kept as received (Adj-RIB-In before policy); export
        re-sends the peer's whole view through the new policy, withdrawing what it now rejects.
        """
        if self.rib is None and (import_policy or export_policy):
            raise ValueError("policies need a speaker with routing enabled")
        peer = self.peer(address)
        peer.config = replace(peer.config, import_policy=import_policy, export_policy=export_policy)
        if peer.negotiated is None:
            return
        if self.rib is not None:
            for family, table in peer.rib_in.items():
                by_attrs: dict[int, tuple[PathAttributes, list[int]]] = {}
                for key, attrs in table.items():
                    by_attrs.setdefault(id(attrs), (attrs, []))[1].append(key)
                for attrs, keys in by_attrs.values():
                    self._accept(peer, family, keys, attrs)
        for family in peer.negotiated.families:
            view = self._export_view(peer, family)
            for key in peer.adj_rib_out.get(family, {}):
                view.setdefault(key, None)
            peer.enqueue_many(family, view)

    # ---- events

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subscribers.append(sub)
        return sub

    def _emit(self, event: Event) -> None:
        for sub in self._subscribers:
            sub.queue.put_nowait(event)
            if not self._reading_paused and sub.queue.qsize() > _EVENT_HIGH_WATER:
                self._pause_reading(True)

    def _pause_reading(self, pause: bool) -> None:
        """Back-pressure: a slow consumer of events slows the peers down instead of growing memory."""
        self._reading_paused = pause
        for peer in self.peers.values():
            for link in peer._links():
                transport = link.transport
                if transport is not None and not transport.is_closing():
                    if pause:
                        transport.pause_reading()
                    else:
                        transport.resume_reading()
