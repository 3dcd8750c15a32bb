"""bench/README.md's tables are the recorded runs, never typed by hand (bench/record.py)."""

from __future__ import annotations

import json
import re
import subprocess

from bench.record import README, RECORDED, readme_text, tables


def test_every_recorded_section_of_the_readme_is_what_its_recorded_run_printed() -> None:
    text = README.read_text()
    recorded = re.findall(r"<!-- recorded: (\w+) -->", text)
    assert recorded, "bench/README.md has no recorded sections"
    for bench in recorded:
        assert (RECORDED / f"{bench}.json").exists(), f"README shows {bench}; bench/recorded/{bench}.json is missing"
    assert readme_text(text) == text, "bench/README.md differs from its recorded runs: python -m bench.record --readme"


def test_each_recorded_run_names_a_commit_of_this_history() -> None:
    for path in sorted(RECORDED.glob("*.json")):
        run = json.loads(path.read_text())
        assert run["bench"] == path.stem and run["command"].startswith(f"python -m bench.{path.stem}")
        found = subprocess.run(["git", "cat-file", "-e", f"{run['commit']}^{{commit}}"], cwd=RECORDED.parent.parent,
                               capture_output=True)
        assert found.returncode == 0, f"{path.name}: commit {run['commit']} is not in this repository's history"
        assert run["output"] and run["figures"] is not None, f"{path.name}: no output or no figures"


def test_tables_keep_each_report_block_and_drop_progress_lines() -> None:
    output = ["machine: 2 CPUs", "  [100 dense] ours: 0.1", "", "== 100 prefixes, dense ==", "receiver  seconds",
              "ours      0.100", "goals: ok", "", "total wall time 6 s", "== 1,000 prefixes ==", "ours 1.0"]
    assert tables(output) == ["== 100 prefixes, dense ==", "receiver  seconds", "ours      0.100", "goals: ok", "",
                              "== 1,000 prefixes ==", "ours 1.0"]
    notes = ["== cut ==", "lab  median", "ours  863", "", "  ours: min 715 ms", "  goal: met", "", "  [ours run 1/20]",
             "== next ==", "x", "", "total 377 s"]
    assert tables(notes) == ["== cut ==", "lab  median", "ours  863", "", "  ours: min 715 ms", "  goal: met", "",
                             "== next ==", "x"]
    assert tables(["bench.bringup: x", "  [progress]", "up until all Established  median 3.1 s"]) == [
        "bench.bringup: x", "up until all Established  median 3.1 s"]
