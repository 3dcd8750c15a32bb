"""The netns runtime: a LabPlan made real as network namespaces, veth pairs, addresses and routes.

Every namespace is journaled in the lab's state before it is created, so whatever happens next
`bgplab down` finds it; links, addresses, bridges, routes and shaping all live inside the
namespaces and go with them.

This kernel has no 802.1Q devices: a peering's sub-interface is its own veth pair, named as the
sub-interface would be ("eth1.100"), and the links of one fibre (`Link.physical`) fail together
through `set_physical`. Circuit bandwidth is shaped with tbf at both ends of each peering's link
(per peering, so peerings do not share the circuit's rate as they would on one port).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bgplab import programs
from bgplab.bgp.sockets import netns_path
from bgplab.lab import system
from bgplab.lab.plan import LabPlan, Link

if TYPE_CHECKING:
    from bgplab.lab.state import LabState

Redirect = int | IO[Any] | None
"""Where a child's stdout or stderr goes, as `subprocess.Popen` accepts it."""

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


# ---- the primitives, by real namespace name (the lab's runtime below and bgplab.testing's
# namespaces both stand on these)

def namespace_exists(name: str) -> bool:
    return Path(netns_path(name)).exists()


def add_namespace(name: str) -> None:
    system.run(["ip", "netns", "add", name])


def delete_namespace(name: str) -> None:
    system.run(["ip", "netns", "del", name], check=False)


def exec_argv(name: str, args: Sequence[str]) -> list[str]:
    """The host command line that runs args inside a namespace: `ip netns exec` execs the program
    in place, so a process started with it has the program's own pid."""
    return ["ip", "netns", "exec", name, *args]


def ip_batch(name: str, commands: Sequence[str]) -> None:
    """`ip -batch` in a namespace: one process for many changes; the error names the line."""
    if commands:
        system.run(["ip", "-n", name, "-batch", "-"], input="\n".join(commands) + "\n")


def add_veth(a: str, a_if: str, b: str, b_if: str) -> None:
    """A veth pair with each end created straight in its namespace (the same name may be used on
    both sides, and nothing is ever left in the host's namespace)."""
    system.run(["ip", "link", "add", "name", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b])


def namespace_pids(name: str) -> list[int]:
    """Every process inside a namespace, whoever started it."""
    out = system.run(["ip", "netns", "pids", name], check=False).stdout
    return [int(pid) for pid in out.split()]


def remove_namespace(entry: Mapping[str, Any]) -> tuple[bool, int]:
    """Undo a journaled namespace: end what still runs in it, then delete it, which takes its
    links, addresses, routes, bridges and nft tables with it."""
    name = str(entry["name"])
    if not namespace_exists(name):
        return False, 0
    leftovers = namespace_pids(name)
    if leftovers:
        system.kill_pids(leftovers)
    delete_namespace(name)
    return True, len(leftovers)


