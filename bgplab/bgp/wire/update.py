"""The UPDATE message as the codec hands it over, and the address families it carries.

`update_decoder` makes these from bytes (with RFC 7606 error handling), `update_encoder` makes
bytes from them and packs routes into as few messages as fit. The model lives apart from both
as every layer above the codec (session, Adj-RIBs, Loc-RIB, policy) speaks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.constants import Afi, Safi
from bgplab.bgp.wire.errors import UpdateError

Family = tuple[int, int]
IPV4_UNICAST: Family = (int(Afi.IPV4), int(Safi.UNICAST))
IPV6_UNICAST: Family = (int(Afi.IPV6), int(Safi.UNICAST))


@dataclass(frozen=True, slots=True)
class CodecContext:
    """What a session negotiated that changes how UPDATEs are read and written."""

    four_octet_as: bool = True
    ebgp: bool = True
    families: frozenset[Family] = frozenset({IPV4_UNICAST, IPV6_UNICAST})


@dataclass(frozen=True, slots=True)
class MpReach:
    afi: int
    safi: int
    next_hops: tuple[str, ...]
    nlri: list[int]


@dataclass(frozen=True, slots=True)
class MpUnreach:
    afi: int
    safi: int
    withdrawn: list[int]


@dataclass(slots=True)
class Update:
    withdrawn: list[int] = field(default_factory=list)
    attributes: PathAttributes | None = None
    nlri: list[int] = field(default_factory=list)
    mp_reach: MpReach | None = None
    mp_unreach: tuple[MpUnreach, ...] = ()
    errors: list[UpdateError] = field(default_factory=list)

    def end_of_rib(self) -> Family | None:
        """The family this UPDATE marks as End-of-RIB (RFC 4724 section 2), if it is one."""
        if self.withdrawn or self.nlri or self.mp_reach is not None:
            return None
        if not self.mp_unreach and self.attributes is None and not self.errors:
            return IPV4_UNICAST
        if len(self.mp_unreach) == 1 and not self.mp_unreach[0].withdrawn and _only_mp(self.attributes):
            return (self.mp_unreach[0].afi, self.mp_unreach[0].safi)
        return None

    def announced(self) -> Iterator[tuple[Family, list[int], tuple[str, ...]]]:
        """Each family's announced prefixes with their next hops."""
        if self.nlri and self.attributes is not None and self.attributes.next_hop is not None:
            yield IPV4_UNICAST, self.nlri, (self.attributes.next_hop,)
        if self.mp_reach is not None and self.mp_reach.nlri:
            yield (self.mp_reach.afi, self.mp_reach.safi), self.mp_reach.nlri, self.mp_reach.next_hops

    def withdrawals(self) -> Iterator[tuple[Family, list[int]]]:
        if self.withdrawn:
            yield IPV4_UNICAST, self.withdrawn
        for mp in self.mp_unreach:
            if mp.withdrawn:
                yield (mp.afi, mp.safi), mp.withdrawn


def _only_mp(attrs: PathAttributes | None) -> bool:
    return attrs is None or attrs == PathAttributes()


def treat_as_withdraw(update: Update) -> None:
    """Turn announcements into withdrawals (RFC 7606 section 2) and drop the attributes."""
    if update.nlri:
        update.withdrawn = update.withdrawn + update.nlri
        update.nlri = []
    reach = update.mp_reach
    if reach is not None:
        update.mp_unreach = update.mp_unreach + (MpUnreach(reach.afi, reach.safi, reach.nlri),)
        update.mp_reach = None
    update.attributes = None
