"""The on-disk record of everything a lab created, so `bgplab down` can undo it after any crash.

Each resource is journaled *before* it is created (one JSON line, flushed and synced), so even an
`up` killed with SIGKILL between two steps leaves a record that covers what exists. `down` then
undoes what the journal names, tolerating what was never created or is already gone: processes
(by pid, only if the start time still matches), then, newest first, every resource the runtime
journaled, each undone by the runtime that made it (a container; a namespace: what still runs in
it, then the namespace, with every link and address in it), then the lab's directory.

Everything of a lab lives in one directory, `$BGPLAB_STATE_DIR/<lab>` (default /run/bgplab):
the journal, node configs, control sockets, daemon working directories and logs.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgplab.lab import system
from bgplab.lab.runtime import RESOURCES

STATE_ROOT_ENV = "BGPLAB_STATE_DIR"
DEFAULT_ROOT = "/run/bgplab"


def state_root() -> Path:
    return Path(os.environ.get(STATE_ROOT_ENV, DEFAULT_ROOT))


@dataclass(frozen=True, slots=True)
class Teardown:
    """What `down` removed, for its report."""

    processes: int
    namespaces: int
    containers: int = 0
    networks: int = 0


class LabState:
    def __init__(self, lab: str, root: Path | None = None) -> None:
        self.lab = lab
        self.dir = (root or state_root()) / lab
        self.journal = self.dir / "journal.jsonl"

    def exists(self) -> bool:
        return self.journal.exists()

    def begin(self, header: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.record("lab", **header)

    def record(self, entry_type: str, /, **fields: Any) -> None:
        line = json.dumps({"type": entry_type, **fields}) + "\n"
        with open(self.journal, "a") as out:
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def entries(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        try:
            lines = self.journal.read_text().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash mid-write: what it named was not created yet
            if kind is None or entry.get("type") == kind:
                yield entry

    def header(self) -> dict[str, Any]:
        return next(self.entries("lab"), {})

    def status(self) -> str:
        """"up" once `up` finished, "starting" while (or if it died while) it ran, "absent"."""
        if not self.exists():
            return "absent"
        states = [e["state"] for e in self.entries("status")]
        return states[-1] if states else "starting"

    def teardown(self) -> Teardown:
        processes = 0
        for entry in reversed(list(self.entries("process"))):
            pid, started = int(entry["pid"]), entry.get("start")
            if system.start_time(pid) == started and system.alive(pid):
                system.kill_pids([pid])
                processes += 1
        removed = {"namespace": 0, "container": 0, "network": 0}
        for entry in reversed([e for e in self.entries() if e.get("type") in RESOURCES]):
            gone, ended = RESOURCES[entry["type"]](entry)
            processes += ended
            removed[entry["type"]] = removed.get(entry["type"], 0) + int(gone)
        shutil.rmtree(self.dir, ignore_errors=True)
        return Teardown(processes, removed["namespace"], removed["container"], removed["network"])


def labs(root: Path | None = None) -> list[LabState]:
    """Every lab with a record on this machine."""
    base = root or state_root()
    if not base.is_dir():
        return []
    return [LabState(p.name, base) for p in sorted(base.iterdir()) if (p / "journal.jsonl").exists()]
