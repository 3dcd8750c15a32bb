"""Scenarios: ordered steps of faults, waits and expectations, run against a lab, with a report.

```yaml
name: primary link loss
topology: ../topologies/connect-to.yaml      # relative to this file
probes: [{name: vm-onprem, from: azure-vm, to: onprem, rate: 200}]
steps:
  - expect: {sessions: established, within: 30s}
  - expect: {effective_route: {vnet: hub, prefix: 10.1.0.0/16, next_hops: [169.254.0.1]}}
  - fault: {link: ce1:eth1}
  - expect: {effective_route: {vnet: hub, prefix: 10.1.0.0/16, next_hops: [169.254.0.5]}, within: 3s}
  - expect: {path: {probe: vm-onprem, via: contoso-ams-msee2.private}}
  - measure: {probe: vm-onprem, loss_window: {max: 1.5s, count: 1}}
  - restore: {link: ce1:eth1}
```

Expectations are "eventually": retried until they hold or their deadline passes. Without
`within`, the deadline comes from the timers in force (`fast`: 15 s, `azure`: 200 s: a hold
timer and then some), so a scenario written for one profile does not need editing for the other.
A failed expectation explains itself: what was expected, what was last seen, and the events of
our nodes around that moment. Faults are `bgplab.lab.faults` (`{KIND: TARGET, option: value}`,
or `restore: all`).

Other steps: `wait: 2s`; `exec: {node, command: [...]}` or `exec: {node, vtysh: [config lines]}`
(a change on a router, e.g. withdrawing a route).

Expectation kinds:
- `sessions: established` (every session of every node), or `{node, neighbor?, state}`
- `route: {at, prefix, present: true, path, next_hop, communities, count, best_from, peering, family}`
- `effective_route: {vnet, prefix, next_hop_type, next_hops, present}`
- `reachable: {from, to, ok: true}` (ping)
- `path: {probe, via}`: the probe's latest packets went this way (a path mark: the namespace of
  an MSEE peering, `azure-internet`; or a list of them, for ECMP)
- `measure: {probe, loss_window: {max, min, count}}`: the loss windows so far (one that opens the
  run, before any packet arrived, is the probe starting, not an outage, and is not counted)
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from bgplab.expressroute import control
from bgplab.expressroute.profile import profile
from bgplab.lab import system
from bgplab.lab.faults import KINDS as FAULT_KINDS
from bgplab.lab.faults import Fault, FaultError, Faults
from bgplab.lab.kinds import kind_of
from bgplab.lab.lab import Lab
from bgplab.lab.probe_report import LossWindow, ProbeReport
from bgplab.lab.probes import Probe, ProbeSpec
from bgplab.lab.settings import SettingError, Settings
from bgplab.lab.topology import load_topology
from bgplab.source import SourceError, YamlError, load_yaml

POLL = 0.25
PROBE_START = 10.0
"""Seconds a newly started probe has for its first packet to arrive before the step it precedes runs."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_STEP_KINDS = ("expect", "fault", "restore", "wait", "measure", "exec", "set")


class ScenarioError(ValueError):
    """A scenario file that cannot run: names the file, the line and the step."""


def duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ScenarioError(f"{where}: {value!r} is not a duration; write 500ms, 2s or 1m")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


@dataclass(frozen=True, slots=True)
class Step:
    index: int
    kind: str
    data: Any
    line: int | None
    within: float | None = None

    def describe(self) -> str:
        data = self.data if not isinstance(self.data, dict) else {k: v for k, v in self.data.items() if k != "within"}
        return f"{self.kind} {json.dumps(data, separators=(', ', ': '))}"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    source: str
    topology: Path
    probes: tuple[ProbeSpec, ...]
    steps: tuple[Step, ...]


def _open_window(report: ProbeReport) -> LossWindow | None:
    """The loss window still open at the report's end (packets not arriving now), if any."""
    last = report.windows[-1] if report.windows else None
    return last if last is not None and report.sent and last.last_lost == report.sent - 1 else None


