"""What we send a peer, sans-IO: export to the wire form, the Adj-RIB-Out, and refresh pacing.

The asyncio side (`peer.py`) drains its queue of pending changes through `AdjRibOut.encode` a
chunk at a time and writes the UPDATEs it returns; what to send was decided before that (best
paths and export groups, in the speaker), and how it looks on the wire and whether it changes
anything the peer holds is decided here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bgplab.bgp.fsm import Negotiated
from bgplab.bgp.policy import Policy
from bgplab.bgp.wire.attributes import DerivedAttributes, PathAttributes, prepend
from bgplab.bgp.wire.constants import Origin
from bgplab.bgp.wire.update import IPV6_UNICAST, Family
from bgplab.bgp.wire.update_encoder import pack_announcements, pack_withdrawals

log = logging.getLogger("bgplab.speaker")

REFRESH_INTERVAL = 1.0
"""Seconds between two answers to ROUTE-REFRESH for one family."""


class AdjRibOut:
    """What one session has sent the peer, per family, and the UPDATEs that change it.

    `is_originated` says whether an attribute set is one of our own originations, which keep
    their next hop and MED. `local_address` is the session's own end (next-hop-self), None
    when unknown, in which case routes that need it are not sent.
    """

    def __init__(
        self,
        peer: str,
        negotiated: Negotiated,
        local_address: str | None,
        is_originated: Callable[[PathAttributes], bool],
    ) -> None:
        self.peer = peer
        self.negotiated = negotiated
        self.local_asn = negotiated.local_open.asn
        self.local_address = local_address
        self.is_originated = is_originated
        self.tables: dict[Family, dict[int, PathAttributes]] = {}
        self._derived = DerivedAttributes()

    def encode(
        self, family: Family, chunk: list[tuple[int, PathAttributes | None]], policy: Policy | None
    ) -> list[bytes]:
        """The UPDATEs for some changes: export policy per attribute set, and only what changes what the peer holds."""
        negotiated = self.negotiated
        max_len = negotiated.max_message_length
        out = self.tables.setdefault(family, {})
        withdrawn: list[int] = []
        groups: dict[int, tuple[PathAttributes, list[int]]] = {}
        for key, attrs in chunk:
            if attrs is None:
                if out.pop(key, None) is not None:
                    withdrawn.append(key)
                continue
            group = groups.get(id(attrs))
            if group is None:
                group = groups[id(attrs)] = (attrs, [])
            group[1].append(key)
        announce: list[tuple[PathAttributes, list[int]]] = []
        ebgp = negotiated.codec.ebgp
        for attrs, keys in groups.values():
            if ebgp and attrs.med is not None and not self.is_originated(attrs):
                # RFC 4271 5.1.4: a MED learned from one AS is not passed on to another.
                attrs = self._derived.get(attrs, "no-med", med=None)
            verdicts = [(attrs, keys)] if policy is None else policy.apply(family, keys, attrs, self.local_asn)
            for result, ks in verdicts:
                exported = None if result is None else self.export(family, result)
                if exported is None:
                    withdrawn += [k for k in ks if out.pop(k, None) is not None]
                else:
                    announce.append((exported, ks))
        messages = pack_withdrawals(family, withdrawn, max_len) if withdrawn else []
        for exported, keys in announce:
            out.update(dict.fromkeys(keys, exported))
            hops = (exported.next_hop,) if exported.next_hop else ()
            messages += pack_announcements(family, exported, keys, negotiated.codec, max_len, hops)
        return messages

    def export(self, family: Family, attrs: PathAttributes) -> PathAttributes | None:
        """What a route looks like on the wire to this peer (RFC 4271 section 5.1).

        Our own routes keep the next hop they were given; learned routes sent to an external
        peer get ours (next-hop-self), as the peer cannot be assumed to reach the original one.
        """
        ebgp = self.negotiated.codec.ebgp
        next_hop = attrs.next_hop
        if ebgp and next_hop is not None and not self.is_originated(attrs):
            next_hop = None
        if next_hop is None:
            local = self.local_address
            if local is None:
                return None
            local_is_v6 = ":" in local
            if local_is_v6 != (family == IPV6_UNICAST):
                log.warning("%s: no %s next hop for a route without one; not sent", self.peer, family)
                return None
            next_hop = local.split("%")[0]
        if ebgp:
            as_path = prepend(attrs.as_path, self.local_asn)
            local_pref = None
        else:
            as_path = attrs.as_path or ()
            local_pref = attrs.local_pref if attrs.local_pref is not None else 100
        origin = attrs.origin if attrs.origin is not None else int(Origin.IGP)
        return attrs.with_changes(as_path=as_path, next_hop=next_hop, local_pref=local_pref, origin=origin)


class RefreshPacer:
    """When to answer a peer's ROUTE-REFRESH: at most once an interval per family, so a peer
    looping on refreshes costs us little. Fed the time; the caller arms the timers."""

    def __init__(self, interval: float = REFRESH_INTERVAL) -> None:
        self.interval = interval
        self.due: list[Family] = []
        """Families whose whole table is to be sent again, oldest request first."""
        self._last: dict[Family, float] = {}
        self._waiting: set[Family] = set()

    def request(self, family: Family, now: float) -> float | None:
        """The peer asked: None if an answer is already due or waiting; else the seconds to wait
        before calling `ready` (0: it was ready at once)."""
        if family in self.due or family in self._waiting:
            return None
        wait = self._last.get(family, -self.interval) + self.interval - now
        if wait <= 0:
            self.ready(family, now)
            return 0.0
        self._waiting.add(family)
        return wait

    def ready(self, family: Family, now: float) -> None:
        self._waiting.discard(family)
        self._last[family] = now
        self.due.append(family)

    def next(self) -> Family | None:
        return self.due.pop(0) if self.due else None

    def session_down(self) -> None:
        """Nothing is owed to a session that ended; the pace carries over to the next one."""
        self.due = []
        self._waiting = set()
