"""A subnet's effective routes, computed the way Azure computes them, with no I/O.

The emulated VNet ExpressRoute gateway forwards by these routes, and users see them as
`az network nic show-effective-route-table` would show them. The table is recomputed from scratch
from the current inputs every time, so a withdrawn BGP route simply disappears and whatever it had
overridden (for example the Internet system route under forced tunnelling) comes back by itself
(reference section 7).

Selection follows reference section 9. For the same prefix a user route beats a BGP route, which
beats a system route. VNet and peering system routes are the exception: they beat any BGP route
they cover, even a more specific one (section 7). Between different prefixes the longest match
wins, which is `lookup`'s job. Routes that lose are kept with state "Invalid", as Azure shows them,
so users can see what was ignored.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Route sources, named as Azure's effective route table names them.
DEFAULT, GATEWAY, USER = "Default", "VirtualNetworkGateway", "User"
ACTIVE, INVALID = "Active", "Invalid"
# Next hop types. GATEWAY doubles as the next hop type "VirtualNetworkGateway".
VNET_LOCAL, VNET_PEERING, INTERNET, VIRTUAL_APPLIANCE, NONE = (
    "VnetLocal",
    "VNetPeering",
    "Internet",
    "VirtualAppliance",
    "None",
)

_IPV4_DEFAULT = ipaddress.IPv4Network("0.0.0.0/0")
_IPV6_DEFAULT = ipaddress.IPv6Network("::/0")
# Azure drops traffic to private (RFC 1918) and shared (RFC 6598) space that no network claims.
_DROPPED_RANGES = tuple(
    ipaddress.IPv4Network(text) for text in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
_SOURCE_RANK = {USER: 0, GATEWAY: 1, DEFAULT: 2}


@dataclass(frozen=True, slots=True)
class BgpPath:
    """One path the gateway learned from one MSEE over one circuit's connection."""

    prefix: Network
    next_hop: str
    """The MSEE's address."""
    circuit: str
    """The circuit (connection) the path came over; ECMP is limited by circuits, not next hops."""
    weight: int
    """The connection's routing weight; higher is preferred, and it is compared before AS path length."""
    as_path: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UserRoute:
    """A user-defined route (UDR) from the subnet's route table.

    It has the same fields as `bgplab.expressroute.model.UserRoute`, repeated here so that this
    computation does not depend on the configuration model.
    """

    prefix: Network
    next_hop_type: str
    """"VirtualAppliance", "VirtualNetworkGateway", "Internet", "VnetLocal" or "None"."""
    next_hop_ip: str | None = None
    """The appliance's address; only "VirtualAppliance" uses it."""


@dataclass(frozen=True, slots=True)
class EffectiveRoute:
    """One row of a subnet's effective route table."""

    prefix: Network
    source: str
    """"Default" (system), "VirtualNetworkGateway" (learned over BGP) or "User"."""
    state: str
    """"Active", or "Invalid" when a route of higher precedence overrides it."""
    next_hop_type: str
    next_hops: tuple[str, ...] = ()
    """The MSEE addresses (ECMP) for the gateway, the appliance's address for "VirtualAppliance". Empty for a
    gateway route means there is nowhere to send the traffic, so it is dropped."""
    as_path: tuple[int, ...] = ()
    """The selected BGP path's AS path, for display only."""

    def rows(self) -> list[dict[str, object]]:
        """The route as Azure lists it (`az network nic show-effective-route-table`): one row per
        next hop, so ECMP over two MSEEs is two rows of one address each; the keys of Azure's CLI,
        plus `asPath` (a list of AS numbers) that Azure does not show."""
        return [{
            "addressPrefix": [str(self.prefix)],
            "source": self.source,
            "state": self.state,
            "nextHopType": self.next_hop_type,
            "nextHopIpAddress": hop,
            "asPath": list(self.as_path),
        } for hop in ([[h] for h in self.next_hops] or [[]])]


def effective_routes(
    address_space: Iterable[Network],
    *,
    peered_spaces: Iterable[Network] = (),
    user_routes: Iterable[UserRoute] = (),
    bgp_paths: Iterable[BgpPath] = (),
    propagate_gateway_routes: bool = True,
    max_ecmp_circuits: int = 4,
) -> list[EffectiveRoute]:
    """The subnet's effective routes, Active and Invalid, sorted by (version, prefix length, address).

    Within one prefix the Active route comes first. The result depends only on the inputs as
    sets, never on their order, so two gateways given the same routes forward the same way.

    With `propagate_gateway_routes` off (the route table's "propagate gateway routes" setting),
    no BGP route enters the table, but a user route to "VirtualNetworkGateway" still resolves
    through the gateway's BGP routes, because the setting hides them from the subnet, not from the
    gateway (reference section 7).

    Raises ValueError for inputs Azure itself refuses: two user routes for one prefix, a peered
    space overlapping the VNet's address space, or fewer than one ECMP circuit.
    """
    if max_ecmp_circuits < 1:
        raise ValueError(f"max_ecmp_circuits is {max_ecmp_circuits}; it must be at least 1")
    local, peered = set(address_space), set(peered_spaces)
    for space in local:
        for other in peered:
            if _within(space, other) or _within(other, space):
                raise ValueError(f"peered space {other} overlaps VNet space {space}; Azure refuses that peering")
    udrs = _index_user_routes(user_routes)
    gateway = _select_bgp(bgp_paths, max_ecmp_circuits)
    shown_gateway = gateway if propagate_gateway_routes else {}

    routes: list[EffectiveRoute] = []
    for prefix, hop_type in _system_routes(local, peered).items():
        # Only the Internet and None system routes yield to BGP; VNet and peering routes never do (section 7).
        overridden = prefix in udrs or (prefix in shown_gateway and hop_type in (INTERNET, NONE))
        routes.append(EffectiveRoute(prefix, DEFAULT, INVALID if overridden else ACTIVE, hop_type))
    anchored = local | peered
    for prefix, selected in shown_gateway.items():
        shadowed = prefix in udrs or any(_within(prefix, space) for space in anchored)
        routes.append(replace(selected, state=INVALID) if shadowed else selected)
    for udr in udrs.values():
        routes.append(EffectiveRoute(udr.prefix, USER, ACTIVE, udr.next_hop_type, _user_next_hops(udr, gateway)))
    routes.sort(key=_sort_key)
    return routes


