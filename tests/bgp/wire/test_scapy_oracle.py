"""scapy's BGP layer as an independent oracle for the codec, both ways.

- scapy builds a message, our decoder must read the values scapy was given;
- we encode a message, scapy must dissect it to the values we meant.

Known limits of scapy 2.8's BGP layer, which these tests work around rather than trip over:
- `bgp_module_conf.use_2_bytes_asn` (a module global read at dissection time) picks 2- or
  4-octet AS_PATH parsing; `scapy_mode` sets and restores it;
- an optional parameter holds one capability: further capabilities in the same parameter (as
  we send them) dissect as the first one's Raw payload, so `scapy_capabilities` cuts them apart;
- the GR capability's <AFI, SAFI, flags> tuples are not length-delimited either;
- COMMUNITIES holds one community per `BGPPACommunity`; more follow as its payload;
- AGGREGATOR is always dissected with a 2-octet ASN, and AS4_PATH only as a single segment;
- NLRI lists go through an ADD-PATH heuristic that a /0 prefix can fool, and scapy ends an
  unlengthed NLRI list at the first 16 bytes of 0xff, so prefixes here are never /0 nor all ones.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.all import load_contrib
from scapy.config import conf
from scapy.packet import Packet, Raw

from bgplab.bgp.wire import (
    KEEPALIVE,
    CodecContext,
    Framer,
    MpReach,
    MpUnreach,
    Notification,
    Open,
    PathAttributes,
    RouteRefresh,
    Update,
    decode_notification,
    decode_open,
    decode_route_refresh,
    decode_update,
    encode_notification,
    encode_open,
    encode_route_refresh,
    encode_update,
)
from bgplab.bgp.wire.attributes import Aggregator
from bgplab.bgp.wire.capabilities import (
    EnhancedRouteRefresh,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    GracefulRestartFamily,
    Multiprotocol,
    UnknownCapability,
)
from bgplab.bgp.wire.capabilities import RouteRefresh as RouteRefreshCap
from bgplab.bgp.wire.constants import AS_TRANS
from bgplab.bgp.wire.nlri import prefix_text
from tests.bgp.wire import strategies as S

load_contrib("bgp")
from scapy.contrib import bgp as B  # noqa: E402  (after load_contrib, as scapy documents)

ORACLE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def scapy_mode(four_octet: bool) -> Iterator[None]:
    """Set scapy's 2/4-octet AS_PATH switch, and make dissection errors raise; restore both after."""
    saved = B.bgp_module_conf.use_2_bytes_asn
    saved_debug = conf.debug_dissector
    B.bgp_module_conf.use_2_bytes_asn = not four_octet
    conf.debug_dissector = True  # a dissection failure must raise, not fall back silently to Raw
    try:
        yield
    finally:
        B.bgp_module_conf.use_2_bytes_asn = saved
        conf.debug_dissector = saved_debug


# ---------------------------------------------------------------- helpers


def one_message(raw: bytes, max_length: int = 4096) -> tuple[int, bytes]:
    msgs, err = Framer(max_length=max_length).feed(raw)
    assert err is None and len(msgs) == 1
    return msgs[0]


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=True)


