"""Network namespaces, veth links and link faults for tests, on the lab runtime's primitives.

A test owns its namespaces outright (a `with` block), where a lab journals them for `bgplab
down`; creating, entering and deleting one is the netns runtime's own code either way.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import subprocess
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from bgplab.bgp.sockets import netns_path
from bgplab.lab.runtime import netns as runtime
from bgplab.lab.runtime.netns import Redirect
from bgplab.lab.system import CommandError, kill_pids, run

IFNAME_MAX = 15  # IFNAMSIZ - 1: the kernel refuses longer interface names.
__all__ = ["IFNAME_MAX", "CommandError", "LinkedPair", "Netns", "add_address", "drop_all", "run", "set_link", "veth"]


class Netns:
    """A network namespace that owns the processes started in it.

    Leaving the context kills those processes (SIGTERM, then SIGKILL after `kill_timeout`), then
    any other process still inside the namespace (such as a daemon's own helper children), then
    deletes the namespace, so that a failed test never leaks a daemon into the next one.
    """

    def __init__(self, prefix: str = "bl", *, kill_timeout: float = 3.0) -> None:
        if not 0 < len(prefix) <= 7:
            raise ValueError("prefix must be 1-7 characters so names stay short and readable")
        self.name = f"{prefix}{secrets.token_hex(4)}"
        self.path = Path(netns_path(self.name))
        self.kill_timeout = kill_timeout
        self._procs: list[subprocess.Popen[bytes]] = []
        self._created = False

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"

    def create(self) -> Self:
        runtime.add_namespace(self.name)
        self._created = True
        try:
            runtime.ip_batch(self.name, ["link set lo up"])
            # Keep IPv6 addresses across link down/up, as IPv4 ones are, so a link fault heals.
            self.run(["sysctl", "-qw", "net.ipv6.conf.all.keep_addr_on_down=1"])
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill everything in the namespace and delete it; safe to call more than once."""
        for proc in list(self._procs):
            self.terminate(proc)
        if not self._created:
            return
        self._kill_pids(self.pids())
        runtime.delete_namespace(self.name)
        self._created = False

    def __enter__(self) -> Self:
        return self.create()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def exec_args(self, args: Sequence[str]) -> list[str]:
        """The command line that runs args inside this namespace."""
        return runtime.exec_argv(self.name, args)

    def run(self, args: Sequence[str], check: bool = True, *, input: str | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return run(self.exec_args(args), check, input=input, timeout=timeout)

    def popen(self, args: Sequence[str], stdout: Redirect = None, stderr: Redirect = None, *,
              env: dict[str, str] | None = None, cwd: str | Path | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running process in the namespace; it is killed when the namespace closes.

        The returned pid is the program itself (`runtime.exec_argv`).
        """
        proc = subprocess.Popen(self.exec_args(args), stdin=subprocess.DEVNULL, stdout=stdout,
                                stderr=stderr, env=env, cwd=cwd, start_new_session=True)
        self._procs.append(proc)
        return proc

    def terminate(self, proc: subprocess.Popen[bytes], timeout: float | None = None) -> int:
        """Stop one process started by popen() and return its exit status."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.kill_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self._procs:
            self._procs.remove(proc)
        return proc.returncode

    def pids(self) -> list[int]:
        """Every process currently inside the namespace, whoever started it."""
        return runtime.namespace_pids(self.name)

    def _kill_pids(self, pids: list[int]) -> None:
        kill_pids(pids, self.kill_timeout)


def _check_ifname(ifname: str) -> None:
    if not 0 < len(ifname) <= IFNAME_MAX:
        raise ValueError(f"interface name {ifname!r} must be 1-{IFNAME_MAX} characters")


def veth(a: Netns, a_if: str, b: Netns, b_if: str) -> None:
    """Join two namespaces (or one namespace to itself) with a veth pair, both ends up.

    Both ends are created directly in their namespaces, so the same name may be used on both sides
    and nothing is ever left behind in the root namespace.
    """
    _check_ifname(a_if)
    _check_ifname(b_if)
    runtime.add_veth(a.name, a_if, b.name, b_if)
    set_link(a, a_if, True)
    set_link(b, b_if, True)


def add_address(ns: Netns, ifname: str, cidr: str) -> None:
    """Add an IPv4 or IPv6 address; IPv6 skips duplicate address detection so it works at once."""
    iface = ipaddress.ip_interface(cidr)
    extra = ["nodad"] if iface.version == 6 else []
    runtime.ip_batch(ns.name, [" ".join(["address", "add", str(iface), "dev", ifname, *extra])])


def set_link(ns: Netns, ifname: str, up: bool) -> None:
    """Carrier-style fault: the peer's end goes down too (veth), as with a pulled cable."""
    runtime.ip_batch(ns.name, [f"link set {ifname} {'up' if up else 'down'}"])


def _cut_table(ifname: str) -> str:
    return "bgplab_cut_" + re.sub(r"[^A-Za-z0-9_]", "_", ifname)


def drop_all(ns: Netns, ifname: str, on: bool) -> None:
    """Silently cut an interface: drop every frame both ways while the carrier stays up.

    This is the failure BFD and hold timers exist for: no RST, no FIN, no link event. A netdev
    table (ingress and egress hooks, kernel 5.16+) drops ARP and NDP too, as a real cut would;
    older kernels fall back to an inet table on the IP input/output/forward hooks. Idempotent.
    """
    table = _cut_table(ifname)
    for family in ("netdev", "inet"):
        ns.run(["nft", "delete", "table", family, table], check=False)
    if not on:
        return
    dev = f'"{ifname}"'
    netdev = (f"table netdev {table} {{\n"
              f" chain ingress {{ type filter hook ingress device {dev} priority -500; policy drop; }}\n"
              f" chain egress {{ type filter hook egress device {dev} priority -500; policy drop; }}\n"
              "}\n")
    if ns.run(["nft", "-f", "-"], check=False, input=netdev).returncode == 0:
        return
    inet = (f"table inet {table} {{\n"
            f" chain input {{ type filter hook input priority -300; iifname {dev} drop; }}\n"
            f" chain output {{ type filter hook output priority -300; oifname {dev} drop; }}\n"
            f" chain forward {{ type filter hook forward priority -300; iifname {dev} drop; oifname {dev} drop; }}\n"
            "}\n")
    ns.run(["nft", "-f", "-"], input=inet)


class LinkedPair:
    """Two namespaces joined by one veth, numbered from the documentation ranges.

    This is the setup nearly every interop test starts from. Side a holds the `.1` addresses and
    side b the `.2` ones, on an interface called `ifname` at both ends. Everything is torn down on
    leaving the context, including when the with-block raises or creation fails half way.
    """

    A4, B4, PREFIX4 = "192.0.2.1", "192.0.2.2", 24
    A6, B6, PREFIX6 = "2001:db8::1", "2001:db8::2", 64

    def __init__(self, prefix: str = "bl", ifname: str = "eth1") -> None:
        self.a = Netns(prefix)
        self.b = Netns(prefix)
        self.ifname = ifname
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        with ExitStack() as stack:
            stack.enter_context(self.a)
            stack.enter_context(self.b)
            veth(self.a, self.ifname, self.b, self.ifname)
            for ns, v4, v6 in ((self.a, self.A4, self.A6), (self.b, self.B4, self.B6)):
                add_address(ns, self.ifname, f"{v4}/{self.PREFIX4}")
                add_address(ns, self.ifname, f"{v6}/{self.PREFIX6}")
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()
