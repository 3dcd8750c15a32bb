"""The asyncio speaker over real loopback sockets: our speakers with each other and with scripted peers."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable

import pytest

from bgplab.bgp.events import Event, NotificationEvent, PeerStateChanged, RoutesWithdrawn
from bgplab.bgp.fsm import State
from bgplab.bgp.speaker import PeerConfig, Speaker
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST, PathAttributes, as_sequence, decode_update
from bgplab.bgp.wire.constants import MessageType
from bgplab.bgp.wire.framing import frame
from bgplab.bgp.wire.messages import KEEPALIVE, Open, encode_open, encode_route_refresh
from bgplab.bgp.wire.messages import RouteRefresh as RouteRefreshMessage
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.bgp.wire.update import CodecContext
from tests.bgp.rawpeer import RawPeer

ATTRS = PathAttributes(origin=0, as_path=as_sequence(65100), med=7, communities=(65001 << 16 | 1,))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def key(prefix: str) -> int:
    return parse_prefix(prefix)[1]


async def eventually(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Recorder:
    """Collects a speaker's events in the background."""

    def __init__(self, speaker: Speaker) -> None:
        self.events: list[Event] = []
        self._sub = speaker.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for ev in self._sub:
            self.events.append(ev)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    def close(self) -> None:
        self._sub.close()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Speaker, Speaker, int]]:
    """Speaker A (AS 65001, active) and B (AS 65002, passive) on loopback."""
    port = free_port("127.0.0.2")
    a = Speaker(65001, "10.0.0.1")
    b = Speaker(65002, "10.0.0.2", listen=[("127.0.0.2", port)])
    a.add_peer(PeerConfig("127.0.0.2", 65002, port=port, hold_time=9, local_address="127.0.0.1", connect_retry=0.5))
    b.add_peer(PeerConfig("127.0.0.1", 65001, passive=True, hold_time=9))
    await b.start()
    await a.start()
    yield a, b, port
    await a.stop()
    await b.stop()


async def test_routes_cross_with_attributes_and_are_withdrawn(pair: tuple[Speaker, Speaker, int]) -> None:
    a, b, _ = pair
    rec = Recorder(b)
    v4, v6 = key("203.0.113.0/24"), key("2001:db8:1::/48")
    a.announce(IPV4_UNICAST, [v4], ATTRS)
    a.announce(IPV6_UNICAST, [v6], ATTRS.with_changes(next_hop="2001:db8::1"))
    peer = b.peer("127.0.0.1")
    await eventually(lambda: peer.received_count() == 2, what="two routes at B")
    got4 = peer.rib_in[IPV4_UNICAST][v4]
    assert got4.asns() == [65001, 65100]  # eBGP: A prepended its own AS
    assert got4.next_hop == "127.0.0.1"  # next hop self when the route has none
    assert (got4.med, got4.communities) == (7, (65001 << 16 | 1,))
    assert peer.rib_in[IPV6_UNICAST][v6].next_hop == "2001:db8::1"
    a.withdraw(IPV4_UNICAST, [v4])
    await eventually(lambda: peer.received_count() == 1, what="withdrawal at B")
    assert v4 not in peer.rib_in[IPV4_UNICAST]
    withdrawn = rec.of(RoutesWithdrawn)
    assert withdrawn and withdrawn[-1].prefixes == [v4] and withdrawn[-1].reason == "withdrawn"
    states = [e.new for e in rec.of(PeerStateChanged)]
    assert states[-1] == "established"
    times = [e.time for e in rec.events]
    assert times == sorted(times)
    rec.close()


