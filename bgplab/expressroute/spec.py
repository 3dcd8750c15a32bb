"""An ExpressRoute configuration as written (YAML or JSON), checked against what Azure accepts.

These pydantic models are the one place the rules live: a value that Azure would refuse never
gets past them, so the emulator never runs a lab that could not exist in Azure, and a user learns
the rule before the lab is up. `bgplab.expressroute.model.Model.from_data` reads plain data
through them; a topology file embeds them under `expressroute:`. Each field's `title` is what the
refusal calls it, each docstring what `bgplab schema` shows.

Rules between fields (a route filter that must exist, VLANs that must differ, VNets that must not
overlap) run once their fields are valid, and raise `FieldError` at the field that breaks them.
Validation takes the services catalogue (regions, communities) from the context key `catalogue`,
the packaged one by default.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import uuid
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from bgplab.bgp.routesyntax import RouteSyntaxError, community_text, parse_community
from bgplab.expressroute.services import Catalogue, load_catalogue
from bgplab.source import FieldError, canonical, empty_if_none

AZURE_ASN = 12076
BANDWIDTHS_MBPS: tuple[int, ...] = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 40000, 100000)
MAX_CONNECTION_WEIGHT = 32000
DEFAULT_REGION = "west-europe"

_MICROSOFT_ASNS = (8074, 8075, AZURE_ASN)
_AZURE_RESERVED_ASNS = range(65515, 65521)
_DOCUMENTATION_ASNS = range(64496, 64512)
_STANDARD_VNET_LINKS = 10
# (bandwidth Mbps from which it applies, VNet links) of a Premium circuit, ascending.
_PREMIUM_VNET_LINKS = ((50, 20), (100, 25), (200, 40), (500, 40), (1000, 50), (2000, 60), (5000, 75), (10000, 100))
_BANDWIDTH_TEXT = re.compile(r"(\d+)\s*([mg])bps", re.IGNORECASE)
_MICROSOFT_ONLY = ("customer_asn", "validated", "route_filter")

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


class PeeringType(StrEnum):
    PRIVATE = "private"
    MICROSOFT = "microsoft"
    PUBLIC = "public"


def max_vnet_links(sku: str, bandwidth_mbps: int) -> int:
    """How many VNets a circuit connects: 10 on Standard and Local, 20 to 100 by bandwidth on Premium."""
    if sku != "premium":
        return _STANDARD_VNET_LINKS
    return next(links for mbps, links in reversed(_PREMIUM_VNET_LINKS) if bandwidth_mbps >= mbps)


def bandwidth_text(mbps: int) -> str:
    return f"{mbps // 1000}Gbps" if mbps >= 1000 and mbps % 1000 == 0 else f"{mbps}Mbps"


def _catalogue(info: ValidationInfo) -> Catalogue:
    context = info.context if isinstance(info.context, Mapping) else {}
    found = context.get("catalogue")
    return found if isinstance(found, Catalogue) else load_catalogue()


# ---------------------------------------------------------------- values as written


def _listify(value: Any) -> Any:
    """One lone value (text or a mapping) stands for a list of one."""
    return [value] if isinstance(value, str | Mapping) else value


def parse_network(value: str, examples: str, name: str = "network") -> _Network:
    """A prefix as written. Host bits set is the likely slip (10.1.0.1/16), so that refusal says
    which `name` was meant; anything else that is no prefix gets `examples`."""
    try:
        return ipaddress.ip_network(value)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP prefix; e.g. {examples}") from None
    raise ValueError(f"{value} has host bits set; the {name} is {loose}")


def _network(value: Any) -> _Network:
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{value!r}: expected a prefix with its length, e.g. 203.0.113.0/24 or 2001:db8::/48")
    return parse_network(value, "203.0.113.0/24 or 2001:db8::/48")


def _family_network(value: Any, family: type[_N], path: tuple[int, ...] = ()) -> _N:
    try:
        net = _network(value)
    except ValueError as exc:
        raise FieldError(path, str(exc)) from None
    if not isinstance(net, family):
        raise FieldError(path, f"{net} is not an {family.__name__[:4]} prefix")
    return net


def _link_subnets(value: Any, family: type[_N]) -> tuple[_N, _N]:
    """One /29 (/125) split in two, or two /30s (/126s) as given: (primary, secondary)."""
    bits = 32 if family is ipaddress.IPv4Network else 128
    whole, half = bits - 3, bits - 2
    shape = f"one /{whole} or a list of two /{half}s (primary, secondary)"
    if isinstance(value, str):
        subnet = _family_network(value, family)
        if subnet.prefixlen != whole:
            raise ValueError(f"{subnet} is a /{subnet.prefixlen}; expected {shape}")
        primary, secondary = subnet.subnets(new_prefix=half)
        return primary, secondary
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"expected {shape}")
    primary = _family_network(value[0], family, (0,))
    secondary = _family_network(value[1], family, (1,))
    for n, subnet in enumerate((primary, secondary)):
        if subnet.prefixlen != half:
            raise FieldError((n,), f"{subnet} is a /{subnet.prefixlen}; expected {shape}")
    if primary.overlaps(secondary):
        raise FieldError((1,), f"{secondary} overlaps the primary {primary}; each link needs its own /{half}")
    return primary, secondary


def _ipv4_pair(value: Any) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    return _link_subnets(value, ipaddress.IPv4Network)


def _ipv6_pair(value: Any) -> tuple[ipaddress.IPv6Network, ipaddress.IPv6Network]:
    return _link_subnets(value, ipaddress.IPv6Network)


def _bandwidth(value: Any) -> int:
    match = _BANDWIDTH_TEXT.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is not None:
        mbps = int(match[1]) * (1000 if match[2].lower() == "g" else 1)
    elif isinstance(value, int) and not isinstance(value, bool):
        mbps = value
    else:
        raise ValueError(f"{value!r} is not a bandwidth; write it like 1Gbps, 500Mbps or 1000 (Mbps)")
    if mbps not in BANDWIDTHS_MBPS:
        allowed = ", ".join(map(bandwidth_text, BANDWIDTHS_MBPS))
        raise ValueError(f"{bandwidth_text(mbps)} is not an ExpressRoute bandwidth; use one of {allowed}")
    return mbps


def _region(value: str, info: ValidationInfo) -> str:
    catalogue = _catalogue(info)
    if value in catalogue.regions:
        return value
    keys = list(catalogue.regions)
    close = difflib.get_close_matches(value, keys, n=3)
    examples = close + [k for k in keys if k not in close][: 6 - len(close)]
    raise ValueError(
        f"unknown Azure region {value!r}; use a region key of the services catalogue, e.g. {', '.join(examples)}"
    )


def _not_as0(value: Any) -> Any:
    if value == 0 and type(value) is int:
        raise ValueError("AS 0 is reserved (RFC 7607); use your ASN, 1..4294967295")
    return value


def _customer_asn(asn: int) -> int:
    if asn == 23456:
        raise ValueError("AS 23456 is AS_TRANS (RFC 6793), a stand-in for 4-byte ASNs; use your real ASN")
    if asn in _MICROSOFT_ASNS:
        raise ValueError(f"AS {asn} is Microsoft's (8074, 8075, 12076; the MSEE is AS 12076); use your own ASN")
    if asn in _AZURE_RESERVED_ASNS:
        raise ValueError(f"AS {asn} is reserved by Azure (65515-65520); use another private or public ASN")
    return asn


def _md5(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 25 or not (value.isascii() and value.isalnum()):
        raise ValueError("an MD5 key is 1 to 25 characters, letters and digits only (Azure allows no others)")
    return value


def _community(value: Any) -> int:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(
            f"{value!r}: write a community as a quoted 'ASN:value' string (YAML reads some unquoted ones as numbers)"
        )
    try:
        return parse_community(value)
    except RouteSyntaxError:
        raise ValueError(f"{value!r}: expected ASN:value with both halves 0..65535") from None


def _filter_community(value: Any, info: ValidationInfo) -> int:
    community = _community(value)
    catalogue = _catalogue(info)
    if not catalogue.known_community(community):
        services = [(s.community, s.name) for s in catalogue.services.values() if s.community is not None][:3]
        regions = [(r.microsoft_community, r.name) for r in list(catalogue.regions.values())[:2]]
        examples = [f"{community_text(c)} ({name})" for c, name in services + regions]
        raise ValueError(
            f"{value} is neither a service community nor a Microsoft-peering regional community (12076:51xxx) of "
            f"the services catalogue; e.g. {', '.join(examples)}"
        )
    return community


def _custom_community(value: Any) -> int:
    rule = "custom VNet communities are written 12076:<value> with value 0..65535"
    try:
        community = _community(value)
    except ValueError:
        raise ValueError(f"{value!r}: {rule}") from None
    if community >> 16 != AZURE_ASN:
        raise ValueError(f"{value!r}: {rule}")
    return community


def _one_rule(value: Any) -> Any:
    if not isinstance(value, list) or len(value) != 1:
        raise ValueError("a route filter has exactly one rule, an allow rule listing communities")
    return value


def _allow(value: Any) -> str:
    if not isinstance(value, str) or value.lower() != "allow":
        raise ValueError(
            f"{value!r}: the rule must allow; Azure does not support deny rules in route filters, "
            "leave the community out instead"
        )
    return value


_HOP_ADDRESS = canonical(ipaddress.ip_address, "{value!r} is not an IP address")
_SERVICE_KEY = canonical(uuid.UUID, f"{{value!r}} is not a UUID; a service key looks like {uuid.UUID(int=0)}")
Network = Annotated[_Network, BeforeValidator(_network, json_schema_input_type=str)]
Networks = Annotated[list[Network], BeforeValidator(_listify, json_schema_input_type=str | list[str])]
Asn = Annotated[int, Field(ge=1, le=0xFFFFFFFF), BeforeValidator(_not_as0), AfterValidator(_customer_asn)]
Region = Annotated[str, AfterValidator(_region)]
_LinkV4 = Annotated[
    tuple[ipaddress.IPv4Network, ipaddress.IPv4Network],
    BeforeValidator(_ipv4_pair, json_schema_input_type=str | list[str]),
]
_LinkV6 = Annotated[
    tuple[ipaddress.IPv6Network, ipaddress.IPv6Network],
    BeforeValidator(_ipv6_pair, json_schema_input_type=str | list[str]),
]


# ---------------------------------------------------------------- the configuration


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, use_attribute_docstrings=True)


class PeeringSpec(_Spec):
    """A peering of a circuit: its VLAN, the customer's ASN and the link subnets of both sides."""

    vlan: int = Field(ge=1, le=4094, title="a VLAN ID")
    """The c-tag (or the only 802.1Q tag); the same on both links, distinct per peering."""
    peer_asn: Asn = Field(title="an AS number")
    """The customer's ASN on this peering (not Microsoft's, not 65515-65520)."""
    ipv4: _LinkV4 | None = None
    """One /29, or two /30s (primary, secondary): the customer on the first host, the MSEE on the second."""
    ipv6: _LinkV6 | None = None
    """One /125, or two /126s (primary, secondary), likewise."""
    md5: Annotated[str, BeforeValidator(_md5)] | None = None
    """The BGP session key: 1 to 25 letters and digits."""
    enabled: bool = True
    """An administratively disabled peering keeps its configuration but runs no sessions."""
    advertised_prefixes: Networks = Field(default_factory=list)
    """Microsoft and public peering: the public prefixes the customer may announce (e.g. a NAT pool)."""
    customer_asn: Asn | None = Field(None, title="an AS number")
    """Microsoft peering: the ASN the advertised prefixes originate from, if not peer_asn."""
    validated: bool = False
    """Microsoft peering: Microsoft has validated the ownership of a private peer_asn."""
    route_filter: str | None = None
    """Microsoft peering: the route filter (under route_filters) choosing the services advertised."""

    @model_validator(mode="after")
    def _has_a_family(self) -> PeeringSpec:
        if self.ipv4 is None and self.ipv6 is None:
            raise ValueError("a peering needs ipv4 (one /29 or two /30s), ipv6 (one /125 or two /126s), or both")
        return self

    def check(self, kind: PeeringType) -> None:
        """What depends on the peering's type; paths from the peering."""
        for key in _MICROSOFT_ONLY:
            if key in self.model_fields_set and kind is not PeeringType.MICROSOFT:
                raise FieldError((key,), f"only Microsoft peering has a {key}, not {kind} peering")
        if "advertised_prefixes" in self.model_fields_set and kind is PeeringType.PRIVATE:
            raise FieldError(
                ("advertised_prefixes",),
                "only Microsoft and public peering have advertised prefixes; private peering takes what the "
                "customer announces over BGP",
            )
        if self.ipv6 is not None and kind is PeeringType.PUBLIC:
            raise FieldError(("ipv6",), "public peering carried IPv4 only")
        if kind is PeeringType.PRIVATE:
            return
        what = "Microsoft peering" if kind is PeeringType.MICROSOFT else "public peering"
        for family, pair in (("ipv4", self.ipv4), ("ipv6", self.ipv6)):
            for subnet in pair or ():
                _require_public((family,), subnet, what)
        for n, prefix in enumerate(self.advertised_prefixes):
            _require_public(("advertised_prefixes", n), prefix, what)
        if kind is not PeeringType.MICROSOFT:
            return
        if not self.advertised_prefixes:
            raise FieldError(
                ("advertised_prefixes",),
                "Microsoft peering needs at least one advertised public prefix you own (e.g. your NAT pool); "
                "without one Microsoft accepts nothing from you",
            )
        for key, asn in (("peer_asn", self.peer_asn), ("customer_asn", self.customer_asn)):
            if asn in _DOCUMENTATION_ASNS:
                raise FieldError(
                    (key,),
                    f"AS {asn} is in the documentation range 64496-64511, which may not appear in the path on "
                    "Microsoft peering; use a public ASN you own",
                )


