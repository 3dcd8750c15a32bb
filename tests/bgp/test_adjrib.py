"""The sans-IO Adj-RIBs (bgplab.bgp.adjribin, bgplab.bgp.adjribout): no sockets, no loop, no clock."""

from __future__ import annotations

from bgplab.bgp.adjribin import (
    LOOPED,
    WITHDRAWN,
    AdjRibIn,
    LimitReached,
    PrefixLimits,
)
from bgplab.bgp.adjribout import AdjRibOut, RefreshPacer
from bgplab.bgp.fsm import SessionConfig, local_open, negotiate
from bgplab.bgp.policy import Match, MaxPrefix, Policy, PrefixEntry, Term
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST, MpReach, MpUnreach, PathAttributes, Update, as_sequence
from bgplab.bgp.wire.messages import Open
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.bgp.wire.update_decoder import decode_update
from bgplab.bgp.wire.update_encoder import pack_withdrawals

P, Q, R = (parse_prefix(p)[1] for p in ("203.0.113.0/24", "198.51.100.0/24", "192.0.2.0/24"))
V6 = parse_prefix("2001:db8:1::/48")[1]
LOCAL_ASN = 65000
ROUTE = PathAttributes(origin=0, as_path=as_sequence(65001), next_hop="192.0.2.1", med=5)


def new_rib(allow_own_as: int = 0) -> AdjRibIn:
    return AdjRibIn(LOCAL_ASN, allow_own_as, {"updates_received": 0, "prefixes_received": 0, "loop_discarded": 0})


def test_announcements_and_withdrawals_in_message_order() -> None:
    rib = new_rib()
    changes = list(rib.receive(Update(withdrawn=[R], attributes=ROUTE, nlri=[P, Q])))
    assert changes == [(IPV4_UNICAST, [P, Q], ROUTE, ""), (IPV4_UNICAST, [R], None, WITHDRAWN)]
    assert rib.tables[IPV4_UNICAST] == {P: ROUTE, Q: ROUTE}
    assert rib.stats == {"updates_received": 1, "prefixes_received": 2, "loop_discarded": 0}
    assert list(rib.receive(Update(withdrawn=[P]))) == [(IPV4_UNICAST, [P], None, WITHDRAWN)]
    assert len(rib) == 1


def test_a_path_through_our_as_replaces_what_was_there() -> None:
    rib = new_rib()
    list(rib.receive(Update(attributes=ROUTE, nlri=[P])))
    looped = ROUTE.with_changes(as_path=as_sequence(65001, LOCAL_ASN))
    assert list(rib.receive(Update(attributes=looped, nlri=[P]))) == [(IPV4_UNICAST, [P], None, LOOPED)]
    assert rib.tables[IPV4_UNICAST] == {} and rib.stats["loop_discarded"] == 1
    assert not new_rib(allow_own_as=1).looped(looped)


def test_mp_next_hops_are_folded_into_one_shared_object() -> None:
    rib = new_rib()
    attrs = ROUTE.with_changes(next_hop=None)
    reach = MpReach(IPV6_UNICAST[0], IPV6_UNICAST[1], ("2001:db8::1",), [V6])
    [(_, _, first, _)] = rib.receive(Update(attributes=attrs, mp_reach=reach))
    [(_, _, again, _)] = rib.receive(Update(attributes=attrs, mp_reach=reach))
    assert first is not None and first.next_hop == "2001:db8::1" and first is again


def test_the_table_changes_only_as_far_as_the_caller_reads() -> None:
    rib = new_rib()
    unreach = (MpUnreach(IPV6_UNICAST[0], IPV6_UNICAST[1], [V6]),)
    list(rib.receive(Update(attributes=ROUTE, nlri=[Q])))
    changes = rib.receive(Update(withdrawn=[Q], attributes=ROUTE, nlri=[P], mp_unreach=unreach))
    next(changes)  # a caller that stops here (max prefix) leaves the withdrawals undone
    assert rib.tables[IPV4_UNICAST] == {P: ROUTE, Q: ROUTE}


def test_enhanced_route_refresh_removes_what_was_not_sent_again() -> None:
    rib = new_rib()
    list(rib.receive(Update(attributes=ROUTE, nlri=[P, Q, R])))
    rib.begin_refresh(IPV4_UNICAST)
    list(rib.receive(Update(attributes=ROUTE, nlri=[Q])))
    assert sorted(rib.end_refresh(IPV4_UNICAST)) == sorted([P, R])
    assert rib.tables[IPV4_UNICAST] == {Q: ROUTE}
    assert rib.end_refresh(IPV4_UNICAST) == []  # no BoRR, nothing stale


def test_clear_hands_back_the_tables() -> None:
    rib = new_rib()
    list(rib.receive(Update(attributes=ROUTE, nlri=[P])))
    rib.begin_refresh(IPV4_UNICAST)
    assert rib.clear() == {IPV4_UNICAST: {P: ROUTE}}
    assert rib.tables == {} and rib.end_refresh(IPV4_UNICAST) == []