async def test_stop_sends_cease_with_shutdown_message_and_peer_flushes(pair: tuple[Speaker, Speaker, int]) -> None:
    a, b, _ = pair
    rec = Recorder(b)
    a.announce(IPV4_UNICAST, [key("198.51.100.0/24"), key("198.51.100.128/25")], ATTRS)
    peer = b.peer("127.0.0.1")
    await eventually(lambda: peer.received_count() == 2)
    await a.stop("maintenance window 42")
    await eventually(lambda: peer.received_count() == 0, what="flush after the session ended")
    notes = rec.of(NotificationEvent)
    assert [(n.code, n.subcode, n.direction) for n in notes] == [(6, 2, "received")]
    assert "maintenance window 42" in notes[0].text
    flushed = rec.of(RoutesWithdrawn)[-1]
    assert len(flushed.prefixes) == 2 and flushed.reason.startswith("session down")
    rec.close()


async def test_reconfigure_sends_cease_6_and_remove_sends_cease_3(pair: tuple[Speaker, Speaker, int]) -> None:
    a, b, port = pair
    rec = Recorder(b)
    await eventually(lambda: b.peer("127.0.0.1").state is State.ESTABLISHED)
    cfg = a.peer("127.0.0.2").config
    await a.reconfigure_peer(PeerConfig(**{**_fields(cfg), "hold_time": 12}))
    await eventually(lambda: any(n.subcode == 6 for n in rec.of(NotificationEvent)), what="Cease 6/6")
    await eventually(lambda: b.peer("127.0.0.1").state is State.ESTABLISHED, what="re-establishment")
    assert b.peer("127.0.0.1").negotiated is not None and b.peer("127.0.0.1").negotiated.hold_time == 9
    await a.remove_peer("127.0.0.2")
    await eventually(lambda: any(n.subcode == 3 for n in rec.of(NotificationEvent)), what="Cease 6/3")
    assert "127.0.0.2" not in a.peers
    rec.close()


def _fields(cfg: PeerConfig) -> dict[str, object]:
    return {name: getattr(cfg, name) for name in cfg.__dataclass_fields__}


async def test_md5_matching_key_establishes_and_wrong_key_never_does() -> None:
    port = free_port("127.0.0.3")
    b = Speaker(65002, "10.0.0.2", listen=[("127.0.0.3", port)])
    b.add_peer(PeerConfig("127.0.0.1", 65001, passive=True, md5="s3cret"))
    b.add_peer(PeerConfig("127.0.0.4", 65004, passive=True, md5="s3cret"))
    good = Speaker(65001, "10.0.0.1")
    good.add_peer(PeerConfig("127.0.0.3", 65002, port=port, md5="s3cret", local_address="127.0.0.1"))
    bad = Speaker(65004, "10.0.0.4")
    bad.add_peer(PeerConfig("127.0.0.3", 65002, port=port, md5="wrong", local_address="127.0.0.4", connect_retry=0.5))
    await b.start()
    await good.start()
    await bad.start()
    try:
        await eventually(lambda: b.peer("127.0.0.1").state is State.ESTABLISHED, what="MD5 session up")
        cpu_before = time.process_time()
        await asyncio.sleep(3)
        cpu = time.process_time() - cpu_before
        assert b.peer("127.0.0.4").state is State.ACTIVE
        assert bad.peer("127.0.0.3").state in (State.CONNECT, State.ACTIVE)
        # No busy loop: a few connect attempts with backoff, almost no CPU while waiting.
        assert bad.peer("127.0.0.3").main.session.connect_retry_count <= 4
        assert cpu < 0.5, f"{cpu:.2f} s of CPU in 3 s of a failing MD5 session"
    finally:
        await bad.stop()
        await good.stop()
        await b.stop()


@pytest.fixture
async def listener() -> AsyncIterator[tuple[Speaker, int]]:
    """A passive speaker, AS 65002, expecting scripted peers 127.0.0.11..19 (AS 65011..)."""
    port = free_port("127.0.0.10")
    speaker = Speaker(65002, "10.0.0.2", listen=[("127.0.0.10", port)])
    for n in range(11, 20):
        speaker.add_peer(PeerConfig(f"127.0.0.{n}", 65000 + n, passive=True, hold_time=30, idle_hold=0.1))
    await speaker.start()
    yield speaker, port
    await speaker.stop()


