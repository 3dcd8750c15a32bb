"""An ExpressRoute configuration as Azure would accept it: circuits, peerings, route filters and VNets.

The model is built from plain data (YAML) and refuses what Azure would refuse, so the emulator never
runs a lab that could not exist in Azure and a user learns the rule before the lab is up. Every
refusal is a ModelError naming the offending field by its dotted path and saying what would be valid.
Checks stop at the first error: a configuration is either usable or it is not.

The classes are plain values; only `Model.from_data` checks. Code that builds them directly is
trusted to know the rules.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

from bgplab.bgp.policy import is_private_asn
from bgplab.bgp.routesyntax import RouteSyntaxError, community_text, parse_community
from bgplab.expressroute.services import Catalogue, load_catalogue

AZURE_ASN = 12076
GATEWAY_ASN = 65515
BANDWIDTHS_MBPS: tuple[int, ...] = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 40000, 100000)
SKUS = ("standard", "premium", "local")
PROVISIONING_STATES = ("NotProvisioned", "Provisioning", "Provisioned")
NEXT_HOP_TYPES = ("VirtualAppliance", "VirtualNetworkGateway", "Internet", "VnetLocal", "None")
MAX_CONNECTION_WEIGHT = 32000
DEFAULT_REGION = "west-europe"

_MICROSOFT_ASNS = (8074, 8075, AZURE_ASN)
_AZURE_RESERVED_ASNS = range(65515, 65521)
_DOCUMENTATION_ASNS = range(64496, 64512)
_STANDARD_VNET_LINKS = 10
# (bandwidth Mbps from which it applies, VNet links) of a Premium circuit, ascending.
_PREMIUM_VNET_LINKS = ((50, 20), (100, 25), (200, 40), (500, 40), (1000, 50), (2000, 60), (5000, 75), (10000, 100))
# Deterministic default service keys: the same lab file always gives the same s-key.
_SERVICE_KEY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "expressroute.bgplab")
_BANDWIDTH_TEXT = re.compile(r"(\d+)\s*([mg])bps", re.IGNORECASE)

# Not public unicast space. Written out rather than taken from ipaddress's is_private, which also
# refuses the documentation ranges that labs use as their "public" addresses.
_NOT_PUBLIC: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), label)
    for net, label in (
        ("0.0.0.0/8", "'this network', RFC 791"),
        ("10.0.0.0/8", "private, RFC 1918"),
        ("100.64.0.0/10", "shared address space, RFC 6598"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private, RFC 1918"),
        ("192.168.0.0/16", "private, RFC 1918"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, RFC 1112"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique local, RFC 4193"),
        ("fe80::/10", "link-local"),
        ("ff00::/8", "multicast"),
    )
)

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_N = TypeVar("_N", ipaddress.IPv4Network, ipaddress.IPv6Network)


class ModelError(ValueError):
    """A setting Azure would refuse; `field` is its dotted path, `message` the rule and what would be valid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PeeringType(StrEnum):
    PRIVATE = "private"
    MICROSOFT = "microsoft"
    PUBLIC = "public"


class Side(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"


@dataclass(frozen=True, slots=True)
class LinkAddressing:
    """The two ends of one link in one address family."""

    customer: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    msee: ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True, slots=True)
class RouteFilter:
    name: str
    communities: tuple[int, ...]
    """The values of the filter's one allow rule (Azure allows exactly one rule, and only allow)."""


@dataclass(frozen=True, slots=True)
class Peering:
    type: PeeringType
    vlan: int
    """The c-tag (or the only 802.1Q tag); the same on both links."""
    peer_asn: int
    ipv4: tuple[ipaddress.IPv4Network, ipaddress.IPv4Network] | None
    """(primary /30, secondary /30)."""
    ipv6: tuple[ipaddress.IPv6Network, ipaddress.IPv6Network] | None
    """(primary /126, secondary /126)."""
    md5: str | None = None
    enabled: bool = True
    advertised_prefixes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    customer_asn: int | None = None
    validated: bool = False
    """Microsoft has validated the customer's ownership of a private peer ASN (Microsoft peering)."""
    route_filter: str | None = None

    def link(self, side: Side, version: int) -> LinkAddressing | None:
        """Customer on the first usable address of the side's subnet, MSEE on the second; None if the family is off."""
        if version not in (4, 6):
            raise ValueError(f"IP version {version}: expected 4 or 6")
        pair = self.ipv4 if version == 4 else self.ipv6
        if pair is None:
            return None
        subnet = pair[0] if side is Side.PRIMARY else pair[1]
        return LinkAddressing(
            ipaddress.ip_interface(f"{subnet[1]}/{subnet.prefixlen}"),
            ipaddress.ip_interface(f"{subnet[2]}/{subnet.prefixlen}"),
        )

    @property
    def advertised_prefixes_state(self) -> str:
        """Azure's advertisedPublicPrefixesState; a private peer ASN on Microsoft peering keeps it at
        ValidationNeeded until Microsoft has validated ownership (by support ticket, in Azure)."""
        if self.type is PeeringType.PRIVATE or not self.advertised_prefixes:
            return "NotConfigured"
        if self.type is PeeringType.MICROSOFT and is_private_asn(self.peer_asn) and not self.validated:
            return "ValidationNeeded"
        return "Configured"


