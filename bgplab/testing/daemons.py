"""Real BGP daemons (FRR, BIRD, GoBGP, ExaBGP) run inside a Netns from one common spec.

Every daemon gets a private working directory (config, pid file, control socket, logs) so that any
number of instances, and any system-wide instance, can run side by side. They all answer the same
questions (session state, received routes) in the same normalised form, so a test or a benchmark
can swap one peer for another without changing its assertions.

Normalised forms, whoever the daemon is:

* neighbor states are RFC 4271 names in lower case (`STATES`);
* communities are "ASN:VALUE" in decimal, well-known ones included ("65535:65281", never
  "no-export"), sorted numerically without duplicates; large communities are "A:B:C", likewise;
* `Route.as_path` is the path *before* the originating daemon prepends its own ASN, so the peer of
  an eBGP session receives `(origin_asn, *route.as_path)` and an iBGP peer receives `route.as_path`;
* `Route.local_pref` only reaches iBGP peers (RFC 4271 §5.1.5); every daemon drops it on eBGP.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from bgplab import programs
from bgplab.lab.kinds.frr import logged_notifications
from bgplab.testing.netns import Netns, run

STATES = ("idle", "connect", "active", "opensent", "openconfirm", "established")
FAMILIES = ("ipv4", "ipv6")
KEEP_WORKDIR_ENV = "BGPLAB_KEEP_WORKDIR"
"""Set to 1 to keep every daemon's working directory after stop(), for post-mortem debugging."""

_T = TypeVar("_T")
_COMMUNITY = re.compile(r"^\d+:\d+$")
_LARGE_COMMUNITY = re.compile(r"^\d+:\d+:\d+$")


class DaemonError(RuntimeError):
    """A daemon failed to start or to answer; the message carries the tail of its log."""


