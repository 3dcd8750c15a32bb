"""The speaker as a router: Loc-RIB, propagation, policies replaced at run time, maximum prefix.

Three speakers on loopback: A (AS 65001) and B (AS 65002) around R (AS 65000, routing on).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bgplab.bgp.events import MaxPrefixWarning, NotificationEvent, PeerStateChanged
from bgplab.bgp.fsm import State
from bgplab.bgp.policy import Changes, Match, MaxPrefix, Policy, PrefixEntry, Term
from bgplab.bgp.rib import DecisionOptions
from bgplab.bgp.speaker import PeerConfig, Speaker
from bgplab.bgp.wire import IPV4_UNICAST, PathAttributes, as_sequence
from bgplab.bgp.wire.nlri import parse_prefix
from tests.bgp.test_speaker import Recorder, eventually, free_port

P = parse_prefix("203.0.113.0/24")[1]
Q = parse_prefix("198.51.100.0/24")[1]
ROUTE = PathAttributes(origin=0, as_path=as_sequence(), next_hop="127.0.0.51", med=9)


@dataclass
class Triangle:
    a: Speaker
    r: Speaker
    b: Speaker

    def at(self, speaker: Speaker, peer: str) -> dict[int, PathAttributes]:
        return speaker.peer(peer).rib_in.get(IPV4_UNICAST, {})


async def triangle(r_peer_a: dict[str, object] | None = None, r_peer_b: dict[str, object] | None = None,
                   options: DecisionOptions | None = None) -> Triangle:
    port = free_port("127.0.0.50")
    r = Speaker(65000, "10.0.0.50", listen=[("127.0.0.50", port)], routing=options or DecisionOptions())
    r.add_peer(PeerConfig("127.0.0.51", 65001, passive=True, hold_time=9, **(r_peer_a or {})))  # type: ignore[arg-type]
    r.add_peer(PeerConfig("127.0.0.52", 65002, passive=True, hold_time=9, **(r_peer_b or {})))  # type: ignore[arg-type]
    a = Speaker(65001, "10.0.0.51")
    a.add_peer(PeerConfig("127.0.0.50", 65000, port=port, local_address="127.0.0.51", hold_time=9,
                          connect_retry=0.3, idle_hold=0.2))
    b = Speaker(65002, "10.0.0.52")
    b.add_peer(PeerConfig("127.0.0.50", 65000, port=port, local_address="127.0.0.52", hold_time=9,
                          connect_retry=0.3, idle_hold=0.2))
    for s in (r, a, b):
        await s.start()
    for s, peer in ((a, "127.0.0.50"), (b, "127.0.0.50")):
        await eventually(lambda: s.peer(peer).state is State.ESTABLISHED, what="sessions up")
    return Triangle(a, r, b)


@pytest.fixture
async def tri() -> AsyncIterator[Triangle]:
    t = await triangle()
    yield t
    for s in (t.a, t.b, t.r):
        await s.stop()


async def test_routes_propagate_through_the_router_and_are_withdrawn(tri: Triangle) -> None:
    tri.a.announce(IPV4_UNICAST, [P], ROUTE)
    await eventually(lambda: P in tri.at(tri.b, "127.0.0.50"), what="A's route at B via R")
    got = tri.at(tri.b, "127.0.0.50")[P]
    assert got.asns() == [65000, 65001]
    assert got.next_hop == "127.0.0.50"  # next-hop-self on eBGP for learned routes
    assert got.med is None  # MED is not passed on to a third AS
    assert P not in tri.at(tri.a, "127.0.0.50")  # not sent back to where it came from
    tri.a.withdraw(IPV4_UNICAST, [P])
    await eventually(lambda: P not in tri.at(tri.b, "127.0.0.50"), what="withdrawal at B")


async def test_session_loss_withdraws_downstream(tri: Triangle) -> None:
    tri.a.announce(IPV4_UNICAST, [P, Q], ROUTE)
    await eventually(lambda: len(tri.at(tri.b, "127.0.0.50")) == 2)
    await tri.a.stop()
    await eventually(lambda: len(tri.at(tri.b, "127.0.0.50")) == 0, what="routes gone after A's session ended")
    assert tri.r.rib is not None and len(tri.r.rib) == 0


async def test_a_table_goes_through_the_router_over_many_loop_turns(
    tri: Triangle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """R's sender yields after every chunk; changes that arrive meanwhile queue behind the batch."""
    monkeypatch.setattr("bgplab.bgp.peer._SEND_TURN", 0.0)
    keys = [parse_prefix(f"10.{i >> 8}.{i & 255}.0/24")[1] for i in range(5000)]
    tri.a.announce(IPV4_UNICAST, keys, ROUTE)
    await eventually(lambda: len(tri.at(tri.r, "127.0.0.51")) == len(keys), what="the table at R")
    tri.a.withdraw(IPV4_UNICAST, keys[::2])
    await eventually(lambda: set(tri.at(tri.b, "127.0.0.50")) == set(keys[1::2]), what="half the table at B")
    assert tri.at(tri.b, "127.0.0.50")[keys[1]].asns() == [65000, 65001]


