"""Malformed input at codec level: perf-robustness.md B.5, one message at a time.

Every case asserts the exact answer RFC 4271 / 7606 / 6793 / 9003 / 7313 require: either a
NotificationError with the right code, subcode and data (session reset), or an Update whose
`errors` name the RFC 7606 action taken, with treat-as-withdraw already applied (NLRI moved
to the withdrawals, attributes None) and attribute-discard leaving the route without that
attribute. Nothing else may escape the decoders.

Tests marked `xfail(strict=True)` pin bugs found while writing this suite: they fail today
and will start passing (and so, being strict, turn red) once the codec is fixed; then the
marker should simply be removed.
"""

from __future__ import annotations

import contextlib
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgplab.bgp.wire import (
    KEEPALIVE,
    CodecContext,
    Framer,
    MpUnreach,
    NotificationError,
    Update,
    UpdateAction,
    decode_notification,
    decode_open,
    decode_route_refresh,
    decode_update,
    encode_notification,
    encode_open,
    encode_route_refresh,
    encode_update,
)
from bgplab.bgp.wire.attributes import Aggregator, PathAttributes, UnknownAttribute
from bgplab.bgp.wire.constants import AS_TRANS
from bgplab.bgp.wire.framing import frame
from bgplab.bgp.wire.nlri import parse_prefix
from tests.bgp.wire import strategies as S

TAW = UpdateAction.TREAT_AS_WITHDRAW
DISCARD = UpdateAction.ATTRIBUTE_DISCARD

EBGP = CodecContext(four_octet_as=True, ebgp=True)
IBGP = CodecContext(four_octet_as=True, ebgp=False)
EBGP2 = CodecContext(four_octet_as=False, ebgp=True)


# ---------------------------------------------------------------- builders


def attr(flags: int, atype: int, value: bytes) -> bytes:
    """One path attribute; the extended-length form when the flag asks for it or the value needs it."""
    if flags & 0x10 or len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, atype, len(value)) + value
    return struct.pack("!BBB", flags, atype, len(value)) + value


def seg(seg_type: int, asns: list[int] | tuple[int, ...], size: int = 4) -> bytes:
    fmt = "!%dI" if size == 4 else "!%dH"
    return bytes((seg_type, len(asns))) + struct.pack(fmt % len(asns), *asns)


def key(text: str) -> int:
    return parse_prefix(text)[1]


ORIGIN = attr(0x40, 1, b"\x00")
AS_PATH = attr(0x40, 2, seg(2, [65001, 65002]))
AS_PATH2 = attr(0x40, 2, seg(2, [65001, 65002], size=2))
NEXT_HOP = attr(0x40, 3, bytes([192, 0, 2, 1]))
MANDATORY = ORIGIN + AS_PATH + NEXT_HOP
MANDATORY2 = ORIGIN + AS_PATH2 + NEXT_HOP
NLRI = bytes([24, 203, 0, 113, 16, 198, 51])  # 203.0.113.0/24, 198.51.0.0/16
NLRI_KEYS = [key("203.0.113.0/24"), key("198.51.0.0/16")]
WITHDRAWN = bytes([8, 10])  # 10.0.0.0/8
WITHDRAWN_KEYS = [key("10.0.0.0/8")]
V6_PREFIX = bytes([48, 0x20, 0x01, 0x0D, 0xB8, 0x00, 0x01])  # 2001:db8:1::/48
V6_KEYS = [key("2001:db8:1::/48")]
V6_NH = bytes.fromhex("20010db8000000000000000000000001")


def mp_reach(afi: int = 2, safi: int = 1, nh: bytes = V6_NH, nlri: bytes = V6_PREFIX) -> bytes:
    return attr(0x90, 14, struct.pack("!HBB", afi, safi, len(nh)) + nh + b"\x00" + nlri)


def mp_unreach(afi: int = 2, safi: int = 1, nlri: bytes = V6_PREFIX) -> bytes:
    return attr(0x90, 15, struct.pack("!HB", afi, safi) + nlri)


