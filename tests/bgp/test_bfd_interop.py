"""Our BFD endpoint over a real veth: against itself, and against FRR's bfdd, IPv4 and IPv6.

Every blocking call (vtysh, nft, ip) runs in a thread, so our event loop keeps its BFD timers
while the test waits; detection times are measured on the loop's clock from our own
timestamps. Figures are printed (see them with `pytest -rP`) and kept as test properties.

The bounds on a silent cut: the cut lands somewhere in the peer's transmit interval, so from
the cut to Down takes between floor - interval and floor (floor = multiplier x interval), plus
our timer lateness; the upper bound allows 300 ms on top for a loaded 2-core CI box. The exact
protocol figure, from the last packet received to Down, must be the floor itself within 50 ms.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from bgplab.bgp.bfd import BfdManager, BfdStateChange, ControlPacket, Diag, State, encode
from bgplab.bgp.bfd.packet import SOURCE_PORT_MAX, SOURCE_PORT_MIN
from bgplab.bgp.sockets import in_netns
from bgplab.testing.daemons import FrrDaemon, Neighbor, wait_until
from bgplab.testing.netns import LinkedPair, Netns, drop_all, set_link

pytestmark = pytest.mark.interop

P = LinkedPair
IFNAME = "eth1"
T = TypeVar("T")
FAMILIES = {"ipv4": (P.A4, P.B4), "ipv6": (P.A6, P.B6)}
PROFILES = [(100, 3), (300, 3)]
UPPER_SLACK = 0.300
EXACT_SLACK = 0.050


async def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def eventually(predicate: Callable[[], object], timeout: float, what: str) -> float:
    """Wait on the loop (10 ms steps) for predicate; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Changes:
    """Records every state change the manager reports."""

    def __init__(self) -> None:
        self.events: list[BfdStateChange] = []

    def __call__(self, change: BfdStateChange) -> None:
        self.events.append(change)

    def last(self, remote: str) -> BfdStateChange:
        return [e for e in self.events if e.remote == remote][-1]

    def flaps(self) -> list[BfdStateChange]:
        """Every change that left Up."""
        return [e for e in self.events if e.old is State.UP]


@pytest.fixture
def pair() -> Iterator[LinkedPair]:
    with LinkedPair("bfd", IFNAME) as p:
        yield p


@pytest.fixture
async def ours(pair: LinkedPair) -> AsyncIterator[tuple[BfdManager, Changes]]:
    changes = Changes()
    async with BfdManager(pair.a.name, on_change=changes) as manager:
        yield manager, changes


def mute(ns: Netns, on: bool) -> None:
    """Drop the namespace's outgoing BFD Control packets only: the peer falls silent one way."""
    ns.run(["nft", "delete", "table", "inet", "bgplab_bfd_mute"], check=False)
    if on:
        ns.run(["nft", "-f", "-"], input="table inet bgplab_bfd_mute {\n"
               " chain output { type filter hook output priority -300; udp dport 3784 drop; }\n}\n")


async def cut_and_measure(manager: BfdManager, remote: str, cut: Callable[[], None]) -> tuple[float, float]:
    """Cut, wait for Down; (cut -> Down, last packet received -> Down), seconds."""
    stats = manager.stats(remote)
    was = stats.last_down
    await off_loop(cut)
    cut_done = time.monotonic()
    await eventually(lambda: stats.last_down != was, 5, f"BFD with {remote} to go down")
    assert stats.last_down is not None and stats.last_received is not None
    return stats.last_down - cut_done, stats.last_down - stats.last_received


def check_detection(figures: tuple[float, float], interval_ms: int, mult: int, what: str,
                    record: Callable[[str, object], None]) -> None:
    floor, interval = mult * interval_ms / 1000, interval_ms / 1000
    cut_to_down, exact = figures
    print(f"{what}: cut->down {cut_to_down * 1000:.1f} ms, last packet->down {exact * 1000:.1f} ms "
          f"(floor {floor * 1000:.0f} ms)")
    record(what, {"cut_to_down_ms": round(cut_to_down * 1000, 1), "last_rx_to_down_ms": round(exact * 1000, 1)})
    assert floor - interval <= cut_to_down <= floor + UPPER_SLACK
    assert floor - 0.001 <= exact <= floor + EXACT_SLACK


# ---------------------------------------------------------------- ours against ours


