"""Routing features against real routers: maximum prefix with FRR as the offending peer."""

from __future__ import annotations

import json
import struct
import time

import pytest

from bgplab.bgp.events import NotificationEvent, PeerStateChanged
from bgplab.bgp.fsm import State
from bgplab.bgp.policy import MaxPrefix
from bgplab.bgp.rib import DecisionOptions
from bgplab.bgp.speaker import PeerConfig, Speaker
from bgplab.bgp.wire import IPV4_UNICAST
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.testing.daemons import FrrDaemon, Neighbor, Route
from bgplab.testing.netns import LinkedPair
from tests.bgp.test_speaker import Recorder, eventually
from tests.bgp.test_speaker_interop import off_loop

pytestmark = pytest.mark.interop

LIMIT = 5


async def test_max_prefix_against_frr_cease_data_restart_and_recovery() -> None:
    routes = [Route(f"198.51.100.{i * 16}/28") for i in range(LIMIT + 1)]
    with LinkedPair("bgx") as lab, FrrDaemon(lab.b, 65010, "10.0.0.2", [Neighbor(lab.A4, 12076, families=("ipv4",))],
                                             routes) as frr:
        speaker = Speaker(12076, "10.0.0.1", listen=[(lab.A4, 179)], netns=lab.a.name, routing=DecisionOptions())
        limit = {IPV4_UNICAST: MaxPrefix(LIMIT, warning_percent=80, restart=2.0)}
        speaker.add_peer(PeerConfig(lab.B4, 65010, passive=True, hold_time=9, max_prefix=limit, idle_hold=0.2))
        rec = Recorder(speaker)
        await speaker.start()
        try:
            await eventually(lambda: any(n.direction == "sent" for n in rec.of(NotificationEvent)), 30, "Cease 6/1")
            note = next(n for n in rec.of(NotificationEvent) if n.direction == "sent")
            assert (note.code, note.subcode) == (6, 1)
            assert note.data == struct.pack("!HBI", 1, 1, LIMIT)  # RFC 4486: AFI 1, SAFI 1, limit
            down_at = next(e.time for e in rec.of(PeerStateChanged) if e.new == "idle")
            assert speaker.peer(lab.B4).received_count() == 0
            assert speaker.rib is not None and len(speaker.rib) == 0
            reason = json.loads(await off_loop(frr.vtysh, f"show bgp neighbors {lab.A4} json"))
            text = json.dumps(reason)
            assert "Maximum Number of Prefixes Reached" in text or "Cease/Max" in text, text[:2000]
            # It comes back by itself after the restart timer (and goes down again: still over the limit).
            await eventually(lambda: sum(1 for e in rec.of(PeerStateChanged) if e.new == "established") >= 2, 20,
                             "re-established after the restart timer")
            again = [e.time for e in rec.of(PeerStateChanged) if e.new == "active" and e.time > down_at]
            assert again and again[0] - down_at >= 1.8, "restarted before the configured 2 s"
            await off_loop(frr.withdraw, routes[-1].prefix)  # the customer gets under the limit
            await eventually(lambda: speaker.peer(lab.B4).state is State.ESTABLISHED
                             and speaker.peer(lab.B4).received_count() == LIMIT, 30, "recovered at the limit")
            assert speaker.peer(lab.B4).state is State.ESTABLISHED
        finally:
            rec.close()
            await speaker.stop()


@pytest.mark.parametrize("interval", [100, 300])
async def test_bfd_down_tears_bgp_down_at_once_against_frr(interval: int) -> None:
    """BFD with FRR bfdd: both sides Up; a silent cut (carrier up, nothing passes) takes BGP down
    within multiplier x interval (hold time is 30 s, so only BFD can explain it), with Cease /
    Hard Reset carrying BFD Down, and the peer's routes leave the Loc-RIB."""
    from bgplab.bgp.speaker import BfdSettings
    from bgplab.testing.netns import drop_all

    bfd = (interval, interval, 3)
    with LinkedPair("bgb") as lab, FrrDaemon(
        lab.b, 65010, "10.0.0.2", [Neighbor(lab.A4, 12076, families=("ipv4",), hold_time=30, keepalive=10, bfd=bfd)],
        [Route("10.1.0.0/16")],
    ) as frr:
        speaker = Speaker(12076, "10.0.0.1", listen=[(lab.A4, 179)], netns=lab.a.name, routing=DecisionOptions())
        speaker.add_peer(PeerConfig(lab.B4, 65010, passive=True, hold_time=30, idle_hold=0.5,
                                    bfd=BfdSettings(interval, interval, 3)))
        rec = Recorder(speaker)
        await speaker.start()
        try:
            await eventually(lambda: speaker.peer(lab.B4).received_count() == 1, 30, "route from FRR")
            await eventually(lambda: speaker.bfd_state(lab.B4) == "up", 15, "our BFD up")
            await off_loop(frr.wait_bfd_state, lab.A4, "up", 15)
            await off_loop(drop_all, lab.b, lab.ifname, True)
            cut = time.monotonic()
            await eventually(lambda: speaker.peer(lab.B4).state is not State.ESTABLISHED, 5, "BGP down by BFD")
            detected = time.monotonic() - cut
            assert detected <= 3 * interval / 1000 + 0.3, detected  # the floor is 3 x interval
            # The peer's state changes before the Recorder has read the events of that change.
            await eventually(lambda: any(n.direction == "sent" for n in rec.of(NotificationEvent)), 5, "the Cease")
            sent = [n for n in rec.of(NotificationEvent) if n.direction == "sent"]
            assert [(n.code, n.subcode, n.data) for n in sent] == [(6, 9, bytes((6, 10)))]
            assert speaker.rib is not None and len(speaker.rib) == 0
            await off_loop(drop_all, lab.b, lab.ifname, False)
            await eventually(lambda: speaker.peer(lab.B4).state is State.ESTABLISHED, 30, "BGP back after repair")
            await eventually(lambda: speaker.bfd_state(lab.B4) == "up", 15, "BFD back up")
        finally:
            await off_loop(drop_all, lab.b, lab.ifname, False)
            rec.close()
            await speaker.stop()