async def raw(port: int, n: int) -> RawPeer:
    return await RawPeer.connect("127.0.0.10", port, f"127.0.0.{n}")


async def test_hold_timer_expiry_sends_4_0_at_the_hold_time(listener: tuple[Speaker, int]) -> None:
    speaker, port = listener
    peer = await raw(port, 11)
    await peer.establish(65011, "10.0.0.11", hold=3)
    started = time.monotonic()
    note = await peer.notification(timeout=6)  # we stay silent from here on
    elapsed = time.monotonic() - started
    assert (note.code, note.subcode) == (4, 0)
    assert 2.0 <= elapsed <= 4.0, elapsed  # 3 s negotiated, +-1 s
    assert await peer.closed()
    peer.close()


async def test_hold_time_zero_means_no_keepalives(listener: tuple[Speaker, int]) -> None:
    speaker, port = listener
    peer = await raw(port, 12)
    await peer.establish(65012, "10.0.0.12", hold=0)
    await asyncio.sleep(0.2)
    state = speaker.peer("127.0.0.12")
    assert state.negotiated is not None and state.negotiated.hold_time == 0
    seen = []
    with pytest.raises(TimeoutError):
        while True:
            seen.append(await peer.read_message(timeout=3.5))
    assert all(t != MessageType.KEEPALIVE for t, _ in seen), seen
    assert state.state is State.ESTABLISHED
    peer.close()


@pytest.mark.parametrize(
    ("open_msg", "expected"),
    [
        (Open(65099, 30, "10.0.0.13"), (2, 2, b"\xfe\x4b")),  # wrong AS: data is the AS we got
        (Open(65013, 2, "10.0.0.13"), (2, 6, b"")),  # hold time 2
        (Open(65013, 30, "0.0.0.0"), (2, 3, b"")),  # BGP identifier 0
        (Open(65013, 30, "10.0.0.13", version=3), (2, 1, b"\x00\x04")),  # we speak version 4
    ],
)
async def test_bad_open_gets_the_rfc_4271_notification(
    listener: tuple[Speaker, int], open_msg: Open, expected: tuple[int, int, bytes]
) -> None:
    _, port = listener
    peer = await raw(port, 13)
    peer.send(encode_open(open_msg))
    note = await peer.notification()
    assert (note.code, note.subcode, note.data) == expected
    assert await peer.closed()
    peer.close()


async def test_update_before_open_is_fsm_error_5_1(listener: tuple[Speaker, int]) -> None:
    _, port = listener
    peer = await raw(port, 14)
    await peer.read_until(MessageType.OPEN)
    peer.send(frame(MessageType.UPDATE, b"\x00\x00\x00\x00"))
    note = await peer.notification()
    assert (note.code, note.subcode) == (5, 1)
    peer.close()


async def test_open_while_established_is_fsm_error_5_3(listener: tuple[Speaker, int]) -> None:
    _, port = listener
    peer = await raw(port, 15)
    await peer.establish(65015, "10.0.0.15")
    peer.send(encode_open(Open(65015, 30, "10.0.0.15")))
    note = await peer.notification()
    assert (note.code, note.subcode) == (5, 3)
    peer.close()


async def test_route_refresh_resends_the_table(listener: tuple[Speaker, int]) -> None:
    speaker, port = listener
    speaker.announce(IPV4_UNICAST, [key("192.0.2.0/25")], ATTRS.with_changes(next_hop="127.0.0.10"))
    peer = await raw(port, 16)
    await peer.establish(65016, "10.0.0.16")

    async def next_route() -> list[int]:
        while True:
            update = decode_update(await peer.read_until(MessageType.UPDATE), CodecContext())
            if update.end_of_rib() is None:
                return update.nlri

    assert await next_route() == [key("192.0.2.0/25")]
    peer.send(encode_route_refresh(RouteRefreshMessage(1, 1)))
    assert await next_route() == [key("192.0.2.0/25")]
    peer.close()


