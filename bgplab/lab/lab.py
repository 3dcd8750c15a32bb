"""A lab: a plan, its state on disk, and the nodes running in it.

`Lab.up` builds the namespaces and links, starts every node and records all of it; anything that
fails half way is undone before the error is raised. A lab outlives the `bgplab up` process:
`Lab.open(name)` finds it again from its state (the plan is kept there), which is how `status`,
`routes`, `exec` and `down` work from another shell, or after a crash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from bgplab.lab.kinds import ConfigCheckError, RunningNode, kind_of, node_handle
from bgplab.lab.plan import LabPlan, plan_from_data, plan_to_data
from bgplab.lab.runtime import make_runtime
from bgplab.lab.state import LabState, Teardown, labs

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """A lab that cannot be brought up, found or acted on; the message says what to do."""


class Lab:
    def __init__(self, plan: LabPlan, state: LabState | None = None) -> None:
        self.plan = plan
        self.state = state or LabState(plan.name)
        self.runtime = make_runtime(plan, self.state)
        self._handles: dict[str, RunningNode] = {}

    @classmethod
    def open(cls, name: str | None = None) -> Lab:
        """A lab that is up (or half up), by name; with no name, the only one there is."""
        if name is None:
            known = labs()
            if len(known) != 1:
                names = ", ".join(s.lab for s in known) or "none"
                raise LabError(f"{'several labs are' if known else 'no lab is'} up ({names}); name one with --lab")
            state = known[0]
        else:
            state = LabState(name)
            if not state.exists():
                up = ", ".join(s.lab for s in labs()) or "none"
                raise LabError(f"no lab {name!r} is up (labs up: {up})")
        header = state.header()
        if "plan" not in header:
            raise LabError(f"lab {state.lab}: its state has no plan (`up` killed at once?); `bgplab down {state.lab}`")
        return cls(plan_from_data(header["plan"]), state)

    def node(self, name: str) -> RunningNode:
        if name not in self.plan.nodes:
            known = ", ".join(sorted(self.plan.nodes))
            raise LabError(f"no node {name!r} in lab {self.plan.name}; nodes: {known}")
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = node_handle(
                self.plan, self.plan.nodes[name], self.runtime, self.state.dir / "nodes" / name
            )
        return handle

    def gateway(self, vnet: str) -> RunningNode:
        """The gateway node of a VNet, by the VNet's name."""
        if vnet not in self.plan.gateways:
            known = ", ".join(sorted(self.plan.gateways)) or "none"
            raise LabError(f"no VNet {vnet!r} in lab {self.plan.name}; VNets: {known}")
        return self.node(self.plan.gateways[vnet])

    # ---- lifecycle

    def up(self, progress: Progress | None = None) -> None:
        say = progress or (lambda _: None)
        if self.plan.management is not None and self.plan.runtime != "docker":
            raise ConfigCheckError("management: a management network is the docker runtime's (`runtime: docker`, "
                                   "or `bgplab up --runtime docker`)")
        status = self.state.status()
        if status == "up":
            raise LabError(f"lab {self.plan.name} is already up; `bgplab down {self.plan.name}` first")
        if status == "starting":
            raise LabError(f"an earlier `up` of lab {self.plan.name} did not finish; `bgplab down {self.plan.name}`")
        self.state.begin({"plan": plan_to_data(self.plan), "started": time.time(), "pid": os.getpid()})
        try:
            say(f"creating {len(self.plan.namespaces)} namespaces and {len(self.plan.links)} links")
            self.runtime.build()
            order = sorted(self.plan.nodes, key=lambda n: (kind_of(self.plan.nodes[n].kind).start_rank, n))
            for name in order:
                self.node(name).spawn()
            for name in order:
                kind = self.plan.nodes[name].kind
                if kind != "host":
                    say(f"starting {name} ({kind})")
                self.node(name).start()
            self.state.record("status", state="up")
        except BaseException:
            self.down()  # first: nothing, not even a broken progress pipe, may keep it from running
            raise

    def down(self) -> Teardown:
        return self.state.teardown()

    # ---- views

    def sessions(self) -> list[dict[str, Any]]:
        """Every node's sessions; a node that cannot answer (stopped, crashed) has none to show,
        and says why through `healthy()`."""
        rows = []
        for name in sorted(self.plan.nodes):
            try:
                rows += self.node(name).sessions()
            except (RuntimeError, OSError, ValueError):
                if self.node(name).healthy() is None:
                    raise
        return rows

    def wait_established(self, timeout: float, progress: Progress | None = None) -> list[dict[str, Any]]:
        """Poll until every session of every node is established; the ones that are not, at the deadline."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            rows = self.sessions()
            waiting = [r for r in rows if r["state"] != "established"]
            note = f"sessions: {len(rows) - len(waiting)}/{len(rows)} established"
            if progress is not None and note != last:
                progress(note)
                last = note
            if not waiting or time.monotonic() >= deadline:
                return waiting
            for name in self.plan.nodes:
                problem = self.node(name).healthy()
                if problem:
                    raise LabError(f"node {name} is not running: {problem}")
            time.sleep(0.25)

    def exec_args(self, node: str, args: list[str]) -> list[str]:
        """The host command line that runs args in a node (in its main namespace)."""
        handle = self.node(node)  # an unknown node raises, naming the ones there are
        return self.runtime.exec_argv(self.plan.nodes[node].namespaces[0], handle.command_args(args))
