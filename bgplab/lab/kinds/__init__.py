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

from pathlib import Path
from typing import Any, Protocol

from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime.netns import NetnsRuntime


class ConfigCheckError(ValueError):
    """A node's config refused by its daemon's own checker; names the file and the line."""


class RunningNode(Protocol):
    node: Node

    def start(self) -> None: ...
    def healthy(self) -> str | None:
        """None when running; otherwise why not (e.g. a daemon exited, with its log's tail)."""
    def sessions(self) -> list[dict[str, Any]]: ...
    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]: ...
    def stop(self) -> None: ...


def node_handle(plan: LabPlan, node: Node, runtime: NetnsRuntime, workdir: Path) -> RunningNode:
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