def update_body(attrs: bytes = b"", nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    return len(withdrawn).to_bytes(2, "big") + withdrawn + len(attrs).to_bytes(2, "big") + attrs + nlri


def decode(attrs: bytes, nlri: bytes = NLRI, ctx: CodecContext = EBGP, withdrawn: bytes = b"") -> Update:
    return decode_update(update_body(attrs, nlri, withdrawn), ctx)


def reset(fn, *args) -> NotificationError:  # type: ignore[no-untyped-def]
    with pytest.raises(NotificationError) as info:
        fn(*args)
    return info.value


def header_error(raw: bytes, max_length: int = 4096) -> NotificationError:
    msgs, err = Framer(max_length=max_length).feed(raw)
    assert err is not None, f"no header error; got {msgs}"
    return err


def assert_withdrawn(update: Update, atype: int | None, withdrawn: list[int] = NLRI_KEYS) -> None:
    """Treat-as-withdraw: the error is logged, the NLRI became withdrawals, no attributes survive."""
    assert any(e.action is TAW and e.attr_type == atype for e in update.errors), update.errors
    assert update.attributes is None
    assert update.nlri == []
    assert update.mp_reach is None
    assert update.withdrawn == withdrawn


def assert_discarded(update: Update, atype: int) -> PathAttributes:
    """Attribute discard: the route stands, without that attribute."""
    assert [(e.action, e.attr_type) for e in update.errors] == [(DISCARD, atype)], update.errors
    assert update.nlri == NLRI_KEYS
    assert update.withdrawn == []
    assert update.attributes is not None
    return update.attributes


# ================================================================ header and framing (B.5 cases 1-3)


@pytest.mark.parametrize("position", [0, 7, 15])
def test_marker_not_all_ones_is_1_1(position: int) -> None:
    raw = bytearray(KEEPALIVE)
    raw[position] = 0xFE
    err = header_error(bytes(raw))
    assert (err.code, err.subcode, err.data) == (1, 1, b"")


@pytest.mark.parametrize("length", [0, 1, 18, 4097, 0xFFFF])
def test_length_outside_19_4096_is_1_2_with_the_length(length: int) -> None:
    raw = b"\xff" * 16 + length.to_bytes(2, "big") + b"\x02" + b"\x00" * 8
    err = header_error(raw)
    assert (err.code, err.subcode, err.data) == (1, 2, length.to_bytes(2, "big"))


def test_length_beyond_negotiated_extended_max() -> None:
    body = update_body(MANDATORY + attr(0xC0, 99, b"x" * 4900), NLRI)
    raw = frame(2, body)
    assert len(raw) > 4096
    assert header_error(raw, max_length=4096).data == len(raw).to_bytes(2, "big")
    assert Framer(max_length=65535).feed(raw) == ([(2, body)], None)  # RFC 8654 Extended Messages


@pytest.mark.parametrize(
    ("msg_type", "length"),
    [(1, 28), (2, 22), (3, 20), (4, 20), (4, 23), (1, 19), (2, 19), (3, 19)],
)
def test_length_under_the_type_minimum_is_1_2(msg_type: int, length: int) -> None:
    raw = b"\xff" * 16 + length.to_bytes(2, "big") + bytes([msg_type]) + b"\x00" * (length - 19)
    err = header_error(raw)
    assert (err.code, err.subcode, err.data) == (1, 2, length.to_bytes(2, "big"))


@pytest.mark.parametrize("msg_type", [0, 6, 7, 128, 255])
def test_unknown_message_type_is_1_3_with_the_type(msg_type: int) -> None:
    raw = b"\xff" * 16 + b"\x00\x13" + bytes([msg_type])
    err = header_error(raw)
    assert (err.code, err.subcode, err.data) == (1, 3, bytes([msg_type]))


def test_header_error_is_reported_before_the_body_arrives() -> None:
    """A header announcing 9000 bytes is refused at once: no waiting for bytes that are never legal."""
    framer = Framer()
    msgs, err = framer.feed(b"\xff" * 16 + (9000).to_bytes(2, "big") + b"\x02")
    assert msgs == [] and err is not None and err.subcode == 2


def test_messages_before_a_header_error_are_kept_and_the_framer_stays_poisoned() -> None:
    framer = Framer()
    msgs, err = framer.feed(KEEPALIVE + KEEPALIVE + b"\x00" * 19 + KEEPALIVE)
    assert msgs == [(4, b""), (4, b"")]
    assert err is not None and (err.code, err.subcode) == (1, 1)
    again, err2 = framer.feed(KEEPALIVE)
    assert again == [] and err2 is err
    assert framer.buffered == 0


# ================================================================ OPEN (B.5 cases 7-8)


def open_head(version: int = 4, my_as: int = 65001, hold: int = 90, rid: bytes = b"\x0a\x00\x00\x01") -> bytes:
    return struct.pack("!BHH", version, my_as, hold) + rid


def open_error(body: bytes) -> NotificationError:
    return reset(decode_open, body)


def test_open_version_3_is_2_1_with_our_version() -> None:
    err = open_error(open_head(version=3) + b"\x00")
    assert (err.code, err.subcode, err.data) == (2, 1, b"\x00\x04")


@pytest.mark.parametrize(
    ("name", "tail", "subcode"),
    [
        ("ends right after the opt-param-length octet (255)", b"\xff", 0),
        ("ends right after the opt-param-length octet (5)", b"\x05", 0),
        ("optional parameters truncated", b"\x0a" + b"\x02\x08\x01\x04\x00\x01", 0),
        ("optional parameters longer than announced", b"\x02" + b"\x02\x00\x02\x00", 0),
        ("parameter header truncated", b"\x01\x02", 0),
        ("parameter overruns the parameters", b"\x04\x02\x06\x01\x04", 0),
        ("capability overruns its parameter", b"\x04\x02\x02\x01\x04", 0),
        ("capability header truncated in its parameter", b"\x03\x02\x01\x01", 0),
        ("0xFF extended length truncated right after", b"\xff\xff", 0),
        ("0xFF extended length truncated after one length byte", b"\xff\xff\x00", 0),
        ("extended length larger than the message", b"\xff\xff\x00\x10\x02\x00\x02\x40", 0),
        ("extended parameter header truncated", b"\xff\xff\x00\x02\x02\x00", 0),
        ("extended parameter overruns", b"\xff\xff\x00\x05\x02\x00\x09\x41\x04", 0),
        ("graceful restart capability of 0 bytes", b"\x04\x02\x02\x40\x00", 0),
        ("graceful restart capability of 1 byte", b"\x05\x02\x03\x40\x01\x00", 0),
        ("graceful restart capability of 3 bytes", b"\x07\x02\x05\x40\x03\x00\x78\x00", 0),
        ("graceful restart with a family and a stray byte", b"\x0b\x02\x09\x40\x07\x00\x78\x00\x01\x01\x80\x00", 0),
        ("multiprotocol capability of 3 bytes", b"\x07\x02\x05\x01\x03\x00\x01\x00", 0),
        ("multiprotocol capability of 5 bytes", b"\x09\x02\x07\x01\x05\x00\x01\x00\x01\x00", 0),
        ("4-octet AS capability of 2 bytes", b"\x06\x02\x04\x41\x02\xfd\xe9", 0),
        ("route refresh capability with a value", b"\x05\x02\x03\x02\x01\x00", 0),
        ("extended message capability with a value", b"\x05\x02\x03\x06\x01\x00", 0),
        ("authentication parameter (type 1)", b"\x04\x01\x02\x00\x00", 4),
        ("unknown parameter type 3", b"\x02\x03\x00", 4),
        ("non-capability parameter in the extended form", b"\xff\xff\x00\x03\x01\x00\x00", 4),
    ],
)
def test_malformed_open_is_an_open_error(name: str, tail: bytes, subcode: int) -> None:
    err = open_error(open_head() + tail)
    assert (err.code, err.subcode) == (2, subcode), name


def test_open_shorter_than_its_fixed_part() -> None:
    for n in range(10):
        err = open_error(open_head()[:n])
        assert (err.code, err.subcode) == (2, 0)


def test_well_formed_extended_open_decodes() -> None:
    caps = b"\x41\x04\xfa\x56\xea\x00" + b"\x80\x00"  # 4-octet AS 4200000000, Cisco route refresh
    params = b"\x02" + len(caps).to_bytes(2, "big") + caps
    msg = decode_open(open_head(my_as=AS_TRANS) + b"\xff\xff" + len(params).to_bytes(2, "big") + params)
    assert msg.asn == 4_200_000_000 and msg.my_as_field == AS_TRANS


def test_open_through_the_framer_never_raises_anything_else() -> None:
    """OPEN with opt-param length 255 and nothing after it, framed: the FRR CVE-2022-43681 shape."""
    raw = frame(1, open_head() + b"\xff")
    msgs, err = Framer().feed(raw)
    assert err is None and len(msgs) == 1
    assert (open_error(msgs[0][1]).code, open_error(msgs[0][1]).subcode) == (2, 0)


# ================================================================ UPDATE, RFC 7606 (B.5 cases 9-19)

# ---- case 9: missing well-known attributes


@pytest.mark.parametrize(
    ("attrs", "missing"),
    [
        (AS_PATH + NEXT_HOP, "ORIGIN"),
        (ORIGIN + NEXT_HOP, "AS_PATH"),
        (ORIGIN + AS_PATH, "NEXT_HOP"),
        (NEXT_HOP, "ORIGIN, AS_PATH"),
        (attr(0x80, 4, b"\x00\x00\x00\x05"), "ORIGIN, AS_PATH, NEXT_HOP"),
    ],
)
def test_missing_well_known_attribute_with_nlri_is_treat_as_withdraw(attrs: bytes, missing: str) -> None:
    update = decode(attrs, withdrawn=WITHDRAWN)
    assert_withdrawn(update, None, WITHDRAWN_KEYS + NLRI_KEYS)
    assert any(missing in e.reason for e in update.errors)


def test_missing_well_known_attribute_with_mp_nlri_moves_it_to_mp_unreach() -> None:
    update = decode(mp_reach() + ORIGIN, nlri=b"")
    assert_withdrawn(update, None, [])
    assert update.mp_unreach == (MpUnreach(2, 1, V6_KEYS),)


def test_mp_only_update_needs_no_next_hop_attribute() -> None:
    update = decode(mp_reach() + ORIGIN + AS_PATH, nlri=b"")
    assert update.errors == []
    assert update.mp_reach is not None and update.mp_reach.nlri == V6_KEYS
    assert update.attributes is not None and update.attributes.next_hop is None


def test_nlri_without_any_attribute_is_treat_as_withdraw() -> None:
    update = decode(b"")
    assert_withdrawn(update, None)


def test_withdrawal_only_update_needs_no_mandatory_attributes() -> None:
    update = decode(attr(0x80, 4, b"\x00\x00\x00\x01"), nlri=b"", withdrawn=WITHDRAWN)
    assert update.errors == [] and update.withdrawn == WITHDRAWN_KEYS


# ---- case 10 and 18: malformed known attributes → treat-as-withdraw


def _as_path(value: bytes) -> bytes:
    return ORIGIN + attr(0x40, 2, value) + NEXT_HOP


MALFORMED_TAW = [
    # ORIGIN
    ("ORIGIN length 0", attr(0x40, 1, b"") + AS_PATH + NEXT_HOP, 1, EBGP),
    ("ORIGIN length 2", attr(0x40, 1, b"\x00\x00") + AS_PATH + NEXT_HOP, 1, EBGP),
    ("ORIGIN value 3", attr(0x40, 1, b"\x03") + AS_PATH + NEXT_HOP, 1, EBGP),
    ("ORIGIN value 255", attr(0x40, 1, b"\xff") + AS_PATH + NEXT_HOP, 1, EBGP),
    # AS_PATH
    ("AS_PATH segment type 0", _as_path(seg(0, [65001])), 2, EBGP),
    ("AS_PATH segment type 5", _as_path(seg(5, [65001])), 2, EBGP),
    ("AS_PATH segment count 0", _as_path(b"\x02\x00"), 2, EBGP),
    ("AS_PATH segment overruns", _as_path(b"\x02\x02" + struct.pack("!I", 65001)), 2, EBGP),
    ("AS_PATH truncated segment header", _as_path(seg(2, [65001]) + b"\x02"), 2, EBGP),
    ("AS_PATH 2-octet encoding on a 4-octet session", _as_path(b"\x02\x03" + struct.pack("!HHH", 1, 2, 3)), 2, EBGP),
    ("AS_PATH 4-octet encoding on a 2-octet session", _as_path(b"\x02\x01" + struct.pack("!I", 65001)), 2, EBGP2),
    ("AS_CONFED_SEQUENCE from an external peer", _as_path(seg(3, [64512]) + seg(2, [65001])), 2, EBGP),
    ("AS_CONFED_SET from an external peer", _as_path(seg(4, [64512]) + seg(2, [65001])), 2, EBGP),
    # NEXT_HOP
    ("NEXT_HOP length 0", ORIGIN + AS_PATH + attr(0x40, 3, b""), 3, EBGP),
    ("NEXT_HOP length 3", ORIGIN + AS_PATH + attr(0x40, 3, b"\xc0\x00\x02"), 3, EBGP),
    ("NEXT_HOP length 5", ORIGIN + AS_PATH + attr(0x40, 3, b"\xc0\x00\x02\x01\x00"), 3, EBGP),
    ("NEXT_HOP length 16", ORIGIN + AS_PATH + attr(0x40, 3, V6_NH), 3, EBGP),
    # MED
    ("MED length 0", MANDATORY + attr(0x80, 4, b""), 4, EBGP),
    ("MED length 3", MANDATORY + attr(0x80, 4, b"\x00\x00\x01"), 4, EBGP),
    ("MED length 5", MANDATORY + attr(0x80, 4, b"\x00\x00\x00\x00\x01"), 4, EBGP),
    # LOCAL_PREF from an internal peer
    ("LOCAL_PREF length 3 (iBGP)", MANDATORY + attr(0x40, 5, b"\x00\x00\x64"), 5, IBGP),
    ("LOCAL_PREF length 8 (iBGP)", MANDATORY + attr(0x40, 5, b"\x00" * 8), 5, IBGP),
    # COMMUNITIES
    ("COMMUNITIES length 0", MANDATORY + attr(0xC0, 8, b""), 8, EBGP),
    ("COMMUNITIES length 3", MANDATORY + attr(0xC0, 8, b"\x00\x01\x00"), 8, EBGP),
    ("COMMUNITIES length 6", MANDATORY + attr(0xC0, 8, b"\x00" * 6), 8, EBGP),
    # ORIGINATOR_ID, CLUSTER_LIST
    ("ORIGINATOR_ID length 0", MANDATORY + attr(0x80, 9, b""), 9, IBGP),
    ("ORIGINATOR_ID length 3", MANDATORY + attr(0x80, 9, b"\x01\x02\x03"), 9, IBGP),
    ("ORIGINATOR_ID length 8", MANDATORY + attr(0x80, 9, b"\x01" * 8), 9, IBGP),
    ("CLUSTER_LIST length 0", MANDATORY + attr(0x80, 10, b""), 10, IBGP),
    ("CLUSTER_LIST length 5", MANDATORY + attr(0x80, 10, b"\x01" * 5), 10, IBGP),
    # Extended and Large Communities
    ("EXTENDED_COMMUNITIES length 0", MANDATORY + attr(0xC0, 16, b""), 16, EBGP),
    ("EXTENDED_COMMUNITIES length 7", MANDATORY + attr(0xC0, 16, b"\x00" * 7), 16, EBGP),
    ("EXTENDED_COMMUNITIES length 12", MANDATORY + attr(0xC0, 16, b"\x00" * 12), 16, EBGP),
    ("LARGE_COMMUNITIES length 0", MANDATORY + attr(0xC0, 32, b""), 32, EBGP),
    ("LARGE_COMMUNITIES length 11", MANDATORY + attr(0xC0, 32, b"\x00" * 11), 32, EBGP),
    ("LARGE_COMMUNITIES length 16", MANDATORY + attr(0xC0, 32, b"\x00" * 16), 32, EBGP),
    # OTC (RFC 9234): a known optional transitive attribute, corrupted as BIRD did (INEX 2025)
    ("OTC length 3", MANDATORY + attr(0xC0, 35, b"\x00\x00\x01"), 35, EBGP),
    ("OTC length 1024", MANDATORY + attr(0xD0, 35, b"\x00" * 1024), 35, EBGP),
    # wrong Optional/Transitive flags on a known attribute (RFC 7606 section 3 c)
    ("ORIGIN marked optional", attr(0xC0, 1, b"\x00") + AS_PATH + NEXT_HOP, 1, EBGP),
    ("ORIGIN marked optional non-transitive", attr(0x80, 1, b"\x00") + AS_PATH + NEXT_HOP, 1, EBGP),
    ("ORIGIN not transitive", attr(0x00, 1, b"\x00") + AS_PATH + NEXT_HOP, 1, EBGP),
    ("AS_PATH marked optional", ORIGIN + attr(0xC0, 2, seg(2, [65001])) + NEXT_HOP, 2, EBGP),
    ("NEXT_HOP marked optional", ORIGIN + AS_PATH + attr(0x80, 3, b"\xc0\x00\x02\x01"), 3, EBGP),
    ("MED marked transitive", MANDATORY + attr(0xC0, 4, b"\x00\x00\x00\x01"), 4, EBGP),
    ("MED marked well-known", MANDATORY + attr(0x40, 4, b"\x00\x00\x00\x01"), 4, EBGP),
    ("LOCAL_PREF marked optional (iBGP)", MANDATORY + attr(0xC0, 5, b"\x00\x00\x00\x64"), 5, IBGP),
    ("COMMUNITIES non-transitive", MANDATORY + attr(0x80, 8, b"\x00\x01\x00\x02"), 8, EBGP),
    ("COMMUNITIES well-known", MANDATORY + attr(0x40, 8, b"\x00\x01\x00\x02"), 8, EBGP),
    ("LARGE_COMMUNITIES non-transitive", MANDATORY + attr(0x80, 32, b"\x00" * 12), 32, EBGP),
    ("ORIGINATOR_ID transitive", MANDATORY + attr(0xC0, 9, b"\x01\x02\x03\x04"), 9, IBGP),
]


@pytest.mark.parametrize(("name", "attrs", "atype", "ctx"), MALFORMED_TAW, ids=[c[0] for c in MALFORMED_TAW])
def test_malformed_attribute_is_treat_as_withdraw(name: str, attrs: bytes, atype: int, ctx: CodecContext) -> None:
    update = decode(attrs, ctx=ctx, withdrawn=WITHDRAWN)
    assert_withdrawn(update, atype, WITHDRAWN_KEYS + NLRI_KEYS)


@pytest.mark.parametrize(("name", "attrs", "atype", "ctx"), MALFORMED_TAW, ids=[c[0] for c in MALFORMED_TAW])
def test_malformed_attribute_with_mp_reach_withdraws_the_mp_nlri(
    name: str, attrs: bytes, atype: int, ctx: CodecContext
) -> None:
    update = decode(mp_reach() + attrs, nlri=b"", ctx=ctx)
    assert any(e.action is TAW and e.attr_type == atype for e in update.errors)
    assert update.attributes is None and update.mp_reach is None
    assert update.mp_unreach == (MpUnreach(2, 1, V6_KEYS),)


# ---- case 11: attribute discard


def test_atomic_aggregate_with_a_length_is_discarded() -> None:
    attrs = assert_discarded(decode(MANDATORY + attr(0x40, 6, b"\x01")), 6)
    assert attrs.atomic_aggregate is False
    assert attrs.origin == 0 and attrs.next_hop == "192.0.2.1"


@pytest.mark.parametrize(
    ("ctx", "length"),
    [(EBGP, 0), (EBGP, 6), (EBGP, 7), (EBGP, 9), (EBGP2, 8), (EBGP2, 5), (EBGP2, 7)],
)
def test_aggregator_of_the_wrong_length_is_discarded(ctx: CodecContext, length: int) -> None:
    mandatory = MANDATORY if ctx.four_octet_as else MANDATORY2
    attrs = assert_discarded(decode(mandatory + attr(0xC0, 7, b"\x01" * length), ctx=ctx), 7)
    assert attrs.aggregator is None
    assert attrs.asns() == [65001, 65002]


@pytest.mark.parametrize("value", [b"\x00\x00\x00\x64", b"\x00\x64", b""])
def test_local_pref_from_ebgp_is_discarded_whatever_its_length(value: bytes) -> None:
    attrs = assert_discarded(decode(MANDATORY + attr(0x40, 5, value), ctx=EBGP), 5)
    assert attrs.local_pref is None


def test_local_pref_from_ibgp_is_kept() -> None:
    update = decode(MANDATORY + attr(0x40, 5, b"\x00\x00\x00\x64"), ctx=IBGP)
    assert update.errors == [] and update.attributes is not None and update.attributes.local_pref == 100


@pytest.mark.parametrize(
    ("name", "as4_value"),
    [
        ("segment type 7", seg(7, [4_200_000_000])),
        ("segment count 0", b"\x02\x00"),
        ("overrun", b"\x02\x05" + struct.pack("!I", 4_200_000_000)),
        ("truncated header", seg(2, [4_200_000_000]) + b"\x02"),
    ],
)
def test_malformed_as4_path_before_as_path_is_discarded(name: str, as4_value: bytes) -> None:
    """GoBGP CVE-2026-41643: AS4_PATH placed before AS_PATH on a 2-octet session."""
    attrs_bytes = ORIGIN + attr(0xC0, 17, as4_value) + AS_PATH2 + NEXT_HOP
    attrs = assert_discarded(decode(attrs_bytes, ctx=EBGP2), 17)
    assert attrs.as_path == ((2, (65001, 65002)),)


def test_well_formed_as4_path_before_as_path_is_merged() -> None:
    as_path = attr(0x40, 2, seg(2, [65001, AS_TRANS], size=2))
    as4 = attr(0xC0, 17, seg(2, [65001, 4_200_000_000]))
    update = decode(ORIGIN + as4 + as_path + NEXT_HOP, ctx=EBGP2)
    assert update.errors == []
    assert update.attributes is not None and update.attributes.asns() == [65001, 4_200_000_000]


def test_as4_path_on_a_four_octet_session_is_discarded() -> None:
    attrs = assert_discarded(decode(MANDATORY + attr(0xC0, 17, seg(2, [1, 2, 3])), ctx=EBGP), 17)
    assert attrs.asns() == [65001, 65002]


@pytest.mark.parametrize("length", [0, 6, 7, 9])
def test_malformed_as4_aggregator_is_discarded(length: int) -> None:
    attrs = assert_discarded(decode(MANDATORY2 + attr(0xC0, 18, b"\x01" * length), ctx=EBGP2), 18)
    assert attrs.aggregator is None


def test_as4_aggregator_ignored_when_aggregator_is_not_as_trans() -> None:
    """RFC 6793 4.2.3: AGGREGATOR without AS_TRANS means AS4_AGGREGATOR and AS4_PATH are not believed."""
    aggregator = attr(0xC0, 7, struct.pack("!H", 65010) + bytes([1, 2, 3, 4]))
    as4_agg = attr(0xC0, 18, struct.pack("!I", 4_200_000_000) + bytes([5, 6, 7, 8]))
    as4_path = attr(0xC0, 17, seg(2, [4_200_000_000, 4_200_000_001]))
    update = decode(MANDATORY2 + aggregator + as4_agg + as4_path, ctx=EBGP2)
    assert update.errors == []
    assert update.attributes is not None
    assert update.attributes.aggregator == Aggregator(65010, "1.2.3.4")
    assert update.attributes.asns() == [65001, 65002]


# ---- case 12: corrupted optional transitive attributes, known or not, never reset


@pytest.mark.parametrize("size", [0, 1, 7, 255, 256, 2000])
def test_corrupted_tunnel_encapsulation_is_passed_through_not_reset(size: int) -> None:
    """CVE-2023-38802: attribute 23 is unknown to us, so it is carried on with the Partial bit."""
    garbage = bytes((i * 37) & 0xFF for i in range(size))
    update = decode(MANDATORY + attr(0xC0, 23, garbage))
    assert update.errors == [] and update.nlri == NLRI_KEYS
    assert update.attributes is not None
    assert update.attributes.unknown == (UnknownAttribute(0xC0, 23, garbage),)
    again = decode_update(encode_update(update, EBGP)[19:], EBGP)
    assert again.attributes is not None
    assert again.attributes.unknown == (UnknownAttribute(0xE0, 23, garbage),)


@pytest.mark.parametrize("atype", [26, 29, 40, 128, 255])
def test_unknown_optional_non_transitive_is_dropped_quietly(atype: int) -> None:
    """AIGP (26), BGP-LS (29) and friends, unknown to us and non-transitive: ignored (RFC 4271 section 9)."""
    update = decode(MANDATORY + attr(0x80, atype, b"\xde\xad" * 600))
    assert update.errors == [] and update.nlri == NLRI_KEYS
    assert update.attributes is not None and update.attributes.unknown == ()


@pytest.mark.parametrize(("flags", "atype"), [(0x40, 200), (0x00, 200), (0x50, 31), (0x60, 0)])
def test_unrecognized_well_known_attribute_is_3_2_with_the_attribute(flags: int, atype: int) -> None:
    bad = attr(flags, atype, b"\x01\x02\x03")
    err = reset(decode, MANDATORY + bad)
    assert (err.code, err.subcode, err.data) == (3, 2, bad)


# ---- case 13: unknown optional transitive attributes


@given(st.binary(max_size=4000), st.sampled_from(S.UNKNOWN_ATTR_TYPES), st.sampled_from([0xC0, 0xE0, 0xD0, 0xF0]))
@settings(max_examples=80, deadline=None)
def test_unknown_optional_transitive_of_any_size_is_kept(value: bytes, atype: int, flags: int) -> None:
    update = decode(MANDATORY + attr(flags, atype, value))
    assert update.errors == [] and update.nlri == NLRI_KEYS
    assert update.attributes is not None
    assert update.attributes.unknown == (UnknownAttribute(flags & 0xE0, atype, value),)
    again = decode_update(encode_update(update, EBGP)[19:], EBGP)
    assert again.attributes is not None
    assert again.attributes.unknown == (UnknownAttribute(0xE0, atype, value),), "Partial must be set when passed on"


@pytest.mark.parametrize("atype", [31, 99, 200])
def test_only_an_unknown_attribute_with_nlri_is_treat_as_withdraw(atype: int) -> None:
    """FRR's "mandatory attributes" SIGSEGV: policy must never see a half-built route."""
    update = decode(attr(0xC0, atype, b"\x00" * 10))
    assert_withdrawn(update, None)


# ---- case 14: attribute list framing


def test_attribute_overrunning_the_attribute_length_is_treat_as_withdraw() -> None:
    overrun = b"\x80\x04\x10\x00\x00\x00\x05"  # MED claims 16 bytes, 4 present before the NLRI
    update = decode(MANDATORY + overrun)
    assert_withdrawn(update, 4)


@pytest.mark.parametrize("stray", [b"\x40", b"\x40\x01"])
def test_stray_trailing_bytes_are_treat_as_withdraw_and_nlri_still_found(stray: bytes) -> None:
    update = decode(MANDATORY + stray)
    assert_withdrawn(update, None)
    assert any("stray" in e.reason for e in update.errors)


def test_truncated_extended_length_header_is_treat_as_withdraw() -> None:
    update = decode(MANDATORY + b"\x90\x04\x00")
    assert_withdrawn(update, 4)


def test_malformed_core_attribute_first_still_finds_the_nlri() -> None:
    """FRR PR #14129: treat-as-withdraw must skip to the NLRI via Total Attribute Length."""
    update = decode(attr(0x40, 1, b"\x09\x09\x09") + AS_PATH + NEXT_HOP + attr(0x80, 4, b"\x00" * 4))
    assert_withdrawn(update, 1)


# ---- case 15: lengths inconsistent with the message


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x05\x08\x0a\x00\x00",  # withdrawn length 5, only 4 bytes follow
        b"\xff\xff\x00\x00",  # withdrawn length 65535
        b"\x00\x00\x00\x05\x40\x01\x01",  # attribute length 5, 3 bytes follow
        b"\x00\x02\x08\x0a\x00\x08" + ORIGIN,  # withdrawn fine, attribute length overruns
        b"\x00\x03",  # withdrawn length with no attribute length after it
    ],
)
def test_withdrawn_or_attribute_length_overrun_is_3_1(body: bytes) -> None:
    err = reset(decode_update, body, EBGP)
    assert (err.code, err.subcode) == (3, 1)