async def test_a_lost_table_leaves_over_many_loop_turns_and_a_new_session_waits_for_it(
    tri: Triangle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bgplab.bgp.speaker._WITHDRAW_SLICE", 10)
    keys = [parse_prefix(f"10.0.{i}.0/24")[1] for i in range(200)]
    tri.a.announce(IPV4_UNICAST, keys, ROUTE)
    await eventually(lambda: len(tri.at(tri.b, "127.0.0.50")) == len(keys), what="A's routes at B")
    rib = tri.r.rib
    assert rib is not None
    peer_a = tri.r.peer("127.0.0.51")
    assert peer_a.negotiated is not None
    tri.r._routes_gone(peer_a)  # as when the session ends: 10 prefixes go at once, the rest later
    assert len(rib) == len(keys) - 10
    tri.r._register(peer_a, peer_a.negotiated)  # as when it comes back: the rest go first
    assert len(rib) == 0
    await eventually(lambda: not tri.at(tri.b, "127.0.0.50"), what="withdrawn at B")
    tri.a.announce(IPV4_UNICAST, keys, ROUTE)  # what A sends now is not taken out by the old session
    await eventually(lambda: len(tri.at(tri.b, "127.0.0.50")) == len(keys), what="A's routes back at B")
    await tri.a.stop()
    await eventually(lambda: len(rib) == 0, what="a real session end, a slice per loop turn")
    await eventually(lambda: not tri.at(tri.b, "127.0.0.50"), what="all withdrawn at B")


async def test_import_policy_replaced_at_run_time_without_a_reset(tri: Triangle) -> None:
    rec = Recorder(tri.r)
    deny_p = Policy((Term("no-P", Match(prefixes=(PrefixEntry("203.0.113.0/24"),)), action="reject"),))
    tri.r.set_policies("127.0.0.51", deny_p, None)
    tri.a.announce(IPV4_UNICAST, [P, Q], ROUTE)
    await eventually(lambda: Q in tri.at(tri.b, "127.0.0.50"))
    await asyncio.sleep(0.2)
    assert P not in tri.at(tri.b, "127.0.0.50")
    assert P in tri.r.peer("127.0.0.51").rib_in[IPV4_UNICAST]  # kept as received, for soft reconfiguration
    lp = Policy((Term("prefer", Match(), Changes(local_pref=250, add_communities=(65000 << 16 | 7,))),))
    tri.r.set_policies("127.0.0.51", lp, None)
    await eventually(lambda: P in tri.at(tri.b, "127.0.0.50"), what="P accepted after the policy change")
    assert 65000 << 16 | 7 in tri.at(tri.b, "127.0.0.50")[P].communities
    assert not [e for e in rec.of(PeerStateChanged) if e.new == "idle"]  # no session was reset
    rec.close()


async def test_export_policy_prepends_and_rejects(tri: Triangle) -> None:
    tri.a.announce(IPV4_UNICAST, [P, Q], ROUTE)
    await eventually(lambda: len(tri.at(tri.b, "127.0.0.50")) == 2)
    policy = Policy((
        Term("hide-Q", Match(prefixes=(PrefixEntry("198.51.100.0/24"),)), action="reject"),
        Term("drain", Match(), Changes(prepend=2)),
    ))
    tri.r.set_policies("127.0.0.52", None, policy)
    await eventually(lambda: Q not in tri.at(tri.b, "127.0.0.50"), what="Q withdrawn by export policy")
    await eventually(lambda: tri.at(tri.b, "127.0.0.50")[P].asns() == [65000, 65000, 65000, 65001], what="prepend")


async def test_export_groups_send_only_routes_from_the_named_groups() -> None:
    # R sends B only what came from "customer" peers, and A only its own originations.
    t = await triangle(r_peer_a={"group": "customer", "export_groups": frozenset({"local"})},
                       r_peer_b={"group": "gateway", "export_groups": frozenset({"customer"})})
    try:
        t.a.announce(IPV4_UNICAST, [P], ROUTE)
        t.b.announce(IPV4_UNICAST, [Q], ROUTE.with_changes(next_hop="127.0.0.52"))
        R_OWN = parse_prefix("192.0.2.0/24")[1]
        t.r.announce(IPV4_UNICAST, [R_OWN], ROUTE.with_changes(next_hop=None))
        await eventually(lambda: P in t.at(t.b, "127.0.0.50"), what="customer route at the gateway")
        await eventually(lambda: R_OWN in t.at(t.a, "127.0.0.50"), what="own route at the customer")
        await asyncio.sleep(0.3)
        assert Q not in t.at(t.a, "127.0.0.50")  # gateway routes are not in A's export groups
        assert R_OWN not in t.at(t.b, "127.0.0.50")  # "local" is not in B's export groups
    finally:
        for s in (t.a, t.b, t.r):
            await s.stop()


async def test_multipath_and_rib_listeners() -> None:
    t = await triangle(options=DecisionOptions(max_paths=2, multipath_relax=True))
    seen = []
    t.r.rib_listeners.append(seen.extend)
    try:
        t.a.announce(IPV4_UNICAST, [P], ROUTE)
        t.b.announce(IPV4_UNICAST, [P], ROUTE.with_changes(next_hop="127.0.0.52"))
        assert t.r.rib is not None
        await eventually(lambda: len(t.r.rib.selected(IPV4_UNICAST, P)) == 2, what="two paths selected")
        assert seen and seen[-1].key == P and len(seen[-1].paths) == 2
        assert {a.next_hop for _, a in t.r.rib.selected(IPV4_UNICAST, P)} == {"127.0.0.51", "127.0.0.52"}
    finally:
        for s in (t.a, t.b, t.r):
            await s.stop()


async def test_maximum_prefix_cease_data_restart_and_recovery() -> None:
    limit = {IPV4_UNICAST: MaxPrefix(3, warning_percent=60, restart=1.0)}
    t = await triangle(r_peer_a={"max_prefix": limit})
    rec = Recorder(t.r)
    try:
        keys = [parse_prefix(f"10.{i}.0.0/16")[1] for i in range(4)]
        t.a.announce(IPV4_UNICAST, keys[:2], ROUTE)
        await eventually(lambda: any(isinstance(e, MaxPrefixWarning) for e in rec.events), what="warning at 2/3")
        t.a.announce(IPV4_UNICAST, keys[2:], ROUTE)
        await eventually(lambda: any(n.direction == "sent" for n in rec.of(NotificationEvent)), what="Cease 6/1")
        note = next(n for n in rec.of(NotificationEvent) if n.direction == "sent")
        assert (note.code, note.subcode) == (6, 1)
        assert note.data == struct.pack("!HBI", 1, 1, 3)  # RFC 4486: AFI, SAFI, the limit
        down = time.monotonic()
        assert P not in t.at(t.b, "127.0.0.50")
        await eventually(lambda: len(rec.of(NotificationEvent)) >= 2, timeout=5, what="second Cease after restart")
        assert time.monotonic() - down >= 0.8  # it waited for the restart timer
        t.a.withdraw(IPV4_UNICAST, keys[3:])  # back under the limit: the next restart holds
        await eventually(lambda: t.r.peer("127.0.0.51").state is State.ESTABLISHED and
                         t.r.peer("127.0.0.51").received_count() == 3, timeout=8, what="recovery")
        await asyncio.sleep(0.5)
        assert t.r.peer("127.0.0.51").state is State.ESTABLISHED
        await eventually(lambda: len(t.at(t.b, "127.0.0.50")) == 3, what="routes reach B again")
    finally:
        rec.close()
        for s in (t.a, t.b, t.r):
            await s.stop()


def test_policies_need_routing() -> None:
    async def go() -> None:
        s = Speaker(65000, "10.0.0.1")
        with pytest.raises(ValueError, match="routing"):
            s.add_peer(PeerConfig("192.0.2.1", 65001, import_policy=Policy()))

    asyncio.run(go())
