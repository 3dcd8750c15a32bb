"""What a peer sent us, sans-IO: its Adj-RIB-In, loop detection, RFC 7313 stale routes, max prefix.

The asyncio side (`peer.py`) feeds decoded UPDATEs and refresh markers in and carries out what
comes back: events for listeners, routes for the Loc-RIB, a NOTIFICATION when a limit is
exceeded. Routes are kept as received, before import policy, so a changed policy can be run
again over them without asking the peer (soft reconfiguration).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from bgplab.bgp.policy import MaxPrefix
from bgplab.bgp.wire.attributes import DerivedAttributes, PathAttributes
from bgplab.bgp.wire.update import IPV4_UNICAST, Family, Update

LOOPED = "AS path holds our AS"
WITHDRAWN = "withdrawn"
NOT_REFRESHED = "not re-sent in an enhanced route refresh"

RouteChange = tuple[Family, list[int], PathAttributes | None, str]
"""(family, prefixes, attributes, reason): announced with these attributes and no reason, or
removed (attributes None) for the reason given."""


class AdjRibIn:
    """One peer's routes as received, per family; kept for the life of one session."""

    def __init__(self, local_asn: int, allow_own_as: int, stats: dict[str, int]) -> None:
        """`stats` is the peer's counter dict; "updates_received", "prefixes_received" and
        "loop_discarded" are counted in it."""
        self.local_asn = local_asn
        self.allow_own_as = allow_own_as
        self.stats = stats
        self.tables: dict[Family, dict[int, PathAttributes]] = {}
        self._stale: dict[Family, set[int]] = {}
        self._derived = DerivedAttributes()

    def receive(self, update: Update) -> Iterator[RouteChange]:
        """The changes an UPDATE makes, each applied to the table just before it is yielded.

        Lazily, so that a caller that stops early (a maximum-prefix limit ended the session)
        leaves the rest of the UPDATE unapplied, as if it had never arrived.
        """
        stats = self.stats
        stats["updates_received"] += 1
        attrs = update.attributes
        if attrs is not None:
            looped = self.looped(attrs)
            for family, keys, next_hops in update.announced():
                if looped:
                    # RFC 4271 section 9.1.2: a path through our own AS is unusable; it
                    # replaces (so removes) whatever the peer sent before for these prefixes.
                    stats["loop_discarded"] += len(keys)
                    self._remove(family, keys)
                    yield family, keys, None, LOOPED
                    continue
                if family != IPV4_UNICAST:
                    # MP_REACH next hops are per UPDATE, not attributes; fold them in so a route is one object.
                    attrs = self._derived.get(attrs, next_hops[0], next_hop=next_hops[0])
                table = self.tables.get(family)
                if table is None:
                    table = self.tables[family] = {}
                table.update(dict.fromkeys(keys, attrs))
                stats["prefixes_received"] += len(keys)
                if self._stale:
                    stale = self._stale.get(family)
                    if stale:
                        stale.difference_update(keys)
                yield family, keys, attrs, ""
        for family, keys in update.withdrawals():
            self._remove(family, keys)
            yield family, keys, None, WITHDRAWN

    def looped(self, attrs: PathAttributes) -> bool:
        asn = self.local_asn
        path = attrs.as_path
        if not path:
            return False
        count = path[0][1].count(asn) if len(path) == 1 else sum(seg.count(asn) for _, seg in path)
        return count > self.allow_own_as

    def begin_refresh(self, family: Family) -> None:
        """The peer's BoRR (RFC 7313): everything it had sent is stale until re-sent before its EoRR."""
        self._stale[family] = set(self.tables.get(family, ()))

    def end_refresh(self, family: Family) -> list[int]:
        """The peer's EoRR: the prefixes it did not re-send, now removed."""
        stale = self._stale.pop(family, None)
        if not stale:
            return []
        keys = list(stale)
        self._remove(family, keys)
        return keys

    def clear(self) -> dict[Family, dict[int, PathAttributes]]:
        """The session ended: start empty, handing back what was held."""
        tables, self.tables = self.tables, {}
        self._stale = {}
        self._derived = DerivedAttributes()
        return tables

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values())

    def _remove(self, family: Family, keys: list[int]) -> None:
        table = self.tables.get(family)
        if table is not None:
            pop = table.pop
            for key in keys:
                pop(key, None)


@dataclass(frozen=True, slots=True)
class LimitReached:
    """Accepted prefixes of a family reached the warning threshold (once, until they drop below
    it again) or, `exceeded`, went past the limit: RFC 4486 ends the session with Cease 6/1
    carrying `data`, to restart after `limit.restart` seconds or (None) only when reset."""

    family: Family
    count: int
    limit: MaxPrefix
    exceeded: bool

    @property
    def data(self) -> bytes:
        return struct.pack("!HBI", self.family[0], self.family[1], self.limit.limit)

    @property
    def reason(self) -> str:
        return f"maximum prefix limit {self.limit.limit} exceeded ({self.count}) for {self.family}"


class PrefixLimits:
    """Per family maximum-prefix limits, judged against the count of accepted prefixes."""

    def __init__(self, limits: Mapping[Family, MaxPrefix]) -> None:
        self.limits = limits
        self._warned: set[Family] = set()

    def check(self, family: Family, accepted: Callable[[Family], int]) -> LimitReached | None:
        """After routes of `family` were accepted; `accepted` counts them, asked only if the family has a limit."""
        limit = self.limits.get(family)
        if limit is None:
            return None
        count = accepted(family)
        if count > limit.limit:
            return LimitReached(family, count, limit, exceeded=True)
        threshold = limit.limit * limit.warning_percent / 100
        if count >= threshold and family not in self._warned:
            self._warned.add(family)
            return LimitReached(family, count, limit, exceeded=False)
        if count < threshold:
            self._warned.discard(family)
        return None

    def reset(self) -> None:
        """A new session warns afresh."""
        self._warned = set()