# ---- case 16: NLRI that cannot be parsed


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("nlri", bytes([33, 10, 0, 0, 0, 0])),
        ("nlri", bytes([255, 10])),
        ("nlri", bytes([24, 10, 0])),
        ("nlri", bytes([8, 10, 32])),
        ("withdrawn", bytes([33, 1, 2, 3, 4, 5])),
        ("withdrawn", bytes([32, 1, 2])),
    ],
)
def test_unparseable_ipv4_nlri_is_3_10(where: str, field: bytes) -> None:
    kwargs = {"nlri": field} if where == "nlri" else {"withdrawn": field, "nlri": b""}
    err = reset(lambda: decode(MANDATORY, **kwargs))
    assert (err.code, err.subcode) == (3, 10)


@pytest.mark.parametrize(
    "attrs",
    [
        mp_reach(nlri=bytes([129]) + b"\x00" * 17),
        mp_reach(nlri=bytes([64, 0x20, 0x01])),
        mp_unreach(nlri=bytes([200]) + b"\x00" * 25),
        mp_unreach(nlri=bytes([128]) + b"\x00" * 15),
        mp_reach(afi=1, nh=bytes([192, 0, 2, 1]), nlri=bytes([33, 1, 2, 3, 4, 5])),
    ],
)
def test_unparseable_mp_nlri_is_3_10(attrs: bytes) -> None:
    err = reset(lambda: decode(attrs + ORIGIN + AS_PATH, nlri=b""))
    assert (err.code, err.subcode) == (3, 10)


