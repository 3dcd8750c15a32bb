"""Our own nodes (msee, gateway): `python -m bgplab node KIND --config FILE`, talked to over the control socket.

The process runs in the host's namespace and opens each socket inside the namespace it belongs
to (one per MSEE peering); its config is the plan's node spec with real namespace names, the
lab's profile, the shared ExpressRoute model and a control socket in the lab's directory.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bgplab.expressroute import control
from bgplab.lab.kinds import Kind, RunningNode, register
from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime

READY_TIMEOUT = 30.0


class OurNode(RunningNode):
    def __init__(self, plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> None:
        self.plan = plan
        self.node = node
        self.runtime = runtime
        self.workdir = workdir
        self.control = str(workdir / "control.sock")
        self.log = workdir / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> dict[str, Any]:
        spec: dict[str, Any] = json.loads(json.dumps(dict(self.node.spec)))  # a deep copy, to fill in
        if self.node.kind == "msee":
            for place in spec.get("peerings", {}).values():
                place["netns"] = self.runtime.netns_path(place["netns"])
        else:
            spec["netns"] = self.runtime.netns_path(spec["netns"])
        spec.update(name=self.node.name, kind=self.node.kind, control=self.control, profile=self.plan.profile,
                    expressroute=self.plan.expressroute)
        return spec

    def spawn(self) -> None:
        """Start the process without waiting for it: our nodes import Python for half a second,
        which overlaps with the routers starting."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / "node.json"
        path.write_text(json.dumps(self.config(), indent=1))
        with open(self.log, "ab") as log:
            self.proc = self.runtime.popen(
                None, [sys.executable, "-m", "bgplab", "node", self.node.kind, "--config", str(path)],
                node=self.node.name, what=self.node.kind, stdout=subprocess.PIPE, stderr=log,
            )

    def start(self) -> None:
        if self.proc is None:
            self.spawn()
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b'{"type": "ready"'):
            raise RuntimeError(f"{self.node.name} ({self.node.kind}) did not start: {self._tail()}")
        self.proc.stdout.close()

    def _tail(self) -> str:
        try:
            return self.log.read_text()[-2000:].strip() or "no output"
        except FileNotFoundError:
            return "no log"

    def call(self, command: str, **args: Any) -> Any:
        return control.call(self.control, command, **args)

    def follow(self, since: float | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        return control.follow(self.control, since=since, timeout=timeout)

    def healthy(self) -> str | None:
        try:
            self.call("status")
        except control.ControlError as exc:
            return f"{exc}; log: {self._tail()[-500:]}"
        return None

    def sessions(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.call("sessions")
        return rows

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        args = {k: v for k, v in options.items() if v is not None}
        rows: list[dict[str, Any]] = self.call("routes", family=family, **args)
        return rows

    def stop(self) -> None:
        """SIGTERM and wait: the node closes its sessions with a Cease and removes its kernel routes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            deadline = time.monotonic() + 10
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


register(Kind("msee", OurNode, start_rank=1, events=True, generated=True))
register(Kind("gateway", OurNode, start_rank=2, events=True, generated=True))
