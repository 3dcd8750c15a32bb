"""Hostile input through real sockets: each case gets the RFC's answer, and a bystander peer never notices.

perf-robustness.md B.5: "none crashes the speaker or disturbs another peer's session". The
codec-level answers are tested exhaustively in tests/bgp/wire; this suite proves the speaker
carries them out (NOTIFICATION and close, or treat-as-withdraw with the session kept) while
another session on the same speaker stays Established with its routes.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import AsyncIterator

import pytest

from bgplab.bgp.fsm import State
from bgplab.bgp.speaker import PeerConfig, Speaker
from bgplab.bgp.wire import IPV4_UNICAST
from bgplab.bgp.wire.constants import MARKER, MessageType
from bgplab.bgp.wire.framing import frame
from bgplab.bgp.wire.nlri import parse_prefix
from tests.bgp.rawpeer import RawPeer
from tests.bgp.test_speaker import eventually, free_port

PREFIX = parse_prefix("198.51.100.0/24")[1]
NLRI = bytes([24, 198, 51, 100])


def attr(flags: int, atype: int, value: bytes) -> bytes:
    if len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, atype, len(value)) + value
    return struct.pack("!BBB", flags, atype, len(value)) + value


def path(*asns: int) -> bytes:
    return bytes([2, len(asns)]) + b"".join(a.to_bytes(4, "big") for a in asns)


ORIGIN = attr(0x40, 1, b"\x00")
AS_PATH = attr(0x40, 2, path(65011))
NEXT_HOP = attr(0x40, 3, bytes([127, 0, 0, 11]))
GOOD = ORIGIN + AS_PATH + NEXT_HOP
# IPv6 unicast, next hop 2001:db8::1, NLRI 2001:db8:1::/48
MP_REACH_V6 = (
    b"\x00\x02\x01\x10" + bytes.fromhex("20010db8" + "0" * 23 + "1") + b"\x00" + bytes([48, 0x20, 1, 0xD, 0xB8, 0, 1])
)


def update(attrs: bytes, nlri: bytes = NLRI, withdrawn: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    return frame(MessageType.UPDATE, body)


RESETS = {
    "marker not all ones": (b"\x00" * 16 + b"\x00\x13\x04", (1, 1, b"")),
    "length 18": (MARKER + b"\x00\x12\x04", (1, 2, b"\x00\x12")),
    "unknown type 9": (MARKER + b"\x00\x13\x09", (1, 3, b"\x09")),
    "keepalive of 20 bytes": (MARKER + b"\x00\x14\x04\x00", (1, 2, b"\x00\x14")),
    "withdrawn length overruns": (frame(MessageType.UPDATE, b"\x00\x40\x00\x00"), (3, 1, b"")),
    "prefix length 33": (update(GOOD, bytes([33, 1, 2, 3, 4, 5])), (3, 10, b"")),
    "MP_REACH twice": (
        update(GOOD + attr(0x80, 14, MP_REACH_V6) * 2, b""),
        (3, 1, b""),
    ),
    "unknown well-known attribute": (update(GOOD + attr(0x40, 99, b"x")), (3, 2, None)),
    "route refresh of 5 bytes": (frame(MessageType.ROUTE_REFRESH, b"\x00\x01\x00\x01\x00"), (7, 1, None)),
}

WITHDRAWS = {
    "missing ORIGIN": AS_PATH + NEXT_HOP,
    "missing NEXT_HOP": ORIGIN + AS_PATH,
    "MED of 3 bytes": GOOD + attr(0x80, 4, b"\x00\x00\x01"),
    "COMMUNITIES of 5 bytes": GOOD + attr(0xC0, 8, b"\x00" * 5),
    "LARGE_COMMUNITIES of 13 bytes": GOOD + attr(0xC0, 32, b"\x00" * 13),
    "ORIGIN flagged optional": attr(0xC0, 1, b"\x00") + AS_PATH + NEXT_HOP,
    "attribute overruns the list": GOOD + b"\x40\x05\x09\x00\x00",
    "two stray bytes": GOOD + b"\x40\x05",
    "AS_PATH segment type 7": ORIGIN + attr(0x40, 2, b"\x07\x01\x00\x00\xfd\xeb") + NEXT_HOP,
    "only an unknown transitive attribute": attr(0xC0, 31, b"abc"),
    "path not starting with the peer AS": ORIGIN + attr(0x40, 2, path(65999)) + NEXT_HOP,
}


@pytest.fixture
async def setup() -> AsyncIterator[tuple[Speaker, int, RawPeer]]:
    port = free_port("127.0.0.40")
    speaker = Speaker(65002, "10.0.0.2", listen=[("127.0.0.40", port)])
    speaker.add_peer(PeerConfig("127.0.0.11", 65011, passive=True, idle_hold=0.05, idle_hold_max=0.2))
    speaker.add_peer(PeerConfig("127.0.0.12", 65012, passive=True, hold_time=3))
    await speaker.start()
    bystander = await RawPeer.connect("127.0.0.40", port, "127.0.0.12")
    await bystander.establish(65012, "10.0.0.12", hold=3)
    bystander.start_keepalives(1.0)
    own = attr(0x40, 1, b"\x00") + attr(0x40, 2, path(65012)) + attr(0x40, 3, bytes([127, 0, 0, 12]))
    bystander.send(update(own, bytes([24, 203, 0, 113])))
    await eventually(lambda: speaker.peer("127.0.0.12").received_count() == 1)
    yield speaker, port, bystander
    bystander.close()
    await speaker.stop()


async def attacker(speaker: Speaker, port: int) -> RawPeer:
    await eventually(lambda: speaker.peer("127.0.0.11").state is State.ACTIVE, what="attacker's session idle->active")
    peer = await RawPeer.connect("127.0.0.40", port, "127.0.0.11")
    await peer.establish(65011, "10.0.0.11")
    return peer


async def assert_bystander_unharmed(speaker: Speaker, bystander: RawPeer) -> None:
    assert speaker.peer("127.0.0.12").state is State.ESTABLISHED
    assert speaker.peer("127.0.0.12").received_count() == 1
    # The speaker keeps its keepalives to the bystander on time (hold 3 s -> every <= 1 s).
    assert await bystander.read_until(MessageType.KEEPALIVE, timeout=1.5) == b""


async def test_session_reset_cases_get_their_notification(
    setup: tuple[Speaker, int, RawPeer], caplog: pytest.LogCaptureFixture
) -> None:
    speaker, port, bystander = setup
    caplog.set_level(logging.ERROR, logger="asyncio")
    for name, (data, (code, subcode, payload)) in RESETS.items():
        peer = await attacker(speaker, port)
        peer.send(data)
        note = await peer.notification()
        assert (note.code, note.subcode) == (code, subcode), name
        if payload is not None:
            assert note.data == payload, name
        assert await peer.closed(), f"{name}: connection left open"
        peer.close()
        await assert_bystander_unharmed(speaker, bystander)
    assert not caplog.records, [r.getMessage() for r in caplog.records]


async def test_treat_as_withdraw_cases_keep_the_session(
    setup: tuple[Speaker, int, RawPeer], caplog: pytest.LogCaptureFixture
) -> None:
    speaker, port, bystander = setup
    caplog.set_level(logging.ERROR, logger="asyncio")
    peer = await attacker(speaker, port)
    table = speaker.peer("127.0.0.11")
    for name, attrs in WITHDRAWS.items():
        peer.send(update(GOOD))
        await eventually(lambda: PREFIX in table.rib_in.get(IPV4_UNICAST, {}), what=f"{name}: route installed")
        peer.send(update(attrs))
        await eventually(lambda: PREFIX not in table.rib_in[IPV4_UNICAST], what=f"{name}: treat-as-withdraw")
        assert table.state is State.ESTABLISHED, name
    await assert_bystander_unharmed(speaker, bystander)
    assert not caplog.records
    peer.close()


async def test_attribute_discard_cases_keep_the_route(setup: tuple[Speaker, int, RawPeer]) -> None:
    speaker, port, bystander = setup
    peer = await attacker(speaker, port)
    table = speaker.peer("127.0.0.11")
    cases = {
        "ATOMIC_AGGREGATE of 1 byte": (attr(0x40, 6, b"\x01"), "atomic_aggregate", False),
        "LOCAL_PREF from an external peer": (attr(0x40, 5, b"\x00\x00\x00\x64"), "local_pref", None),
        "AGGREGATOR of 5 bytes": (attr(0xC0, 7, b"\x00" * 5), "aggregator", None),
        "malformed AS4_PATH": (attr(0xC0, 17, b"\x02\x05\x00"), "as_path", ((2, (65011,)),)),
    }
    for name, (extra, field_name, expected) in cases.items():
        peer.send(update(GOOD + extra, bytes([24, 192, 0, 2])))
        key = parse_prefix("192.0.2.0/24")[1]
        await eventually(lambda: key in table.rib_in.get(IPV4_UNICAST, {}), what=name)
        assert getattr(table.rib_in[IPV4_UNICAST][key], field_name) == expected, name
        peer.send(update(b"", b"", bytes([24, 192, 0, 2])))
        await eventually(lambda: key not in table.rib_in[IPV4_UNICAST], what=f"{name}: withdrawn")
    big = attr(0xC0, 200, bytes(range(256)) * 15)  # 3840 bytes of an unknown transitive attribute
    peer.send(update(GOOD + big))
    await eventually(lambda: PREFIX in table.rib_in.get(IPV4_UNICAST, {}), what="unknown attribute kept")
    assert table.rib_in[IPV4_UNICAST][PREFIX].unknown[0].value == bytes(range(256)) * 15
    await assert_bystander_unharmed(speaker, bystander)
    peer.close()


async def test_hostile_notification_closes_cleanly(
    setup: tuple[Speaker, int, RawPeer], caplog: pytest.LogCaptureFixture
) -> None:
    speaker, port, bystander = setup
    caplog.set_level(logging.INFO, logger="bgplab.speaker")
    peer = await attacker(speaker, port)
    # Cease/2 with a shutdown length of 200 but 5 bytes of non-UTF-8 after it, then 4 KB of junk.
    peer.send(frame(MessageType.NOTIFICATION, bytes([6, 2, 200]) + b"\xff\xfe\x00\x1b[" + b"\x00" * 4000))
    assert await peer.closed()
    await eventually(lambda: speaker.peer("127.0.0.11").state is not State.ESTABLISHED)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "received NOTIFICATION 6/2" in text
    assert "\x1b" not in text  # no terminal escape from the peer reaches the log
    await assert_bystander_unharmed(speaker, bystander)
    peer.close()


async def test_byte_by_byte_stream_gives_the_same_result(setup: tuple[Speaker, int, RawPeer]) -> None:
    speaker, port, _ = setup
    peer = await attacker(speaker, port)
    stream = b"".join(update(GOOD, bytes([24, 10, i, 0])) for i in range(50))
    for i in range(len(stream)):
        peer.send(stream[i : i + 1])
        if i % 64 == 0:
            await peer.writer.drain()
    await eventually(lambda: speaker.peer("127.0.0.11").received_count() == 50)
    # ... and 1000 messages in one segment.
    peer.send(b"".join(update(GOOD, bytes([24, 11, i >> 8, i & 0xFF])) for i in range(1000)))
    await eventually(lambda: speaker.peer("127.0.0.11").received_count() == 1050)
    peer.close()
