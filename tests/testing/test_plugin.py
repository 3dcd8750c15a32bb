"""The pytest plugin, used as a user would: pytest run on a user's test files, in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.labcli import TOPOLOGIES, leftovers, unique

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ci-router-config"


def pytest_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=280)


def test_the_ci_router_config_example_passes(tmp_path: Path) -> None:
    proc = pytest_run(str(EXAMPLE), "--bgplab-artifacts", str(tmp_path / "artifacts"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "5 passed" in proc.stdout
    assert not (tmp_path / "artifacts").exists()  # nothing failed, nothing saved


def test_a_failing_expectation_explains_itself_and_leaves_artifacts_not_labs(tmp_path: Path) -> None:
    name = unique("pg")
    (tmp_path / "test_user.py").write_text(f'''
def test_wrong_expectation(bgplab_lab):
    lab = bgplab_lab({str(TOPOLOGIES / "connect-to.yaml")!r}, name={name!r})
    lab.expect({{"sessions": "established"}}, within=30)
    lab.expect({{"route": {{"at": "ce1", "prefix": "10.100.0.0/16", "path": "12076 65515"}}}}, within=2)
''')
    proc = pytest_run("test_user.py", "--bgplab-artifacts", str(tmp_path / "artifacts"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "expected 10.100.0.0/16 at ce1 with path '12076 65515'" in proc.stdout
    assert "last seen:" in proc.stdout
    saved = next((tmp_path / "artifacts").iterdir())
    sessions = json.loads((saved / "sessions.json").read_text())
    assert {s["state"] for s in sessions} == {"established"}
    assert (saved / "routes-ce1.json").exists() and (saved / "logs" / "ce1" / "bgpd.log").exists()
    assert leftovers(name) == {"namespaces": [], "processes": []}
