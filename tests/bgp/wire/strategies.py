"""Hypothesis strategies for the BGP codec: prefixes, path attributes, capabilities and every message.

Every strategy draws values the encoder accepts and that survive a round trip, up to the
documented normalisations, which `expected_update` and `expected_open` apply:
- re-encoding an unknown optional transitive attribute sets its Partial bit (RFC 4271 section 9);
- LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are never sent to an external peer;
- an OPEN's decoded `my_as_field` is the 2-octet My AS field (AS_TRANS for large ASNs);
- an UPDATE with no attribute bytes decodes with `attributes=None`, and one with MP attributes
  but no others decodes with `attributes=PathAttributes()`.
"""

from __future__ import annotations

import socket
from dataclasses import replace

from hypothesis import strategies as st

from bgplab.bgp.wire.attributes import Aggregator, PathAttributes, UnknownAttribute
from bgplab.bgp.wire.capabilities import (
    Capability,
    EnhancedRouteRefresh,
    ExtendedMessage,
    FourOctetAs,
    GracefulRestart,
    GracefulRestartFamily,
    Multiprotocol,
    RouteRefresh,
    UnknownCapability,
)
from bgplab.bgp.wire.constants import AS_TRANS, EXPECTED_FLAGS, AttrFlag, CapabilityCode
from bgplab.bgp.wire.messages import Notification, Open
from bgplab.bgp.wire.messages import RouteRefresh as RouteRefreshMessage
from bgplab.bgp.wire.update import CodecContext, MpReach, MpUnreach, Update

# ---------------------------------------------------------------- scalars and addresses

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, (1 << 64) - 1)

asn2 = st.integers(1, 0xFFFF)
asn4 = st.one_of(st.integers(1, 0xFFFF), st.integers(0x10000, 0xFFFFFFFF))
"""Mostly-balanced mix of small and large AS numbers, so AS_TRANS paths show up often."""

ipv4_address = st.binary(min_size=4, max_size=4).map(socket.inet_ntoa)
ipv6_address = st.binary(min_size=16, max_size=16).map(lambda b: socket.inet_ntop(socket.AF_INET6, b))
"""Text as inet_ntop writes it, which is how the decoder writes next hops back."""

router_id = st.binary(min_size=4, max_size=4).filter(lambda b: b != b"\x00\x00\x00\x00").map(socket.inet_ntoa)


# ---------------------------------------------------------------- prefixes (network << 8 | length)


def _prefix_key(bits: int) -> st.SearchStrategy[int]:
    def build(length: int, network: int) -> int:
        mask = ((1 << length) - 1) << (bits - length) if length else 0
        return ((network & mask) << 8) | length

    return st.builds(build, st.integers(0, bits), st.integers(0, (1 << bits) - 1))


ipv4_prefix = _prefix_key(32)
ipv6_prefix = _prefix_key(128)


def ipv4_prefixes(max_size: int = 30) -> st.SearchStrategy[list[int]]:
    return st.lists(ipv4_prefix, max_size=max_size)


def ipv6_prefixes(max_size: int = 30) -> st.SearchStrategy[list[int]]:
    return st.lists(ipv6_prefix, max_size=max_size)


# ---------------------------------------------------------------- path attributes

SEQ, SET, CONFED_SEQ, CONFED_SET = 2, 1, 3, 4


def as_segments(
    asn: st.SearchStrategy[int] = asn4, confed: bool = False, max_segments: int = 4, max_len: int = 20
) -> st.SearchStrategy[tuple[tuple[int, tuple[int, ...]], ...]]:
    """AS_PATH segments (never empty: the decoder rejects a zero-count segment)."""
    types = [SEQ, SET] + ([CONFED_SEQ, CONFED_SET] if confed else [])
    segment = st.tuples(st.sampled_from(types), st.lists(asn, min_size=1, max_size=max_len).map(tuple))
    return st.lists(segment, max_size=max_segments).map(tuple)


KNOWN_ATTR_TYPES = frozenset(EXPECTED_FLAGS)
UNKNOWN_ATTR_TYPES = [t for t in range(256) if t not in KNOWN_ATTR_TYPES]


