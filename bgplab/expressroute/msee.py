"""One Microsoft Enterprise Edge router (MSEE) of one circuit: a routing domain per peering.

Each peering of the circuit is a speaker of its own (AS 12076) in the peering's own network
namespace: the in-process equivalent of the MSEE's VRF per peering (this kernel has no VRF
devices; DESIGN.md, last section), with its own Loc-RIB and, when it has a namespace, its own
kernel FIB so that packets follow what BGP chose. Toward the customer edge it runs one session
per address family; on private peering it also peers with the VNet gateway(s) (AS 65515).

Everything ExpressRoute-specific about what crosses a session is in `rules` (policies); this
module wires them up and carries out the operator's and the lab's commands: maintenance drain,
peering disable/enable, route-filter attach/detach, and faults played from the far end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bgplab.bgp.fib import Fib, FibFeeder
from bgplab.bgp.peer import PeerConfig
from bgplab.bgp.policy import Policy
from bgplab.bgp.records import event_records, family_named, route_row, session_row
from bgplab.bgp.rib import DecisionOptions
from bgplab.bgp.routesyntax import community_text
from bgplab.bgp.speaker import Speaker
from bgplab.bgp.wire.update import IPV4_UNICAST, IPV6_UNICAST, Family
from bgplab.expressroute import control, rules
from bgplab.expressroute.control import EventHub, Handler
from bgplab.expressroute.model import AZURE_ASN, GATEWAY_ASN, Model, Peering, PeeringType, Side
from bgplab.expressroute.services import Catalogue, load_catalogue
from bgplab.expressroute.timers import Timers

log = logging.getLogger("bgplab.msee")

_FAMILIES: dict[int, Family] = {4: IPV4_UNICAST, 6: IPV6_UNICAST}
REJECT_ALL = Policy((), default="reject")


@dataclass(frozen=True, slots=True)
class GatewayNeighbor:
    """A VNet gateway instance the MSEE peers with on private peering."""

    address: str
    local_address: str | None = None


@dataclass(frozen=True, slots=True)
class PeeringPlace:
    """Where one peering of this MSEE lives: its namespace, its port, its gateways."""

    netns: str | None = None
    port: int = 179
    gateways: tuple[GatewayNeighbor, ...] = ()
    fib: bool = True
    """Program the namespace's kernel FIB (only ever done inside a namespace of our own)."""


@dataclass
class _Domain:
    """A running peering: its speaker, its FIB feed, and the faults in force."""

    peering: Peering
    place: PeeringPlace
    speaker: Speaker
    customers: list[str]
    fib: Fib | None = None
    feeder: FibFeeder | None = None
    pump: asyncio.Task[None] | None = None
    faults: set[str] = field(default_factory=set)


