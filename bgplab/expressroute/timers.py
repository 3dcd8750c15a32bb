"""The timers of our own nodes (MSEE and gateway): the defaults are what Microsoft runs.

A lab's profile (`bgplab.expressroute.profile`) picks the set a lab runs with.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgplab.bgp.peer import BfdSettings

MSEE_BFD = BfdSettings(300.0, 300.0, 3)
"""Section 8: 300 ms x 3 on by default (900 ms detection)."""


@dataclass(frozen=True, slots=True)
class Timers:
    """BGP and BFD timers the MSEE offers; `profile("azure")` is what the real MSEE runs (section 8)."""

    keepalive: int = 60
    hold: int = 180
    min_hold: int = 10
    """The lowest hold time a customer may negotiate (keepalive 3 / hold 10 at the least)."""
    bfd: BfdSettings | None = MSEE_BFD
    connect_retry: float = 5.0
    idle_hold: float = 1.0
    idle_hold_max: float = 60.0
    """The idle hold after repeated failures doubles up to this (damping a flapping peer); while it
    runs, the session waits, so it bounds how long a healed link can take to come back."""
