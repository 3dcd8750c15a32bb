"""Loc-RIB: the decision process of RFC 4271 section 9.1 over every peer's Adj-RIB-In, with multipath.

Sans-IO and synchronous: the speaker hands it each peer's accepted routes and withdrawals and
gets back the prefixes whose selection changed, which it passes on to the FIB and to the
other peers. Memory is the point of the layout: a path is an entry in its peer's table (the
attribute object is shared with every other prefix that arrived with it), and a Loc-RIB
entry is a small interned tuple of peer slots, so a million prefixes from two peers cost a
few hundred bytes each, not kilobytes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from bgplab.bgp.wire.attributes import PathAttributes
from bgplab.bgp.wire.update import Family

LOCAL = "local"
"""The pseudo-peer of routes we originate; they beat every learned path, like FRR's weight 32768."""

DEFAULT_LOCAL_PREF = 100
_AS_SEQUENCE = 2


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the tie-breakers need to know about where a path came from."""

    address: str
    router_id: str
    asn: int
    ebgp: bool

    def address_key(self) -> tuple[int, int]:
        ip = ipaddress.ip_address(self.address)
        return (ip.version, int(ip))

    def router_id_key(self) -> int:
        return int(ipaddress.IPv4Address(self.router_id))


@dataclass(frozen=True, slots=True)
class DecisionOptions:
    max_paths: int = 1
    """ECMP width; 1 is classic single best path."""
    always_compare_med: bool = False
    deterministic_med: bool = True
    """Compare MED within groups of the same neighbouring AS first (RFC 4271 9.1.2.2 c, order-independent);
    False compares paths pairwise in peer order, as Cisco does by default."""
    med_missing_as_worst: bool = False
    multipath_relax: bool = False
    """Allow multipath across different AS paths of the same length (FRR's as-path multipath-relax)."""


@dataclass(frozen=True, slots=True)
class Change:
    """The selection for a prefix changed; `paths` is empty when it is gone, best first otherwise."""

    family: Family
    key: int
    paths: tuple[tuple[str, PathAttributes], ...]

    @property
    def best(self) -> tuple[str, PathAttributes] | None:
        return self.paths[0] if self.paths else None


@dataclass(slots=True)
class Reselected:
    """What one update or withdrawal changed in one family, with no object per prefix.

    A full table passes through here, and building a `Change` per prefix cost more than the
    decision itself. `picks` holds each changed prefix's selected slots, best first (empty once
    no path is left); `LocRib.changes` turns them into `Change`s for whoever wants those.
    `best` holds the same prefixes' best paths grouped by the peer they came from (None: no
    path left), the form exporting needs: a speaker decides once per (peer, source) and hands
    each peer whole dicts.
    """

    family: Family
    picks: dict[int, tuple[int, ...]] = field(default_factory=dict)
    best: dict[str | None, dict[int, PathAttributes | None]] = field(default_factory=dict)


_Verdict = tuple[tuple[int, ...], bool, dict[int, PathAttributes | None], dict[int, PathAttributes] | None]
"""See `LocRib._verdict`."""


@dataclass
class _Slot:
    peer: str
    info: PeerInfo
    tables: dict[Family, dict[int, PathAttributes]] = field(default_factory=dict)
    tie: tuple[int, tuple[int, int]] = (0, (0, 0))

    def __post_init__(self) -> None:
        self.tie = (self.info.router_id_key(), self.info.address_key())


class LocRib:
    """Candidate paths from every peer and the selected ones per prefix."""

    def __init__(self, local_asn: int, router_id: str, options: DecisionOptions | None = None) -> None:
        self.local_asn = local_asn
        self.router_id = router_id
        self.options = options or DecisionOptions()
        self._slots: list[_Slot | None] = []
        self._by_peer: dict[str, int] = {}
        self._selected: dict[Family, dict[int, tuple[int, ...]]] = {}
        self._interned: dict[tuple[int, ...], tuple[int, ...]] = {}
        self.add_peer(LOCAL, PeerInfo("0.0.0.0", router_id, local_asn, ebgp=False))

    # ---- peers

    def add_peer(self, peer: str, info: PeerInfo) -> None:
        if peer in self._by_peer:
            self._slots[self._by_peer[peer]] = _Slot(peer, info, self._slots[self._by_peer[peer]].tables)  # type: ignore[union-attr]
            return
        slot = next((i for i, s in enumerate(self._slots) if s is None), len(self._slots))
        if slot == len(self._slots):
            self._slots.append(None)
        self._slots[slot] = _Slot(peer, info)
        self._by_peer[peer] = slot

    def remove_peer(self, peer: str) -> list[Change]:
        """Withdraw everything the peer gave us (its session ended) and forget it."""
        slot = self._by_peer.get(peer)
        if slot is None:
            return []
        changes: list[Change] = []
        for family, table in list(self._slots[slot].tables.items()):  # type: ignore[union-attr]
            changes += self.withdraw(peer, family, list(table))
        del self._by_peer[peer]
        self._slots[slot] = None
        return changes

    def peers(self) -> list[str]:
        return list(self._by_peer)

    def peer_info(self, peer: str) -> PeerInfo:
        slot = self._slots[self._by_peer[peer]]
        assert slot is not None
        return slot.info

    def families(self, peer: str) -> list[Family]:
        slot = self._slots[self._by_peer[peer]]
        assert slot is not None
        return [f for f, t in slot.tables.items() if t]

    # ---- routes

    def update(self, peer: str, family: Family, keys: Iterable[int], attrs: PathAttributes) -> list[Change]:
        return self.changes(self.apply(peer, family, keys, attrs))

    def withdraw(self, peer: str, family: Family, keys: Iterable[int]) -> list[Change]:
        return self.changes(self.apply(peer, family, keys, None))

    def apply(self, peer: str, family: Family, keys: Iterable[int], attrs: PathAttributes | None) -> Reselected:
        """`update` (or, with `attrs` None, `withdraw`) returning the compact `Reselected`."""
        slot_index = self._by_peer.get(peer) if attrs is None else self._by_peer[peer]
        if slot_index is None:
            return Reselected(family)
        slot = self._slots[slot_index]
        assert slot is not None
        if attrs is None:
            table = slot.tables.get(family)
            if not table:
                return Reselected(family)
            pop = table.pop
            keys = [k for k in keys if pop(k, None) is not None]
        else:
            keys = list(keys)
            slot.tables.setdefault(family, {}).update(dict.fromkeys(keys, attrs))
        return self._reselect(family, keys, slot_index)

    def changes(self, reselected: Reselected) -> list[Change]:
        """The `Change`s of a `Reselected`, in the order its prefixes were given. The paths are
        read from the tables as they are now: call this before the Loc-RIB changes again."""
        family, path = reselected.family, self._path
        return [
            Change(family, key, tuple(path(family, key, i) for i in picks)) for key, picks in reselected.picks.items()
        ]

    def paths(self, family: Family, key: int) -> list[tuple[str, PathAttributes]]:
        """Every candidate for a prefix, in peer order (not ranked)."""
        return [(s.peer, s.tables[family][key]) for s in self._live() if key in s.tables.get(family, {})]

    def selected(self, family: Family, key: int) -> tuple[tuple[str, PathAttributes], ...]:
        picks = self._selected.get(family, {}).get(key, ())
        return tuple(self._path(family, key, i) for i in picks)

    def table(self, family: Family) -> dict[int, tuple[int, ...]]:
        """Prefix -> selected slots; use `selected()` for the paths themselves."""
        return self._selected.get(family, {})

    def best_paths(self, family: Family) -> dict[str, dict[int, PathAttributes]]:
        """Every prefix's best path, grouped by the peer it came from: what a speaker exports,
        deciding per source rather than per prefix."""
        live = [(s.peer, s.tables.get(family, {})) if s is not None else ("", {}) for s in self._slots]
        by_slot: dict[int, dict[int, PathAttributes]] = {}
        for key, picks in self._selected.get(family, {}).items():
            group = by_slot.get(picks[0])
            if group is None:
                group = by_slot[picks[0]] = {}
            group[key] = live[picks[0]][1][key]
        return {live[i][0]: routes for i, routes in by_slot.items()}

    def adj_rib_in(self, peer: str, family: Family) -> dict[int, PathAttributes]:
        slot = self._slots[self._by_peer[peer]]
        assert slot is not None
        return slot.tables.get(family, {})

    def __len__(self) -> int:
        return sum(len(t) for t in self._selected.values())

    # ---- the decision process

    def _live(self) -> list[_Slot]:
        return [s for s in self._slots if s is not None]

    def _path(self, family: Family, key: int, slot: int) -> tuple[str, PathAttributes]:
        s = self._slots[slot]
        assert s is not None
        return (s.peer, s.tables[family][key])

    def _reselect(self, family: Family, keys: list[int], touched: int) -> Reselected:
        """Decide again for `keys`, whose path from slot `touched` was just set (all to one
        attribute object) or withdrawn.

        The verdict for a prefix then depends only on which attribute objects the other slots
        hold for it, so it is taken once per distinct combination of their identities and
        reused for every prefix that shares it: one decision per UPDATE from each peer, not per
        prefix. Identities are stable here, as the tables hold every object for the whole call.
        With two peers there is one other slot, and its object's id alone is the combination.
        """
        result = Reselected(family)
        selected = self._selected.setdefault(family, {})
        tables = [(i, t) for i, s in enumerate(self._slots) if s is not None and (t := s.tables.get(family))]
        others = [t.get for i, t in tables if i != touched]
        other = others[0] if len(others) == 1 else None
        verdicts: dict[int | tuple[int, ...], _Verdict] = {}
        picks = result.picks
        for key in keys:
            sig = id(other(key)) if other is not None else tuple([id(get(key)) for get in others])
            verdict = verdicts.get(sig)
            if verdict is None:
                verdict = verdicts[sig] = self._verdict(result, key, tables, touched)
            new, touched_in_new, group, source = verdict
            old = selected.get(key, ())
            if new:
                selected[key] = new
            elif old:
                del selected[key]
            if new != old or touched_in_new:
                picks[key] = new
                group[key] = source[key] if source is not None else None
        if len(result.best) > 1 or not picks:  # a verdict that changed no prefix left its group empty
            result.best = {source: routes for source, routes in result.best.items() if routes}
        return result

    def _verdict(
        self, result: Reselected, key: int, tables: list[tuple[int, dict[int, PathAttributes]]], touched: int
    ) -> _Verdict:
        """Decide for `key`: its picks, whether they hold the touched slot (its attributes
        changed, so the prefix changed even if the picks did not), and where in `result.best`
        its best path goes, with the table to read that path from (None when no path is left)."""
        cands = [(i, a) for i, t in tables if (a := t.get(key)) is not None]
        picks = self._decide(cands) if len(cands) > 1 else self._intern(tuple(i for i, _ in cands))
        if not picks:
            return picks, False, result.best.setdefault(None, {}), None
        slot = self._slots[picks[0]]
        assert slot is not None
        return picks, touched in picks, result.best.setdefault(slot.peer, {}), slot.tables[result.family]

    def _intern(self, picks: tuple[int, ...]) -> tuple[int, ...]:
        return self._interned.setdefault(picks, picks)

    def _decide(self, cands: list[tuple[int, PathAttributes]]) -> tuple[int, ...]:
        local = self._by_peer[LOCAL]
        for i, _ in cands:
            if i == local:
                return self._intern((i,))
        opts = self.options
        survivors = self._eliminate(cands) if opts.deterministic_med else self._pairwise(cands)
        survivors.sort(key=self._tie_key)
        best = survivors[0]
        picks = [best[0]]
        if opts.max_paths > 1:
            for cand in survivors[1:]:
                if len(picks) >= opts.max_paths:
                    break
                if opts.multipath_relax or cand[1].as_path == best[1].as_path:
                    picks.append(cand[0])
        return self._intern(tuple(picks))

    def _local_pref(self, attrs: PathAttributes) -> int:
        return attrs.local_pref if attrs.local_pref is not None else DEFAULT_LOCAL_PREF

    def _med(self, attrs: PathAttributes) -> int:
        if attrs.med is not None:
            return attrs.med
        return 0xFFFFFFFF if self.options.med_missing_as_worst else 0

    @staticmethod
    def _neighbour_as(attrs: PathAttributes) -> int | None:
        for seg_type, asns in attrs.as_path or ():
            if seg_type == _AS_SEQUENCE and asns:
                return asns[0]
            if seg_type == 1:  # a leading AS_SET has no single neighbour AS
                return None
        return None

    def _eliminate(self, cands: list[tuple[int, PathAttributes]]) -> list[tuple[int, PathAttributes]]:
        """RFC 4271 9.1.2.2 (a) to (d): each step keeps only the most preferred; what is left ties.

        Steps (a) to (c) are one lexicographic minimum of (-LOCAL_PREF, AS path length, ORIGIN):
        it keeps exactly what the three steps one after another keep, with each attribute read
        once. This runs once per UPDATE from each peer of a full table, so that matters, as does
        the common case of paths that agree on everything these steps look at: all are kept.
        """
        always = self.options.always_compare_med
        facts = [
            (
                (-self._local_pref(a), a.as_path_length(), a.origin or 0),
                None if always else self._neighbour_as(a),
                self._med(a),
                self._info(i).ebgp,
            )
            for i, a in cands
        ]
        if facts.count(facts[0]) == len(facts):
            return cands
        top = min(rank for rank, _, _, _ in facts)
        kept = [(c, f) for c, f in zip(cands, facts, strict=True) if f[0] == top]
        if len(kept) > 1:
            group_best: dict[int | None, int] = {}
            for _, (_, group, med, _) in kept:
                group_best[group] = min(group_best.get(group, med), med)
            kept = [(c, f) for c, f in kept if f[2] == group_best[f[1]]]
        if len(kept) > 1 and any(f[3] for _, f in kept):
            kept = [(c, f) for c, f in kept if f[3]]
        return [c for c, _ in kept]

    def _pairwise(self, cands: list[tuple[int, PathAttributes]]) -> list[tuple[int, PathAttributes]]:
        """Non-deterministic MED: walk the paths in peer order, keeping the better of each pair."""
        best = [cands[0]]
        for cand in cands[1:]:
            verdict = self._compare(cand, best[0])
            if verdict < 0:
                best = [cand]
            elif verdict == 0:
                best.append(cand)
        return best

    def _compare(self, x: tuple[int, PathAttributes], y: tuple[int, PathAttributes]) -> int:
        """-1 if x is preferred, 1 if y, 0 if they tie before the final tie-breakers."""
        a, b = x[1], y[1]
        steps: list[tuple[int, int]] = [
            (-self._local_pref(a), -self._local_pref(b)),
            (a.as_path_length(), b.as_path_length()),
            (a.origin or 0, b.origin or 0),
        ]
        if self.options.always_compare_med or self._neighbour_as(a) == self._neighbour_as(b):
            steps.append((self._med(a), self._med(b)))
        steps.append((0 if self._info(x[0]).ebgp else 1, 0 if self._info(y[0]).ebgp else 1))
        for left, right in steps:
            if left != right:
                return -1 if left < right else 1
        return 0

    def _info(self, slot: int) -> PeerInfo:
        s = self._slots[slot]
        assert s is not None
        return s.info

    def _tie_key(self, cand: tuple[int, PathAttributes]) -> tuple[int, tuple[int, int]]:
        """RFC 4271 9.1.2.2 (f) and (g): lowest BGP identifier (ORIGINATOR_ID if reflected), then address."""
        slot = self._slots[cand[0]]
        assert slot is not None
        originator = cand[1].originator_id
        if originator:
            return (int(ipaddress.IPv4Address(originator)), slot.tie[1])
        return slot.tie