class Msee:
    def __init__(
        self,
        model: Model,
        circuit: str,
        side: Side,
        places: Mapping[PeeringType, PeeringPlace],
        *,
        name: str | None = None,
        timers: Timers | None = None,
        rules_: rules.MseeRules | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        if circuit not in model.circuits:
            raise ValueError(f"circuit {circuit!r} is not in the model; known: {', '.join(model.circuits) or 'none'}")
        self.model = model
        self.circuit = model.circuits[circuit]
        self.side = Side(side)
        self.name = name or f"msee-{self.side.value}"
        unknown = [str(t) for t in places if self.circuit.peering(PeeringType(t)) is None]
        if unknown:
            raise ValueError(f"{self.name}: peering(s) {', '.join(unknown)} are not configured on circuit {circuit}")
        self.places = {PeeringType(t): p for t, p in places.items()}
        self.timers = timers or Timers()
        self.rules = rules_ or rules.MseeRules()
        self.catalogue = catalogue or load_catalogue()
        self.hub = EventHub()
        self.drained = False
        self.disconnected: set[str] = set()
        """Gateways whose VNet connection was deleted at run time (`set_gateway`)."""
        self.enabled = {t: self.circuit.peerings[t].enabled for t in self.places}
        self.route_filter = {t: self.circuit.peerings[t].route_filter for t in self.places}
        self.domains: dict[PeeringType, _Domain] = {}
        self.started_at = time.monotonic()

    # ---- lifecycle

    async def start(self) -> None:
        try:
            for peering_type, enabled in self.enabled.items():
                if enabled:
                    await self._start_domain(peering_type)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for peering_type in list(self.domains):
            await self._stop_domain(peering_type, "MSEE shutting down")

    def _router_id(self, peering: Peering) -> str:
        link = peering.link(self.side, 4)
        if link is not None:
            return str(link.msee.ip)
        index = list(PeeringType).index(peering.type)
        return f"255.255.{1 if self.side is Side.PRIMARY else 2}.{index + 1}"

    async def _start_domain(self, peering_type: PeeringType) -> None:
        peering = self.circuit.peerings[peering_type]
        place = self.places[peering_type]
        listen = []
        customers = []
        for version in (4, 6):
            link = peering.link(self.side, version)
            if link is not None:
                listen.append((str(link.msee.ip), place.port))
        speaker = Speaker(
            AZURE_ASN, self._router_id(peering), listen=listen, netns=place.netns, routing=DecisionOptions()
        )
        for version in (4, 6):
            link = peering.link(self.side, version)
            if link is None:
                continue
            config = self._customer_config(peering, version, str(link.customer.ip), str(link.msee.ip), place.port)
            speaker.add_peer(config)
            customers.append(config.key)
        if peering_type is PeeringType.PRIVATE:
            for gateway in place.gateways:
                if gateway.address in self.disconnected:
                    continue
                speaker.add_peer(self._gateway_config(gateway, place.port))
                if gateway.local_address:  # whichever of us starts first, the other connects
                    speaker.listen.append((gateway.local_address, place.port))
        elif peering_type is PeeringType.MICROSOFT or peering_type is PeeringType.PUBLIC:
            # Scoped by SKU: Standard the circuit's geopolitical region, Local its region, Premium all.
            scope = self.catalogue.scope(self.circuit.sku, self.circuit.region)
            for family, groups in rules.service_announcements(self.catalogue, scope).items():
                for attrs, keys in groups:
                    speaker.announce(family, keys, attrs)
        domain = _Domain(peering, place, speaker, customers)
        self.domains[peering_type] = domain
        events = speaker.subscribe()
        domain.pump = asyncio.get_running_loop().create_task(self._pump(peering_type, events))
        if place.netns is not None and place.fib:
            domain.fib = Fib(place.netns)
            await domain.fib.open()
            await domain.fib.flush()
            domain.feeder = FibFeeder(domain.fib)
            speaker.rib_listeners.append(domain.feeder.on_rib_changes)
        await speaker.start()
        self._note("peering-up", peering=peering_type.value, text=f"{peering_type.value} peering started")

    async def _stop_domain(self, peering_type: PeeringType, message: str) -> None:
        domain = self.domains.pop(peering_type)
        await domain.speaker.stop(message)
        if domain.pump is not None:
            domain.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await domain.pump
        if domain.feeder is not None:
            await domain.feeder.idle()
        if domain.fib is not None:
            await domain.fib.close()
        self._note("peering-down", peering=peering_type.value, text=f"{peering_type.value} peering stopped: {message}")

    def _common(self) -> dict[str, Any]:
        t = self.timers
        return {
            "hold_time": t.hold,
            "keepalive": t.keepalive,
            "min_hold_time": t.min_hold,
            "connect_retry": t.connect_retry,
            "idle_hold": t.idle_hold,
            "idle_hold_max": t.idle_hold_max,
        }

    def _customer_config(self, peering: Peering, version: int, address: str, local: str, port: int) -> PeerConfig:
        family = _FAMILIES[version]
        limits = rules.prefix_limits(self.circuit, peering, self.rules)
        return PeerConfig(
            address,
            peering.peer_asn,
            md5=peering.md5,
            local_address=local,
            port=port,
            families=(family,),
            allow_own_as=self.rules.allow_own_as,
            import_policy=rules.customer_import(peering, self.rules),
            export_policy=self._customer_export(peering),
            max_prefix={family: limits[family]},
            # BFD runs on IPv4 peering only (section 8, BFD-JA).
            bfd=self.timers.bfd if version == 4 else None,
            group=rules.CUSTOMER,
            export_groups=frozenset({rules.GATEWAY if peering.type is PeeringType.PRIVATE else rules.LOCAL}),
            **self._common(),
        )

    def _gateway_config(self, gateway: GatewayNeighbor, port: int) -> PeerConfig:
        version = ipaddress.ip_address(gateway.address).version
        return PeerConfig(
            gateway.address,
            GATEWAY_ASN,
            local_address=gateway.local_address,
            port=port,
            families=(_FAMILIES[version],),
            import_policy=rules.GATEWAY_IMPORT,
            export_policy=self._gateway_export(),
            group=rules.GATEWAY,
            export_groups=frozenset({rules.CUSTOMER}),
            **self._common(),
        )

    def _customer_export(self, peering: Peering) -> Policy:
        filter_name = self.route_filter.get(peering.type)
        route_filter = self.model.route_filters.get(filter_name) if filter_name else None
        return rules.customer_export(peering, route_filter, drained=self.drained, rules=self.rules)

    def _gateway_export(self) -> Policy:
        return rules.gateway_export(drained=self.drained, rules=self.rules)

    # ---- events

    async def _pump(self, peering_type: PeeringType, events: Any) -> None:
        async for ev in events:
            for record, text in event_records(ev):
                record["peering"] = peering_type.value
                record["node"] = self.name
                record["text"] = text
                self.hub.publish(record)

    def _note(self, kind: str, *, text: str, **fields: Any) -> None:
        self.hub.publish({"time": round(time.monotonic(), 6), "type": kind, "node": self.name, "text": text, **fields})

    # ---- commands

    def _domain(self, peering: str) -> _Domain:
        try:
            peering_type = PeeringType(peering)
        except ValueError:
            expected = ", ".join(t.value for t in PeeringType)
            raise ValueError(f"peering {peering!r}: expected one of {expected}") from None
        domain = self.domains.get(peering_type)
        if domain is None:
            state = "disabled" if peering_type in self.places else "not configured on this MSEE"
            raise ValueError(f"{peering} peering is {state}")
        return domain

    def _reapply(self, domain: _Domain) -> None:
        """Push the current policies to every session of a domain (soft reconfiguration, no reset)."""
        for address, peer in domain.speaker.peers.items():
            if peer.config.group == rules.CUSTOMER:
                export = REJECT_ALL if "withdraw-all" in domain.faults else self._customer_export(domain.peering)
            else:
                export = self._gateway_export()
            domain.speaker.set_policies(address, peer.config.import_policy, export)

    async def set_drain(self, on: bool) -> None:
        self.drained = on
        for domain in self.domains.values():
            self._reapply(domain)
        self._note("drain", on=on, text=f"maintenance drain {'on' if on else 'off'}")

    async def set_peering_enabled(self, peering: str, enabled: bool) -> None:
        peering_type = PeeringType(peering)
        if peering_type not in self.places:
            raise ValueError(f"{peering} peering is not configured on this MSEE")
        self.enabled[peering_type] = enabled
        if enabled and peering_type not in self.domains:
            await self._start_domain(peering_type)
        elif not enabled and peering_type in self.domains:
            await self._stop_domain(peering_type, "peering disabled")

    async def set_gateway(self, address: str, connected: bool) -> None:
        """A VNet connection deleted (or made again): the session to that gateway ends (or starts)."""
        place = self.places.get(PeeringType.PRIVATE)
        gateway = next((g for g in place.gateways if g.address == address), None) if place else None
        if place is None or gateway is None:
            known = ", ".join(g.address for g in place.gateways) if place else "none: no private peering"
            raise ValueError(f"no gateway {address} on this MSEE's private peering; gateways: {known or 'none'}")
        if connected == (address not in self.disconnected):
            return
        (self.disconnected.discard if connected else self.disconnected.add)(address)
        domain = self.domains.get(PeeringType.PRIVATE)
        if domain is not None:
            if connected:
                domain.speaker.add_peer(self._gateway_config(gateway, place.port))
            else:
                await domain.speaker.remove_peer(address)
        self._note("connection", gateway=address, connected=connected,
                   text=f"gateway {address} {'connected' if connected else 'disconnected'}")

    async def set_route_filter(self, name: str | None) -> None:
        if name is not None and name not in self.model.route_filters:
            known = ", ".join(self.model.route_filters) or "none defined"
            raise ValueError(f"route filter {name!r} is not defined; known: {known}")
        if PeeringType.MICROSOFT not in self.places:
            raise ValueError("route filters attach to Microsoft peering, which this MSEE does not have")
        if name is not None and not self.circuit.microsoft365_authorized:
            m365 = [c for c in self.model.route_filters[name].communities if self.catalogue.is_microsoft365(c)]
            if m365:
                listed = ", ".join(community_text(c) for c in m365)
                raise ValueError(
                    f"route filter {name!r} lists Microsoft 365 communities ({listed})"
                    f" and circuit {self.circuit.name} is not authorized for Microsoft 365; Azure refuses the attach"
                )
        self.route_filter[PeeringType.MICROSOFT] = name
        domain = self.domains.get(PeeringType.MICROSOFT)
        if domain is not None:
            self._reapply(domain)
        self._note("route-filter", filter=name, text=f"route filter {'attached: ' + name if name else 'detached'}")

    async def fault(self, peering: str, kind: str, on: bool = True, code: int = 6, subcode: int = 2) -> None:
        """Far-end faults, as the customer sees them coming from Microsoft's side."""
        domain = self._domain(peering)
        peers = [domain.speaker.peers[a] for a in domain.customers]
        if kind == "notification":
            for peer in peers:
                peer.reset(code, subcode, reason=f"fault injected: NOTIFICATION {code}/{subcode}")
        elif kind == "silent":
            for peer in peers:
                peer.muted = on
        elif kind == "withdraw-all":
            (domain.faults.add if on else domain.faults.discard)(kind)
            self._reapply(domain)
        else:
            raise ValueError(f"fault {kind!r}: expected silent, notification or withdraw-all")
        self._note("fault", peering=peering, fault=kind, on=on, text=f"fault {kind} {'on' if on else 'off'}")

    # ---- views

    def status(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "kind": "msee",
            "asn": AZURE_ASN,
            "circuit": self.circuit.name,
            "service_key": self.circuit.service_key,
            "side": self.side.value,
            "drained": self.drained,
            "uptime": round(time.monotonic() - self.started_at, 3),
            "peerings": {
                t.value: {
                    "enabled": self.enabled[t],
                    "route_filter": self.route_filter.get(t),
                    "faults": sorted(self.domains[t].faults) if t in self.domains else [],
                }
                for t in self.places
            },
        }

    def sessions(self) -> list[dict[str, Any]]:
        out = []
        for peering_type, domain in self.domains.items():
            for address, peer in domain.speaker.peers.items():
                row = session_row(domain.speaker, address, peer)
                out.append({"node": self.name, "peering": peering_type.value, **row, "muted": peer.muted})
        return out

    def routes(self, peering: str, direction: str = "table", family: str = "ipv4") -> list[dict[str, Any]]:
        """Like `az network express-route list-route-tables --path primary|secondary`.

        `table` is the MSEE's routing table (every selected route, as Azure lists it);
        `received` what the customer sent and the MSEE accepted; `advertised` what it sends the customer.
        """
        domain = self._domain(peering)
        fam = family_named(family)
        rib = domain.speaker.rib
        assert rib is not None
        rows: list[dict[str, Any]] = []
        if direction == "table":
            for key in sorted(rib.table(fam)):
                for source, attrs in rib.selected(fam, key)[:1]:
                    rows.append({**route_row(fam, key, attrs), "source": source})
        elif direction in ("received", "advertised"):
            for address in domain.customers:
                peer = domain.speaker.peers[address]
                if direction == "received":
                    table = rib.adj_rib_in(address, fam) if address in rib.peers() else {}
                else:
                    table = peer.adj_rib_out.get(fam, {})
                rows += [{**route_row(fam, key, attrs), "source": address} for key, attrs in sorted(table.items())]
        else:
            raise ValueError(f"direction {direction!r}: expected table, received or advertised")
        return rows

    # ---- control API

    def handlers(self) -> dict[str, Handler]:
        async def status(args: Mapping[str, Any]) -> Any:
            return self.status()

        async def sessions(args: Mapping[str, Any]) -> Any:
            return self.sessions()

        async def routes(args: Mapping[str, Any]) -> Any:
            peering, direction = str(args.get("peering", "private")), str(args.get("direction", "table"))
            return self.routes(peering, direction, str(args.get("family", "ipv4")))

        async def drain(args: Mapping[str, Any]) -> Any:
            await self.set_drain(control.flag(args, "on"))
            return self.status()

        async def peering(args: Mapping[str, Any]) -> Any:
            await self.set_peering_enabled(str(args.get("peering", "")), control.flag(args, "enabled"))
            return self.status()

        async def gateway(args: Mapping[str, Any]) -> Any:
            await self.set_gateway(str(args.get("address", "")), control.flag(args, "connected"))
            return self.status()

        async def route_filter(args: Mapping[str, Any]) -> Any:
            name = args.get("name")
            await self.set_route_filter(str(name) if name is not None else None)
            return self.status()

        async def fault(args: Mapping[str, Any]) -> Any:
            await self.fault(
                str(args.get("peering", "private")),
                str(args.get("kind", "")),
                control.flag(args, "on", default=True),
                int(args.get("code", 6)),
                int(args.get("subcode", 2)),
            )
            return self.status()

        return {
            "status": status,
            "sessions": sessions,
            "routes": routes,
            "drain": drain,
            "peering": peering,
            "route-filter": route_filter,
            "gateway": gateway,
            "fault": fault,
        }
