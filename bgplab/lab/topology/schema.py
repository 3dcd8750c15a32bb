"""The topology file format: pydantic models of what a user writes, with the words of its refusals.

The `expressroute:` section is bgplab.expressroute.spec's configuration with a few lab-only keys
(`edges` on circuits, `hosts` on VNets, `internet`, `rules`), so the ExpressRoute rules are checked
here, once, with everything else. What needs the whole lab (names, addresses, links) is checked
by the expansion (`expand.py`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import ErrorDetails

from bgplab.expressroute import spec
from bgplab.expressroute.rules import MseeRules
from bgplab.lab.kinds import GENERATED_KINDS, USER_KINDS
from bgplab.source import SourceError, canonical, empty_if_none

LAB_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_INTERFACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
_RATE = re.compile(r"(\d+)\s*([mg])bps", re.IGNORECASE)


class TopologyError(SourceError):
    """A topology file bgplab cannot run: where (file, line, dotted field) and what would be valid."""


# ---------------------------------------------------------------- value checks (pydantic validators)


def _lab_name(value: str) -> str:
    if not LAB_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a lab name: a lowercase letter, then up to 19 lowercase letters, digits or dashes "
            "(it prefixes namespace names)"
        )
    return value


def _interface_name(value: str) -> str:
    if value == "lo":
        raise ValueError("'lo' is the loopback; put loopback addresses under loopback:")
    if not _INTERFACE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an interface name: 1 to 15 characters (letters, digits, '_', '.', '-'), e.g. eth9"
        )
    return value


def _interface_address(value: str) -> str:
    if "/" not in value:
        raise ValueError(f"{value!r}: write an address with its prefix length, e.g. 10.1.1.1/24")
    return canonical(ipaddress.ip_interface, "{value!r} is not an address with a prefix length; e.g. 10.1.1.1/24")(
        value
    )


def _prefix(value: str) -> str:
    return str(spec.parse_network(value, "10.1.0.0/16 or 2001:db8:1::/48", "prefix"))


def _endpoint(value: str) -> str:
    node, colon, interface = value.partition(":")
    if not colon or not node or not interface:
        raise ValueError(f"{value!r}: a link end is NODE:INTERFACE, e.g. ce1:eth9")
    _interface_name(interface)
    return value


def _listify(value: Any) -> Any:
    """A lone value stands for a list of one."""
    return value if isinstance(value, list) else [value]


def _rate(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        mbps = value
    elif isinstance(value, str) and (match := _RATE.fullmatch(value.strip())):
        mbps = int(match[1]) * (1000 if match[2].lower() == "g" else 1)
    else:
        raise ValueError(f"{value!r} is not a rate; write it like 100Mbps, 1Gbps or 100 (Mbps)")
    if mbps < 1:
        raise ValueError(f"{value!r}: a rate is at least 1Mbps")
    return mbps


def _link_short_form(value: Any) -> Any:
    return {"endpoints": value} if isinstance(value, list) else value


def _internet_short_form(value: Any) -> Any:
    return {"enabled": value} if isinstance(value, bool) else value


LabName = Annotated[str, AfterValidator(_lab_name)]
InterfaceName = Annotated[str, AfterValidator(_interface_name)]
IpAddress = Annotated[
    str, AfterValidator(canonical(ipaddress.ip_address, "{value!r} is not an IP address; e.g. 10.1.1.1 or 2001:db8::1"))
]
Ipv4Address = Annotated[
    str,
    AfterValidator(
        canonical(ipaddress.IPv4Address, "{value!r} is not an IPv4 address; a router ID is written like 10.1.0.1")
    ),
]
InterfaceAddress = Annotated[str, AfterValidator(_interface_address)]
LoopbackAddress = Annotated[
    str,
    AfterValidator(canonical(ipaddress.ip_interface, "{value!r} is not an address; e.g. 10.1.0.1/32 (or 10.1.0.1)")),
]
Prefix = Annotated[str, AfterValidator(_prefix)]
EndpointRef = Annotated[str, AfterValidator(_endpoint)]
Asn = Annotated[int, Field(ge=1, le=0xFFFFFFFF)]
Addresses = Annotated[list[IpAddress], BeforeValidator(_listify, json_schema_input_type=IpAddress | list[IpAddress])]
InterfaceMap = Annotated[dict[InterfaceName, list[InterfaceAddress]], BeforeValidator(empty_if_none)]


# ---------------------------------------------------------------- the file format


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PrefixRangeSpec(_Spec):
    """Many prefixes at once, for prefix-limit rehearsals: `count` consecutive networks of the
    size of `first`, starting there (e.g. first: 10.64.0.0/24, count: 3990)."""

    first: Prefix
    count: Annotated[int, Field(ge=1, le=1_000_000)]

    @model_validator(mode="after")
    def _fits(self) -> PrefixRangeSpec:
        first = ipaddress.ip_network(self.first)
        if int(first.network_address) + first.num_addresses * self.count > 1 << first.max_prefixlen:
            raise ValueError(f"{self.count} networks of /{first.prefixlen} from {first} run past the address space")
        return self


class NeighborSpec(_Spec):
    """An extra BGP neighbor of a generated config (e.g. iBGP to the other CE)."""

    address: IpAddress
    asn: Asn
    md5: Annotated[str, Field(min_length=1, max_length=80)] | None = None
    bfd: bool = False


class NodeSpec(_Spec):
    """A user node: a CE router (its own config, or intent), a host, or a container image of the
    user's own (kind linux, on the docker runtime)."""

    # The registry's USER_KINDS, spelled out for pydantic and mypy (a test holds them equal).
    kind: Literal["frr", "bird", "gobgp", "exabgp", "linux", "host"]
    config: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="the node's own config file, relative to the topology file (routers only)"
    )
    asn: Asn | None = Field(None, description="intent; default: peer_asn of its first circuit's first peering")
    router_id: Ipv4Address | None = Field(None, description="intent; default: first IPv4 loopback or address")
    announce: list[Prefix] = Field(default_factory=list, description="intent: prefixes it originates")
    announce_range: PrefixRangeSpec | None = Field(None, description="intent: many consecutive prefixes as well")
    prepend: Annotated[int, Field(ge=0, le=10)] = Field(0, description="intent: AS-path prepend toward its MSEEs")
    bfd: bool = Field(True, description="intent: BFD to its MSEEs on IPv4 sessions")
    neighbors: list[NeighborSpec] = Field(default_factory=list, description="intent: extra BGP neighbors")
    advertise: dict[Literal["private", "microsoft", "public"], list[Prefix]] | None = Field(
        None, description="intent: what each peering's sessions may carry out (a prefix list); default: on "
        "private, what it and its iBGP partners announce; on microsoft and public, the advertised_prefixes")
    loopback: Annotated[list[LoopbackAddress], BeforeValidator(_listify, json_schema_input_type=str | list[str])] = (
        Field(default_factory=list)
    )
    interfaces: InterfaceMap = Field(default_factory=dict, description="addresses on the node's user links")
    gateway: Addresses = Field(default_factory=list, description="hosts only: default route(s), IPv4 and/or IPv6")
    # kind linux (bgplab.lab.topology.images checks these)
    image: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="kind linux: the container image (a local tag, or one a registry serves)")
    startup_config: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="kind linux: a file (relative to the topology file) mounted at startup_config_path")
    startup_config_path: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="kind linux: where the image reads its config, e.g. /etc/frr/frr.conf")
    binds: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="kind linux: HOST:PATH[:ro|rw], HOST relative to the topology file")
    env: dict[str, str] = Field(default_factory=dict, description="kind linux: the container's environment")
    exec: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="kind linux: shell commands run in the node once its links exist")
    ready: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="kind linux: a shell command that succeeds once the node is ready (retried)")
    ready_timeout: Annotated[float, Field(gt=0, le=600)] = Field(
        60.0, description="kind linux: seconds for `ready` to succeed")
    cli: Literal["frr", "bird", "gobgp"] | None = Field(
        None, description="kind linux: the CLI in the image bgplab reads its sessions and routes with (frr: "
        "vtysh; bird: birdc on its default socket; gobgp: gobgp on its default API address); none: unseen")


