"""A hand-wired ExpressRoute circuit in network namespaces, for the MSEE and gateway interop tests.

    ce1 (FRR) ─ eth1.100 ══ private ══ msee1-private ─ gw ─┐
        │     └ eth1.200 ══ microsoft ═ msee1-microsoft     ├─ gateway (VNet hub 10.100.0.0/16) ─ inet
      iBGP                                                  │
    ce2 (FRR) ─ eth1.100 ══ private ══ msee2-private ─ gw ─┘
              └ eth1.200 ══ microsoft ═ msee2-microsoft

This kernel has no 802.1Q devices, so each (link, peering) is its own veth pair named as the
sub-interface would be (DESIGN.md, last section). The MSEEs and the gateway are our real node
processes (`python -m bgplab node KIND --config FILE`), each programming its namespaces' FIBs and
answering on its control socket. The lab harness proper (bgplab.lab) will generate all of this from
a topology file; here it is spelled out so that the node behaviour is tested on its own.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgplab.expressroute import control
from bgplab.testing.daemons import FrrDaemon, Neighbor, Route, wait_until
from bgplab.testing.netns import Netns, add_address, veth

CE_ASN = 64900
CE_LOOPBACKS = {"ce1": "10.1.0.1", "ce2": "10.1.0.2"}
MSEE_PRIVATE = {"primary": ("192.168.100.129", "192.168.100.130"), "secondary": ("192.168.100.133", "192.168.100.134")}
MSEE_MICROSOFT = {"primary": ("198.51.100.1", "198.51.100.2"), "secondary": ("198.51.100.5", "198.51.100.6")}
GATEWAY_LINKS = {"primary": ("10.255.0.1", "10.255.0.2"), "secondary": ("10.255.0.5", "10.255.0.6")}
INTERNET_EDGE = ("192.0.2.1", "192.0.2.2")  # (edge, gateway)
BFD = (300, 300, 3)


def model_data(*, premium: bool = False, route_filter: str | None = None) -> dict[str, Any]:
    microsoft: dict[str, Any] = {
        "vlan": 200,
        "peer_asn": CE_ASN,
        "validated": True,
        "ipv4": "198.51.100.0/29",
        "advertised_prefixes": ["203.0.113.0/28"],
    }
    if route_filter:
        microsoft["route_filter"] = route_filter
    return {
        "circuits": {
            "contoso": {
                "sku": "premium" if premium else "standard",
                "bandwidth": "1Gbps",
                "region": "west-europe",
                "microsoft365_authorized": True,
                "peerings": {
                    "private": {"vlan": 100, "peer_asn": CE_ASN, "ipv4": "192.168.100.128/29"},
                    "microsoft": microsoft,
                },
            }
        },
        "route_filters": {
            "exchange": {"rules": [{"access": "allow", "communities": ["12076:5010"]}]},
        },
        "vnets": {
            "hub": {
                "address_space": ["10.100.0.0/16"],
                "custom_community": "12076:20001",
                "connections": [{"circuit": "contoso", "weight": 0}],
            }
        },
    }


@dataclass
class NodeProcess:
    kind: str
    name: str
    control: str
    proc: subprocess.Popen[bytes]
    log: Path

    def call(self, command: str, **args: Any) -> Any:
        return control.call(self.control, command, **args)

    def stop(self) -> int:
        """SIGTERM, as `bgplab down` does; the exit status (0 for a clean stop)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class CircuitLab:
    workdir: Path
    ns: dict[str, Netns]
    ces: dict[str, FrrDaemon] = field(default_factory=dict)
    nodes: dict[str, NodeProcess] = field(default_factory=dict)
    stack: ExitStack = field(default_factory=ExitStack)

    def start_node(self, kind: str, name: str, config: dict[str, Any]) -> NodeProcess:
        sock = str(self.workdir / f"{name}.sock")
        path = self.workdir / f"{name}.json"
        path.write_text(json.dumps({"kind": kind, "name": name, "control": sock, "profile": "fast", **config}))
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bgplab", "node", kind, "--config", str(path), "-v"],
                stdout=subprocess.PIPE, stderr=out,
            )
        node = NodeProcess(kind, name, sock, proc, log)
        self.stack.callback(node.stop)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
        assert json.loads(line)["type"] == "ready"
        self.nodes[name] = node
        return node

    def session_states(self, node: str) -> dict[str, str]:
        return {f"{s['peering']}:{s['neighbor']}": s["state"] for s in self.nodes[node].call("sessions")}

    def wait_sessions(self, node: str, count: int, timeout: float = 30.0) -> None:
        def up() -> bool:
            states = self.session_states(node)
            return len(states) >= count and all(v == "established" for v in states.values())

        wait_until(up, timeout, f"{node}: {count} sessions established")

    def kernel_routes(self, ns: str) -> dict[str, list[str]]:
        """`ip route` of a namespace: destination -> gateways (or ["blackhole"])."""
        out = self.ns[ns].run(["ip", "-j", "route", "show", "proto", "201"]).stdout
        routes: dict[str, list[str]] = {}
        for r in json.loads(out or "[]"):
            if r.get("type") == "blackhole":
                routes[r["dst"]] = ["blackhole"]
            elif "nexthops" in r:
                routes[r["dst"]] = sorted(h["gateway"] for h in r["nexthops"])
            else:
                routes[r["dst"]] = [r["gateway"]]
        return routes