@dataclass(frozen=True, slots=True)
class Circuit:
    name: str
    service_key: str
    sku: str
    bandwidth_mbps: int
    location: str
    region: str
    provisioning_state: str
    legacy: bool
    """Created before 2018-04-01: only such a circuit can have public peering."""
    outer_vlan: int | None
    """The QinQ s-tag of all the circuit's peerings; None for 802.1Q."""
    microsoft365_authorized: bool
    peerings: Mapping[PeeringType, Peering]

    def peering(self, type: PeeringType) -> Peering | None:
        return self.peerings.get(type)

    @property
    def max_vnet_links(self) -> int:
        if self.sku != "premium":
            return _STANDARD_VNET_LINKS
        return next(links for mbps, links in reversed(_PREMIUM_VNET_LINKS) if self.bandwidth_mbps >= mbps)

    def prefix_limit(self, type: PeeringType, version: int) -> int:
        """How many prefixes the MSEE accepts from the customer per session before it drops the session.

        Public peering carried no IPv6: 0 there, nothing accepted, so callers can ask for both families.
        """
        if version not in (4, 6):
            raise ValueError(f"IP version {version}: expected 4 or 6")
        if type is PeeringType.PRIVATE:
            return (10000 if self.sku == "premium" else 4000) if version == 4 else 100
        if type is PeeringType.PUBLIC and version == 6:
            return 0
        return 200


@dataclass(frozen=True, slots=True)
class UserRoute:
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network
    next_hop_type: str
    next_hop_ip: str | None = None


@dataclass(frozen=True, slots=True)
class Connection:
    circuit: str
    weight: int = 0
    """routingWeight: higher is preferred, and it counts before AS-path length."""


@dataclass(frozen=True, slots=True)
class VNet:
    name: str
    address_space: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    region: str = DEFAULT_REGION
    custom_community: int | None = None
    user_routes: tuple[UserRoute, ...] = ()
    gateway_route_propagation: bool = True
    connections: tuple[Connection, ...] = ()