def wait_until(predicate: Callable[[], _T | None], timeout: float, what: str, *,
               interval: float = 0.2) -> _T:
    """Poll predicate until it returns something truthy and return that; raise TimeoutError if not.

    Interop tests only ever converge "eventually"; polling with a deadline is the honest way to
    say so, and the message names what never happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def family_of(prefix: str) -> str:
    return "ipv4" if ipaddress.ip_network(prefix).version == 4 else "ipv6"


def _canonical_address(address: str) -> str:
    return str(ipaddress.ip_address(address))


def _sorted_communities(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=lambda c: tuple(int(x) for x in c.split(":"))))


@dataclass(frozen=True)
class Neighbor:
    """One configured peer. `port` is the peer's port, for peers that do not listen on 179."""

    address: str
    asn: int
    passive: bool = False
    md5: str | None = None
    hold_time: int = 9
    keepalive: int = 3
    families: tuple[str, ...] = FAMILIES
    port: int = 179
    ttl_security: bool = False
    """GTSM (RFC 5082) for a directly connected peer; FRR and BIRD only."""
    bfd: tuple[int, int, int] | None = None
    """Single-hop BFD for this session: (desired min TX ms, required min RX ms, multiplier); FRR only."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", _canonical_address(self.address))
        if not self.families or set(self.families) - set(FAMILIES):
            raise ValueError(f"families must be a non-empty subset of {FAMILIES}")
        if self.bfd is not None:
            tx, rx, mult = self.bfd
            if not (10 <= tx <= 60000 and 10 <= rx <= 60000 and 2 <= mult <= 255):
                raise ValueError(f"bfd {self.bfd}: (tx ms 10-60000, rx ms 10-60000, multiplier 2-255)")


@dataclass(frozen=True)
class Route:
    """A route a daemon originates. See the module docstring for `as_path` and `local_pref`.

    `next_hop=None` means the daemon's own address on each session (next-hop-self).
    """

    prefix: str
    next_hop: str | None = None
    as_path: tuple[int, ...] = ()
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", str(ipaddress.ip_network(self.prefix)))
        if self.next_hop is not None:
            object.__setattr__(self, "next_hop", _canonical_address(self.next_hop))
        if not all(_COMMUNITY.match(c) for c in self.communities):
            raise ValueError(f"communities must be numeric 'A:B': {self.communities}")
        if not all(_LARGE_COMMUNITY.match(c) for c in self.large_communities):
            raise ValueError(f"large communities must be numeric 'A:B:C': {self.large_communities}")

    @property
    def family(self) -> str:
        return family_of(self.prefix)


@dataclass(frozen=True)
class RouteView:
    """A received route in the normalised form of the module docstring; `peer` sent it."""

    prefix: str
    peer: str
    next_hop: str | None
    as_path: tuple[int, ...] = ()
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", str(ipaddress.ip_network(self.prefix)))
        object.__setattr__(self, "peer", _canonical_address(self.peer))
        if self.next_hop is not None:
            object.__setattr__(self, "next_hop", _canonical_address(self.next_hop))
        object.__setattr__(self, "communities", _sorted_communities(self.communities))
        object.__setattr__(self, "large_communities", _sorted_communities(self.large_communities))


class BgpDaemon(ABC):
    """Lifecycle and queries common to every daemon; subclasses supply config, command and parsing.

    The daemon owns `workdir` from start() to stop(). The process is started through the Netns,
    so closing the namespace kills it even if stop() is never reached.
    """

    kind: ClassVar[str]
    start_timeout: ClassVar[float] = 20.0
    supports_ttl_security: ClassVar[bool] = False
    supports_bfd: ClassVar[bool] = False

    def __init__(self, ns: Netns, asn: int, router_id: str, neighbors: Sequence[Neighbor],
                 routes: Sequence[Route] = (), listen_port: int = 179, *,
                 keep_workdir: bool = False) -> None:
        self.ns = ns
        self.asn = asn
        self.router_id = router_id
        self.neighbors = list(neighbors)
        if not self.supports_ttl_security and any(n.ttl_security for n in self.neighbors):
            raise ValueError(f"{type(self).__name__} cannot be configured for GTSM (ttl_security) here")
        if not self.supports_bfd and any(n.bfd for n in self.neighbors):
            raise ValueError(f"{type(self).__name__} cannot be configured for BFD here")
        self.routes: dict[str, Route] = {r.prefix: r for r in routes}
        self.listen_port = listen_port
        self.keep_workdir = keep_workdir or os.environ.get(KEEP_WORKDIR_ENV) == "1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.helpers: dict[str, subprocess.Popen[bytes]] = {}
        """Processes the daemon needs beside the main one (FRR's zebra and bfdd), by program name, in start order."""
        self._workdir: Path | None = None
        self._final_log = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(asn={self.asn}, ns={self.ns.name})"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._workdir

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self.proc is not None:
            raise RuntimeError(f"{self!r} already started")
        self._workdir = Path(tempfile.mkdtemp(prefix=f"bgplab-{self.kind}-"))
        try:
            self._write_config()
            self._start_helpers()
            with open(self.workdir / "stdout.log", "wb") as out:
                self.proc = self.ns.popen(self._command(), stdout=out, stderr=subprocess.STDOUT,
                                          env=self._env(), cwd=self.workdir)
            wait_until(self._ready_or_died, self.start_timeout, f"{self!r} to start")
            self._after_start()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, Exception):
                raise DaemonError(f"{self!r} failed to start: {exc}\n{self._final_log}") from exc
            raise
        return self

    def stop(self) -> None:
        """Kill the daemon and remove its workdir (kept if asked); safe to call more than once."""
        if self.proc is not None:
            self.ns.terminate(self.proc)
            self.proc = None
        for name in reversed(list(self.helpers)):  # the main daemon first, then helpers in reverse order
            self.ns.terminate(self.helpers.pop(name))
        if self._workdir is not None:
            self._final_log = self.log()
            if not self.keep_workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log(self, tail: int = 200) -> str:
        """The last lines of every log the daemon writes, for failure messages."""
        if self._workdir is None:
            return self._final_log
        parts = []
        for path in self._log_files():
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"==> {path.name} <==\n" + "\n".join(lines))
        return "\n".join(parts)

    def _ready_or_died(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise DaemonError(f"{self!r} exited during start-up with status {code}")
        self._check_helpers()
        return self._ready()

    def _check_helpers(self) -> None:
        for name, helper in self.helpers.items():
            if helper.poll() is not None:
                raise DaemonError(f"{self!r}: {name} exited during start-up with status {helper.returncode}")

    def _spawn_helper(self, args: list[str]) -> subprocess.Popen[bytes]:
        """Start a helper process in the namespace, its output in workdir/NAME.out; stop() ends it."""
        name = Path(args[0]).name
        with open(self.workdir / f"{name}.out", "wb") as out:
            proc = self.ns.popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.helpers[name] = proc
        return proc

    # -- queries -----------------------------------------------------------------------------

    def neighbor(self, address: str) -> Neighbor:
        address = _canonical_address(address)
        for n in self.neighbors:
            if n.address == address:
                return n
        raise KeyError(f"{self!r} has no neighbor {address}")

    def wait_state(self, address: str, state: str = "established", timeout: float = 30.0) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        seen: list[str] = []

        def reached() -> bool:
            seen.append(self.neighbor_state(address))
            return seen[-1] == state

        try:
            wait_until(reached, timeout, f"{self!r} neighbor {address} to be {state}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc} (last state {seen[-1] if seen else '?'})\n{self.log(40)}") from None

    def wait_route(self, prefix: str, timeout: float = 30.0,
                   check: Callable[[RouteView], bool] = lambda _: True) -> RouteView:
        """Wait until prefix is received (and passes check, e.g. carries the expected MED)."""
        prefix = str(ipaddress.ip_network(prefix))

        def found() -> RouteView | None:
            view = self.received_routes().get(prefix)
            return view if view is not None and check(view) else None

        return wait_until(found, timeout, f"{self!r} to receive {prefix}")

    def wait_withdrawn(self, prefix: str, timeout: float = 30.0) -> None:
        prefix = str(ipaddress.ip_network(prefix))
        wait_until(lambda: prefix not in self.received_routes(), timeout,
                   f"{self!r} to lose {prefix}")

    @abstractmethod
    def neighbor_state(self, address: str) -> str:
        """The session state with address, one of STATES."""

    def received_routes(self) -> dict[str, RouteView]:
        """Best received path per prefix, across all neighbors; own routes are left out.

        LOCAL_PREF is reported only for iBGP-learned routes: it is meaningless on eBGP, and some
        daemons show the default they assign on import there, which would make them disagree.
        """
        ibgp = {n.address for n in self.neighbors if n.asn == self.asn}
        return {prefix: view if view.peer in ibgp else replace(view, local_pref=None)
                for prefix, view in self._received_routes().items()}

    @abstractmethod
    def received_count(self, address: str) -> int:
        """Prefixes accepted from address, all families: a cheap counter for benchmarks."""

    # -- runtime changes ---------------------------------------------------------------------

    def announce(self, route: Route) -> None:
        """Originate route (replacing any route for the same prefix) while running."""
        self.routes[route.prefix] = route
        self._announce(route)

    def withdraw(self, prefix: str) -> None:
        route = self.routes.pop(str(ipaddress.ip_network(prefix)))
        self._withdraw(route)

    @abstractmethod
    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        """Administratively shut the session (the peer gets a Cease NOTIFICATION) or re-enable it."""

    # -- subclass hooks ----------------------------------------------------------------------

    @abstractmethod
    def _received_routes(self) -> dict[str, RouteView]:
        """Best received path per prefix, as the daemon reports it."""

    @abstractmethod
    def _write_config(self) -> None:
        """Render the configuration into workdir."""

    @abstractmethod
    def _command(self) -> list[str]:
        """The command line that runs the daemon in the foreground."""

    @abstractmethod
    def _ready(self) -> bool:
        """Whether the daemon answers its control interface yet."""

    @abstractmethod
    def _announce(self, route: Route) -> None: ...

    @abstractmethod
    def _withdraw(self, route: Route) -> None: ...

    def _env(self) -> dict[str, str] | None:
        return None

    def _start_helpers(self) -> None:  # noqa: B027 - optional hook, most daemons need nothing
        """Start processes the main daemon needs first (it is started once this returns)."""

    def _after_start(self) -> None:  # noqa: B027 - optional hook, most daemons need nothing
        """Work that needs the running daemon, such as originating routes over its API."""

    def _log_files(self) -> list[Path]:
        return [self.workdir / "stdout.log"]


# -- FRR ---------------------------------------------------------------------------------------

_FRR_WELL_KNOWN = {
    "internet": "0:0", "graceful-shutdown": "65535:0", "accept-own": "65535:1",
    "route-filter-translated-v4": "65535:2", "route-filter-v4": "65535:3",
    "route-filter-translated-v6": "65535:4", "route-filter-v6": "65535:5",
    "llgr-stale": "65535:6", "no-llgr": "65535:7", "accept-own-nexthop": "65535:8",
    "blackhole": "65535:666", "no-export": "65535:65281", "no-advertise": "65535:65282",
    "local-AS": "65535:65283", "no-peer": "65535:65284",
}


class FrrDaemon(BgpDaemon):
    """FRR bgpd alone (`-Z`, no zebra), with its own config, pid file and vty socket directory.

    Without zebra bgpd treats every next hop as reachable, so received routes are valid and
    re-advertised, and nothing is written to the kernel FIB (`-n` is implied); no other FRR on the
    host is touched. Queries go through `vtysh --vty_socket` in JSON.

    With BFD on any neighbor, zebra and bfdd run too, in the same namespace and workdir (their
    own zserv socket, bfdd control socket, pid files and logs): bgpd registers its BFD sessions
    with bfdd only through zebra, and bfdd learns interfaces and addresses from zebra. bgpd then
    runs with `-n`, so the kernel FIB is still never written. zebra and bfdd drop privileges to
    the `frr` user, so that workdir is handed to it. Each such neighbor gets its own BFD profile
    (`bfd_profile`), which `set_bfd_enabled` shuts down or re-enables, and bfdd logs its
    session changes with microsecond timestamps (`debug bfd peer`) for measurements.

    Originates every `Route` attribute exactly. Routes are `network` statements with a route-map
    (MED, local-pref, communities, large communities, AS-path prepend) named after its content, so
    routes alike share one and a change never edits a route-map in place (FRR would apply that
    only after its route-map delay timer). A `next_hop` is set by the outbound route-map BL-OUT on
    every session: without zebra, bgpd cannot see that a third-party next hop is on the shared
    subnet and would otherwise replace it with its own address on eBGP. Quirk: FRR sends MED 0
    on its own routes when `med` is None.
    """

    kind = "frr"
    supports_ttl_security = True
    supports_bfd = True
    bgpd = "/usr/lib/frr/bgpd"
    zebra = "/usr/lib/frr/zebra"
    bfdd = "/usr/lib/frr/bfdd"
    BFD_STATES: ClassVar[dict[str, str]] = {"up": "up", "down": "down", "init": "init", "shutdown": "admindown"}
    """FRR's `show bfd peers json` status → the RFC 5880 state names bgplab uses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_hop_seqs: dict[tuple[str, str], int] = {}  # (family, next hop) -> BL-OUT entry
        self._next_hop_of: dict[str, int] = {}  # prefix -> BL-OUT entry whose prefix-list holds it

    with_zebra: ClassVar[bool] = False
    """Run zebra even without BFD (bgpd `-n`: still no FIB). Without zebra bgpd logs a failed
    zclient send for every route it receives, which is most of its time under a full table."""

    @property
    def uses_bfd(self) -> bool:
        return any(n.bfd for n in self.neighbors)

    @property
    def uses_zebra(self) -> bool:
        return self.with_zebra or self.uses_bfd

    def _command(self) -> list[str]:
        d = self.workdir
        zebra = ["-z", str(d / "zserv.api"), "-n"] if self.uses_zebra else ["-Z"]
        return [self.bgpd, *zebra, "-S", "-f", str(d / "bgpd.conf"), "-i", str(d / "bgpd.pid"),
                "--vty_socket", str(d), "-p", str(self.listen_port), "-P", "0",
                "--log", f"file:{d / 'bgpd.log'}", "--log-level", "info"]

    def _frr_helper(self, program: str, *extra: str) -> list[str]:
        d, name = self.workdir, Path(program).name
        return [program, "-f", str(d / f"{name}.conf"), "-i", str(d / f"{name}.pid"), "--vty_socket", str(d),
                "-z", str(d / "zserv.api"), "-P", "0", *extra]

    def _start_helpers(self) -> None:
        if not self.uses_zebra:
            return
        d = self.workdir
        shutil.chown(d, "frr", "frr")
        self._spawn_helper(self._frr_helper(self.zebra, "--log", f"file:{d / 'zebra.log'}", "--log-level", "info"))

        def zserv_ready() -> bool:
            self._check_helpers()
            return (d / "zserv.api").exists()

        wait_until(zserv_ready, self.start_timeout, f"{self!r}: zebra to listen", interval=0.05)
        if self.uses_bfd:
            # bfdd logs through its config file: only there does `log timestamp precision` apply.
            self._spawn_helper(self._frr_helper(self.bfdd, "--bfdctl", str(d / "bfdd.sock")))

    def _log_files(self) -> list[Path]:
        helpers = ("zebra", "bfdd") if self.uses_bfd else ("zebra",) if self.uses_zebra else ()
        extra = [self.workdir / f"{name}.log" for name in helpers]
        return [*super()._log_files(), self.workdir / "bgpd.log", *extra]

    def query(self, command: str, daemon: str = "bgpd", timeout: float = 10.0) -> str:
        """One show command straight over the daemon's vty socket, as vtysh speaks to it (the
        command NUL-terminated; the answer ends in three NULs and a status byte): no vtysh process
        per question, which under a poll every few ms costs the daemon's host more than the answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.workdir / f"{daemon}.vty"))
            sock.sendall(command.encode() + b"\0")
            answer = bytearray()
            while len(answer) < 4 or answer[-4:-1] != b"\0\0\0":
                data = sock.recv(1 << 16)
                if not data:
                    raise DaemonError(f"{self!r}: {daemon} closed its vty before answering {command!r}")
                answer += data
        if answer[-1] != 0:
            raise DaemonError(f"{self!r}: {daemon} refused {command!r}: {answer[:-4].decode(errors='replace')}")
        return answer[:-4].decode()

    def vtysh(self, *commands: str, check: bool = True, daemon: str = "bgpd") -> str:
        """Run vtysh commands in one session (so configuration context carries over)."""
        args = ["vtysh", "--vty_socket", str(self.workdir), "-d", daemon]
        for command in commands:
            args += ["-c", command]
        return run(args, check).stdout

    # -- BFD ---------------------------------------------------------------------------------

    @staticmethod
    def bfd_profile(address: str) -> str:
        """The bfdd profile of one neighbor's BFD session."""
        return "bl-" + re.sub(r"[^0-9A-Za-z]", "-", _canonical_address(address))

    def _bfd_neighbor(self, address: str) -> Neighbor:
        neighbor = self.neighbor(address)
        if neighbor.bfd is None:
            raise KeyError(f"{self!r} has no BFD configured for {neighbor.address}")
        return neighbor

    def bfd_peers(self) -> list[dict[str, Any]]:
        """bfdd's `show bfd peers json`: every session, as FRR reports it."""
        out = self.vtysh("show bfd peers json", daemon="bfdd")
        peers: list[dict[str, Any]] = json.loads(out or "[]")
        return peers

    def bfd_peer(self, address: str) -> dict[str, Any] | None:
        """bfdd's view of the single-hop session with address, or None while it has none yet."""
        address = self._bfd_neighbor(address).address
        for peer in self.bfd_peers():
            if not peer.get("multihop") and _canonical_address(peer["peer"]) == address:
                return peer
        return None

    def bfd_state(self, address: str) -> str:
        """"up", "down", "init" or "admindown"; "down" until bgpd has registered the session."""
        peer = self.bfd_peer(address)
        return "down" if peer is None else self.BFD_STATES.get(str(peer.get("status")), "down")

    def wait_bfd_state(self, address: str, state: str = "up", timeout: float = 30.0) -> None:
        if state not in self.BFD_STATES.values():
            raise ValueError(f"state must be one of {sorted(self.BFD_STATES.values())}")
        wait_until(lambda: self.bfd_state(address) == state, timeout,
                   f"{self!r} BFD with {address} to be {state}", interval=0.05)

    def bfd_log_changes(self) -> list[tuple[float, str, str, str]]:
        """bfdd's logged state changes: (UNIX time, peer, "old -> new", reason), in log order.

        bfdd stamps its log with local wall-clock time to the microsecond; measurements compare
        these with `time.time()` of the same host.
        """
        changes = []
        pattern = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d+) BFD: .*state-change: "
                             r"\[mhop:\S+ peer:(\S+) .*?\] (\S+ -> \S+)(?: reason:(\S+))?")
        path = self.workdir / "bfdd.log"
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            m = pattern.match(line)
            if m:
                stamp = datetime.strptime(m[1], "%Y/%m/%d %H:%M:%S.%f").timestamp()
                changes.append((stamp, _canonical_address(m[2]), m[3], m[4] or ""))
        return changes

    def set_bfd_enabled(self, address: str, enabled: bool) -> None:
        """Shut the BFD session down (bfdd sends AdminDown) or re-enable it."""
        profile = self.bfd_profile(self._bfd_neighbor(address).address)
        self.vtysh("configure terminal", "bfd", f"profile {profile}", "no shutdown" if enabled else "shutdown",
                   daemon="bfdd")

    def _write_bfdd_config(self) -> None:
        lines = ["log timestamp precision 6", f"log file {self.workdir / 'bfdd.log'} debugging",
                 "debug bfd peer", "!", "bfd"]
        for n in self.neighbors:
            if n.bfd is not None:
                tx, rx, mult = n.bfd
                lines += [f" profile {self.bfd_profile(n.address)}", f"  transmit-interval {tx}",
                          f"  receive-interval {rx}", f"  detect-multiplier {mult}", " exit"]
        (self.workdir / "bfdd.conf").write_text("\n".join([*lines, "exit", ""]))
        (self.workdir / "zebra.conf").write_text(f"hostname {self.kind}-{self.asn}-zebra\n")

    def _json(self, command: str) -> Any:
        return json.loads(self.vtysh(command + " json") or "{}")

    def _ready(self) -> bool:
        if not ((self.workdir / "bgpd.vty").exists() and
                self.vtysh("show bgp summary json", check=False).lstrip().startswith("{")):
            return False
        if not self.uses_bfd:
            return True
        return (self.workdir / "bfdd.vty").exists() and \
            self.vtysh("show bfd peers json", check=False, daemon="bfdd").lstrip().startswith("[")

    @staticmethod
    def _route_map(route: Route) -> tuple[str, list[str]]:
        sets = []
        if route.med is not None:
            sets.append(f" set metric {route.med}")
        if route.local_pref is not None:
            sets.append(f" set local-preference {route.local_pref}")
        if route.communities:
            sets.append(f" set community {' '.join(route.communities)}")
        if route.large_communities:
            sets.append(f" set large-community {' '.join(route.large_communities)}")
        if route.as_path:
            sets.append(f" set as-path prepend {' '.join(map(str, route.as_path))}")
        name = "BL-" + hashlib.sha1("".join(sets).encode()).hexdigest()[:12]
        return name, [f"route-map {name} permit 10", *sets, "exit"]

    def _set_next_hop(self, route: Route) -> list[str]:
        """Config putting route in the prefix-list of its next hop's BL-OUT entry (made if new)."""
        if route.next_hop is None:
            return []
        ip = "ip" if route.family == "ipv4" else "ipv6"
        key = (route.family, route.next_hop)
        lines = []
        if key not in self._next_hop_seqs:
            seq = self._next_hop_seqs[key] = len(self._next_hop_seqs) + 1
            set_nh = "ip next-hop" if ip == "ip" else "ipv6 next-hop global"
            lines = [f"route-map BL-OUT permit {seq}", f" match {ip} address prefix-list BL-NH-{seq}",
                     f" set {set_nh} {route.next_hop}", "exit"]
        seq = self._next_hop_of[route.prefix] = self._next_hop_seqs[key]
        return [f"{ip} prefix-list BL-NH-{seq} permit {route.prefix}", *lines]

    def _unset_next_hop(self, prefix: str) -> list[str]:
        seq = self._next_hop_of.pop(prefix, None)
        if seq is None:
            return []
        ip = "ip" if family_of(prefix) == "ipv4" else "ipv6"
        return [f"no {ip} prefix-list BL-NH-{seq} permit {prefix}"]

    def _write_config(self) -> None:
        self._next_hop_seqs.clear()
        self._next_hop_of.clear()
        lines = ["frr defaults traditional", f"hostname {self.kind}-{self.asn}", "!"]
        route_maps: dict[str, list[str]] = {}
        for route in self.routes.values():
            name, block = self._route_map(route)
            route_maps[name] = block
            lines += self._set_next_hop(route)
        for block in route_maps.values():
            lines += block
        lines += ["route-map BL-OUT permit 65535", "exit",
                  f"router bgp {self.asn}", f" bgp router-id {self.router_id}",
                  " no bgp default ipv4-unicast", " no bgp ebgp-requires-policy",
                  " no bgp network import-check", " bgp log-neighbor-changes", " bgp graceful-restart-disable"]
        for n in self.neighbors:
            a = n.address
            lines += [f" neighbor {a} remote-as {n.asn}", f" neighbor {a} timers {n.keepalive} {n.hold_time}",
                      f" neighbor {a} timers connect 1", f" neighbor {a} advertisement-interval 0"]
            if n.port != 179:
                lines.append(f" neighbor {a} port {n.port}")
            if n.passive:
                lines.append(f" neighbor {a} passive")
            if n.md5:
                lines.append(f" neighbor {a} password {n.md5}")
            if n.ttl_security:
                lines.append(f" neighbor {a} ttl-security hops 1")
            if n.bfd is not None:
                lines.append(f" neighbor {a} bfd profile {self.bfd_profile(a)}")
        for family in FAMILIES:
            lines.append(f" address-family {family} unicast")
            for n in self.neighbors:
                if family in n.families:
                    lines += [f"  neighbor {n.address} activate", f"  neighbor {n.address} route-map BL-OUT out"]
            lines += [f"  network {r.prefix} route-map {self._route_map(r)[0]}"
                      for r in self.routes.values() if r.family == family]
            lines.append(" exit-address-family")
        (self.workdir / "bgpd.conf").write_text("\n".join([*lines, "exit", ""]))
        if self.uses_bfd:
            self._write_bfdd_config()

    def _announce(self, route: Route) -> None:
        name, block = self._route_map(route)
        next_hop_changed = route.prefix in self._next_hop_of or route.next_hop is not None
        commands = ["configure terminal", *block, *self._unset_next_hop(route.prefix),
                    *self._set_next_hop(route), f"router bgp {self.asn}",
                    f"address-family {route.family} unicast", f"network {route.prefix} route-map {name}", "end"]
        if next_hop_changed:  # prefix-list edits reach the outbound policy on FRR's delay timer
            commands.append(f"clear bgp {route.family} unicast * soft out")
        self.vtysh(*commands)

    def _withdraw(self, route: Route) -> None:
        self.vtysh("configure terminal", f"router bgp {self.asn}", f"address-family {route.family} unicast",
                   f"no network {route.prefix}", "exit", "exit", *self._unset_next_hop(route.prefix), "end")

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        self.vtysh("configure terminal", f"router bgp {self.asn}",
                   f"{'no ' if enabled else ''}neighbor {self.neighbor(address).address} shutdown")

    def _neighbor_json(self, address: str) -> dict[str, Any]:
        data = self._json(f"show bgp neighbors {self.neighbor(address).address}")
        peer: dict[str, Any] = next(iter(data.values()), {})
        return peer

    def neighbor_state(self, address: str) -> str:
        state = str(self._neighbor_json(address).get("bgpState", "idle")).lower()
        return state if state in STATES else "idle"  # Clearing, Deleted: on their way to idle

    def notifications(self, address: str) -> list[tuple[str, int, int]]:
        """FRR's own record of every NOTIFICATION it sent to or received from the neighbor (its log)."""
        log = self.workdir / "bgpd.log"
        return logged_notifications(log.read_text(errors="replace"), address) if log.exists() else []

    def received_count(self, address: str) -> int:
        families = self._neighbor_json(address).get("addressFamilyInfo", {})
        return sum(int(af.get("acceptedPrefixCounter", 0)) for af in families.values())

    def _received_routes(self) -> dict[str, RouteView]:
        views: dict[str, RouteView] = {}
        for family in FAMILIES:
            data = self.vtysh(f"show bgp {family} unicast json detail")
            for prefix, entries in json.loads(data or "{}").get("routes", {}).items():
                # FRR 8.4 lists a per-prefix header first, then the paths.
                paths = [p for p in entries if "nexthops" in p and not p.get("local")]
                paths.sort(key=lambda p: not p.get("bestpath", {}).get("overall", False))
                if paths:
                    views[prefix] = self._view(prefix, paths[0])
        return views

    @staticmethod
    def _view(prefix: str, path: dict[str, Any]) -> RouteView:
        hops = [h["ip"] for h in path["nexthops"] if h.get("scope") != "link-local"]
        segments = path.get("aspath", {}).get("segments", [])
        communities = path.get("community", {}).get("string", "").split()
        return RouteView(
            prefix=prefix, peer=path["peer"]["peerId"], next_hop=hops[0] if hops else None,
            as_path=tuple(asn for seg in segments for asn in seg["list"]),
            med=path.get("metric"), local_pref=path.get("locPrf"),
            communities=tuple(_FRR_WELL_KNOWN.get(c, c) for c in communities),
            large_communities=tuple(path.get("largeCommunity", {}).get("list", [])))


