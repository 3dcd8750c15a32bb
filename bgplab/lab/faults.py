"""Faults, played on a running lab: what breaks in a cutover, on demand, and how it heals.

| kind | target | what happens (restore undoes it) |
| --- | --- | --- |
| `link` | a physical link (`ce1:eth1`, either end) | carrier loss at both ends, every peering on it |
| `cut` | a physical link | silent cut: every frame dropped both ways, carrier up (what BFD is for) |
| `node` | a node | its processes SIGKILLed (a power loss), its links down; restore restarts it |
| `daemon` | a CE router | its BGP daemon killed (FRR: bgpd); restore restarts it with its config |
| `drain` | an MSEE | maintenance drain: 12076 prepended on everything it advertises |
| `maintenance` | a VNet gateway (`--instance`) | one gateway instance's sessions with every MSEE end (Cease) |
| `peering` | a circuit (`--peering`) | the peering disabled: its sessions on both MSEEs down |
| `filter` | a circuit | its Microsoft-peering route filter detached (restore: the configured one back) |
| `bgp` | an MSEE (`--peering`, `--mode`) | far end: `silent` (hold expires), `notification`, `withdraw-all` |
| `impair` | a physical link | loss %, rate; delay and jitter only where the kernel has netem |

Every fault is journaled in the lab's state (so `status` shows what is in force and `restore`
can undo it from another shell) and stamped with the monotonic time it took effect, which the
scenario engine lines up with route events and probe loss windows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bgplab.expressroute import control
from bgplab.lab import system
from bgplab.lab.kinds import NotSupported, RunningNode
from bgplab.lab.lab import Lab, LabError
from bgplab.lab.plan import Endpoint, Link

KINDS = ("link", "cut", "node", "daemon", "drain", "maintenance", "peering", "filter", "bgp", "impair")
BGP_MODES = ("silent", "notification", "withdraw-all")
_TABLE = "bgplab_fault"


class FaultError(LabError):
    """A fault that cannot be applied (unknown target, unsupported here); says what would work."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()) if k in ("peering", "mode", "instance"))
        return f"{self.kind}:{self.target}" + (f"[{extra}]" if extra else "")