@dataclass(frozen=True, slots=True)
class Model:
    circuits: Mapping[str, Circuit]
    route_filters: Mapping[str, RouteFilter]
    vnets: Mapping[str, VNet]

    @classmethod
    def from_data(cls, data: Mapping[str, Any], services: Catalogue | None = None) -> Model:
        """Check `data` (as loaded from YAML) against Azure's rules; `services` defaults to the packaged catalogue."""
        catalogue = services if services is not None else load_catalogue()
        root = _mapping("(root)", data)
        _only("", root, ("circuits", "route_filters", "vnets"))
        filters = {
            name: _route_filter(f"route_filters.{name}", name, raw, catalogue)
            for name, raw in _section(root, "route_filters").items()
        }
        circuits = {
            name: _circuit(f"circuits.{name}", name, raw, filters, catalogue)
            for name, raw in _section(root, "circuits").items()
        }
        vnets = {
            name: _vnet(f"vnets.{name}", name, raw, circuits, catalogue)
            for name, raw in _section(root, "vnets").items()
        }
        model = cls(MappingProxyType(circuits), MappingProxyType(filters), MappingProxyType(vnets))
        model._check_links()
        return model

    def connected_vnets(self, circuit: str) -> tuple[VNet, ...]:
        return tuple(v for v in self.vnets.values() if any(c.circuit == circuit for c in v.connections))

    def to_data(self) -> dict[str, Any]:
        """Plain data that `from_data` reads back into an equal model; subnets come out as pairs."""
        return {
            "circuits": {name: _circuit_data(c) for name, c in self.circuits.items()},
            "route_filters": {
                name: {"rules": [{"access": "allow", "communities": [community_text(c) for c in f.communities]}]}
                for name, f in self.route_filters.items()
            },
            "vnets": {name: _vnet_data(v) for name, v in self.vnets.items()},
        }

    def _check_links(self) -> None:
        """What only the circuit's whole set of VNet links shows: link count and address overlaps."""
        linked: dict[str, list[VNet]] = {}
        for vnet in self.vnets.values():
            for n, connection in enumerate(vnet.connections):
                circuit = self.circuits[connection.circuit]
                others = linked.setdefault(circuit.name, [])
                if len(others) >= circuit.max_vnet_links:
                    hint = "" if circuit.sku == "premium" else "; Premium allows 20 to 100 by bandwidth"
                    raise ModelError(
                        f"vnets.{vnet.name}.connections[{n}].circuit",
                        f"circuit {circuit.name} already has {len(others)} VNet links, the most a {circuit.sku} "
                        f"{_bandwidth_text(circuit.bandwidth_mbps)} circuit allows{hint}",
                    )
                for other in others:
                    for i, net in enumerate(vnet.address_space):
                        clash = _first_overlap(net, other.address_space)
                        if clash is not None:
                            raise ModelError(
                                f"vnets.{vnet.name}.address_space[{i}]",
                                f"{net} overlaps {clash} of VNet {other.name}, also connected to circuit "
                                f"{circuit.name}; VNets on one circuit need distinct address space",
                            )
                others.append(vnet)
        for circuit in self.circuits.values():
            private = circuit.peering(PeeringType.PRIVATE)
            if private is None:
                continue
            for family, subnets in (("ipv4", private.ipv4), ("ipv6", private.ipv6)):
                for subnet in subnets or ():
                    for vnet in linked.get(circuit.name, ()):
                        clash = _first_overlap(subnet, vnet.address_space)
                        if clash is not None:
                            raise ModelError(
                                f"circuits.{circuit.name}.peerings.private.{family}",
                                f"{subnet} overlaps {clash}, address space of VNet {vnet.name} connected to this "
                                "circuit; peering subnets must not overlap VNet address space",
                            )


# ---------------------------------------------------------------- circuits and peerings

_CIRCUIT_KEYS = (
    "sku", "bandwidth", "service_key", "location", "region", "provisioning_state", "legacy", "outer_vlan",
    "microsoft365_authorized", "peerings",
)  # fmt: skip
_PEERING_KEYS = (
    "vlan", "peer_asn", "ipv4", "ipv6", "md5", "enabled", "advertised_prefixes", "customer_asn", "validated",
    "route_filter",
)  # fmt: skip
_MICROSOFT_ONLY = ("customer_asn", "validated", "route_filter")