def test_host_bits_are_masked_and_the_prefix_accepted() -> None:
    update = decode(MANDATORY, nlri=bytes([9, 10, 0xFF, 20, 1, 2, 0xFF, 1, 0xFF]))
    assert update.errors == []
    assert update.nlri == [key("10.128.0.0/9"), key("1.2.240.0/20"), key("128.0.0.0/1")]


def test_zero_length_prefix_is_the_default_route() -> None:
    update = decode(MANDATORY, nlri=b"\x00")
    assert update.errors == [] and update.nlri == [key("0.0.0.0/0")]


# ---- case 17: MP_REACH / MP_UNREACH


@pytest.mark.parametrize(
    "attrs",
    [
        mp_reach() + mp_reach(),
        mp_unreach() + mp_unreach(),
        mp_reach() + ORIGIN + mp_reach(nlri=b""),
        mp_unreach() + mp_unreach(afi=1, nlri=b""),
    ],
)
def test_mp_attribute_twice_is_3_1(attrs: bytes) -> None:
    err = reset(lambda: decode(attrs + ORIGIN + AS_PATH, nlri=b""))
    assert (err.code, err.subcode) == (3, 1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IPv6 next hop of 8 bytes", struct.pack("!HBB", 2, 1, 8) + b"\x00" * 8 + b"\x00" + V6_PREFIX),
        ("IPv6 next hop of 0 bytes", struct.pack("!HBB", 2, 1, 0) + b"\x00" + V6_PREFIX),
        ("IPv6 next hop of 15 bytes", struct.pack("!HBB", 2, 1, 15) + b"\x00" * 15 + b"\x00" + V6_PREFIX),
        ("IPv6 next hop of 48 bytes", struct.pack("!HBB", 2, 1, 48) + b"\x00" * 48 + b"\x00" + V6_PREFIX),
        ("IPv4 next hop of 5 bytes", struct.pack("!HBB", 1, 1, 5) + b"\x00" * 5 + b"\x00" + b"\x08\x0a"),
        ("next hop length overruns", struct.pack("!HBB", 2, 1, 40) + b"\x00" * 16),
        ("shorter than 5 bytes", struct.pack("!HBB", 2, 1, 0)),
        ("empty", b""),
    ],
)
def test_bad_mp_reach_next_hop_is_a_session_reset(name: str, value: bytes) -> None:
    """RFC 7606 section 7.11: a next hop of the wrong length is a session reset (or AFI/SAFI disable)."""
    err = reset(lambda: decode(attr(0x90, 14, value) + ORIGIN + AS_PATH, nlri=b""))
    assert err.code == 3