async def test_ours_both_families(pair: LinkedPair, ours: tuple[BfdManager, Changes],
                                  record_property: Callable[[str, object], None]) -> None:
    a, changes = ours
    async with BfdManager(pair.b.name) as b:
        for (local, remote) in FAMILIES.values():
            a.add(local, remote, desired_min_tx=100, required_min_rx=100)
            b.add(remote, local, desired_min_tx=100, required_min_rx=100)
        took = await eventually(lambda: all(a.state(r) is State.UP for _, r in FAMILIES.values()), 5, "Up")
        assert took < 1.0  # state changes send at once
        for local, remote in FAMILIES.values():
            assert changes.last(remote).new is State.UP and changes.last(remote).local == local
            assert SOURCE_PORT_MIN <= a.source_port(remote) <= SOURCE_PORT_MAX
            session = a.session(remote)
            assert (session.tx_interval, session.detection_time) == (100_000, 300_000)
        await asyncio.sleep(1.0)
        assert not a.discards and not b.discards
        assert not changes.flaps()
        figures = await cut_and_measure(a, P.B4, lambda: drop_all(pair.a, IFNAME, True))
        check_detection(figures, 100, 3, "ours-ours ipv4 100x3", record_property)
        change = changes.last(P.B4)
        assert (change.old, change.new, change.diag, change.failed) == \
            (State.UP, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED, True)
        await eventually(lambda: a.state(P.B6) is State.DOWN, 2, "IPv6 down too")
        await off_loop(drop_all, pair.a, IFNAME, False)
        await eventually(lambda: all(a.state(r) is State.UP for _, r in FAMILIES.values()), 5, "Up again")