def _check_setting(body: Any, where: str) -> None:
    if (not isinstance(body, dict) or not {"vnet", "circuit"} <= set(body)
            or len(set(body) & {"weight", "connected"}) != 1 or set(body) - {"vnet", "circuit", "weight", "connected"}):
        raise ScenarioError(f"{where}: set is {{vnet, circuit, weight: N}} or {{vnet, circuit, connected: true|false}}")
    if "weight" in body and (not isinstance(body["weight"], int) or isinstance(body["weight"], bool)):
        raise ScenarioError(f"{where}: set: weight {body['weight']!r}: expected a whole number 0-32000")
    if "connected" in body and not isinstance(body["connected"], bool):
        raise ScenarioError(f"{where}: set: connected {body['connected']!r}: expected true or false")


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        data, src = load_yaml(path.read_text(), str(path))
    except YamlError as exc:
        raise ScenarioError(f"{exc.where}: not valid YAML: {exc.detail}") from None
    except SourceError as exc:  # a duplicate key
        raise ScenarioError(str(exc)) from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping with name, topology, probes, steps")
    unknown = set(data) - {"name", "topology", "probes", "steps", "description"}
    if unknown:
        raise ScenarioError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
                            "allowed: name, description, topology, probes, steps")
    if "topology" not in data:
        raise ScenarioError(f"{path}: topology: required (a topology file, relative to the scenario)")
    topology = (path.parent / str(data["topology"])).resolve()
    if not topology.exists():
        raise ScenarioError(f"{path}: topology: {topology} does not exist")
    probes = []
    for i, spec in enumerate(data.get("probes") or []):
        where = f"{path}: probes[{i}]"
        if not isinstance(spec, dict) or not {"name", "from", "to"} <= set(spec):
            raise ScenarioError(f"{where}: a probe is {{name, from, to, rate?}}")
        probes.append(ProbeSpec(str(spec["name"]), str(spec["from"]), str(spec["to"]),
                                rate=float(spec.get("rate", 100.0))))
    steps = []
    for i, raw in enumerate(data.get("steps") or []):
        line = src.lines.get(f"steps[{i}]")
        where = f"{path}:{line or '?'}: steps[{i}]"
        if not isinstance(raw, dict) or len(set(raw) & set(_STEP_KINDS)) != 1:
            raise ScenarioError(f"{where}: a step is one of {', '.join(_STEP_KINDS)} (with `within` on expect)")
        kind = next(k for k in raw if k in _STEP_KINDS)
        extra = set(raw) - {kind, "within"}
        if extra:
            raise ScenarioError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        body = raw[kind]
        within: float | None
        if isinstance(body, dict) and "within" in body and kind in ("expect", "measure"):
            body = {k: v for k, v in body.items() if k != "within"}  # `expect: {route: ..., within: 3s}`
            within = duration(raw[kind]["within"], where)
        else:
            within = duration(raw["within"], where) if "within" in raw else None
        if kind == "wait":
            duration(raw[kind], where)
        if kind == "set":
            _check_setting(body, where)
        steps.append(Step(i, kind, body, line, within))
    if not steps:
        raise ScenarioError(f"{path}: steps: a scenario needs at least one step")
    return Scenario(str(data.get("name", path.stem)), str(path), topology, tuple(probes), tuple(steps))


# ---------------------------------------------------------------- results


@dataclass(slots=True)
class StepResult:
    step: Step
    ok: bool
    started: float
    ended: float
    message: str = ""
    seen: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"index": self.step.index, "line": self.step.line, "step": self.step.describe(), "ok": self.ok,
                "started": round(self.started, 6), "seconds": round(self.ended - self.started, 3),
                "message": self.message, "seen": self.seen}


