"""Pictures (Mermaid, SVG) and the containerlab export of a plan: complete, well-formed, deterministic.

Two plans: the repository's connect-to topology, and a small hand-built one with the awkward cases
(dots and dashes in names, a node named like a Mermaid keyword, text that needs escaping, a link
between routers with another between them, an MSEE whose peerings share a fibre)."""

from __future__ import annotations

import ipaddress
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgplab.cli import main
from bgplab.expressroute.node import build_node
from bgplab.lab import export, graph
from bgplab.lab.plan import Endpoint, LabPlan, Link, Namespace, Node, plan_from_data, plan_to_data
from bgplab.lab.topology import load_topology

CONNECT_TO = Path(__file__).resolve().parents[2] / "topologies" / "connect-to.yaml"
SVG = "{http://www.w3.org/2000/svg}"
ODD = 'h&<1>"#'
"""A node name no topology file allows, but a hand-built plan may hold: every escape is needed."""


def _link(a: str, ai: str, b: str, bi: str, physical: str, vlan: int | None = None, rate: int | None = None) -> Link:
    return Link(Endpoint(a, ai), Endpoint(b, bi), physical, vlan, rate)


def small_plan() -> LabPlan:
    namespaces = [
        Namespace("r1.a", "r1.a", (("lo", "10.9.0.1/32"), ("eth1.100", "192.168.1.1/30"),
                                   ("eth1.200", "192.168.2.1/30"), ("e2", "10.0.0.1/30"), ("e9", "10.0.9.1/30")),
                  forwarding=True),
        Namespace("r1-a", "r1-a", (("e2", "10.0.0.2/30"), ("e3", "10.2.0.1/24")), forwarding=True),
        Namespace("end", "end", (("eth1", "10.2.0.10/24"), ("eth2", "2001:db8::1/64")),
                  routes=(("0.0.0.0/0", "10.2.0.1"), ("::/0", "2001:db8::2"))),
        Namespace(ODD, ODD, (("eth1", "2001:db8::2/64"),)),
        Namespace("r3", "r3", (("e9", "10.0.9.2/30"),), forwarding=True),
        Namespace("m.1.private", "m.1", (("eth1.100", "192.168.1.2/30"), ("vnet1", "169.254.0.1/30")), forwarding=True),
        Namespace("m.1.microsoft", "m.1", (("eth1.200", "192.168.2.2/30"),), forwarding=True),
        Namespace("gw", "gw", (("m1", "169.254.0.2/30"), ("vnet", "10.100.0.1/16")), forwarding=True,
                  bridges=(("vnet", ("h1",)),)),
        Namespace("vm", "vm", (("eth0", "10.100.1.10/16"),), routes=(("0.0.0.0/0", "10.100.0.1"),)),
    ]
    nodes = [
        Node("r1.a", "frr", ("r1.a",), {"config": "/configs/r1.conf"}),
        Node("r1-a", "bird", ("r1-a",), {"config": "/configs/r1-a.conf"}),
        Node("r3", "gobgp", ("r3",), {}),
        Node("end", "host", ("end",)),
        Node(ODD, "host", (ODD,)),
        Node("m.1", "msee", ("m.1.private", "m.1.microsoft"), {
            "kind": "msee", "name": "m.1", "circuit": "c", "side": "primary",
            "peerings": {"private": {"netns": "m.1.private", "gateways": []}, "microsoft": {"netns": "m.1.microsoft"}},
        }),
        Node("gw", "gateway", ("gw",), {"kind": "gateway", "name": "gw", "vnet": "v", "netns": "gw", "neighbors": []}),
        Node("vm", "host", ("vm",)),
    ]
    links = (
        _link("r1.a", "eth1.100", "m.1.private", "eth1.100", "r1.a:eth1", 100, 200),
        _link("r1.a", "eth1.200", "m.1.microsoft", "eth1.200", "r1.a:eth1", 200, 200),
        _link("r1.a", "e2", "r1-a", "e2", "r1.a:e2"),
        _link("r1.a", "e9", "r3", "e9", "r1.a:e9"),
        _link("r1-a", "e3", "end", "eth1", "r1-a:e3"),
        _link(ODD, "eth1", "end", "eth2", f"{ODD}:eth1"),
        _link("m.1.private", "vnet1", "gw", "m1", "m.1:vnet1"),
        _link("vm", "eth0", "gw", "h1", "vm:eth0"),
    )
    return LabPlan("small", "fast", "hand-built", {ns.key: ns for ns in namespaces}, links,
                   {node.name: node for node in nodes})