# -- BIRD --------------------------------------------------------------------------------------

class BirdDaemon(BgpDaemon):
    """BIRD 2 in the foreground (`-f`) with its own config, pid file and control socket.

    Routes are blackhole statics (one static protocol per family); their BGP attributes are set in
    each session's export filter, because BIRD strips a MED on eBGP unless the export filter set
    it. Runtime announce/withdraw re-render the config and `birdc configure`. Originates every
    `Route` attribute; `next_hop` is honoured by BIRD only where it is a valid third-party next
    hop for the session (on the shared subnet), else BIRD sends its own address.
    """

    kind = "bird"
    supports_ttl_security = True

    def _command(self) -> list[str]:
        d = self.workdir
        return ["bird", "-f", "-c", str(d / "bird.conf"), "-s", str(d / "bird.ctl"),
                "-P", str(d / "bird.pid")]

    def _log_files(self) -> list[Path]:
        return [*super()._log_files(), self.workdir / "bird.log"]

    def birdc(self, *command: str, check: bool = True) -> str:
        return run(["birdc", "-s", str(self.workdir / "bird.ctl"), *command], check).stdout

    def _ready(self) -> bool:
        return "Daemon is up and running" in self.birdc("show", "status", check=False)

    def _protocol(self, address: str) -> str:
        return f"bl_n{self.neighbors.index(self.neighbor(address))}"

    @staticmethod
    def _export_actions(route: Route) -> list[str]:
        actions = []
        if route.med is not None:
            actions.append(f"bgp_med = {route.med};")
        if route.local_pref is not None:
            actions.append(f"bgp_local_pref = {route.local_pref};")
        actions += [f"bgp_community.add(({c.replace(':', ',')}));" for c in route.communities]
        actions += [f"bgp_large_community.add(({c.replace(':', ',')}));" for c in route.large_communities]
        actions += [f"bgp_path.prepend({asn});" for asn in reversed(route.as_path)]
        if route.next_hop is not None:
            actions.append(f"bgp_next_hop = {route.next_hop};")
        return actions

    def _render(self) -> str:
        lines = [f'log "{self.workdir / "bird.log"}" all;', f"router id {self.router_id};",
                 "protocol device {}"]
        for family in FAMILIES:
            lines.append(f"protocol static bl_static_{family} {{ {family};")
            lines += [f"  route {r.prefix} blackhole;" for r in self.routes.values() if r.family == family]
            lines.append("}")
        lines.append("filter bl_export {")
        for route in self.routes.values():
            actions = " ".join(self._export_actions(route))
            lines.append(f"  if source = RTS_STATIC && net = {route.prefix} then {{ {actions} }}")
        lines += ["  accept;", "}"]
        local = f"local as {self.asn}" if self.listen_port == 179 else \
            f"local port {self.listen_port} as {self.asn}"
        for n in self.neighbors:
            lines += [f"protocol bgp {self._protocol(n.address)} {{", f"  {local};",
                      f"  neighbor {n.address} port {n.port} as {n.asn};",
                      f"  hold time {n.hold_time}; keepalive time {n.keepalive};",
                      "  connect delay time 1; connect retry time 1; error wait time 1, 5;",
                      "  graceful restart off; long lived graceful restart off;"]
            if n.passive:
                lines.append("  passive on;")
            if n.md5:
                lines.append(f'  password "{n.md5}";')
            if n.ttl_security:
                lines.append("  ttl security on;")
            lines += [f"  {f} {{ import all; export filter bl_export; }};" for f in n.families]
            lines.append("}")
        return "\n".join([*lines, ""])

    def _write_config(self) -> None:
        (self.workdir / "bird.conf").write_text(self._render())

    def _reconfigure(self) -> None:
        self._write_config()
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out:
            raise DaemonError(f"{self!r} refused its new configuration:\n{out}")

    def _announce(self, route: Route) -> None:
        self._reconfigure()

    def _withdraw(self, route: Route) -> None:
        self._reconfigure()

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        self.birdc("enable" if enabled else "disable", self._protocol(address))

    def neighbor_state(self, address: str) -> str:
        out = self.birdc("show", "protocols", "all", self._protocol(address))
        match = re.search(r"BGP state:\s+(\w+)", out)
        state = match.group(1).lower() if match else "idle"
        return state if state in STATES else "idle"

    def received_count(self, address: str) -> int:
        out = self.birdc("show", "protocols", "all", self._protocol(address))
        return sum(int(n) for n in re.findall(r"Routes:\s+(\d+) imported", out))

    def _received_routes(self) -> dict[str, RouteView]:
        peers = {self._protocol(n.address): n.address for n in self.neighbors}
        views: dict[str, RouteView] = {}
        for block in self._route_blocks(self.birdc("show", "route", "all", "where", "source = RTS_BGP")):
            prefix, proto, best, attrs = block
            if proto not in peers or (prefix in views and not best):
                continue
            hop = attrs.get("BGP.next_hop", "").split()
            views[prefix] = RouteView(
                prefix=prefix, peer=peers[proto], next_hop=hop[0] if hop else None,
                as_path=tuple(int(a) for a in re.findall(r"\d+", attrs.get("BGP.as_path", ""))),
                med=int(attrs["BGP.med"]) if "BGP.med" in attrs else None,
                local_pref=int(attrs["BGP.local_pref"]) if "BGP.local_pref" in attrs else None,
                communities=tuple(f"{a}:{b}" for a, b in re.findall(
                    r"\((\d+),\s*(\d+)\)", attrs.get("BGP.community", ""))),
                large_communities=tuple(f"{a}:{b}:{c}" for a, b, c in re.findall(
                    r"\((\d+),\s*(\d+),\s*(\d+)\)", attrs.get("BGP.large_community", ""))))
        return views

    @staticmethod
    def _route_blocks(text: str) -> list[tuple[str, str, bool, dict[str, str]]]:
        """Split `show route all` into (prefix, protocol, is_best, attributes) per path.

        A path header names the prefix at column 0, or is indented when it is another path for
        the prefix above; attribute lines are tab-indented `Name: value`.
        """
        blocks: list[tuple[str, str, bool, dict[str, str]]] = []
        prefix = ""
        for line in text.splitlines():
            header = re.match(r"^(\S+)?\s+\w+ \[(\S+) [^\]]*\]( \*)?", line)
            if header and not line.startswith("\t"):
                prefix = header.group(1) or prefix
                blocks.append((prefix, header.group(2), bool(header.group(3)), {}))
            elif blocks and line.startswith("\t") and ": " in line:
                name, _, value = line.strip().partition(": ")
                blocks[-1][3][name] = value
        return blocks


