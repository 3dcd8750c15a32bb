"""Running labs from tests exactly as a user does: the `bgplab` CLI as a subprocess.

Each lab gets a unique name and a private state directory, so tests never meet a user's labs or
each other, and `running_lab` always takes the lab down and checks that nothing of it is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bgplab.lab import system
from bgplab.lab.runtime.docker import LAB_LABEL, client
from bgplab.lab.runtime.netns import namespace_pids

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
_T = TypeVar("_T")


class Cli:
    """`bgplab ...` as a subprocess, with the test's own state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.env = {**os.environ, "BGPLAB_STATE_DIR": str(state_dir)}
        self.state_dir = state_dir

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "bgplab", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"bgplab {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "bgplab", *args], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def state_dir() -> Iterator[Path]:
    """A private state directory the `frr` user can traverse (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="bgplab-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def leftovers(name: str, runtime: str = "netns") -> dict[str, list[str]]:
    """Namespaces of the lab, processes in any of them, and (docker) its containers, still on the machine."""
    found = sorted(n for n in os.listdir("/run/netns") if n.startswith(f"bl-{name}-")) if os.path.isdir(
        "/run/netns") else []
    left = {"namespaces": found, "processes": [str(p) for ns in found for p in namespace_pids(ns)]}
    if runtime == "docker":
        left["containers"] = containers(name)
    return left


def containers(name: str) -> list[str]:
    """Every container carrying the lab's label, running or not."""
    return sorted(c.name for c in client().containers.list(all=True, filters={"label": f"{LAB_LABEL}={name}"}))


def node_pids(state: Path, name: str) -> list[int]:
    journal = state / name / "journal.jsonl"
    entries = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    return [e["pid"] for e in entries if e["type"] == "process"]


def wait_for(what: str, predicate: Callable[[], _T], timeout: float = 30.0) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.3)


@contextlib.contextmanager
def running_lab(topology: str | Path, prefix: str, runtime: str = "netns") -> Iterator[tuple[Cli, str, dict[str, Any]]]:
    """`bgplab up` a lab (a ready one by file name, or any path) under a unique name, on a
    runtime; `bgplab down` it and prove nothing is left."""
    with state_dir() as state:
        cli = Cli(state)
        name = unique(prefix)
        try:
            up = cli.run("up", str(TOPOLOGIES / topology), "--name", name, "--runtime", runtime, "--json",
                         check=False)
            assert up.returncode == 0, f"up exited {up.returncode}: {up.stdout}\n{up.stderr}"
            yield cli, name, json.loads(up.stdout)
        finally:
            pids = node_pids(state, name)
            cli.run("down", name, check=False)
            assert not any(leftovers(name, runtime).values()), leftovers(name, runtime)
            assert not [p for p in pids if system.alive(p)]
