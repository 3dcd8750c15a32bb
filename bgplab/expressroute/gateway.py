"""The VNet ExpressRoute gateway: AS 65515, peering with both MSEEs of every connected circuit.

It advertises the VNet's address space (with the VNet's custom community and the region's
private-peering community when one is set, reference section 5), learns on-premises routes, and
turns everything it learned into the VNet's effective routes (`effective`), which it writes into
its namespace's kernel FIB, so the VNet's hosts, routed through this node, send packets where
Azure would: to an MSEE (ECMP over the selected ones), to the Azure internet edge, to an
appliance, or nowhere.

Best-path selection in the Loc-RIB plays no part in forwarding here: Azure's order (connection
weight before AS path length, ECMP across up to four circuits) is not BGP's decision process, so
the effective routes are computed from every path every MSEE sent, after each change settles.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bgplab.bgp.events import PeerStateChanged, RoutesReceived, RoutesWithdrawn
from bgplab.bgp.fib import BLACKHOLE, Fib
from bgplab.bgp.fib import Change as FibChange
from bgplab.bgp.peer import PeerConfig
from bgplab.bgp.records import event_records, family_named, route_row, session_row
from bgplab.bgp.rib import DecisionOptions
from bgplab.bgp.speaker import Speaker
from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.constants import Origin
from bgplab.bgp.wire.nlri import parse_prefix, prefix_text
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family
from bgplab.expressroute import control, effective
from bgplab.expressroute.control import EventHub, Handler
from bgplab.expressroute.model import AZURE_ASN, GATEWAY_ASN, Model, Side
from bgplab.expressroute.services import Catalogue, load_catalogue
from bgplab.expressroute.spec import MAX_CONNECTION_WEIGHT
from bgplab.expressroute.timers import Timers

log = logging.getLogger("bgplab.gateway")

MSEE_GROUP = "msee"
_SETTLE = 0.02
"""Seconds to let a burst of UPDATEs land before recomputing the effective routes."""
_FAMILY = {4: IPV4_UNICAST, 6: IPV6_UNICAST}


@dataclass(frozen=True, slots=True)
class MseeNeighbor:
    """One MSEE the gateway peers with: its address, and which circuit and link it serves."""

    address: str
    circuit: str
    side: Side = Side.PRIMARY
    local_address: str | None = None
    instance: int = 0
    """Which gateway instance this session is of: Azure's gateway is two, each peering with every MSEE."""