async def test_two_frr_paths_give_one_ecmp_route_in_the_kernel_and_bfd_removes_one() -> None:
    """Issue-3 acceptance: two FRR routers announce the same prefix with equal attributes -> two
    paths in our Loc-RIB and one ECMP route in the kernel; BFD on one link fails -> that next hop
    leaves RIB and kernel within the detection time; the other router withdraws -> no route."""
    import asyncio

    from bgplab.bgp.fib import Fib, FibFeeder
    from bgplab.bgp.speaker import BfdSettings
    from bgplab.testing.netns import Netns, add_address, drop_all, veth

    with Netns("bge") as ours, Netns("bge") as ns1, Netns("bge") as ns2:
        veth(ours, "eth1", ns1, "eth1")
        veth(ours, "eth2", ns2, "eth1")
        for ns, cidr, ifname in ((ours, "192.0.2.1/24", "eth1"), (ns1, "192.0.2.2/24", "eth1"),
                                 (ours, "198.51.100.1/24", "eth2"), (ns2, "198.51.100.2/24", "eth1")):
            add_address(ns, ifname, cidr)
        bfd = (100, 100, 3)
        frr1 = FrrDaemon(ns1, 65010, "10.0.0.2", [Neighbor("192.0.2.1", 12076, families=("ipv4",), bfd=bfd)],
                         [Route("10.1.0.0/16")])
        frr2 = FrrDaemon(ns2, 65010, "10.0.0.3", [Neighbor("198.51.100.1", 12076, families=("ipv4",), bfd=bfd)],
                         [Route("10.1.0.0/16")])
        with frr1, frr2:
            speaker = Speaker(12076, "10.0.0.1", netns=ours.name, routing=DecisionOptions(max_paths=2),
                              listen=[("192.0.2.1", 179), ("198.51.100.1", 179)])
            for addr in ("192.0.2.2", "198.51.100.2"):
                speaker.add_peer(PeerConfig(addr, 65010, passive=True, hold_time=30, idle_hold=0.5,
                                            bfd=BfdSettings(100, 100, 3)))
            fib = await Fib(ours.name).open()
            feeder = FibFeeder(fib)
            speaker.rib_listeners.append(feeder.on_rib_changes)
            await speaker.start()
            key = parse_prefix("10.1.0.0/16")[1]

            async def kernel_hops() -> set[str]:
                await feeder.idle()
                route = (await fib.routes(IPV4_UNICAST)).get((IPV4_UNICAST, key))
                return set(route or ())

            try:
                assert speaker.rib is not None
                await eventually(lambda: len(speaker.rib.selected(IPV4_UNICAST, key)) == 2, 40, "two paths")
                assert await kernel_hops() == {"192.0.2.2", "198.51.100.2"}
                out = ours.run(["ip", "-j", "route", "show", "10.1.0.0/16"]).stdout
                assert "192.0.2.2" in out and "198.51.100.2" in out  # one route, two next hops, per iproute2
                await eventually(lambda: speaker.bfd_state("192.0.2.2") == "up", 15, "BFD up")
                await off_loop(drop_all, ns1, "eth1", True)
                cut = time.monotonic()
                await eventually(lambda: len(speaker.rib.selected(IPV4_UNICAST, key)) == 1, 5, "one path left")
                while await kernel_hops() != {"198.51.100.2"}:
                    assert time.monotonic() - cut < 2, "kernel kept the dead next hop"
                    await asyncio.sleep(0.01)
                assert time.monotonic() - cut <= 0.3 + 0.3  # 100 ms x 3, plus FIB programming
                await off_loop(frr2.withdraw, "10.1.0.0/16")
                await eventually(lambda: not speaker.rib.selected(IPV4_UNICAST, key), 10, "no path left")
                assert await kernel_hops() == set()
            finally:
                await off_loop(drop_all, ns1, "eth1", False)
                await speaker.stop()
                await feeder.idle()
                await fib.close()
            assert "10.1.0.0" not in ours.run(["ip", "route"]).stdout  # nothing left behind
