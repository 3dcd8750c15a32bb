"""ExpressRoute's route rules as policies, driven directly: one test per rule, named after it."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

import pytest

from bgplab.bgp.policy import PolicyError
from bgplab.bgp.routesyntax import parse_community
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST, PathAttributes, as_sequence
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.expressroute import rules
from bgplab.expressroute.model import Model, PeeringType
from bgplab.expressroute.services import load_catalogue

MODEL_DATA: dict[str, Any] = {
    "circuits": {
        "c1": {
            "sku": "standard",
            "bandwidth": "1Gbps",
            "microsoft365_authorized": True,
            "peerings": {
                "private": {"vlan": 100, "peer_asn": 65010, "ipv4": "192.168.100.128/29"},
                "microsoft": {
                    "vlan": 200,
                    "peer_asn": 64900,
                    "validated": True,
                    "ipv4": "198.51.100.0/29",
                    "advertised_prefixes": ["203.0.113.0/28"],
                    "route_filter": "exo",
                },
            },
        },
        "c2": {
            "sku": "premium",
            "bandwidth": "1Gbps",
            "peerings": {
                "private": {"vlan": 100, "peer_asn": 65020, "ipv4": "192.168.200.0/29", "ipv6": "2001:db8:100::/125"},
                "microsoft": {
                    "vlan": 200,
                    "peer_asn": 64901,
                    "ipv4": "198.51.100.8/29",
                    "advertised_prefixes": ["203.0.113.16/28"],
                },
            },
        },
    },
    "route_filters": {"exo": {"rules": [{"access": "allow", "communities": ["12076:5010"]}]}},
    "vnets": {"hub": {"address_space": ["10.100.0.0/16"], "connections": [{"circuit": "c1"}]}},
}
MODEL = Model.from_data(MODEL_DATA)
PRIVATE = MODEL.circuits["c1"].peerings[PeeringType.PRIVATE]
MICROSOFT = MODEL.circuits["c1"].peerings[PeeringType.MICROSOFT]
UNVALIDATED = MODEL.circuits["c2"].peerings[PeeringType.MICROSOFT]
RULES = rules.MseeRules()
EXO, WEST_EUROPE = parse_community("12076:5010"), parse_community("12076:51002")


def route(
    *asns: int, communities: tuple[str, ...] = (), large: tuple[tuple[int, int, int], ...] = ()
) -> PathAttributes:
    return PathAttributes(
        origin=0,
        as_path=as_sequence(*asns),
        next_hop="192.168.100.129",
        communities=tuple(parse_community(c) for c in communities),
        large_communities=large,  # type: ignore[arg-type]
    )


def verdict(policy: Any, prefix: str, attrs: PathAttributes) -> PathAttributes | None:
    afi, key = parse_prefix(prefix)
    family = IPV4_UNICAST if afi == 1 else IPV6_UNICAST
    result: PathAttributes | None = policy.evaluate(family, key, attrs, 12076)
    return result


# ---- private peering, customer to Microsoft


def test_private_peering_accepts_the_default_route_for_forced_tunnelling() -> None:
    assert verdict(rules.customer_import(PRIVATE, RULES), "0.0.0.0/0", route(65010)) is not None


def test_private_peering_accepts_any_prefix_length() -> None:
    policy = rules.customer_import(PRIVATE, RULES)
    for prefix in ("10.1.0.0/16", "10.1.2.3/32", "2001:db8:1::/48"):
        assert verdict(policy, prefix, route(65010)) is not None, prefix


@pytest.mark.parametrize("peering", [PRIVATE, MICROSOFT], ids=["private", "microsoft"])
def test_customer_communities_are_ignored(peering: Any) -> None:
    prefix = "10.1.0.0/16" if peering is PRIVATE else "203.0.113.0/28"
    got = verdict(
        rules.customer_import(peering, RULES), prefix,
        route(65010, communities=("65010:1", "65535:65281"), large=((65010, 1, 2),)),
    )
    assert got is not None and got.communities == () and got.large_communities == ()


# ---- Microsoft peering, customer to Microsoft


@pytest.mark.parametrize("prefix", ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/24", "172.16.5.0/24", "192.168.1.0/24"])
def test_microsoft_peering_drops_default_route_and_rfc1918(prefix: str) -> None:
    # Even were they listed (the model refuses that): the rule itself drops them, per prefix.
    everything = replace(MICROSOFT, advertised_prefixes=(ipaddress.ip_network("0.0.0.0/0"),))
    policy = rules.customer_import(everything, RULES)
    assert verdict(policy, prefix, route(64900)) is None
    assert verdict(policy, "203.0.113.0/24", route(64900)) is not None


def test_microsoft_peering_accepts_only_the_advertised_public_prefixes() -> None:
    policy = rules.customer_import(MICROSOFT, RULES)
    assert verdict(policy, "203.0.113.0/28", route(64900)) is not None
    assert verdict(policy, "203.0.113.8/29", route(64900)) is not None  # inside a listed prefix
    assert verdict(policy, "203.0.113.0/27", route(64900)) is None  # wider than listed
    assert verdict(policy, "198.51.100.128/25", route(64900)) is None  # not listed at all


def test_microsoft_peering_more_specifics_can_be_refused() -> None:
    exact = rules.customer_import(MICROSOFT, rules.MseeRules(accept_more_specifics=False))
    assert verdict(exact, "203.0.113.0/28", route(64900)) is not None
    assert verdict(exact, "203.0.113.8/29", route(64900)) is None


def test_microsoft_peering_strips_private_asns_from_received_paths() -> None:
    got = verdict(rules.customer_import(MICROSOFT, RULES), "203.0.113.0/28", route(64900, 65001, 3356, 65002))
    assert got is not None and got.asns() == [3356]


def test_microsoft_peering_refuses_documentation_asns_in_the_path() -> None:
    policy = rules.customer_import(MICROSOFT, RULES)
    for asn in (64496, 64500, 64511):
        assert verdict(policy, "203.0.113.0/28", route(3356, asn)) is None, asn
    for asn in (64495, 64512):
        assert verdict(policy, "203.0.113.0/28", route(3356, asn)) is not None, asn


def test_microsoft_peering_accepts_nothing_while_asn_validation_is_needed() -> None:
    assert UNVALIDATED.advertised_prefixes_state == "ValidationNeeded"
    assert verdict(rules.customer_import(UNVALIDATED, RULES), "203.0.113.16/28", route(64901)) is None
    lenient = rules.MseeRules(accept_while_validation_needed=True)
    assert verdict(rules.customer_import(UNVALIDATED, lenient), "203.0.113.16/28", route(64901)) is not None


# ---- Microsoft to customer


def test_private_peering_strips_the_gateway_asn_toward_the_customer() -> None:
    # The speaker prepends 12076 after the policy: the customer sees just "12076".
    got = verdict(rules.customer_export(PRIVATE, None, drained=False, rules=RULES), "10.100.0.0/16", route(65515))
    assert got is not None and got.asns() == []


def test_private_as_removal_cisco_and_junos_semantics() -> None:
    vnet_route = route(65515, 1234, 1234)
    cisco = verdict(rules.customer_export(PRIVATE, None, drained=False, rules=RULES), "10.100.0.0/16", vnet_route)
    junos_rules = rules.MseeRules(remove_private_as="leading")
    junos = verdict(rules.customer_export(PRIVATE, None, drained=False, rules=junos_rules), "10.100.0.0/16", vnet_route)
    assert cisco is not None and cisco.asns() == [65515, 1234, 1234]  # not all private: kept
    assert junos is not None and junos.asns() == [1234, 1234]  # leading private ones stripped


def test_maintenance_drain_prepends_12076_toward_the_customer() -> None:
    drained = verdict(rules.customer_export(PRIVATE, None, drained=True, rules=RULES), "10.100.0.0/16", route(65515))
    assert drained is not None and drained.asns() == [12076] * RULES.drain_prepend


def test_maintenance_drain_prepends_toward_the_gateway_too() -> None:
    assert verdict(rules.gateway_export(drained=False, rules=RULES), "10.1.0.0/16", route(65010)).asns() == [65010]  # type: ignore[union-attr]
    got = verdict(rules.gateway_export(drained=True, rules=RULES), "10.1.0.0/16", route(65010))
    assert got is not None and got.asns() == [12076] * RULES.drain_prepend + [65010]


def test_microsoft_peering_advertises_nothing_without_a_route_filter() -> None:
    policy = rules.customer_export(MICROSOFT, None, drained=False, rules=RULES)
    assert verdict(policy, "198.18.0.0/24", route(communities=("12076:5010", "12076:51002"))) is None


def test_route_filter_allows_exactly_the_listed_communities() -> None:
    policy = rules.customer_export(MICROSOFT, MODEL.route_filters["exo"], drained=False, rules=RULES)
    kept = verdict(policy, "198.18.0.0/24", route(communities=("12076:5010", "12076:51002")))
    assert kept is not None and set(kept.communities) == {EXO, WEST_EUROPE}  # communities go out with the route
    assert verdict(policy, "198.18.1.0/24", route(communities=("12076:5020", "12076:51002"))) is None


def test_legacy_public_peering_advertises_every_service_prefix_without_a_filter() -> None:
    legacy = replace(MICROSOFT, type=PeeringType.PUBLIC, route_filter=None)
    policy = rules.customer_export(legacy, None, drained=False, rules=RULES)
    assert verdict(policy, "198.18.1.0/24", route(communities=("12076:5020", "12076:51002"))) is not None


# ---- limits and originations


def test_prefix_limits_per_peering_and_sku() -> None:
    c1, c2 = MODEL.circuits["c1"], MODEL.circuits["c2"]
    private = rules.prefix_limits(c1, PRIVATE, RULES)
    assert (private[IPV4_UNICAST].limit, private[IPV6_UNICAST].limit) == (4000, 100)
    premium = rules.prefix_limits(c2, c2.peerings[PeeringType.PRIVATE], RULES)
    assert premium[IPV4_UNICAST].limit == 10000
    microsoft = rules.prefix_limits(c1, MICROSOFT, RULES)
    assert (microsoft[IPV4_UNICAST].limit, microsoft[IPV6_UNICAST].limit) == (200, 200)
    assert private[IPV4_UNICAST].restart == 60.0 and private[IPV4_UNICAST].warning_percent == 80


def test_service_prefixes_carry_service_and_regional_communities() -> None:
    catalogue = load_catalogue()
    announced = rules.service_announcements(catalogue, ["west-europe"])
    v4 = {tuple(sorted(a.communities)): keys for a, keys in announced[IPV4_UNICAST]}
    exo_keys = v4[tuple(sorted((EXO, WEST_EUROPE)))]
    expected = [p for p in catalogue.prefixes if p.region == "west-europe" and EXO in p.communities]
    assert len(exo_keys) == len([p for p in expected if p.prefix.version == 4]) > 0
    assert IPV6_UNICAST in announced
    everything = rules.service_announcements(catalogue)
    v4_count = sum(1 for p in catalogue.prefixes if p.prefix.version == 4)
    assert sum(len(k) for _, k in everything[IPV4_UNICAST]) == v4_count


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"drain_prepend": 11}, "drain_prepend"), ({"remove_private_as": "some"}, "remove_private_as"),
     ({"restart_after": 0}, "restart_after")],
)
def test_rule_settings_are_checked(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyError, match=field):
        rules.MseeRules(**settings)