def test_prefix_limits_warn_once_then_end_the_session() -> None:
    limits = PrefixLimits({IPV4_UNICAST: MaxPrefix(10, warning_percent=50, restart=30)})
    assert limits.check(IPV6_UNICAST, lambda f: 1000) is None
    assert limits.check(IPV4_UNICAST, lambda f: 4) is None
    assert limits.check(IPV4_UNICAST, lambda f: 5) == LimitReached(IPV4_UNICAST, 5, MaxPrefix(10, 50, 30), False)
    assert limits.check(IPV4_UNICAST, lambda f: 6) is None  # warned already
    assert limits.check(IPV4_UNICAST, lambda f: 4) is None
    assert limits.check(IPV4_UNICAST, lambda f: 5) is not None  # below, then up again
    over = limits.check(IPV4_UNICAST, lambda f: 11)
    assert over is not None and over.exceeded
    assert over.data == bytes.fromhex("0001 01 0000000a") and over.limit.restart == 30
    limits.reset()
    again = limits.check(IPV4_UNICAST, lambda f: 5)
    assert again is not None and not again.exceeded


def test_refresh_pacer_answers_at_most_once_an_interval() -> None:
    pacer = RefreshPacer(interval=1.0)
    assert pacer.request(IPV4_UNICAST, 100.0) == 0.0
    assert pacer.request(IPV4_UNICAST, 100.1) is None  # still due
    assert pacer.next() == IPV4_UNICAST and pacer.next() is None
    wait = pacer.request(IPV4_UNICAST, 100.25)
    assert wait is not None and abs(wait - 0.75) < 1e-9
    assert pacer.request(IPV4_UNICAST, 100.5) is None  # waiting
    pacer.ready(IPV4_UNICAST, 101.0)
    assert pacer.due == [IPV4_UNICAST]
    pacer.session_down()
    assert pacer.due == [] and pacer.request(IPV4_UNICAST, 101.5) is not None  # the pace carries over


def adj_rib_out(
    ebgp: bool, local: str | None = "192.0.2.254", originated: tuple[PathAttributes, ...] = ()
) -> AdjRibOut:
    config = SessionConfig(local_asn=LOCAL_ASN, router_id="192.0.2.254")
    peer_open = Open(65001 if ebgp else LOCAL_ASN, 90, "192.0.2.1", local_open(config).capabilities)
    negotiated = negotiate(config, local_open(config), peer_open)
    return AdjRibOut("192.0.2.1", negotiated, local, lambda a: any(a is o for o in originated))


def decoded(out: AdjRibOut, messages: list[bytes]) -> list[Update]:
    return [decode_update(m[19:], out.negotiated.codec) for m in messages]


def test_export_to_an_external_peer_is_next_hop_self_prepended_and_without_med() -> None:
    out = adj_rib_out(ebgp=True)
    [update] = decoded(out, out.encode(IPV4_UNICAST, [(P, ROUTE), (Q, ROUTE)], None))
    assert update.nlri == [P, Q] and update.attributes is not None
    assert update.attributes.next_hop == "192.0.2.254" and update.attributes.med is None
    assert update.attributes.as_path == as_sequence(LOCAL_ASN, 65001)
    assert out.tables[IPV4_UNICAST][P] is out.tables[IPV4_UNICAST][Q]


def test_our_own_routes_keep_next_hop_and_med() -> None:
    out = adj_rib_out(ebgp=True, originated=(ROUTE,))
    exported = out.export(IPV4_UNICAST, ROUTE)
    assert exported is not None and exported.next_hop == "192.0.2.1"
    [update] = decoded(out, out.encode(IPV4_UNICAST, [(P, ROUTE)], None))
    assert update.attributes is not None and update.attributes.med == 5


def test_to_an_internal_peer_local_pref_is_set_and_the_path_kept() -> None:
    out = adj_rib_out(ebgp=False)
    exported = out.export(IPV4_UNICAST, ROUTE)
    assert exported is not None and exported.local_pref == 100 and exported.as_path == ROUTE.as_path


def test_only_real_changes_are_sent() -> None:
    out = adj_rib_out(ebgp=True)
    assert out.encode(IPV4_UNICAST, [(P, None)], None) == []  # never sent: nothing to withdraw
    out.encode(IPV4_UNICAST, [(P, ROUTE)], None)
    assert out.encode(IPV4_UNICAST, [(P, None)], None) == pack_withdrawals(IPV4_UNICAST, [P], 65535)
    assert out.tables[IPV4_UNICAST] == {}


def test_export_policy_rejections_withdraw() -> None:
    out = adj_rib_out(ebgp=True)
    out.encode(IPV4_UNICAST, [(P, ROUTE), (Q, ROUTE)], None)
    deny = Policy((Term("no-P", Match(prefixes=(PrefixEntry("203.0.113.0/24"),)), action="reject"),))
    updates = decoded(out, out.encode(IPV4_UNICAST, [(P, ROUTE), (Q, ROUTE)], deny))
    assert [u.withdrawn for u in updates if u.withdrawn] == [[P]]
    assert set(out.tables[IPV4_UNICAST]) == {Q}


def test_no_next_hop_of_the_family_means_not_sent() -> None:
    assert adj_rib_out(ebgp=True, local=None).export(IPV4_UNICAST, ROUTE) is None
    assert adj_rib_out(ebgp=True).export(IPV6_UNICAST, ROUTE.with_changes(next_hop=None)) is None
