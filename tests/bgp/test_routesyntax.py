"""ExaBGP-style route lines: what parses, to what, and how mistakes are reported."""

from __future__ import annotations

import pytest

from bgplab.bgp.routesyntax import (
    RouteSyntaxError,
    attributes_json,
    parse_community,
    parse_route,
    parse_route_file,
)
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST
from bgplab.bgp.wire.attributes import Aggregator
from bgplab.bgp.wire.constants import WellKnownCommunity
from bgplab.bgp.wire.nlri import parse_prefix


def test_full_line_from_the_contract() -> None:
    spec = parse_route(
        "route 203.0.113.0/24 next-hop 192.0.2.1 as-path [ 65001 65002 ] origin igp med 10 "
        "local-preference 100 community [ 65001:1 no-export ] large-community [ 65001:1:1 ]"
    )
    assert spec.family == IPV4_UNICAST
    assert spec.key == parse_prefix("203.0.113.0/24")[1]
    a = spec.attributes
    assert (a.next_hop, a.asns(), a.origin, a.med, a.local_pref) == ("192.0.2.1", [65001, 65002], 0, 10, 100)
    assert a.communities == (65001 << 16 | 1, WellKnownCommunity.NO_EXPORT)
    assert a.large_communities == ((65001, 1, 1),)


def test_ipv6_sets_aggregator_and_announce_prefix() -> None:
    spec = parse_route(
        "announce route 2001:db8::/32 next-hop 2001:db8::1 as-path [ 1 ( 2 3 ) 4 ] origin egp "
        "atomic-aggregate aggregator ( 65000:192.0.2.9 ) community graceful-shutdown"
    )
    assert spec.family == IPV6_UNICAST
    assert spec.attributes.as_path == ((2, (1,)), (1, (2, 3)), (2, (4,)))
    assert spec.attributes.as_path_length() == 3
    assert spec.attributes.atomic_aggregate
    assert spec.attributes.aggregator == Aggregator(65000, "192.0.2.9")
    assert spec.attributes.communities == (0xFFFF0000,)
    rendered = attributes_json(spec.attributes)
    assert rendered["as_path"] == [1, 2, 3, 4]
    assert rendered["as_path_segments"] == [
        {"type": 2, "asns": [1]},
        {"type": 1, "asns": [2, 3]},
        {"type": 2, "asns": [4]},
    ]
    assert rendered["origin"] == "egp" and rendered["communities"] == ["65535:0"]


def test_next_hop_self_and_defaults() -> None:
    spec = parse_route("route 198.51.100.0/24 next-hop self")
    assert spec.attributes.next_hop is None
    assert spec.attributes.origin == 0 and spec.attributes.as_path == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("route 192.0.2.1/24", "host bits set"),
        ("route 192.0.2.0/24 next-hop banana", "not an IP address"),
        ("route 192.0.2.0/24 next-hop 2001:db8::1", "address family"),
        ("route 192.0.2.0/24 med", "needs a value"),
        ("route 192.0.2.0/24 med 4294967296", "0..4294967295"),
        ("route 192.0.2.0/24 origin bgp", "igp, egp or incomplete"),
        ("route 192.0.2.0/24 community [ 65536:1 ]", "0..65535"),
        ("route 192.0.2.0/24 community [ 1:2", "closing"),
        ("route 192.0.2.0/24 large-community [ 1:2 ]", "A:B:C"),
        ("route 192.0.2.0/24 as-path [ 1 x ]", "AS number"),
        ("route 192.0.2.0/24 path-information 1", "unknown keyword 'path-information'"),
        ("withdraw route 192.0.2.0/24", "expected 'route PREFIX"),
    ],
)
def test_errors_say_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(RouteSyntaxError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_route(line)


def test_file_errors_name_file_and_line(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "r.txt"  # type: ignore[operator]
    path.write_text("# header\nroute 192.0.2.0/24\n\nroute 192.0.2.0/24 colour red\n")
    with pytest.raises(RouteSyntaxError, match=f"{path}:4: unknown keyword 'colour'"):
        list(parse_route_file(str(path)))


def test_community_names() -> None:
    assert parse_community("no-advertise") == WellKnownCommunity.NO_ADVERTISE
    assert parse_community("65535:65281") == WellKnownCommunity.NO_EXPORT
