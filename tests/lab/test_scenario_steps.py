"""Scenario steps the ready scenarios never use: `reachable` both ways, `wait`, `sessions` with
`state: absent` and with `peering`, `route` with `count` and with `family: ipv6`.

One lab (tests/lab/topologies/steps.yaml) serves every test: `bgplab run SCENARIO --lab NAME`
runs each scenario of tests/lab/scenarios/ on it, as a user would, and the JSON report is checked.
steps.yaml has every step written to pass; each broken-*.yaml one step that must fail, named in
its header (`# must fail: steps[N]: MESSAGE`), so the index, the message and the line are known
from the file itself. After each test, the faults a failed scenario left in force are restored
and every session is back, so the next one starts from the same lab.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.labcli import Cli, running_lab, wait_for

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"
TOPOLOGY = HERE / "topologies" / "steps.yaml"
BROKEN = sorted(SCENARIOS.glob("broken-*.yaml"))

Lab = tuple[Cli, str, dict[str, Any]]

MSEE1_PRIVATE = {"st-ams-msee1->192.168.150.1", "st-ams-msee1->2001:db8:150::1", "st-ams-msee1->169.254.0.2",
                 "st-ams-msee1->169.254.128.2"}
"""msee1's private-peering sessions in steps.yaml: ce1 over IPv4 and IPv6, and the VNet gateway's two instances."""

SEEN: dict[str, Callable[[Any], bool]] = {
    # what the failing step last saw, which is what made it fail
    "broken-reachable": lambda seen: seen == "unreachable",
    "broken-unreachable": lambda seen: seen == "reachable",
    "broken-absent": lambda seen: seen == {"st-ams-msee1->198.51.100.17": "established"},
    "broken-peering": lambda seen: seen == {},
    "broken-count": lambda seen: sorted(r["source"] for r in seen) == ["10.0.51.2", "192.168.150.2"],
    "broken-family": lambda seen: seen == [],
}


@pytest.fixture(scope="module")
def steps_lab(runtime: str) -> Iterator[Lab]:
    with running_lab(TOPOLOGY, "ss", runtime) as lab:
        yield lab


@pytest.fixture
def lab(steps_lab: Lab) -> Iterator[Lab]:
    yield steps_lab
    cli, name, _ = steps_lab
    cli.run("restore", "all", "--lab", name)
    # steps.yaml shuts ce1's Microsoft-peering session for a while (an exec, not a fault): undone here
    # too, in case the scenario stopped in between
    cli.run("exec", "--lab", name, "ce1", "--", "vtysh", "-c", "configure terminal", "-c", "router bgp 65050",
            "-c", "no neighbor 198.51.100.18 shutdown")

    def settled() -> bool:
        rows = cli.json("status", "--lab", name)["sessions"]
        return len(rows) == 22 and all(r["state"] == "established" for r in rows)

    wait_for("every session of the steps lab established again", settled)


def run(lab: Lab, path: Path) -> tuple[int, dict[str, Any]]:
    cli, name, _ = lab
    proc = cli.run("run", str(path), "--lab", name, "--json", check=False, timeout=120)
    assert proc.stdout, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, report


def step_lines(path: Path) -> list[int]:
    """The line of each step, read from the file as text (the scenario files list one step a line)."""
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith("  - ")]


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_every_step_of_the_passing_scenario_holds(lab: Lab) -> None:
    path = SCENARIOS / "steps.yaml"
    code, report = run(lab, path)
    steps = report["steps"]
    failed = [s for s in steps if not s["ok"]]
    assert code == 0 and report["passed"], f"{report['error']}\n{json.dumps(failed, indent=1)}"
    assert [s["line"] for s in steps] == step_lines(path)
    seen = {s["index"]: s["seen"] for s in steps}
    # route with count: the VNet twice at ce1; with family: the IPv6 prefix in each MSEE's IPv6 table
    assert seen[1]["network"] == "10.150.0.0/16" and seen[1]["best"] and seen[1]["source"] == "192.168.150.2"
    assert (seen[2]["family"], seen[2]["source"], seen[2]["path"]) == ("ipv6-unicast", "2001:db8:150::1", "65050")
    assert (seen[3]["family"], seen[3]["source"]) == ("ipv6-unicast", "2001:db8:150::5")
    # reachable, then not (the LAN cut), then again
    assert [seen[4], seen[6], seen[8]] == ["reachable", "unreachable", "reachable"]
    # wait: the next step started no sooner than 2 s after it
    wait, after = steps[10], steps[11]
    assert wait["step"] == 'wait "2s"' and wait["seconds"] >= 2.0 and after["started"] - wait["started"] >= 2.0
    # peering: with ce1's Microsoft-peering session shut, msee1's private sessions alone are looked at
    assert set(seen[11]) == MSEE1_PRIVATE and set(seen[11].values()) == {"established"}
    assert seen[13] == {"st-ams-msee1->198.51.100.17": "established"}
    # absent: the disabled peering's sessions gone from both MSEEs, msee2's private session kept
    assert seen[15] == {} and seen[16] == {}
    assert seen[17] == {"st-ams-msee2->192.168.150.5": "established"}


@pytest.mark.lab
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_a_step_that_does_not_hold_fails_the_scenario_there(lab: Lab, path: Path) -> None:
    [(index, text)] = re.findall(r"^# must fail: steps\[(\d+)\]: (.+)$", path.read_text(), re.MULTILINE)
    failing = int(index)
    code, report = run(lab, path)
    assert code == 1 and not report["passed"] and report["error"] is None, report
    steps = report["steps"]
    assert [s["index"] for s in steps] == list(range(failing + 1)), "the steps after a failed one do not run"
    assert [s["ok"] for s in steps] == [True] * failing + [False], json.dumps(steps, indent=1)
    step = steps[failing]
    line = step_lines(path)[failing]
    assert step["line"] == line
    first, last_seen = step["message"].splitlines()[:2]
    assert first == f"{text} (line {line})"
    assert last_seen == f"last seen: {json.dumps(step['seen'])}"
    assert SEEN[path.stem](step["seen"]), step["seen"]


@pytest.mark.lab
@pytest.mark.timeout(300)
def test_a_wait_that_is_no_duration_is_refused_before_any_step_runs(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "bad-wait.yaml"
    path.write_text(f"name: bad wait\ntopology: {TOPOLOGY}\nsteps:\n"
                    "  - fault: {cut: \"ce1:lan\"}\n  - wait: soon\n  - restore: {cut: \"ce1:lan\"}\n")
    cli, name, _ = lab
    proc = cli.run("run", str(path), "--lab", name, "--json", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"{path}:5: steps[1]: 'soon' is not a duration" in proc.stderr
    assert cli.json("status", "--lab", name)["faults"] == []