@dataclass(frozen=True, slots=True)
class Applied:
    fault: Fault
    time: float
    """time.monotonic() when the fault took effect."""
    action: str
    """"fail" or "restore"."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.fault.kind, "target": self.fault.target, "options": self.fault.options,
                "action": self.action, "time": round(self.time, 6)}


class Faults:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._handlers: dict[str, tuple[Callable[[Fault], None], Callable[[Fault], None]]] = {
            "link": (self._fail_link, self._restore_link),
            "cut": (self._fail_cut, self._restore_cut),
            "node": (self._fail_node, self._restore_node),
            "daemon": (self._fail_daemon, self._restore_daemon),
            "drain": (self._fail_drain, self._restore_drain),
            "maintenance": (self._fail_maintenance, self._restore_maintenance),
            "peering": (self._fail_peering, self._restore_peering),
            "filter": (self._fail_filter, self._restore_filter),
            "bgp": (self._fail_bgp, self._restore_bgp),
            "impair": (self._fail_impair, self._restore_impair),
        }
        assert tuple(self._handlers) == KINDS

    # ---- bookkeeping

    def active(self) -> list[Fault]:
        """Faults in force: applied and not restored, from the lab's journal."""
        live: dict[str, Fault] = {}
        for entry in self.lab.state.entries("fault"):
            fault = Fault(entry["kind"], entry["target"], entry.get("options", {}))
            if entry["action"] == "fail":
                live[fault.key()] = fault
            else:
                live.pop(fault.key(), None)
        return list(live.values())

    def _record(self, fault: Fault, action: str) -> Applied:
        applied = Applied(fault, time.monotonic(), action)
        self.lab.state.record("fault", **applied.to_json())
        return applied

    # ---- entry points

    def fail(self, fault: Fault) -> Applied:
        self._handler(fault)[0](fault)
        return self._record(fault, "fail")

    def restore(self, fault: Fault) -> Applied:
        self._handler(fault)[1](fault)
        return self._record(fault, "restore")

    def _handler(self, fault: Fault) -> tuple[Callable[[Fault], None], Callable[[Fault], None]]:
        if fault.kind not in self._handlers:
            raise FaultError(f"fault {fault.kind!r}: expected one of {', '.join(KINDS)}")
        return self._handlers[fault.kind]

    # ---- links

    def _links(self, target: str) -> tuple[str, list[Link]]:
        """The links of one fibre, named by its physical name or either end (`node:interface`)."""
        plan = self.lab.plan
        by_physical = [link for link in plan.links if link.physical == target]
        if by_physical:
            return target, by_physical
        node, _, interface = target.partition(":")
        for link in plan.links:
            for end in (link.a, link.b):
                if plan.namespaces[end.namespace].node == node and end.interface.split(".")[0] == interface:
                    return link.physical, [x for x in plan.links if x.physical == link.physical]
        known = ", ".join(sorted({link.physical for link in plan.links}))
        raise FaultError(f"no link {target!r} in lab {plan.name}; physical links: {known}")

    def _fail_link(self, fault: Fault) -> None:
        physical, _ = self._links(fault.target)
        self.lab.runtime.set_physical(physical, False)

    def _restore_link(self, fault: Fault) -> None:
        physical, _ = self._links(fault.target)
        self.lab.runtime.set_physical(physical, True)

    def _ends(self, target: str) -> list[Endpoint]:
        _, links = self._links(target)
        return [end for link in links for end in (link.a, link.b)]

    def _nft(self, end: Endpoint, script: str | None, hooks: tuple[str, ...] = ("ingress", "egress")) -> None:
        """Replace (or with None remove) our fault table on one interface, on the device's hooks."""
        table = f"{_TABLE}_{re.sub(r'[^A-Za-z0-9_]', '_', end.interface)}"
        self.lab.runtime.net_exec(end.namespace, ["nft", "delete", "table", "netdev", table], check=False)
        if script is None:
            return
        dev = f'"{end.interface}"'
        chains = "".join(f" chain {hook} {{ type filter hook {hook} device {dev} priority -500; {script} }}\n"
                         for hook in hooks)
        text = f"table netdev {table} {{\n{chains}}}\n"
        self.lab.runtime.net_exec(end.namespace, ["nft", "-f", "-"], input=text)

    def _fail_cut(self, fault: Fault) -> None:
        for end in self._ends(fault.target):
            self._nft(end, "drop;")

    def _restore_cut(self, fault: Fault) -> None:
        for end in self._ends(fault.target):
            self._nft(end, None)

    def _fail_impair(self, fault: Fault) -> None:
        options = fault.options
        unknown = set(options) - {"loss", "rate", "delay", "jitter"}
        if unknown or not options:
            raise FaultError(f"impair {fault.target}: give loss (%), rate (Mbps), delay (ms), jitter (ms); "
                             f"not {', '.join(sorted(unknown)) or 'nothing'}")
        if options.get("delay") or options.get("jitter"):
            raise FaultError("delay and jitter need the netem qdisc, which this kernel does not have; "
                             "loss and rate work everywhere (the impairment was not applied)")
        loss = float(options.get("loss", 0))
        if not 0 <= loss <= 100:
            raise FaultError(f"impair {fault.target}: loss {loss}: expected a percentage 0-100")
        for end in self._ends(fault.target):
            # Each direction loses `loss` percent, at the egress of each end.
            drop = "drop;" if loss >= 100 else f"numgen random mod 10000 < {int(loss * 100)} drop;"
            self._nft(end, drop if loss else None, hooks=("egress",))
            rate = options.get("rate")
            if rate:
                self.lab.runtime.net_exec(end.namespace, ["tc", "qdisc", "replace", "dev", end.interface, "root", "tbf",
                                                      "rate", f"{float(rate)}mbit", "burst", "32kb",
                                                      "latency", "50ms"])

    def _restore_impair(self, fault: Fault) -> None:
        _, links = self._links(fault.target)
        rates = {(e.namespace, e.interface): link.rate_mbps for link in links for e in (link.a, link.b)}
        for end in self._ends(fault.target):
            self._nft(end, None)
            rate = rates[(end.namespace, end.interface)]
            if rate:  # back to the circuit's own shaping
                self.lab.runtime.net_exec(end.namespace, ["tc", "qdisc", "replace", "dev", end.interface, "root", "tbf",
                                                      "rate", f"{rate}mbit", "burst", f"{max(32, rate // 8)}kb",
                                                      "latency", "50ms"])
            else:
                self.lab.runtime.net_exec(end.namespace, ["tc", "qdisc", "del", "dev", end.interface, "root"],
                                      check=False)

    # ---- nodes and daemons

    def _node_links(self, node: str) -> list[str]:
        plan = self.lab.plan
        return sorted({link.physical for link in plan.links for end in (link.a, link.b)
                       if plan.namespaces[end.namespace].node == node})

    def _fail_node(self, fault: Fault) -> None:
        refusal = self.lab.node(fault.target).no_power_loss()  # an unknown node raises, naming the ones there are
        if refusal:
            raise FaultError(refusal)
        self._kill(fault.target)
        for physical in self._node_links(fault.target):
            self.lab.runtime.set_physical(physical, False)

    def _kill(self, node: str) -> None:
        """SIGKILL every process of the node, as a power loss would end them (no Cease, no cleanup)."""
        pids = [e["pid"] for e in self.lab.state.entries("process") if e["node"] == node
                and system.start_time(e["pid"]) == e.get("start")]
        system.kill_pids(pids, timeout=2.0, term=False)
        for key in self.lab.plan.nodes[node].namespaces:  # and whatever else runs in it
            system.kill_pids(self.lab.runtime.processes(key), timeout=2.0, term=False)

    def _restore_node(self, fault: Fault) -> None:
        for physical in self._node_links(fault.target):
            self.lab.runtime.set_physical(physical, True)
        self.lab.node(fault.target).start()

    def _fail_daemon(self, fault: Fault) -> None:
        try:
            self.lab.node(fault.target).kill_daemon()
        except NotSupported:
            raise FaultError(f"daemon faults are for CE routers; {fault.target} is a "
                             f"{self.lab.plan.nodes[fault.target].kind} (try `node`)") from None

    def _restore_daemon(self, fault: Fault) -> None:
        try:
            self.lab.node(fault.target).restart_daemon()
        except NotSupported as exc:
            raise FaultError(str(exc)) from None

    # ---- ExpressRoute operations (our nodes)

    def _msee(self, name: str) -> RunningNode:
        handle = self.lab.node(name)
        if self.lab.plan.nodes[name].kind != "msee":
            msees = ", ".join(n for n, v in sorted(self.lab.plan.nodes.items()) if v.kind == "msee")
            raise FaultError(f"{name} is not an MSEE; MSEEs: {msees or 'none'}")
        return handle

    def _call(self, node: RunningNode, command: str, **args: Any) -> None:
        try:
            node.call(command, **args)
        except control.ControlError as exc:
            raise FaultError(f"{node.node.name}: {exc}") from None

    def _fail_drain(self, fault: Fault) -> None:
        self._call(self._msee(fault.target), "drain", on=True)

    def _restore_drain(self, fault: Fault) -> None:
        self._call(self._msee(fault.target), "drain", on=False)

    def _gateway(self, name: str) -> RunningNode:
        if name not in self.lab.plan.nodes or self.lab.plan.nodes[name].kind != "gateway":
            gateways = ", ".join(n for n, v in sorted(self.lab.plan.nodes.items()) if v.kind == "gateway")
            raise FaultError(f"{name} is not a VNet gateway; gateways: {gateways or 'none'}")
        return self.lab.node(name)

    def _maintenance(self, fault: Fault, on: bool) -> None:
        """The instance ends its sessions and moves its routes first (the gateway node does both
        before it answers); then it goes as a rebooting instance does: its addresses leave the
        gateway's links, so a packet still sent to it is lost. Restore: back in the other order."""
        instance = fault.options.get("instance", 0)
        if not isinstance(instance, int) or isinstance(instance, bool):
            raise FaultError(f"maintenance {fault.target}: instance {instance!r}: expected 0 or 1")
        gateway = self._gateway(fault.target)
        plan = self.lab.plan
        own = {n["local_address"] for n in plan.nodes[fault.target].spec.get("neighbors", [])
               if n.get("instance", 0) == instance}
        addresses = [(iface, cidr) for iface, cidr in plan.namespaces[fault.target].addresses
                     if cidr.split("/")[0] in own]
        def addresses_now(verb: str) -> None:
            lines = [f"address {verb} {cidr} dev {iface}" + (" nodad" if ":" in cidr and verb == "add" else "")
                     for iface, cidr in addresses]
            self.lab.runtime.net_exec(fault.target, ["ip", "-batch", "-"], input="\n".join(lines) + "\n")

        if on:
            self._call(gateway, "maintenance", instance=instance, on=True)
            addresses_now("del")
        else:
            addresses_now("add")
            self._call(gateway, "maintenance", instance=instance, on=False)

    def _fail_maintenance(self, fault: Fault) -> None:
        self._maintenance(fault, True)

    def _restore_maintenance(self, fault: Fault) -> None:
        self._maintenance(fault, False)

    def _circuit_msees(self, circuit: str) -> list[RunningNode]:
        circuits = self.lab.plan.circuits
        if circuit not in circuits:
            known = ", ".join(sorted(circuits)) or "none"
            raise FaultError(f"no circuit {circuit!r} in lab {self.lab.plan.name}; circuits: {known}")
        return [self._msee(n) for n in circuits[circuit]]

    def _fail_peering(self, fault: Fault) -> None:
        # Azure disables a peering on both MSEEs at once (reference section 1).
        for msee in self._circuit_msees(fault.target):
            self._call(msee, "peering", peering=fault.options.get("peering", "private"), enabled=False)

    def _restore_peering(self, fault: Fault) -> None:
        for msee in self._circuit_msees(fault.target):
            self._call(msee, "peering", peering=fault.options.get("peering", "private"), enabled=True)

    def _fail_filter(self, fault: Fault) -> None:
        for msee in self._circuit_msees(fault.target):
            self._call(msee, "route-filter", name=None)

    def _restore_filter(self, fault: Fault) -> None:
        model = self.lab.plan.expressroute or {}
        peering = model.get("circuits", {}).get(fault.target, {}).get("peerings", {}).get("microsoft", {})
        name = peering.get("route_filter")
        if name is None:
            raise FaultError(f"circuit {fault.target} has no route filter configured on Microsoft peering")
        for msee in self._circuit_msees(fault.target):
            self._call(msee, "route-filter", name=name)

    def _bgp(self, fault: Fault, on: bool) -> None:
        mode = fault.options.get("mode", "silent")
        if mode not in BGP_MODES:
            raise FaultError(f"bgp fault mode {mode!r}: expected one of {', '.join(BGP_MODES)}")
        args: dict[str, Any] = {"peering": fault.options.get("peering", "private"), "kind": mode, "on": on}
        if mode == "notification":
            if not on:
                return  # a NOTIFICATION is an event, not a state: the session restarts by itself
            args.update(code=int(fault.options.get("code", 6)), subcode=int(fault.options.get("subcode", 2)))
        self._call(self._msee(fault.target), "fault", **args)

    def _fail_bgp(self, fault: Fault) -> None:
        self._bgp(fault, True)

    def _restore_bgp(self, fault: Fault) -> None:
        self._bgp(fault, False)