@pytest.mark.parametrize("value", [b"", b"\x00\x02"])
def test_short_mp_unreach_is_a_session_reset(value: bytes) -> None:
    err = reset(lambda: decode(attr(0x90, 15, value), nlri=b""))
    assert err.code == 3


def test_mp_reach_for_a_family_not_negotiated_is_ignored() -> None:
    ctx = CodecContext(families=frozenset({(1, 1)}))
    update = decode(mp_reach() + mp_unreach(nlri=V6_PREFIX) + MANDATORY, ctx=ctx)
    assert update.errors == []
    assert update.mp_reach is None and update.mp_unreach == ()
    assert update.nlri == NLRI_KEYS and update.attributes is not None


@pytest.mark.parametrize(("afi", "safi"), [(2, 128), (1, 4), (25, 65), (16388, 71)])
def test_mp_attributes_of_foreign_families_are_ignored_even_with_odd_next_hops(afi: int, safi: int) -> None:
    value = struct.pack("!HBB", afi, safi, 7) + b"\x00" * 7 + b"\x00" + b"\xff" * 9
    update = decode(attr(0x90, 14, value) + attr(0x90, 15, struct.pack("!HB", afi, safi) + b"\xff\x00") + MANDATORY)
    assert update.errors == [] and update.mp_reach is None and update.mp_unreach == ()
    assert update.nlri == NLRI_KEYS


