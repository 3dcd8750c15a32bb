"""The asyncio edge of the BGP speaker: sockets, timers and tables around the sans-IO `Session`.

Sessions are decided in `fsm.Session`, each peer's routes in `adjribin` and `adjribout`, best
paths in `rib.LocRib`; this module and `peer.py` carry out what they decide. Received bytes
go through `asyncio.Protocol.data_received`, so one socket read of many UPDATEs is handled in
one call with no await per message, and the loop is back to timers within one read's worth
of work: keepalives leave on time while a full table arrives.
Outbound routes go through a per-peer queue of pending changes drained by a task that yields
between batches and waits whenever the peer's socket buffer is full (perf-robustness.md B.5,
cases 23, 24 and 27).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from bgplab.bgp.bfd import BfdManager, BfdStateChange
from bgplab.bgp.connection import Connection
from bgplab.bgp.events import Event
from bgplab.bgp.fsm import Negotiated, State
from bgplab.bgp.peer import BfdSettings, Peer, PeerConfig
from bgplab.bgp.policy import Policy
from bgplab.bgp.rib import LOCAL, Change, DecisionOptions, LocRib, PeerInfo, Reselected
from bgplab.bgp.sockets import family_of, new_tcp_socket, set_md5, set_ttl_security
from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.constants import CeaseSubcode, ErrorCode
from bgplab.bgp.wire.update import Family

__all__ = ["BfdSettings", "Peer", "PeerConfig", "Speaker", "Subscription"]

log = logging.getLogger("bgplab.speaker")

_EVENT_HIGH_WATER = 20000
_EVENT_LOW_WATER = 2000
_FREEZE_EVERY = 1024 * 1024
"""Bytes received between two `gc.freeze()`s (see `ingested`). Until frozen, a table's new
objects are scanned by every full collection: 4 MiB of realistic UPDATEs made those pauses
reach 100 ms in bench.bestpath, 1 MiB keeps them near 15."""
_WITHDRAW_SLICE = 4096
"""Prefixes of an ended session taken out of the Loc-RIB per event-loop turn (see `_routes_gone`)."""


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
            self.speaker.event_taken(self)
            yield event

    def close(self) -> None:
        self.speaker.unsubscribe(self)
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
        freeze_gc: bool = True,
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
        self._conns: set[Connection] = set()
        self._local_attrs: dict[int, PathAttributes] = {}
        self._leaving: dict[str, list[tuple[Family, list[int]]]] = {}
        """Routes of ended sessions still to leave the Loc-RIB, per peer (see `_routes_gone`)."""
        self.freeze_gc = freeze_gc
        self._bfd: BfdManager | None = None
        self._since_freeze = 0
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
            self._servers.append(await loop.create_server(lambda: self.track(Connection(self)), sock=sock))
        self._started = True
        for peer in self.peers.values():
            peer.start()

    # ---- BFD

    def _bfd_track(self, peer: Peer, local: str) -> None:
        """Start (once) the BFD session of a peer whose BGP session just came up from `local`.

        BFD runs on, independently of BGP, from then on; it is only needed once the path has
        been used, and the local address is only certain once a connection exists.
        """
        settings = peer.config.bfd
        if settings is None:
            return
        if self._bfd is None:
            self._bfd = BfdManager(self.netns, on_change=self._bfd_changed)
        if peer.address in self._bfd.remotes:
            return
        self._bfd.add(
            local,
            peer.address,
            desired_min_tx=settings.desired_min_tx,
            required_min_rx=settings.required_min_rx,
            detect_mult=settings.multiplier,
        )

    def _bfd_changed(self, change: BfdStateChange) -> None:
        """BFD saw the path fail: tear BGP down at once (Cease / Hard Reset, RFC 8538, carrying
        the cause, BFD Down of RFC 9384), which withdraws the peer's routes."""
        peer = self.peers.get(change.remote)
        if peer is None or not change.failed:
            return
        log.warning("%s: BFD down (%s): tearing the BGP session down", change.remote, change.describe())
        if peer.state in (State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED):
            cause = bytes((ErrorCode.CEASE, CeaseSubcode.BFD_DOWN))
            peer.reset(ErrorCode.CEASE, CeaseSubcode.HARD_RESET, cause, "BFD session down")

    def bfd_state(self, address: str) -> str | None:
        """The BFD state with a peer ("up", "down", "init", "admindown"), None without BFD."""
        if self._bfd is None or address not in self._bfd.remotes:
            return None
        return self._bfd.state(address).label

    async def stop(self, message: str = "") -> None:
        """Cease (administrative shutdown) to every peer, wait for the NOTIFICATIONs to leave, close."""
        self._started = False
        for peer in self.peers.values():
            peer.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, message)
        await asyncio.gather(*(peer.closed() for peer in self.peers.values()))
        for peer in self.peers.values():
            for link in peer.links():
                link.cancel_timers()
                link.cancel_connect()
        await self._close_servers()
        if self._bfd is not None:
            self._bfd.close()
            self._bfd = None
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

    def track(self, conn: Connection) -> Connection:
        """Keep a connection (ours or the peer's) until it closes, to abort it when we stop."""
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
        if self._bfd is not None and peer.address in self._bfd.remotes:
            self._bfd.remove(peer.address)
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

    def connection_accepted(self, conn: Connection, transport: asyncio.Transport) -> None:
        """A connection came in on a listening socket: to its peer, or closed if we have none."""
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
            self._propagate(self.rib.apply(LOCAL, family, keys, attrs))
            return
        for peer in self.peers.values():
            peer.enqueue(family, keys, attrs)

    def withdraw(self, family: Family, keys: Iterable[int]) -> None:
        table = self._originated.get(family, {})
        gone = [k for k in keys if table.pop(k, None) is not None]
        if self.rib is not None:
            self._propagate(self.rib.apply(LOCAL, family, gone, None))
            return
        for peer in self.peers.values():
            peer.enqueue(family, gone, None)

    def originated(self, family: Family) -> dict[int, PathAttributes]:
        return self._originated.get(family, {})

    def is_originated(self, attrs: PathAttributes) -> bool:
        """Whether an attribute set is one we originated (`announce`), rather than learned."""
        return self._local_attrs.get(id(attrs)) is attrs

    # ---- routing (with a Loc-RIB)

    def routes_learned(self, peer: Peer, family: Family, keys: list[int], attrs: PathAttributes) -> None:
        """A peer's routes as received: import policy, then the decision process, then the other
        peers and the listeners."""
        assert self.rib is not None
        policy = peer.config.import_policy
        verdicts = [(attrs, keys)] if policy is None else policy.apply(family, keys, attrs, self.asn)
        for result, ks in verdicts:
            self._propagate(self.rib.apply(peer.address, family, ks, result))

    def routes_lost(self, address: str, family: Family, keys: list[int]) -> None:
        """A peer's routes it withdrew or may no longer use: out of the Loc-RIB, and what that changes on."""
        assert self.rib is not None
        self._propagate(self.rib.apply(address, family, keys, None))

    def _propagate(self, reselected: Reselected) -> None:
        """Hand what the Loc-RIB changed to the listeners and to every established peer.

        A full table passes through here a few hundred prefixes at a time, so nothing is done
        per prefix per peer: each peer gets the batch's best paths as whole dicts, one per
        source peer, or their withdrawal where `_exportable` says no, decided once per source.
        """
        if not reselected.picks:
            return
        if self.rib_listeners:
            assert self.rib is not None
            changes = self.rib.changes(reselected)
            for listener in self.rib_listeners:
                listener(changes)
        family = reselected.family
        for peer in self.peers.values():
            if peer.negotiated is None:
                continue
            for source, routes in reselected.best.items():
                if source is None or self._exportable(peer, source):
                    peer.enqueue_many(family, routes)
                else:
                    peer.enqueue_many(family, dict.fromkeys(routes))

    def _exportable(self, peer: Peer, source: str) -> bool:
        """Not back to the peer it came from; nothing learned over iBGP to another iBGP peer (no
        reflection); only from the groups the peer's `export_groups` names."""
        if source == peer.address:
            return False
        groups = peer.config.export_groups
        if source == LOCAL:
            return groups is None or LOCAL in groups
        if groups is not None:
            origin = self.peers.get(source)
            if origin is None or origin.config.group not in groups:
                return False
        assert self.rib is not None
        learned_ibgp = not self.rib.peer_info(source).ebgp
        return not (learned_ibgp and peer.negotiated is not None and not peer.negotiated.codec.ebgp)

    def export_view(self, peer: Peer, family: Family) -> dict[int, PathAttributes | None]:
        """Everything this peer should hold from us right now, before export policy."""
        if self.rib is None:
            return dict(self._originated.get(family, {}))
        view: dict[int, PathAttributes | None] = {}
        for source, routes in self.rib.best_paths(family).items():
            if self._exportable(peer, source):
                view.update(routes)
        return view

    def _routes_gone(self, peer: Peer) -> None:
        """A session ended: its routes leave the Loc-RIB (the peer stays known for its next session).

        A whole table can go at once (BFD saw the link fail), at about a microsecond a prefix
        plus what the other peers and the listeners are handed: 0.1 s for 100k prefixes, while
        other sessions' keepalives and BFD share the loop. So the first `_WITHDRAW_SLICE` go now
        and the rest one slice per loop turn. A new session of the peer first finishes the job
        (`_register`), so nothing it sends is taken out by its predecessor's leftovers.
        """
        if self.rib is None or peer.address not in self.rib.peers():
            return
        work = self._leaving.setdefault(peer.address, [])
        work += [(f, list(self.rib.adj_rib_in(peer.address, f))) for f in self.rib.families(peer.address)]
        self._leave(peer.address, _WITHDRAW_SLICE)

    def _leave(self, address: str, budget: int | None) -> None:
        """Take up to `budget` (None: all) of an ended session's routes out of the Loc-RIB; the
        rest on the next loop turn."""
        assert self.rib is not None
        work = self._leaving.get(address, [])
        while work and (budget is None or budget > 0):
            family, keys = work[-1]
            cut = 0 if budget is None else max(0, len(keys) - budget)
            gone = keys[cut:]
            del keys[cut:]
            if not keys:
                work.pop()
            if budget is not None:
                budget -= len(gone)
            self.routes_lost(address, family, gone)
        if work:
            asyncio.get_running_loop().call_soon(self._leave, address, _WITHDRAW_SLICE)
        else:
            self._leaving.pop(address, None)

    def peer_up(self, peer: Peer, negotiated: Negotiated, local_address: str | None) -> None:
        """A peer's session came up from `local_address`: BFD starts if configured, and the
        Loc-RIB learns who the peer is."""
        if local_address is not None:
            self._bfd_track(peer, local_address.split("%")[0])
        self._register(peer, negotiated)

    def peer_down(self, peer: Peer) -> None:
        """A peer's session ended; see `_routes_gone`."""
        self._routes_gone(peer)

    def _register(self, peer: Peer, negotiated: Negotiated) -> None:
        if self.rib is not None:
            self._leave(peer.address, None)
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
                    self.routes_learned(peer, family, keys, attrs)
        for family in peer.negotiated.families:
            view = self.export_view(peer, family)
            for key in peer.adj_rib_out.get(family, {}):
                view.setdefault(key, None)
            peer.enqueue_many(family, view)

    # ---- events

    def subscribe(self) -> Subscription:
        sub = Subscription(self)
        self._subscribers.append(sub)
        return sub

    @property
    def listening(self) -> bool:
        """Whether anyone subscribed to events: if not, they are not even made."""
        return bool(self._subscribers)

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def event_taken(self, sub: Subscription) -> None:
        """A subscriber took an event: reading resumes once its backlog is short again."""
        if self._reading_paused and sub.queue.qsize() < _EVENT_LOW_WATER:
            self._pause_reading(False)

    def emit(self, event: Event) -> None:
        for sub in self._subscribers:
            sub.queue.put_nowait(event)
            if not self._reading_paused and sub.queue.qsize() > _EVENT_HIGH_WATER:
                self._pause_reading(True)

    def _pause_reading(self, pause: bool) -> None:
        """Back-pressure: a slow consumer of events slows the peers down instead of growing memory."""
        self._reading_paused = pause
        for peer in self.peers.values():
            for link in peer.links():
                if link.conn is not None:
                    link.conn.hold("events", pause)

    def ingested(self, nbytes: int) -> None:
        """Keep the garbage collector off the routing table once it has grown.

        A table is millions of long-lived, acyclic objects; left in the collected generations
        they make every full collection scan all of them (a quarter of ingest time, and pauses
        over 100 ms, in bench/ingest). Young cycles are collected first, then everything alive
        is moved out of the collector's sight (gc.freeze); reference counting still frees it.
        """
        if not self.freeze_gc:
            return
        self._since_freeze += nbytes
        if self._since_freeze >= _FREEZE_EVERY:
            self._since_freeze = 0
            gc.collect(1)
            gc.freeze()