def ours(afi: int, keys: list[int]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [net(prefix_text(afi, k)) for k in keys]


def theirs(nlri: list[Packet]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for p in nlri:
        value = p.prefix  # "a.b.c.d/n" when scapy built it, (n, "a.b.c.d") when it dissected it
        out.append(net(value if isinstance(value, str) else f"{value[1]}/{value[0]}"))
    return out


def scapy_nlri(afi: int, keys: list[int]) -> list[Packet]:
    cls = B.BGPNLRI_IPv4 if afi == 1 else B.BGPNLRI_IPv6
    return [cls(prefix=prefix_text(afi, k)) for k in keys]


def scapy_capabilities(opt_params: list[Packet]) -> list[Packet]:
    """Every capability in every Capabilities parameter, each dissected by scapy on its own.

    scapy keeps the first capability of a parameter and leaves the rest as Raw (and its GR
    capability swallows whatever follows it), so the parameter is cut by the capability
    length octets and each slice handed to scapy.
    """
    caps = []
    for param in opt_params:
        assert param.param_type == 2
        data = bytes(param.param_value)
        assert len(data) == param.param_length
        i = 0
        while i < len(data):
            end = i + 2 + data[i + 1]
            cap = B.BGPCapability(data[i:end])
            assert not cap.payload, f"scapy left bytes over in {cap!r}"
            caps.append(cap)
            i = end
        assert i == len(data)
    return caps


def scapy_attrs(pkt: Packet) -> dict[int, Packet]:
    out = {}
    for attr in pkt[B.BGPUpdate].path_attr:
        assert attr.type_code not in out
        out[attr.type_code] = attr
    return out


def communities_of(attribute: Packet) -> list[int]:
    out = []
    layer = attribute
    while layer is not None and not isinstance(layer, Raw) and layer.name != "NoPayload":
        out.append(layer.community)
        nxt = layer.payload
        layer = B.BGPPACommunity(bytes(nxt)) if isinstance(nxt, Raw) else (nxt if nxt else None)
    return out


# prefixes scapy dissects without its ADD-PATH heuristic misfiring: no /0
ipv4_prefix = S.ipv4_prefix.filter(lambda k: k & 0xFF > 0)
ipv6_prefix = S.ipv6_prefix.filter(lambda k: k & 0xFF > 0 and k >> 8 != (1 << 128) - 1)
"""scapy finds the end of an unlengthed NLRI list by looking for a BGP marker: no all-ones address."""


# ---------------------------------------------------------------- scapy builds, we decode


@given(
    asn=S.asn4,
    hold=S.u16,
    rid=S.router_id,
    afis=st.lists(st.tuples(st.sampled_from([1, 2]), st.sampled_from([1, 2])), min_size=1, max_size=3),
    gr_time=st.integers(0, 4095),
    gr_fams=st.lists(st.tuples(st.sampled_from([1, 2]), st.booleans()), max_size=3),
    unknown=st.binary(max_size=20),
)
@ORACLE
def test_scapy_open_decodes(asn, hold, rid, afis, gr_time, gr_fams, unknown) -> None:  # type: ignore[no-untyped-def]
    params = [B.BGPOptParam(param_value=B.BGPCapMultiprotocol(afi=a, safi=s)) for a, s in afis]
    params += [
        B.BGPOptParam(param_value=B.BGPCapGeneric(code=2)),
        B.BGPOptParam(param_value=B.BGPCapGeneric(code=70)),
        B.BGPOptParam(param_value=B.BGPCapGeneric(code=6)),
        B.BGPOptParam(param_value=B.BGPCapFourBytesASN(asn=asn)),
        B.BGPOptParam(
            param_value=B.BGPCapGracefulRestart(
                restart_flags=0x8,
                restart_time=gr_time,
                entries=[B.BGPCapGracefulRestart.GRTuple(afi=a, safi=1, flags=0x80 if f else 0) for a, f in gr_fams],
            )
        ),
        B.BGPOptParam(param_value=B.BGPCapGeneric(code=73, cap_data=unknown)),
    ]
    my_as = asn if asn <= 0xFFFF else AS_TRANS
    raw = bytes(B.BGPHeader(type=1) / B.BGPOpen(my_as=my_as, hold_time=hold, bgp_id=rid, opt_params=params))
    msg_type, body = one_message(raw)
    assert msg_type == 1
    got = decode_open(body)
    assert (got.asn, got.my_as_field, got.hold_time, got.router_id, got.version) == (asn, my_as, hold, rid, 4)
    expected = [Multiprotocol(a, s) for a, s in afis] + [
        RouteRefreshCap(),
        EnhancedRouteRefresh(),
        ExtendedMessage(),
        FourOctetAs(asn),
        GracefulRestart(gr_time, True, False, tuple(GracefulRestartFamily(a, 1, f) for a, f in gr_fams)),
        UnknownCapability(73, unknown),
    ]
    assert list(got.capabilities) == expected
    assert got.families() == frozenset(afis)


@given(
    origin=st.integers(0, 2),
    path=st.lists(
        st.tuples(st.sampled_from([1, 2]), st.lists(S.asn4, min_size=1, max_size=10)), min_size=1, max_size=3
    ),
    nh=S.ipv4_address,
    med=S.u32,
    lp=S.u32,
    comms=st.lists(S.u32, min_size=1, max_size=5),
    withdrawn=st.lists(ipv4_prefix, max_size=10),
    nlri=st.lists(ipv4_prefix, min_size=1, max_size=10),
    nh6=st.lists(S.ipv6_address, min_size=1, max_size=2),
    nlri6=st.lists(ipv6_prefix, min_size=1, max_size=10),
    unreach6=st.lists(ipv6_prefix, min_size=1, max_size=10),
)
@ORACLE
def test_scapy_update_decodes(origin, path, nh, med, lp, comms, withdrawn, nlri, nh6, nlri6, unreach6) -> None:  # type: ignore[no-untyped-def]
    with scapy_mode(True):
        seg = B.BGPPAAS4BytesPath.ASPathSegment
        community = B.BGPPACommunity(community=comms[0])
        for c in comms[1:]:
            community = community / B.BGPPACommunity(community=c)
        if len(nh6) == 1:
            reach = B.BGPPAMPReachNLRI(afi=2, safi=1, nh_addr_len=16, nh_v6_addr=nh6[0], nlri=scapy_nlri(2, nlri6))
        else:
            reach = B.BGPPAMPReachNLRI(
                afi=2, safi=1, nh_addr_len=32, nh_v6_global=nh6[0], nh_v6_link_local=nh6[1], nlri=scapy_nlri(2, nlri6)
            )
        unreach = B.BGPPAMPUnreachNLRI(
            afi=2, safi=1, afi_safi_specific=B.BGPPAMPUnreachNLRI_IPv6(withdrawn_routes=scapy_nlri(2, unreach6))
        )
        pkt = B.BGPHeader(type=2) / B.BGPUpdate(
            withdrawn_routes=scapy_nlri(1, withdrawn),
            path_attr=[
                B.BGPPathAttr(type_flags=0x90, type_code=14, attribute=reach),
                B.BGPPathAttr(type_flags=0x90, type_code=15, attribute=unreach),
                B.BGPPathAttr(type_flags=0x40, type_code=1, attribute=B.BGPPAOrigin(origin=origin)),
                B.BGPPathAttr(
                    type_flags=0x40,
                    type_code=2,
                    attribute=B.BGPPAAS4BytesPath(segments=[seg(segment_type=t, segment_value=a) for t, a in path]),
                ),
                B.BGPPathAttr(type_flags=0x40, type_code=3, attribute=B.BGPPANextHop(next_hop=nh)),
                B.BGPPathAttr(type_flags=0x80, type_code=4, attribute=B.BGPPAMultiExitDisc(med=med)),
                B.BGPPathAttr(type_flags=0x40, type_code=5, attribute=B.BGPPALocalPref(local_pref=lp)),
                B.BGPPathAttr(type_flags=0xC0, type_code=8, attribute=community),
            ],
            nlri=scapy_nlri(1, nlri),
        )
        msg_type, body = one_message(bytes(pkt))
        assert msg_type == 2
        update = decode_update(body, CodecContext(four_octet_as=True, ebgp=False))
        assert update.errors == []
        assert ours(1, update.withdrawn) == [net(prefix_text(1, k)) for k in withdrawn]
        assert update.nlri == nlri
        assert update.attributes == PathAttributes(
            origin=origin,
            as_path=tuple((t, tuple(a)) for t, a in path),
            next_hop=nh,
            med=med,
            local_pref=lp,
            communities=tuple(comms),
        )
        assert update.mp_reach == MpReach(2, 1, tuple(nh6), nlri6)
        assert update.mp_unreach == (MpUnreach(2, 1, unreach6),)


@given(
    path=st.lists(
        st.tuples(st.sampled_from([1, 2]), st.lists(S.asn2, min_size=1, max_size=10)), min_size=1, max_size=3
    ),
    agg_asn=S.asn2,
    agg_ip=S.ipv4_address,
    nlri=st.lists(ipv4_prefix, min_size=1, max_size=5),
)
@ORACLE
def test_scapy_two_octet_update_decodes(path, agg_asn, agg_ip, nlri) -> None:  # type: ignore[no-untyped-def]
    """An OLD speaker's UPDATE: 2-octet AS_PATH and AGGREGATOR."""
    with scapy_mode(False):
        seg = B.BGPPAASPath.ASPathSegment
        pkt = B.BGPHeader(type=2) / B.BGPUpdate(
            path_attr=[
                B.BGPPathAttr(type_flags=0x40, type_code=1, attribute=B.BGPPAOrigin(origin=2)),
                B.BGPPathAttr(
                    type_flags=0x40,
                    type_code=2,
                    attribute=B.BGPPAASPath(segments=[seg(segment_type=t, segment_value=a) for t, a in path]),
                ),
                B.BGPPathAttr(type_flags=0x40, type_code=3, attribute=B.BGPPANextHop(next_hop="198.51.100.1")),
                B.BGPPathAttr(type_flags=0x40, type_code=6, attribute=B.BGPPAAtomicAggregate()),
                B.BGPPathAttr(
                    type_flags=0xC0,
                    type_code=7,
                    attribute=B.BGPPAAggregator(aggregator_asn=agg_asn, speaker_address=agg_ip),
                ),
            ],
            nlri=scapy_nlri(1, nlri),
        )
        update = decode_update(one_message(bytes(pkt))[1], CodecContext(four_octet_as=False, ebgp=True))
        assert update.errors == []
        assert update.attributes == PathAttributes(
            origin=2,
            as_path=tuple((t, tuple(a)) for t, a in path),
            next_hop="198.51.100.1",
            atomic_aggregate=True,
            aggregator=Aggregator(agg_asn, agg_ip),
        )
        assert update.nlri == nlri


@given(code=S.u8, subcode=S.u8, data=st.binary(max_size=300))
@ORACLE
def test_scapy_notification_decodes(code: int, subcode: int, data: bytes) -> None:
    raw = bytes(B.BGPHeader(type=3) / B.BGPNotification(error_code=code, error_subcode=subcode, data=data))
    msg_type, body = one_message(raw)
    assert msg_type == 3
    assert decode_notification(body) == Notification(code, subcode, data)


def test_scapy_keepalive_decodes() -> None:
    raw = bytes(B.BGPKeepAlive())
    assert raw == KEEPALIVE
    assert one_message(raw) == (4, b"")


@given(afi=S.u16, safi=S.u8, subtype=st.sampled_from([0, 1, 2]))
@ORACLE
def test_scapy_route_refresh_decodes(afi: int, safi: int, subtype: int) -> None:
    raw = bytes(B.BGPHeader(type=5) / B.BGPRouteRefresh(afi=afi, safi=safi, subtype=subtype))
    msg_type, body = one_message(raw)
    assert msg_type == 5
    assert decode_route_refresh(body) == RouteRefresh(afi, safi, subtype)


def test_scapy_shutdown_notification_decodes() -> None:
    text = "maintenance: back at 14:00 \u2013 \u00fcn\u00efc\u00f8d\u00e9"
    data = bytes([len(text.encode())]) + text.encode()
    raw = bytes(B.BGPHeader(type=3) / B.BGPNotification(error_code=6, error_subcode=2, data=data))
    note = decode_notification(one_message(raw)[1])
    assert note.shutdown_message == text
    assert text in note.describe()


# ---------------------------------------------------------------- we encode, scapy dissects


# scapy dissects codes 3 and 130 as ORF, which random bytes crash; every other unknown code is generic
_scapy_generic = st.sampled_from([c for c in S.UNKNOWN_CAPABILITY_CODES if c not in (3, 0x82)])


@given(msg=S.opens(max_caps=6), four=st.booleans(), data=st.data())
@ORACLE
def test_our_open_dissects_in_scapy(msg: Open, four: bool, data: st.DataObject) -> None:
    capabilities = [
        # short values keep the OPEN in the classic form: RFC 9072 extended parameters are beyond scapy
        replace(c, code=data.draw(_scapy_generic), value=c.value[:20]) if isinstance(c, UnknownCapability) else c
        for c in msg.capabilities
    ]
    # scapy's GR capability has no length: its entries swallow whatever follows it in the parameter,
    # and whole-packet dissection crashes when that is not a run of 4-byte tuples; so one GR, last.
    graceful = [c for c in capabilities if isinstance(c, GracefulRestart)][:1]
    msg = replace(msg, capabilities=(*[c for c in capabilities if not isinstance(c, GracefulRestart)], *graceful))
    with scapy_mode(four):
        pkt = B.BGPHeader(encode_open(msg))
        assert pkt.type == 1 and pkt.len == len(encode_open(msg))
        o = pkt[B.BGPOpen]
        assert (o.version, o.my_as, o.hold_time, o.bgp_id) == (
            4,
            msg.asn if msg.asn <= 0xFFFF else AS_TRANS,
            msg.hold_time,
            msg.router_id,
        )
        caps = scapy_capabilities(o.opt_params) if msg.capabilities else []
        if not msg.capabilities:
            assert o.opt_param_len == 0 and o.opt_params == []
        assert len(caps) == len(msg.capabilities)
        for mine, theirs_cap in zip(msg.capabilities, caps, strict=True):
            if isinstance(mine, Multiprotocol):
                assert isinstance(theirs_cap, B.BGPCapMultiprotocol)
                assert (theirs_cap.afi, theirs_cap.safi, theirs_cap.length) == (mine.afi, mine.safi, 4)
            elif isinstance(mine, FourOctetAs):
                assert isinstance(theirs_cap, B.BGPCapFourBytesASN) and theirs_cap.asn == mine.asn
            elif isinstance(mine, GracefulRestart):
                assert isinstance(theirs_cap, B.BGPCapGracefulRestart)
                assert theirs_cap.restart_time == mine.restart_time
                assert theirs_cap.restart_flags == (8 if mine.restarting else 0) | (4 if mine.notification else 0)
                # scapy's GRTuple list has no length: the first tuple swallows the rest; cut them apart
                tail = bytes(theirs_cap)[4:]
                entries = [B.BGPCapGracefulRestart.GRTuple(tail[k : k + 4]) for k in range(0, len(tail), 4)]
                assert [(e.afi, e.safi, e.flags) for e in entries] == [
                    (f.afi, f.safi, 0x80 if f.forwarding_preserved else 0) for f in mine.families
                ]
            elif isinstance(mine, UnknownCapability):
                assert theirs_cap.code == mine.code and theirs_cap.length == len(mine.value)
                assert bytes(theirs_cap)[2:] == mine.value
            else:
                code = {RouteRefreshCap: 2, EnhancedRouteRefresh: 70, ExtendedMessage: 6}[type(mine)]
                assert theirs_cap.code == code and theirs_cap.length == 0


@given(
    attrs=S.path_attributes(ebgp=False, four_octet_as=True, complete=True),
    withdrawn=st.lists(ipv4_prefix, max_size=8),
    nlri=st.lists(ipv4_prefix, min_size=1, max_size=8),
    nh6=st.lists(S.ipv6_address, min_size=1, max_size=2),
    nlri6=st.lists(ipv6_prefix, max_size=8),
    unreach6=st.lists(ipv6_prefix, min_size=1, max_size=8),
)
@ORACLE
def test_our_update_dissects_in_scapy(attrs, withdrawn, nlri, nh6, nlri6, unreach6) -> None:  # type: ignore[no-untyped-def]
    with scapy_mode(True):
        attrs = attrs.with_changes(aggregator=None, unknown=())  # scapy reads AGGREGATOR as 2-octet only
        update = Update(
            withdrawn=withdrawn,
            attributes=attrs,
            nlri=nlri,
            mp_reach=MpReach(2, 1, tuple(nh6), nlri6),
            mp_unreach=(MpUnreach(2, 1, unreach6),),
        )
        raw = encode_update(update, CodecContext(four_octet_as=True, ebgp=False))
        pkt = B.BGPHeader(raw)
        assert pkt.type == 2 and pkt.len == len(raw)
        u = pkt[B.BGPUpdate]
        assert theirs(u.withdrawn_routes) == ours(1, withdrawn)
        assert theirs(u.nlri) == ours(1, nlri)
        got = scapy_attrs(pkt)
        assert list(got)[:2] == [14, 15]
        reach = got[14].attribute
        assert int(got[14].type_flags) & 0xC0 == 0x80
        assert (reach.afi, reach.safi, reach.nh_addr_len) == (2, 1, 16 * len(nh6))
        hops = [reach.nh_v6_addr] if len(nh6) == 1 else [reach.nh_v6_global, reach.nh_v6_link_local]
        assert [ipaddress.ip_address(h) for h in hops] == [ipaddress.ip_address(h) for h in nh6]
        assert theirs(reach.nlri) == ours(2, nlri6)
        unreach = got[15].attribute
        assert (unreach.afi, unreach.safi) == (2, 1)
        assert theirs(unreach.afi_safi_specific.withdrawn_routes) == ours(2, unreach6)
        assert got[1].attribute.origin == attrs.origin and int(got[1].type_flags) == 0x40
        segments = [(s.segment_type, tuple(s.segment_value)) for s in got[2].attribute.segments]
        assert tuple(segments) == attrs.as_path
        assert got[3].attribute.next_hop == attrs.next_hop
        _check_optional(got, 4, attrs.med, lambda a: a.med, 0x80)
        _check_optional(got, 5, attrs.local_pref, lambda a: a.local_pref, 0x40)
        assert (6 in got) == attrs.atomic_aggregate
        if attrs.communities:
            assert communities_of(got[8].attribute) == list(attrs.communities)
            assert int(got[8].type_flags) & 0xE0 == 0xC0
        else:
            assert 8 not in got
        _check_optional(got, 9, attrs.originator_id, lambda a: a.originator_id, 0x80)
        if attrs.cluster_list:
            ids = [int(ipaddress.IPv4Address(c)) for c in attrs.cluster_list]
            assert got[10].attribute.cluster_list == ids
        if attrs.large_communities:
            raw_lc = bytes(got[32].attribute)  # scapy's segment list is not length-delimited: cut it ourselves
            segs = [B.BGPLargeCommunitySegment(raw_lc[k : k + 12]) for k in range(0, len(raw_lc), 12)]
            assert [(s.global_administrator, s.local_data_part1, s.local_data_part2) for s in segs] == list(
                attrs.large_communities
            )
        if attrs.extended_communities:
            ext = got[16].attribute.extended_communities
            assert [int.from_bytes(bytes(e), "big") for e in ext] == list(attrs.extended_communities)


def _check_optional(got: dict[int, Packet], atype: int, value: object, read, flags: int) -> None:  # type: ignore[no-untyped-def]
    if value is None:
        assert atype not in got
    else:
        assert read(got[atype].attribute) == value
        assert int(got[atype].type_flags) & 0xF0 == flags


@given(
    seq=st.lists(S.asn4, min_size=1, max_size=12),
    agg_asn=S.asn4,
    nlri=st.lists(ipv4_prefix, min_size=1, max_size=4),
)
@ORACLE
def test_our_two_octet_update_dissects_in_scapy(seq, agg_asn, nlri) -> None:  # type: ignore[no-untyped-def]
    """To an OLD speaker: AS_TRANS in AS_PATH and AGGREGATOR, true values in AS4_PATH/AS4_AGGREGATOR."""
    with scapy_mode(False):
        attrs = PathAttributes(
            origin=0,
            as_path=((2, tuple(seq)),),
            next_hop="192.0.2.1",
            aggregator=Aggregator(agg_asn, "192.0.2.7"),
        )
        raw = encode_update(Update(attributes=attrs, nlri=nlri), CodecContext(four_octet_as=False, ebgp=True))
        got = scapy_attrs(B.BGPHeader(raw))
        two = [(s.segment_type, list(s.segment_value)) for s in got[2].attribute.segments]
        assert two == [(2, [a if a <= 0xFFFF else AS_TRANS for a in seq])]
        assert got[7].attribute.aggregator_asn == (agg_asn if agg_asn <= 0xFFFF else AS_TRANS)
        assert got[7].attribute.speaker_address == "192.0.2.7"
        if any(a > 0xFFFF for a in seq):
            as4 = got[17].attribute
            assert int(got[17].type_flags) & 0xE0 == 0xC0
            assert (as4.segment_type, list(as4.segment_value)) == (2, seq)
        else:
            assert 17 not in got
        if agg_asn > 0xFFFF:
            assert isinstance(got[18].attribute, Raw)  # scapy does not dissect AS4_AGGREGATOR; read it ourselves
            assert got[18].attribute.load == struct.pack("!I", agg_asn) + bytes([192, 0, 2, 7])
        else:
            assert 18 not in got


@given(code=S.u8, subcode=S.u8, data=st.binary(max_size=300))
@ORACLE
def test_our_notification_dissects_in_scapy(code: int, subcode: int, data: bytes) -> None:
    raw = encode_notification(Notification(code, subcode, data))
    pkt = B.BGPHeader(raw)
    n = pkt[B.BGPNotification]
    assert (pkt.type, pkt.len, n.error_code, n.error_subcode) == (3, len(raw), code, subcode)
    assert (n.data or b"") == data


def test_our_keepalive_dissects_in_scapy() -> None:
    pkt = B.BGPHeader(KEEPALIVE)
    assert isinstance(pkt, B.BGPKeepAlive)
    assert pkt.len == 19 and pkt.type == 4 and pkt.marker == (1 << 128) - 1


@given(afi=S.u16, safi=S.u8, subtype=S.u8)
@ORACLE
def test_our_route_refresh_dissects_in_scapy(afi: int, safi: int, subtype: int) -> None:
    raw = encode_route_refresh(RouteRefresh(afi, safi, subtype))
    pkt = B.BGPHeader(raw)
    rr = pkt[B.BGPRouteRefresh]
    assert (pkt.type, pkt.len, rr.afi, rr.safi, rr.subtype) == (5, 23, afi, safi, subtype)