@dataclass(slots=True)
class ScenarioResult:
    scenario: Scenario
    lab: str
    profile: str
    started: float
    ended: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    probes: dict[str, ProbeReport] = field(default_factory=dict)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(s.ok for s in self.steps) and len(self.steps) == len(self.scenario.steps)

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "source": self.scenario.source, "lab": self.lab,
                "profile": self.profile, "profile_caveat": profile(self.profile).caveat or None,
                "passed": self.passed, "error": self.error,
                "seconds": round(self.ended - self.started, 3), "steps": [s.to_json() for s in self.steps],
                "faults": self.faults, "probes": {k: v.to_json() for k, v in self.probes.items()},
                "events": self.events}

    def text(self) -> str:
        lines = [f"scenario {self.scenario.name} ({self.scenario.source}) on lab {self.lab}, profile {self.profile}"]
        if profile(self.profile).caveat:
            lines.append(f"  NOTE {profile(self.profile).caveat}")
        for r in self.steps:
            mark = "ok  " if r.ok else "FAIL"
            lines.append(f"  {mark} +{r.started - self.started:7.2f}s  {r.step.describe()}"
                         + (f"  ({r.ended - r.started:.2f}s)" if r.step.kind == "expect" else ""))
            if not r.ok:
                lines += ["         " + line for line in r.message.splitlines()]
        for report in self.probes.values():
            lines += ["  " + line for line in report.summary().splitlines()]
        if self.error:
            lines.append(f"  ERROR: {self.error}")
        lines.append(f"{'PASSED' if self.passed else 'FAILED'} in {self.ended - self.started:.1f}s")
        return "\n".join(lines)

    def junit(self) -> str:
        suite = ET.Element("testsuite", name=self.scenario.name, tests=str(len(self.scenario.steps)),
                           failures=str(sum(1 for s in self.steps if not s.ok)),
                           errors="1" if self.error else "0", time=f"{self.ended - self.started:.3f}")
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="profile", value=self.profile)
        if profile(self.profile).caveat:
            ET.SubElement(properties, "property", name="profile_caveat", value=profile(self.profile).caveat)
        for r in self.steps:
            case = ET.SubElement(suite, "testcase", classname=self.scenario.name,
                                 name=f"{r.step.index:02d} {r.step.describe()}", time=f"{r.ended - r.started:.3f}")
            if not r.ok:
                failure = ET.SubElement(case, "failure", message=r.message.splitlines()[0] if r.message else "failed")
                failure.text = r.message
        for missing in self.scenario.steps[len(self.steps):]:
            case = ET.SubElement(suite, "testcase", classname=self.scenario.name,
                                 name=f"{missing.index:02d} {missing.describe()}")
            ET.SubElement(case, "skipped", message="not reached")
        if self.error:
            ET.SubElement(suite, "system-err").text = self.error
        return ET.tostring(suite, encoding="unicode")

    def html(self) -> str:
        return timeline_html(self)


# ---------------------------------------------------------------- running


