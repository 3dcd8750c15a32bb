"""The decision process, one tie-breaker at a time, and multipath; no sockets."""

from __future__ import annotations

import pytest

from bgplab.bgp.rib import LOCAL, DecisionOptions, LocRib, PeerInfo
from bgplab.bgp.wire import IPV4_UNICAST, PathAttributes, as_sequence
from bgplab.bgp.wire.nlri import parse_prefix

P = parse_prefix("203.0.113.0/24")[1]
Q = parse_prefix("198.51.100.0/24")[1]


def attrs(*path: int, lp: int | None = None, med: int | None = None, origin: int = 0, **kw: object) -> PathAttributes:
    return PathAttributes(origin=origin, as_path=as_sequence(*path), next_hop="192.0.2.9", med=med, local_pref=lp,
                          **kw)  # type: ignore[arg-type]


def rib(*peers: tuple[str, str, int, bool], **options: object) -> LocRib:
    """Peers as (address, router id, AS, ebgp)."""
    r = LocRib(65000, "10.0.0.100", DecisionOptions(**options))  # type: ignore[arg-type]
    for address, rid, asn, ebgp in peers:
        r.add_peer(address, PeerInfo(address, rid, asn, ebgp))
    return r


A = ("192.0.2.1", "10.0.0.1", 65001, True)
B = ("192.0.2.2", "10.0.0.2", 65002, True)
C = ("192.0.2.3", "10.0.0.3", 65001, True)
I1 = ("192.0.2.11", "10.0.0.11", 65000, False)


def best(r: LocRib, key: int = P) -> str:
    sel = r.selected(IPV4_UNICAST, key)
    assert sel, "nothing selected"
    return sel[0][0]


def test_single_path_is_best_and_changes_report_it() -> None:
    r = rib(A)
    changes = r.update(A[0], IPV4_UNICAST, [P], attrs(65001))
    assert [(c.key, c.best[0] if c.best else None) for c in changes] == [(P, A[0])]
    assert len(r) == 1


def test_highest_local_pref_wins_over_shorter_path() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001, lp=100))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002, 65009, 65010, lp=200))
    assert best(r) == B[0]


def test_missing_local_pref_counts_as_100() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002, lp=99))
    assert best(r) == A[0]


def test_shortest_as_path_wins_and_a_set_counts_one() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001, 65003, 65004))
    set_path = PathAttributes(origin=0, as_path=((2, (65002,)), (1, (1, 2, 3, 4))), next_hop="192.0.2.9")
    r.update(B[0], IPV4_UNICAST, [P], set_path)
    assert best(r) == B[0]  # length 2 (sequence 1 + set 1) beats 3


def test_lowest_origin_wins() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001, origin=2))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002, origin=1))
    assert best(r) == B[0]


def test_med_only_compared_within_the_same_neighbour_as() -> None:
    r = rib(A, B)  # different neighbour ASes: MED ignored, router id decides
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001, med=50))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002, med=10))
    assert best(r) == A[0]
    r2 = rib(A, C)  # same neighbour AS 65001: lower MED wins despite the higher router id
    r2.update(A[0], IPV4_UNICAST, [P], attrs(65001, med=50))
    r2.update(C[0], IPV4_UNICAST, [P], attrs(65001, med=10))
    assert best(r2) == C[0]


def test_always_compare_med() -> None:
    r = rib(A, B, always_compare_med=True)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001, med=50))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002, med=10))
    assert best(r) == B[0]


def test_missing_med_is_best_unless_configured_worst() -> None:
    for worst, winner in ((False, A[0]), (True, C[0])):
        r = rib(A, C, med_missing_as_worst=worst)
        r.update(A[0], IPV4_UNICAST, [P], attrs(65001))
        r.update(C[0], IPV4_UNICAST, [P], attrs(65001, med=5))
        assert best(r) == winner


def test_deterministic_med_is_order_independent_and_pairwise_is_not() -> None:
    """The classic MED intransitivity: X (AS 65001, MED 20, rid .1), Y (AS 65002, rid .2),
    Z (AS 65001, MED 10, rid .3). Grouping first picks Z over X, then Z vs Y by router id -> Y.
    Pairwise in peer order: X vs Y -> X (rid), X vs Z -> Z (MED): Z."""
    x = ("192.0.2.1", "10.0.0.1", 65001, True)
    y = ("192.0.2.2", "10.0.0.2", 65002, True)
    z = ("192.0.2.3", "10.0.0.3", 65001, True)
    picks = {}
    for deterministic in (True, False):
        r = rib(x, y, z, deterministic_med=deterministic)
        r.update(x[0], IPV4_UNICAST, [P], attrs(65001, med=20))
        r.update(y[0], IPV4_UNICAST, [P], attrs(65002))
        r.update(z[0], IPV4_UNICAST, [P], attrs(65001, med=10))
        picks[deterministic] = best(r)
    assert picks == {True: y[0], False: z[0]}


def test_ebgp_beats_ibgp() -> None:
    r = rib(I1, B)
    r.update(I1[0], IPV4_UNICAST, [P], attrs(65002))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002))
    assert best(r) == B[0]


def test_lowest_router_id_then_originator_id() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002))
    assert best(r) == A[0]  # 10.0.0.1 < 10.0.0.2
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001, originator_id="10.9.9.9"))
    assert best(r) == B[0]  # a reflected route is judged by its ORIGINATOR_ID


def test_lowest_peer_address_breaks_the_last_tie() -> None:
    same_id_a = ("192.0.2.7", "10.0.0.5", 65001, True)
    same_id_b = ("192.0.2.6", "10.0.0.5", 65002, True)
    r = rib(same_id_a, same_id_b)
    r.update(same_id_a[0], IPV4_UNICAST, [P], attrs(65001))
    r.update(same_id_b[0], IPV4_UNICAST, [P], attrs(65002))
    assert best(r) == same_id_b[0]


