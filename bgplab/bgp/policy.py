"""Import and export policy: ordered terms of matches and changes, as data.

A policy is a list of terms; the first term whose matches all hold decides, by accepting
(after its changes), rejecting, or passing to the next term with its changes applied. It is
plain data, built from YAML or Python, and replaceable while sessions run (the speaker
re-evaluates its stored routes: soft reconfiguration).

Policies run on the ingest path, so they are evaluated per attribute set, not per prefix,
whenever no term looks at the prefix; when one does, the prefix test is integer arithmetic
and the attribute changes are still computed once per (term, attribute set).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bgplab.bgp.routesyntax import RouteSyntaxError, parse_community, parse_large_community
from bgplab.bgp.wire.attributes import AsSegment, LargeCommunity, PathAttributes, prepend
from bgplab.bgp.wire.nlri import ADDRESS_BITS, parse_prefix
from bgplab.bgp.wire.update import Family

ACCEPT, REJECT, CONTINUE = "accept", "reject", "continue"
_PRIVATE_RANGES = ((64512, 65534), (4200000000, 4294967294))


class PolicyError(ValueError):
    """A policy that cannot be built; the message names the field and what would be valid."""


def is_private_asn(asn: int) -> bool:
    """RFC 6996 private-use AS numbers."""
    return any(lo <= asn <= hi for lo, hi in _PRIVATE_RANGES)


# ---------------------------------------------------------------- matches


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    """`prefix` with optional `ge`/`le` length bounds, as in a router's prefix list."""

    prefix: str
    ge: int | None = None
    le: int | None = None
    permit: bool = True
    _afi: int = field(init=False, repr=False, compare=False, default=0)
    _net: int = field(init=False, repr=False, compare=False, default=0)
    _mask: int = field(init=False, repr=False, compare=False, default=0)
    _bounds: tuple[int, int] = field(init=False, repr=False, compare=False, default=(0, 0))

    def __post_init__(self) -> None:
        afi, key = parse_prefix(self.prefix)
        length = key & 0xFF
        bits = ADDRESS_BITS[afi]
        lo = self.ge if self.ge is not None else length
        hi = self.le if self.le is not None else (bits if self.ge is not None else length)
        if not length <= lo <= hi <= bits:
            raise PolicyError(
                f"prefix list entry {self.prefix} ge {self.ge} le {self.le}: need len <= ge <= le <= {bits}"
            )
        object.__setattr__(self, "_afi", int(afi))
        object.__setattr__(self, "_net", key >> 8)
        object.__setattr__(self, "_bounds", (lo, hi))
        object.__setattr__(self, "_mask", ((1 << length) - 1) << (bits - length))

    def matches(self, family: Family, key: int) -> bool:
        length = key & 0xFF
        lo, hi = self._bounds
        return family[0] == self._afi and lo <= length <= hi and (key >> 8) & self._mask == self._net


