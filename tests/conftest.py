"""Suite-wide rules: interop and lab tests need root, and a test may skip only for a kernel capability.

A skip for a missing program would let a fresh machine look green while testing nothing: programs
are installed by scripts/setup and checked by scripts/test (`python -m bgplab.programs`) before
pytest starts, so here any skip whose reason does not begin with "kernel" (the wording of the
capability probes, e.g. "kernel without VRF devices: ...") is turned into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

KERNEL_SKIP = "kernel"
"""How every allowed skip reason begins: a kernel capability probe's answer."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_root = [i for i in items if i.get_closest_marker("interop") or i.get_closest_marker("lab")]
    if needs_root and os.geteuid() != 0:
        pytest.exit(f"{len(needs_root)} interop and lab tests create network namespaces and need root: run as root, "
                    "or leave them out with -m 'not interop and not lab'", returncode=2)


def _reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and not hasattr(report, "wasxfail") and not _reason(report).startswith(KERNEL_SKIP):
        report.outcome = "failed"
        report.longrepr = (f"skipped for a reason that is not a kernel capability: {_reason(report)!r}; "
                           "a test may skip only when a kernel capability probe reports it absent")