async def test_ttl_and_demultiplexing(pair: LinkedPair, ours: tuple[BfdManager, Changes]) -> None:
    """RFC 5881 section 5: only TTL 255 is accepted; unknown discriminators are dropped."""
    a, _ = ours
    a.add(P.A4, P.B4, desired_min_tx=1000, required_min_rx=1000)

    def send(ttl: int, packet: ControlPacket, source: str = P.B4) -> None:
        sock = in_netns(pair.b.name, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        with sock:
            sock.bind((source, 0))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            sock.sendto(encode(packet), (P.A4, 3784))

    mine = a.session(P.B4).local_discriminator
    hello = ControlPacket(state=State.DOWN, diag=0, detect_mult=3, my_discriminator=77, your_discriminator=0,
                          desired_min_tx=1_000_000, required_min_rx=1_000_000)
    send(254, hello)
    await eventually(lambda: a.discards["ttl"] == 1, 2, "the TTL 254 packet to be dropped")
    assert a.session(P.B4).remote_discriminator == 0
    send(255, replace(hello, your_discriminator=mine % 0xFFFFFFFF + 1))
    await eventually(lambda: a.discards["no-session"] == 1, 2, "an unknown discriminator to be dropped")
    send(255, replace(hello, detect_mult=0))
    await eventually(lambda: a.discards["detect-mult"] == 1, 2, "detect mult 0 to be dropped")
    send(255, hello)  # Your Discriminator 0: found by the source address
    await eventually(lambda: a.session(P.B4).remote_discriminator == 77, 2, "the session to take the packet")
    assert a.state(P.B4) is State.INIT


async def test_remove_tells_the_peer_admin_down(pair: LinkedPair, ours: tuple[BfdManager, Changes]) -> None:
    a, _ = ours
    theirs = Changes()
    async with BfdManager(pair.b.name, on_change=theirs) as b:
        a.add(P.A6, P.B6, desired_min_tx=100, required_min_rx=100)
        b.add(P.B6, P.A6, desired_min_tx=100, required_min_rx=100)
        await eventually(lambda: b.state(P.A6) is State.UP, 5, "Up")
        a.remove(P.B6)
        await eventually(lambda: b.state(P.A6) is State.DOWN, 2, "the peer to hear AdminDown")
        change = theirs.last(P.A6)
        assert (change.diag, change.remote_state, change.failed) == \
            (Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, State.ADMIN_DOWN, False)
        assert a.remotes == []
        a.add(P.A6, P.B6, desired_min_tx=100, required_min_rx=100)  # sockets come back
        await eventually(lambda: b.state(P.A6) is State.UP, 5, "Up again")


# ---------------------------------------------------------------- ours against FRR bfdd


def frr_for(pair: LinkedPair, interval_ms: int, mult: int) -> FrrDaemon:
    """FRR on side b with BGP neighbors for both our addresses, BFD on both."""
    bfd = (interval_ms, interval_ms, mult)
    return FrrDaemon(pair.b, 65002, P.B4, [Neighbor(P.A4, 65001, families=("ipv4",), bfd=bfd),
                                           Neighbor(P.A6, 65001, families=("ipv6",), bfd=bfd)])


async def both_up(manager: BfdManager, frr: FrrDaemon, ours: str, theirs: str, timeout: float = 15) -> None:
    await eventually(lambda: manager.state(theirs) is State.UP, timeout, f"our BFD with {theirs} Up")
    await off_loop(frr.wait_bfd_state, ours, "up", timeout)


@pytest.mark.parametrize(("interval_ms", "mult"), PROFILES, ids=[f"{i}x{m}" for i, m in PROFILES])
@pytest.mark.parametrize("family", list(FAMILIES))
async def test_frr_silent_cut_and_link_down(pair: LinkedPair, ours: tuple[BfdManager, Changes], family: str,
                                            interval_ms: int, mult: int,
                                            record_property: Callable[[str, object], None]) -> None:
    manager, changes = ours
    local, remote = FAMILIES[family]
    with ExitStack() as stack:
        frr = stack.enter_context(frr_for(pair, interval_ms, mult))
        manager.add(local, remote, desired_min_tx=interval_ms, required_min_rx=interval_ms, detect_mult=mult)
        await both_up(manager, frr, local, remote)
        view = await off_loop(frr.bfd_peer, local)
        assert view is not None
        assert (view["remote-transmit-interval"], view["remote-receive-interval"], view["remote-detect-multiplier"]) \
            == (interval_ms, interval_ms, mult)
        session = manager.session(remote)
        await eventually(lambda: not session.polling, 3, "the Poll Sequence after Up to end")
        assert (session.tx_interval, session.detection_time) == (interval_ms * 1000, mult * interval_ms * 1000)
        await asyncio.sleep(1.0)
        assert not changes.flaps()

        name = f"ours<-frr {family} {interval_ms}x{mult}"
        figures = await cut_and_measure(manager, remote, lambda: drop_all(pair.a, IFNAME, True))
        check_detection(figures, interval_ms, mult, f"{name} silent cut", record_property)
        assert changes.last(remote).failed and changes.last(remote).diag == Diag.CONTROL_DETECTION_TIME_EXPIRED
        await off_loop(frr.wait_bfd_state, local, "down", 5)
        await off_loop(drop_all, pair.a, IFNAME, False)
        await both_up(manager, frr, local, remote)

        figures = await cut_and_measure(manager, remote, lambda: set_link(pair.a, IFNAME, False))
        check_detection(figures, interval_ms, mult, f"{name} link down", record_property)
        await off_loop(set_link, pair.a, IFNAME, True)
        await both_up(manager, frr, local, remote)
        assert manager.discards.total() == 0


async def test_frr_detects_our_silence(pair: LinkedPair, ours: tuple[BfdManager, Changes],
                                       record_property: Callable[[str, object], None]) -> None:
    """FRR's side of a one-way failure: it goes Down on its Detection Time and tells us (diag 3)."""
    manager, changes = ours
    with frr_for(pair, 100, 3) as frr:
        manager.add(P.A4, P.B4, desired_min_tx=100, required_min_rx=100)
        await both_up(manager, frr, P.A4, P.B4)
        await asyncio.sleep(1.0)
        before = len(frr.bfd_log_changes())
        await off_loop(mute, pair.a, True)
        muted = time.time()
        # Not the state: FRR may send two packets in a row on going Down, taking us on to Init.
        await eventually(lambda: changes.flaps(), 3, "FRR's Down to reach us")
        change = changes.flaps()[0]
        assert (change.diag, change.remote_state, change.remote_diag, change.failed) == \
            (Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, State.DOWN, Diag.CONTROL_DETECTION_TIME_EXPIRED, True)
        logged: list[tuple[float, str, str, str]] = []
        for _ in range(100):  # bfdd sends its Down packet before it logs the change
            logged = [c for c in (await off_loop(frr.bfd_log_changes))[before:] if c[2] == "up -> down"]
            if logged:
                break
            await asyncio.sleep(0.02)
        assert logged and logged[0][3] == "control-expired"
        took = logged[0][0] - muted
        print(f"FRR detection of our silence (100x3): {took * 1000:.1f} ms after the mute")
        record_property("frr detection ms", round(took * 1000, 1))
        assert 0.3 - 0.1 <= took <= 0.3 + UPPER_SLACK
        await off_loop(mute, pair.a, False)
        await both_up(manager, frr, P.A4, P.B4)


async def test_admin_down_both_ways_with_frr(pair: LinkedPair, ours: tuple[BfdManager, Changes]) -> None:
    manager, changes = ours
    with frr_for(pair, 300, 3) as frr:
        manager.add(P.A6, P.B6, desired_min_tx=300, required_min_rx=300)
        await both_up(manager, frr, P.A6, P.B6)
        # FRR shuts its session: AdminDown to us, which is not a path failure (RFC 5882 3.2).
        await off_loop(frr.set_bfd_enabled, P.A6, False)
        await eventually(lambda: manager.state(P.B6) is State.DOWN, 3, "FRR's AdminDown to reach us")
        change = changes.last(P.B6)
        assert (change.diag, change.remote_state, change.failed) == \
            (Diag.NEIGHBOR_SIGNALED_SESSION_DOWN, State.ADMIN_DOWN, False)
        assert await off_loop(frr.bfd_state, P.A6) == "admindown"
        await off_loop(frr.set_bfd_enabled, P.A6, True)
        await both_up(manager, frr, P.A6, P.B6)
        # Ours: FRR sees the peer go down.
        manager.admin_down(P.B6)
        assert manager.state(P.B6) is State.ADMIN_DOWN and not changes.last(P.B6).failed
        await off_loop(frr.wait_bfd_state, P.A6, "down", 3)
        view = await off_loop(frr.bfd_peer, P.A6)
        assert view is not None and view["diagnostic"] == "neighbor signaled session down"
        manager.admin_up(P.B6)
        await both_up(manager, frr, P.A6, P.B6)


async def test_interval_change_polls_frr(pair: LinkedPair, ours: tuple[BfdManager, Changes]) -> None:
    """A Poll Sequence with FRR, both ways; FRR adopts our new intervals and nothing flaps."""
    manager, changes = ours
    with frr_for(pair, 100, 3) as frr:
        manager.add(P.A4, P.B4, desired_min_tx=100, required_min_rx=100)
        await both_up(manager, frr, P.A4, P.B4)
        session = manager.session(P.B4)
        manager.set_params(P.B4, desired_min_tx=400, required_min_rx=250, detect_mult=4)
        await eventually(lambda: not session.polling, 3, "FRR's Final")
        assert session.tx_interval == 400_000

        def adopted() -> bool:
            view = frr.bfd_peer(P.A4)
            return view is not None and (view["remote-transmit-interval"], view["remote-receive-interval"],
                                         view["remote-detect-multiplier"], view["status"]) == (400, 250, 4, "up")
        for _ in range(50):
            if await off_loop(adopted):
                break
            await asyncio.sleep(0.1)
        assert await off_loop(adopted)
        assert session.detection_time == 3 * 250_000  # FRR now sends every 250 ms (its TX is our RX)
        await asyncio.sleep(2.0)
        assert manager.state(P.B4) is State.UP and not changes.flaps()


# ---------------------------------------------------------------- the harness: FRR with FRR


def test_frr_bfd_tears_bgp_down(pair: LinkedPair) -> None:
    """FrrDaemon's BFD (zebra + bfdd beside bgpd) takes BGP down long before the hold timer."""
    bfd = (100, 100, 3)
    a = FrrDaemon(pair.a, 65001, P.A4, [Neighbor(P.B4, 65002, families=("ipv4",), hold_time=30, keepalive=10,
                                                 bfd=bfd)])
    b = FrrDaemon(pair.b, 65002, P.B4, [Neighbor(P.A4, 65001, families=("ipv4",), hold_time=30, keepalive=10,
                                                 bfd=bfd)])
    with a, b:
        assert set(a.helpers) == {"zebra", "bfdd"}
        a.wait_state(P.B4, "established")
        a.wait_bfd_state(P.B4, "up")
        b.wait_bfd_state(P.A4, "up")
        drop_all(pair.a, IFNAME, True)
        cut = time.monotonic()
        a.wait_bfd_state(P.B4, "down", 3)
        wait_until(lambda: a.neighbor_state(P.B4) != "established", 3, "BGP to drop on BFD down", interval=0.05)
        assert time.monotonic() - cut < 3  # the hold time is 30 s
        assert "BFD Down" in a.log()
        drop_all(pair.a, IFNAME, False)
        a.wait_state(P.B4, "established", 30)
        pids = [p.pid for p in a.helpers.values()]
    assert not a.helpers and not any(alive(pid) for pid in pids)