@pytest.fixture(scope="module")
def connect_to() -> LabPlan:
    return load_topology(CONNECT_TO)


@pytest.fixture(params=["connect-to", "small"])
def plan(request: pytest.FixtureRequest, connect_to: LabPlan) -> LabPlan:
    return connect_to if request.param == "connect-to" else small_plan()


def mermaid_escaped(text: str) -> str:
    return (text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("&", "#amp;"))  # fmt: skip


_NODE_LINE = re.compile(r"^    (\S+?)(\(\[|\[\[|\{\{|\(|\[)\"(.*)\"(\]\)|\]\]|\}\}|\)|\])$")
_EDGE_LINE = re.compile(r'^  (\S+) ---\|"([^"]*)"\| (\S+)$')


def parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]], dict[str, list[str]]]:
    """(id -> label, [(id, label, id)] edges, subgraph title -> ids)."""
    nodes: dict[str, str] = {}
    found_edges: list[tuple[str, str, str]] = []
    zones: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if m := re.fullmatch(r'  subgraph (\w+)\["([^"]*)"\]', line):
            current = m.group(2)
            zones[current] = []
        elif line == "  end":
            current = None
        elif m := _NODE_LINE.fullmatch(line):
            assert m.group(1) not in nodes, f"node id {m.group(1)} defined twice"
            nodes[m.group(1)] = m.group(3)
            assert current is not None, f"{line!r} outside any subgraph"
            zones[current].append(m.group(1))
        elif m := _EDGE_LINE.fullmatch(line):
            found_edges.append((m.group(1), m.group(2), m.group(3)))
    return nodes, found_edges, zones


# ---------------------------------------------------------------- Mermaid


def test_mermaid_has_every_node_once_with_a_safe_unique_id(plan: LabPlan) -> None:
    text = graph.mermaid(plan)
    assert text.splitlines()[1] == "flowchart LR"
    nodes, _, _ = parse_mermaid(text)
    ids = graph.mermaid_ids(plan)
    assert set(ids) == set(plan.nodes)
    assert len(set(ids.values())) == len(ids)
    assert set(nodes) == set(ids.values())
    for name, node in plan.nodes.items():
        assert re.fullmatch(r"n_[A-Za-z0-9_]+", ids[name]), ids[name]
        label = nodes[ids[name]]
        assert label.split("<br/>")[0] == mermaid_escaped(name)
        assert node.kind in label.split("<br/>")[1]
        assert '"' not in label and "<" not in label.replace("<br/>", "")


def test_mermaid_ids_of_look_alike_names(connect_to: LabPlan) -> None:
    ids = graph.mermaid_ids(small_plan())
    assert ids["r1.a"] == "n_r1_a" and ids["r1-a"] == "n_r1_a_2"
    assert ids["end"] == "n_end"  # never the bare keyword
    assert graph.mermaid_ids(connect_to)["contoso-ams-msee1"] == "n_contoso_ams_msee1"


def test_mermaid_has_one_edge_per_physical_link(plan: LabPlan) -> None:
    _, found, _ = parse_mermaid(graph.mermaid(plan))
    names = {v: k for k, v in graph.mermaid_ids(plan).items()}
    assert len(found) == len({link.physical for link in plan.links})
    assert len(found) < len(plan.links)  # both plans have a fibre with two peerings on it
    owner = {key: ns.node for key, ns in plan.namespaces.items()}
    expected = {(link.physical, frozenset((owner[link.a.namespace], owner[link.b.namespace]))) for link in plan.links}
    assert {frozenset((names[a], names[b])) for a, _, b in found} == {pair for _, pair in expected}
    assert len(expected) == len(found)


