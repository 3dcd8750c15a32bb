"""A lab for other tools: `containerlab(plan)` writes a containerlab topology (`.clab.yml`) of it.

Pure functions: the caller writes the text (and the files of `containerlab_files(plan)`, which the
topology's `binds` name, relative to the `.clab.yml`) wherever it likes. The output is
deterministic, so it can be committed and diffed.

Every node becomes one container of containerlab's generic `linux` kind, from the image bgplab's
docker runtime would use (built by containers/build; a kind linux node's own); every plan `Link`
one `endpoints` entry (one veth pair: a peering's sub-interface such as "eth1.100" is a veth of
its own, as in bgplab's runtimes, so no VLAN devices are needed); each node's forwarding,
addresses, static routes and bridges become `exec` lines run after deploy. Our images start no
daemon of their own, so each node's `cmd` starts its daemon on its config.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bgplab.expressroute.profile import CeTimers, profile
from bgplab.lab.kinds import bird, exabgp, frr, gobgp, kind_of
from bgplab.lab.plan import LabPlan, Node

__all__ = ["IMAGES", "containerlab", "containerlab_files"]

OUR_IMAGE = "bgplab/bgplab:latest"
IMAGES = {
    "frr": "bgplab/frr:latest",
    "bird": "bgplab/bird:latest",
    "gobgp": "bgplab/gobgp:latest",
    "exabgp": "bgplab/exabgp:latest",
    "host": "bgplab/host:latest",
    "msee": OUR_IMAGE,
    "gateway": OUR_IMAGE,
}
"""The container image of each node kind, all built by containers/build (kind linux: its own)."""
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


@dataclass(frozen=True)
class _Router:
    """How a router kind runs in our image under containerlab, whose command (`sleep infinity`)
    starts nothing: where its config is bound, the command that starts the daemon on it, and
    the config generated from the topology's intent when the node has none of its own."""

    config: str
    cmd: str
    render: Callable[[str, dict[str, Any], CeTimers | None], str]
    extra: tuple[tuple[str, str, str], ...] = ()
    """(container path, file name, text): more files the daemon reads."""


ROUTERS = {
    "frr": _Router("/etc/frr/frr.conf", "sh -c '/usr/lib/frr/frrinit.sh start && exec sleep infinity'",
                   frr.render_intent, (("/etc/frr/daemons", "daemons", FRR_DAEMONS),)),
    "bird": _Router("/etc/bird/bird.conf", "bird -f -c /etc/bird/bird.conf", bird.render_intent),
    "gobgp": _Router("/etc/gobgp/gobgpd.{suffix}", "gobgpd -f /etc/gobgp/gobgpd.{suffix} -t {suffix}",
                     gobgp.render_intent),
    "exabgp": _Router("/etc/exabgp/exabgp.conf",
                      "exabgp --env-file /etc/exabgp/exabgp.env server /etc/exabgp/exabgp.conf",
                      exabgp.render_intent, (("/etc/exabgp/exabgp.env", "exabgp.env", exabgp.ENV),)),
}
FORWARDING = "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
EARLY_BIND = "sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv6.ip_nonlocal_bind=1"
"""Our nodes start (`cmd`) before containerlab adds their links and `exec` their addresses: they may
listen on addresses that are not there yet. (Sysctls are commands, not the node's `sysctls`, which
containerlab's published schema does not define; its linux nodes run privileged, so they may.)"""
MGMT_INTERFACE = "eth0"
"""containerlab's management interface in every container (unless `network-mode: none`)."""


def _suffix(node: Node) -> str:
    own = node.spec.get("config")
    return Path(str(own)).suffix.lstrip(".") if own else "toml"


def _files_of(plan: LabPlan, node: Node) -> dict[str, str]:
    """Container path -> file (relative to the .clab.yml, or the user's own absolute path)."""
    if node.kind == "linux":
        return {path: host for host, path in node.container.get("copies", [])}
    router = ROUTERS.get(node.kind)
    if router is not None:
        own = node.spec.get("config")
        if not own and not node.spec.get("intent"):
            return {}  # nothing to run it on (a hand-built plan)
        name = Path(router.config.format(suffix=_suffix(node))).name
        files = {router.config.format(suffix=_suffix(node)): str(own) if own else f"{node.name}/{name}"}
        files.update({path: f"{node.name}/{file}" for path, file, _ in router.extra})
        return files
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
    """The files the `.clab.yml` of `containerlab(plan)` binds, by path relative to it: router
    configs generated from intent (a user's own config is bound from where it is), the files
    their daemons read beside it, and the `node.json` of each MSEE and gateway."""
    files: dict[str, str] = {}
    for node in plan.nodes.values():
        router = ROUTERS.get(node.kind)
        for path, source in _files_of(plan, node).items():
            if source.startswith("/"):
                continue
            if router is not None and path == router.config.format(suffix=_suffix(node)):
                files[source] = router.render(node.name, dict(node.spec.get("intent", {})), profile(plan.profile).ce)
            elif router is not None:
                files[source] = next(text for where, _, text in router.extra if where == path)
            else:
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
        routes += [f"ip {'-6 ' if ':' in prefix else ''}route replace local {prefix} dev lo" for prefix in ns.local]
        if ns.nft:
            routes.append("sh -c " + shlex.quote(f"printf %s {shlex.quote(ns.nft)} | nft -f -"))
    return bridges + addresses + routes