def lookup(
    routes: Iterable[EffectiveRoute], destination: str | ipaddress.IPv4Address | ipaddress.IPv6Address
) -> EffectiveRoute | None:
    """The Active route with the longest prefix containing `destination`, or None when nothing matches.

    Invalid routes are skipped: they are shown for explanation only and never forward. A table
    from `effective_routes` has at most one Active route per prefix; for other input, the first
    of equally long matches wins.
    """
    address = ipaddress.ip_address(destination) if isinstance(destination, str) else destination
    matching = (route for route in routes if route.state == ACTIVE and address in route.prefix)
    return max(matching, key=lambda route: route.prefix.prefixlen, default=None)


def _system_routes(local: set[Network], peered: set[Network]) -> dict[Network, str]:
    """Azure's "Default" (system) routes by prefix, as the [doc] UDR source of reference sections 7 and 9 lists them.

    A None range that a VNet or peered space equals or contains is removed: Azure turns it into
    the VNet's route, and keeping it would drop traffic to the VNet's own addresses by longest
    match. A space inside a None range leaves the range in place; the space's own route is more
    specific and wins by longest match anyway. Azure documents this for the VNet's address space;
    peered spaces are treated the same, since they claim the range just as much.
    """
    claimed = local | peered
    routes: dict[Network, str] = {
        dropped: NONE for dropped in _DROPPED_RANGES if not any(_within(dropped, space) for space in claimed)
    }
    routes[_IPV4_DEFAULT] = INTERNET
    if any(space.version == 6 for space in local):
        routes[_IPV6_DEFAULT] = INTERNET
    routes.update(dict.fromkeys(local, VNET_LOCAL))
    routes.update(dict.fromkeys(peered, VNET_PEERING))
    return routes


def _index_user_routes(user_routes: Iterable[UserRoute]) -> dict[Network, UserRoute]:
    """User routes by prefix; a route table cannot hold two routes for the same prefix."""
    indexed: dict[Network, UserRoute] = {}
    for udr in user_routes:
        if udr.prefix in indexed and indexed[udr.prefix] != udr:
            raise ValueError(f"two user routes for {udr.prefix}: {indexed[udr.prefix]} and {udr}")
        indexed[udr.prefix] = udr
    return indexed


def _select_bgp(paths: Iterable[BgpPath], max_circuits: int) -> dict[Network, EffectiveRoute]:
    """The gateway's route per prefix (reference section 9, "Across several ExpressRoute paths").

    Highest connection weight first, then shortest AS path; every path still tied is used
    (ECMP), but only over the first `max_circuits` circuits by name, since Azure spreads ECMP over
    at most 4 circuits. Several tied AS paths are shown as the smallest, to stay deterministic.
    """
    by_prefix: defaultdict[Network, list[BgpPath]] = defaultdict(list)
    for path in paths:
        by_prefix[path.prefix].append(path)
    selected: dict[Network, EffectiveRoute] = {}
    for prefix, group in by_prefix.items():
        best = min((-path.weight, len(path.as_path)) for path in group)
        tied = [path for path in group if (-path.weight, len(path.as_path)) == best]
        circuits = set(sorted({path.circuit for path in tied})[:max_circuits])
        used = [path for path in tied if path.circuit in circuits]
        next_hops = tuple(sorted({path.next_hop for path in used}))
        selected[prefix] = EffectiveRoute(prefix, GATEWAY, ACTIVE, GATEWAY, next_hops, min(p.as_path for p in used))
    return selected


def _user_next_hops(udr: UserRoute, gateway: Mapping[Network, EffectiveRoute]) -> tuple[str, ...]:
    """Where a user route sends traffic.

    An ExpressRoute gateway takes no static routes (reference section 7: UDRs cannot force traffic
    to it), so a UDR pointing at the gateway can only follow what the gateway learned over BGP: the
    next hops of the longest BGP route covering the UDR's whole prefix. When there is none, the
    list is empty and the traffic is dropped. This is resolved per route, not per packet.
    """
    if udr.next_hop_type == VIRTUAL_APPLIANCE:
        return (udr.next_hop_ip,) if udr.next_hop_ip else ()
    if udr.next_hop_type == GATEWAY:
        covering = [route for prefix, route in gateway.items() if _within(udr.prefix, prefix)]
        best = max(covering, key=lambda route: route.prefix.prefixlen, default=None)
        return best.next_hops if best else ()
    return ()


def _within(inner: Network, outer: Network) -> bool:
    """`inner` equals `outer` or lies inside it; networks of different versions never nest."""
    if isinstance(inner, ipaddress.IPv4Network):
        return isinstance(outer, ipaddress.IPv4Network) and inner.subnet_of(outer)
    return isinstance(outer, ipaddress.IPv6Network) and inner.subnet_of(outer)


def _sort_key(route: EffectiveRoute) -> tuple[int, int, int, bool, int, str, tuple[str, ...]]:
    prefix = route.prefix
    return (
        prefix.version,
        prefix.prefixlen,
        int(prefix.network_address),
        route.state != ACTIVE,
        _SOURCE_RANK[route.source],
        route.next_hop_type,
        route.next_hops,
    )
