"""A configured neighbour, the asyncio side: its session(s), and the task that sends to it.

What it receives goes through its `AdjRibIn` (loop detection, RFC 7313 stale routes) and
`PrefixLimits` (maximum prefix), and what they yield on to the speaker's Loc-RIB and the event
listeners. What it sends is a queue of pending changes, drained through its session's
`AdjRibOut` in yielding batches, waiting whenever the socket buffer is full (perf-robustness.md
B.5 cases 24, 27). The decisions are in those sans-IO classes; this module moves their results
between the session, the speaker and the socket, and keeps the time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from bgplab.bgp.adjribin import NOT_REFRESHED, AdjRibIn, LimitReached, PrefixLimits
from bgplab.bgp.adjribout import AdjRibOut, RefreshPacer
from bgplab.bgp.connection import Connection, Link
from bgplab.bgp.events import (
    EndOfRib,
    MaxPrefixWarning,
    NotificationEvent,
    PeerStateChanged,
    RoutesReceived,
    RoutesWithdrawn,
    UpdateErrorsEvent,
)
from bgplab.bgp.fsm import (
    Negotiated,
    NotificationReceived,
    NotificationSent,
    Session,
    SessionConfig,
    State,
    StateChanged,
    collision_loser,
)
from bgplab.bgp.policy import MaxPrefix, Policy
from bgplab.bgp.sockets import set_md5, set_ttl_security
from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.constants import CeaseSubcode, ErrorCode, RouteRefreshSubtype
from bgplab.bgp.wire.errors import UpdateError
from bgplab.bgp.wire.messages import Notification, encode_notification, encode_route_refresh, shutdown_data
from bgplab.bgp.wire.messages import RouteRefresh as RouteRefreshMessage
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family, Update
from bgplab.bgp.wire.update_encoder import end_of_rib

if TYPE_CHECKING:
    from bgplab.bgp.speaker import Speaker

log = logging.getLogger("bgplab.speaker")

_WRITE_BATCH = 256 * 1024
_SEND_CHUNK = 256
"""Pending changes put through export policy and encoded between looks at the clock (see `_send_batch`)."""
_SEND_TURN = 0.005
"""Seconds of that work per event-loop turn before the sender lets the rest of the loop run."""
_BORR = RouteRefreshSubtype.BEGINNING_OF_ROUTE_REFRESH
_EORR = RouteRefreshSubtype.END_OF_ROUTE_REFRESH


@dataclass(frozen=True, slots=True)
class BfdSettings:
    """RFC 5880 timers in milliseconds; the MSEE runs 300 x 3."""

    desired_min_tx: float = 300.0
    required_min_rx: float = 300.0
    multiplier: int = 3


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
    bfd: BfdSettings | None = None
    """Tie the session to a single-hop BFD session: BFD down tears BGP down at once."""
    group: str = ""
    """The peer's role, e.g. "customer" or "gateway"; `export_groups` of other peers refer to it."""
    export_groups: frozenset[str] | None = None
    """Send this peer only routes learned from peers of these groups ("local" for our own
    originations); None sends every best path. How an MSEE keeps one customer's routes from
    another customer and sends the gateway only what came from the customer."""

    @property
    def key(self) -> str:
        return str(ipaddress.ip_address(self.address))