def _require_public(path: tuple[str | int, ...], net: _Network, what: str) -> None:
    if net.prefixlen == 0:
        raise FieldError(path, f"{net} is a default route; {what} takes only public prefixes you own")
    clash = next(((r, label) for r, label in _NOT_PUBLIC if overlap(net, r)), None)
    if clash is not None:
        raise FieldError(
            path,
            f"{net} is not public: it overlaps {clash[0]} ({clash[1]}); {what} needs public addresses you own "
            "(documentation ranges such as 198.51.100.0/24 and 2001:db8::/32 are fine in a lab)",
        )


def overlap(a: _Network, b: _Network) -> bool:
    """Like `overlaps`, but false across address families rather than a type error."""
    if a.version != b.version:
        return False
    return int(a.network_address) <= int(b.broadcast_address) and int(b.network_address) <= int(a.broadcast_address)


def first_overlap(net: _Network, others: Iterable[_Network]) -> _Network | None:
    return next((other for other in others if overlap(net, other)), None)


class PeeringsSpec(_Spec):
    """A circuit's peerings, by type."""

    private: PeeringSpec | None = None
    """Private peering: the customer's networks and the connected VNets."""
    microsoft: PeeringSpec | None = None
    """Microsoft peering: Microsoft 365 and Azure public services, chosen by a route filter."""
    public: PeeringSpec | None = None
    """Legacy public peering (retired 2024-03-31): Azure public services, IPv4 only."""

    def items(self) -> list[tuple[PeeringType, PeeringSpec]]:
        """The configured peerings, in type order."""
        return [(kind, peering) for kind in PeeringType if (peering := getattr(self, kind.value)) is not None]

    @model_validator(mode="after")
    def _check(self) -> PeeringsSpec:
        vlans: dict[int, PeeringType] = {}
        for kind, peering in self.items():
            try:
                peering.check(kind)
            except FieldError as exc:
                raise FieldError((kind, *exc.path), str(exc)) from None
            if peering.vlan in vlans:
                raise FieldError(
                    (kind, "vlan"),
                    f"VLAN {peering.vlan} is already the {vlans[peering.vlan]} peering's; each peering of a circuit "
                    "needs its own VLAN ID",
                )
            vlans[peering.vlan] = kind
        return self


