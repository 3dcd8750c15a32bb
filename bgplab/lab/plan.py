"""A lab as concrete things to create: namespaces, links, addresses, routes and node processes.

`bgplab.lab.topology` turns a topology file (with its `expressroute:` intent) into a `LabPlan`;
a runtime (netns, or docker) creates exactly what the plan lists and nothing else, and
records each step so `bgplab down` can undo it after any crash. Keeping the plan as plain data
between the two means the expansion is unit-testable without root, and both runtimes share it.

Names: `Namespace.key` is the plan's name for a network namespace (a node has one, an MSEE one
per peering: "contoso-msee1.private"); the runtime maps keys to real namespace names that
carry the lab name, so two labs never collide. Interface names are at most 15 characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Namespace:
    key: str
    node: str
    """The node this namespace belongs to."""
    addresses: tuple[tuple[str, str], ...] = ()
    """(interface, CIDR) pairs; interface "lo" for loopback addresses (this kernel has no dummy links)."""
    routes: tuple[tuple[str, str], ...] = ()
    """Static (prefix, next hop) routes, e.g. a host's ("0.0.0.0/0", "10.1.1.1")."""
    forwarding: bool = False
    """IPv4 and IPv6 forwarding on (routers, MSEEs, gateways), off for hosts."""
    bridges: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """(bridge name, member interfaces) created in this namespace after the links, e.g. a VNet's segment."""
    local: tuple[str, ...] = ()
    """Prefixes every address of which this namespace answers (a local route each): the services
    behind an MSEE's Microsoft peering."""
    nft: str = ""
    """An nftables ruleset loaded once the addresses are there: a CE's NAT, Microsoft's ACL."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    namespace: str
    """A Namespace.key."""
    interface: str


@dataclass(frozen=True, slots=True)
class Link:
    a: Endpoint
    b: Endpoint
    physical: str
    """Links with the same value are one fibre: a link fault takes them all down together (the
    fallback for 802.1Q sub-interfaces is one veth pair per peering, named like the sub-interface)."""
    vlan: int | None = None
    """The peering's 802.1Q tag when this link is a peering sub-interface; the interface names
    already carry it ("eth1.100"), so a runtime without VLAN devices needs nothing more."""
    rate_mbps: int | None = None
    """Shape both directions to this rate (the circuit's bandwidth), or None."""


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    kind: str
    namespaces: tuple[str, ...]
    """Namespace keys; the first is the node's main one (where `bgplab exec` runs)."""
    spec: Mapping[str, Any] = field(default_factory=dict)
    """Kind-specific settings, plain data:
    - frr, bird, gobgp, exabgp: {"config": absolute path} for the user's own config, or
      {"intent": {...}} for a generated one (see bgplab.lab.kinds);
    - msee, gateway: the node config of bgplab.expressroute.node, with namespace keys where
      namespace names go (`peerings.*.netns`, `netns`) and without `control`: the runtime fills
      both in;
    - host: {}."""
    image: str | None = None
    """Its container image under the docker runtime: its kind's `Kind.image`, or a user's (linux)."""
    container: Mapping[str, Any] = field(default_factory=dict)
    """What the docker runtime needs beyond the image, for a user's image (kind linux): `init`
    (true: the image's own entrypoint runs as the container's init), `binds` (["HOST:PATH:ro|rw"],
    absolute), `env` ({NAME: value}), `copies` ([[HOST, PATH]]: a file copied into the lab's state
    and mounted there read-write, as a startup config the image may rewrite; the user's own file is
    never touched). Empty for bgplab's images."""


@dataclass(frozen=True, slots=True)
class LabPlan:
    name: str
    profile: str
    source: str
    """The topology file it came from (for messages)."""
    namespaces: Mapping[str, Namespace]
    links: tuple[Link, ...]
    nodes: Mapping[str, Node]
    expressroute: Mapping[str, Any] | None = None
    """The model data (bgplab.expressroute.model) the msee and gateway nodes share, or None."""
    circuits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Circuit -> its MSEE nodes, primary first (faults and commands name circuits)."""
    gateways: Mapping[str, str] = field(default_factory=dict)
    """VNet -> its gateway node."""
    runtime: str = "netns"
    """Where the nodes live: "netns" (network namespaces, host programs) or "docker" (a container
    per namespace, from bgplab's images; bgplab.lab.runtime)."""
    management: Mapping[str, Any] | None = None
    """The management network ({"subnet": CIDR or None}), or None: the docker runtime's only."""


def plan_to_data(plan: LabPlan) -> dict[str, Any]:
    """Plain JSON data, kept in the lab's state so `status`, `down` and faults work after `up` exits."""
    return {
        "name": plan.name,
        "profile": plan.profile,
        "source": plan.source,
        "namespaces": {k: asdict(v) for k, v in plan.namespaces.items()},
        "links": [asdict(link) for link in plan.links],
        "nodes": {k: asdict(v) for k, v in plan.nodes.items()},
        "expressroute": plan.expressroute,
        "circuits": {k: list(v) for k, v in plan.circuits.items()},
        "gateways": dict(plan.gateways),
        "runtime": plan.runtime,
        "management": dict(plan.management) if plan.management is not None else None,
    }


def plan_from_data(data: Mapping[str, Any]) -> LabPlan:
    def pairs(items: Any) -> tuple[tuple[str, str], ...]:
        return tuple((str(a), str(b)) for a, b in items)

    namespaces = {
        k: Namespace(v["key"], v["node"], pairs(v["addresses"]), pairs(v["routes"]), v["forwarding"],
                     tuple((name, tuple(members)) for name, members in v["bridges"]), tuple(v.get("local", ())),
                     str(v.get("nft", "")))
        for k, v in data["namespaces"].items()
    }
    links = tuple(
        Link(Endpoint(**item["a"]), Endpoint(**item["b"]), item["physical"], item["vlan"], item["rate_mbps"])
        for item in data["links"]
    )
    nodes = {k: Node(v["name"], v["kind"], tuple(v["namespaces"]), v["spec"], v.get("image"), v.get("container", {}))
             for k, v in data["nodes"].items()}
    circuits = {k: tuple(v) for k, v in data.get("circuits", {}).items()}
    return LabPlan(data["name"], data["profile"], data["source"], namespaces, links, nodes, data["expressroute"],
                   circuits, dict(data.get("gateways", {})), str(data.get("runtime", "netns")), data.get("management"))
