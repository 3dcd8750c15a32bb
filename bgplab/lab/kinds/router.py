"""What the CE router kinds share: where a node lives, where its config comes from, its pid and log.

Each kind (FRR, BIRD, GoBGP, ExaBGP) keeps a private working directory in the lab's state with a
pid file and a log named after its main program, takes its config from the user's file or renders
one from the topology's intent, and is up once some kind-specific sign appears; the rest (how to
start it, how to read its sessions and routes) is the kind's own.

The test harness (`bgplab.testing`) runs the same daemons from a simpler model than an intent:
a router's `Neighbor`s and the `Route`s it originates, with every attribute set exactly. Each
router kind renders that model too, beside its intent, so a daemon's configs are written in one
module whoever runs it.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from bgplab.lab import system
from bgplab.lab.kinds import RunningNode
from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime

STATES = ("idle", "connect", "active", "opensent", "openconfirm", "established")
"""Session states, RFC 4271 names in lower case, whatever a daemon calls them."""
FAMILIES = ("ipv4", "ipv6")
MSEE_BFD = (300, 300, 3)
"""The MSEE's BFD: (transmit ms, receive ms, multiplier)."""
_COMMUNITY = re.compile(r"^\d+:\d+$")
_LARGE_COMMUNITY = re.compile(r"^\d+:\d+:\d+$")


class Run(Protocol):
    """Runs a program to completion, unchecked: on the host (`host_run`), or in a node
    (`RouterNode.run`), which is where a node's config checker and CLI belong."""

    def __call__(self, args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]: ...


def host_run(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return system.run(args, False, timeout=timeout)


def family_of(prefix: str) -> str:
    return "ipv4" if ipaddress.ip_network(prefix).version == 4 else "ipv6"


def canonical_address(address: str) -> str:
    return str(ipaddress.ip_address(address))


def address_key(address: str) -> tuple[int, int]:
    """Sessions sorted by neighbour address: IPv4 first, numerically."""
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def exported(prefix: str, entries: Iterable[str]) -> bool:
    """Whether a prefix passes an MSEE session's export list (bgplab.lab.topology.intent): equal to
    an entry, or inside one written with a trailing "+" (that prefix and its more specifics)."""
    network = ipaddress.ip_network(prefix)
    for entry in entries:
        block = ipaddress.ip_network(entry.rstrip("+"))
        if network == block or (entry.endswith("+") and network.version == block.version
                                and network.subnet_of(block)):  # type: ignore[arg-type]
            return True
    return False


def prefix_bounds(entry: str) -> tuple[str, int, int]:
    """An export entry as (prefix, shortest, longest length) for a prefix list: "+" reaches /32 (/128)."""
    network = ipaddress.ip_network(entry.rstrip("+"))
    return str(network), network.prefixlen, network.max_prefixlen if entry.endswith("+") else network.prefixlen


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family {family!r}: expected ipv4 or ipv6")


def valid_bfd_timers(timers: object) -> bool:
    """[transmit ms, receive ms, multiplier] within the ranges FRR's bfdd accepts."""
    return (isinstance(timers, (list, tuple)) and len(timers) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) for v in timers)
            and 10 <= timers[0] <= 60000 and 10 <= timers[1] <= 60000 and 2 <= timers[2] <= 255)


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
        object.__setattr__(self, "address", canonical_address(self.address))
        if not self.families or set(self.families) - set(FAMILIES):
            raise ValueError(f"families must be a non-empty subset of {FAMILIES}")
        if self.bfd is not None and not valid_bfd_timers(self.bfd):
            raise ValueError(f"bfd {self.bfd}: (tx ms 10-60000, rx ms 10-60000, multiplier 2-255)")