class CircuitSpec(_Spec):
    """An ExpressRoute circuit: its SKU and bandwidth, where it lands, and its peerings."""

    sku: Literal["standard", "premium", "local"] = Field("standard", title="an ExpressRoute SKU")
    """Premium raises the VNet link and private-peering prefix limits."""
    bandwidth: Annotated[int, BeforeValidator(_bandwidth, json_schema_input_type=str | int)]
    """One of the ExpressRoute bandwidths: 50Mbps to 10Gbps (and 40Gbps, 100Gbps), or Mbps as a number."""
    service_key: Annotated[str, AfterValidator(_SERVICE_KEY)] | None = None
    """The circuit's s-key (a UUID); default: one derived from the circuit's name."""
    location: str = Field("Amsterdam", min_length=1)
    """The peering location."""
    region: Region = DEFAULT_REGION
    """A region key of the services catalogue (e.g. west-europe)."""
    provisioning_state: Literal["NotProvisioned", "Provisioning", "Provisioned"] = Field(
        "Provisioned", title="a provider provisioning state"
    )
    """The provider's side: peerings can be configured only once it is Provisioned."""
    legacy: bool = False
    """Created before 2018-04-01: only such a circuit can have public peering."""
    outer_vlan: int | None = Field(None, ge=1, le=4094, title="an s-tag")
    """The QinQ s-tag of all the circuit's peerings; unset for 802.1Q."""
    microsoft365_authorized: bool = False
    """The subscription may attach route filters with Microsoft 365 communities."""
    peerings: PeeringsSpec = Field(default_factory=PeeringsSpec)
    """Its peerings by type (private, microsoft, public), each on its own VLAN."""

    @model_validator(mode="after")
    def _check(self) -> CircuitSpec:
        if self.peerings.items() and self.provisioning_state != "Provisioned":
            raise FieldError(
                ("peerings",),
                f"the provider has not provisioned the circuit (provisioning_state {self.provisioning_state}); "
                "peerings can be configured only once it is Provisioned",
            )
        if self.peerings.public is not None and not self.legacy:
            raise FieldError(
                ("peerings", "public"),
                "public peering was unavailable to circuits created after 2018-04-01 and retired on 2024-03-31; "
                "use microsoft peering, or set legacy: true to model an older circuit",
            )
        return self


