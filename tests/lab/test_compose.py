"""docker-compose.yml as a user runs it: `docker-compose up` (Debian 12 has Compose 1.29; `docker
compose` reads the same file) runs bgplab in its own image on the host's engine, brings the
connect-to lab up in containers, runs the scenario "primary link loss with BFD" and prints its
report; the lab is gone afterwards."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from bgplab.lab.scenario import load_scenario
from tests.lab.labcli import Cli, leftovers, state_dir, unique

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
SCENARIO = REPO / "scenarios" / "primary-link-loss-bfd.yaml"


def test_compose_up_runs_the_scenario_in_containers_prints_its_report_and_leaves_nothing() -> None:
    name = unique("cp")
    with state_dir() as root:
        env = {**os.environ, "BGPLAB_NAME": name, "BGPLAB_STATE_DIR": str(root)}
        compose = ["docker-compose", "--no-ansi", "-p", f"bgplab-{name}"]
        try:
            proc = subprocess.run([*compose, "up", "--no-build", "--no-color", "--exit-code-from", "bgplab"],
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
        finally:
            subprocess.run([*compose, "down"], cwd=REPO, env=env, capture_output=True, timeout=60)
            Cli(root).run("down", name, check=False)  # only if the run was cut short: its containers
        out = proc.stdout
        assert proc.returncode == 0, f"{out}\n{proc.stderr}"
        # The report, as `bgplab run` prints it: every step of the file passed, on this lab.
        assert f"on lab {name}, profile fast" in out
        steps = len(load_scenario(SCENARIO).steps)
        assert len(re.findall(r"\|\s+ok\s+\+", out)) == steps, out
        assert not re.search(r"\|\s+FAIL", out), out
        assert re.search(r"loss window: seq \d+-\d+ \(\d+ packets\)", out), out
        assert re.search(r"\|\s+PASSED in ", out), out
        assert not (root / name).exists()
    assert not any(leftovers(name, "docker").values()), leftovers(name, "docker")