class NetnsRuntime:
    def __init__(self, plan: LabPlan, state: LabState) -> None:
        self.plan = plan
        self.state = state

    def ns(self, key: str) -> str:
        """The real namespace name of a plan key: the lab name keeps two labs apart."""
        return f"bl-{self.plan.name}-{_SAFE.sub('_', key)}"

    # ---- building

    def build(self) -> None:
        self.create_namespaces()
        self.create_links()
        self.configure()

    def create_namespaces(self) -> None:
        for key in self.plan.namespaces:
            add_namespace(self.claim(key))
            self.prepare(key)

    def claim(self, key: str) -> str:
        """A namespace's name, journaled before anything of it exists; refused if it is taken."""
        name = self.ns(key)
        if namespace_exists(name):
            raise RuntimeError(f"namespace {name} already exists: is lab {self.plan.name} up? (bgplab down it)")
        self.state.record("namespace", name=name, key=key)
        return name

    def prepare(self, key: str) -> None:
        """A new namespace's loopback and sysctls, before any link."""
        forwarding = "1" if self.plan.namespaces[key].forwarding else "0"
        self.batch(key, ["link set lo up"])
        self.sysctl(key, {
            "net.ipv4.ip_forward": forwarding,
            "net.ipv6.conf.all.forwarding": forwarding,
            # Addresses survive link down/up (a fault heals by itself) and are usable at once.
            "net.ipv6.conf.all.keep_addr_on_down": "1",
            "net.ipv6.conf.default.accept_dad": "0",
            "net.ipv6.conf.all.accept_dad": "0",
            # Docker disables IPv6 in a container it gives no network; a lab's links carry it.
            "net.ipv6.conf.all.disable_ipv6": "0",
            "net.ipv6.conf.default.disable_ipv6": "0",
            "net.ipv6.conf.lo.disable_ipv6": "0",
        })

    def create_links(self) -> None:
        for link in self.plan.links:
            add_veth(self.ns(link.a.namespace), link.a.interface, self.ns(link.b.namespace), link.b.interface)

    def configure(self) -> None:
        shaped = {(e.namespace, e.interface): link.rate_mbps for link in self.plan.links for e in (link.a, link.b)
                  if link.rate_mbps}
        for key, spec in self.plan.namespaces.items():
            interfaces = [e.interface for link in self.plan.links for e in (link.a, link.b) if e.namespace == key]
            commands = [f"link add {name} type bridge" for name, _ in spec.bridges]
            commands += [f"link set {member} master {name}" for name, members in spec.bridges for member in members]
            commands += [f"link set {name} up" for name, _ in spec.bridges]
            commands += [f"link set {ifname} up" for ifname in interfaces]
            commands += [f"address add {cidr} dev {ifname}" + (" nodad" if ":" in cidr else "")
                         for ifname, cidr in spec.addresses]
            # No `-6` here: `ip -batch` takes no options per line, and the prefix tells ip the family.
            commands += [f"route add {prefix} via {via}" for prefix, via in spec.routes]
            commands += [f"route add local {prefix} dev lo" for prefix in spec.local]
            self.batch(key, commands)
            if spec.nft:
                self.net_exec(key, ["nft", "-f", "-"], input=spec.nft)
            for ifname in interfaces:
                rate = shaped.get((key, ifname))
                if rate:
                    self.net_exec(key, ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", f"{rate}mbit",
                                    "burst", f"{max(32, rate // 8)}kb", "latency", "50ms"])

    # ---- operating

    def batch(self, key: str, commands: Sequence[str]) -> None:
        ip_batch(self.ns(key), commands)

    def sysctl(self, key: str, values: dict[str, str]) -> None:
        self.net_exec(key, ["sysctl", "-qw", *[f"{k}={v}" for k, v in values.items()]])

    def netns_path(self, key: str) -> str:
        return netns_path(self.ns(key))

    def exited(self, key: str) -> str | None:
        """Why a container's init is gone (the docker runtime's); a namespace has none."""
        return None

    def management_address(self, key: str) -> str | None:
        """A node's address on the management network: the docker runtime's alone."""
        return None

    def exec_argv(self, key: str, args: Sequence[str]) -> list[str]:
        return exec_argv(self.ns(key), args)

    def exec(self, key: str, args: Sequence[str], check: bool = True, timeout: float = 60.0, *,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        return system.run(self.exec_argv(key, args), check, input=input, timeout=timeout)

    def net_exec(self, key: str, args: Sequence[str], check: bool = True, timeout: float = 60.0, *,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        """The host's programs are the node's: the same as `exec`."""
        return system.run(exec_argv(self.ns(key), args), check, input=input, timeout=timeout)

    def program(self, name: str) -> str:
        return sys.executable if name == "python3" else programs.program(name)

    def processes(self, key: str) -> list[int]:
        return namespace_pids(self.ns(key))

    def popen(self, key: str | None, args: Sequence[str], *, node: str, what: str,
              stdout: Redirect = None, stderr: Redirect = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        argv = list(args) if key is None else self.exec_argv(key, args)
        return self.spawn(argv, node=node, what=what, stdout=stdout, stderr=stderr, cwd=cwd)

    def net_popen(self, key: str, args: Sequence[str], *, node: str, what: str,
                  stdout: Redirect = None, stderr: Redirect = None) -> subprocess.Popen[bytes]:
        return self.spawn(exec_argv(self.ns(key), args), node=node, what=what, stdout=stdout, stderr=stderr)

    def spawn(self, argv: Sequence[str], *, node: str, what: str, stdout: Redirect, stderr: Redirect,
              cwd: Path | None = None, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a host command line in its own session, journaled before anything else can fail."""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
                                start_new_session=True)
        self.state.record("process", pid=proc.pid, start=system.start_time(proc.pid), node=node, what=what)
        return proc

    def set_physical(self, physical: str, up: bool) -> list[Link]:
        """Carrier loss on one fibre: every link of it down (or up) at both ends."""
        links = [link for link in self.plan.links if link.physical == physical]
        if not links:
            known = sorted({link.physical for link in self.plan.links})
            raise ValueError(f"no link {physical!r} in lab {self.plan.name}; links: {', '.join(known)}")
        for link in links:
            for end in (link.a, link.b):
                self.batch(end.namespace, [f"link set {end.interface} {'up' if up else 'down'}"])
            if up:
                for end in (link.a, link.b):
                    self._restore_routes(end.namespace, end.interface)
        return links

    def _restore_routes(self, key: str, interface: str) -> None:
        """A link set down takes the static routes through it with it (a host's default route): put
        back the namespace's own that go through this interface, as a repaired fibre would find them."""
        spec = self.plan.namespaces[key]
        subnets = [ipaddress.ip_interface(cidr).network for ifname, cidr in spec.addresses if ifname == interface]
        self.batch(key, [f"route replace {prefix} via {via}" for prefix, via in spec.routes
                         if any(ipaddress.ip_address(via) in subnet for subnet in subnets)])

