"""A lab for other tools: `containerlab(plan)` writes a containerlab topology (`.clab.yml`) of it.

Pure functions: the caller writes the text (and the files of `containerlab_files(plan)`, which the
topology's `binds` name, relative to the `.clab.yml`) wherever it likes. The output is
deterministic, so it can be committed and diffed.

Every node becomes one container of containerlab's generic `linux` kind; every plan `Link` one
`endpoints` entry (one veth pair: a peering's sub-interface such as "eth1.100" is a veth of its
own, as in bgplab's netns runtime, so no VLAN devices are needed); each node's addresses, static
routes and bridges become `exec` lines run after deploy, its forwarding `sysctls`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from bgplab.expressroute.profile import profile
from bgplab.lab.kinds import kind_of
from bgplab.lab.kinds.frr import render_intent
from bgplab.lab.plan import LabPlan, Node

__all__ = ["IMAGES", "PLACEHOLDER_IMAGES", "containerlab", "containerlab_files"]

IMAGES = {
    "frr": "quay.io/frrouting/frr:8.4.4",
    "bird": "bgplab/bird2:placeholder",
    "gobgp": "bgplab/gobgp:placeholder",
    "exabgp": "bgplab/exabgp:placeholder",
    "host": "ghcr.io/hellt/network-multitool",
    "msee": "bgplab:latest",
    "gateway": "bgplab:latest",
}
"""The container image of each node kind."""
PLACEHOLDER_IMAGES = {
    "bird": "an image with BIRD 2 (bird, birdc) and iproute2 that starts bird with /etc/bird/bird.conf",
    "gobgp": "an image with gobgpd and iproute2 that starts gobgpd with /etc/gobgp/gobgpd.conf",
    "exabgp": "an image with ExaBGP and iproute2 that starts exabgp with /etc/exabgp/exabgp.conf",
}
"""Kinds without a well-known image: what the placeholder stands for (also in each node's `labels`)."""
CONFIG_PATHS = {
    "frr": "/etc/frr/frr.conf",
    "bird": "/etc/bird/bird.conf",
    "gobgp": "/etc/gobgp/gobgpd.conf",
    "exabgp": "/etc/exabgp/exabgp.conf",
}
"""Where a router's own config file is bound in its container."""
NODE_CONFIG = "/etc/bgplab/node.json"
CONTROL_SOCKET = "/tmp/bgplab-node.sock"
"""The control socket of our nodes inside their containers."""
FRR_DAEMONS = """\
# FRR daemons for a bgplab CE router (zebra, bgpd, staticd, bfdd)
zebra=yes
bgpd=yes
staticd=yes
bfdd=yes
ospfd=no
ospf6d=no
ripd=no
ripngd=no
isisd=no
pimd=no
ldpd=no
nhrpd=no
eigrpd=no
babeld=no
sharpd=no
pbrd=no
fabricd=no
vrrpd=no
pathd=no
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
bgpd_options="   -A 127.0.0.1"
staticd_options="-A 127.0.0.1"
bfdd_options="   -A 127.0.0.1"
"""
FORWARDING_SYSCTLS = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
EARLY_BIND_SYSCTLS = {"net.ipv4.ip_nonlocal_bind": "1", "net.ipv6.ip_nonlocal_bind": "1"}
"""Our nodes start (`cmd`) before containerlab adds their links and `exec` their addresses: they may
listen on addresses that are not there yet."""
MGMT_INTERFACE = "eth0"
"""containerlab's management interface in every container (unless `network-mode: none`)."""


def _files_of(plan: LabPlan, node: Node) -> dict[str, str]:
    """Container path -> file (relative to the .clab.yml, or the user's own absolute path)."""
    if node.kind == "frr":
        own = node.spec.get("config")
        return {
            CONFIG_PATHS["frr"]: str(own) if own else f"{node.name}/frr.conf",
            "/etc/frr/daemons": f"{node.name}/daemons",
        }
    if node.kind in CONFIG_PATHS and node.spec.get("config"):
        return {CONFIG_PATHS[node.kind]: str(node.spec["config"])}
    if kind_of(node.kind).generated:
        return {NODE_CONFIG: f"{node.name}/node.json"}
    return {}


def _node_config(plan: LabPlan, node: Node) -> dict[str, Any]:
    """Our node's config as in `bgplab.lab.kinds.ours`, but in its container's own namespace."""
    spec: dict[str, Any] = json.loads(json.dumps(dict(node.spec)))
    if node.kind == "msee":
        for place in spec.get("peerings", {}).values():
            place["netns"] = None
    else:
        spec["netns"] = None
    spec.update(name=node.name, kind=node.kind, control=CONTROL_SOCKET, profile=plan.profile,
                expressroute=json.loads(json.dumps(plan.expressroute)) if plan.expressroute is not None else None)
    return spec


def containerlab_files(plan: LabPlan) -> dict[str, str]:
    """The files the `.clab.yml` of `containerlab(plan)` binds, by path relative to it: FRR configs
    generated from intent (a user's own config is bound from where it is), FRR `daemons` files,
    and the `node.json` of each MSEE and gateway."""
    files: dict[str, str] = {}
    for node in plan.nodes.values():
        for source in _files_of(plan, node).values():
            if source.startswith("/"):
                continue
            if source.endswith("/frr.conf"):
                files[source] = render_intent(node.name, dict(node.spec.get("intent", {})), profile(plan.profile).ce)
            elif source.endswith("/daemons"):
                files[source] = FRR_DAEMONS
            elif source.endswith("/node.json"):
                files[source] = json.dumps(_node_config(plan, node), indent=1) + "\n"
    return files


def _interfaces(plan: LabPlan, node: Node) -> dict[str, str]:
    """Interface -> the namespace it is in, over all the node's namespaces (one container)."""
    seen: dict[str, str] = {}
    for key in node.namespaces:
        ns = plan.namespaces.get(key)
        names = [link_end.interface for link in plan.links for link_end in (link.a, link.b)
                 if link_end.namespace == key]
        if ns is not None:
            names += [iface for iface, _ in ns.addresses if iface != "lo"]
            names += [bridge for bridge, _ in ns.bridges]
        for name in dict.fromkeys(names):
            if name in seen and seen[name] != key:
                raise ValueError(
                    f"{node.name}: interface {name} is in both {seen[name]} and {key}; in containerlab a node is one "
                    "network namespace, so its interface names must differ across its namespaces"
                )
            seen[name] = key
    return seen


def _exec_lines(plan: LabPlan, node: Node) -> list[str]:
    bridges, addresses, routes = [], [], []
    for key in node.namespaces:
        ns = plan.namespaces.get(key)
        if ns is None:
            continue
        for bridge, members in ns.bridges:
            bridges.append(f"ip link add {bridge} type bridge")
            bridges += [f"ip link set {member} master {bridge}" for member in members]
            bridges.append(f"ip link set {bridge} up")
        addresses += [f"ip addr add {cidr} dev {iface}" for iface, cidr in ns.addresses]
        for prefix, via in ns.routes:
            family = "-6 " if ":" in prefix else ""
            routes.append(f"ip {family}route replace {prefix} via {via}")
    return bridges + addresses + routes


def _endpoint_node(plan: LabPlan, owners: Mapping[str, str], key: str) -> str:
    if key in owners:
        return owners[key]
    raise ValueError(f"a link ends in namespace {key!r}, which no node of the plan has")


def _header(plan: LabPlan, rated: list[tuple[str, str, int]], no_mgmt: list[str]) -> list[str]:
    msees = [n.name for n in plan.nodes.values() if n.kind == "msee" and len(n.namespaces) > 1]
    placeholders = sorted({n.kind for n in plan.nodes.values() if n.kind in PLACEHOLDER_IMAGES})
    lines = [
        f"containerlab topology of the bgplab lab {plan.name!r} (profile {plan.profile}), exported from {plan.source}.",
        "Write the files of bgplab.lab.export.containerlab_files() next to this file, then:",
        f"  sudo containerlab deploy -t {plan.name}.clab.yml",
        "",
        "Carried over: every node (one container of kind linux each), every link (one veth pair per",
        "entry: a peering's sub-interface such as eth1.100 is a veth of its own, as in bgplab's netns",
        "runtime), addresses, loopbacks, static routes and VNet bridges (exec), IP forwarding (sysctls),",
        "FRR configs (yours, or generated from the topology's intent), and the MSEE and gateway configs.",
        "",
        "Not carried over:",
        "- MSEE peering namespaces. bgplab gives each peering of an MSEE its own namespace; here each",
        "  MSEE is ONE container, so its peerings (private, microsoft) share one network namespace and",
        "  one routing table.",
    ]
    if msees:
        lines.append(f"  Here: {', '.join(msees)}.")
    lines += [
        "- Routes in the kernel of MSEEs and gateways. Our nodes run with netns null in their",
        "  container: they speak BGP but program no routes, so no traffic crosses them (use bgplab's",
        "  netns runtime for data-plane tests).",
        "- Link rates. Set them after deploy (kbit/s, both ends):" if rated else "- Link rates (none in this lab).",
    ]
    for node, iface, mbps in rated:
        lines.append(f"    containerlab tools netem set -n clab-{plan.name}-{node} -i {iface} --rate {mbps * 1000}")
    lines += [
        "- bgplab's faults, timelines, status/routes/events and control sockets: bgplab drives only",
        "  its own runtime. Our nodes' control socket is " + CONTROL_SOCKET + " inside each container.",
    ]
    if no_mgmt:
        lines += [
            f"- containerlab's management network for {', '.join(no_mgmt)}: {MGMT_INTERFACE} (its management",
            "  interface) is a lab link there, so these nodes run with network-mode: none.",
        ]
    lines += [
        "",
        "Images: bgplab:latest is an image you build with bgplab and iproute2 installed. Our nodes start",
        "before containerlab adds their links and addresses, so their containers may bind addresses not",
        "there yet (ip_nonlocal_bind).",
    ]
    for kind in placeholders:
        lines.append(f"{IMAGES[kind]} is a placeholder: {PLACEHOLDER_IMAGES[kind]}.")
    return [f"# {line}".rstrip() for line in lines]


def containerlab(plan: LabPlan) -> str:
    """The lab as a containerlab topology file (YAML text with a comment header)."""
    owners = {key: ns.node for key, ns in plan.namespaces.items()}
    for node in plan.nodes.values():
        for key in node.namespaces:
            owners.setdefault(key, node.name)

    links: list[dict[str, Any]] = []
    rated: list[tuple[str, str, int]] = []
    mgmt_links: set[str] = set()
    for each in plan.nodes.values():
        _interfaces(plan, each)  # one container per node: refuses a name held twice
    for link in plan.links:
        ends = []
        for end in (link.a, link.b):
            owner = _endpoint_node(plan, owners, end.namespace)
            ends.append(f"{owner}:{end.interface}")
            if end.interface == MGMT_INTERFACE:
                mgmt_links.add(owner)
            if link.rate_mbps is not None:
                rated.append((owner, end.interface, link.rate_mbps))
        links.append({"endpoints": ends})

    nodes: dict[str, Any] = {}
    for name, node in plan.nodes.items():
        entry: dict[str, Any] = {"kind": "linux", "image": IMAGES.get(node.kind, IMAGES["host"])}
        if node.name in mgmt_links:
            entry["network-mode"] = "none"
        if kind_of(node.kind).generated:
            entry["cmd"] = f"python -m bgplab node {node.kind} --config {NODE_CONFIG}"
        files = _files_of(plan, node)
        if files:
            entry["binds"] = [f"{source}:{target}" + (":ro" if target == NODE_CONFIG else "")
                              for target, source in files.items()]
        sysctls: dict[str, str] = {}
        if any(plan.namespaces[key].forwarding for key in node.namespaces if key in plan.namespaces):
            sysctls.update(FORWARDING_SYSCTLS)
        if kind_of(node.kind).generated:
            sysctls.update(EARLY_BIND_SYSCTLS)
        if sysctls:
            entry["sysctls"] = sysctls
        lines = _exec_lines(plan, node)
        if lines:
            entry["exec"] = lines
        labels = {"bgplab.kind": node.kind, "bgplab.namespaces": " ".join(node.namespaces)}
        if node.kind in PLACEHOLDER_IMAGES:
            labels["bgplab.image"] = f"placeholder: {PLACEHOLDER_IMAGES[node.kind]}"
        entry["labels"] = labels
        nodes[name] = entry

    data = {"name": plan.name, "topology": {"nodes": nodes, "links": links}}
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    header = _header(plan, _unique_rates(rated), sorted(mgmt_links))
    return "\n".join(header) + "\n" + body


def _unique_rates(rated: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return list(dict.fromkeys(rated))
