"""Every policy rule, built from data as a user writes it; no sockets."""

from __future__ import annotations

import pytest
import yaml

from bgplab.bgp.policy import (
    ACCEPT_ALL,
    Changes,
    Match,
    MaxPrefix,
    Policy,
    PolicyError,
    PrefixEntry,
    Term,
    as_path_text,
    is_private_asn,
    policy_from_data,
    strip_private,
)
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST, PathAttributes, as_sequence
from bgplab.bgp.wire.nlri import parse_prefix

LOCAL_ASN = 12076
BASE = PathAttributes(origin=0, as_path=as_sequence(65010, 65020), next_hop="192.0.2.2", med=5,
                      communities=(65010 << 16 | 1,), large_communities=((65010, 1, 1),))


def k(prefix: str) -> int:
    return parse_prefix(prefix)[1]


def run(policy: Policy, prefix: str, attrs: PathAttributes = BASE) -> PathAttributes | None:
    family = IPV4_UNICAST if ":" not in prefix else IPV6_UNICAST
    return policy.evaluate(family, k(prefix), attrs, LOCAL_ASN)


@pytest.mark.parametrize(
    ("entry", "prefix", "hit"),
    [
        (PrefixEntry("10.0.0.0/8"), "10.0.0.0/8", True),
        (PrefixEntry("10.0.0.0/8"), "10.1.0.0/16", False),  # exact unless ge/le
        (PrefixEntry("10.0.0.0/8", le=24), "10.1.0.0/16", True),
        (PrefixEntry("10.0.0.0/8", le=24), "10.1.1.0/25", False),
        (PrefixEntry("10.0.0.0/8", ge=16, le=24), "10.0.0.0/8", False),
        (PrefixEntry("10.0.0.0/8", ge=16), "10.1.1.128/25", True),  # ge alone: up to /32
        (PrefixEntry("10.0.0.0/8", ge=16), "11.1.0.0/16", False),
        (PrefixEntry("0.0.0.0/0"), "0.0.0.0/0", True),
        (PrefixEntry("0.0.0.0/0", le=32), "203.0.113.7/32", True),
        (PrefixEntry("2001:db8::/32", le=48), "2001:db8:1::/48", True),
        (PrefixEntry("2001:db8::/32", le=48), "10.0.0.0/8", False),  # other family
    ],
)
def test_prefix_list_ge_le(entry: PrefixEntry, prefix: str, hit: bool) -> None:
    family = IPV6_UNICAST if ":" in prefix else IPV4_UNICAST
    assert entry.matches(family, k(prefix)) is hit


def test_prefix_list_first_entry_decides_and_deny_entries() -> None:
    match = Match(prefixes=(PrefixEntry("10.1.0.0/16", le=32, permit=False), PrefixEntry("10.0.0.0/8", le=32)))
    assert not match.prefix_matches(IPV4_UNICAST, k("10.1.2.0/24"))
    assert match.prefix_matches(IPV4_UNICAST, k("10.2.0.0/24"))
    assert not match.prefix_matches(IPV4_UNICAST, k("192.0.2.0/24"))  # no entry matched


def test_bad_prefix_list_bounds_are_refused() -> None:
    with pytest.raises(PolicyError, match="ge <= le"):
        PrefixEntry("10.0.0.0/16", ge=8)


def test_community_large_community_and_as_path_matches() -> None:
    assert Match(communities=(65010 << 16 | 1, 7)).attributes_match(BASE)
    assert not Match(communities=(7,)).attributes_match(BASE)
    assert Match(large_communities=((65010, 1, 1),)).attributes_match(BASE)
    assert not Match(large_communities=((65010, 1, 2),)).attributes_match(BASE)
    assert Match(as_path=r"^65010 ").attributes_match(BASE)
    assert Match(as_path=r"(^| )65020$").attributes_match(BASE)  # originated by 65020
    assert not Match(as_path=r"^65020").attributes_match(BASE)


def test_as_path_text_shows_sets_in_braces() -> None:
    attrs = PathAttributes(as_path=((2, (1, 2)), (1, (3, 4))))
    assert as_path_text(attrs) == "1 2 {3 4}"


def test_set_local_pref_med_and_communities() -> None:
    changes = Changes(local_pref=300, med=0, add_communities=(12076 << 16 | 51,), remove_communities=(65010 << 16 | 1,),
                      add_large_communities=((12076, 0, 1),))
    out = changes.apply(BASE, LOCAL_ASN)
    assert (out.local_pref, out.med) == (300, 0)
    assert out.communities == (12076 << 16 | 51,)
    assert out.large_communities == ((65010, 1, 1), (12076, 0, 1))
    replaced = Changes(communities=(1,), large_communities=()).apply(BASE, LOCAL_ASN)
    assert (replaced.communities, replaced.large_communities) == ((1,), ())


def test_prepend_own_or_given_as() -> None:
    assert Changes(prepend=2).apply(BASE, LOCAL_ASN).asns() == [12076, 12076, 65010, 65020]
    assert Changes(prepend=1, prepend_asn=65099).apply(BASE, LOCAL_ASN).asns() == [65099, 65010, 65020]