async def test_send_hold_timer_closes_a_peer_that_stopped_reading() -> None:
    port = free_port("127.0.0.20")
    speaker = Speaker(65002, "10.0.0.2", listen=[("127.0.0.20", port)])
    speaker.add_peer(PeerConfig("127.0.0.21", 65021, passive=True, hold_time=0, send_hold_time=1.5))
    # More than the kernel's largest send buffer (4 MiB here) must be queued: 1.1M /32s, 5.5 MB.
    keys = [(0x0A000000 + i) << 8 | 32 for i in range(1_100_000)]
    speaker.announce(IPV4_UNICAST, keys, ATTRS.with_changes(next_hop="127.0.0.20"))
    await speaker.start()
    rec = Recorder(speaker)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.bind(("127.0.0.21", 0))
        sock.connect(("127.0.0.20", port))
        sock.sendall(encode_open(Open(65021, 0, "10.0.0.21")) + KEEPALIVE)
        # ... and never read again: the speaker's send buffer fills and stays full.
        await eventually(
            lambda: any("send hold" in e.reason for e in rec.of(PeerStateChanged)), timeout=8, what="send hold expiry"
        )
        down = next(e for e in rec.of(PeerStateChanged) if "send hold" in e.reason)
        up = next(e for e in rec.of(PeerStateChanged) if e.new == "established")
        assert 1.0 <= down.time - up.time <= 8.0  # 1.5 s once the buffer is full; filling it takes a while
        assert not rec.of(NotificationEvent)  # RFC 9687: close, no NOTIFICATION behind the stuck data
        sock.close()
    finally:
        rec.close()
        await speaker.stop()


async def test_collision_keeps_the_connection_of_the_higher_router_id() -> None:
    """RFC 4271 section 6.8, both outcomes: our id higher keeps ours; lower keeps theirs."""
    for our_id, their_id, survivor in (("10.0.0.9", "10.0.0.1", "outgoing"), ("10.0.0.1", "10.0.0.9", "incoming")):
        port_them = free_port("127.0.0.31")
        port_us = free_port("127.0.0.30")
        accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        server = await asyncio.start_server(lambda r, w: accepted.put_nowait((r, w)), "127.0.0.31", port_them)
        speaker = Speaker(65030, our_id, listen=[("127.0.0.30", port_us)])
        speaker.add_peer(PeerConfig("127.0.0.31", 65031, port=port_them, local_address="127.0.0.30"))
        await speaker.start()
        try:
            out_r, out_w = await asyncio.wait_for(accepted.get(), 5)  # the speaker's outgoing connection
            outgoing = RawPeer(out_r, out_w)
            await outgoing.read_until(MessageType.OPEN)
            incoming = await RawPeer.connect("127.0.0.30", port_us, "127.0.0.31")
            await incoming.read_until(MessageType.OPEN)
            mine = encode_open(Open(65031, 30, their_id))
            # Both OPENs first, so both connections sit in OpenConfirm when the speaker decides.
            outgoing.send(mine)
            incoming.send(mine)
            loser = incoming if survivor == "outgoing" else outgoing
            winner = outgoing if survivor == "outgoing" else incoming
            note = await loser.notification()
            assert (note.code, note.subcode) == (6, 7)
            assert await loser.closed()
            winner.send(KEEPALIVE)
            await eventually(lambda: speaker.peer("127.0.0.31").state is State.ESTABLISHED)
            assert speaker.peer("127.0.0.31").main.outgoing == (survivor == "outgoing")
            assert speaker.peer("127.0.0.31").candidate is None
            outgoing.close()
            incoming.close()
        finally:
            await speaker.stop()
            server.close()