class Gateway:
    def __init__(
        self,
        model: Model,
        vnet: str,
        neighbors: Sequence[MseeNeighbor],
        *,
        netns: str | None = None,
        port: int = 179,
        internet: Sequence[str] = (),
        name: str | None = None,
        timers: Timers | None = None,
        fib: bool = True,
        max_ecmp_circuits: int = 4,
        catalogue: Catalogue | None = None,
    ) -> None:
        """`internet` holds the next hops of the Azure internet edge (one per address family), where
        the system route 0/0 leads; without one, internet-bound traffic has no route."""
        if vnet not in model.vnets:
            raise ValueError(f"vnet {vnet!r} is not in the model; known: {', '.join(model.vnets) or 'none'}")
        self.model = model
        self.vnet = model.vnets[vnet]
        self.name = name or f"gateway-{vnet}"
        self.weights = {c.circuit: c.weight for c in self.vnet.connections}
        self.disconnected: set[str] = set()
        """Connections deleted at run time (`set_connection`)."""
        self.in_maintenance: set[int] = set()
        """Gateway instances whose sessions are down for maintenance (`set_maintenance`)."""
        for neighbor in neighbors:
            if neighbor.circuit not in self.weights:
                raise ValueError(
                    f"{self.name}: MSEE {neighbor.address} serves circuit {neighbor.circuit!r}, "
                    f"which VNet {vnet} has no connection to; connected: {', '.join(self.weights) or 'none'}"
                )
        self.neighbors = {str(ipaddress.ip_address(n.address)): n for n in neighbors}
        self.netns = netns
        self.port = port
        self.internet = {ipaddress.ip_address(a).version: a for a in internet}
        self.timers = timers or Timers()
        self.use_fib = fib and netns is not None
        self.max_ecmp_circuits = max_ecmp_circuits
        self.catalogue = catalogue or load_catalogue()
        self.hub = EventHub()
        self.speaker: Speaker | None = None
        self.fib: Fib | None = None
        self.routes_now: list[effective.EffectiveRoute] = []
        self.recomputed = 0
        self._installed: dict[tuple[Family, int], tuple[str, ...]] = {}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = time.monotonic()

    # ---- lifecycle

    def _router_id(self) -> str:
        for neighbor in self.neighbors.values():
            if neighbor.local_address and ipaddress.ip_address(neighbor.local_address).version == 4:
                return neighbor.local_address
        return "255.255.255.254"

    async def start(self) -> None:
        listen = sorted({(n.local_address, self.port) for n in self.neighbors.values() if n.local_address})
        speaker = Speaker(GATEWAY_ASN, self._router_id(), listen=listen, netns=self.netns, routing=DecisionOptions())
        for address, neighbor in self.neighbors.items():
            speaker.add_peer(self._peer_config(address, neighbor))
        for family, keys, attrs in self._vnet_announcements():
            speaker.announce(family, keys, attrs)
        self.speaker = speaker
        try:
            if self.use_fib:
                self.fib = Fib(self.netns)
                await self.fib.open()
                await self.fib.flush()
            events = speaker.subscribe()
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._pump(events)), loop.create_task(self._recompute_loop())]
            await speaker.start()
        except BaseException:
            await self.stop()
            raise
        self._dirty.set()

    def _peer_config(self, address: str, neighbor: MseeNeighbor) -> PeerConfig:
        t = self.timers
        return PeerConfig(
            address,
            AZURE_ASN,
            local_address=neighbor.local_address,
            port=self.port,
            families=(_FAMILY[ipaddress.ip_address(address).version],),
            hold_time=t.hold,
            keepalive=t.keepalive,
            min_hold_time=t.min_hold,
            connect_retry=t.connect_retry,
            idle_hold=t.idle_hold,
            idle_hold_max=t.idle_hold_max,
            group=MSEE_GROUP,
            # No transit: what one circuit taught us never goes to another (section 11).
            export_groups=frozenset({"local"}),
        )

    # ---- what an operator changes at run time

    def _connected(self, circuit: str) -> None:
        if circuit not in self.weights:
            raise ValueError(f"VNet {self.vnet.name} has no connection to circuit {circuit!r}; "
                             f"connected: {', '.join(self.weights) or 'none'}")

    def set_weight(self, circuit: str, weight: int) -> None:
        """The connection's routing weight, as `az network vpn-connection update --routing-weight`:
        the effective routes follow at once (weight counts before AS-path length)."""
        self._connected(circuit)
        if not 0 <= weight <= MAX_CONNECTION_WEIGHT:
            raise ValueError(f"weight {weight}: expected 0-{MAX_CONNECTION_WEIGHT}")
        self.weights[circuit] = weight
        self._note("weight", circuit=circuit, weight=weight, text=f"connection to {circuit}: weight {weight}")
        self._dirty.set()

    async def _sync_peers(self) -> None:
        """The speaker's MSEE sessions made what the connections and instances in force call for:
        one per neighbour, but those of a deleted connection or an instance in maintenance."""
        assert self.speaker is not None
        for address, neighbor in self.neighbors.items():
            wanted = neighbor.circuit not in self.disconnected and neighbor.instance not in self.in_maintenance
            if wanted and address not in self.speaker.peers:
                self.speaker.add_peer(self._peer_config(address, neighbor))
            elif not wanted and address in self.speaker.peers:
                await self.speaker.remove_peer(address)

    async def set_connection(self, circuit: str, connected: bool) -> None:
        """Delete the VNet's connection to a circuit (its sessions with that circuit's MSEEs end,
        Cease, and its routes leave the effective routes), or create it again."""
        self._connected(circuit)
        if self.speaker is None or connected == (circuit not in self.disconnected):
            return
        (self.disconnected.discard if connected else self.disconnected.add)(circuit)
        await self._sync_peers()
        state = "connected" if connected else "disconnected"
        self._note("connection", circuit=circuit, connected=connected, text=f"connection to {circuit} {state}")
        self._dirty.set()

    async def set_maintenance(self, instance: int, on: bool) -> None:
        """Gateway maintenance as Azure does it, one instance at a time: its sessions with every MSEE
        end (Cease) and the MSEEs carry the VNet's traffic through the other; off, they come back."""
        instances = sorted({n.instance for n in self.neighbors.values()})
        if instance not in instances:
            raise ValueError(f"instance {instance}: this gateway has instances {', '.join(map(str, instances))}")
        if self.speaker is None or on == (instance in self.in_maintenance):
            return
        (self.in_maintenance.add if on else self.in_maintenance.discard)(instance)
        await self._sync_peers()
        self._note("maintenance", instance=instance, on=on,
                   text=f"instance {instance} {'in maintenance' if on else 'back from maintenance'}")
        # The routes leave the instance before it goes (the caller then takes its addresses away).
        await self.recompute()

    def _note(self, kind: str, *, text: str, **fields: Any) -> None:
        self.hub.publish({"time": round(time.monotonic(), 6), "type": kind, "node": self.name, "text": text, **fields})

    async def stop(self) -> None:
        if self.speaker is not None:
            await self.speaker.stop("gateway shutting down")
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.fib is not None:
            await self.fib.close()
            self.fib = None

    def _vnet_announcements(self) -> list[tuple[Family, list[int], PathAttributes]]:
        communities: tuple[int, ...] = ()
        if self.vnet.custom_community is not None:
            # Section 5: the regional community is added only when the VNet has a custom one.
            regional = self.catalogue.region(self.vnet.region).private_community
            communities = (self.vnet.custom_community, regional)
        attrs = PathAttributes(origin=Origin.IGP, as_path=(), communities=communities)
        by_family: dict[Family, list[int]] = {}
        for network in self.vnet.address_space:
            key = parse_prefix(str(network))[1]
            by_family.setdefault(_FAMILY[network.version], []).append(key)
        return [(family, keys, attrs) for family, keys in by_family.items()]

    # ---- effective routes

    async def _pump(self, events: Any) -> None:
        async for ev in events:
            for record, text in event_records(ev):
                record.update(node=self.name, text=text)
                self.hub.publish(record)
            if isinstance(ev, RoutesReceived | RoutesWithdrawn | PeerStateChanged):
                self._dirty.set()

    async def _recompute_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(_SETTLE)
            self._dirty.clear()
            await self.recompute()

    def bgp_paths(self) -> list[effective.BgpPath]:
        speaker = self.speaker
        if speaker is None or speaker.rib is None:
            return []
        rib = speaker.rib
        # Both instances learn the same paths from each MSEE: one path per MSEE and prefix counts,
        # through the lowest instance that has it (the other's is the same route, to the same MSEE).
        chosen: dict[tuple[str, Side, Family, int], tuple[int, effective.BgpPath]] = {}
        for address in rib.peers():
            neighbor = self.neighbors.get(address)
            if neighbor is None:
                continue
            weight = self.weights[neighbor.circuit]
            for family in rib.families(address):
                for key, attrs in rib.adj_rib_in(address, family).items():
                    slot = (neighbor.circuit, neighbor.side, family, key)
                    if slot in chosen and chosen[slot][0] <= neighbor.instance:
                        continue
                    chosen[slot] = (neighbor.instance, effective.BgpPath(
                        ipaddress.ip_network(prefix_text(family[0], key)),
                        attrs.next_hop or address,
                        neighbor.circuit,
                        weight,
                        tuple(attrs.asns()),
                    ))
        return [path for _, path in chosen.values()]

    def compute(self) -> list[effective.EffectiveRoute]:
        return effective.effective_routes(
            self.vnet.address_space,
            user_routes=[
                effective.UserRoute(r.prefix, r.next_hop_type, r.next_hop_ip) for r in self.vnet.user_routes
            ],
            bgp_paths=self.bgp_paths(),
            propagate_gateway_routes=self.vnet.gateway_route_propagation,
            max_ecmp_circuits=self.max_ecmp_circuits,
        )

    async def recompute(self) -> None:
        routes = self.compute()
        changed = routes != self.routes_now
        self.routes_now = routes
        self.recomputed += 1
        if changed:
            self.hub.publish(
                {
                    "time": round(time.monotonic(), 6),
                    "type": "effective-routes",
                    "node": self.name,
                    "count": sum(1 for r in routes if r.state == effective.ACTIVE),
                    "text": f"effective routes recomputed: {len(routes)} rows",
                }
            )
        if self.fib is not None:
            await self._program(routes)

    def _kernel_routes(self, routes: Sequence[effective.EffectiveRoute]) -> dict[tuple[Family, int], tuple[str, ...]]:
        """Active effective routes as kernel routes; VNet-local ones are the interfaces' own."""
        wanted: dict[tuple[Family, int], tuple[str, ...]] = {}
        for route in routes:
            if route.state != effective.ACTIVE:
                continue
            kind = route.next_hop_type
            if kind == effective.NONE:
                hops: tuple[str, ...] = (BLACKHOLE,)
            elif kind == effective.INTERNET:
                edge = self.internet.get(route.prefix.version)
                hops = (edge,) if edge else (BLACKHOLE,)
            elif kind in (effective.GATEWAY, effective.VIRTUAL_APPLIANCE):
                hops = route.next_hops or (BLACKHOLE,)
            else:
                continue
            key = parse_prefix(str(route.prefix))[1]
            wanted[(_FAMILY[route.prefix.version], key)] = hops
        return wanted

    async def _program(self, routes: Sequence[effective.EffectiveRoute]) -> None:
        assert self.fib is not None
        wanted = self._kernel_routes(routes)
        changes: list[FibChange] = [
            (family, key, hops) for (family, key), hops in wanted.items() if self._installed.get((family, key)) != hops
        ]
        changes += [(family, key, ()) for (family, key) in self._installed if (family, key) not in wanted]
        if not changes:
            return
        result = await self.fib.apply(changes)
        for error in result.errors:
            log.warning("%s: kernel refused %s", self.name, error)
        self._installed = wanted

    # ---- views

    def status(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "kind": "gateway",
            "asn": GATEWAY_ASN,
            "vnet": self.vnet.name,
            "address_space": [str(n) for n in self.vnet.address_space],
            "connections": self.weights,
            "disconnected": sorted(self.disconnected),
            "in_maintenance": sorted(self.in_maintenance),
            "uptime": round(time.monotonic() - self.started_at, 3),
            "recomputed": self.recomputed,
        }

    def sessions(self) -> list[dict[str, Any]]:
        if self.speaker is None:
            return []
        speaker = self.speaker
        return [
            {"node": self.name, "peering": "private", **session_row(speaker, address, peer),
             "circuit": self.neighbors[address].circuit, "side": self.neighbors[address].side.value,
             "instance": self.neighbors[address].instance}
            for address, peer in speaker.peers.items()
        ]

    def learned(self, family: str = "ipv4") -> list[dict[str, Any]]:
        """Every path learned from every MSEE (what feeds the effective routes)."""
        fam = family_named(family)
        speaker = self.speaker
        if speaker is None or speaker.rib is None:
            return []
        rows: list[dict[str, Any]] = []
        for address in sorted(speaker.rib.peers()):
            if address not in self.neighbors:
                continue
            for key, attrs in sorted(speaker.rib.adj_rib_in(address, fam).items()):
                rows.append(
                    {
                        **route_row(fam, key, attrs),
                        "circuit": self.neighbors[address].circuit,
                        "instance": self.neighbors[address].instance,
                        "weight": self.weights[self.neighbors[address].circuit],
                        "source": address,
                    }
                )
        return rows

    def handlers(self) -> dict[str, Handler]:
        async def status(args: Mapping[str, Any]) -> Any:
            return self.status()

        async def sessions(args: Mapping[str, Any]) -> Any:
            return self.sessions()

        async def routes(args: Mapping[str, Any]) -> Any:
            return self.learned(str(args.get("family", "ipv4")))

        async def effective_routes(args: Mapping[str, Any]) -> Any:
            return [row for r in self.routes_now for row in r.rows()]

        async def lookup(args: Mapping[str, Any]) -> Any:
            route = effective.lookup(self.routes_now, str(args.get("destination", "")))
            return route.rows() if route is not None else []

        async def weight(args: Mapping[str, Any]) -> Any:
            self.set_weight(str(args.get("circuit", "")), control.integer(args, "weight"))
            return self.status()

        async def connection(args: Mapping[str, Any]) -> Any:
            await self.set_connection(str(args.get("circuit", "")), control.flag(args, "connected"))
            return self.status()

        async def maintenance(args: Mapping[str, Any]) -> Any:
            await self.set_maintenance(control.integer(args, "instance"), control.flag(args, "on"))
            return self.status()

        return {
            "status": status,
            "sessions": sessions,
            "routes": routes,
            "effective-routes": effective_routes,
            "lookup": lookup,
            "weight": weight,
            "connection": connection,
            "maintenance": maintenance,
        }