def test_mermaid_edge_labels(connect_to: LabPlan) -> None:
    _, found, _ = parse_mermaid(graph.mermaid(connect_to))
    labels = {(a, b): label for a, label, b in found}
    assert labels[("n_ce1", "n_contoso_ams_msee1")] == "eth1 ↔ eth1<br/>VLAN 100, 200<br/>1 Gbps"
    assert labels[("n_onprem", "n_ce1")] == "eth1 ↔ lan"  # drawn left to right: the host first
    assert labels[("n_hub_gw", "n_azure_vm")] == "h1 ↔ eth0"
    assert labels[("n_ce1", "n_ce2")] == "ibgp ↔ ibgp"


def test_mermaid_zones_and_msee_peerings(connect_to: LabPlan) -> None:
    nodes, _, zones = parse_mermaid(graph.mermaid(connect_to))
    assert zones == {
        "on-premises": ["n_ce1", "n_ce2", "n_onprem"],
        "Microsoft edge": ["n_contoso_ams_msee1", "n_contoso_ams_msee2"],
        "Azure": ["n_hub_gw", "n_azure_vm", "n_azure_internet"],
    }
    assert nodes["n_contoso_ams_msee2"] == (
        "contoso-ams-msee2<br/>msee · secondary<br/>private VLAN 100<br/>microsoft VLAN 200"
    )
    text = graph.mermaid(connect_to)
    assert 'n_contoso_ams_msee1[["' in text and 'n_hub_gw{{"' in text and 'n_onprem(["' in text
    assert "  class n_ce1,n_ce2 router" in text


def test_small_plan_zones() -> None:
    plan = small_plan()
    zones = {name: graph.zone(plan, node) for name, node in plan.nodes.items()}
    assert zones == {"r1.a": "on-premises", "r1-a": "on-premises", "r3": "on-premises", "end": "on-premises",
                     ODD: "on-premises", "m.1": "Microsoft edge", "gw": "Azure", "vm": "Azure"}


def test_edges_group_peerings_of_one_fibre(connect_to: LabPlan) -> None:
    found = graph.edges(connect_to)
    first = found[0]
    assert (first.physical, first.a, first.b) == ("ce1:eth1", "ce1", "contoso-ams-msee1")
    assert (first.a_interfaces, first.b_interfaces, first.vlans, first.rate_mbps) == (("eth1",), ("eth1",),
                                                                                     (100, 200), 1000)
    assert len(found) == 8 and len(connect_to.links) == 10


# ---------------------------------------------------------------- SVG


def test_svg_is_xml_with_every_node_and_link(plan: LabPlan) -> None:
    root = ET.fromstring(graph.svg(plan))
    assert root.tag == f"{SVG}svg"
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    assert width > 0 and height > 0 and root.attrib["viewBox"] == f"0 0 {root.attrib['width']} {root.attrib['height']}"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for name in plan.nodes:
        assert name in texts
    groups = {g.attrib["id"]: g for g in root.iter(f"{SVG}g") if g.attrib.get("id", "").startswith("node-")}
    assert set(groups) == {f"node-{name}" for name in plan.nodes}
    lines = next(g for g in root.iter(f"{SVG}g") if g.attrib.get("fill") == "none")
    drawn = [e for e in lines if e.tag in (f"{SVG}line", f"{SVG}path")]
    assert len(drawn) == len({link.physical for link in plan.links})
    # boxes inside the picture and apart from each other
    boxes = []
    for g in groups.values():
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        x, y, w, h = (float(rect.attrib[k]) for k in ("x", "y", "width", "height"))
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
        boxes.append((x, y, w, h))
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[i + 1:]:
            assert x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1


def test_svg_columns_and_labels(connect_to: LabPlan) -> None:
    root = ET.fromstring(graph.svg(connect_to))
    x = {}
    for g in root.iter(f"{SVG}g"):
        if g.attrib.get("id", "").startswith("node-"):
            rect = g.find(f"{SVG}rect")
            assert rect is not None
            x[g.attrib["id"][5:]] = float(rect.attrib["x"])
    assert x["onprem"] < x["ce1"] == x["ce2"] < x["contoso-ams-msee1"] == x["contoso-ams-msee2"] < x["hub-gw"]
    assert x["hub-gw"] < x["azure-vm"]
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts.count("VLAN 100, 200") == 2 and "Microsoft edge" in texts and "msee · primary" in texts


def test_svg_escapes_text() -> None:
    text = graph.svg(small_plan())
    assert "h&amp;&lt;1&gt;" in text and 'id="node-h&amp;&lt;1&gt;&quot;#"' in text
    root = ET.fromstring(text)
    assert ODD in [t.text for t in root.iter(f"{SVG}text")]


