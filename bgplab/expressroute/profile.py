"""A lab's profile: every timer and deadline that differs between Azure's pace and a CI run's.

`azure` is what Microsoft runs (hold 180 s, BFD 300 ms x 3) and what a CE is left with when its
config does not ask for other timers; `fast` is for CI: sessions up and down in seconds, BFD
still at the MSEE's own 300 ms x 3. The topology names one; the plan carries its name to every
node (our nodes build their `Timers` from it, the CE kinds render its BGP timers into their
configs) and to the deadlines the lab waits out (`bgplab up --wait`, a scenario step's `within`).
Every report names the profile it ran under (DESIGN.md), so the numbers a `fast` run prints are
never mistaken for what a real circuit would do.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgplab.expressroute.timers import Timers


@dataclass(frozen=True, slots=True)
class CeTimers:
    """The BGP timers a generated CE config asks for (each daemon says them in its own words)."""

    keepalive: int
    hold: int
    connect_retry: int
    """Seconds between connection attempts, and before the first retry after a reset."""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    timers: Timers
    """What our MSEE and gateway nodes run."""
    ce: CeTimers | None
    """What generated CE configs ask for; None leaves each daemon's defaults (which the MSEE's
    keepalive 60 / hold 180 offer meets), as a CE configured for Azure usually is."""
    up_wait: float
    """Seconds `bgplab up --wait` gives every session to come up."""
    expect_within: float
    """Seconds a scenario expectation waits when it names no `within`: the longest the profile's
    timers take to act (a hold expiry, a retry) and then some."""
    caveat: str = ""
    """What every report under this profile must say about it, so no one takes its figures for Azure's."""


PROFILES: dict[str, Profile] = {
    "azure": Profile("azure", Timers(), None, up_wait=300.0, expect_within=200.0),
    "fast": Profile(
        "fast",
        Timers(keepalive=3, hold=9, min_hold=3, connect_retry=1.0, idle_hold=0.2, idle_hold_max=2.0),
        CeTimers(keepalive=3, hold=9, connect_retry=1),
        up_wait=60.0,
        expect_within=15.0,
        caveat="profile fast: BGP keepalive 3 s / hold 9 s, below what Azure accepts (the MSEE offers 60/180 "
        "and refuses a hold under 10 s); hold-timer failovers here are not Azure's (--profile azure is)",
    ),
}


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"timer profile {name!r}: expected one of {', '.join(PROFILES)}")
    return PROFILES[name]
