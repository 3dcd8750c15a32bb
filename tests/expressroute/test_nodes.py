"""The MSEE and gateway nodes as configured, before any socket opens: one test per rule they wire.

What reaches the wire is tested against FRR in test_msee_interop.py; here each rule is checked
where the node turns it into session settings, so a regression names the rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from bgplab.bgp.fib import BLACKHOLE
from bgplab.bgp.routesyntax import parse_community
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.expressroute import effective, rules
from bgplab.expressroute.gateway import Gateway, MseeNeighbor
from bgplab.expressroute.model import Model, PeeringType, Side
from bgplab.expressroute.msee import GatewayNeighbor, Msee, PeeringPlace
from bgplab.expressroute.node import NodeConfigError, build_node, load_config
from bgplab.expressroute.profile import PROFILES
from tests.expressroute.erlab import model_data

MODEL = Model.from_data(model_data())
PLACES = {
    PeeringType.PRIVATE: PeeringPlace(gateways=(GatewayNeighbor("10.255.0.2", "10.255.0.1"),)),
    PeeringType.MICROSOFT: PeeringPlace(),
}


def msee(**kwargs: Any) -> Msee:
    return Msee(MODEL, "contoso", Side.PRIMARY, PLACES, **kwargs)


def customer_config(node: Msee, peering: PeeringType = PeeringType.PRIVATE) -> Any:
    p = MODEL.circuits["contoso"].peerings[peering]
    link = p.link(Side.PRIMARY, 4)
    assert link is not None
    return node._customer_config(p, 4, str(link.customer.ip), str(link.msee.ip), 179)


def test_msee_offers_keepalive_60_hold_180_and_refuses_hold_below_10() -> None:
    config = customer_config(msee())
    assert (config.keepalive, config.hold_time, config.min_hold_time) == (60, 180, 10)
    fast = customer_config(msee(timers=PROFILES["fast"].timers))
    assert (fast.keepalive, fast.hold_time, fast.min_hold_time) == (3, 9, 3)


def test_msee_runs_bfd_300ms_x3_by_default_on_ipv4_only() -> None:
    config = customer_config(msee())
    assert config.bfd is not None
    assert (config.bfd.desired_min_tx, config.bfd.required_min_rx, config.bfd.multiplier) == (300, 300, 3)
    data = model_data()
    data["circuits"]["contoso"]["peerings"]["private"]["ipv6"] = "2001:db8:100::/125"
    model = Model.from_data(data)
    node = Msee(model, "contoso", Side.PRIMARY, PLACES)
    p = model.circuits["contoso"].peerings[PeeringType.PRIVATE]
    link6 = p.link(Side.PRIMARY, 6)
    assert link6 is not None
    v6 = node._customer_config(p, 6, str(link6.customer.ip), str(link6.msee.ip), 179)
    assert v6.bfd is None and v6.families == (IPV6_UNICAST,)


def test_msee_sessions_use_the_peerings_md5_key_and_peer_asn() -> None:
    data = model_data()
    data["circuits"]["contoso"]["peerings"]["private"]["md5"] = "S3cretKey25"
    node = Msee(Model.from_data(data), "contoso", Side.PRIMARY, PLACES)
    p = node.circuit.peerings[PeeringType.PRIVATE]
    config = node._customer_config(p, 4, "192.168.100.129", "192.168.100.130", 179)
    assert config.md5 == "S3cretKey25" and config.asn == 64900


def test_customer_paths_holding_12076_are_loops_unless_allowas_in() -> None:
    assert customer_config(msee()).allow_own_as == 0
    assert customer_config(msee(rules_=rules.MseeRules(allow_own_as=2))).allow_own_as == 2


def test_customer_routes_go_only_to_the_gateway_and_vnet_routes_only_to_the_customer() -> None:
    node = msee()
    private = customer_config(node)
    assert private.group == rules.CUSTOMER and private.export_groups == {rules.GATEWAY}
    gateway = node._gateway_config(GatewayNeighbor("10.255.0.2", "10.255.0.1"), 179)
    assert gateway.asn == 65515 and gateway.group == rules.GATEWAY and gateway.export_groups == {rules.CUSTOMER}
    microsoft = customer_config(node, PeeringType.MICROSOFT)
    assert microsoft.export_groups == {rules.LOCAL}  # only Microsoft's own service prefixes


def test_over_the_prefix_limit_the_session_retries_after_60_seconds_by_default() -> None:
    limit = customer_config(msee()).max_prefix[IPV4_UNICAST]
    assert (limit.limit, limit.restart, limit.warning_percent) == (4000, 60.0, 80)


def test_msee_refuses_a_place_for_a_peering_the_circuit_lacks() -> None:
    data = model_data()
    del data["circuits"]["contoso"]["peerings"]["microsoft"]
    with pytest.raises(ValueError, match="microsoft are not configured on circuit contoso"):
        Msee(Model.from_data(data), "contoso", Side.PRIMARY, PLACES)


def test_route_filter_with_microsoft_365_communities_needs_authorization() -> None:
    data = model_data()
    data["circuits"]["contoso"]["microsoft365_authorized"] = False
    node = Msee(Model.from_data(data), "contoso", Side.PRIMARY, PLACES)
    with pytest.raises(ValueError, match=r"Microsoft 365 communities \(12076:5010\).*not authorized"):
        asyncio.run(node.set_route_filter("exchange"))
    assert node.route_filter[PeeringType.MICROSOFT] is None


# ---- gateway


def gateway(**kwargs: Any) -> Gateway:
    neighbors = [MseeNeighbor("10.255.0.1", "contoso", Side.PRIMARY, "10.255.0.2")]
    return Gateway(MODEL, "hub", neighbors, **kwargs)


def test_gateway_advertises_vnet_space_with_custom_and_regional_communities() -> None:
    [(family, keys, attrs)] = gateway()._vnet_announcements()
    assert family == IPV4_UNICAST and keys == [parse_prefix("10.100.0.0/16")[1]]
    assert attrs.communities == (parse_community("12076:20001"), parse_community("12076:50002"))


def test_gateway_adds_no_regional_community_without_a_custom_one() -> None:
    data = model_data()
    del data["vnets"]["hub"]["custom_community"]
    node = Gateway(Model.from_data(data), "hub", [MseeNeighbor("10.255.0.1", "contoso")])
    [(_, _, attrs)] = node._vnet_announcements()
    assert attrs.communities == ()


def test_gateway_refuses_an_msee_of_a_circuit_the_vnet_is_not_connected_to() -> None:
    with pytest.raises(ValueError, match="circuit 'other', which VNet hub has no connection to"):
        Gateway(MODEL, "hub", [MseeNeighbor("10.255.0.1", "other")])


def test_gateway_kernel_routes_follow_the_effective_routes() -> None:
    node = gateway(internet=["192.0.2.1"])
    routes = effective.effective_routes(
        [ipaddress.ip_network("10.100.0.0/16")],
        bgp_paths=[effective.BgpPath(ipaddress.ip_network("10.1.0.0/16"), "10.255.0.1", "contoso", 0, (12076, 64900))],
    )
    kernel = {(f, k): hops for (f, k), hops in node._kernel_routes(routes).items()}
    assert kernel[(IPV4_UNICAST, parse_prefix("10.1.0.0/16")[1])] == ("10.255.0.1",)
    assert kernel[(IPV4_UNICAST, parse_prefix("0.0.0.0/0")[1])] == ("192.0.2.1",)
    assert kernel[(IPV4_UNICAST, parse_prefix("10.0.0.0/8")[1])] == (BLACKHOLE,)  # Azure's "None" routes drop
    assert (IPV4_UNICAST, parse_prefix("10.100.0.0/16")[1]) not in kernel  # VNet-local: the interfaces' own
    no_edge = gateway()._kernel_routes(routes)
    assert no_edge[(IPV4_UNICAST, parse_prefix("0.0.0.0/0")[1])] == (BLACKHOLE,)


def test_gateway_weight_set_at_run_time_is_checked_and_published() -> None:
    node = gateway()
    node.set_weight("contoso", 100)
    assert node.weights == {"contoso": 100} and node.status()["connections"] == {"contoso": 100}
    assert node.hub.history[-1]["type"] == "weight" and node.hub.history[-1]["weight"] == 100
    with pytest.raises(ValueError, match="no connection to circuit 'other'; connected: contoso"):
        node.set_weight("other", 1)
    with pytest.raises(ValueError, match="weight 32001: expected 0-32000"):
        node.set_weight("contoso", 32001)
    assert node.weights == {"contoso": 100}


def test_gateway_maintenance_names_the_instances_it_has() -> None:
    node = Gateway(MODEL, "hub", [MseeNeighbor("10.255.0.1", "contoso"), MseeNeighbor("10.255.1.1", "contoso",
                                                                                     instance=1)])
    with pytest.raises(ValueError, match="instance 2: this gateway has instances 0, 1"):
        asyncio.run(node.set_maintenance(2, True))
    assert node.status()["in_maintenance"] == []


# ---- node config files


def node_file(tmp_path: Path, **changes: Any) -> Path:
    config: dict[str, Any] = {
        "kind": "msee", "name": "msee1", "control": str(tmp_path / "msee1.sock"), "profile": "fast",
        "expressroute": model_data(), "circuit": "contoso", "side": "primary",
        "peerings": {"private": {"netns": "x", "gateways": [{"address": "10.255.0.2"}]}},
    }
    config.update(changes)
    path = tmp_path / "msee1.json"
    path.write_text(json.dumps(config))
    return path


def test_node_config_builds_an_msee(tmp_path: Path) -> None:
    node, control = build_node(load_config(node_file(tmp_path)), "msee1.json")
    assert isinstance(node, Msee) and node.timers == PROFILES["fast"].timers and control.endswith("msee1.sock")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "router"}, "msee1.json: kind: 'router': expected one of msee, gateway"),
        ({"colour": "blue"}, "msee1.json: : unknown key(s) colour"),
        ({"profile": "slow"}, "msee1.json: profile: 'slow': expected one of azure, fast"),
        ({"side": "middle"}, "msee1.json: side: 'middle': expected primary or secondary"),
        ({"peerings": {"privat": {}}}, "msee1.json: peerings: unknown key(s) privat; allowed: private"),
        ({"rules": {"drain_prepend": 50}}, "drain_prepend 50: expected 0..10"),
        ({"circuit": "nope"}, "circuit 'nope' is not in the model"),
        ({"timers": {"hold": 1, "keep": 2}}, "msee1.json: timers: unknown key(s) keep"),
    ],
)
def test_node_config_errors_name_the_file_and_the_field(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises((NodeConfigError, ValueError)) as err:
        build_node(load_config(node_file(tmp_path, **changes)), "msee1.json")
    assert message in str(err.value)


def test_node_config_model_errors_keep_the_models_field_path(tmp_path: Path) -> None:
    data = model_data()
    data["circuits"]["contoso"]["peerings"]["private"]["peer_asn"] = 65515
    with pytest.raises(NodeConfigError, match=r"msee1.json: expressroute: circuits.contoso.peerings.private.peer_asn"):
        build_node(load_config(node_file(tmp_path, expressroute=data)), "msee1.json")


def test_node_config_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: msee\n  name: [unclosed\n")
    with pytest.raises(NodeConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(path)


def test_node_config_timers_set_or_turn_off_bfd_and_name_the_field_when_wrong(tmp_path: Path) -> None:
    fast, _ = build_node(load_config(node_file(tmp_path, timers={"bfd": {"interval_ms": 100, "multiplier": 3}})),
                         "msee1.json")
    assert isinstance(fast, Msee) and fast.timers.bfd is not None
    settings = fast.timers.bfd
    assert (settings.desired_min_tx, settings.required_min_rx, settings.multiplier) == (100, 100, 3)
    assert fast.timers.hold == PROFILES["fast"].timers.hold  # the profile's other timers stay
    bfd = customer_config(fast).bfd
    assert bfd is not None and (bfd.desired_min_tx, bfd.multiplier) == (100, 3)  # what the IPv4 sessions run
    off, _ = build_node(load_config(node_file(tmp_path, timers={"bfd": None, "hold": 30})), "msee1.json")
    assert isinstance(off, Msee) and off.timers.bfd is None and off.timers.hold == 30
    assert customer_config(off).bfd is None
    five, _ = build_node(load_config(node_file(tmp_path, timers={"bfd": {"multiplier": 5}})), "msee1.json")
    assert isinstance(five, Msee) and five.timers.bfd is not None
    assert (five.timers.bfd.desired_min_tx, five.timers.bfd.multiplier) == (300, 5)  # the interval stays 300 ms
    for bfd_value, message in [
        ({"interval_ms": 5}, "msee1.json: timers.bfd.interval_ms: 5: expected a whole number of milliseconds, "
                             "10..60000"),
        ({"interval_ms": "100ms"}, "msee1.json: timers.bfd.interval_ms: '100ms': expected a whole number"),
        ({"interval_ms": 100, "multiplier": 1}, "msee1.json: timers.bfd.multiplier: 1: expected a whole number of "
                                                "packets, 2..255"),
        ({"interval_ms": 100, "mult": 3}, "msee1.json: timers.bfd: unknown key(s) mult; allowed: interval_ms, "
                                          "multiplier"),
        (True, "msee1.json: timers.bfd: True: expected {interval_ms: N, multiplier: M}, or null to turn BFD off"),
    ]:
        with pytest.raises(NodeConfigError) as err:
            build_node(load_config(node_file(tmp_path, timers={"bfd": bfd_value})), "msee1.json")
        assert message in str(err.value)
