"""Scenarios: every ready one in scenarios/ passes under the fast profile, every deliberately
broken one in scenarios/broken/ fails naming its unmet expectation; the reports (JSON, JUnit,
HTML) say the same; and bad scenario files are refused with the file and line."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bgplab.lab.scenario import ScenarioError, load_scenario
from tests.lab.labcli import Cli, leftovers, state_dir, unique

ROOT = Path(__file__).resolve().parents[2] / "scenarios"
READY = sorted(ROOT.glob("*.yaml"))
BROKEN = sorted((ROOT / "broken").glob("*.yaml"))


def run(path: Path, tmp_path: Path, runtime: str = "netns", *options: str) -> tuple[int, dict[str, object], Path, Path]:
    with state_dir() as state:
        cli = Cli(state)
        name = unique("sc")
        junit, page = tmp_path / "junit.xml", tmp_path / "report.html"
        proc = cli.run("run", str(path), "--name", name, "--runtime", runtime, "--json", "--junit", str(junit),
                       "--html", str(page), *options, check=False, timeout=240)
        assert not any(leftovers(name, runtime).values())
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout), junit, page


@pytest.mark.lab
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", READY, ids=[p.stem for p in READY])
def test_ready_scenario_passes(path: Path, tmp_path: Path, runtime: str) -> None:
    code, report, junit, page = run(path, tmp_path, runtime)
    failed = [s for s in report["steps"] if not s["ok"]]  # type: ignore[union-attr]
    assert code == 0 and report["passed"], f"{report['error']}\n{json.dumps(failed, indent=1)}"
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and len(suite.findall("testcase")) == len(report["steps"])  # type: ignore[arg-type]
    assert "passed" in page.read_text() and "<svg" in page.read_text()
    # Every report under the fast profile says its timers are below what Azure accepts.
    assert report["profile"] == "fast" and "below what Azure accepts" in str(report["profile_caveat"])
    assert "below what Azure accepts" in page.read_text()
    assert {p.get("name"): p.get("value") for p in suite.iter("property")}["profile"] == "fast"


AZURE = [ROOT / f"{name}.yaml" for name in ("primary-link-loss-bfd", "migrate-circuit", "location-loss")]


@pytest.mark.lab
@pytest.mark.timeout(400)
@pytest.mark.parametrize("path", AZURE, ids=[p.stem for p in AZURE])
def test_the_bfd_and_cutover_scenarios_pass_under_azures_own_timers(path: Path, tmp_path: Path) -> None:
    """Hold 180 s, keepalive 60 s: BFD (300 ms x 3) and the operator's changes carry these, not the
    BGP timers, so they pass as fast, and the report carries no caveat."""
    code, report, _, page = run(path, tmp_path, "netns", "--profile", "azure")
    failed = [s for s in report["steps"] if not s["ok"]]  # type: ignore[union-attr]
    assert code == 0 and report["passed"], f"{report['error']}\n{json.dumps(failed, indent=1)}"
    assert report["profile"] == "azure" and report["profile_caveat"] is None
    assert "below what Azure accepts" not in page.read_text()


@pytest.mark.lab
@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_scenario_fails_naming_the_unmet_expectation(path: Path, tmp_path: Path) -> None:
    """Each broken file says which step must fail and how (`# must fail: steps[N]: TEXT`): failing
    anywhere else, or for another reason, is not the failure it exists to show."""
    [(index, text)] = re.findall(r"^# must fail: steps\[(\d+)\]: (.+)$", path.read_text(), re.MULTILINE)
    code, report, junit, page = run(path, tmp_path)
    assert code == 1 and not report["passed"]
    steps: list[dict[str, Any]] = report["steps"]  # type: ignore[assignment]
    failed = [s for s in steps if not s["ok"]]
    assert [s["index"] for s in failed] == [int(index)], json.dumps(failed, indent=1)
    step = failed[0]
    assert text in step["message"], step["message"]
    assert step["message"].startswith("expected ") and f"(line {step['line']})" in step["message"]
    assert "last seen:" in step["message"]
    failures = ET.parse(junit).getroot().findall("testcase/failure")
    assert len(failures) == 1 and failures[0].get("message", "").startswith("expected ")
    assert "FAILED" in page.read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ntopology: nope.yaml\nsteps: [{wait: 1s}]\n", "topology: .*nope.yaml does not exist"),
        ("name: x\ntopology: ../topologies/connect-to.yaml\nstep: []\n", "unknown key\\(s\\) step"),
        ("name: x\ntopology: ../topologies/connect-to.yaml\nsteps:\n  - {wait: soon}\n",
         ":4: steps\\[0\\]: 'soon' is not a duration"),
        ("name: x\ntopology: ../topologies/connect-to.yaml\nsteps:\n  - {expect: {}, fault: {}}\n",
         ":4: steps\\[0\\]: a step is one of expect, fault"),
        ("name: x\ntopology: ../topologies/connect-to.yaml\nsteps: [\n", "not valid YAML"),
        ("name: x\ntopology: ../topologies/connect-to.yaml\nsteps: []\n", "needs at least one step"),
    ],
)
def test_bad_scenario_files_are_refused_with_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "scenarios" / "bad.yaml"
    path.parent.mkdir()
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "connect-to.yaml").write_text("name: x\n")
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_scenario(path)


def test_within_may_sit_inside_the_expectation_or_beside_it() -> None:
    scenario = load_scenario(ROOT / "primary-link-loss-bfd.yaml")
    timed = [s for s in scenario.steps if s.within is not None]
    assert timed and all("within" not in s.data for s in timed if isinstance(s.data, dict))
    assert timed[0].within == 30.0