class LinkSpec(_Spec):
    """A user link; `[a:eth1, b:eth1]` is short for `{endpoints: [a:eth1, b:eth1]}`."""

    endpoints: Annotated[list[EndpointRef], Field(min_length=2, max_length=2)]
    rate: Annotated[int, BeforeValidator(_rate, json_schema_input_type=str | int)] | None = Field(
        None, description="shape both directions: 100Mbps, 1Gbps, or Mbps as a number"
    )


LinkItem = Annotated[LinkSpec, BeforeValidator(_link_short_form, json_schema_input_type=list[str] | LinkSpec)]


class CircuitSpec(spec.CircuitSpec):
    """An ExpressRoute circuit (bgplab.expressroute.spec), and the lab's routers at its two ends."""

    edges: Annotated[list[str], Field(min_length=2, max_length=2)]
    """The node on the primary link and the node on the secondary link (may be the same node)."""


class VNetSpec(spec.VNetSpec):
    """A VNet (bgplab.expressroute.spec), and the lab's Azure VMs in it."""

    hosts: Annotated[dict[str, Addresses], BeforeValidator(empty_if_none)] = Field(default_factory=dict)
    """VM name -> its address (one per family), from the VNet's address space."""


class InternetSpec(_Spec):
    """The Azure internet edge behind the gateways; `true`/`false` is short for `{enabled: ...}`."""

    enabled: bool = True
    interfaces: InterfaceMap = Field(
        default_factory=dict, description="addresses on user links to the edge (e.g. an internet host)"
    )