def _circuit(where: str, name: str, raw: Any, filters: Mapping[str, RouteFilter], catalogue: Catalogue) -> Circuit:
    data = _mapping(where, raw)
    _only(where, data, _CIRCUIT_KEYS)
    if "bandwidth" not in data:
        raise ModelError(f"{where}.bandwidth", "required; e.g. 1Gbps (one of the ExpressRoute bandwidths)")
    sku = _choice(f"{where}.sku", data.get("sku", "standard"), SKUS, "an ExpressRoute SKU")
    bandwidth = _bandwidth(f"{where}.bandwidth", data["bandwidth"])
    service_key = _service_key(f"{where}.service_key", data.get("service_key"), name)
    location = _text(f"{where}.location", data.get("location", "Amsterdam"))
    region = _region(f"{where}.region", data.get("region", DEFAULT_REGION), catalogue)
    state = _choice(
        f"{where}.provisioning_state",
        data.get("provisioning_state", "Provisioned"),
        PROVISIONING_STATES,
        "a provider provisioning state",
    )
    legacy = _bool(f"{where}.legacy", data.get("legacy", False))
    outer_vlan = data.get("outer_vlan")
    if outer_vlan is not None:
        outer_vlan = _int(f"{where}.outer_vlan", outer_vlan, 1, 4094, "an s-tag")
    m365 = _bool(f"{where}.microsoft365_authorized", data.get("microsoft365_authorized", False))
    peerings_data = _mapping(f"{where}.peerings", data.get("peerings", {}))
    if peerings_data and state != "Provisioned":
        raise ModelError(
            f"{where}.peerings",
            f"the provider has not provisioned the circuit (provisioning_state {state}); peerings can be "
            "configured only once it is Provisioned",
        )
    peerings: dict[PeeringType, Peering] = {}
    vlans: dict[int, PeeringType] = {}
    for key, raw_peering in peerings_data.items():
        spot = f"{where}.peerings.{key}"
        if key not in tuple(PeeringType):
            raise ModelError(spot, f"unknown peering type {key!r}; allowed: {', '.join(PeeringType)}")
        kind = PeeringType(key)
        if kind is PeeringType.PUBLIC and not legacy:
            raise ModelError(
                spot,
                "public peering was unavailable to circuits created after 2018-04-01 and retired on 2024-03-31; "
                "use microsoft peering, or set legacy: true to model an older circuit",
            )
        peering = _peering(spot, kind, raw_peering, filters, catalogue, m365)
        if peering.vlan in vlans:
            raise ModelError(
                f"{spot}.vlan",
                f"VLAN {peering.vlan} is already the {vlans[peering.vlan]} peering's; each peering of a circuit "
                "needs its own VLAN ID",
            )
        vlans[peering.vlan] = kind
        peerings[kind] = peering
    return Circuit(
        name, service_key, sku, bandwidth, location, region, state, legacy, outer_vlan, m365, MappingProxyType(peerings)
    )


def _peering(
    where: str,
    kind: PeeringType,
    raw: Any,
    filters: Mapping[str, RouteFilter],
    catalogue: Catalogue,
    microsoft365_authorized: bool,
) -> Peering:
    data = _mapping(where, raw)
    _only(where, data, _PEERING_KEYS)
    for key in ("vlan", "peer_asn"):
        if key not in data:
            raise ModelError(f"{where}.{key}", "required")
    for key in _MICROSOFT_ONLY:
        if key in data and kind is not PeeringType.MICROSOFT:
            raise ModelError(f"{where}.{key}", f"only Microsoft peering has a {key}, not {kind} peering")
    if "advertised_prefixes" in data and kind is PeeringType.PRIVATE:
        raise ModelError(
            f"{where}.advertised_prefixes",
            "only Microsoft and public peering have advertised prefixes; private peering takes what the "
            "customer announces over BGP",
        )
    if "ipv6" in data and kind is PeeringType.PUBLIC:
        raise ModelError(f"{where}.ipv6", "public peering carried IPv4 only")
    microsoft = kind is PeeringType.MICROSOFT
    public = kind is not PeeringType.PRIVATE
    what = "Microsoft peering" if microsoft else "public peering"
    vlan = _int(f"{where}.vlan", data["vlan"], 1, 4094, "a VLAN ID")
    peer_asn = _asn(f"{where}.peer_asn", data["peer_asn"], microsoft)
    ipv4 = None if data.get("ipv4") is None else _link_subnets(f"{where}.ipv4", data["ipv4"], ipaddress.IPv4Network)
    ipv6 = None if data.get("ipv6") is None else _link_subnets(f"{where}.ipv6", data["ipv6"], ipaddress.IPv6Network)
    if ipv4 is None and ipv6 is None:
        raise ModelError(where, "a peering needs ipv4 (one /29 or two /30s), ipv6 (one /125 or two /126s), or both")
    if public:
        for family, pair in (("ipv4", ipv4), ("ipv6", ipv6)):
            for subnet in pair or ():
                _require_public(f"{where}.{family}", subnet, what)
    md5 = None if data.get("md5") is None else _md5(f"{where}.md5", data["md5"])
    enabled = _bool(f"{where}.enabled", data.get("enabled", True))
    advertised: list[_Network] = []
    for n, value in enumerate(_items(f"{where}.advertised_prefixes", data.get("advertised_prefixes", []))):
        spot = f"{where}.advertised_prefixes[{n}]"
        prefix = _network(spot, value)
        _require_public(spot, prefix, what)
        advertised.append(prefix)
    if microsoft and not advertised:
        raise ModelError(
            f"{where}.advertised_prefixes",
            "Microsoft peering needs at least one advertised public prefix you own (e.g. your NAT pool); "
            "without one Microsoft accepts nothing from you",
        )
    customer_asn = data.get("customer_asn")
    if customer_asn is not None:
        customer_asn = _asn(f"{where}.customer_asn", customer_asn, microsoft)
    return Peering(
        kind,
        vlan,
        peer_asn,
        ipv4,
        ipv6,
        md5=md5,
        enabled=enabled,
        advertised_prefixes=tuple(advertised),
        customer_asn=customer_asn,
        validated=_bool(f"{where}.validated", data.get("validated", False)),
        route_filter=_filter_reference(
            f"{where}.route_filter", data.get("route_filter"), filters, catalogue, microsoft365_authorized
        ),
    )