NAMESPACES = ("ce1", "ce2", "m1p", "m1m", "m2p", "m2m", "gw", "inet")
_CIRCUIT_SIDES = (("ce1", "primary", "m1p", "m1m"), ("ce2", "secondary", "m2p", "m2m"))


@contextlib.contextmanager
def circuit_lab(*, ce_routes: dict[str, list[Route]] | None = None, restart_after: float = 60.0,
                with_gateway: bool = True, route_filter: str | None = None) -> Iterator[CircuitLab]:
    """Everything above up and sessions configured; torn down whatever happens (nodes first)."""
    with ExitStack() as outer:
        workdir = Path(outer.enter_context(tempfile.TemporaryDirectory(prefix="bgplab-erlab-")))
        ns = {name: outer.enter_context(Netns("er")) for name in NAMESPACES}
        lab = CircuitLab(workdir, ns)
        outer.enter_context(lab.stack)
        _wire(ns)
        data = model_data(route_filter=route_filter)
        for ce, side, m_private, m_microsoft in _CIRCUIT_SIDES:
            gateway = GATEWAY_LINKS[side]
            lab.start_node("msee", f"msee-{side}", {
                "expressroute": data, "circuit": "contoso", "side": side,
                "rules": {"restart_after": restart_after},
                "peerings": {
                    "private": {"netns": ns[m_private].name,
                                "gateways": [{"address": gateway[1], "local_address": gateway[0]}]
                                if with_gateway else []},
                    "microsoft": {"netns": ns[m_microsoft].name},
                },
            })
            other = "ce2" if ce == "ce1" else "ce1"
            neighbors = [
                Neighbor(MSEE_PRIVATE[side][1], 12076, families=("ipv4",), bfd=BFD),
                Neighbor(MSEE_MICROSOFT[side][1], 12076, families=("ipv4",)),
                Neighbor(_ibgp(other), CE_ASN, families=("ipv4",)),
            ]
            routes = (ce_routes or {}).get(ce, [])
            daemon = FrrDaemon(ns[ce], CE_ASN, CE_LOOPBACKS[ce], neighbors, routes)
            lab.stack.callback(daemon.stop)
            lab.ces[ce] = daemon.start()
            # bfdd brings zebra, and zebra next-hop tracking: the other CE's MSEE is not reachable from here.
            daemon.vtysh("configure terminal", f"router bgp {CE_ASN}", "address-family ipv4 unicast",
                         f"neighbor {_ibgp(other)} next-hop-self")
        if with_gateway:
            lab.start_node("gateway", "gateway", {
                "expressroute": data, "vnet": "hub", "netns": ns["gw"].name,
                "internet": [INTERNET_EDGE[0]],
                "neighbors": [
                    {"address": GATEWAY_LINKS[s][0], "circuit": "contoso", "side": s,
                     "local_address": GATEWAY_LINKS[s][1]}
                    for s in ("primary", "secondary")
                ],
            })
        yield lab


def _ibgp(ce: str) -> str:
    return "10.0.12.1" if ce == "ce1" else "10.0.12.2"


def _wire(ns: dict[str, Netns]) -> None:
    for ce, side, m_private, m_microsoft in _CIRCUIT_SIDES:
        veth(ns[ce], "eth1.100", ns[m_private], "eth1.100")
        add_address(ns[ce], "eth1.100", f"{MSEE_PRIVATE[side][0]}/30")
        add_address(ns[m_private], "eth1.100", f"{MSEE_PRIVATE[side][1]}/30")
        veth(ns[ce], "eth1.200", ns[m_microsoft], "eth1.200")
        add_address(ns[ce], "eth1.200", f"{MSEE_MICROSOFT[side][0]}/30")
        add_address(ns[m_microsoft], "eth1.200", f"{MSEE_MICROSOFT[side][1]}/30")
        veth(ns[m_private], "gw", ns["gw"], f"msee-{side[:3]}")
        add_address(ns[m_private], "gw", f"{GATEWAY_LINKS[side][0]}/30")
        add_address(ns["gw"], f"msee-{side[:3]}", f"{GATEWAY_LINKS[side][1]}/30")
        add_address(ns[ce], "lo", f"{CE_LOOPBACKS[ce]}/32")
    veth(ns["ce1"], "ibgp", ns["ce2"], "ibgp")
    add_address(ns["ce1"], "ibgp", "10.0.12.1/30")
    add_address(ns["ce2"], "ibgp", "10.0.12.2/30")
    veth(ns["gw"], "inet", ns["inet"], "gw")
    add_address(ns["inet"], "gw", f"{INTERNET_EDGE[0]}/30")
    add_address(ns["gw"], "inet", f"{INTERNET_EDGE[1]}/30")
    add_address(ns["gw"], "lo", "10.100.1.1/24")


def eventually(predicate: Any, what: str, timeout: float = 20.0) -> Any:
    return wait_until(predicate, timeout, what, interval=0.1)