class RuleSpec(_Spec):
    """A route filter's one rule."""

    access: Annotated[str, BeforeValidator(_allow)] = "allow"
    """Always allow: Azure has no deny rules in route filters."""
    communities: Annotated[
        list[Annotated[int, BeforeValidator(_filter_community, json_schema_input_type=str)]],
        BeforeValidator(_listify, json_schema_input_type=str | list[str]),
    ] = Field(default_factory=list)
    """Service and regional BGP communities of the services catalogue, as quoted 'ASN:value' text."""

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        if not self.communities:
            raise FieldError(("communities",), "list at least one community; an empty filter lets nothing through")
        return self


class RouteFilterSpec(_Spec):
    """A route filter for Microsoft peering: which services' prefixes the MSEE advertises."""

    rules: Annotated[list[RuleSpec], BeforeValidator(_one_rule)]
    """Exactly one rule, an allow rule listing communities."""


class UserRouteSpec(_Spec):
    """A user-defined route of the VNet's route table."""

    prefix: Network
    """The destination, e.g. 0.0.0.0/0."""
    next_hop_type: Literal["VirtualAppliance", "VirtualNetworkGateway", "Internet", "VnetLocal", "None"] = Field(
        title="a next hop type"
    )
    """Where the route sends traffic; None drops it."""
    next_hop_ip: Annotated[str, AfterValidator(_HOP_ADDRESS)] | None = None
    """VirtualAppliance only: the appliance's address, inside the VNet."""

    @model_validator(mode="after")
    def _check(self) -> UserRouteSpec:
        hop, hop_type = self.next_hop_ip, self.next_hop_type
        if (hop is None) == (hop_type == "VirtualAppliance"):
            wrong = f"only VirtualAppliance has one, not {hop_type}" if hop else "required with VirtualAppliance"
            raise FieldError(("next_hop_ip",), wrong)
        return self


