"""The expansion: a checked topology file in, the `LabPlan` the runtime builds out.

The `expressroute:` intent becomes MSEE nodes (one per circuit side, one namespace per peering),
VNet gateway nodes, Azure VMs on a VNet bridge and an Azure internet edge, with every link and
address the runtime needs. What needs the whole lab is checked here (names unique, generated
included; every address once; links end on existing interfaces), and refused at the user's field.
The expansion is deterministic: the same file always gives the same plan.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bgplab.expressroute.model import Circuit, Model, PeeringType, Side
from bgplab.lab.kinds import ROUTER_KINDS, kind_of
from bgplab.lab.plan import Endpoint, LabPlan, Link, Namespace, Node
from bgplab.lab.topology import images, intent
from bgplab.lab.topology.intent import INTENT_FIELDS, ordered_peerings
from bgplab.lab.topology.schema import TopologyFile, VNetSpec
from bgplab.source import Source

INTERNET_NODE = "azure-internet"
GATEWAY_LINK_POOLS = (ipaddress.IPv4Network("169.254.0.0/17"), ipaddress.IPv4Network("169.254.128.0/17"))
"""MSEE-to-gateway links, one pool per gateway instance (Azure's gateway is two): each link holds a
/30 of each, the MSEE on the first host, the instance on the second (169.254.0.1 and .2 for instance
0 of the first link, 169.254.128.1 and .2 for instance 1)."""
GATEWAY_LINK_POOLS6 = (ipaddress.IPv6Network("fd00:a9fe::/64"), ipaddress.IPv6Network("fd00:a9fe:0:1::/64"))
"""The same links' IPv6 (a /126 each, same order), where the VNet and the circuit's private peering
both have IPv6: a ULA block (a9fe is 169.254), clear of the documentation ranges labs use."""
INTERNET_LINK_POOL = ipaddress.IPv4Network("192.0.2.0/24")
"""Gateway-to-internet-edge links: one /30 each, the edge on the first host, the gateway on the second."""

_NODE_NAME = re.compile(r"[a-z][a-z0-9-]{0,19}")
_NODE_RULE = "a lowercase letter, then up to 19 lowercase letters, digits or dashes"
_LAB_ONLY = {"circuits": ("edges",), "vnets": ("hosts",)}
"""Lab-only keys inside the model's sections; `internet` and `rules` sit beside the sections."""

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def model_data(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The `expressroute:` section as written, without the lab-only keys: what each node config
    carries for the node to read its model from."""
    data: dict[str, Any] = {}
    for section in ("circuits", "route_filters", "vnets"):
        entries = copy.deepcopy(raw.get(section) or {})
        for entry in entries.values() if section in _LAB_ONLY else ():
            for key in _LAB_ONLY[section]:
                entry.pop(key, None)
        data[section] = entries
    return data


# ---------------------------------------------------------------- expansion


@dataclass
class _Ns:
    key: str
    node: str
    forwarding: bool
    addresses: list[tuple[str, str]] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)
    bridges: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    local: list[str] = field(default_factory=list)
    nft: str = ""

    def freeze(self) -> Namespace:
        return Namespace(
            self.key, self.node, tuple(self.addresses), tuple(self.routes), self.forwarding, tuple(self.bridges),
            tuple(self.local), self.nft,
        )


@dataclass(frozen=True)
class _Assignment:
    namespace: str
    interface: str
    address: _Interface
    field: str
    user: bool
    note: str = ""
    """Said when another assignment of the same address is refused."""
    msee_edge: str | None = None
    """For an MSEE's link address: the CE node on that link (for a sharper message)."""
    customer: _Interface | None = None


@dataclass(frozen=True)
class _Attachment:
    """One side of one circuit: the edge node's end of that link."""

    circuit: Circuit
    side: Side
    edge: str
    number: int
    """n in the edge's eth{n}: its circuit attachments numbered from 1 in file order."""
    msee: str

    @property
    def physical(self) -> str:
        return f"eth{self.number}"

    def what(self) -> str:
        return f"the {self.side} link of circuit {self.circuit.name}"


class _Pool:
    """Point-to-point subnets (/30, or /126 for IPv6) handed out in order from one block."""

    def __init__(self, block: _Network, what: str) -> None:
        self.prefixlen = 30 if block.version == 4 else 126
        self._subnets: Iterator[_Network] = block.subnets(new_prefix=self.prefixlen)
        self.block = block
        self.what = what

    def take(self, src: Source, path: str) -> _Network:
        subnet = next(self._subnets, None)
        if subnet is None:
            src.fail(path, f"{self.block} has no /{self.prefixlen} left for {self.what}; the lab has too many of them")
        return subnet


class Expander:
    """One plan in the making. It keeps every name, interface end and address handed out so far,
    so a clash (with the user's own or a generated one) is refused at the field that causes it."""

    def __init__(
        self, src: Source, spec: TopologyFile, model: Model | None, base_dir: Path, raw_links: Sequence[Any]
    ) -> None:
        self.src = src
        self.raw_links = raw_links
        """The `links:` entries as written (to tell the short form from the long one in field paths)."""
        self.spec = spec
        self.model = model
        self.er = spec.expressroute
        self.base_dir = base_dir
        self.names: dict[str, str] = {}
        """Node name -> what it is, for clashes."""
        self.kinds: dict[str, str] = {}
        self.node_namespaces: dict[str, list[str]] = {}
        self.specs: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        """Kind linux nodes -> their `Node.container`."""
        self.ns: dict[str, _Ns] = {}
        self.links: list[Link] = []
        self.ends: dict[tuple[str, str], str] = {}
        """(namespace, interface) -> the link it ends, or what reserved it."""
        self.reserved: dict[tuple[str, str], str] = {}
        """Interfaces the expansion creates on user nodes -> what for."""
        self.assignments: list[_Assignment] = []
        self.attachments: list[_Attachment] = []
        self.circuits: dict[str, list[str]] = {}
        """Circuit -> its MSEE nodes, primary first: the one place their names are made."""
        self.gateways: dict[str, str] = {}
        """VNet -> its gateway node."""
        self.internet = self._internet_enabled()

    # -------------------------------------------------------- plan

    def plan(self, model_data: Mapping[str, Any] | None) -> LabPlan:
        self._user_nodes()
        self._circuits()
        self._vnets()
        self._user_addresses()
        self._links()
        self._unlinked_interfaces()
        self._check_addresses()
        self._host_routes()
        self._router_specs()
        nodes = {
            name: Node(name, self.kinds[name], tuple(self.node_namespaces[name]), self.specs.get(name, {}),
                       self._image(name), self.containers.get(name, {}))
            for name in self.names
        }
        return LabPlan(
            name=self.spec.name,
            profile=self.spec.profile,
            source=self.src.file,
            namespaces={key: ns.freeze() for key, ns in self.ns.items()},
            links=tuple(self.links),
            nodes=nodes,
            expressroute=model_data,
            circuits={name: tuple(msees) for name, msees in self.circuits.items()},
            gateways=dict(self.gateways),
            runtime=self.spec.runtime,
            management=self._management(),
        )

    def _management(self) -> dict[str, Any] | None:
        """The management network, its subnet clear of every address of the lab."""
        spec = self.spec.management
        if spec is None or not spec.enabled:
            return None
        if spec.subnet is not None:
            subnet = ipaddress.IPv4Network(spec.subnet)
            for key, ns in self.ns.items():
                for iface, cidr in ns.addresses:
                    if ipaddress.ip_interface(cidr).network.overlaps(subnet):
                        self.src.fail("management.subnet", f"{spec.subnet} overlaps {cidr} on {iface} of {key}: "
                                      "management addresses must be apart from the lab's")
        return {"subnet": spec.subnet}

    def _image(self, name: str) -> str:
        own = self.spec.nodes[name].image if name in self.spec.nodes else None
        return own or kind_of(self.kinds[name]).image

    # -------------------------------------------------------- names and namespaces

    def _name(self, name: str, kind: str, path: str, what: str) -> None:
        if not _NODE_NAME.fullmatch(name):
            self.src.fail(path, f"{what} {name!r} is not a valid node name: {_NODE_RULE}")
        if name in self.names:
            self.src.fail(
                path,
                f"{what} {name!r} clashes with {self.names[name]}; node names are unique in a lab, generated ones "
                "included",
            )
        self.names[name] = f"{what} {name}"
        self.kinds[name] = kind
        self.node_namespaces[name] = []

    def _namespace(self, key: str, node: str, forwarding: bool) -> _Ns:
        ns = _Ns(key, node, forwarding)
        self.ns[key] = ns
        self.node_namespaces[node].append(key)
        return ns

    def _assign(
        self, ns: str, interface: str, address: _Interface, path: str, *, user: bool = False, note: str = "",
        msee_edge: str | None = None, customer: _Interface | None = None,
    ) -> None:  # fmt: skip
        self.ns[ns].addresses.append((interface, str(address)))
        self.assignments.append(_Assignment(ns, interface, address, path, user, note, msee_edge, customer))

    def _link(self, a: Endpoint, b: Endpoint, physical: str, what: str, **extra: Any) -> None:
        for end in (a, b):
            self.ends[(end.namespace, end.interface)] = what
        self.links.append(Link(a, b, physical, **extra))

    # -------------------------------------------------------- user nodes

    def _user_nodes(self) -> None:
        for name, node in self.spec.nodes.items():
            path = f"nodes.{name}"
            self._name(name, node.kind, path, "node")
            images.check_fields(self.src, name, node)
            intent = [f for f in INTENT_FIELDS if f in node.model_fields_set]
            if node.kind == "host":
                for key in ("config", *intent):
                    if key in node.model_fields_set:
                        self.src.fail(
                            f"{path}.{key}",
                            f"{name} is a host and runs no BGP, so {key} has no meaning here; a host takes "
                            "interfaces, loopback and gateway",
                        )
            else:
                if node.config is not None and intent:
                    self.src.fail(
                        f"{path}.config",
                        f"config and {', '.join(intent)} together: a router runs either your own config (config) "
                        f"or one generated from intent ({', '.join(INTENT_FIELDS)}), not both",
                    )
                if node.gateway and node.kind != "linux":
                    self.src.fail(
                        f"{path}.gateway",
                        "only hosts take a gateway (a static default route); routers learn routes by BGP",
                    )
            # Addresses come in _user_addresses, once the expansion has reserved its interfaces.
            self._namespace(name, name, forwarding=node.kind != "host")

    # -------------------------------------------------------- circuits and MSEEs

    def _circuits(self) -> None:
        if self.er is None or self.model is None:
            return
        counts: dict[str, int] = {}
        for cname, cspec in self.er.circuits.items():
            circuit = self.model.circuits[cname]
            path = f"expressroute.circuits.{cname}"
            if not circuit.peerings:
                self.src.fail(
                    f"{path}.peerings",
                    "a circuit in a lab needs at least one peering: its MSEEs live in their peerings' namespaces",
                )
            for i, side in enumerate(Side):
                edge = cspec.edges[i]
                spot = f"{path}.edges[{i}]"
                node = self.spec.nodes.get(edge)
                if node is None:
                    defined = ", ".join(self.spec.nodes) or "none"
                    self.src.fail(spot, f"no node named {edge!r}; edges name router nodes (defined: {defined})")
                if node.kind not in ROUTER_KINDS:
                    self.src.fail(
                        spot, f"{edge} is a {node.kind}; a circuit's edges are routers ({', '.join(ROUTER_KINDS)})"
                    )
                counts[edge] = counts.get(edge, 0) + 1
                msee = f"{cname}-msee{i + 1}"
                self.circuits.setdefault(cname, []).append(msee)
                self._name(msee, "msee", path, f"the {side} MSEE of circuit {cname}")
                attachment = _Attachment(circuit, side, edge, counts[edge], msee)
                self.attachments.append(attachment)
                self.specs[msee] = {
                    "kind": "msee",
                    "name": msee,
                    "profile": self.spec.profile,
                    "circuit": cname,
                    "side": str(side),
                    "rules": asdict(self.er.rules),
                    "peerings": {},
                }
                self.reserved[(edge, attachment.physical)] = attachment.what()
                for ptype in PeeringType:
                    peering = circuit.peering(ptype)
                    if peering is None:
                        continue
                    key = f"{msee}.{ptype}"
                    ns = self._namespace(key, msee, forwarding=True)
                    place: dict[str, Any] = {"netns": key}
                    if ptype is PeeringType.PRIVATE:
                        place["gateways"] = []
                    else:
                        ns.local = intent.services_answers()
                        admitted = [str(p) for p in peering.advertised_prefixes]
                        ns.nft = intent.services_ruleset(ns.local, admitted)
                    self.specs[msee]["peerings"][str(ptype)] = place
                    self.reserved[(edge, f"{attachment.physical}.{peering.vlan}")] = (
                        f"the {ptype} peering (VLAN {peering.vlan}) of {attachment.what()}"
                    )
        self._check_edge_interfaces()
        for attachment in self.attachments:
            self._attach(attachment)

    def _check_edge_interfaces(self) -> None:
        for name, node in self.spec.nodes.items():
            for interface in node.interfaces:
                what = self.reserved.get((name, interface))
                if what is not None:
                    self.src.fail(
                        f"nodes.{name}.interfaces.{interface}",
                        f"{name}'s {interface} is also the interface bgplab generates for {what}; give your "
                        "interface another name, e.g. eth9",
                    )

    def _attach(self, att: _Attachment) -> None:
        circuit, edge = att.circuit, att.edge
        for ptype, peering in sorted(circuit.peerings.items(), key=lambda item: list(PeeringType).index(item[0])):
            vlan = peering.vlan
            sub = f"{att.physical}.{vlan}"
            msee_ns = f"{att.msee}.{ptype}"
            self._link(
                Endpoint(edge, sub), Endpoint(msee_ns, f"eth1.{vlan}"), f"{edge}:{att.physical}",
                f"the {ptype} peering of {att.what()}", vlan=vlan, rate_mbps=circuit.bandwidth_mbps,
            )  # fmt: skip
            for version, family in ((4, "ipv4"), (6, "ipv6")):
                addressing = peering.link(att.side, version)
                if addressing is None:
                    continue
                path = f"expressroute.circuits.{circuit.name}.peerings.{ptype}.{family}"
                self._assign(edge, sub, addressing.customer, path, note=f"the CE end of {att.what()}")
                self._assign(
                    msee_ns, f"eth1.{vlan}", addressing.msee, path, note=f"the MSEE end of {att.what()}",
                    msee_edge=edge, customer=addressing.customer,
                )  # fmt: skip

    # -------------------------------------------------------- VNets, gateways, VMs, the internet edge

    def _internet_enabled(self) -> bool:
        if self.er is None or not self.er.vnets:
            return False
        return True if self.er.internet is None else self.er.internet.enabled

    def _vnets(self) -> None:
        if self.er is None or self.model is None:
            return
        model = self.model
        pools = [_Pool(block, "MSEE-gateway links") for block in GATEWAY_LINK_POOLS]
        pools6 = [_Pool(block, "MSEE-gateway links") for block in GATEWAY_LINK_POOLS6]
        gateways: list[str] = []
        for vname, vspec in self.er.vnets.items():
            vnet = model.vnets[vname]
            path = f"expressroute.vnets.{vname}"
            gw = self.gateways[vname] = f"{vname}-gw"
            gateways.append(gw)
            self._name(gw, "gateway", path, f"the gateway of VNet {vname}")
            gw_ns = self._namespace(gw, gw, forwarding=True)
            neighbors: list[dict[str, Any]] = []
            self.specs[gw] = {
                "kind": "gateway", "name": gw, "profile": self.spec.profile, "vnet": vname, "netns": gw,
                "neighbors": neighbors,
            }  # fmt: skip
            k = 0
            for c, connection in enumerate(vnet.connections):
                j = [v.name for v in model.connected_vnets(connection.circuit)].index(vname) + 1
                private = model.circuits[connection.circuit].peering(PeeringType.PRIVATE)
                # IPv6 between MSEE and gateway (a session of its own) only where both ends have
                # IPv6 to carry: the VNet's address space and the circuit's private peering.
                dual = private is not None and private.ipv6 is not None and any(
                    s.version == 6 for s in vnet.address_space
                )
                for side, msee in zip(Side, self.circuits[connection.circuit], strict=True):
                    k += 1
                    msee_ns = f"{msee}.{PeeringType.PRIVATE}"
                    self._link(
                        Endpoint(msee_ns, f"vnet{j}"), Endpoint(gw, f"m{k}"), f"{msee}:vnet{j}",
                        f"the link from {msee} to the gateway of VNet {vname}",
                    )  # fmt: skip
                    spot = f"{path}.connections[{c}]"
                    for instance in range(len(GATEWAY_LINK_POOLS)):
                        blocks = (pools[instance], pools6[instance]) if dual else (pools[instance],)
                        for block in blocks:
                            subnet = block.take(self.src, spot)
                            msee_address, gw_address = subnet[1], subnet[2]
                            self._assign(msee_ns, f"vnet{j}", _iface(msee_address, block.prefixlen), spot,
                                         note=f"{msee}'s end toward instance {instance} of {gw}")
                            self._assign(gw, f"m{k}", _iface(gw_address, block.prefixlen), spot,
                                         note=f"{gw}'s instance {instance} end toward {msee}")
                            self.specs[msee]["peerings"][str(PeeringType.PRIVATE)]["gateways"].append(
                                {"address": str(gw_address), "local_address": str(msee_address)}
                            )
                            neighbors.append({
                                "address": str(msee_address), "circuit": connection.circuit, "side": str(side),
                                "local_address": str(gw_address), "instance": instance,
                            })  # fmt: skip
            self._vms(vname, vspec, gw_ns)
        if self.internet:
            self._internet_edge(gateways)

    def _vms(self, vname: str, vspec: VNetSpec, gw_ns: _Ns) -> None:
        assert self.model is not None
        vnet = self.model.vnets[vname]
        gw = gw_ns.key
        path = f"expressroute.vnets.{vname}"
        members: list[str] = []
        on_bridge: set[_Network] = set()
        for host, addresses in vspec.hosts.items():
            spot = f"{path}.hosts.{host}"
            self._name(host, "host", spot, f"VM {host!r} of VNet {vname}")
            host_ns = self._namespace(host, host, forwarding=False)
            port = f"h{len(members) + 1}"
            members.append(port)
            self._link(Endpoint(host, "eth0"), Endpoint(gw, port), f"{host}:eth0", f"VM {host}'s link to VNet {vname}")
            families: set[int] = set()
            for n, text in enumerate(addresses):
                where = f"{spot}[{n}]"
                address = ipaddress.ip_address(text)
                if address.version in families:
                    self.src.fail(where, f"{host} has an IPv{address.version} address already; a VM has one per family")
                families.add(address.version)
                space = next((s for s in vnet.address_space if s.version == address.version and address in s), None)
                if space is None:
                    spaces = ", ".join(map(str, vnet.address_space))
                    self.src.fail(
                        where, f"{address} is outside VNet {vname}'s address space ({spaces}); a VM's address comes "
                        "from its VNet",
                    )  # fmt: skip
                if address == space.network_address or (address.version == 4 and address == space.broadcast_address):
                    self.src.fail(where, f"{address} is not a usable host address of {space}")
                segment = _iface(space[1], space.prefixlen)
                if space not in on_bridge:
                    on_bridge.add(space)
                    index = vnet.address_space.index(space)
                    self._assign(
                        gw, "vnet", segment, f"{path}.address_space[{index}]",
                        note=f"the VNet segment's router (the gateway takes the first address of {space})",
                    )  # fmt: skip
                self._assign(host, "eth0", _iface(address, space.prefixlen), where, note=f"VM {host}'s address")
                host_ns.routes.append((_default(address.version), str(segment.ip)))
        if members:
            gw_ns.bridges.append(("vnet", tuple(members)))

    def _internet_edge(self, gateways: list[str]) -> None:
        assert self.er is not None and self.model is not None
        path = "expressroute.internet" if self.er.internet is not None else "expressroute.vnets"
        self._name(INTERNET_NODE, "host", path, "the Azure internet edge")
        edge = self._namespace(INTERNET_NODE, INTERNET_NODE, forwarding=True)
        pool = _Pool(INTERNET_LINK_POOL, "gateway-internet links")
        for i, gw in enumerate(gateways, start=1):
            subnet = pool.take(self.src, path)
            edge_address, gw_address = subnet[1], subnet[2]
            self._link(Endpoint(gw, "inet"), Endpoint(INTERNET_NODE, f"gw{i}"), f"{gw}:inet", f"{gw}'s internet link")
            self._assign(INTERNET_NODE, f"gw{i}", _iface(edge_address, 30), path, note=f"the internet edge toward {gw}")
            self._assign(gw, "inet", _iface(gw_address, 30), path, note=f"{gw}'s end toward the internet edge")
            self.specs[gw]["internet"] = [str(edge_address)]
            # Traffic back to the VMs: the edge routes each VNet's IPv4 space to its gateway.
            vnet = self.model.vnets[str(self.specs[gw]["vnet"])]
            for space in vnet.address_space:
                if space.version == 4 and all(prefix != str(space) for prefix, _ in edge.routes):
                    edge.routes.append((str(space), str(gw_address)))

    # -------------------------------------------------------- user addresses and links

    def _user_addresses(self) -> None:
        for name, node in self.spec.nodes.items():
            path = f"nodes.{name}"
            user = self.ns[name]
            generated, user.addresses = user.addresses, []
            for n, text in enumerate(node.loopback):
                self._assign(name, "lo", ipaddress.ip_interface(text), f"{path}.loopback[{n}]", user=True)
            for interface, addresses in node.interfaces.items():
                for n, text in enumerate(addresses):
                    spot = f"{path}.interfaces.{interface}[{n}]"
                    self._assign(name, interface, ipaddress.ip_interface(text), spot, user=True)
            user.addresses.extend(generated)
        if self.internet and self.er is not None and self.er.internet is not None:
            for interface, addresses in self.er.internet.interfaces.items():
                if (INTERNET_NODE, interface) in self.ends:
                    self.src.fail(
                        f"expressroute.internet.interfaces.{interface}",
                        f"{interface} on {INTERNET_NODE} is {self.ends[(INTERNET_NODE, interface)]}; name yours "
                        "otherwise, e.g. eth9",
                    )
                for n, text in enumerate(addresses):
                    spot = f"expressroute.internet.interfaces.{interface}[{n}]"
                    self._assign(INTERNET_NODE, interface, ipaddress.ip_interface(text), spot, user=True)

    def _links(self) -> None:
        for i, link in enumerate(self.spec.links):
            ends: list[Endpoint] = []
            for j, ref in enumerate(link.endpoints):
                short = i < len(self.raw_links) and isinstance(self.raw_links[i], list)
                path = f"links[{i}][{j}]" if short else f"links[{i}].endpoints[{j}]"
                node, _, interface = ref.partition(":")
                if self.node_namespaces.get(node):
                    namespace = self.node_namespaces[node][0]
                elif node in self.ns:
                    namespace = node
                else:
                    hint = ""
                    if node == INTERNET_NODE:
                        hint = f"; {INTERNET_NODE} exists only with VNets and expressroute.internet not false"
                    known = ", ".join(self.names)
                    self.src.fail(path, f"{ref}: no node named {node!r} in this lab{hint} (nodes: {known})")
                key = (namespace, interface)
                if key in self.reserved:
                    self.src.fail(
                        path,
                        f"{ref}: {interface} on {node} is the interface bgplab generates for {self.reserved[key]}; "
                        "use another name, e.g. eth9",
                    )
                if key in self.ends:
                    self.src.fail(path, f"{ref} is already an end of {self.ends[key]}; an interface ends one link")
                self.ends[key] = f"links[{i}] ({link.endpoints[0]} - {link.endpoints[1]})"
                ends.append(Endpoint(namespace, interface))
            self.links.append(Link(ends[0], ends[1], f"{link.endpoints[0]}", rate_mbps=link.rate))

    def _unlinked_interfaces(self) -> None:
        places: list[tuple[str, str, Mapping[str, Any]]] = [
            (name, f"nodes.{name}.interfaces", node.interfaces) for name, node in self.spec.nodes.items()
        ]
        if self.internet and self.er is not None and self.er.internet is not None:
            places.append((INTERNET_NODE, "expressroute.internet.interfaces", self.er.internet.interfaces))
        for node, path, interfaces in places:
            for interface in interfaces:
                if (node, interface) not in self.ends:
                    self.src.fail(
                        f"{path}.{interface}",
                        f"{node} has addresses on {interface} but no link ends at {node}:{interface}; add one under "
                        f"links, e.g. [{node}:{interface}, OTHER:eth1]",
                    )

    def _check_addresses(self) -> None:
        """Every address once in the lab: the expansion's first, so a clash is reported at the user's field."""
        owners: dict[_Address, _Assignment] = {}
        for assignment in sorted(self.assignments, key=lambda a: a.user):
            ip = assignment.address.ip
            first = owners.get(ip)
            if first is None:
                owners[ip] = assignment
                continue
            node = self.ns[assignment.namespace].node
            if first.msee_edge is not None and first.msee_edge == node and first.customer is not None:
                network = first.address.network
                self.src.fail(
                    assignment.field,
                    f"{ip} is the MSEE's address on {network} ({first.note}): the MSEE takes the second host and the "
                    f"CE the first, {first.customer.ip}, which bgplab puts on {node} itself; remove {ip} here",
                )
            note = f", {first.note}" if first.note else ""
            self.src.fail(
                assignment.field,
                f"{ip} is already assigned to {first.namespace} {first.interface} ({first.field}{note}); every "
                "address in a lab is assigned once",
            )

    def _host_routes(self) -> None:
        for name, node in self.spec.nodes.items():
            if node.kind not in ("host", "linux"):
                continue
            subnets = [ipaddress.ip_interface(a).network for addresses in node.interfaces.values() for a in addresses]
            families: set[int] = set()
            for n, text in enumerate(node.gateway):
                path = f"nodes.{name}.gateway" + (f"[{n}]" if len(node.gateway) > 1 else "")
                hop = ipaddress.ip_address(text)
                if hop.version in families:
                    self.src.fail(path, f"a second IPv{hop.version} gateway; a host has one default route per family")
                families.add(hop.version)
                if not any(hop.version == s.version and hop in s for s in subnets):
                    mine = ", ".join(str(s) for s in subnets if s.version == hop.version) or "none"
                    self.src.fail(
                        path, f"{hop} is on none of {name}'s IPv{hop.version} subnets ({mine}); a gateway must be "
                        "on a link of the host",
                    )  # fmt: skip
                self.ns[name].routes.append((_default(hop.version), str(hop)))

    # -------------------------------------------------------- router configs

    def _router_specs(self) -> None:
        for name, node in self.spec.nodes.items():
            if node.kind == "host":
                continue
            path = f"nodes.{name}"
            if node.kind == "linux":
                self.specs[name], self.containers[name] = images.linux_node(self.src, name, node, self.base_dir)
                continue
            if node.config is not None:
                config = os.path.abspath(self.base_dir / node.config)
                if not os.path.isfile(config):
                    self.src.fail(
                        f"{path}.config", f"{node.config}: no such file ({config}); paths are relative to the "
                        "topology file",
                    )  # fmt: skip
                self.specs[name] = {"config": config}
                continue
            self.specs[name] = {"intent": intent.router_intent(self, name, node, path)}
            self.ns[name].nft = intent.snat_ruleset(self._translations(name))

    def _translations(self, name: str) -> list[tuple[str, str, list[str]]]:
        """A generated CE's NAT: each Microsoft (or legacy public) peering sub-interface with IPv4,
        to the first IPv4 prefix that peering advertises."""
        found = []
        for att in (a for a in self.attachments if a.edge == name):
            for ptype, peering in ordered_peerings(att.circuit):
                pools = [str(p) for p in peering.advertised_prefixes if p.version == 4]
                sub = f"{att.physical}.{peering.vlan}"
                own = [str(ipaddress.ip_interface(c).ip) for i, c in self.ns[name].addresses if i == sub and "." in c]
                if ptype is not PeeringType.PRIVATE and pools and own:
                    found.append((sub, pools[0], own))
        return found


def _iface(address: _Address, prefixlen: int) -> _Interface:
    return ipaddress.ip_interface(f"{address}/{prefixlen}")


def _default(version: int) -> str:
    return "0.0.0.0/0" if version == 4 else "::/0"