def _link_subnets(where: str, value: Any, family: type[_N]) -> tuple[_N, _N]:
    """One /29 (/125) split in two, or two /30s (/126s) as given: (primary, secondary)."""
    bits = 32 if family is ipaddress.IPv4Network else 128
    whole, half = bits - 3, bits - 2
    shape = f"one /{whole} or a list of two /{half}s (primary, secondary)"
    if isinstance(value, str):
        subnet = _family_network(where, value, family)
        if subnet.prefixlen != whole:
            raise ModelError(where, f"{subnet} is a /{subnet.prefixlen}; expected {shape}")
        primary, secondary = subnet.subnets(new_prefix=half)
        return primary, secondary
    if not isinstance(value, list) or len(value) != 2:
        raise ModelError(where, f"expected {shape}")
    primary = _family_network(f"{where}[0]", value[0], family)
    secondary = _family_network(f"{where}[1]", value[1], family)
    for n, subnet in enumerate((primary, secondary)):
        if subnet.prefixlen != half:
            raise ModelError(f"{where}[{n}]", f"{subnet} is a /{subnet.prefixlen}; expected {shape}")
    if primary.overlaps(secondary):
        raise ModelError(f"{where}[1]", f"{secondary} overlaps the primary {primary}; each link needs its own /{half}")
    return primary, secondary


def _asn(where: str, value: Any, microsoft: bool) -> int:
    if value == 0 and type(value) is int:
        raise ModelError(where, "AS 0 is reserved (RFC 7607); use your ASN, 1..4294967295")
    asn = _int(where, value, 1, 0xFFFFFFFF, "an AS number")
    if asn == 23456:
        raise ModelError(where, "AS 23456 is AS_TRANS (RFC 6793), a stand-in for 4-byte ASNs; use your real ASN")
    if asn in _MICROSOFT_ASNS:
        raise ModelError(where, f"AS {asn} is Microsoft's (8074, 8075, 12076; the MSEE is AS 12076); use your own ASN")
    if asn in _AZURE_RESERVED_ASNS:
        raise ModelError(where, f"AS {asn} is reserved by Azure (65515-65520); use another private or public ASN")
    if microsoft and asn in _DOCUMENTATION_ASNS:
        raise ModelError(
            where,
            f"AS {asn} is in the documentation range 64496-64511, which may not appear in the path on Microsoft "
            "peering; use a public ASN you own",
        )
    return asn