class ConnectionSpec(_Spec):
    """A VNet's connection to a circuit (through its private peering)."""

    circuit: str
    """The circuit's name under circuits; it needs private peering."""
    weight: int = Field(0, ge=0, le=MAX_CONNECTION_WEIGHT, title="a routing weight")
    """routingWeight: higher is preferred, and it counts before AS-path length."""


class VNetSpec(_Spec):
    """A virtual network and its ExpressRoute gateway's connections."""

    address_space: Networks = Field(default_factory=list)
    """The VNet's prefixes, IPv4 and/or IPv6; at least one, none overlapping."""
    region: Region = DEFAULT_REGION
    """A region key of the services catalogue; the VNet's routes carry its regional community."""
    custom_community: Annotated[int, BeforeValidator(_custom_community, json_schema_input_type=str)] | None = None
    """'12076:<value>': tags the VNet's routes toward the customer."""
    user_routes: Annotated[list[UserRouteSpec], BeforeValidator(_listify)] = Field(default_factory=list)
    """The route table's own routes (UDRs), beside those the gateway learns."""
    gateway_route_propagation: bool = True
    """Whether routes learned from the gateway reach the VNet's route table."""
    connections: Annotated[list[ConnectionSpec], BeforeValidator(_listify)] = Field(default_factory=list)
    """The circuits the VNet's gateway connects to, at most once each."""

    @model_validator(mode="after")
    def _check(self) -> VNetSpec:
        if not self.address_space:
            raise FieldError(("address_space",), "a VNet needs at least one address range, e.g. 10.0.0.0/16")
        for n, net in enumerate(self.address_space):
            clash = first_overlap(net, self.address_space[:n])
            if clash is not None:
                raise FieldError(("address_space", n), f"{net} overlaps {clash}, already in this VNet's address space")
        for n, route in enumerate(self.user_routes):
            if route.next_hop_type == "VirtualNetworkGateway":
                # Only a VPN gateway can be a UDR's next hop; a VNet here has an ExpressRoute one.
                raise FieldError(
                    ("user_routes", n, "next_hop_type"),
                    "Azure refuses a user-defined route to an ExpressRoute gateway: routes toward it come over BGP "
                    "(next hop type VirtualNetworkGateway needs a VPN gateway); use VirtualAppliance or None",
                )
            if route.next_hop_ip is None:
                continue
            address = ipaddress.ip_address(route.next_hop_ip)
            if not any(address.version == net.version and address in net for net in self.address_space):
                raise FieldError(
                    ("user_routes", n, "next_hop_ip"),
                    f"{address} is outside the VNet's address space ({', '.join(map(str, self.address_space))}); "
                    "the appliance must sit in this VNet",
                )
        for n, connection in enumerate(self.connections):
            if any(c.circuit == connection.circuit for c in self.connections[:n]):
                raise FieldError(
                    ("connections", n, "circuit"), f"this VNet is already connected to circuit {connection.circuit}"
                )
        return self