class Runner:
    """Runs a scenario on a lab it brings up (and always takes down), or on a running one."""

    def __init__(self, scenario: Scenario, *, lab: Lab | None = None, keep: bool = False, name: str | None = None,
                 runtime: str | None = None, profile: str | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.scenario = scenario
        self.name = name
        self.runtime = runtime
        self.profile = profile
        self.given = lab
        self.keep = keep
        self.say = progress or (lambda _: None)
        self.lab: Lab | None = lab
        self.probes: dict[str, Probe] = {}
        self.done: list[StepResult] = []

    def run(self) -> ScenarioResult:
        started = time.monotonic()
        lab = self.given
        if lab is None:
            plan = load_topology(self.scenario.topology)
            plan = replace(plan, name=self.name or plan.name, runtime=self.runtime or plan.runtime,
                           profile=self.profile or plan.profile)
            lab = Lab(plan)
            self.say(f"bringing up {plan.name} from {self.scenario.topology}")
            lab.up(self.say)
        self.lab = lab
        result = ScenarioResult(self.scenario, lab.plan.name, lab.plan.profile, started)
        try:
            for step in self.scenario.steps:
                self.say(f"step {step.index}: {step.describe()}")
                outcome = self._step(step, result)
                result.steps.append(outcome)
                if not outcome.ok:
                    break
        except (FaultError, ScenarioError, control.ControlError, system.CommandError, RuntimeError) as exc:
            result.error = str(exc)
        finally:
            for name, probe in self.probes.items():
                try:
                    result.probes[name] = probe.stop()
                except RuntimeError as exc:
                    result.error = result.error or f"probe {name}: {exc}"
            result.events = self._events(started)
            result.ended = time.monotonic()
            if self.given is None and not self.keep:
                lab.down()
        return result

    def check(self, expectation: Mapping[str, Any], within: float | None = None) -> StepResult:
        """One expectation (as a scenario step writes it) on the running lab, eventually."""
        step = Step(len(self.done), "measure" if "loss_window" in expectation else "expect", dict(expectation),
                    None, within)
        result = self._step(step, ScenarioResult(self.scenario, self.lab.plan.name if self.lab else "",
                                                 self.lab.plan.profile if self.lab else "fast", time.monotonic()))
        self.done.append(result)
        return result

    def _start_probes(self) -> str | None:
        """Probes start once the lab has settled (the first step that changes something, or looks
        at packets), so bring-up is not counted as loss, and the step runs only once each probe's
        first packet has arrived: a fault applied sooner would be hidden as the probe warming up.
        The problem, when a probe's packets never arrive."""
        assert self.lab is not None
        for spec in self.scenario.probes:
            if spec.name not in self.probes:
                probe = Probe(self.lab, spec)
                probe.start()
                self.probes[spec.name] = probe
                if not probe.wait_flowing(PROBE_START):
                    return (f"probe {spec.name}: no packet from {spec.source} reached {spec.destination} within "
                            f"{PROBE_START:g}s of its start, so it would measure nothing")
        return None

    def _step(self, step: Step, result: ScenarioResult) -> StepResult:
        if step.kind in ("fault", "restore", "exec", "measure", "set") or (
                step.kind == "expect" and isinstance(step.data, dict) and "path" in step.data):
            began = time.monotonic()
            problem = self._start_probes()
            if problem is not None:
                return StepResult(step, False, began, time.monotonic(), f"{problem} (line {step.line})")
        began = time.monotonic()
        if step.kind == "wait":
            time.sleep(duration(step.data, f"step {step.index}"))
            return StepResult(step, True, began, time.monotonic())
        if step.kind in ("fault", "restore"):
            return self._fault(step, result, began)
        if step.kind == "exec":
            return self._exec(step, began)
        if step.kind == "set":
            return self._set(step, result, began)
        deadline = began + (step.within if step.within is not None
                            else profile(result.profile).expect_within)
        check = self._check(step)
        while True:
            ok, seen, expected = check()
            now = time.monotonic()
            if ok:
                return StepResult(step, True, began, now, seen=seen)
            if now >= deadline:
                around = self._events(now - 3.0, now)
                message = (f"expected {expected} within {deadline - began:g}s (line {step.line})\n"
                           f"last seen: {json.dumps(seen, default=str)}")
                if around:
                    message += "\nevents around it:\n" + "\n".join(
                        f"  {e['time']:.3f} {e.get('node', '')} {e.get('text', e.get('type', ''))}"
                        for e in around[-12:])
                return StepResult(step, False, began, now, message, seen)
            time.sleep(POLL)

    def _fault(self, step: Step, result: ScenarioResult, began: float) -> StepResult:
        assert self.lab is not None
        faults = Faults(self.lab)
        data = step.data
        if step.kind == "restore" and data == "all":
            done = [faults.restore(f) for f in faults.active()]
        else:
            done = [(faults.fail if step.kind == "fault" else faults.restore)(fault_of(data, step))]
        result.faults += [a.to_json() for a in done]
        return StepResult(step, True, began, time.monotonic(), seen=[a.to_json() for a in done])

    def _set(self, step: Step, result: ScenarioResult, began: float) -> StepResult:
        assert self.lab is not None
        data, settings = step.data, Settings(self.lab)
        try:
            if "weight" in data:
                done = settings.weight(str(data["vnet"]), str(data["circuit"]), int(data["weight"]))
            else:
                done = settings.connection(str(data["vnet"]), str(data["circuit"]), bool(data["connected"]))
        except SettingError as exc:
            return StepResult(step, False, began, time.monotonic(), f"{exc} (line {step.line})")
        result.faults.append({"kind": done["setting"], "target": f"{data['vnet']}/{data['circuit']}", "options": done,
                              "action": "set", "time": done["time"]})
        return StepResult(step, True, began, time.monotonic(), seen=done)

    def _exec(self, step: Step, began: float) -> StepResult:
        """A command in a node, e.g. a router change: `{node, command: [...]}`, or `{node, vtysh:
        [config lines]}` for FRR configuration mode."""
        assert self.lab is not None
        spec = step.data
        if not isinstance(spec, dict) or "node" not in spec or ("command" in spec) == ("vtysh" in spec):
            raise ScenarioError(f"{self.scenario.source}:{step.line}: exec is {{node, command: [...]}} "
                                "or {node, vtysh: [configuration lines]}")
        if "vtysh" in spec:
            command = ["vtysh", *[a for line in ["configure terminal", *spec["vtysh"]] for a in ("-c", str(line))]]
        else:
            command = [str(a) for a in spec["command"]]
        proc = system.run(self.lab.exec_args(str(spec["node"]), command), check=False)
        ok = proc.returncode == 0
        output = (proc.stdout + proc.stderr).strip()
        return StepResult(step, ok, began, time.monotonic(), "" if ok else f"exit {proc.returncode}: {output}",
                          output[-2000:])

    def _check(self, step: Step) -> Callable[[], tuple[bool, Any, str]]:
        data = step.data
        if step.kind == "measure":
            return lambda: self._loss(data)
        if not isinstance(data, dict) or len(data) != 1:
            raise ScenarioError(f"{self.scenario.source}:{step.line}: expect one of sessions, route, "
                                "effective_route, reachable, path")
        (what, spec), = data.items()
        checks: dict[str, Callable[[Any], tuple[bool, Any, str]]] = {
            "sessions": self._sessions, "route": self._route, "effective_route": self._effective,
            "reachable": self._reachable, "path": self._path,
        }
        if what not in checks:
            raise ScenarioError(f"{self.scenario.source}:{step.line}: unknown expectation {what!r}; "
                                f"known: {', '.join(checks)}")
        return lambda: checks[what](spec)

    # ---- expectations: each returns (ok, what was seen, what was expected)

    def _sessions(self, spec: Any) -> tuple[bool, Any, str]:
        assert self.lab is not None
        rows = self.lab.sessions()
        if spec == "established":
            waiting = [f"{r['node']}->{r['neighbor']}: {r['state']}" for r in rows if r["state"] != "established"]
            return bool(rows) and not waiting, waiting or f"{len(rows)} established", "every session established"
        want = dict(spec)
        state = want.get("state", "established")
        mine = [r for r in rows if r["node"] == want["node"]
                and ("neighbor" not in want or r["neighbor"] == want["neighbor"])
                and ("peering" not in want or r.get("peering") == want["peering"])]
        seen = {f"{r['node']}->{r['neighbor']}": r["state"] for r in mine}
        if state == "absent":
            return not mine, seen, f"no session {want}"
        if "bfd" in want:  # e.g. `bfd: up` before a silent cut: a BFD session not yet Up cannot catch it
            seen = {f"{r['node']}->{r['neighbor']}": f"{r['state']}, bfd {r.get('bfd')}" for r in mine}
            ok = bool(mine) and all(r["state"] == state and r.get("bfd") == want["bfd"] for r in mine)
            return ok, seen, f"sessions {want}"
        return bool(mine) and all(r["state"] == state for r in mine), seen, f"sessions {want} {state}"

    def _route(self, spec: Mapping[str, Any]) -> tuple[bool, Any, str]:
        assert self.lab is not None
        node = str(spec["at"])
        options: dict[str, Any] = {}
        if self.lab.plan.nodes[node].kind == "msee":
            options = {"peering": spec.get("peering", "private"), "direction": spec.get("direction", "table")}
        rows = [r for r in self.lab.node(node).routes(spec.get("family", "ipv4"), **options)
                if r["network"] == spec["prefix"]]
        if not spec.get("present", True):
            return not rows, rows, f"no route {spec['prefix']} at {node}"
        if "count" in spec and len(rows) != int(spec["count"]):
            return False, rows, f"{spec['count']} paths for {spec['prefix']} at {node}"
        best = [r for r in rows if r.get("best", True)] or rows
        if not best:
            return False, rows, f"a route {spec['prefix']} at {node}"
        r = best[0]
        problems = []
        if "path" in spec and r["path"] != str(spec["path"]):
            problems.append(f"path {spec['path']!r}")
        if "next_hop" in spec and r["next_hop"] != spec["next_hop"]:
            problems.append(f"next hop {spec['next_hop']}")
        if "best_from" in spec and r.get("source") != spec["best_from"]:
            problems.append(f"best from {spec['best_from']}")
        missing = set(spec.get("communities", [])) - set(r["communities"])
        if missing:
            problems.append(f"communities {sorted(missing)}")
        return not problems, r, f"{spec['prefix']} at {node} with " + (", ".join(problems) or "it")

    def _effective(self, spec: Mapping[str, Any]) -> tuple[bool, Any, str]:
        assert self.lab is not None
        rows = [r for r in self.lab.gateway(str(spec["vnet"])).call("effective-routes")
                if r["addressPrefix"] == [spec["prefix"]] and r["state"] == "Active"]
        if not spec.get("present", True):
            return not rows, rows, f"no active {spec['prefix']} in {spec['vnet']}"
        if not rows:
            return False, rows, f"an active {spec['prefix']} in {spec['vnet']}"
        # One row per next hop, as Azure lists them: `next_hops` is the set of them all.
        hops = sorted(h for r in rows for h in r["nextHopIpAddress"])
        ok = (("next_hop_type" not in spec or rows[0]["nextHopType"] == spec["next_hop_type"])
              and ("next_hops" not in spec or hops == sorted(str(h) for h in spec["next_hops"])))
        return ok, rows, f"{spec['prefix']} in {spec['vnet']} as {dict(spec)}"

    def _reachable(self, spec: Mapping[str, Any]) -> tuple[bool, Any, str]:
        assert self.lab is not None
        argv = self.lab.exec_args(str(spec["from"]), ["ping", "-c", "2", "-i", "0.2", "-W", "1", str(spec["to"])])
        ok = system.run(argv, check=False).returncode == 0
        want = bool(spec.get("ok", True))
        return ok == want, "reachable" if ok else "unreachable", (
            f"{spec['to']} {'reachable' if want else 'unreachable'} from {spec['from']}")

    def _probe(self, name: str) -> Probe:
        if name not in self.probes:
            raise ScenarioError(f"no probe {name!r}; probes: {', '.join(self.probes) or 'none'}")
        return self.probes[name]

    def _path(self, spec: Mapping[str, Any]) -> tuple[bool, Any, str]:
        """The path of the packets arriving now: the last ones received count only while packets
        still arrive (no loss window runs to the end), else the path is that of an outage's past."""
        report = self._probe(str(spec["probe"])).snapshot()
        stalled = _open_window(report)
        last = report.paths[-1][2] if report.paths and stalled is None else None
        wanted = spec["via"] if isinstance(spec["via"], list) else [spec["via"]]
        seen = last if stalled is None else f"no packet arriving since seq {stalled.first_lost}"
        return last in wanted, seen, f"probe {spec['probe']}'s packets via {' or '.join(map(str, wanted))}"

    def _loss(self, spec: Mapping[str, Any]) -> tuple[bool, Any, str]:
        report = self._probe(str(spec["probe"])).snapshot()
        stalled = _open_window(report)
        if stalled is not None:  # an outage still going on has no final duration, and nothing to count yet
            return False, [w.to_json() for w in report.windows], (
                f"every loss window of {spec['probe']} over (packets lost since seq {stalled.first_lost})")
        # A window that opens the run (before the first packet ever arrived) is the probe warming
        # up, not an outage: no step runs until a probe's first packet has arrived
        # (`_start_probes`), so nothing a step did can fall in it. It stays in the report.
        windows = [w for w in report.windows if w.first_lost != 0]
        bounds = spec.get("loss_window", {})
        seen = [w.to_json() for w in windows]
        problems = []
        if "count" in bounds and len(windows) != int(bounds["count"]):
            problems.append(f"{bounds['count']} loss window(s), not {len(windows)}")
        if "max" in bounds and any(w.duration > duration(bounds["max"], "max") for w in windows):
            problems.append(f"every window at most {bounds['max']}")
        if "min" in bounds and any(w.duration < duration(bounds["min"], "min") for w in windows):
            problems.append(f"every window at least {bounds['min']}")
        return not problems, seen, "; ".join(problems) or f"loss windows of {spec['probe']} within {bounds}"

    # ---- events

    def _events(self, since: float, until: float | None = None) -> list[dict[str, Any]]:
        """Our nodes' events (sessions, routes, BFD-driven Ceases, drains, faults) in a time range."""
        if self.lab is None:
            return []
        records: list[dict[str, Any]] = []
        for name, node in sorted(self.lab.plan.nodes.items()):
            if not kind_of(node.kind).events:
                continue
            try:
                for record in self.lab.node(name).follow(since=since, timeout=0.3):
                    if until is not None and record.get("time", 0.0) > until:
                        break
                    if record.get("type") not in ("update", "withdraw"):  # prefixes: counted, not listed
                        records.append(record)
            except (TimeoutError, control.ControlError, OSError):
                continue
        return sorted(records, key=lambda r: r.get("time", 0.0))


def fault_of(data: Any, step: Step) -> Fault:
    """`{link: ce1:eth1}`, `{bgp: msee1, mode: silent}` or `{kind: link, target: ce1:eth1}`."""
    if not isinstance(data, dict):
        raise ScenarioError(f"line {step.line}: a fault is {{KIND: TARGET, option: value}}; kinds: "
                            f"{', '.join(FAULT_KINDS)}")
    data = dict(data)
    if "kind" in data:
        kind, target = str(data.pop("kind")), str(data.pop("target", ""))
    else:
        kinds = [k for k in data if k in FAULT_KINDS]
        if len(kinds) != 1:
            raise ScenarioError(f"line {step.line}: name one fault kind of {', '.join(FAULT_KINDS)}")
        kind, target = kinds[0], str(data.pop(kinds[0]))
    return Fault(kind, target, data)


# ---------------------------------------------------------------- the HTML timeline


def timeline_html(result: ScenarioResult) -> str:
    """One page: the steps, and on one time axis the faults, our nodes' session and BFD events,
    and each probe's loss windows and path changes, drawn as SVG."""
    t0, t1 = result.started, max(result.ended, result.started + 1.0)
    width, left, lane = 1100, 190, 26
    lanes: list[tuple[str, list[tuple[float, float, str, str]]]] = []

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * (width - left - 20)

    lanes.append(("steps", [(r.started, r.ended, "#3b82f6" if r.ok else "#dc2626", r.step.describe())
                            for r in result.steps]))
    lanes.append(("faults", [(f["time"], f["time"], "#f59e0b" if f["action"] == "fail" else "#10b981",
                              f"{f['action']} {f['kind']} {f['target']}") for f in result.faults]))
    by_node: dict[str, list[tuple[float, float, str, str]]] = {}
    for e in result.events:
        colour = "#dc2626" if e.get("type") == "notification" or e.get("state") == "idle" else "#6b7280"
        if e.get("state") == "established":
            colour = "#16a34a"
        by_node.setdefault(str(e.get("node", "?")), []).append((e["time"], e["time"], colour, str(e.get("text", ""))))
    lanes += sorted(by_node.items())
    for name, report in result.probes.items():
        marks = [(w.start, w.end, "#dc2626", f"loss {w.count} packets, {w.duration * 1000:.0f} ms")
                 for w in report.windows]
        marks += [(a, b, "#a3a3a3", f"via {p}: {n} packets") for a, b, p, n in report.paths]
        lanes.append((f"probe {name}", marks))
    height = 40 + lane * len(lanes)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 20}" '
             'font-family="sans-serif" font-size="11">']
    for i, (label, marks) in enumerate(lanes):
        y = 30 + i * lane
        parts.append(f'<text x="8" y="{y + 15}">{html.escape(label)}</text>')
        parts.append(f'<line x1="{left}" y1="{y + 11}" x2="{width - 20}" y2="{y + 11}" stroke="#e5e7eb"/>')
        for start, end, colour, title in marks:
            w = max(3.0, x(end) - x(start))
            parts.append(f'<rect x="{x(start):.1f}" y="{y + 3}" width="{w:.1f}" height="16" rx="2" '
                         f'fill="{colour}" opacity="0.85"><title>{html.escape(title)} '
                         f'(+{start - t0:.3f}s)</title></rect>')
    for s in range(int(t1 - t0) + 1):
        parts.append(f'<text x="{x(t0 + s):.1f}" y="{height + 12}" fill="#6b7280">{s}s</text>')
    parts.append("</svg>")
    rows = "".join(
        f"<tr class={'ok' if r.ok else 'fail'}><td>{r.step.index}</td><td>+{r.started - t0:.2f}s</td>"
        f"<td>{html.escape(r.step.describe())}</td><td>{'ok' if r.ok else 'FAILED'}</td>"
        f"<td><pre>{html.escape(r.message)}</pre></td></tr>" for r in result.steps)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(result.scenario.name)}</title>"
            "<style>body{font-family:sans-serif;margin:24px}td{padding:2px 8px;vertical-align:top}"
            ".fail{background:#fee2e2}pre{margin:0}</style></head><body>"
            f"<h1>{html.escape(result.scenario.name)}: {'passed' if result.passed else 'FAILED'}</h1>"
            f"<p>lab {html.escape(result.lab)}, profile {result.profile}, {result.ended - t0:.1f}s"
            f"{' &mdash; ' + html.escape(result.error) if result.error else ''}</p>"
            + (f"<p><b>Note:</b> {html.escape(profile(result.profile).caveat)}</p>" if profile(result.profile).caveat
               else "")
            + "".join(parts) + f"<table>{rows}</table>"
            + "".join(f"<pre>{html.escape(r.summary())}</pre>" for r in result.probes.values())
            + "</body></html>")