def _update_body(attrs: bytes, nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    return struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri


async def test_listener_refuses_unconfigured_peers(listener: tuple[Speaker, int]) -> None:
    _, port = listener
    stranger = await RawPeer.connect("127.0.0.10", port, "127.0.0.99")
    assert await stranger.closed(timeout=2)
    stranger.close()


async def test_paths_through_our_own_as_are_dropped_unless_allowed(listener: tuple[Speaker, int]) -> None:
    from tests.bgp.test_speaker_malformed import ORIGIN, attr, path, update

    speaker, port = listener
    peer = await raw(port, 17)
    await peer.establish(65017, "10.0.0.17")
    hop = attr(0x40, 3, bytes([127, 0, 0, 17]))
    peer.send(update(ORIGIN + attr(0x40, 2, path(65017, 65100)) + hop))
    table = speaker.peer("127.0.0.17")
    await eventually(lambda: table.received_count() == 1, what="a clean path accepted")
    peer.send(update(ORIGIN + attr(0x40, 2, path(65017, 65002, 65100)) + hop))  # 65002 is us
    await eventually(lambda: table.received_count() == 0, what="looped path replacing the clean one")
    assert table.stats["loop_discarded"] == 1
    peer.close()
    cfg = table.config
    await speaker.reconfigure_peer(PeerConfig(**{**_fields(cfg), "allow_own_as": 1}))
    peer = await raw(port, 17)
    await peer.establish(65017, "10.0.0.17")
    peer.send(update(ORIGIN + attr(0x40, 2, path(65017, 65002, 65100)) + hop))
    await eventually(lambda: speaker.peer("127.0.0.17").received_count() == 1, what="allowas-in 1")
    peer.close()


async def test_enhanced_route_refresh_markers_stale_purge_and_rate_limit(listener: tuple[Speaker, int]) -> None:
    """RFC 7313 both ways: our resend is framed by BoRR/EoRR; the peer's BoRR..EoRR purges what it
    did not re-send; a second refresh within a second is deferred, not answered at once."""
    from bgplab.bgp.wire.messages import decode_route_refresh
    from tests.bgp.test_speaker_malformed import ORIGIN, attr, path, update

    good = ORIGIN + attr(0x40, 2, path(65018)) + attr(0x40, 3, bytes([127, 0, 0, 18]))
    speaker, port = listener
    speaker.announce(IPV4_UNICAST, [key("192.0.2.0/25")], ATTRS.with_changes(next_hop="127.0.0.10"))
    peer = await raw(port, 18)
    await peer.establish(65018, "10.0.0.18", enhanced_refresh=True)
    peer.send(encode_route_refresh(RouteRefreshMessage(1, 1)))
    kinds = []
    while len(kinds) < 50:
        msg_type, body = await peer.read_message()
        if msg_type == MessageType.ROUTE_REFRESH:
            kinds.append(("refresh", decode_route_refresh(body).subtype))
            if kinds[-1] == ("refresh", 2):
                break
        elif msg_type == MessageType.UPDATE:
            kinds.append(("update", tuple(decode_update(body, CodecContext()).nlri)))
    start = kinds.index(("refresh", 1))
    assert kinds[start:] == [("refresh", 1), ("update", (key("192.0.2.0/25"),)), ("refresh", 2)]

    table = speaker.peer("127.0.0.18")
    peer.send(update(good, bytes([24, 198, 51, 100])) + update(good, bytes([24, 203, 0, 113])))
    await eventually(lambda: table.received_count() == 2)
    peer.send(encode_route_refresh(RouteRefreshMessage(1, 1, 1)))  # BoRR
    peer.send(update(good, bytes([24, 198, 51, 100])))  # only one of the two comes again
    peer.send(encode_route_refresh(RouteRefreshMessage(1, 1, 2)))  # EoRR
    await eventually(lambda: table.received_count() == 1, what="stale route purged at EoRR")
    assert list(table.rib_in[IPV4_UNICAST]) == [key("198.51.100.0/24")]

    first = time.monotonic()
    peer.send(encode_route_refresh(RouteRefreshMessage(1, 1)))
    await peer.read_until(MessageType.ROUTE_REFRESH)  # BoRR of the answer
    assert time.monotonic() - first >= 0.3  # within a second of the previous refresh: deferred
    peer.close()
