"""Node kinds: how each kind is configured, started, checked and asked about its sessions and routes.

Every kind answers in one schema whoever the speaker is (our MSEE, FRR, ...), so `bgplab status`
and the tests compare like with like:

* a session: `node`, `peering` (for MSEEs, else null), `neighbor`, `role`, `local_as`,
  `remote_as`, `state` (RFC 4271 names in lower case), `uptime` (s or null), `received`,
  `accepted`, `advertised`, `bfd` (up/down/init/admindown or null), `flaps`;
* a route: `network`, `next_hop`, `path`, `origin`, `med`, `local_pref`, `communities`,
  `large_communities`, `family`, `source`, `best`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
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

    def command_args(self, args: list[str]) -> list[str]:
        """A command for `bgplab exec`, pointed at this node's own instance of a tool (vtysh at
        its own FRR, not a system one); most kinds run commands as given."""
        return args

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


def node_handle(plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> RunningNode:
    """The handle of one node, whether it is about to start or has run since an earlier `up`."""
    from bgplab.lab.kinds import bird, exabgp, frr, gobgp, host, ours

    routers: dict[str, type[frr.FrrNode | bird.BirdNode | gobgp.GobgpNode | exabgp.ExabgpNode]] = {
        "frr": frr.FrrNode, "bird": bird.BirdNode, "gobgp": gobgp.GobgpNode, "exabgp": exabgp.ExabgpNode,
    }
    if node.kind in routers:
        return routers[node.kind](plan, node, runtime, workdir)
    if node.kind in ("msee", "gateway"):
        return ours.OurNode(plan, node, runtime, workdir)
    if node.kind == "host":
        return host.HostNode(node)
    known = ", ".join([*routers, "msee", "gateway", "host"])
    raise ConfigCheckError(f"node {node.name}: kind {node.kind!r} cannot run in a lab; known kinds: {known}")