@st.composite
def unknown_attributes(draw: st.DrawFn, max_count: int = 3, max_value: int = 300) -> tuple[UnknownAttribute, ...]:
    """Unknown optional transitive attributes, distinct types, in type order (the encoder's order)."""
    types = draw(st.lists(st.sampled_from(UNKNOWN_ATTR_TYPES), max_size=max_count, unique=True))
    out = []
    for t in sorted(types):
        flags = draw(st.sampled_from([0xC0, 0xE0]))
        out.append(UnknownAttribute(flags, t, draw(st.binary(max_size=max_value))))
    return tuple(out)


@st.composite
def path_attributes(
    draw: st.DrawFn,
    ebgp: bool = False,
    four_octet_as: bool = True,
    complete: bool = False,
    max_unknown_value: int = 300,
) -> PathAttributes:
    """Any attribute set the encoder can write; `complete` forces ORIGIN, AS_PATH and NEXT_HOP.

    Confederation segments are drawn only where they round-trip: iBGP on a 4-octet session.
    """
    confed = not ebgp and four_octet_as

    def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:  # type: ignore[type-arg]
        return strategy if complete else st.one_of(st.none(), strategy)

    return PathAttributes(
        origin=draw(maybe(st.integers(0, 2))),
        as_path=draw(maybe(as_segments(asn4, confed=confed))),
        next_hop=draw(maybe(ipv4_address)),
        med=draw(st.one_of(st.none(), u32)),
        local_pref=draw(st.one_of(st.none(), u32)),
        atomic_aggregate=draw(st.booleans()),
        aggregator=draw(st.one_of(st.none(), st.builds(Aggregator, asn4, ipv4_address))),
        communities=tuple(draw(st.lists(u32, max_size=6))),
        large_communities=tuple(draw(st.lists(st.tuples(u32, u32, u32), max_size=4))),
        extended_communities=tuple(draw(st.lists(u64, max_size=4))),
        originator_id=draw(st.one_of(st.none(), ipv4_address)),
        cluster_list=tuple(draw(st.lists(ipv4_address, max_size=4))),
        only_to_customer=draw(st.one_of(st.none(), u32)),
        unknown=draw(unknown_attributes(max_value=max_unknown_value)),
    )


def expected_attributes(attrs: PathAttributes, ctx: CodecContext) -> PathAttributes:
    """What decoding an encoded `attrs` must give back on a session described by `ctx`."""
    changes: dict[str, object] = {
        "unknown": tuple(replace(u, flags=u.flags | AttrFlag.PARTIAL) for u in attrs.unknown),
    }
    if ctx.ebgp:
        changes.update(local_pref=None, originator_id=None, cluster_list=())
    return attrs.with_changes(**changes)


# ---------------------------------------------------------------- UPDATE


@st.composite
def mp_reach(draw: st.DrawFn, with_nlri: bool | None = None) -> MpReach:
    """IPv6 unicast with one or two next hops (global, link-local), or IPv4 unicast over MP_REACH."""
    afi = draw(st.sampled_from([2, 2, 1]))
    if afi == 2:
        hops = tuple(draw(st.lists(ipv6_address, min_size=1, max_size=2)))
        nlri = draw(ipv6_prefixes(20) if with_nlri is None else st.lists(ipv6_prefix, min_size=int(with_nlri)))
    else:
        hops = (draw(ipv4_address),)
        nlri = draw(ipv4_prefixes(20) if with_nlri is None else st.lists(ipv4_prefix, min_size=int(with_nlri)))
    return MpReach(afi, 1, hops, nlri)


@st.composite
def mp_unreach(draw: st.DrawFn) -> MpUnreach:
    afi = draw(st.sampled_from([2, 2, 1]))
    return MpUnreach(afi, 1, draw(ipv6_prefixes(20) if afi == 2 else ipv4_prefixes(20)))


codec_contexts = st.builds(CodecContext, four_octet_as=st.booleans(), ebgp=st.booleans())