def test_local_routes_beat_learned_ones() -> None:
    r = rib(A)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001, lp=1000))
    r.update(LOCAL, IPV4_UNICAST, [P], attrs(lp=10))
    assert best(r) == LOCAL


def test_multipath_needs_equal_paths_and_honours_max_paths() -> None:
    msee1 = ("192.0.2.1", "10.0.0.1", 12076, True)
    msee2 = ("192.0.2.2", "10.0.0.2", 12076, True)
    other = ("192.0.2.3", "10.0.0.3", 12076, True)
    r = rib(msee1, msee2, other, max_paths=2)
    for peer in (msee1, msee2, other):
        r.update(peer[0], IPV4_UNICAST, [P], attrs(12076, 65010))
    assert [p for p, _ in r.selected(IPV4_UNICAST, P)] == [msee1[0], msee2[0]]  # capped at 2, best first
    r.update(msee2[0], IPV4_UNICAST, [P], attrs(12076, 12076, 65010))  # prepended: no longer equal
    assert [p for p, _ in r.selected(IPV4_UNICAST, P)] == [msee1[0], other[0]]


def test_multipath_relax_allows_different_paths_of_equal_length() -> None:
    for relax, width in ((False, 1), (True, 2)):
        r = rib(A, B, max_paths=4, multipath_relax=relax)
        r.update(A[0], IPV4_UNICAST, [P], attrs(65001, 65010))
        r.update(B[0], IPV4_UNICAST, [P], attrs(65002, 65010))
        assert len(r.selected(IPV4_UNICAST, P)) == width


def test_withdraw_falls_back_and_last_withdraw_removes() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P, Q], attrs(65001))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002))
    changes = r.withdraw(A[0], IPV4_UNICAST, [P, Q])
    assert {c.key: (c.best[0] if c.best else None) for c in changes} == {P: B[0], Q: None}
    assert r.withdraw(B[0], IPV4_UNICAST, [Q]) == []  # not ours to withdraw: no change
    assert len(r) == 1


def test_changes_only_when_the_selection_or_its_attributes_change() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P], attrs(65001))
    assert r.update(B[0], IPV4_UNICAST, [P], attrs(65002)) == []  # B loses: nothing changes
    changed = r.update(A[0], IPV4_UNICAST, [P], attrs(65001, med=3))  # best's attributes change
    assert len(changed) == 1 and changed[0].best is not None and changed[0].best[1].med == 3


def test_remove_peer_withdraws_everything_it_gave() -> None:
    r = rib(A, B)
    r.update(A[0], IPV4_UNICAST, [P, Q], attrs(65001))
    r.update(B[0], IPV4_UNICAST, [P], attrs(65002))
    changes = r.remove_peer(A[0])
    assert {c.key for c in changes} == {P, Q}
    assert best(r) == B[0] and r.selected(IPV4_UNICAST, Q) == ()
    assert A[0] not in r.peers()


def test_memo_never_confuses_different_attribute_objects() -> None:
    """The verdict cache is keyed by identity; equal-looking but new objects must be re-judged."""
    r = rib(A, C)
    for med_a, med_c, winner in ((5, 10, A[0]), (10, 5, C[0]), (5, 10, A[0])):
        r.update(A[0], IPV4_UNICAST, [P], attrs(65001, med=med_a))
        r.update(C[0], IPV4_UNICAST, [P], attrs(65001, med=med_c))
        assert best(r) == winner


def test_apply_reports_changes_compactly_with_best_paths_by_source() -> None:
    r = rib(A, B)
    a, b = attrs(65001), attrs(65002)
    first = r.apply(A[0], IPV4_UNICAST, [P, Q], a)
    assert first.picks.keys() == {P, Q} and first.best == {A[0]: {P: a, Q: a}}
    assert r.apply(B[0], IPV4_UNICAST, [P], b).picks == {}  # B loses P: nothing changes
    gone = r.apply(A[0], IPV4_UNICAST, [P, Q], None)
    assert gone.best == {B[0]: {P: b}, None: {Q: None}}
    assert {c.key: c.paths for c in r.changes(gone)} == {P: ((B[0], b),), Q: ()}
    assert r.best_paths(IPV4_UNICAST) == {B[0]: {P: b}}


def test_one_update_decides_per_combination_of_the_other_paths() -> None:
    """The prefixes of one UPDATE share a verdict only where the other peers hold the same objects."""
    r = rib(A, B)
    short, long = attrs(65002), attrs(65002, 65009, 65010)
    r.update(B[0], IPV4_UNICAST, [P], short)  # B beats A's two-AS path for P ...
    r.update(B[0], IPV4_UNICAST, [Q], long)  # ... but not for Q; R is A's alone
    R = parse_prefix("192.0.2.0/24")[1]
    mine = attrs(65001, 65003)
    result = r.apply(A[0], IPV4_UNICAST, [P, Q, R], mine)
    assert result.best == {A[0]: {Q: mine, R: mine}}
    assert [best(r, key) for key in (P, Q, R)] == [B[0], A[0], A[0]]


@pytest.mark.parametrize("n", [1, 1000])
def test_many_prefixes_one_update(n: int) -> None:
    r = rib(A, B, max_paths=2)
    keys = [(0x0A000000 + (i << 8)) << 8 | 24 for i in range(n)]
    r.update(A[0], IPV4_UNICAST, keys, attrs(65010))
    changes = r.update(B[0], IPV4_UNICAST, keys, attrs(65010))
    assert len(changes) == n
    assert all(len(c.paths) == 2 for c in changes)
