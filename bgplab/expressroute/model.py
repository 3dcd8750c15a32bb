"""An ExpressRoute configuration as Azure would accept it: circuits, peerings, route filters and VNets.

`Model.from_data` reads plain data (YAML, JSON) through the pydantic models of
bgplab.expressroute.spec, where every rule Azure enforces lives, and refuses what Azure would
refuse with a ModelError naming the offending field by its dotted path and saying what would be
valid. A checked spec (a topology file's, say) becomes a model with `Model.from_spec`, without a
second look.

The classes here are plain values the nodes work with; code that builds them directly is
trusted to know the rules.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from bgplab.bgp.policy import is_private_asn
from bgplab.bgp.routesyntax import community_text
from bgplab.expressroute import spec
from bgplab.expressroute.services import Catalogue
from bgplab.expressroute.spec import (
    AZURE_ASN,
    BANDWIDTHS_MBPS,
    DEFAULT_REGION,
    PeeringType,
    bandwidth_text,
    max_vnet_links,
)
from bgplab.source import refusals

__all__ = [
    "AZURE_ASN", "BANDWIDTHS_MBPS", "DEFAULT_REGION", "GATEWAY_ASN", "Circuit", "Connection", "LinkAddressing",
    "Model", "ModelError", "Peering", "PeeringType", "RouteFilter", "Side", "UserRoute", "VNet",
]  # fmt: skip

GATEWAY_ASN = 65515
# Deterministic default service keys: the same lab file always gives the same s-key.
_SERVICE_KEY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "expressroute.bgplab")


class ModelError(ValueError):
    """A setting Azure would refuse; `field` is its dotted path, `message` the rule and what would be valid."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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
        return max_vnet_links(self.sku, self.bandwidth_mbps)

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
    def from_data(cls, data: Any, services: Catalogue | None = None) -> Model:
        """Check `data` (as loaded from YAML) against Azure's rules; `services` defaults to the packaged catalogue.

        The first refusal is raised; "(root)" is the field when `data` is not a mapping at all.
        """
        try:
            checked = spec.ModelSpec.model_validate(data, context={"catalogue": services})
        except ValidationError as exc:
            field, message = refusals(exc, spec.ModelSpec, spec.special_message)[0]
            raise ModelError(field or "(root)", message) from None
        return cls.from_spec(checked)

    @classmethod
    def from_spec(cls, checked: spec.ModelSpec) -> Model:
        """The values of a configuration pydantic has already checked."""
        filters = {
            name: RouteFilter(name, tuple(f.rules[0].communities)) for name, f in checked.route_filters.items()
        }
        circuits = {name: _circuit(name, c) for name, c in checked.circuits.items()}
        vnets = {name: _vnet(name, v) for name, v in checked.vnets.items()}
        return cls(MappingProxyType(circuits), MappingProxyType(filters), MappingProxyType(vnets))

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


# ---------------------------------------------------------------- from the checked spec


def _circuit(name: str, c: spec.CircuitSpec) -> Circuit:
    peerings = {kind: _peering(kind, p) for kind, p in c.peerings.items()}
    service_key = c.service_key or str(uuid.uuid5(_SERVICE_KEY_NAMESPACE, name))
    return Circuit(
        name, service_key, c.sku, c.bandwidth, c.location, c.region, c.provisioning_state, c.legacy, c.outer_vlan,
        c.microsoft365_authorized, MappingProxyType(peerings),
    )  # fmt: skip


def _peering(kind: PeeringType, p: spec.PeeringSpec) -> Peering:
    return Peering(
        kind, p.vlan, p.peer_asn, p.ipv4, p.ipv6, md5=p.md5, enabled=p.enabled,
        advertised_prefixes=tuple(p.advertised_prefixes), customer_asn=p.customer_asn, validated=p.validated,
        route_filter=p.route_filter,
    )  # fmt: skip


def _vnet(name: str, v: spec.VNetSpec) -> VNet:
    return VNet(
        name=name,
        address_space=tuple(v.address_space),
        region=v.region,
        custom_community=v.custom_community,
        user_routes=tuple(UserRoute(r.prefix, r.next_hop_type, r.next_hop_ip) for r in v.user_routes),
        gateway_route_propagation=v.gateway_route_propagation,
        connections=tuple(Connection(c.circuit, c.weight) for c in v.connections),
    )


# ---------------------------------------------------------------- back to data


def _circuit_data(circuit: Circuit) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sku": circuit.sku,
        "bandwidth": bandwidth_text(circuit.bandwidth_mbps),
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