@dataclass(frozen=True, kw_only=True)
class PathAttributes:
    """What a route carries beside its prefix and next hop, whether a daemon originates it
    (`Route`) or reports it received (`bgplab.testing.daemons.RouteView`); always by keyword."""

    as_path: tuple[int, ...] = ()
    med: int | None = None
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route(PathAttributes):
    """A route a daemon originates (see `bgplab.testing.daemons` for `as_path` and `local_pref`).

    `next_hop=None` means the daemon's own address on each session (next-hop-self).
    """

    prefix: str
    next_hop: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", str(ipaddress.ip_network(self.prefix)))
        if self.next_hop is not None:
            object.__setattr__(self, "next_hop", canonical_address(self.next_hop))
        if not all(_COMMUNITY.match(c) for c in self.communities):
            raise ValueError(f"communities must be numeric 'A:B': {self.communities}")
        if not all(_LARGE_COMMUNITY.match(c) for c in self.large_communities):
            raise ValueError(f"large communities must be numeric 'A:B:C': {self.large_communities}")

    @property
    def family(self) -> str:
        return family_of(self.prefix)


class RouterNode(RunningNode):
    program: ClassVar[str]
    """The main program, which names its pid file and log in the working directory: "bird"."""
    title: ClassVar[str]
    """How messages name it: "BIRD"."""
    start_timeout: ClassVar[float] = 20.0

    def __init__(self, plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> None:
        self.plan = plan
        self.node = node
        self.runtime = runtime
        self.workdir = workdir
        self.key = node.namespaces[0]
        self.log = workdir / f"{self.program}.log"

    # ---- config

    def intent(self) -> dict[str, Any]:
        return dict(self.node.spec.get("intent", {}))

    def render(self, intent: dict[str, Any]) -> str:
        """The kind's config for an intent (its module's `render_intent`)."""
        raise NotImplementedError

    def config_text(self) -> str:
        """The user's own config file as it is, or one rendered from the intent."""
        user = self.node.spec.get("config")
        return Path(user).read_text() if user else self.render(self.intent())

    def run(self, args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """One of the node's programs run in the node (its checker, its CLI): in a container, the
        image's, which is the version of the daemon that runs there."""
        return self.runtime.exec(self.key, args, check=False, timeout=timeout)

    def user_config(self) -> tuple[Path, Path] | None:
        """The user's own config file, copied into the node's directory (where a container sees
        it too), with its own path for error messages; None for a generated config."""
        user = self.node.spec.get("config")
        if not user:
            return None
        copy = self.workdir / f"user{Path(user).suffix}"
        copy.write_text(Path(user).read_text())
        return copy, Path(user)

    # ---- process

    def pid(self, program: str | None = None) -> int | None:
        try:
            return int((self.workdir / f"{program or self.program}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def log_files(self) -> list[Path]:
        return [self.log]

    def log_tail(self, lines: int = 10) -> str:
        texts: list[str] = []
        for path in self.log_files():
            if path.exists():
                texts += path.read_text(errors="replace").strip().splitlines()[-lines:]
        return "\n".join(texts).strip() or "no log"

    def wait_started(self, proc: subprocess.Popen[bytes], ready: Callable[[], bool], what: str,
                     tail: Callable[[], str] | None = None, interval: float = 0.05) -> None:
        """Until `ready()`; the process dying or the start timeout passing is an error with its log."""
        deadline = time.monotonic() + self.start_timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.node.name}: {what} did not start: {(tail or self.log_tail)()}")
            time.sleep(interval)

    def healthy(self) -> str | None:
        pid = self.pid()
        if pid is None:
            return f"{self.title} is not running (no pid file): {self.log_tail()}"
        if not system.alive(pid):
            return f"{self.title} exited: {self.log_tail()}"
        return None

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            system.kill_pids([pid])

    def kill_daemon(self) -> None:
        """The daemon is the node (BIRD, GoBGP, ExaBGP): everything in it dies, helpers too."""
        system.kill_pids(self.runtime.processes(self.key), timeout=2.0, term=False)

    def restart_daemon(self) -> None:
        if self.healthy() is not None:
            self.start()