@st.composite
def updates(draw: st.DrawFn, ctx: CodecContext) -> Update:
    """A well-formed UPDATE for `ctx`: mandatory attributes present wherever NLRI is."""
    withdrawn = draw(ipv4_prefixes(20))
    nlri = draw(ipv4_prefixes(20))
    reach = draw(st.one_of(st.none(), mp_reach()))
    unreach = tuple(draw(st.lists(mp_unreach(), max_size=1)))
    needs_mandatory = bool(nlri) or (reach is not None and bool(reach.nlri))
    attrs = draw(
        st.one_of(st.none(), path_attributes(ebgp=ctx.ebgp, four_octet_as=ctx.four_octet_as))
        if not needs_mandatory
        else path_attributes(ebgp=ctx.ebgp, four_octet_as=ctx.four_octet_as, complete=True)
    )
    return Update(withdrawn=withdrawn, attributes=attrs, nlri=nlri, mp_reach=reach, mp_unreach=unreach)


def expected_update(update: Update, ctx: CodecContext) -> Update:
    """What decode_update(encode_update(update)) must equal."""
    has_mp = update.mp_reach is not None or bool(update.mp_unreach)
    attrs = expected_attributes(update.attributes, ctx) if update.attributes is not None else None
    if attrs is None and has_mp:
        attrs = PathAttributes()
    if attrs == PathAttributes() and not has_mp:
        attrs = None  # nothing left to encode: no attribute bytes at all
    return Update(
        withdrawn=list(update.withdrawn),
        attributes=attrs,
        nlri=list(update.nlri),
        mp_reach=update.mp_reach,
        mp_unreach=update.mp_unreach,
    )


# ---------------------------------------------------------------- capabilities and OPEN

DECODED_CAPABILITY_CODES = frozenset(
    {
        CapabilityCode.MULTIPROTOCOL,
        CapabilityCode.ROUTE_REFRESH,
        CapabilityCode.EXTENDED_MESSAGE,
        CapabilityCode.GRACEFUL_RESTART,
        CapabilityCode.FOUR_OCTET_AS,
        CapabilityCode.ENHANCED_ROUTE_REFRESH,
    }
)
UNKNOWN_CAPABILITY_CODES = [c for c in range(256) if c not in DECODED_CAPABILITY_CODES]

graceful_restart = st.builds(
    GracefulRestart,
    restart_time=st.integers(0, 0x0FFF),
    restarting=st.booleans(),
    notification=st.booleans(),
    families=st.lists(st.builds(GracefulRestartFamily, u16, u8, st.booleans()), max_size=8).map(tuple),
)

unknown_capability = st.builds(UnknownCapability, st.sampled_from(UNKNOWN_CAPABILITY_CODES), st.binary(max_size=255))

capability: st.SearchStrategy[Capability] = st.one_of(
    st.builds(Multiprotocol, u16, u8),
    st.just(RouteRefresh()),
    st.just(EnhancedRouteRefresh()),
    st.just(ExtendedMessage()),
    graceful_restart,
    unknown_capability,
)
"""Every kind but FourOctetAs, which `opens` places itself so the decoded AS is predictable."""


@st.composite
def opens(draw: st.DrawFn, max_caps: int = 12) -> Open:
    caps = draw(st.lists(capability, max_size=max_caps))
    four = draw(st.booleans())
    asn = draw(asn4 if four else asn2)
    if four:
        caps.insert(draw(st.integers(0, len(caps))), FourOctetAs(asn))
    return Open(asn=asn, hold_time=draw(u16), router_id=draw(router_id), capabilities=tuple(caps))


def expected_open(msg: Open) -> Open:
    return replace(msg, my_as_field=msg.asn if msg.asn <= 0xFFFF else AS_TRANS)


# ---------------------------------------------------------------- NOTIFICATION, ROUTE-REFRESH

notifications = st.builds(Notification, u8, u8, st.binary(max_size=600))
route_refreshes = st.builds(RouteRefreshMessage, u16, u8, u8)
