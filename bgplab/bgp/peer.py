"""A configured neighbour: its sessions, its Adj-RIB-In and Adj-RIB-Out, and what it sends.

Inbound, a peer keeps routes as received (soft reconfiguration), applies loop detection,
RFC 7313 refresh semantics and maximum-prefix, and hands accepted routes to the speaker's
Loc-RIB. Outbound, it drains a queue of pending changes through export policy in yielding
batches, waiting whenever the socket buffer is full (perf-robustness.md B.5 cases 24, 27).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

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
from bgplab.bgp.wire.attributes import PathAttributes, prepend
from bgplab.bgp.wire.constants import CeaseSubcode, ErrorCode, Origin, RouteRefreshSubtype
from bgplab.bgp.wire.errors import UpdateError
from bgplab.bgp.wire.messages import Notification, encode_notification, encode_route_refresh, shutdown_data
from bgplab.bgp.wire.messages import RouteRefresh as RouteRefreshMessage
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family, Update
from bgplab.bgp.wire.update_encoder import end_of_rib, pack_announcements, pack_withdrawals

if TYPE_CHECKING:
    from bgplab.bgp.speaker import Speaker

log = logging.getLogger("bgplab.speaker")

_WRITE_BATCH = 256 * 1024
_SEND_CHUNK = 256
"""Pending changes put through export policy and encoded between looks at the clock (see `_send_batch`)."""
_SEND_TURN = 0.005
"""Seconds of that work per event-loop turn before the sender lets the rest of the loop run."""
_REFRESH_INTERVAL = 1.0
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
    """One configured neighbour: its session(s), its Adj-RIB-In and its outbound queue."""

    def __init__(self, speaker: Speaker, config: PeerConfig) -> None:
        self.speaker = speaker
        self.config = config
        self.address = config.key
        """Canonical peer address; computed once, as it is read for every route sent or received."""
        self.main = Link(self, Session(self._session_config()))
        self.candidate: Link | None = None
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
        self.muted = False
        """A fault played from this side: nothing is sent (no KEEPALIVE either), so the peer's hold
        timer expires while the connection stays up (a far end that hangs, not one that is cut)."""

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

    def _links(self) -> list[Link]:
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

    # ---- session callbacks

    def _on_state(self, link: Link, change: StateChanged) -> None:
        if link is self.candidate and change.new is State.IDLE:
            self.candidate = None
            return
        if change.new is State.OPENCONFIRM:
            self._resolve_collision()
        if link is self.main:
            self.speaker._emit(
                PeerStateChanged(time.monotonic(), self.address, change.old.value, change.new.value, change.reason)
            )

    def _on_up(self, link: Link, negotiated: Negotiated) -> None:
        if self.config.bfd is not None and link.transport is not None:
            self.speaker._bfd_track(self, link.transport.get_extra_info("sockname")[0].split("%")[0])
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
            self.speaker._propagate(rib.apply(self.address, family, keys, None))

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
        path = attrs.as_path
        if not path:
            return False
        count = path[0][1].count(asn) if len(path) == 1 else sum(seg.count(asn) for _, seg in path)
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
            hit = self._derived[key] = (attrs, attrs.with_changes(**changes))
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

    async def _send_loop(self, link: Link, negotiated: Negotiated) -> None:
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

    async def _resend(self, link: Link, negotiated: Negotiated, family: Family) -> None:
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
        self, link: Link, negotiated: Negotiated, family: Family, batch: dict[int, PathAttributes | None]
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
            messages += self._encode(link, negotiated, family, chunk)
            if loop.time() >= turn_ends:
                if messages:
                    await self._write(link, messages)
                else:
                    await asyncio.sleep(0)
                messages = []
                turn_ends = loop.time() + _SEND_TURN
        await self._write(link, messages)

    def _encode(
        self, link: Link, negotiated: Negotiated, family: Family, chunk: list[tuple[int, PathAttributes | None]]
    ) -> list[bytes]:
        """The UPDATEs for some changes: export policy per attribute set, Adj-RIB-Out kept to send only real changes."""
        max_len = negotiated.max_message_length
        out = self.adj_rib_out.setdefault(family, {})
        withdrawn: list[int] = []
        groups: dict[int, tuple[PathAttributes, list[int]]] = {}
        for key, attrs in chunk:
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
        messages = pack_withdrawals(family, withdrawn, max_len) if withdrawn else []
        for exported, keys in announce:
            out.update(dict.fromkeys(keys, exported))
            hops = (exported.next_hop,) if exported.next_hop else ()
            messages += pack_announcements(family, exported, keys, negotiated.codec, max_len, hops)
        return messages

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

    def _export(
        self, link: Link, negotiated: Negotiated, family: Family, attrs: PathAttributes
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
        return attrs.with_changes(as_path=as_path, next_hop=next_hop, local_pref=local_pref, origin=origin)