@pytest.mark.parametrize(
    ("path", "mode", "expected"),
    [
        ((64512, 3356), "if-all-private", (64512, 3356)),  # mixed: untouched
        ((64512, 4200000001), "if-all-private", ()),  # all private: stripped
        ((64512, 3356, 64513), "leading", (3356, 64513)),  # up to the first public AS
        ((3356, 64512), "leading", (3356, 64512)),
        ((64512, 3356, 64513), "all", (3356,)),
    ],
)
def test_remove_private_as_semantics(path: tuple[int, ...], mode: str, expected: tuple[int, ...]) -> None:
    out = strip_private(as_sequence(*path), mode)
    assert [a for _, seg in out for a in seg] == list(expected)


def test_private_ranges() -> None:
    assert is_private_asn(64512) and is_private_asn(65534) and is_private_asn(4200000000)
    assert not is_private_asn(65535) and not is_private_asn(12076) and not is_private_asn(64511)


def test_next_hop_self_and_set() -> None:
    assert Changes(next_hop_self=True).apply(BASE, LOCAL_ASN).next_hop is None
    assert Changes(next_hop="192.0.2.77").apply(BASE, LOCAL_ASN).next_hop == "192.0.2.77"


def test_terms_first_match_decides_continue_accumulates_default_applies() -> None:
    policy = Policy(
        (
            Term("tag", Match(), Changes(add_communities=(99,)), action="continue"),
            Term("no-default", Match(prefixes=(PrefixEntry("0.0.0.0/0"),)), action="reject"),
            Term("prefer", Match(communities=(65010 << 16 | 1,)), Changes(local_pref=200)),
        ),
        default="reject",
    )
    assert run(policy, "0.0.0.0/0") is None
    out = run(policy, "10.0.0.0/8")
    assert out is not None and out.local_pref == 200 and 99 in out.communities
    assert run(policy, "10.0.0.0/8", BASE.with_changes(communities=())) is None  # default reject


def test_apply_groups_prefixes_by_outcome_and_caches_prefix_free_policies() -> None:
    policy = Policy((Term("deny-10", Match(prefixes=(PrefixEntry("10.0.0.0/8", le=32),)), action="reject"),))
    keys = [k("10.1.0.0/16"), k("192.0.2.0/24"), k("10.2.0.0/16")]
    groups = policy.apply(IPV4_UNICAST, keys, BASE, LOCAL_ASN)
    assert sorted((a is None, len(ks)) for a, ks in groups) == [(False, 1), (True, 2)]
    lp = Policy((Term("lp", Match(), Changes(local_pref=150)),))
    first = lp.apply(IPV4_UNICAST, keys, BASE, LOCAL_ASN)
    second = lp.apply(IPV4_UNICAST, keys, BASE, LOCAL_ASN)
    assert first[0][0] is second[0][0]  # one evaluation per attribute object
    assert ACCEPT_ALL.apply(IPV4_UNICAST, keys, BASE, LOCAL_ASN) == [(BASE, keys)]


def test_policy_from_yaml() -> None:
    data = yaml.safe_load("""
terms:
  - name: forced-tunnel-only-from-primary
    match: {prefix_list: [{prefix: 0.0.0.0/0}], as_path: "^65010$"}
    set: {local_pref: 200, add_communities: [no-export, "12076:51"], next_hop: self, prepend: 1}
  - name: customer
    match:
      prefix_list: [{prefix: 10.66.0.0/16, le: 32, action: deny}, {prefix: 10.0.0.0/8, le: 24}]
      family: ipv4
    set: {remove_private_as: leading, med: 0}
  - {name: rest, action: reject}
""")
    policy = policy_from_data(data)
    default = run(policy, "0.0.0.0/0", BASE.with_changes(as_path=as_sequence(65010)))
    assert default is not None and default.local_pref == 200 and default.next_hop is None
    assert default.asns() == [12076, 65010]
    out = run(policy, "10.1.0.0/16", BASE.with_changes(as_path=as_sequence(64512, 3356, 65010)))
    assert out is not None and out.asns() == [3356, 65010] and out.med == 0
    assert run(policy, "10.66.1.0/24") is None  # denied by the prefix list, then rejected by 'rest'
    assert run(policy, "192.0.2.0/24") is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"terms": [{"match": {"colour": "red"}}]}, "terms[0].match: unknown field(s) colour"),
        ({"terms": [{"set": {"local_pref": -1}}]}, "terms[0].set.local_pref: expected an integer"),
        ({"terms": [{"set": {"add_communities": ["65536:1"]}}]}, "terms[0].set.add_communities"),
        ({"terms": [{"match": {"as_path": "(("}}]}, "bad regular expression"),
        ({"terms": [{"action": "maybe"}]}, "action 'maybe'"),
        ({"terms": [{"set": {"next_hop": "router"}}]}, "neither 'self' nor an IP address"),
        ({"terms": [{"set": {"remove_private_as": "some"}}]}, "if-all-private, leading or all"),
        ({"terms": [{"match": {"prefix_list": [{"prefix": "10.0.0.1/8"}]}}]}, "prefix_list[0]"),
        ({"default": "maybe"}, "default 'maybe'"),
    ],
)
def test_bad_policy_data_names_the_field(data: object, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        policy_from_data(data)
    assert message in str(info.value)


def test_max_prefix_validation() -> None:
    assert MaxPrefix(4000, 80, restart=60).restart == 60
    with pytest.raises(PolicyError):
        MaxPrefix(10, warning_percent=0)
