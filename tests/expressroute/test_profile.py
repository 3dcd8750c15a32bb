"""The two profiles, against what Microsoft documents (reference section 8) and what CI needs."""

from __future__ import annotations

import pytest

from bgplab.bgp.peer import BfdSettings
from bgplab.expressroute.profile import PROFILES, CeTimers, profile


def test_azure_is_what_the_msee_runs_and_leaves_the_ce_its_defaults() -> None:
    azure = profile("azure")
    assert (azure.timers.keepalive, azure.timers.hold) == (60, 180)
    assert azure.timers.bfd == BfdSettings(300.0, 300.0, 3)  # 900 ms detection
    assert azure.ce is None
    assert azure.up_wait > azure.expect_within > azure.timers.hold  # a hold expiry fits in a step


def test_fast_runs_seconds_but_keeps_the_msee_bfd() -> None:
    fast = profile("fast")
    assert (fast.timers.keepalive, fast.timers.hold) == (3, 9)
    assert fast.timers.bfd == BfdSettings(300.0, 300.0, 3)
    assert fast.ce == CeTimers(keepalive=3, hold=9, connect_retry=1)
    assert fast.expect_within > fast.timers.hold


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="timer profile 'slow': expected one of azure, fast"):
        profile("slow")
    assert sorted(PROFILES) == ["azure", "fast"]