def _management_short_form(value: Any) -> Any:
    return ({"enabled": value} if isinstance(value, bool) else value) if value is not None else None


def _ipv4_subnet(value: str) -> str:
    try:
        net = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 subnet; e.g. 172.20.20.0/24") from None
    if net.prefixlen > 29:
        raise ValueError(f"{value!r}: a management subnet holds a gateway and every node: at most /29")
    return str(net)


class ManagementSpec(_Spec):
    """An internal Docker network to reach every node from the host (SSH, gNMI, a router's own
    API), as containerlab's management network; `true` is short for `{enabled: true}`."""

    enabled: bool = True
    subnet: Annotated[str, AfterValidator(_ipv4_subnet)] | None = None
    """Its IPv4 subnet (default: the engine's choice from its address pools)."""


class ExpressRouteSpec(spec.ModelSpec):
    """The ExpressRoute side: the configuration Azure would hold (bgplab.expressroute.spec), and
    what the lab builds around it."""

    circuits: Annotated[Mapping[str, CircuitSpec], BeforeValidator(empty_if_none)] = Field(default_factory=dict)
    """Circuit name -> circuit; each gets two MSEE nodes, NAME-msee1 (primary) and NAME-msee2."""
    vnets: Annotated[Mapping[str, VNetSpec], BeforeValidator(empty_if_none)] = Field(default_factory=dict)
    """VNet name -> VNet; each gets a gateway node, NAME-gw."""
    internet: (
        Annotated[InternetSpec, BeforeValidator(_internet_short_form, json_schema_input_type=bool | InternetSpec)]
        | None
    ) = None
    """An "azure-internet" node behind the gateways (default: there is one when there are VNets)."""
    rules: MseeRules = Field(default_factory=MseeRules)
    """The MSEEs' behaviour where Azure documents none, for every MSEE of the lab."""


class TopologyFile(_Spec):
    """A bgplab topology file."""

    name: LabName
    profile: Literal["fast", "azure"] = "azure"
    runtime: Literal["netns", "docker"] = "netns"
    """Where the nodes live: network namespaces (the default), or a Docker container each."""
    management: (
        Annotated[ManagementSpec, BeforeValidator(_management_short_form,
                                                  json_schema_input_type=bool | ManagementSpec)]
        | None
    ) = None
    """A management network (docker runtime only): an interface mgmt0 in every node, none by default."""
    expressroute: ExpressRouteSpec | None = None
    nodes: Annotated[dict[str, NodeSpec], BeforeValidator(empty_if_none)] = Field(default_factory=dict)
    links: Annotated[list[LinkItem], BeforeValidator(lambda v: [] if v is None else v)] = Field(default_factory=list)


_LAB_ONLY = {"circuits": ("edges",), "vnets": ("hosts",)}
"""Lab-only keys inside the model's sections; `internet` and `rules` sit beside the sections."""


def topology_schema() -> dict[str, Any]:
    """The JSON schema of the topology file format, for editors and `bgplab schema`."""
    schema = TopologyFile.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}



# ---------------------------------------------------------------- the words of refusals


_REQUIRED_HINTS = {
    "name": "the lab's name, e.g. contoso (a lowercase letter, then up to 19 lowercase letters, digits or dashes)",
    "kind": f"one of {', '.join(USER_KINDS)}",
    "edges": "the node on the primary link and the node on the secondary link, e.g. [ce1, ce2]",
    "endpoints": "the two ends, e.g. [ce1:eth9, onprem:eth1]",
    "address": "the neighbor's IP address",
    "asn": "the neighbor's AS number",
}


def special_message(error: ErrorDetails) -> str | None:
    """What to write where the general words ("required", "not valid here") would leave a user guessing."""
    kind = error["type"]
    value = error.get("input")
    last = next((str(p) for p in reversed(error["loc"]) if isinstance(p, str) and p != "[key]"), "")
    if kind == "missing" and last in _REQUIRED_HINTS:
        return f"required: {_REQUIRED_HINTS[last]}"
    if kind == "literal_error" and last == "kind":
        extra = f"; {value} nodes are generated from expressroute:, never written" if value in GENERATED_KINDS else ""
        return f"kind {value!r} is not one bgplab runs; valid kinds: {', '.join(USER_KINDS)}{extra}"
    if kind == "literal_error" and last == "profile":
        return (
            f"profile {value!r} is not a timer profile; valid profiles: azure (the MSEE's real timers: "
            "keepalive 60 s, hold 180 s, BFD 300 ms x 3), fast (short timers for CI)"
        )
    if kind in ("too_short", "too_long") and last == "edges":
        return "expected two node names: [primary edge, secondary edge] (a node may be both)"
    if kind in ("too_short", "too_long") and last == "endpoints":
        return "a link has exactly two ends, e.g. [ce1:eth9, onprem:eth1]"
    return spec.special_message(error)
