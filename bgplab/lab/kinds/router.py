"""What the CE router kinds share: where a node lives, where its config comes from, its pid and log.

Each kind (FRR, BIRD, GoBGP, ExaBGP) keeps a private working directory in the lab's state with a
pid file and a log named after its main program, takes its config from the user's file or renders
one from the topology's intent, and is up once some kind-specific sign appears; the rest (how to
start it, how to read its sessions and routes) is the kind's own.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from bgplab.lab import system
from bgplab.lab.kinds import RunningNode
from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime


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