def _md5(where: str, value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 25 or not (value.isascii() and value.isalnum()):
        raise ModelError(where, "an MD5 key is 1 to 25 characters, letters and digits only (Azure allows no others)")
    return value


def _filter_reference(
    where: str, value: Any, filters: Mapping[str, RouteFilter], catalogue: Catalogue, microsoft365_authorized: bool
) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in filters:
        defined = ", ".join(filters) or "none is defined"
        raise ModelError(where, f"no route filter named {value!r} in route_filters (defined: {defined})")
    office = [c for c in filters[value].communities if catalogue.is_microsoft365(c)]
    if office and not microsoft365_authorized:
        raise ModelError(
            where,
            f"route filter {value} allows Microsoft 365 communities ({', '.join(map(community_text, office))}); "
            "attaching it fails unless the subscription is authorized for Microsoft 365 over ExpressRoute "
            "(set microsoft365_authorized: true on the circuit)",
        )
    return value


def _service_key(where: str, value: Any, name: str) -> str:
    if value is None:
        return str(uuid.uuid5(_SERVICE_KEY_NAMESPACE, name))
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ModelError(where, f"{value!r} is not a UUID; a service key looks like {uuid.UUID(int=0)}") from None


def _bandwidth(where: str, value: Any) -> int:
    match = _BANDWIDTH_TEXT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is not None:
        mbps = int(match[1]) * (1000 if match[2].lower() == "g" else 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        mbps = value
    else:
        raise ModelError(where, f"{value!r} is not a bandwidth; write it like 1Gbps, 500Mbps or 1000 (Mbps)")
    if mbps not in BANDWIDTHS_MBPS:
        allowed = ", ".join(map(_bandwidth_text, BANDWIDTHS_MBPS))
        raise ModelError(where, f"{_bandwidth_text(mbps)} is not an ExpressRoute bandwidth; use one of {allowed}")
    return mbps


def _bandwidth_text(mbps: int) -> str:
    return f"{mbps // 1000}Gbps" if mbps >= 1000 and mbps % 1000 == 0 else f"{mbps}Mbps"


# ---------------------------------------------------------------- route filters


def _route_filter(where: str, name: str, raw: Any, catalogue: Catalogue) -> RouteFilter:
    data = _mapping(where, raw)
    _only(where, data, ("rules",))
    rules = data.get("rules")
    if not isinstance(rules, list) or len(rules) != 1:
        raise ModelError(f"{where}.rules", "a route filter has exactly one rule, an allow rule listing communities")
    spot = f"{where}.rules[0]"
    rule = _mapping(spot, rules[0])
    _only(spot, rule, ("access", "communities"))
    access = rule.get("access", "allow")
    if not isinstance(access, str) or access.lower() != "allow":
        raise ModelError(
            f"{spot}.access",
            f"{access!r}: the rule must allow; Azure does not support deny rules in route filters, "
            "leave the community out instead",
        )
    values = _items(f"{spot}.communities", rule.get("communities", []))
    if not values:
        raise ModelError(f"{spot}.communities", "list at least one community; an empty filter lets nothing through")
    return RouteFilter(
        name, tuple(_filter_community(f"{spot}.communities[{n}]", v, catalogue) for n, v in enumerate(values))
    )


def _filter_community(where: str, value: Any, catalogue: Catalogue) -> int:
    community = _community(where, value)
    if not catalogue.known_community(community):
        services = [(s.community, s.name) for s in list(catalogue.services.values())[:3]]
        regions = [(r.microsoft_community, r.name) for r in list(catalogue.regions.values())[:2]]
        examples = [f"{community_text(value)} ({name})" for value, name in services + regions]
        raise ModelError(
            where,
            f"{value} is neither a service community nor a Microsoft-peering regional community (12076:51xxx) of "
            f"the services catalogue; e.g. {', '.join(examples)}",
        )
    return community


def _community(where: str, value: Any) -> int:
    if not isinstance(value, str) or ":" not in value:
        raise ModelError(
            where,
            f"{value!r}: write a community as a quoted 'ASN:value' string (YAML reads some unquoted ones as numbers)",
        )
    try:
        return parse_community(value)
    except RouteSyntaxError:
        raise ModelError(where, f"{value!r}: expected ASN:value with both halves 0..65535") from None


# ---------------------------------------------------------------- VNets

_VNET_KEYS = ("address_space", "region", "custom_community", "user_routes", "gateway_route_propagation", "connections")


def _vnet(where: str, name: str, raw: Any, circuits: Mapping[str, Circuit], catalogue: Catalogue) -> VNet:
    data = _mapping(where, raw)
    _only(where, data, _VNET_KEYS)
    space: list[_Network] = []
    for n, value in enumerate(_items(f"{where}.address_space", data.get("address_space", []))):
        spot = f"{where}.address_space[{n}]"
        net = _network(spot, value)
        clash = _first_overlap(net, space)
        if clash is not None:
            raise ModelError(spot, f"{net} overlaps {clash}, already in this VNet's address space")
        space.append(net)
    if not space:
        raise ModelError(f"{where}.address_space", "a VNet needs at least one address range, e.g. 10.0.0.0/16")
    custom = data.get("custom_community")
    return VNet(
        name=name,
        address_space=tuple(space),
        region=_region(f"{where}.region", data.get("region", DEFAULT_REGION), catalogue),
        custom_community=None if custom is None else _custom_community(f"{where}.custom_community", custom),
        user_routes=tuple(
            _user_route(f"{where}.user_routes[{n}]", value, space)
            for n, value in enumerate(_items(f"{where}.user_routes", data.get("user_routes", [])))
        ),
        gateway_route_propagation=_bool(
            f"{where}.gateway_route_propagation", data.get("gateway_route_propagation", True)
        ),
        connections=_connections(f"{where}.connections", data.get("connections", []), circuits),
    )


def _custom_community(where: str, value: Any) -> int:
    rule = "custom VNet communities are written 12076:<value> with value 0..65535"
    try:
        community = _community(where, value)
    except ModelError:
        raise ModelError(where, f"{value!r}: {rule}") from None
    if community >> 16 != AZURE_ASN:
        raise ModelError(where, f"{value!r}: {rule}")
    return community


def _user_route(where: str, raw: Any, space: list[_Network]) -> UserRoute:
    data = _mapping(where, raw)
    _only(where, data, ("prefix", "next_hop_type", "next_hop_ip"))
    if "prefix" not in data:
        raise ModelError(f"{where}.prefix", "required")
    if "next_hop_type" not in data:
        raise ModelError(f"{where}.next_hop_type", f"required; one of {', '.join(NEXT_HOP_TYPES)}")
    prefix = _network(f"{where}.prefix", data["prefix"])
    hop_type = _choice(f"{where}.next_hop_type", data.get("next_hop_type"), NEXT_HOP_TYPES, "a next hop type")
    hop = data.get("next_hop_ip")
    if (hop is None) == (hop_type == "VirtualAppliance"):
        wrong = "required with VirtualAppliance" if hop is None else f"only VirtualAppliance has one, not {hop_type}"
        raise ModelError(f"{where}.next_hop_ip", wrong)
    if hop is None:
        return UserRoute(prefix, hop_type)
    try:
        address = ipaddress.ip_address(hop)
    except ValueError:
        raise ModelError(f"{where}.next_hop_ip", f"{hop!r} is not an IP address") from None
    if not any(address.version == net.version and address in net for net in space):
        raise ModelError(
            f"{where}.next_hop_ip",
            f"{address} is outside the VNet's address space ({', '.join(map(str, space))}); the appliance "
            "must sit in this VNet",
        )
    return UserRoute(prefix, hop_type, str(address))


def _connections(where: str, raw: Any, circuits: Mapping[str, Circuit]) -> tuple[Connection, ...]:
    connections: list[Connection] = []
    for n, value in enumerate(_items(where, raw)):
        spot = f"{where}[{n}]"
        data = _mapping(spot, value)
        _only(spot, data, ("circuit", "weight"))
        name = data.get("circuit")
        if not isinstance(name, str) or name not in circuits:
            raise ModelError(f"{spot}.circuit", f"no circuit named {name!r} (defined: {', '.join(circuits) or 'none'})")
        if circuits[name].peering(PeeringType.PRIVATE) is None:
            raise ModelError(f"{spot}.circuit", f"circuit {name} has no private peering; VNets connect through it")
        if any(c.circuit == name for c in connections):
            raise ModelError(f"{spot}.circuit", f"this VNet is already connected to circuit {name}")
        weight = _int(f"{spot}.weight", data.get("weight", 0), 0, MAX_CONNECTION_WEIGHT, "a routing weight")
        connections.append(Connection(name, weight))
    return tuple(connections)


# ---------------------------------------------------------------- plain values


def _section(root: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = root.get(key)
    return {} if value is None else _mapping(key, value)


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ModelError(where, f"expected a mapping of names to settings, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise ModelError(where, f"{key!r}: names and keys are non-empty text")
    return value


def _only(where: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise ModelError(f"{where}.{key}" if where else key, f"unknown key {key!r}; allowed: {', '.join(allowed)}")


def _items(where: str, value: Any) -> list[Any]:
    """A list, or one lone value standing for a list of one."""
    if isinstance(value, list):
        return value
    if isinstance(value, str | Mapping):
        return [value]
    raise ModelError(where, f"expected a list, got {type(value).__name__}")


def _int(where: str, value: Any, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelError(where, f"{value!r} is not a number; {what} is an integer {low}..{high}")
    if not low <= value <= high:
        raise ModelError(where, f"{value} is out of range; {what} is {low}..{high}")
    return value


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ModelError(where, f"{value!r}: expected true or false")
    return value


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ModelError(where, f"{value!r}: expected non-empty text")
    return value


def _choice(where: str, value: Any, allowed: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ModelError(where, f"{value!r} is not {what}; use one of {', '.join(allowed)}")
    return value


def _region(where: str, value: Any, catalogue: Catalogue) -> str:
    if isinstance(value, str) and value in catalogue.regions:
        return value
    keys = list(catalogue.regions)
    close = difflib.get_close_matches(str(value), keys, n=3)
    examples = close + [k for k in keys if k not in close][: 6 - len(close)]
    raise ModelError(
        where, f"unknown Azure region {value!r}; use a region key of the services catalogue, e.g. {', '.join(examples)}"
    )


def _network(where: str, value: Any) -> _Network:
    if not isinstance(value, str) or "/" not in value:
        raise ModelError(where, f"{value!r}: expected a prefix with its length, e.g. 203.0.113.0/24 or 2001:db8::/48")
    try:
        return ipaddress.ip_network(value)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ModelError(where, f"{value!r} is not an IP prefix; e.g. 203.0.113.0/24 or 2001:db8::/48") from None
    raise ModelError(where, f"{value} has host bits set; the network is {loose}")


def _family_network(where: str, value: Any, family: type[_N]) -> _N:
    net = _network(where, value)
    if not isinstance(net, family):
        raise ModelError(where, f"{net} is not an {family.__name__[:4]} prefix")
    return net


def _require_public(where: str, net: _Network, what: str) -> None:
    if net.prefixlen == 0:
        raise ModelError(where, f"{net} is a default route; {what} takes only public prefixes you own")
    clash = next(((r, label) for r, label in _NOT_PUBLIC if _overlap(net, r)), None)
    if clash is not None:
        raise ModelError(
            where,
            f"{net} is not public: it overlaps {clash[0]} ({clash[1]}); {what} needs public addresses you own "
            "(documentation ranges such as 198.51.100.0/24 and 2001:db8::/32 are fine in a lab)",
        )


def _overlap(a: _Network, b: _Network) -> bool:
    """Like `overlaps`, but false across address families rather than a type error."""
    if a.version != b.version:
        return False
    return int(a.network_address) <= int(b.broadcast_address) and int(b.network_address) <= int(a.broadcast_address)


def _first_overlap(net: _Network, others: Iterable[_Network]) -> _Network | None:
    return next((other for other in others if _overlap(net, other)), None)


# ---------------------------------------------------------------- back to data


def _circuit_data(circuit: Circuit) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sku": circuit.sku,
        "bandwidth": _bandwidth_text(circuit.bandwidth_mbps),
        "service_key": circuit.service_key,
        "location": circuit.location,
        "region": circuit.region,
        "provisioning_state": circuit.provisioning_state,
        "legacy": circuit.legacy,
        "microsoft365_authorized": circuit.microsoft365_authorized,
    }
    if circuit.outer_vlan is not None:
        data["outer_vlan"] = circuit.outer_vlan
    if circuit.peerings:
        data["peerings"] = {str(kind): _peering_data(p) for kind, p in circuit.peerings.items()}
    return data


def _peering_data(peering: Peering) -> dict[str, Any]:
    data: dict[str, Any] = {"vlan": peering.vlan, "peer_asn": peering.peer_asn, "enabled": peering.enabled}
    optional: dict[str, Any] = {
        "ipv4": peering.ipv4 and [str(n) for n in peering.ipv4],
        "ipv6": peering.ipv6 and [str(n) for n in peering.ipv6],
        "md5": peering.md5,
        "advertised_prefixes": [str(n) for n in peering.advertised_prefixes],
        "customer_asn": peering.customer_asn,
        "validated": peering.validated,
        "route_filter": peering.route_filter,
    }
    data.update((key, value) for key, value in optional.items() if value)
    return data


def _vnet_data(vnet: VNet) -> dict[str, Any]:
    data: dict[str, Any] = {
        "address_space": [str(n) for n in vnet.address_space],
        "region": vnet.region,
        "gateway_route_propagation": vnet.gateway_route_propagation,
        "connections": [{"circuit": c.circuit, "weight": c.weight} for c in vnet.connections],
    }
    if vnet.custom_community is not None:
        data["custom_community"] = community_text(vnet.custom_community)
    if vnet.user_routes:
        data["user_routes"] = [
            {"prefix": str(r.prefix), "next_hop_type": r.next_hop_type}
            | ({} if r.next_hop_ip is None else {"next_hop_ip": r.next_hop_ip})
            for r in vnet.user_routes
        ]
    return data
