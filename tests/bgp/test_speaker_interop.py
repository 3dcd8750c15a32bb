"""Our speaker against real routers: FRR bgpd, BIRD 2, GoBGP and ExaBGP, each in its own namespace.

Each daemon peers with us twice over one veth: an IPv4 session (we connect, it listens) for
IPv4 unicast and an IPv6 session (it connects, we listen) for IPv6 unicast, so every daemon
sees our side both active and passive. The daemon uses a 4-octet AS number throughout.
Daemon queries block, so they run in a thread while our speaker keeps running on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import pytest

from bgplab.bgp.events import NotificationEvent
from bgplab.bgp.fsm import State
from bgplab.bgp.speaker import PeerConfig, Speaker
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST, PathAttributes, as_sequence
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.testing.daemons import (
    BgpDaemon,
    BirdDaemon,
    ExabgpDaemon,
    FrrDaemon,
    GobgpDaemon,
    Neighbor,
    Route,
)
from bgplab.testing.netns import LinkedPair, drop_all
from tests.bgp.test_speaker import Recorder, eventually

pytestmark = pytest.mark.interop

OUR_ASN = 65001
THEIR_ASN = 4200000002  # 4-octet: every exchange below also proves RFC 6793 handling
OURS4, THEIRS4 = LinkedPair.A4, LinkedPair.B4
OURS6, THEIRS6 = LinkedPair.A6, LinkedPair.B6
THEIR_ROUTES = [
    Route(
        "203.0.113.0/24",
        as_path=(64500,),
        med=20,
        communities=("65001:7", "65535:0"),
        large_communities=("4200000002:1:2",),
    ),
    Route(
        "2001:db8:100::/48", as_path=(64500,), med=30, communities=("65001:8",), large_communities=("4200000002:3:4",)
    ),
]
OUR_ATTRS = PathAttributes(
    origin=0,
    as_path=as_sequence(65100),
    med=11,
    communities=(65001 << 16 | 42,),
    large_communities=((65001, 5, 6),),
)
DAEMONS = [FrrDaemon, BirdDaemon, GobgpDaemon, ExabgpDaemon]
T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def make_daemon(kind: type[BgpDaemon], lab: LinkedPair, md5: str | None = None) -> BgpDaemon:
    neighbors = [
        Neighbor(OURS4, OUR_ASN, passive=True, families=("ipv4",), md5=md5),
        Neighbor(OURS6, OUR_ASN, passive=False, families=("ipv6",), md5=md5),
    ]
    return kind(lab.b, THEIR_ASN, "10.255.0.2", neighbors, THEIR_ROUTES)


@pytest.fixture(scope="module", params=DAEMONS, ids=lambda k: k.kind)
def daemon(request: pytest.FixtureRequest) -> Iterator[tuple[BgpDaemon, LinkedPair]]:
    with LinkedPair("bgi") as lab, make_daemon(request.param, lab) as d:
        yield d, lab


def our_speaker(lab: LinkedPair, md5: str | None = None, hold: int = 9) -> Speaker:
    speaker = Speaker(OUR_ASN, "10.255.0.1", listen=[(OURS6, 179)], netns=lab.a.name)
    speaker.add_peer(
        PeerConfig(
            THEIRS4, THEIR_ASN, hold_time=hold, md5=md5, connect_retry=1, idle_hold=0.2, families=(IPV4_UNICAST,)
        )
    )
    speaker.add_peer(
        PeerConfig(THEIRS6, THEIR_ASN, passive=True, hold_time=hold, md5=md5, idle_hold=0.2, families=(IPV6_UNICAST,))
    )
    return speaker


@pytest.fixture
async def ours(daemon: tuple[BgpDaemon, LinkedPair]) -> AsyncIterator[Speaker]:
    d, lab = daemon
    speaker = our_speaker(lab)
    await speaker.start()
    try:
        await established(speaker, d)
        yield speaker
    finally:
        await speaker.stop()


async def established(speaker: Speaker, d: BgpDaemon, timeout: float = 30) -> None:
    for addr in (THEIRS4, THEIRS6):
        await eventually(
            lambda: speaker.peer(addr).state is State.ESTABLISHED, timeout, f"our session with {d.kind} at {addr}"
        )
    for addr in (OURS4, OURS6):
        await off_loop(d.wait_state, addr, "established", timeout)


def key(prefix: str) -> int:
    return parse_prefix(prefix)[1]


async def test_their_routes_arrive_with_attributes(ours: Speaker, daemon: tuple[BgpDaemon, LinkedPair]) -> None:
    for route, addr, family in ((THEIR_ROUTES[0], THEIRS4, IPV4_UNICAST), (THEIR_ROUTES[1], THEIRS6, IPV6_UNICAST)):
        peer = ours.peer(addr)
        await eventually(lambda: key(route.prefix) in peer.rib_in.get(family, {}), 20, f"{route.prefix}")
        got = peer.rib_in[family][key(route.prefix)]
        assert got.asns() == [THEIR_ASN, *route.as_path]
        assert got.med == route.med
        assert sorted(got.communities) == sorted(
            int(a) << 16 | int(b) for a, b in (c.split(":") for c in route.communities)
        )
        assert got.large_communities == tuple(tuple(int(x) for x in c.split(":")) for c in route.large_communities)
        assert got.next_hop == addr


async def test_our_routes_arrive_with_attributes(ours: Speaker, daemon: tuple[BgpDaemon, LinkedPair]) -> None:
    d, _ = daemon
    ours.announce(IPV4_UNICAST, [key("198.51.100.0/24")], OUR_ATTRS)
    ours.announce(IPV6_UNICAST, [key("2001:db8:200::/48")], OUR_ATTRS)
    for prefix, hop in (("198.51.100.0/24", OURS4), ("2001:db8:200::/48", OURS6)):
        view = await off_loop(d.wait_route, prefix, 20)
        assert view.as_path == (OUR_ASN, 65100)
        assert view.med == 11
        assert view.communities == ("65001:42",)
        assert view.large_communities == ("65001:5:6",)
        assert view.next_hop == hop


async def test_withdrawals_both_ways(ours: Speaker, daemon: tuple[BgpDaemon, LinkedPair]) -> None:
    d, _ = daemon
    ours.announce(IPV4_UNICAST, [key("198.51.100.0/25")], OUR_ATTRS)
    await off_loop(d.wait_route, "198.51.100.0/25", 20)
    ours.withdraw(IPV4_UNICAST, [key("198.51.100.0/25")])
    await off_loop(d.wait_withdrawn, "198.51.100.0/25", 20)

    extra = Route("192.0.2.128/25", as_path=(64501,))
    await off_loop(d.announce, extra)
    peer = ours.peer(THEIRS4)
    await eventually(lambda: key(extra.prefix) in peer.rib_in.get(IPV4_UNICAST, {}), 20, "their new route")
    await off_loop(d.withdraw, extra.prefix)
    await eventually(lambda: key(extra.prefix) not in peer.rib_in[IPV4_UNICAST], 20, "their withdrawal")
    assert key(THEIR_ROUTES[0].prefix) in peer.rib_in[IPV4_UNICAST]  # only what was withdrawn left


async def test_notification_from_the_peer_is_handled(ours: Speaker, daemon: tuple[BgpDaemon, LinkedPair]) -> None:
    d, _ = daemon
    rec = Recorder(ours)
    peer = ours.peer(THEIRS4)
    await eventually(lambda: peer.received_count() >= 1, 20, "their routes")
    await off_loop(d.set_neighbor_enabled, OURS4, False)
    try:
        await eventually(
            lambda: any(n.direction == "received" for n in rec.of(NotificationEvent)),
            20,
            "a NOTIFICATION from the peer",
        )
        note = next(n for n in rec.of(NotificationEvent) if n.direction == "received")
        assert note.code == 6, note.text  # Cease
        await eventually(
            lambda: peer.state is not State.ESTABLISHED and peer.received_count() == 0,
            10,
            "session down and routes flushed",
        )
        assert ours.peer(THEIRS6).state is State.ESTABLISHED  # the other session is untouched
    finally:
        await off_loop(d.set_neighbor_enabled, OURS4, True)
        rec.close()
    await eventually(lambda: peer.state is State.ESTABLISHED, 30, "session back after re-enable")


async def test_silent_peer_is_detected_at_the_hold_time(daemon: tuple[BgpDaemon, LinkedPair]) -> None:
    d, lab = daemon
    speaker = our_speaker(lab, hold=3)
    await speaker.start()
    rec = Recorder(speaker)
    try:
        await established(speaker, d)
        assert speaker.peer(THEIRS4).negotiated is not None
        assert speaker.peer(THEIRS4).negotiated.hold_time == 3
        await off_loop(drop_all, lab.b, lab.ifname, True)  # carrier stays up, nothing gets through
        cut = time.monotonic()

        def sent() -> list[NotificationEvent]:
            # The recorder's task collects events after the peer's state has changed: wait on what
            # it holds, not on the state, or the NOTIFICATION may not be in it yet.
            return [n for n in rec.of(NotificationEvent) if n.direction == "sent" and n.peer == THEIRS4]

        await eventually(lambda: sent(), 8, "hold expiry")
        assert [(n.code, n.subcode) for n in sent()] == [(4, 0)], [e for e in rec.events if e.peer == THEIRS4]
        detected = sent()[0].time - cut
        assert 1.5 <= detected <= 4.5, detected  # the last keepalive came up to 1 s before the cut
        await eventually(lambda: speaker.peer(THEIRS4).state is not State.ESTABLISHED, 1, "session down")
    finally:
        await off_loop(drop_all, lab.b, lab.ifname, False)
        rec.close()
        await speaker.stop()


@pytest.mark.parametrize("kind", DAEMONS, ids=lambda k: k.kind)
async def test_md5_wrong_key_never_comes_up_right_key_does(kind: type[BgpDaemon]) -> None:
    with LinkedPair("bgm") as lab, make_daemon(kind, lab, md5="bgplab-md5-key") as d:
        wrong = our_speaker(lab, md5="not-the-key")
        await wrong.start()
        try:
            cpu = time.process_time()
            await asyncio.sleep(4)
            assert wrong.peer(THEIRS4).state is not State.ESTABLISHED
            assert wrong.peer(THEIRS6).state is not State.ESTABLISHED
            assert await off_loop(d.neighbor_state, OURS4) != "established"
            assert time.process_time() - cpu < 1.0  # waiting on a bad key costs no CPU
            assert wrong.peer(THEIRS4).main.session.connect_retry_count <= 5
        finally:
            await wrong.stop()
        right = our_speaker(lab, md5="bgplab-md5-key")
        await right.start()
        try:
            await established(right, d)
        finally:
            await right.stop()


@pytest.mark.parametrize("kind", [FrrDaemon, BirdDaemon], ids=lambda k: k.kind)
async def test_gtsm_both_sides_up_and_our_minimum_ttl_enforced(kind: type[BgpDaemon]) -> None:
    """RFC 5082: with GTSM on both sides the session comes up, which the peer allows only if
    our segments leave with TTL 255; against a peer that sends eBGP with TTL 1 (no GTSM), the
    kernel drops everything it sends us and the session never comes up."""
    for peer_gtsm, expect_up in ((True, True), (False, False)):
        with LinkedPair("bgt") as lab:
            d = kind(lab.b, THEIR_ASN, "10.255.0.2",
                     [Neighbor(OURS4, OUR_ASN, passive=True, families=("ipv4",), ttl_security=peer_gtsm)])
            with d:
                speaker = Speaker(OUR_ASN, "10.255.0.1", netns=lab.a.name)
                speaker.add_peer(PeerConfig(THEIRS4, THEIR_ASN, hold_time=9, ttl_security=True, connect_retry=1,
                                            families=(IPV4_UNICAST,)))
                await speaker.start()
                try:
                    if expect_up:
                        await eventually(lambda: speaker.peer(THEIRS4).state is State.ESTABLISHED, 20, "GTSM up")
                    else:
                        await asyncio.sleep(4)
                        assert speaker.peer(THEIRS4).state is not State.ESTABLISHED
                        assert await off_loop(d.neighbor_state, OURS4) != "established"
                finally:
                    await speaker.stop()
