"""The lab tests' shared fixture: a runtime, so a module's labs run on both (netns and docker)."""

from __future__ import annotations

import pytest

from bgplab.lab.runtime import RUNTIMES


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    """Where the module's labs live; every test that takes it (or a lab that does) runs on each."""
    return str(request.param)