# -- GoBGP -------------------------------------------------------------------------------------

_GOBGP_STATES = dict(enumerate(STATES, start=1))  # the API's SessionState enum; 0 is UNKNOWN


class GobgpDaemon(BgpDaemon):
    """gobgpd with a TOML config and its gRPC API on a unix socket in workdir.

    The unix socket keeps the API out of the namespace's port space, and lets the `gobgp` client
    run from the host without `ip netns exec`. Routes are added to the global RIB over the API
    once the daemon is up, both at start and at run time. Originates every `Route` attribute
    (origin is IGP); gobgpd never writes to the kernel FIB here (no zebra).
    """

    kind = "gobgp"

    def _command(self) -> list[str]:
        return ["gobgpd", "-f", str(self.workdir / "gobgpd.toml"), "-p", "--pprof-disable",
                "--api-hosts", f"unix://{self.workdir / 'api.sock'}"]

    def gobgp(self, *args: str, check: bool = True) -> str:
        return run(["gobgp", "--target", f"unix://{self.workdir / 'api.sock'}", *args], check).stdout

    def _ready(self) -> bool:
        return (self.workdir / "api.sock").exists() and '"asn"' in self.gobgp("-j", "global", check=False)

    def _write_config(self) -> None:
        lines = ["[global.config]", f"  as = {self.asn}", f'  router-id = "{self.router_id}"',
                 f"  port = {self.listen_port}"]
        for n in self.neighbors:
            lines += ["[[neighbors]]", "  [neighbors.config]", f'    neighbor-address = "{n.address}"',
                      f"    peer-as = {n.asn}"]
            if n.md5:
                lines.append(f'    auth-password = "{n.md5}"')
            lines += ["  [neighbors.timers.config]", f"    hold-time = {n.hold_time}",
                      f"    keepalive-interval = {n.keepalive}", "    connect-retry = 1",
                      "    idle-hold-time-after-reset = 1",
                      "  [neighbors.transport.config]", f"    remote-port = {n.port}",
                      f"    passive-mode = {'true' if n.passive else 'false'}"]
            for family in n.families:
                lines += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                          f'      afi-safi-name = "{family}-unicast"']
        (self.workdir / "gobgpd.toml").write_text("\n".join([*lines, ""]))

    def _after_start(self) -> None:
        for route in self.routes.values():
            self._announce(route)

    def _announce(self, route: Route) -> None:
        args = ["global", "rib", "add", route.prefix, "origin", "igp"]
        if route.next_hop is not None:
            args += ["nexthop", route.next_hop]
        if route.as_path:
            args += ["aspath", ",".join(map(str, route.as_path))]
        if route.med is not None:
            args += ["med", str(route.med)]
        if route.local_pref is not None:
            args += ["local-pref", str(route.local_pref)]
        if route.communities:
            args += ["community", ",".join(route.communities)]
        if route.large_communities:
            args += ["large-community", ",".join(route.large_communities)]
        self.gobgp(*args, "-a", route.family)

    def _withdraw(self, route: Route) -> None:
        self.gobgp("global", "rib", "del", route.prefix, "-a", route.family)

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        self.gobgp("neighbor", self.neighbor(address).address, "enable" if enabled else "disable")

    def _neighbor_json(self, address: str) -> Any:
        data = json.loads(self.gobgp("-j", "neighbor", self.neighbor(address).address))
        return data[0] if isinstance(data, list) else data

    def neighbor_state(self, address: str) -> str:
        state = self._neighbor_json(address).get("state", {}).get("session_state", 0)
        return _GOBGP_STATES.get(int(state), "idle")

    def received_count(self, address: str) -> int:
        families = self._neighbor_json(address).get("afi_safis", [])
        return sum(int(af.get("state", {}).get("accepted", 0)) for af in families)

    def _received_routes(self) -> dict[str, RouteView]:
        views: dict[str, RouteView] = {}
        for family in FAMILIES:
            rib = json.loads(self.gobgp("-j", "global", "rib", "-a", family) or "{}")
            for prefix, paths in rib.items():
                received = sorted((p for p in paths if "neighbor-ip" in p),
                                  key=lambda p: not p.get("best", False))
                if received:
                    views[prefix] = self._view(prefix, received[0])
        return views

    @staticmethod
    def _view(prefix: str, path: dict[str, Any]) -> RouteView:
        attrs = {a["type"]: a for a in path.get("attrs", [])}
        hop = attrs.get(3, attrs.get(14, {})).get("nexthop")
        return RouteView(
            prefix=prefix, peer=path["neighbor-ip"], next_hop=hop,
            as_path=tuple(asn for seg in attrs.get(2, {}).get("as_paths", []) for asn in seg["asns"]),
            med=attrs[4]["metric"] if 4 in attrs else None,
            local_pref=attrs[5]["value"] if 5 in attrs else None,
            communities=tuple(f"{c >> 16}:{c & 0xFFFF}" for c in attrs.get(8, {}).get("communities", [])),
            large_communities=tuple(f"{c['ASN']}:{c['LocalData1']}:{c['LocalData2']}"
                                    for c in attrs.get(32, {}).get("value", [])))