def test_mp_reach_without_nlri_does_not_crash() -> None:
    update = decode(mp_reach(nlri=b""), nlri=b"")
    assert update.errors == []
    assert update.mp_reach is not None and update.mp_reach.nlri == []
    assert list(update.announced()) == []


def test_mp_unreach_without_nlri_is_end_of_rib() -> None:
    update = decode(mp_unreach(nlri=b""), nlri=b"")
    assert update.errors == [] and update.end_of_rib() == (2, 1)


def test_update_with_nothing_at_all_is_ipv4_end_of_rib() -> None:
    update = decode(b"", nlri=b"")
    assert update.errors == [] and update.end_of_rib() == (1, 1)


def test_ipv4_nlri_over_mp_reach_with_ipv6_next_hop() -> None:
    """RFC 8950: IPv4 NLRI with an IPv6 next hop (16 or 32 bytes) is accepted."""
    update = decode(mp_reach(afi=1, nh=V6_NH, nlri=b"\x08\x0a") + ORIGIN + AS_PATH, nlri=b"")
    assert update.errors == []
    assert update.mp_reach is not None
    assert update.mp_reach.next_hops == ("2001:db8::1",) and update.mp_reach.nlri == [key("10.0.0.0/8")]


# ---- case 18: duplicate attributes


@pytest.mark.parametrize(
    ("dup", "atype", "check"),
    [
        (attr(0x40, 1, b"\x02"), 1, lambda a: a.origin == 0),
        (attr(0x40, 3, bytes([198, 51, 100, 1])), 3, lambda a: a.next_hop == "192.0.2.1"),
        (attr(0x40, 2, seg(2, [7])), 2, lambda a: a.asns() == [65001, 65002]),
        (attr(0xC0, 8, b"\x00\x00\x00\x02"), 8, lambda a: a.communities == (1,)),
        (attr(0x40, 2, b"\x09"), 2, lambda a: a.asns() == [65001, 65002]),  # even a malformed repeat
    ],
)
def test_duplicate_non_mp_attribute_keeps_the_first(dup: bytes, atype: int, check) -> None:  # type: ignore[no-untyped-def]
    update = decode(MANDATORY + attr(0xC0, 8, b"\x00\x00\x00\x01") + dup)
    assert update.nlri == NLRI_KEYS
    assert [(e.action, e.attr_type) for e in update.errors] == [(DISCARD, atype)]
    assert update.attributes is not None and check(update.attributes)


# ---- case 19: very long AS paths