# ---------------------------------------------------------------- containerlab


def test_containerlab_round_trips_with_every_node_link_and_address(plan: LabPlan) -> None:
    text = export.containerlab(plan)
    data = yaml.safe_load(text)
    assert data["name"] == plan.name
    nodes = data["topology"]["nodes"]
    assert list(nodes) == list(plan.nodes)
    owner = {key: ns.node for key, ns in plan.namespaces.items()}
    assert data["topology"]["links"] == [
        {"endpoints": [f"{owner[end.namespace]}:{end.interface}" for end in (link.a, link.b)]} for link in plan.links
    ]
    for name, node in plan.nodes.items():
        entry = nodes[name]
        assert entry["kind"] == "linux" and entry["image"] == export.IMAGES[node.kind]
        assert entry["labels"]["bgplab.kind"] == node.kind
        for key in node.namespaces:
            ns = plan.namespaces[key]
            for iface, cidr in ns.addresses:
                assert f"ip addr add {cidr} dev {iface}" in entry["exec"]
            for prefix, via in ns.routes:
                assert any(line.endswith(f"route replace {prefix} via {via}") for line in entry["exec"])
            if ns.forwarding:
                assert entry["exec"][0] == "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
    header = text[: text.index("\nname:")].splitlines()
    assert all(line.startswith("#") for line in header)


def test_containerlab_nodes_of_each_kind(connect_to: LabPlan) -> None:
    text = export.containerlab(connect_to)
    nodes = yaml.safe_load(text)["topology"]["nodes"]
    ce1 = nodes["ce1"]
    assert ce1["image"] == "bgplab/frr:latest"  # the images containers/build makes, as the docker runtime's
    assert ce1["binds"] == ["ce1/frr.conf:/etc/frr/frr.conf", "ce1/daemons:/etc/frr/daemons"]
    assert ce1["cmd"] == "sh -c '/usr/lib/frr/frrinit.sh start && exec sleep infinity'"
    msee = nodes["contoso-ams-msee1"]
    assert msee["image"] == "bgplab/bgplab:latest"
    assert msee["cmd"] == ("sh -c 'sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv6.ip_nonlocal_bind=1 && "
                           "exec python -m bgplab node msee --config /etc/bgplab/node.json'")
    assert msee["binds"] == ["contoso-ams-msee1/node.json:/etc/bgplab/node.json:ro"]
    assert {"ip addr add 192.168.100.130/30 dev eth1.100", "ip addr add 198.51.100.2/30 dev eth1.200"} <= set(
        msee["exec"])  # both peerings' namespaces in one container
    assert nodes["hub-gw"]["cmd"].endswith("exec python -m bgplab node gateway --config /etc/bgplab/node.json'")
    assert nodes["hub-gw"]["exec"][1:4] == ["ip link add vnet type bridge", "ip link set h1 master vnet",
                                            "ip link set vnet up"]
    assert nodes["onprem"]["image"] == nodes["azure-vm"]["image"] == "bgplab/host:latest"
    assert nodes["azure-vm"]["network-mode"] == "none"  # its eth0 is a lab link
    assert "network-mode" not in nodes["onprem"]
    assert "share one network namespace" in text and "contoso-ams-msee1, contoso-ams-msee2" in text
    assert "containerlab tools netem set -n clab-connect-to-ce1 -i eth1.100 --rate 1000000" in text


def test_containerlab_own_configs_and_a_router_with_nothing_to_run() -> None:
    text = export.containerlab(small_plan())
    nodes = yaml.safe_load(text)["topology"]["nodes"]
    assert nodes["r1.a"]["binds"] == ["/configs/r1.conf:/etc/frr/frr.conf", "r1.a/daemons:/etc/frr/daemons"]
    assert nodes["r1-a"]["binds"] == ["/configs/r1-a.conf:/etc/bird/bird.conf"]
    assert nodes["r1-a"]["image"] == "bgplab/bird:latest" and nodes["r1-a"]["cmd"] == "bird -f -c /etc/bird/bird.conf"
    assert "binds" not in nodes["r3"] and "cmd" not in nodes["r3"]  # neither a config nor an intent
    assert "ip -6 route replace ::/0 via 2001:db8::2" in nodes["end"]["exec"]
    assert "Link rates. Set them" in text and "--rate 200000" in text