class Peer:
    """One configured neighbour: its session(s), its Adj-RIBs and its outbound queue."""

    def __init__(self, speaker: Speaker, config: PeerConfig) -> None:
        self.speaker = speaker
        self.config = config
        self.address = config.key
        """Canonical peer address; computed once, as it is read for every route sent or received."""
        self.main = Link(self, Session(self._session_config()))
        self.candidate: Link | None = None
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
        self.adj_in = AdjRibIn(speaker.asn, config.allow_own_as, self.stats)
        self.limits = PrefixLimits(config.max_prefix) if config.max_prefix else None
        self.adj_out: AdjRibOut | None = None
        """The established session's; None while there is none."""
        self.refresh = RefreshPacer()
        self._pending: dict[Family, dict[int, PathAttributes | None]] = {}
        self._wake = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._refresh_timers: dict[Family, asyncio.TimerHandle] = {}
        self._closing: list[asyncio.Future[None]] = []
        self.muted = False
        """A fault played from this side: nothing is sent (no KEEPALIVE either), so the peer's hold
        timer expires while the connection stays up (a far end that hangs, not one that is cut)."""

    @property
    def state(self) -> State:
        return self.main.session.state

    @property
    def rib_in(self) -> dict[Family, dict[int, PathAttributes]]:
        """Routes as received, before import policy, per family."""
        return self.adj_in.tables

    @property
    def adj_rib_out(self) -> dict[Family, dict[int, PathAttributes]]:
        """Routes as sent, after export policy, per family; empty without a session."""
        return self.adj_out.tables if self.adj_out is not None else {}

    def received_count(self) -> int:
        return len(self.adj_in)

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

    def secure(self, sock: socket.socket) -> None:
        """TCP MD5 and GTSM on a socket about to connect to the peer, as configured."""
        if self.config.md5:
            set_md5(sock, self.config.address, self.config.md5)
        if self.config.ttl_security:
            set_ttl_security(sock)

    # ---- control

    def start(self) -> None:
        self.main.run(self.main.session.start())

    def stop(self, subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, message: str = "") -> None:
        data = shutdown_data(message) if message and subcode in (2, 4) else b""
        for link in self.links():
            if link.conn is not None:
                self._closing.append(link.conn.closed)
            link.run(link.session.stop(subcode, data))
        self.candidate = None

    def reset(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        """Tear the session down with a NOTIFICATION of the caller's choosing; it restarts by itself."""
        self.main.run(self.main.session.fail(code, subcode, data, reason))

    def links(self) -> list[Link]:
        """The main link, and the candidate during a collision."""
        return [self.main] + ([self.candidate] if self.candidate is not None else [])

    async def closed(self) -> None:
        """Wait (briefly) until the connections `stop` closed are gone, so a final NOTIFICATION has left."""
        waits, self._closing = self._closing, []
        if waits:
            await asyncio.wait(waits, timeout=1.0)

    # ---- incoming connections and collisions (RFC 4271 section 6.8)

    def incoming(self, conn: Connection, transport: asyncio.Transport) -> None:
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
            self.candidate = Link(self, session)
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

    # ---- session callbacks (from `Link.run`)

    def on_state(self, link: Link, change: StateChanged) -> None:
        if link is self.candidate and change.new is State.IDLE:
            self.candidate = None
            return
        if change.new is State.OPENCONFIRM:
            self._resolve_collision()
        if link is self.main:
            self.speaker.emit(
                PeerStateChanged(time.monotonic(), self.address, change.old.value, change.new.value, change.reason)
            )

    def on_up(self, link: Link, negotiated: Negotiated) -> None:
        transport = link.transport
        local = transport.get_extra_info("sockname")[0] if transport is not None else None
        self.negotiated = negotiated
        self.established_at = time.monotonic()
        self.speaker.peer_up(self, negotiated, local)
        self.adj_out = AdjRibOut(self.address, negotiated, local, self.speaker.is_originated)
        self._pending = {fam: self.speaker.export_view(self, fam) for fam in negotiated.families}
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(link, self.adj_out))
        self._wake.set()

    def on_down(self, reason: str) -> None:
        self.stats["flaps"] += 1
        self.negotiated = None
        self.established_at = None
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        self._pending = {}
        self.refresh.session_down()
        for handle in self._refresh_timers.values():
            handle.cancel()
        self._refresh_timers = {}
        if self.limits is not None:
            self.limits.reset()
        self.adj_out = None
        held = self.adj_in.clear()
        self.speaker.peer_down(self)
        now = time.monotonic()
        for family, table in held.items():
            if table:
                self.speaker.emit(RoutesWithdrawn(now, self.address, family, list(table), f"session down: {reason}"))

    def on_notification(self, action: NotificationReceived | NotificationSent) -> None:
        note = action.notification
        direction = "received" if isinstance(action, NotificationReceived) else "sent"
        self.stats[f"notifications_{direction}"] += 1
        log.info("%s %s NOTIFICATION %s", self.address, direction, note.describe())
        self.speaker.emit(
            NotificationEvent(
                time.monotonic(), self.address, direction, note.code, note.subcode, note.data, note.describe()
            )
        )

    def on_update_errors(self, errors: tuple[UpdateError, ...]) -> None:
        for error in errors:
            log.warning("%s UPDATE error handled per RFC 7606: %s", self.address, error)
        self.speaker.emit(UpdateErrorsEvent(time.monotonic(), self.address, errors))

    def on_refresh(self, request: RouteRefreshMessage) -> None:
        family = (request.afi, request.safi)
        if request.subtype == _BORR:
            self.adj_in.begin_refresh(family)
        elif request.subtype == _EORR:
            gone = self.adj_in.end_refresh(family)
            if gone:
                listening = self.speaker.listening
                self._lost(family, gone, time.monotonic() if listening else 0.0, listening, NOT_REFRESHED)
        else:
            loop = asyncio.get_running_loop()
            wait = self.refresh.request(family, loop.time())
            if wait is None:
                return
            if wait > 0:
                self._refresh_timers[family] = loop.call_later(wait, self._refresh_ready, family)
            else:
                self._wake.set()

    def _refresh_ready(self, family: Family) -> None:
        self._refresh_timers.pop(family, None)
        self.refresh.ready(family, asyncio.get_running_loop().time())
        self._wake.set()

    def on_update(self, update: Update) -> None:
        """Per UPDATE: its changes to the Adj-RIB-In on to the listeners and the Loc-RIB, with the
        maximum-prefix check after each family's announcements."""
        speaker = self.speaker
        listening = speaker.listening
        now = time.monotonic() if listening else 0.0
        limits = self.limits
        for family, keys, attrs, reason in self.adj_in.receive(update):
            if attrs is None:
                self._lost(family, keys, now, listening, reason)
                continue
            if listening:
                speaker.emit(RoutesReceived(now, self.address, family, keys, attrs))
            if speaker.rib is not None:
                speaker.routes_learned(self, family, keys, attrs)
            if limits is not None and self._limit_reached(limits.check(family, self.accepted_count)):
                return
        if listening and not update.nlri and not update.withdrawn:
            family_eor = update.end_of_rib()
            if family_eor is not None:
                speaker.emit(EndOfRib(now, self.address, family_eor))

    def _lost(self, family: Family, keys: list[int], now: float, listening: bool, reason: str) -> None:
        """Prefixes the Adj-RIB-In no longer holds: the listeners and the Loc-RIB are told."""
        if listening:
            self.speaker.emit(RoutesWithdrawn(now, self.address, family, keys, reason))
        if self.speaker.rib is not None:
            self.speaker.routes_lost(self.address, family, keys)

    def accepted_count(self, family: Family) -> int:
        """Prefixes accepted by import policy (all received ones when the speaker keeps no Loc-RIB)."""
        rib = self.speaker.rib
        if rib is not None and self.address in rib.peers():
            return len(rib.adj_rib_in(self.address, family))
        return len(self.adj_in.tables.get(family, ()))

    def _limit_reached(self, verdict: LimitReached | None) -> bool:
        """Carry out a maximum-prefix verdict; True if the session is over."""
        if verdict is None:
            return False
        count, limit = verdict.count, verdict.limit
        if not verdict.exceeded:
            percent = limit.warning_percent
            log.warning("%s: %d prefixes, %d%% of the limit %d", self.address, count, percent, limit.limit)
            self.speaker.emit(MaxPrefixWarning(time.monotonic(), self.address, verdict.family, count, limit.limit))
            return False
        log.warning("%s: %s", self.address, verdict.reason)
        subcode = CeaseSubcode.MAXIMUM_PREFIXES_REACHED
        self.main.run(self.main.session.fail(ErrorCode.CEASE, subcode, verdict.data, verdict.reason, limit.restart))
        return True

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

    async def _send_loop(self, link: Link, out: AdjRibOut) -> None:
        eor_sent = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending or self.refresh.due:
                refresh = self.refresh.next()
                if refresh is not None:
                    await self._resend(link, out, refresh)
                    continue
                family, batch = next(iter(self._pending.items()))
                del self._pending[family]
                await self._send_batch(link, out, family, batch)
            if not eor_sent:
                for family in sorted(out.negotiated.families):
                    await self._write(link, [end_of_rib(family)])
                eor_sent = True

    async def _resend(self, link: Link, out: AdjRibOut, family: Family) -> None:
        """Answer a ROUTE-REFRESH with the whole table, framed by BoRR/EoRR when the peer knows RFC 7313."""
        batch = self._pending.pop(family, {})
        batch.update(self.speaker.export_view(self, family))
        enhanced = out.negotiated.enhanced_route_refresh
        afi, safi = family
        if enhanced:
            await self._write(link, [encode_route_refresh(RouteRefreshMessage(afi, safi, _BORR))])
        await self._send_batch(link, out, family, batch)
        if enhanced:
            await self._write(link, [encode_route_refresh(RouteRefreshMessage(afi, safi, _EORR))])

    async def _send_batch(
        self, link: Link, out: AdjRibOut, family: Family, batch: dict[int, PathAttributes | None]
    ) -> None:
        """Send a batch of changes, yielding to the loop after every `_SEND_TURN` of work.

        A batch can be a whole table (a session coming up, a refresh, a full feed from another
        peer); put through export policy and encoded in one go it would hold the loop for as
        long as that takes, and keepalives and BFD share the loop. A time budget rather than a
        count, as a change costs from a dict lookup (rejected by export policy) to an UPDATE of
        its own, and the sender must keep up with ingest however cheap its work is. The batch is
        no longer in `_pending`, so it is not changed while this awaits; newer changes queue
        behind it.
        """
        loop = asyncio.get_running_loop()
        items = iter(batch.items())
        messages: list[bytes] = []
        turn_ends = loop.time() + _SEND_TURN
        while chunk := list(islice(items, _SEND_CHUNK)):
            messages += out.encode(family, chunk, self.config.export_policy)
            if loop.time() >= turn_ends:
                if messages:
                    await self._write(link, messages)
                else:
                    await asyncio.sleep(0)
                messages = []
                turn_ends = loop.time() + _SEND_TURN
        await self._write(link, messages)

    async def _write(self, link: Link, messages: list[bytes]) -> None:
        """Write in batches, yielding to the loop and waiting while the socket buffer is full."""
        start = 0
        while start < len(messages):
            transport = link.transport
            if transport is None or transport.is_closing() or self.muted:
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