def test_as_path_of_1000_four_octet_asns() -> None:
    asns = list(range(4_200_000_000, 4_200_001_000))
    value = b"".join(seg(2, asns[i : i + 250]) for i in range(0, 1000, 250))
    update = decode(ORIGIN + attr(0x40, 2, value) + NEXT_HOP)
    assert update.errors == []
    assert update.attributes is not None
    assert update.attributes.asns() == asns
    assert update.attributes.as_path_length() == 1000


def test_chained_255_asn_segments_up_to_65535_bytes() -> None:
    """BIRD CVE-2026-49943: long paths decode iteratively, in bounded time."""
    segment = seg(2, list(range(1, 256)))  # 1022 bytes
    count = (65535 - 19 - 4 - len(ORIGIN) - len(NEXT_HOP) - 4 - 4) // len(segment)
    value = segment * count
    body = update_body(ORIGIN + attr(0x40, 2, value) + NEXT_HOP, b"\x08\x0a")
    raw = frame(2, body)
    assert 60_000 < len(raw) <= 65535
    msgs, err = Framer(max_length=65535).feed(raw)
    assert err is None
    start = time.perf_counter()
    update = decode_update(msgs[0][1], EBGP)
    elapsed = time.perf_counter() - start
    assert update.errors == []
    assert update.attributes is not None and update.attributes.as_path_length() == 255 * count
    assert len(update.attributes.as_path or ()) == count
    assert elapsed < 1.0


def test_long_two_octet_path_with_as4_path() -> None:
    path = list(range(1, 2001))
    as_path = b"".join(
        seg(2, [AS_TRANS if a == 1000 else a for a in path[i : i + 250]], 2) for i in range(0, 2000, 250)
    )
    as4 = b"".join(seg(2, [4_200_000_000 if a == 1000 else a for a in path[i : i + 250]]) for i in range(0, 2000, 250))
    update = decode(ORIGIN + attr(0x40, 2, as_path) + attr(0xC0, 17, as4) + NEXT_HOP, ctx=EBGP2)
    assert update.errors == []
    assert update.attributes is not None
    assert update.attributes.asns() == [4_200_000_000 if a == 1000 else a for a in path]


# ================================================================ other messages (B.5 cases 21-22)


@pytest.mark.parametrize(
    "body",
    [
        b"\x06\x02",  # shutdown, no data at all
        b"\x06\x02\x00",  # shutdown communication of length 0
        b"\x06\x02\x10abc",  # length larger than the remaining bytes
        b"\x06\x02\xff" + b"x" * 10,
        b"\x06\x04\x04\xff\xfe\xfd\xfc",  # not UTF-8
        b"\x06\x02\x0b\x1b[31mred\x1b[0m",  # terminal escapes
        b"\x06\x02\x06\xe2\x80\xaeevil",  # right-to-left override
        b"\x06\x02\x05a\x00b\nc",  # NUL and newline
        b"\x03\x01" + bytes(range(256)) * 4,
        b"\xff\xff" + b"\x00" * 1000,  # unknown code and subcode
        b"\x06\x63",  # unknown cease subcode
    ],
)
def test_notification_decode_never_raises_and_describe_is_sanitised(body: bytes) -> None:
    msgs, err = Framer().feed(frame(3, body))
    assert err is None
    note = decode_notification(msgs[0][1])
    assert (note.code, note.subcode, note.data) == (body[0], body[1], body[2:])
    text = note.describe()
    assert isinstance(text, str) and text.isprintable()
    assert len(text) < 400
    message = note.shutdown_message
    if message is not None:
        assert note.data[0] <= len(note.data) - 1


def test_notification_shutdown_length_beyond_the_data_is_not_a_message() -> None:
    note = decode_notification(b"\x06\x02\x10abc")
    assert note.shutdown_message is None
    assert note.describe() == "6/2 (Cease / administrative shutdown), data 10616263"


def test_notification_non_utf8_shutdown_is_replaced_not_raised() -> None:
    note = decode_notification(b"\x06\x02\x04ab\xffc")
    assert note.shutdown_message == "ab\ufffdc"


def test_huge_notification_with_extended_messages() -> None:
    body = b"\x03\x01" + b"\xab" * (65535 - 21)
    msgs, err = Framer(max_length=65535).feed(frame(3, body))
    assert err is None
    note = decode_notification(msgs[0][1])
    assert len(note.data) == 65535 - 21
    assert note.describe().endswith("...") and len(note.describe()) < 200


def test_notification_text_of_known_codes() -> None:
    assert decode_notification(b"\x04\x00").describe() == "4/0 (Hold Timer Expired)"
    assert decode_notification(b"\x01\x02\x00\x11").describe() == (
        "1/2 (Message Header / bad message length), data 0011"
    )


@pytest.mark.parametrize("body", [b"", b"\x06"])
def test_notification_shorter_than_two_bytes_does_not_raise(body: bytes) -> None:
    note = decode_notification(body)
    assert isinstance(note.describe(), str)


@pytest.mark.parametrize("body", [b"\x00\x01\x00\x01\x00", b"\x00\x01\x00", b"", b"\x00\x02\x00\x01" + b"\x00" * 40])
def test_route_refresh_of_bad_length_is_7_1_with_the_message(body: bytes) -> None:
    err = reset(decode_route_refresh, body)
    assert (err.code, err.subcode, err.data) == (7, 1, frame(5, body))  # RFC 7313: the complete message


def test_route_refresh_through_the_framer_with_a_bad_length() -> None:
    msgs, err = Framer().feed(frame(5, b"\x00\x01\x00\x01\x00"))
    assert err is None
    assert (reset(decode_route_refresh, msgs[0][1]).code, reset(decode_route_refresh, msgs[0][1]).subcode) == (7, 1)


@pytest.mark.parametrize(("afi", "safi", "subtype"), [(999, 1, 0), (2, 200, 0), (0, 0, 0), (1, 1, 9)])
def test_route_refresh_with_unknown_family_or_subtype_decodes(afi: int, safi: int, subtype: int) -> None:
    """Unknown AFI/SAFI is for the session to ignore (RFC 2918 section 4), not a decoding error."""
    msg = decode_route_refresh(struct.pack("!HBB", afi, subtype, safi))
    assert (msg.afi, msg.safi, msg.subtype) == (afi, safi, subtype)


# ================================================================ bugs found (strict xfail: remove when fixed)