def test_containerlab_files_match_the_binds(connect_to: LabPlan) -> None:
    files = export.containerlab_files(connect_to)
    nodes = yaml.safe_load(export.containerlab(connect_to))["topology"]["nodes"]
    bound = {bind.split(":")[0] for entry in nodes.values() for bind in entry.get("binds", [])}
    assert set(files) == bound
    assert "router bgp 65010" in files["ce1/frr.conf"] and "bgpd=yes" in files["ce1/daemons"]
    for name in ("contoso-ams-msee1", "hub-gw"):
        config = json.loads(files[f"{name}/node.json"])
        assert config["control"] == export.CONTROL_SOCKET and config["expressroute"] == connect_to.expressroute
        node, control = build_node(config, f"{name}/node.json")  # our node accepts it as it is
        assert control == export.CONTROL_SOCKET and node.name == name
    msee = json.loads(files["contoso-ams-msee1/node.json"])
    assert [place["netns"] for place in msee["peerings"].values()] == [None, None]


def test_containerlab_refuses_one_interface_name_in_two_namespaces_of_a_node() -> None:
    plan = small_plan()
    namespaces = dict(plan.namespaces)
    namespaces["m.1.microsoft"] = Namespace("m.1.microsoft", "m.1", (("vnet1", "192.168.2.2/30"),))
    clash = LabPlan(plan.name, plan.profile, plan.source, namespaces, plan.links, plan.nodes)
    with pytest.raises(ValueError, match=r"m\.1: interface vnet1 is in both m\.1\.private and m\.1\.microsoft"):
        export.containerlab(clash)


def test_a_link_to_an_unknown_namespace_is_refused() -> None:
    plan = small_plan()
    broken = LabPlan(plan.name, plan.profile, plan.source, plan.namespaces,
                     (*plan.links, _link("r3", "e5", "nowhere", "e1", "r3:e5")), plan.nodes)
    for render in (graph.mermaid, graph.svg, export.containerlab):
        with pytest.raises(ValueError, match="'nowhere'"):
            render(broken)


# ---------------------------------------------------------------- determinism


def test_same_plan_same_text(connect_to: LabPlan) -> None:
    again = load_topology(CONNECT_TO)
    restored = plan_from_data(json.loads(json.dumps(plan_to_data(connect_to))))
    for render in (graph.mermaid, graph.svg, export.containerlab):
        first = render(connect_to)
        assert render(connect_to) == first and render(again) == first and render(restored) == first
        assert render(small_plan()) == render(small_plan())
    assert export.containerlab_files(connect_to) == export.containerlab_files(restored)


# ---------------------------------------------------------------- `bgplab export containerlab` against the file

REPO = CONNECT_TO.parents[1]
FILES = [REPO / "topologies" / name for name in ("connect-to.yaml", "connect-through.yaml", "forced-tunnel.yaml",
                                                 "microsoft-peering.yaml")]
FILES += [REPO / "tests" / "lab" / "topologies" / name for name in ("connect-to.yaml", "dual-stack.yaml")]


def _addresses(value: str | list[str] | None) -> list[str]:
    """A file's address field: one address, or a list of them."""
    return [value] if isinstance(value, str) else [str(a) for a in value or []]


@dataclass
class Expected:
    """What the topology file (read as YAML, not through bgplab) and the generation rules of
    docs/lab.md say the lab holds."""

    kinds: dict[str, str]
    file_links: list[tuple[str, str]]
    """The file's own links, each pair in the file's order."""
    generated: set[frozenset[str]]
    """Generated links, "node:interface" ends in either order."""
    addresses: dict[str, set[str]]
    """Node -> its "ip addr add" lines, except on the /30 links below."""
    routes: dict[str, set[str]]
    pooled: list[tuple[str, str, str]]
    """(end, end, pool): a generated link numbered from a pool of /30s, which end gets which host unsaid."""
    bridged: set[str]
    """Gateway ends that are ports of its VNet bridge `vnet`."""


