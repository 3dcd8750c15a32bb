"""Effective routes of a subnet, one test per Azure selection rule; pure computation, no sockets."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgplab.expressroute.effective import (
    BgpPath,
    EffectiveRoute,
    Network,
    UserRoute,
    effective_routes,
    lookup,
)

VNET = ipaddress.ip_network("10.1.0.0/16")
PEER = ipaddress.ip_network("10.2.0.0/16")
MSEE1, MSEE2 = "192.168.100.1", "192.168.100.5"


def net(text: str) -> Network:
    return ipaddress.ip_network(text)


def path(
    prefix: str, next_hop: str = MSEE1, circuit: str = "er1", weight: int = 0, as_path: tuple[int, ...] = (12076, 65010)
) -> BgpPath:
    return BgpPath(net(prefix), next_hop, circuit, weight, as_path)


def rows(routes: list[EffectiveRoute], prefix: str) -> list[EffectiveRoute]:
    return [route for route in routes if route.prefix == net(prefix)]


def only(routes: list[EffectiveRoute], prefix: str, source: str) -> EffectiveRoute:
    (route,) = [route for route in rows(routes, prefix) if route.source == source]
    return route


def active(routes: list[EffectiveRoute], prefix: str) -> EffectiveRoute:
    (route,) = [route for route in rows(routes, prefix) if route.state == "Active"]
    return route


def test_system_routes_present() -> None:
    routes = effective_routes([VNET], peered_spaces=[PEER])
    assert [(str(r.prefix), r.source, r.state, r.next_hop_type) for r in routes] == [
        ("0.0.0.0/0", "Default", "Active", "Internet"),
        ("10.0.0.0/8", "Default", "Active", "None"),
        ("100.64.0.0/10", "Default", "Active", "None"),
        ("172.16.0.0/12", "Default", "Active", "None"),
        ("10.1.0.0/16", "Default", "Active", "VnetLocal"),
        ("10.2.0.0/16", "Default", "Active", "VNetPeering"),
        ("192.168.0.0/16", "Default", "Active", "None"),
    ]
    assert all(r.next_hops == () for r in routes)


def test_vnet_space_equal_to_or_containing_a_none_range_replaces_it() -> None:
    routes = effective_routes([net("10.0.0.0/8"), net("172.0.0.0/8")])
    assert [r.next_hop_type for r in rows(routes, "10.0.0.0/8")] == ["VnetLocal"]
    assert rows(routes, "172.16.0.0/12") == []
    assert lookup(routes, "172.16.0.1") == only(routes, "172.0.0.0/8", "Default")


def test_vnet_space_inside_a_none_range_wins_by_longest_match() -> None:
    routes = effective_routes([VNET])
    assert active(routes, "10.0.0.0/8").next_hop_type == "None"
    assert lookup(routes, "10.1.2.3") == active(routes, "10.1.0.0/16")
    assert lookup(routes, "10.9.2.3") == active(routes, "10.0.0.0/8")


def test_vnet_space_beats_more_specific_bgp_route() -> None:
    routes = effective_routes([VNET], peered_spaces=[PEER], bgp_paths=[path("10.1.5.0/24"), path("10.2.0.0/16")])
    assert only(routes, "10.1.5.0/24", "VirtualNetworkGateway").state == "Invalid"
    assert only(routes, "10.2.0.0/16", "VirtualNetworkGateway").state == "Invalid"
    assert active(routes, "10.2.0.0/16").next_hop_type == "VNetPeering"
    assert lookup(routes, "10.1.5.9") == active(routes, "10.1.0.0/16")


def test_bgp_default_route_replaces_internet_and_withdrawing_it_brings_internet_back() -> None:
    tunnelled = effective_routes([VNET], bgp_paths=[path("0.0.0.0/0")])
    assert only(tunnelled, "0.0.0.0/0", "Default").state == "Invalid"
    assert active(tunnelled, "0.0.0.0/0").source == "VirtualNetworkGateway"
    assert lookup(tunnelled, "8.8.8.8") == active(tunnelled, "0.0.0.0/0")

    withdrawn = effective_routes([VNET], bgp_paths=[])
    assert rows(withdrawn, "0.0.0.0/0") == [EffectiveRoute(net("0.0.0.0/0"), "Default", "Active", "Internet")]


def test_udr_beats_bgp_for_same_prefix() -> None:
    udr = UserRoute(net("0.0.0.0/0"), "VirtualAppliance", "10.1.9.4")
    routes = effective_routes([VNET], user_routes=[udr], bgp_paths=[path("0.0.0.0/0")])
    assert [(r.source, r.state) for r in rows(routes, "0.0.0.0/0")] == [
        ("User", "Active"),
        ("VirtualNetworkGateway", "Invalid"),
        ("Default", "Invalid"),
    ]
    assert active(routes, "0.0.0.0/0").next_hops == ("10.1.9.4",)


def test_udr_beats_vnet_route_for_identical_prefix() -> None:
    routes = effective_routes([VNET], user_routes=[UserRoute(VNET, "VirtualAppliance", "10.3.0.4")])
    assert active(routes, "10.1.0.0/16").source == "User"
    assert only(routes, "10.1.0.0/16", "Default").state == "Invalid"


def test_udr_to_gateway_follows_longest_covering_bgp_route_or_drops() -> None:
    bgp = [path("0.0.0.0/0", MSEE2), path("10.0.0.0/8", MSEE1)]
    udrs = [UserRoute(net("10.50.0.0/16"), "VirtualNetworkGateway"), UserRoute(net("192.0.2.0/24"), "None")]
    routes = effective_routes([VNET], user_routes=udrs, bgp_paths=bgp, propagate_gateway_routes=False)
    assert active(routes, "10.50.0.0/16").next_hops == (MSEE1,)
    assert active(routes, "192.0.2.0/24").next_hop_type == "None"

    unresolved = effective_routes([VNET], user_routes=udrs)
    dropped = EffectiveRoute(net("10.50.0.0/16"), "User", "Active", "VirtualNetworkGateway")
    assert active(unresolved, "10.50.0.0/16") == dropped


def test_bgp_beats_system_route_for_same_prefix() -> None:
    routes = effective_routes([VNET], bgp_paths=[path("10.0.0.0/8")])
    assert only(routes, "10.0.0.0/8", "Default").state == "Invalid"
    assert active(routes, "10.0.0.0/8").next_hops == (MSEE1,)
    assert lookup(routes, "10.9.0.1") == active(routes, "10.0.0.0/8")


def test_weight_beats_as_path_length() -> None:
    heavy = path("10.20.0.0/16", MSEE2, "er2", weight=100, as_path=(12076, 65010, 65010, 65010))
    routes = effective_routes([VNET], bgp_paths=[path("10.20.0.0/16"), heavy])
    assert active(routes, "10.20.0.0/16").next_hops == (MSEE2,)
    assert active(routes, "10.20.0.0/16").as_path == (12076, 65010, 65010, 65010)


def test_as_path_length_decides_at_equal_weight() -> None:
    prepended = path("10.20.0.0/16", MSEE2, "er2", as_path=(12076, 65020, 65020))
    routes = effective_routes([VNET], bgp_paths=[prepended, path("10.20.0.0/16")])
    assert active(routes, "10.20.0.0/16").next_hops == (MSEE1,)
    assert active(routes, "10.20.0.0/16").as_path == (12076, 65010)


def test_ecmp_across_both_msees_of_a_circuit() -> None:
    routes = effective_routes([VNET], bgp_paths=[path("10.20.0.0/16", MSEE2), path("10.20.0.0/16", MSEE1)])
    assert [r.next_hops for r in rows(routes, "10.20.0.0/16")] == [(MSEE1, MSEE2)]


def test_ecmp_limited_to_four_circuits() -> None:
    bgp = [path("10.20.0.0/16", f"192.168.{i}.1", f"er{i}") for i in range(6)]
    routes = effective_routes([VNET], bgp_paths=bgp)
    assert active(routes, "10.20.0.0/16").next_hops == tuple(f"192.168.{i}.1" for i in range(4))
    two = effective_routes([VNET], bgp_paths=bgp, max_ecmp_circuits=2)
    assert active(two, "10.20.0.0/16").next_hops == ("192.168.0.1", "192.168.1.1")


def test_propagation_off_drops_bgp_routes() -> None:
    bgp = [path("0.0.0.0/0"), path("10.20.0.0/16")]
    routes = effective_routes([VNET], bgp_paths=bgp, propagate_gateway_routes=False)
    assert all(r.source == "Default" for r in routes)
    assert active(routes, "0.0.0.0/0").next_hop_type == "Internet"
    assert rows(routes, "10.20.0.0/16") == []


def test_lookup_does_longest_prefix_match_and_ignores_invalid_routes() -> None:
    routes = effective_routes([VNET], bgp_paths=[path("0.0.0.0/0"), path("10.1.7.0/24"), path("10.20.0.0/16")])
    assert lookup(routes, "10.20.3.4") == active(routes, "10.20.0.0/16")
    assert lookup(routes, ipaddress.IPv4Address("10.1.7.7")) == active(routes, "10.1.0.0/16")
    assert lookup(routes, "203.0.113.9") == active(routes, "0.0.0.0/0")
    invalid_only = [only(routes, "0.0.0.0/0", "Default")]
    assert lookup(invalid_only, "203.0.113.9") is None
    assert lookup(routes, "2001:db8::1") is None


def test_ipv6_space_adds_ipv6_default_route() -> None:
    v6 = net("2001:db8:1::/48")
    routes = effective_routes([VNET, v6])
    assert active(routes, "::/0") == EffectiveRoute(net("::/0"), "Default", "Active", "Internet")
    assert lookup(routes, "2001:db8:1::5") == active(routes, "2001:db8:1::/48")
    assert lookup(routes, "2001:db8:2::5") == active(routes, "::/0")
    assert rows(effective_routes([VNET]), "::/0") == []


def test_rows_are_azures_one_per_next_hop() -> None:
    gateway = "VirtualNetworkGateway"
    route = EffectiveRoute(net("10.20.0.0/16"), gateway, "Active", gateway, (MSEE1, MSEE2), (12076, 65010))
    assert route.rows() == [{
        "addressPrefix": ["10.20.0.0/16"],
        "source": "VirtualNetworkGateway",
        "state": "Active",
        "nextHopType": "VirtualNetworkGateway",
        "nextHopIpAddress": [hop],
        "asPath": [12076, 65010],
    } for hop in (MSEE1, MSEE2)]
    [local] = EffectiveRoute(VNET, "Default", "Active", "VnetLocal").rows()
    assert local["nextHopIpAddress"] == []


def test_results_are_sorted_by_version_length_and_address() -> None:
    routes = effective_routes([net("2001:db8:1::/48"), VNET], bgp_paths=[path("10.20.0.0/16"), path("10.1.0.0/24")])
    keys = [(r.prefix.version, r.prefix.prefixlen, int(r.prefix.network_address)) for r in routes]
    assert keys == sorted(keys)


def test_inputs_azure_refuses_raise() -> None:
    with pytest.raises(ValueError, match="two user routes"):
        effective_routes([VNET], user_routes=[UserRoute(PEER, "None"), UserRoute(PEER, "Internet")])
    with pytest.raises(ValueError, match="overlaps"):
        effective_routes([VNET], peered_spaces=[net("10.1.128.0/17")])
    with pytest.raises(ValueError, match="max_ecmp_circuits"):
        effective_routes([VNET], max_ecmp_circuits=0)


SPACES = [VNET, net("2001:db8:1::/48"), net("172.16.0.0/12")]
PEERS = [PEER, net("192.168.0.0/16")]
UDRS = [
    UserRoute(net("10.30.0.0/16"), "VirtualNetworkGateway"),
    UserRoute(net("203.0.113.0/24"), "VirtualAppliance", "10.1.9.4"),
    UserRoute(net("0.0.0.0/0"), "VirtualAppliance", "10.1.9.4"),
]
PATHS = [
    path("0.0.0.0/0", MSEE1, "er-b"),
    path("0.0.0.0/0", MSEE2, "er-b"),
    *(path("10.0.0.0/8", f"192.168.{i}.1", f"er{i}", as_path=(12076, 650 + i)) for i in range(6)),
    path("10.1.5.0/24"),
    path("10.30.0.0/16", MSEE2, "er-a", weight=10),
    path("10.30.0.0/16", MSEE1, "er-b", weight=10, as_path=(12076,)),
    path("10.30.0.0/16", "192.168.9.1", "er-c", weight=10, as_path=(12076,)),
]
EXPECTED = effective_routes(SPACES, peered_spaces=PEERS, user_routes=UDRS, bgp_paths=PATHS)


@given(
    st.permutations(SPACES),
    st.permutations(PEERS),
    st.permutations(UDRS),
    st.permutations(PATHS),
)
def test_input_order_does_not_matter(
    spaces: list[Network], peers: list[Network], udrs: list[UserRoute], paths: list[BgpPath]
) -> None:
    assert effective_routes(iter(spaces), peered_spaces=peers, user_routes=udrs, bgp_paths=paths) == EXPECTED


def test_order_fixture_exercises_every_rule() -> None:
    """The shuffled inputs above only prove something if they contain ties and overrides to get wrong."""
    assert active(EXPECTED, "10.0.0.0/8").next_hops == tuple(f"192.168.{i}.1" for i in range(4))
    assert active(EXPECTED, "10.30.0.0/16").next_hops == (MSEE1, "192.168.9.1")
    assert active(EXPECTED, "0.0.0.0/0").source == "User"
    assert active(EXPECTED, "10.30.0.0/16").source == "User"
    assert only(EXPECTED, "10.1.5.0/24", "VirtualNetworkGateway").state == "Invalid"
    assert [r.next_hop_type for r in rows(EXPECTED, "172.16.0.0/12")] == ["VnetLocal"]
