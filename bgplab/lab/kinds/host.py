"""A host: a namespace with addresses and a default route, nothing running, no BGP."""

from __future__ import annotations

from typing import Any

from bgplab.lab.kinds import Kind, RunningNode, register
from bgplab.lab.plan import Node


class HostNode(RunningNode):
    def __init__(self, node: Node) -> None:
        self.node = node

    def start(self) -> None:
        pass

    def healthy(self) -> str | None:
        return None

    def sessions(self) -> list[dict[str, Any]]:
        return []

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        return []

    def stop(self) -> None:
        pass


register(Kind("host", lambda plan, node, runtime, workdir: HostNode(node), start_rank=3))