@dataclass(frozen=True, slots=True)
class Match:
    """All given conditions must hold; an empty Match matches everything."""

    prefixes: tuple[PrefixEntry, ...] = ()
    """First matching entry decides (permit or deny); none matching is no match."""
    communities: tuple[int, ...] = ()
    """Any of these present."""
    large_communities: tuple[LargeCommunity, ...] = ()
    as_path: str | None = None
    """A regular expression searched in the path written as space-separated AS numbers."""
    family: Family | None = None

    @property
    def uses_prefix(self) -> bool:
        return bool(self.prefixes) or self.family is not None

    def attributes_match(self, attrs: PathAttributes) -> bool:
        if self.communities and not set(self.communities).intersection(attrs.communities):
            return False
        if self.large_communities and not set(self.large_communities).intersection(attrs.large_communities):
            return False
        return not (self.as_path is not None and not _as_path_regex(self.as_path).search(as_path_text(attrs)))

    def prefix_matches(self, family: Family, key: int) -> bool:
        if self.family is not None and family != self.family:
            return False
        for entry in self.prefixes:
            if entry.matches(family, key):
                return entry.permit
        return not self.prefixes


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _as_path_regex(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = _REGEX_CACHE[pattern] = re.compile(pattern)
    return compiled


def as_path_text(attrs: PathAttributes) -> str:
    """ "65001 65002 {65003 65004}": sets in braces, as routers print them."""
    parts = []
    for seg_type, asns in attrs.as_path or ():
        text = " ".join(map(str, asns))
        parts.append(text if seg_type == 2 else "{" + text + "}")
    return " ".join(parts)


# ---------------------------------------------------------------- changes


@dataclass(frozen=True, slots=True)
class Changes:
    local_pref: int | None = None
    med: int | None = None
    communities: tuple[int, ...] | None = None
    """Replace all standard communities with these."""
    add_communities: tuple[int, ...] = ()
    remove_communities: tuple[int, ...] = ()
    large_communities: tuple[LargeCommunity, ...] | None = None
    add_large_communities: tuple[LargeCommunity, ...] = ()
    remove_large_communities: tuple[LargeCommunity, ...] = ()
    prepend: int = 0
    """Prepend `prepend_asn` (our AS when 0) this many times."""
    prepend_asn: int = 0
    remove_private_as: str | None = None
    """"if-all-private": strip them only when the whole path is private (Cisco's default);
    "leading": strip private ASNs from the left up to the first public one (Junos);
    "all": strip every private ASN."""
    next_hop_self: bool = False
    next_hop: str | None = None

    def __post_init__(self) -> None:
        if self.remove_private_as not in (None, "if-all-private", "leading", "all"):
            raise PolicyError(f"remove_private_as {self.remove_private_as!r}: expected if-all-private, leading or all")

    def apply(self, attrs: PathAttributes, local_asn: int) -> PathAttributes:
        updates: dict[str, Any] = {}
        if self.local_pref is not None:
            updates["local_pref"] = self.local_pref
        if self.med is not None:
            updates["med"] = self.med
        communities = self.communities if self.communities is not None else attrs.communities
        if self.add_communities or self.remove_communities or self.communities is not None:
            kept = [c for c in communities if c not in self.remove_communities]
            updates["communities"] = tuple(dict.fromkeys(kept + list(self.add_communities)))
        large = self.large_communities if self.large_communities is not None else attrs.large_communities
        if self.add_large_communities or self.remove_large_communities or self.large_communities is not None:
            kept_large = [c for c in large if c not in self.remove_large_communities]
            updates["large_communities"] = tuple(dict.fromkeys(kept_large + list(self.add_large_communities)))
        path = attrs.as_path
        if self.remove_private_as is not None:
            path = strip_private(path or (), self.remove_private_as)
        if self.prepend:
            path = prepend(path, self.prepend_asn or local_asn, self.prepend)
        if path is not attrs.as_path:
            updates["as_path"] = path
        if self.next_hop_self:
            updates["next_hop"] = None  # the speaker puts its own address there when sending
        elif self.next_hop is not None:
            updates["next_hop"] = self.next_hop
        return attrs.with_changes(**updates) if updates else attrs


def strip_private(path: tuple[AsSegment, ...], mode: str) -> tuple[AsSegment, ...]:
    asns = [a for _, seg in path for a in seg]
    if mode == "if-all-private":
        return () if asns and all(is_private_asn(a) for a in asns) else path
    if mode == "all":
        out = [(t, tuple(a for a in seg if not is_private_asn(a))) for t, seg in path]
        return tuple((t, seg) for t, seg in out if seg)
    # leading: drop private ASNs from the left of the first segment(s) until a public one
    result: list[AsSegment] = []
    stripping = True
    for seg_type, seg in path:
        if stripping and seg_type == 2:
            rest = list(seg)
            while rest and is_private_asn(rest[0]):
                rest.pop(0)
            if rest:
                stripping = False
                result.append((seg_type, tuple(rest)))
            continue
        stripping = False
        result.append((seg_type, seg))
    return tuple(result)


# ---------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class Term:
    name: str = ""
    match: Match = field(default_factory=Match)
    changes: Changes = field(default_factory=Changes)
    action: str = ACCEPT

    def __post_init__(self) -> None:
        if self.action not in (ACCEPT, REJECT, CONTINUE):
            raise PolicyError(f"term {self.name!r}: action {self.action!r}: expected accept, reject or continue")


@dataclass(frozen=True)
class Policy:
    terms: tuple[Term, ...] = ()
    default: str = ACCEPT
    """What happens to a route no term decided."""
    _per_prefix: bool = field(init=False, repr=False, compare=False, default=False)
    _cache: dict[tuple[int, int, int], tuple[PathAttributes, PathAttributes | None]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.default not in (ACCEPT, REJECT):
            raise PolicyError(f"default {self.default!r}: expected accept or reject")
        object.__setattr__(self, "_per_prefix", any(t.match.uses_prefix for t in self.terms))

    def evaluate(self, family: Family, key: int, attrs: PathAttributes, local_asn: int) -> PathAttributes | None:
        """The route as the policy leaves it, or None when rejected."""
        current = attrs
        for term in self.terms:
            if not term.match.attributes_match(current):
                continue
            if term.match.uses_prefix and not term.match.prefix_matches(family, key):
                continue
            if term.action == REJECT:
                return None
            current = term.changes.apply(current, local_asn)
            if term.action == ACCEPT:
                return current
        return current if self.default == ACCEPT else None

    def apply(
        self, family: Family, keys: Sequence[int], attrs: PathAttributes, local_asn: int
    ) -> list[tuple[PathAttributes | None, list[int]]]:
        """Evaluate many prefixes that share one attribute set; results grouped by outcome.

        Outcomes are cached by attribute identity, so a table whose prefixes share attribute
        objects is judged once per object (the cache keeps the objects alive, so identities
        stay valid; it is bounded).
        """
        if not self._per_prefix:
            ckey = (id(attrs), 0, 0)
            hit = self._cache.get(ckey)
            if hit is None or hit[0] is not attrs:
                hit = (attrs, self.evaluate(family, keys[0] if keys else 0, attrs, local_asn))
                self._remember(ckey, hit)
            return [(hit[1], list(keys))]
        groups: dict[int, tuple[PathAttributes | None, list[int]]] = {}
        for key in keys:
            result = self.evaluate(family, key, attrs, local_asn)
            group = groups.get(id(result))
            if group is None:
                group = groups[id(result)] = (result, [])
            group[1].append(key)
        return list(groups.values())

    def _remember(self, ckey: tuple[int, int, int], value: tuple[PathAttributes, PathAttributes | None]) -> None:
        if len(self._cache) > 65536:
            self._cache.clear()
        self._cache[ckey] = value


ACCEPT_ALL = Policy()


@dataclass(frozen=True, slots=True)
class MaxPrefix:
    """RFC 4486 maximum-prefix: over `limit` the session is torn down with Cease 6/1."""

    limit: int
    warning_percent: int = 80
    restart: float | None = None
    """Seconds before the session may come back by itself; None keeps it down until reset."""

    def __post_init__(self) -> None:
        if self.limit < 0 or not 1 <= self.warning_percent <= 100:
            raise PolicyError(f"maximum prefix {self.limit} warning {self.warning_percent}%: need limit >= 0, 1..100%")


# ---------------------------------------------------------------- from data (YAML)


def _communities(where: str, values: Any) -> tuple[int, ...]:
    try:
        return tuple(parse_community(str(v)) for v in _list(where, values))
    except RouteSyntaxError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def _large(where: str, values: Any) -> tuple[LargeCommunity, ...]:
    try:
        return tuple(parse_large_community(str(v)) for v in _list(where, values))
    except RouteSyntaxError as exc:
        raise PolicyError(f"{where}: {exc}") from None


def _list(where: str, values: Any) -> list[Any]:
    if isinstance(values, str | int):
        return [values]
    if not isinstance(values, list):
        raise PolicyError(f"{where}: expected a list")
    return values


def _only(where: str, data: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = set(data) - set(allowed)
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(allowed)}")


_MATCH_FIELDS = ("prefix_list", "community", "large_community", "as_path", "family")
_SET_FIELDS = (
    "local_pref", "med", "communities", "add_communities", "remove_communities", "large_communities",
    "add_large_communities", "remove_large_communities", "prepend", "prepend_asn", "remove_private_as",
    "next_hop",
)  # fmt: skip


def _match(where: str, data: Mapping[str, Any]) -> Match:
    _only(where, data, _MATCH_FIELDS)
    prefixes = []
    for n, entry in enumerate(_list(f"{where}.prefix_list", data.get("prefix_list", []))):
        spot = f"{where}.prefix_list[{n}]"
        if isinstance(entry, str):
            entry = {"prefix": entry}
        _only(spot, entry, ("prefix", "ge", "le", "action"))
        if entry.get("action", "permit") not in ("permit", "deny"):
            raise PolicyError(f"{spot}.action: expected permit or deny")
        try:
            prefixes.append(
                PrefixEntry(str(entry["prefix"]), entry.get("ge"), entry.get("le"), entry.get("action") != "deny")
            )
        except (KeyError, ValueError) as exc:
            raise PolicyError(f"{spot}: {exc}") from None
    family = data.get("family")
    if family not in (None, "ipv4", "ipv6"):
        raise PolicyError(f"{where}.family: expected ipv4 or ipv6")
    pattern = data.get("as_path")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise PolicyError(f"{where}.as_path: bad regular expression: {exc}") from None
    return Match(
        prefixes=tuple(prefixes),
        communities=_communities(f"{where}.community", data.get("community", [])),
        large_communities=_large(f"{where}.large_community", data.get("large_community", [])),
        as_path=str(pattern) if pattern is not None else None,
        family={None: None, "ipv4": (1, 1), "ipv6": (2, 1)}[family],
    )


def _changes(where: str, data: Mapping[str, Any]) -> Changes:
    _only(where, data, _SET_FIELDS)
    kw: dict[str, Any] = {}
    for name in ("local_pref", "med", "prepend", "prepend_asn"):
        if name in data:
            value = data[name]
            if not isinstance(value, int) or value < 0 or value > 0xFFFFFFFF:
                raise PolicyError(f"{where}.{name}: expected an integer 0..4294967295")
            kw[name] = value
    for name in ("communities", "add_communities", "remove_communities"):
        if name in data:
            kw[name] = _communities(f"{where}.{name}", data[name])
    for name in ("large_communities", "add_large_communities", "remove_large_communities"):
        if name in data:
            kw[name] = _large(f"{where}.{name}", data[name])
    if "remove_private_as" in data:
        kw["remove_private_as"] = data["remove_private_as"]
    if "next_hop" in data:
        hop = str(data["next_hop"])
        if hop == "self":
            kw["next_hop_self"] = True
        else:
            try:
                kw["next_hop"] = str(ipaddress.ip_address(hop))
            except ValueError:
                raise PolicyError(f"{where}.next_hop: {hop!r} is neither 'self' nor an IP address") from None
    return Changes(**kw)


def policy_from_data(data: Any, where: str = "policy") -> Policy:
    """Build a Policy from parsed YAML: `{terms: [{name, match, set, action}], default}`."""
    if isinstance(data, list):
        data = {"terms": data}
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: expected a mapping with 'terms' (and optionally 'default')")
    _only(where, data, ("terms", "default"))
    terms = []
    for n, raw in enumerate(_list(f"{where}.terms", data.get("terms", []))):
        spot = f"{where}.terms[{n}]"
        if not isinstance(raw, dict):
            raise PolicyError(f"{spot}: expected a mapping with match/set/action")
        _only(spot, raw, ("name", "match", "set", "action"))
        terms.append(
            Term(
                name=str(raw.get("name", n)),
                match=_match(f"{spot}.match", raw.get("match") or {}),
                changes=_changes(f"{spot}.set", raw.get("set") or {}),
                action=str(raw.get("action", ACCEPT)),
            )
        )
    return Policy(tuple(terms), str(data.get("default", ACCEPT)))