def expected_from_file(data: dict[str, Any]) -> Expected:
    er = data.get("expressroute") or {}
    kinds = {name: spec["kind"] for name, spec in data["nodes"].items()}
    addrs: dict[str, set[str]] = {name: set() for name in kinds}
    routes: dict[str, set[str]] = {name: set() for name in kinds}
    for name, spec in data["nodes"].items():
        for cidr in _addresses(spec.get("loopback")):
            addrs[name].add(f"ip addr add {cidr if '/' in cidr else cidr + '/32'} dev lo")
        for iface, cidrs in (spec.get("interfaces") or {}).items():
            addrs[name] |= {f"ip addr add {c} dev {iface}" for c in _addresses(cidrs)}
        if spec.get("gateway"):
            routes[name].add(f"ip route replace 0.0.0.0/0 via {spec['gateway']}")
    file_links = [tuple(link if isinstance(link, list) else link["endpoints"]) for link in data.get("links") or []]
    generated: set[frozenset[str]] = set()
    pooled: list[tuple[str, str, str]] = []
    bridged: set[str] = set()
    circuit_ifaces: dict[str, int] = {}  # "circuit interfaces are eth1, eth2, ... in file order"
    msees: dict[str, list[str]] = {}
    for circuit, spec in (er.get("circuits") or {}).items():
        msees[circuit] = []
        for side, edge in enumerate(spec["edges"], start=1):
            msee = f"{circuit}-msee{side}"
            kinds[msee], addrs[msee], routes[msee] = "msee", set(), set()
            msees[circuit].append(msee)
            circuit_ifaces[edge] = circuit_ifaces.get(edge, 0) + 1
            for peering in spec["peerings"].values():
                ce_iface, msee_iface = f"eth{circuit_ifaces[edge]}.{peering['vlan']}", f"eth1.{peering['vlan']}"
                generated.add(frozenset((f"{edge}:{ce_iface}", f"{msee}:{msee_iface}")))
                for family, length in (("ipv4", 30), ("ipv6", 126)):
                    pool = _addresses(peering.get(family))
                    if not pool:
                        continue
                    # one prefix for both links (split in /30s or /126s), or one per link
                    links: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [ipaddress.ip_network(p) for p in pool]
                    if len(links) == 1:
                        links = list(links[0].subnets(new_prefix=length))
                    subnet = links[side - 1]
                    customer, ours = subnet[1], subnet[2]  # the CE the first host, the MSEE the second
                    addrs[edge].add(f"ip addr add {customer}/{length} dev {ce_iface}")
                    addrs[msee].add(f"ip addr add {ours}/{length} dev {msee_iface}")
    vnets = er.get("vnets") or {}
    for number, (vnet, spec) in enumerate(vnets.items(), start=1):
        gw = f"{vnet}-gw"
        kinds[gw], addrs[gw], routes[gw] = "gateway", set(), set()
        attached = [m for c in spec["connections"] for m in msees[c["circuit"]]]
        for k, msee in enumerate(attached, start=1):
            generated.add(frozenset((f"{msee}:vnet1", f"{gw}:m{k}")))
            # One /30 for each of the gateway's two instances (docs/lab.md).
            pooled.append((f"{msee}:vnet1", f"{gw}:m{k}", "169.254.0.0/17"))
            pooled.append((f"{msee}:vnet1", f"{gw}:m{k}", "169.254.128.0/17"))
        for h, (host, address) in enumerate((spec.get("hosts") or {}).items(), start=1):
            generated.add(frozenset((f"{host}:eth0", f"{gw}:h{h}")))  # a port of the VNet bridge
            bridged.add(f"{gw}:h{h}")
            ip = ipaddress.ip_address(address)
            space = next(ipaddress.ip_network(s) for s in spec["address_space"] if ip in ipaddress.ip_network(s))
            kinds[host], routes[host] = "host", {f"ip route replace 0.0.0.0/0 via {space[1]}"}
            addrs[host] = {f"ip addr add {ip}/{space.prefixlen} dev eth0"}
            addrs[gw].add(f"ip addr add {space[1]}/{space.prefixlen} dev vnet")  # the VNet's first address
        internet = er.get("internet", True)
        if internet:
            edge = "azure-internet"
            kinds.setdefault(edge, "host")
            addrs.setdefault(edge, set())
            routes.setdefault(edge, set())
            generated.add(frozenset((f"{gw}:inet", f"{edge}:gw{number}")))
            pooled.append((f"{gw}:inet", f"{edge}:gw{number}", "192.0.2.0/24"))
            if isinstance(internet, dict):
                for iface, cidrs in (internet.get("interfaces") or {}).items():
                    addrs[edge] |= {f"ip addr add {c} dev {iface}" for c in _addresses(cidrs)}
    return Expected(kinds, [(str(a), str(b)) for a, b in file_links], generated, addrs, routes, pooled, bridged)


