"""What a speaker tells the world, each stamped with `time.monotonic()` when it happened.

Routes travel per UPDATE, not per prefix: an event per prefix would cost more than the
decoding did, and consumers that want prefixes iterate the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.errors import UpdateError
from bgplab.bgp.wire.update import Family


@dataclass(frozen=True, slots=True)
class PeerStateChanged:
    time: float
    peer: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class RoutesReceived:
    time: float
    peer: str
    family: Family
    prefixes: list[int]
    attributes: PathAttributes
    """`next_hop` holds the route's next hop in every family (from MP_REACH for IPv6)."""


@dataclass(frozen=True, slots=True)
class RoutesWithdrawn:
    time: float
    peer: str
    family: Family
    prefixes: list[int]
    reason: str = "withdrawn"
    """"withdrawn" for an UPDATE, or why the session that held them ended."""


@dataclass(frozen=True, slots=True)
class EndOfRib:
    time: float
    peer: str
    family: Family


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    time: float
    peer: str
    direction: str
    """"received" or "sent"."""
    code: int
    subcode: int
    data: bytes
    text: str


@dataclass(frozen=True, slots=True)
class UpdateErrorsEvent:
    time: float
    peer: str
    errors: tuple[UpdateError, ...]


@dataclass(frozen=True, slots=True)
class MaxPrefixWarning:
    """Accepted prefixes reached the warning threshold of the peer's maximum-prefix limit."""

    time: float
    peer: str
    family: Family
    count: int
    limit: int


Event = (
    MaxPrefixWarning
    | PeerStateChanged
    | RoutesReceived
    | RoutesWithdrawn
    | EndOfRib
    | NotificationEvent
    | UpdateErrorsEvent
)
