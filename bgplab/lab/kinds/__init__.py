"""Node kinds: how each kind is configured, started, checked and asked about its sessions and routes.

Every kind answers in one schema whoever the speaker is (our MSEE, FRR, ...), so `bgplab status`
and the tests compare like with like:

* a session: `node`, `peering` (for MSEEs, else null), `neighbor`, `role`, `local_as`,
  `remote_as`, `state` (RFC 4271 names in lower case), `uptime` (s or null), `received`,
  `accepted`, `advertised`, `bfd` (up/down/init/admindown or null), `flaps`;
* a route: `network`, `next_hop`, `path`, `origin`, `med`, `local_pref`, `communities`,
  `large_communities`, `family`, `source`, `best`.

Kinds register themselves: each module of this package (frr, bird, gobgp, exabgp, ours, host)
adds its `Kind` to the registry when it is imported, and the lab, the topology checks and the
graphs read the kind names, start order and roles from there, so a kind is added in one place.
The router modules are also what `bgplab.testing` runs its daemons with: one module per router
kind renders its configs, drives its CLI and parses its output, for the lab and the tests alike.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime


class ConfigCheckError(ValueError):
    """A node's config refused by its daemon's own checker; names the file and the line."""


class NotSupported(RuntimeError):
    """Asked of a node what its kind cannot do; the message names the node and its kind."""


class RunningNode(ABC):
    """One node of a lab, whatever its kind: what the lab, faults, scenarios and the CLI may ask
    of it. A capability only some kinds have (a daemon to restart, a control socket) is a method
    here that the others refuse with `NotSupported`, so callers never look at a node's class."""

    node: Node

    def spawn(self) -> None:
        """Start what takes long to start without waiting for it, before `start` (our nodes'
        interpreters import while the routers start); most kinds have nothing to do here."""
        return None

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def healthy(self) -> str | None:
        """None when running; otherwise why not (e.g. a daemon exited, with its log's tail)."""

    @abstractmethod
    def sessions(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]: ...

    @abstractmethod
    def stop(self) -> None: ...

    def blind(self) -> str | None:
        """Why bgplab cannot see this node's BGP (a user's image it has no CLI for), or None: its
        sessions and routes are then none, rather than a guess."""
        return None

    def command_args(self, args: list[str]) -> list[str]:
        """A command for `bgplab exec`, pointed at this node's own instance of a tool (vtysh at
        its own FRR, not a system one); most kinds run commands as given."""
        return args

    def no_power_loss(self) -> str | None:
        """Why a node fault (power loss, then power back) cannot be done to this node, or None."""
        return None

    def kill_daemon(self) -> None:
        """Its BGP daemon dies at once (SIGKILL: no Cease, no cleanup), the rest of the node stays."""
        raise NotSupported(f"{self._what()} has no BGP daemon of its own to kill")

    def restart_daemon(self) -> None:
        """Its BGP daemon back with the node's config, as a supervisor would bring it back."""
        raise NotSupported(f"{self._what()} has no BGP daemon of its own to restart")

    def call(self, command: str, **args: Any) -> Any:
        """A request over bgplab's control protocol (bgplab.expressroute.control): our nodes only."""
        raise NotSupported(f"{self._what()} has no bgplab control socket")

    def follow(self, since: float | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """The node's event records as they happen, and those it kept since `since` (monotonic
        time); a quiet stream past `timeout` raises TimeoutError. Our nodes only."""
        raise NotSupported(f"{self._what()} keeps no event stream; events come from msee and gateway nodes")

    def _what(self) -> str:
        return f"{self.node.name} ({self.node.kind})"


@dataclass(frozen=True)
class Kind:
    """One kind of node, as its module registers it."""

    name: str
    handle: Callable[[LabPlan, Node, Runtime, Path], RunningNode]
    start_rank: int
    """Lower ranks start first: the routers (0) before the MSEEs (1) that peer with them, the
    gateways (2) behind those, and the hosts (3) last."""
    router: bool = False
    """A CE router (a circuit's edge), as opposed to one of our own nodes or a host."""
    events: bool = False
    """Its nodes keep an event stream (`RunningNode.follow`): our own nodes."""
    generated: bool = False
    """Made by the expansion of `expressroute:` (MSEEs, gateways), never written in a topology's `nodes:`."""
    image: str = "bgplab/host:latest"
    """Its container under the docker runtime: bgplab's image with its programs (containers/build).
    Our own nodes' processes run on the host; their containers only hold their namespaces."""


_REGISTRY: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    """Called by each kind's module as it is imported."""
    if kind.name in _REGISTRY:
        raise ValueError(f"kind {kind.name!r} is registered twice")
    _REGISTRY[kind.name] = kind


def kind_of(name: str) -> Kind:
    """A registered kind; a plan's nodes have only those (the topology checks them)."""
    return _REGISTRY[name]


def node_handle(plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> RunningNode:
    """The handle of one node, whether it is about to start or has run since an earlier `up`."""
    if node.kind not in _REGISTRY:
        raise ConfigCheckError(f"node {node.name}: kind {node.kind!r} cannot run in a lab; "
                               f"known kinds: {', '.join(_REGISTRY)}")
    return _REGISTRY[node.kind].handle(plan, node, runtime, workdir)


# The kinds, in the order messages list them; importing a module registers its kinds.
for _module in ("frr", "bird", "gobgp", "exabgp", "linux", "ours", "host"):
    importlib.import_module(f"{__name__}.{_module}")

KINDS = tuple(_REGISTRY)
ROUTER_KINDS = tuple(k.name for k in _REGISTRY.values() if k.router)
USER_KINDS = tuple(k.name for k in _REGISTRY.values() if not k.generated)
"""What a topology's `nodes:` may name."""
GENERATED_KINDS = tuple(k.name for k in _REGISTRY.values() if k.generated)