@pytest.mark.parametrize(
    ("attrs", "atype", "ctx"),
    [
        pytest.param(
            MANDATORY + attr(0x40, 7, struct.pack("!I", 65010) + bytes([1, 2, 3, 4])), 7, EBGP, id="AGGREGATOR 0x40"
        ),
        pytest.param(MANDATORY + attr(0xC0, 6, b""), 6, EBGP, id="ATOMIC_AGGREGATE 0xC0"),
        pytest.param(MANDATORY2 + attr(0x40, 17, seg(2, [4_200_000_000, 65002])), 17, EBGP2, id="AS4_PATH 0x40"),
        pytest.param(
            MANDATORY2 + attr(0x80, 18, struct.pack("!I", 4_200_000_000) + bytes([1, 2, 3, 4])),
            18,
            EBGP2,
            id="AS4_AGGREGATOR 0x80",
        ),
        pytest.param(MANDATORY + attr(0x80, 5, b"\x00\x00\x00\x64"), 5, EBGP, id="LOCAL_PREF 0x80 from eBGP"),
    ],
)
def test_wrong_flags_on_a_discard_attribute_discards_it(attrs: bytes, atype: int, ctx: CodecContext) -> None:
    """RFC 7606 section 3 c: wrong flags make the attribute malformed, handled as *its* malformation is.

    AGGREGATOR and ATOMIC_AGGREGATE (7606 sections 7.6, 7.7), AS4_PATH and AS4_AGGREGATOR
    (RFC 6793 section 6) and LOCAL_PREF from an external peer (7606 section 7.5) are
    attribute-discard; today the decoder withdraws the whole route instead.
    """
    assert_discarded(decode(attrs, ctx=ctx), atype)


@pytest.mark.parametrize("path", [seg(2, [65001, 0]), seg(2, [65001]) + seg(1, [0, 7])], ids=["sequence", "set"])
def test_as_zero_in_as_path_is_treat_as_withdraw(path: bytes) -> None:
    update = decode(ORIGIN + attr(0x40, 2, path) + NEXT_HOP)
    assert_withdrawn(update, 2)


def test_confederation_path_with_large_asn_survives_a_two_octet_ibgp_session() -> None:
    """RFC 6793 sections 3 and 4.2.2: AS4_PATH never carries confederation segments.

    Today the encoder copies them in, the decoder then discards the whole AS4_PATH as malformed,
    and the path comes back with AS_TRANS where 4200000000 was.
    """
    ctx = CodecContext(four_octet_as=False, ebgp=False)
    attrs = PathAttributes(origin=0, as_path=((3, (64512,)), (2, (65001, 4_200_000_000))), next_hop="192.0.2.1")
    update = decode_update(encode_update(Update(attributes=attrs, nlri=[key("10.0.0.0/8")]), ctx)[19:], ctx)
    assert update.errors == []
    assert update.attributes == attrs


def test_confederation_segments_in_as4_path_are_dropped_not_the_whole_attribute() -> None:
    as_path = attr(0x40, 2, seg(2, [65001, AS_TRANS], size=2))
    as4 = attr(0xC0, 17, seg(3, [64512]) + seg(2, [65001, 4_200_000_000]))
    update = decode(ORIGIN + as_path + as4 + NEXT_HOP, ctx=EBGP2)
    assert update.attributes is not None
    assert update.attributes.asns() == [65001, 4_200_000_000]


# ================================================================ fuzzing (B.5 case 20 at codec level)

_CONTEXTS = [
    EBGP,
    IBGP,
    EBGP2,
    CodecContext(four_octet_as=False, ebgp=False),
    CodecContext(families=frozenset({(1, 1)})),
]


def _decode_checked(msg_type: int, body: bytes, ctx: CodecContext) -> None:
    """Decode one framed message; check the invariants that consumers rely on."""
    if msg_type == 1:
        decode_open(body)
    elif msg_type == 2:
        update = decode_update(body, ctx)
        if any(e.action is TAW for e in update.errors):
            assert update.attributes is None and update.nlri == [] and update.mp_reach is None
        if update.nlri:
            # policy code never sees a half-built route
            a = update.attributes
            assert a is not None and a.origin is not None and a.as_path is not None and a.next_hop is not None
        if update.mp_reach is not None and update.mp_reach.nlri:
            a = update.attributes
            assert a is not None and a.origin is not None and a.as_path is not None
        if not update.errors and ctx.four_octet_as:
            # whatever we accepted, we can send on, and read back the same
            again = decode_update(encode_update(update, ctx)[19:], ctx)
            assert again.errors == []
            assert again.nlri == update.nlri and again.withdrawn == update.withdrawn
            assert again.mp_reach == update.mp_reach
    elif msg_type == 3:
        note = decode_notification(body)
        assert note.describe().isprintable()
    elif msg_type == 5:
        decode_route_refresh(body)


def _feed_and_decode(stream: bytes, ctx: CodecContext, max_length: int = 4096) -> None:
    msgs, _err = Framer(max_length=max_length).feed(stream)
    for msg_type, body in msgs:
        try:
            _decode_checked(msg_type, body, ctx)
        except NotificationError as exc:
            assert 1 <= exc.code <= 7
            assert isinstance(exc.data, bytes)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(st.binary(max_size=600), st.sampled_from(_CONTEXTS))
@FUZZ
def test_random_bytes_never_raise_anything_but_notification_error(data: bytes, ctx: CodecContext) -> None:
    _feed_and_decode(data, ctx)
    _feed_and_decode(b"\xff" * 16 + data, ctx)


@given(st.integers(1, 5), st.binary(max_size=700), st.sampled_from(_CONTEXTS))
@FUZZ
def test_random_bodies_behind_valid_headers_never_raise_anything_else(
    msg_type: int, body: bytes, ctx: CodecContext
) -> None:
    _feed_and_decode(frame(msg_type, body), ctx, max_length=65535)


def _valid_messages(ctx: CodecContext) -> st.SearchStrategy[bytes]:
    return st.one_of(
        S.opens(max_caps=5).map(encode_open),
        S.updates(ctx).map(lambda u: encode_update(u, ctx)),
        S.notifications.map(encode_notification),
        S.route_refreshes.map(encode_route_refresh),
    )


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[bytes, CodecContext]:
    ctx = draw(st.sampled_from(_CONTEXTS))
    raw = draw(_valid_messages(ctx))
    body = bytearray(raw[19:])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(body) - 1)))
        if op == "flip" and body:
            body[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and body:
            body[pos] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x10, 0x20, 0x21]))
        elif op == "truncate":
            del body[pos:]
        elif op == "insert":
            body[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and body:
            del body[pos : pos + draw(st.integers(1, 3))]
    return frame(raw[18], bytes(body)), ctx


@given(_mutated())
@FUZZ
def test_mutated_valid_messages_never_raise_anything_but_notification_error(case: tuple[bytes, CodecContext]) -> None:
    raw, ctx = case
    _feed_and_decode(raw, ctx, max_length=65535)


@given(_mutated(), st.integers(0, 64))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_headers_give_a_header_error_or_messages(case: tuple[bytes, CodecContext], pos: int) -> None:
    raw, ctx = case
    damaged = bytearray(raw)
    if pos < 19:
        damaged[pos] ^= 0x5A
    msgs, err = Framer().feed(bytes(damaged) + KEEPALIVE)
    if err is not None:
        assert err.code == 1 and err.subcode in (1, 2, 3)
    for msg_type, body in msgs:
        with contextlib.suppress(NotificationError):
            _decode_checked(msg_type, body, ctx)