# -- ExaBGP ------------------------------------------------------------------------------------

# The API helper ExaBGP runs: it records every JSON message ExaBGP sends it, and forwards the
# commands written to a FIFO to ExaBGP. It exits with ExaBGP (its stdin closes).
_EXABGP_HELPER = """\
import os, sys, threading
fifo, received, ready = sys.argv[1:4]
def record():
    with open(received, "a") as out:
        for line in sys.stdin:
            out.write(line)
            out.flush()
    os._exit(0)
threading.Thread(target=record, daemon=True).start()
commands = os.fdopen(os.open(fifo, os.O_RDWR))  # read-write: never sees EOF between writers
open(ready, "w").close()
for line in commands:
    sys.stdout.write(line)
    sys.stdout.flush()
"""

_EXABGP_STATES = {"connected": "opensent", "up": "established", "down": "idle"}


@dataclass
class _ExabgpFeed:
    """What the received-message log said so far; read incrementally so counting stays cheap."""

    offset: int = 0
    states: dict[str, str] = field(default_factory=dict)
    ribs: dict[str, dict[str, RouteView]] = field(default_factory=dict)


class ExabgpDaemon(BgpDaemon):
    """ExaBGP 5 in the foreground, as root without dropping privileges, with no CLI pipes.

    Received updates and neighbor state changes reach an API helper that appends them (JSON,
    one message a line) to `received.jsonl`; the queries replay that file. ExaBGP only reports
    "connected" (shown as opensent), "up" (established) and "down" (idle), never connect/active.
    Start-up routes are static routes in the config; run-time ones are API commands written to a
    FIFO the helper forwards. Originates every `Route` attribute; as ExaBGP sends an AS path
    verbatim, the harness prepends the daemon's ASN itself on eBGP sessions. The keepalive is
    always hold_time / 3 (ExaBGP has no separate setting). Each session listens on the local
    address facing the neighbor, found from the namespace's interface addresses.
    """

    kind = "exabgp"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._feed = _ExabgpFeed()

    def _command(self) -> list[str]:
        return [programs.program("exabgp"), "server", str(self.workdir / "exabgp.conf")]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "exabgp_daemon_user": "root", "exabgp_daemon_drop": "false",
                "exabgp_daemon_daemonize": "false", "exabgp_daemon_pid": "",
                "exabgp_api_cli": "false", "exabgp_api_ack": "false", "exabgp_tcp_bind": "",
                "exabgp_log_destination": "stdout"}

    def _ready(self) -> bool:
        return (self.workdir / "ready").exists()

    def _local_address(self, neighbor: Neighbor) -> str:
        peer = ipaddress.ip_address(neighbor.address)
        links = json.loads(self.ns.run(["ip", "-j", "addr", "show"]).stdout)
        for info in (i for link in links for i in link.get("addr_info", [])):
            iface = ipaddress.ip_interface(f"{info['local']}/{info['prefixlen']}")
            if iface.version == peer.version and peer in iface.network and iface.ip != peer:
                return str(iface.ip)
        raise DaemonError(f"{self.ns!r} has no address on the subnet of neighbor {peer}")

    def _route_spec(self, route: Route, neighbor: Neighbor) -> str:
        as_path = route.as_path if neighbor.asn == self.asn else (self.asn, *route.as_path)
        parts = [f"route {route.prefix}", f"next-hop {route.next_hop or 'self'}", "origin igp"]
        if as_path:
            parts.append(f"as-path [ {' '.join(map(str, as_path))} ]")
        if route.med is not None:
            parts.append(f"med {route.med}")
        if route.local_pref is not None:
            parts.append(f"local-preference {route.local_pref}")
        if route.communities:
            parts.append(f"community [ {' '.join(route.communities)} ]")
        if route.large_communities:
            parts.append(f"large-community [ {' '.join(route.large_communities)} ]")
        return " ".join(parts)

    def _write_config(self) -> None:
        d = self.workdir
        (d / "helper.py").write_text(_EXABGP_HELPER)
        os.mkfifo(d / "commands.fifo")
        lines = ["process bl_api {",
                 f"  run {sys.executable} {d / 'helper.py'} {d / 'commands.fifo'} "
                 f"{d / 'received.jsonl'} {d / 'ready'};",
                 "  encoder json;", "}"]
        for n in self.neighbors:
            local = self._local_address(n)
            lines += [f"neighbor {n.address} {{", f"  router-id {self.router_id};",
                      f"  local-address {local};", f"  local-as {self.asn};", f"  peer-as {n.asn};",
                      f"  hold-time {n.hold_time};", f"  listen {self.listen_port};",
                      f"  connect {n.port};", f"  passive {'true' if n.passive else 'false'};"]
            if n.md5:
                lines.append(f'  md5-password "{n.md5}";')
            lines.append(f"  family {{ {' '.join(f + ' unicast;' for f in n.families)} }}")
            lines += ["  api { processes [ bl_api ]; neighbor-changes; receive { parsed; update; } }",
                      "  static {"]
            lines += [f"    {self._route_spec(r, n)};" for r in self.routes.values()
                      if r.family in n.families]
            lines += ["  }", "}"]
        (d / "exabgp.conf").write_text("\n".join([*lines, ""]))

    def _send(self, commands: list[str]) -> None:
        # Non-blocking open fails at once (ENXIO) if the helper is gone, instead of hanging.
        fd = os.open(self.workdir / "commands.fifo", os.O_WRONLY | os.O_NONBLOCK)
        try:
            for command in commands:
                os.write(fd, (command + "\n").encode())  # one short write per line: atomic on a pipe
        finally:
            os.close(fd)

    def _announce(self, route: Route) -> None:
        self._send([f"neighbor {n.address} announce {self._route_spec(route, n)}"
                    for n in self.neighbors if route.family in n.families])

    def _withdraw(self, route: Route) -> None:
        self._send([f"neighbor {n.address} withdraw route {route.prefix}"
                    for n in self.neighbors if route.family in n.families])

    def _read_feed(self) -> _ExabgpFeed:
        feed = self._feed
        path = self.workdir / "received.jsonl"
        if not path.exists():
            return feed
        with open(path, "rb") as f:
            f.seek(feed.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        feed.offset += len(complete)
        for line in complete.decode().splitlines():
            if line.startswith("{"):
                self._apply(feed, json.loads(line))
        return feed

    @staticmethod
    def _apply(feed: _ExabgpFeed, msg: dict[str, Any]) -> None:
        neighbor = msg.get("neighbor", {})
        peer = _canonical_address(neighbor.get("address", {}).get("peer", "0.0.0.0"))
        if msg.get("type") == "state":
            feed.states[peer] = _EXABGP_STATES.get(neighbor.get("state", ""), "idle")
            if feed.states[peer] != "established":
                feed.ribs.pop(peer, None)  # the session's routes die with it
            return
        update = neighbor.get("message", {}).get("update")
        if msg.get("type") != "update" or not update:
            return
        rib = feed.ribs.setdefault(peer, {})
        for nlris in update.get("withdraw", {}).values():
            for nlri in nlris:
                rib.pop(str(ipaddress.ip_network(_nlri(nlri))), None)
        attrs = update.get("attribute", {})
        local_asn = neighbor.get("asn", {}).get("local")
        for by_hop in update.get("announce", {}).values():
            for hop, nlris in by_hop.items():
                for nlri in nlris:
                    view = _exabgp_view(_nlri(nlri), peer, hop, attrs)
                    if local_asn in view.as_path:  # AS loop: what any other speaker would drop
                        rib.pop(view.prefix, None)
                    else:
                        rib[view.prefix] = view

    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        """ExaBGP can only tear a session down (Cease, administrative shutdown); it reconnects by
        itself shortly after, so enabling is a no-op."""
        if not enabled:
            self._send([f"neighbor {self.neighbor(address).address} teardown 2"])

    def neighbor_state(self, address: str) -> str:
        return self._read_feed().states.get(self.neighbor(address).address, "idle")

    def received_count(self, address: str) -> int:
        return len(self._read_feed().ribs.get(self.neighbor(address).address, {}))

    def _received_routes(self) -> dict[str, RouteView]:
        # ExaBGP has no decision process: with several peers sending a prefix, the first wins.
        views: dict[str, RouteView] = {}
        for rib in self._read_feed().ribs.values():
            for prefix, view in rib.items():
                views.setdefault(prefix, view)
        return views

    def stop(self) -> None:
        super().stop()
        self._feed = _ExabgpFeed()


def _nlri(entry: Any) -> str:
    return str(entry["nlri"] if isinstance(entry, dict) else entry)


def _exabgp_view(prefix: str, peer: str, hop: str, attrs: dict[str, Any]) -> RouteView:
    as_path = attrs.get("as-path", [])
    if isinstance(as_path, dict):  # ExaBGP 5: {"0": {"element": "as-sequence", "value": [...]}}
        as_path = [asn for seg in as_path.values() for asn in seg.get("value", [])]
    return RouteView(
        prefix=prefix, peer=peer, next_hop=hop.split()[0] if hop and hop != "null" else None,
        as_path=tuple(int(a) for a in as_path), med=attrs.get("med"),
        local_pref=attrs.get("local-preference"),
        communities=tuple(f"{a}:{b}" for a, b in attrs.get("community", [])),
        large_communities=tuple(f"{a}:{b}:{c}" for a, b, c in attrs.get("large-community", [])))
