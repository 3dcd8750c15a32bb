"""The bgplab pytest plugin: labs as fixtures, scenario expectations as assertions.

Installed with bgplab (entry point `pytest11`), so any project's tests can say:

    def test_failover(bgplab_lab):
        lab = bgplab_lab("lab.yaml")                      # up now, down after the test, whatever happens
        # (runtime="docker": the same lab in containers, whatever the file's `runtime:` says)
        lab.expect({"sessions": "established"}, within=30)
        probe = lab.probe("vm-onprem", "azure-vm", "onprem", rate=200)
        lab.fail("link", "ce1:eth1")
        lab.expect({"effective_route": {"vnet": "hub", "prefix": "10.1.0.0/16", "next_hops": ["169.254.0.5"]}})
        lab.expect({"probe": "vm-onprem", "loss_window": {"count": 1, "max": "1.5s"}})

    async def test_async(bgplab_lab):
        lab = bgplab_lab("lab.yaml")
        await lab.wait_for({"route": {"at": "ce1", "prefix": "10.100.0.0/16", "path": "12076"}})

Expectations are exactly a scenario's (bgplab.lab.scenario): retried until they hold or the
deadline passes, and a failure says what was expected, what was last seen and what happened
around it. `bgplab_module_lab` shares one lab across a module. When a test fails, its labs'
sessions, every node's routes, our nodes' events, probe reports and the daemons' logs are
saved under `--bgplab-artifacts` (default `bgplab-artifacts/`), one directory per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bgplab.lab import system
from bgplab.lab.faults import Applied, Fault, Faults
from bgplab.lab.lab import Lab
from bgplab.lab.probes import Probe, ProbeSpec
from bgplab.lab.scenario import PROBE_START, Runner, Scenario
from bgplab.lab.state import LabState
from bgplab.lab.topology import load_topology

LabFactory = Callable[..., "LabSession"]


class LabSession:
    """One running lab, for one test or one module."""

    def __init__(self, topology: str | Path, *, name: str | None = None, runtime: str | None = None) -> None:
        self.topology = Path(topology)
        plan = load_topology(self.topology)
        plan = replace(plan, name=name or f"{plan.name[:12]}-{secrets.token_hex(2)}", runtime=runtime or plan.runtime)
        self.root = Path(tempfile.mkdtemp(prefix="bgplab-pytest-"))
        self.root.chmod(0o755)  # FRR drops privileges and must reach its working directory
        self.lab = Lab(plan, LabState(plan.name, self.root))
        self.runner = Runner(Scenario(plan.name, str(self.topology), self.topology, (), ()), lab=self.lab)
        self.probes: dict[str, Probe] = self.runner.probes

    def up(self) -> LabSession:
        self.lab.up()
        return self

    def down(self) -> None:
        for probe in list(self.probes.values()):
            with contextlib.suppress(RuntimeError):
                probe.stop()
        self.lab.down()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- expectations

    def expect(self, expectation: Mapping[str, Any], within: float | None = None) -> Any:
        """Assert an expectation eventually holds; returns what was seen when it did."""
        result = self.runner.check(expectation, within)
        if not result.ok:
            raise AssertionError(result.message)
        return result.seen

    async def wait_for(self, expectation: Mapping[str, Any], within: float | None = None) -> Any:
        return await asyncio.to_thread(self.expect, expectation, within)

    # ---- acting

    def fail(self, kind: str, target: str, **options: Any) -> Applied:
        return Faults(self.lab).fail(Fault(kind, target, options))

    def restore(self, kind: str, target: str, **options: Any) -> Applied:
        return Faults(self.lab).restore(Fault(kind, target, options))

    def probe(self, name: str, source: str, destination: str, *, rate: float = 100.0) -> Probe:
        """A running probe whose first packet has arrived (a fault right after it is then counted)."""
        probe = Probe(self.lab, ProbeSpec(name, source, destination, rate=rate))
        probe.start()
        self.probes[name] = probe
        if not probe.wait_flowing(PROBE_START):
            raise AssertionError(f"probe {name}: no packet from {source} reached {destination} "
                                 f"within {PROBE_START:g}s of its start")
        return probe

    def exec(self, node: str, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return system.run(self.lab.exec_args(node, list(command)), check)

    def sessions(self) -> list[dict[str, Any]]:
        return self.lab.sessions()

    def routes(self, node: str, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        return self.lab.node(node).routes(family, **options)

    # ---- artefacts

    def save_artifacts(self, directory: Path) -> None:
        """What one needs to see why a test failed, written before the lab goes."""
        directory.mkdir(parents=True, exist_ok=True)

        def dump(name: str, produce: Callable[[], Any]) -> None:
            try:
                (directory / name).write_text(json.dumps(produce(), indent=1, default=str))
            except Exception as exc:  # a broken node must not hide the others' artefacts
                (directory / name).write_text(json.dumps({"error": str(exc)}))

        dump("sessions.json", self.sessions)
        for node in sorted(self.lab.plan.nodes):
            if self.lab.plan.nodes[node].kind != "host":
                dump(f"routes-{node}.json", lambda node=node: self.routes(node))  # type: ignore[misc]
        dump("events.json", lambda: self.runner._events(0.0))
        dump("expectations.json", lambda: [r.to_json() for r in self.runner.done])
        dump("probes.json", lambda: {k: p.snapshot().to_json() for k, p in self.probes.items()})
        dump("faults.json", lambda: list(self.lab.state.entries("fault")))
        logs = directory / "logs"
        for path in (self.lab.state.dir / "nodes").glob("*/*"):
            if path.suffix in (".log", ".out", ".conf", ".json") and path.is_file():
                target = logs / path.parent.name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bgplab")
    group.addoption("--bgplab-artifacts", default="bgplab-artifacts",
                    help="where failed tests' lab snapshots go (default: bgplab-artifacts/)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        item.stash[_FAILED] = True


_FAILED = pytest.StashKey[bool]()


def _factory(request: pytest.FixtureRequest, sessions: list[LabSession]) -> LabFactory:
    def make(topology: str | Path, *, name: str | None = None, runtime: str | None = None) -> LabSession:
        base = Path(str(request.node.path)).parent if hasattr(request.node, "path") else Path.cwd()
        path = Path(topology) if Path(topology).is_absolute() else base / topology
        session = LabSession(path, name=name, runtime=runtime)
        sessions.append(session)
        return session.up()

    return make


def _teardown(request: pytest.FixtureRequest, sessions: list[LabSession], item: pytest.Item | None) -> None:
    failed = item is not None and item.stash.get(_FAILED, False)
    for session in sessions:
        try:
            if failed:
                safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid if item is not None else "module")
                session.save_artifacts(Path(request.config.getoption("--bgplab-artifacts")) / safe)
        finally:
            session.down()


@pytest.fixture
def bgplab_lab(request: pytest.FixtureRequest) -> Iterator[LabFactory]:
    """`bgplab_lab("lab.yaml")`: a lab up for this test (path relative to the test file), always taken down."""
    sessions: list[LabSession] = []
    yield _factory(request, sessions)
    _teardown(request, sessions, request.node)


@pytest.fixture(scope="module")
def bgplab_module_lab(request: pytest.FixtureRequest) -> Iterator[LabFactory]:
    """Like bgplab_lab, one lab shared by every test of the module (artefacts if any of them failed)."""
    sessions: list[LabSession] = []
    yield _factory(request, sessions)
    failed = [item for item in request.session.items
              if item.stash.get(_FAILED, False) and getattr(item, "module", None) is request.module]
    _teardown(request, sessions, failed[0] if failed else None)