@pytest.mark.parametrize("topology", FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_export_cli_output_matches_the_topology_file(topology: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Field by field against the file itself (not against bgplab's own plan of it): a node
    missing or of the wrong kind, a link between the wrong ends or interfaces, an address on the
    wrong interface, a bound file that is not there, each fails here."""
    data = yaml.safe_load(topology.read_text())
    out = tmp_path / "clab"
    assert main(["export", "containerlab", str(topology), "-o", str(out), "--json"]) == 0
    written = [Path(p) for p in json.loads(capsys.readouterr().out)]
    clab_file = out / f"{data['name']}.clab.yml"
    assert written[0] == clab_file and all(p.is_file() for p in written)
    clab = yaml.safe_load(clab_file.read_text())
    assert clab["name"] == data["name"]
    want = expected_from_file(data)
    nodes = clab["topology"]["nodes"]
    assert set(nodes) == set(want.kinds)
    on_pool = {end for a, b, _ in want.pooled for end in (a, b)}
    pooled: dict[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = {}
    for name, kind in want.kinds.items():
        entry = nodes[name]
        assert entry["kind"] == "linux" and entry["labels"]["bgplab.kind"] == kind, name
        lines = entry.get("exec", [])
        added = {line for line in lines if line.startswith("ip addr add")}
        for line in added:
            _, _, _, cidr, _, iface = line.split()
            if f"{name}:{iface}" in on_pool:
                pooled.setdefault(f"{name}:{iface}", []).append(ipaddress.ip_interface(cidr))
        assert {line for line in added if f"{name}:{line.split()[-1]}" not in on_pool} == want.addresses[name], name
        assert {line for line in lines if line.startswith("ip route replace 0.0.0.0/0")} == want.routes[name], name
        ports = {line.split()[3] for line in lines if line.startswith("ip link set") and line.endswith("master vnet")}
        assert ports == {end.split(":")[1] for end in want.bridged if end.startswith(f"{name}:")}, name
    subnets = []
    for a, b, pool in want.pooled:  # both ends in one /30 of each pool, two hosts apart, no /30 twice
        [end_a] = [i for i in pooled[a] if i.network.subnet_of(ipaddress.ip_network(pool))]  # type: ignore[arg-type]
        [end_b] = [i for i in pooled[b] if i.network.subnet_of(ipaddress.ip_network(pool))]  # type: ignore[arg-type]
        assert end_a.network == end_b.network and end_a.network.prefixlen == 30 and end_a.ip != end_b.ip, (a, b)
        subnets.append(end_a.network)
    assert len(set(subnets)) == len(subnets)
    links = [tuple(link["endpoints"]) for link in clab["topology"]["links"]]
    assert len(links) == len(want.file_links) + len(want.generated)
    assert [link for link in links if link in want.file_links] == want.file_links  # as the file orders each pair
    assert {frozenset(link) for link in links if link not in want.file_links} == want.generated
    for name, spec in data["nodes"].items():
        binds = {b.split(":")[1]: b.split(":")[0] for b in nodes[name].get("binds", [])}
        if spec["kind"] == "frr":
            source = Path(binds["/etc/frr/frr.conf"])
            if spec.get("config"):  # the user's own file, bound from where the topology says it is
                assert source.resolve() == (topology.parent / spec["config"]).resolve()
            else:
                assert not source.is_absolute() and f"hostname {name}" in (out / source).read_text()
            assert "bgpd=yes" in (out / binds["/etc/frr/daemons"]).read_text()
    for name, kind in want.kinds.items():
        if kind in ("msee", "gateway"):
            bind = nodes[name]["binds"][0].split(":")
            assert bind[1] == "/etc/bgplab/node.json"
            assert json.loads((out / bind[0]).read_text())["name"] == name