class ModelSpec(_Spec):
    """An ExpressRoute configuration: circuits, route filters and VNets, each by name."""

    circuits: Annotated[Mapping[str, CircuitSpec], BeforeValidator(empty_if_none)] = Field(default_factory=dict)
    """Circuit name -> circuit."""
    route_filters: Annotated[Mapping[str, RouteFilterSpec], BeforeValidator(empty_if_none)] = Field(
        default_factory=dict
    )
    """Route filter name -> filter, for Microsoft peerings to attach."""
    vnets: Annotated[Mapping[str, VNetSpec], BeforeValidator(empty_if_none)] = Field(default_factory=dict)
    """VNet name -> VNet."""

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> ModelSpec:
        catalogue = _catalogue(info)
        for name, circuit in self.circuits.items():
            for kind, peering in circuit.peerings.items():
                self._check_filter(name, circuit, kind, peering, catalogue)
        for name, vnet in self.vnets.items():
            for n, connection in enumerate(vnet.connections):
                target = self.circuits.get(connection.circuit)
                spot = ("vnets", name, "connections", n, "circuit")
                if target is None:
                    defined = ", ".join(self.circuits) or "none"
                    raise FieldError(spot, f"no circuit named {connection.circuit!r} (defined: {defined})")
                if target.peerings.private is None:
                    raise FieldError(
                        spot, f"circuit {connection.circuit} has no private peering; VNets connect through it"
                    )
        self._check_links()
        return self

    def _check_filter(
        self, name: str, circuit: CircuitSpec, kind: PeeringType, peering: PeeringSpec, catalogue: Catalogue
    ) -> None:
        value = peering.route_filter
        if value is None:
            return
        spot = ("circuits", name, "peerings", kind, "route_filter")
        found = self.route_filters.get(value)
        if found is None:
            defined = ", ".join(self.route_filters) or "none is defined"
            raise FieldError(spot, f"no route filter named {value!r} in route_filters (defined: {defined})")
        office = [c for c in found.rules[0].communities if catalogue.is_microsoft365(c)]
        if office and not circuit.microsoft365_authorized:
            raise FieldError(
                spot,
                f"route filter {value} allows Microsoft 365 communities ({', '.join(map(community_text, office))}); "
                "attaching it fails unless the subscription is authorized for Microsoft 365 over ExpressRoute "
                "(set microsoft365_authorized: true on the circuit)",
            )

    def _check_links(self) -> None:
        """What only the circuit's whole set of VNet links shows: link count and address overlaps."""
        linked: dict[str, list[str]] = {}
        for vname, vnet in self.vnets.items():
            for n, connection in enumerate(vnet.connections):
                circuit = self.circuits[connection.circuit]
                others = linked.setdefault(connection.circuit, [])
                most = max_vnet_links(circuit.sku, circuit.bandwidth)
                if len(others) >= most:
                    hint = "" if circuit.sku == "premium" else "; Premium allows 20 to 100 by bandwidth"
                    raise FieldError(
                        ("vnets", vname, "connections", n, "circuit"),
                        f"circuit {connection.circuit} already has {len(others)} VNet links, the most a {circuit.sku} "
                        f"{bandwidth_text(circuit.bandwidth)} circuit allows{hint}",
                    )
                for other in others:
                    for i, net in enumerate(vnet.address_space):
                        clash = first_overlap(net, self.vnets[other].address_space)
                        if clash is not None:
                            raise FieldError(
                                ("vnets", vname, "address_space", i),
                                f"{net} overlaps {clash} of VNet {other}, also connected to circuit "
                                f"{connection.circuit}; VNets on one circuit need distinct address space",
                            )
                others.append(vname)
        for name, circuit in self.circuits.items():
            private = circuit.peerings.private
            if private is None:
                continue
            for family, subnets in (("ipv4", private.ipv4), ("ipv6", private.ipv6)):
                for subnet in subnets or ():
                    for vname in linked.get(name, ()):
                        clash = first_overlap(subnet, self.vnets[vname].address_space)
                        if clash is not None:
                            raise FieldError(
                                ("circuits", name, "peerings", "private", family),
                                f"{subnet} overlaps {clash}, address space of VNet {vname} connected to this "
                                "circuit; peering subnets must not overlap VNet address space",
                            )


_REQUIRED = {
    "bandwidth": "required; e.g. 1Gbps (one of the ExpressRoute bandwidths)",
    "next_hop_type": "required; one of VirtualAppliance, VirtualNetworkGateway, Internet, VnetLocal, None",
}


def special_message(error: Any) -> str | None:
    """The model's own words for a missing bandwidth or next hop type (what to write, not just "required")."""
    loc = error["loc"]
    if error["type"] == "missing" and loc and loc[-1] in _REQUIRED:
        return _REQUIRED[str(loc[-1])]
    return None