def _endpoint_node(plan: LabPlan, owners: Mapping[str, str], key: str) -> str:
    if key in owners:
        return owners[key]
    raise ValueError(f"a link ends in namespace {key!r}, which no node of the plan has")


def _header(plan: LabPlan, rated: list[tuple[str, str, int]], no_mgmt: list[str]) -> list[str]:
    msees = [n.name for n in plan.nodes.values() if n.kind == "msee" and len(n.namespaces) > 1]
    own = sorted({n.image for n in plan.nodes.values() if n.kind == "linux" and n.image})
    lines = [
        f"containerlab topology of the bgplab lab {plan.name!r} (profile {plan.profile}), exported from {plan.source}.",
        "Write the files of bgplab.lab.export.containerlab_files() next to this file (bgplab export does),",
        "build the images (containers/build), then:",
        f"  sudo containerlab deploy -t {plan.name}.clab.yml",
        "",
        "Carried over: every node (one container of kind linux each, from bgplab's images: bgplab/bgplab",
        "runs the MSEEs and gateways), every link (one veth pair per entry: a peering's sub-interface such",
        "as eth1.100 is a veth of its own, as in bgplab's runtimes), addresses, loopbacks, static routes",
        "and VNet bridges (exec), IP forwarding, router configs (yours, or generated from the topology's",
        "intent), the MSEE and gateway configs, and kind linux nodes' images, binds, env and exec.",
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
        "  runtimes, netns or docker, for data-plane tests).",
        "- Link rates. Set them after deploy (kbit/s, both ends):" if rated else "- Link rates (none in this lab).",
    ]
    for node, iface, mbps in rated:
        lines.append(f"    containerlab tools netem set -n clab-{plan.name}-{node} -i {iface} --rate {mbps * 1000}")
    lines += [
        "- bgplab's faults, timelines, status/routes/events and control sockets: bgplab drives only",
        "  its own runtimes. Our nodes' control socket is " + CONTROL_SOCKET + " inside each container.",
    ]
    if no_mgmt:
        lines += [
            f"- containerlab's management network for {', '.join(no_mgmt)}: {MGMT_INTERFACE} (its management",
            "  interface) is a lab link there, so these nodes run with network-mode: none.",
        ]
    lines += [
        "",
        "Across hosts (containerlab's vxlan links, or clabernetes on Kubernetes): every host, or the",
        "cluster, needs the images: push them to a registry you run (docker tag, docker push) and name",
        "it in the image fields, or copy them (docker save | ssh HOST docker load). docs/lab.md says more.",
    ]
    if own:
        lines.append(f"Your own images, which you provide the same way: {', '.join(own)}.")
    return [f"# {line}".rstrip() for line in lines]


def _announce_lines(node: Node) -> list[str]:
    """GoBGP's config holds no routes: the intent's prefixes go in through its CLI once gobgpd answers."""
    lines = []
    for prefix in node.spec.get("intent", {}).get("announce", []):
        family = "ipv6" if ":" in prefix else "ipv4"
        lines.append(f"sh -c 'for i in $(seq 40); do gobgp global rib add -a {family} {prefix} && exit 0; "
                     "sleep 0.5; done; exit 1'")
    return lines


def _node_entry(plan: LabPlan, node: Node, mgmt_links: set[str]) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": "linux", "image": node.image if node.kind == "linux" and node.image
                             else IMAGES.get(node.kind, IMAGES["host"])}
    if node.name in mgmt_links:
        entry["network-mode"] = "none"
    router = ROUTERS.get(node.kind)
    files = _files_of(plan, node)
    if router is not None and files:
        entry["cmd"] = router.cmd.format(suffix=_suffix(node))
    elif kind_of(node.kind).generated:
        entry["cmd"] = f"sh -c '{EARLY_BIND} && exec python -m bgplab node {node.kind} --config {NODE_CONFIG}'"
    binds = [f"{source}:{target}" + (":ro" if target == NODE_CONFIG else "")
             for target, source in files.items()]
    binds += list(node.container.get("binds", []))
    if binds:
        entry["binds"] = binds
    if node.container.get("env"):
        entry["env"] = dict(node.container["env"])
    lines = _exec_lines(plan, node)
    if any(plan.namespaces[key].forwarding for key in node.namespaces if key in plan.namespaces):
        lines.insert(0, FORWARDING)
    if node.kind == "gobgp":
        lines += _announce_lines(node)
    lines += list(node.spec.get("exec", [])) if node.kind == "linux" else []
    if lines:
        entry["exec"] = lines
    entry["labels"] = {"bgplab.kind": node.kind, "bgplab.namespaces": " ".join(node.namespaces)}
    return entry


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

    nodes = {name: _node_entry(plan, node, mgmt_links) for name, node in plan.nodes.items()}
    data = {"name": plan.name, "topology": {"nodes": nodes, "links": links}}
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    header = _header(plan, _unique_rates(rated), sorted(mgmt_links))
    return "\n".join(header) + "\n" + body


def _unique_rates(rated: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return list(dict.fromkeys(rated))
