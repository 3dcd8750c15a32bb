"""The ExpressRoute model: one test per rule Azure enforces, each checking the field path and the rule's words."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

import pytest
import yaml

from bgplab.bgp.routesyntax import parse_community
from bgplab.expressroute.model import (
    BANDWIDTHS_MBPS,
    Connection,
    Model,
    ModelError,
    PeeringType,
    RouteFilter,
    Side,
    UserRoute,
    VNet,
)

CIRCUIT = "circuits.contoso-ams"
PRIVATE = f"{CIRCUIT}.peerings.private"
MICROSOFT = f"{CIRCUIT}.peerings.microsoft"
HUB = "vnets.hub"

FULL_EXAMPLE = """
circuits:
  contoso-ams:
    sku: standard
    bandwidth: 1Gbps
    region: west-europe
    microsoft365_authorized: true
    outer_vlan: 30
    peerings:
      private:   {vlan: 100, peer_asn: 65010, ipv4: [192.168.100.128/30, 192.168.100.132/30], md5: abc123,
                  ipv6: "2001:db8:100::/125"}
      microsoft: {vlan: 200, peer_asn: 394000, ipv4: 198.51.100.0/29, advertised_prefixes: [203.0.113.0/28],
                  route_filter: m365, customer_asn: 394001}
  contoso-lon:
    sku: premium
    bandwidth: 500Mbps
    location: London
    region: uk-south
    service_key: 6A1F0000-0000-4000-8000-0000000000AB
    legacy: true
    peerings:
      private: {vlan: 10, peer_asn: 4200000001, ipv6: ["2001:db8:200::/126", "2001:db8:200::8/126"], enabled: false}
      public:  {vlan: 20, peer_asn: 65020, ipv4: [192.0.2.0/30, 192.0.2.8/30]}
  contoso-new:
    bandwidth: 50
    provisioning_state: Provisioning
route_filters:
  m365: {rules: [{access: allow, communities: ["12076:5010", "12076:51002"]}]}
vnets:
  hub: {address_space: [10.100.0.0/16], custom_community: "12076:20001",
        connections: [{circuit: contoso-ams, weight: 0}],
        user_routes: [{prefix: 10.200.0.0/16, next_hop_type: VirtualAppliance, next_hop_ip: 10.100.1.4}],
        gateway_route_propagation: true}
  spoke:
    address_space: [10.101.0.0/16, "fd00:101::/48"]
    region: north-europe
    gateway_route_propagation: false
    user_routes: [{prefix: 0.0.0.0/0, next_hop_type: Internet}]
    connections: [{circuit: contoso-ams, weight: 100}, {circuit: contoso-lon}]
"""


def base() -> dict[str, Any]:
    """A small valid model; each test breaks one thing in it."""
    return {
        "circuits": {
            "contoso-ams": {
                "sku": "standard",
                "bandwidth": "1Gbps",
                "peerings": {
                    "private": {"vlan": 100, "peer_asn": 65010, "ipv4": "192.168.100.128/29"},
                    "microsoft": {
                        "vlan": 200,
                        "peer_asn": 394000,
                        "ipv4": "198.51.100.0/29",
                        "advertised_prefixes": ["203.0.113.0/28"],
                        "route_filter": "arm",
                    },
                },
            }
        },
        "route_filters": {"arm": {"rules": [{"access": "allow", "communities": ["12076:5070"]}]}},
        "vnets": {"hub": {"address_space": ["10.100.0.0/16"], "connections": [{"circuit": "contoso-ams"}]}},
    }


def circuit(data: dict[str, Any], name: str = "contoso-ams") -> dict[str, Any]:
    result: dict[str, Any] = data["circuits"][name]
    return result


def private(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = circuit(data)["peerings"]["private"]
    return result


def microsoft(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = circuit(data)["peerings"]["microsoft"]
    return result


def hub(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = data["vnets"]["hub"]
    return result


def refused(data: dict[str, Any], field: str, words: str) -> ModelError:
    with pytest.raises(ModelError) as info:
        Model.from_data(data)
    assert info.value.field == field, info.value
    assert words in info.value.message, info.value
    return info.value


# ---------------------------------------------------------------- the whole model


def test_full_example_builds_and_round_trips() -> None:
    model = Model.from_data(yaml.safe_load(FULL_EXAMPLE))
    ams = model.circuits["contoso-ams"]
    assert (ams.sku, ams.bandwidth_mbps, ams.location, ams.region, ams.outer_vlan) == (
        "standard",
        1000,
        "Amsterdam",
        "west-europe",
        30,
    )
    assert ams.provisioning_state == "Provisioned" and not ams.legacy and ams.microsoft365_authorized
    assert list(ams.peerings) == [PeeringType.PRIVATE, PeeringType.MICROSOFT]
    ms = ams.peering(PeeringType.MICROSOFT)
    assert ms is not None
    assert ms.advertised_prefixes == (ipaddress.ip_network("203.0.113.0/28"),)
    assert (ms.route_filter, ms.customer_asn, ms.advertised_prefixes_state) == ("m365", 394001, "Configured")
    assert model.route_filters["m365"] == RouteFilter("m365", (parse_community("12076:5010"), (12076 << 16) | 51002))
    lon = model.circuits["contoso-lon"]
    assert lon.service_key == "6a1f0000-0000-4000-8000-0000000000ab"
    lon_private = lon.peering(PeeringType.PRIVATE)
    assert lon_private is not None and not lon_private.enabled and lon_private.ipv4 is None
    assert model.circuits["contoso-new"].peerings == {}
    assert model.circuits["contoso-new"].bandwidth_mbps == 50
    assert model.vnets["hub"] == VNet(
        "hub",
        (ipaddress.ip_network("10.100.0.0/16"),),
        custom_community=(12076 << 16) | 20001,
        user_routes=(UserRoute(ipaddress.ip_network("10.200.0.0/16"), "VirtualAppliance", "10.100.1.4"),),
        connections=(Connection("contoso-ams", 0),),
    )
    assert [v.name for v in model.connected_vnets("contoso-ams")] == ["hub", "spoke"]
    assert [v.name for v in model.connected_vnets("contoso-lon")] == ["spoke"]
    assert model.connected_vnets("contoso-new") == ()

    data = model.to_data()
    assert Model.from_data(data) == model
    assert Model.from_data(yaml.safe_load(yaml.safe_dump(data))) == model
    assert Model.from_data(data).to_data() == data


def test_empty_model_is_valid() -> None:
    assert Model.from_data({}) == Model({}, {}, {})


def test_model_error_names_field_then_message() -> None:
    error = ModelError("circuits.x.sku", "bad")
    assert (str(error), error.field, error.message) == ("circuits.x.sku: bad", "circuits.x.sku", "bad")
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (lambda d: d, "colour"),
        (circuit, f"{CIRCUIT}.colour"),
        (private, f"{PRIVATE}.colour"),
        (lambda d: d["route_filters"]["arm"], "route_filters.arm.colour"),
        (lambda d: d["route_filters"]["arm"]["rules"][0], "route_filters.arm.rules[0].colour"),
        (hub, f"{HUB}.colour"),
        (lambda d: hub(d)["connections"][0], f"{HUB}.connections[0].colour"),
    ],
)
def test_unknown_keys_are_refused(where: Any, field: str) -> None:
    data = base()
    where(data)["colour"] = "blue"
    refused(data, field, "unknown key 'colour'; allowed: ")


def test_sections_must_be_mappings() -> None:
    refused({"circuits": ["contoso-ams"]}, "circuits", "expected a mapping")


# ---------------------------------------------------------------- circuits


def test_sku_must_be_standard_premium_or_local() -> None:
    data = base()
    circuit(data)["sku"] = "basic"
    refused(data, f"{CIRCUIT}.sku", "use one of standard, premium, local")


def test_bandwidth_is_required() -> None:
    data = base()
    del circuit(data)["bandwidth"]
    refused(data, f"{CIRCUIT}.bandwidth", "required")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (1500, "1500Mbps is not an ExpressRoute bandwidth; use one of 50Mbps, 100Mbps, 200Mbps, 500Mbps, 1Gbps"),
        ("3Gbps", "3Gbps is not an ExpressRoute bandwidth"),
        ("fast", "write it like 1Gbps, 500Mbps or 1000 (Mbps)"),
        (True, "is not a bandwidth"),
    ],
)
def test_bandwidth_must_be_an_expressroute_bandwidth(value: Any, words: str) -> None:
    data = base()
    circuit(data)["bandwidth"] = value
    refused(data, f"{CIRCUIT}.bandwidth", words)


@pytest.mark.parametrize(
    ("value", "mbps"), [("1Gbps", 1000), ("500Mbps", 500), ("10 gbps", 10000), (200, 200), ("100Gbps", 100000)]
)
def test_bandwidth_is_written_in_gbps_mbps_or_integer_mbps(value: Any, mbps: int) -> None:
    data = base()
    circuit(data)["bandwidth"] = value
    assert Model.from_data(data).circuits["contoso-ams"].bandwidth_mbps == mbps


@pytest.mark.parametrize("mbps", BANDWIDTHS_MBPS)
def test_every_expressroute_bandwidth_is_accepted(mbps: int) -> None:
    data = base()
    circuit(data)["bandwidth"] = mbps
    assert Model.from_data(data).circuits["contoso-ams"].bandwidth_mbps == mbps


def test_provisioning_state_must_be_known() -> None:
    data = base()
    circuit(data)["provisioning_state"] = "Done"
    refused(data, f"{CIRCUIT}.provisioning_state", "use one of NotProvisioned, Provisioning, Provisioned")


@pytest.mark.parametrize("state", ["NotProvisioned", "Provisioning"])
def test_peerings_only_when_provisioned(state: str) -> None:
    data = base()
    circuit(data)["provisioning_state"] = state
    refused(data, f"{CIRCUIT}.peerings", f"(provisioning_state {state}); peerings can be configured only once")


def test_service_key_defaults_to_a_uuid_derived_from_the_name() -> None:
    first = Model.from_data(base()).circuits["contoso-ams"].service_key
    assert first == Model.from_data(base()).circuits["contoso-ams"].service_key
    assert uuid.UUID(first).version == 5
    data = base()
    data["circuits"]["contoso-par"] = data["circuits"].pop("contoso-ams")
    data["vnets"] = {}
    assert Model.from_data(data).circuits["contoso-par"].service_key != first


def test_service_key_must_be_a_uuid() -> None:
    data = base()
    circuit(data)["service_key"] = "not-a-key"
    refused(data, f"{CIRCUIT}.service_key", "'not-a-key' is not a UUID")


@pytest.mark.parametrize("where", ["circuit", "vnet"])
def test_region_must_be_in_the_services_catalogue(where: str) -> None:
    data = base()
    (circuit(data) if where == "circuit" else hub(data))["region"] = "westeurope"
    field = f"{CIRCUIT}.region" if where == "circuit" else f"{HUB}.region"
    refused(
        data, field, "unknown Azure region 'westeurope'; use a region key of the services catalogue, e.g. west-europe"
    )


@pytest.mark.parametrize("value", [0, 4095, "30"])
def test_outer_vlan_1_to_4094(value: Any) -> None:
    data = base()
    circuit(data)["outer_vlan"] = value
    refused(data, f"{CIRCUIT}.outer_vlan", "an s-tag is")


@pytest.mark.parametrize("key", ["legacy", "microsoft365_authorized"])
def test_circuit_flags_are_booleans(key: str) -> None:
    data = base()
    circuit(data)[key] = "yes"
    refused(data, f"{CIRCUIT}.{key}", "expected true or false")


@pytest.mark.parametrize(
    ("sku", "bandwidth", "links"),
    [
        ("standard", "10Gbps", 10),
        ("local", "1Gbps", 10),
        ("premium", "50Mbps", 20),
        ("premium", "100Mbps", 25),
        ("premium", "200Mbps", 40),
        ("premium", "500Mbps", 40),
        ("premium", "1Gbps", 50),
        ("premium", "2Gbps", 60),
        ("premium", "5Gbps", 75),
        ("premium", "10Gbps", 100),
        ("premium", "40Gbps", 100),
        ("premium", "100Gbps", 100),
    ],
)
def test_vnet_link_limit_by_sku_and_bandwidth(sku: str, bandwidth: str, links: int) -> None:
    data = base()
    circuit(data).update(sku=sku, bandwidth=bandwidth)
    data["vnets"] = {
        f"v{n}": {"address_space": [f"10.{n}.0.0/16"], "connections": [{"circuit": "contoso-ams"}]}
        for n in range(links + 1)
    }
    refused(data, f"vnets.v{links}.connections[0].circuit", f"already has {links} VNet links, the most a {sku}")
    del data["vnets"][f"v{links}"]
    assert Model.from_data(data).circuits["contoso-ams"].max_vnet_links == links


@pytest.mark.parametrize(
    ("sku", "kind", "version", "limit"),
    [
        ("standard", PeeringType.PRIVATE, 4, 4000),
        ("local", PeeringType.PRIVATE, 4, 4000),
        ("premium", PeeringType.PRIVATE, 4, 10000),
        ("premium", PeeringType.PRIVATE, 6, 100),
        ("standard", PeeringType.PRIVATE, 6, 100),
        ("standard", PeeringType.MICROSOFT, 4, 200),
        ("premium", PeeringType.MICROSOFT, 6, 200),
        ("standard", PeeringType.PUBLIC, 4, 200),
        ("standard", PeeringType.PUBLIC, 6, 0),
    ],
)
def test_prefix_limits_per_peering_and_family(sku: str, kind: PeeringType, version: int, limit: int) -> None:
    data = base()
    circuit(data)["sku"] = sku
    assert Model.from_data(data).circuits["contoso-ams"].prefix_limit(kind, version) == limit


# ---------------------------------------------------------------- peerings


def test_peering_type_must_be_private_microsoft_or_public() -> None:
    data = base()
    circuit(data)["peerings"]["global-reach"] = {"vlan": 300, "peer_asn": 65010, "ipv4": "192.168.1.0/29"}
    refused(data, f"{CIRCUIT}.peerings.global-reach", "allowed: private, microsoft, public")


def test_public_peering_only_on_legacy_circuits() -> None:
    data = base()
    circuit(data)["peerings"]["public"] = {"vlan": 300, "peer_asn": 65010, "ipv4": "192.0.2.0/29"}
    refused(data, f"{CIRCUIT}.peerings.public", "retired on 2024-03-31; use microsoft peering, or set legacy: true")
    circuit(data)["legacy"] = True
    public = Model.from_data(data).circuits["contoso-ams"].peering(PeeringType.PUBLIC)
    assert public is not None and public.advertised_prefixes_state == "NotConfigured"


def test_public_peering_carries_ipv4_only() -> None:
    data = base()
    circuit(data)["legacy"] = True
    circuit(data)["peerings"]["public"] = {"vlan": 300, "peer_asn": 65010, "ipv6": "2001:db8::/125"}
    refused(data, f"{CIRCUIT}.peerings.public.ipv6", "IPv4 only")


@pytest.mark.parametrize("key", ["vlan", "peer_asn"])
def test_vlan_and_peer_asn_are_required(key: str) -> None:
    data = base()
    del private(data)[key]
    refused(data, f"{PRIVATE}.{key}", "required")


@pytest.mark.parametrize(
    ("value", "words"), [(0, "0 is out of range"), (4095, "4095 is out of range"), ("100", "not a number")]
)
def test_vlan_1_to_4094(value: Any, words: str) -> None:
    data = base()
    private(data)["vlan"] = value
    assert refused(data, f"{PRIVATE}.vlan", words).message.endswith("1..4094")


def test_vlan_distinct_across_peerings() -> None:
    data = base()
    microsoft(data)["vlan"] = 100
    refused(data, f"{MICROSOFT}.vlan", "VLAN 100 is already the private peering's")


def test_peering_enabled_is_a_boolean() -> None:
    data = base()
    private(data)["enabled"] = "no"
    refused(data, f"{PRIVATE}.enabled", "expected true or false")


# ---------------------------------------------------------------- peering subnets


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("192.168.100.128/30", f"{PRIVATE}.ipv4", "is a /30; expected one /29 or a list of two /30s"),
        (["192.168.100.128/30"], f"{PRIVATE}.ipv4", "expected one /29 or a list of two /30s"),
        (["192.168.100.128/30"] * 3, f"{PRIVATE}.ipv4", "expected one /29 or a list of two /30s"),
        (["192.168.100.128/29", "192.168.100.136/29"], f"{PRIVATE}.ipv4[0]", "is a /29"),
        ("2001:db8::/125", f"{PRIVATE}.ipv4", "is not an IPv4 prefix"),
        (29, f"{PRIVATE}.ipv4", "expected one /29"),
    ],
)
def test_ipv4_one_slash29_or_two_slash30s(value: Any, field: str, words: str) -> None:
    data = base()
    private(data)["ipv4"] = value
    refused(data, field, words)


def test_ipv4_slash30s_must_not_overlap() -> None:
    data = base()
    private(data)["ipv4"] = ["192.168.100.128/30", "192.168.100.128/30"]
    refused(data, f"{PRIVATE}.ipv4[1]", "overlaps the primary 192.168.100.128/30; each link needs its own /30")


@pytest.mark.parametrize(
    ("value", "field", "words"),
    [
        ("2001:db8::/126", f"{PRIVATE}.ipv6", "is a /126; expected one /125 or a list of two /126s"),
        (["2001:db8::/126", "2001:db8::/126"], f"{PRIVATE}.ipv6[1]", "each link needs its own /126"),
        (["2001:db8::/126", "2001:db8::8/125"], f"{PRIVATE}.ipv6[1]", "is a /125"),
        ("192.168.1.0/29", f"{PRIVATE}.ipv6", "is not an IPv6 prefix"),
    ],
)
def test_ipv6_one_slash125_or_two_slash126s(value: Any, field: str, words: str) -> None:
    data = base()
    private(data)["ipv6"] = value
    refused(data, field, words)


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("192.168.100.129/29", f"{PRIVATE}.ipv4"),
        (["192.168.100.128/30", "192.168.100.133/30"], f"{PRIVATE}.ipv4[1]"),
    ],
)
def test_subnet_with_host_bits_is_refused(value: Any, field: str) -> None:
    data = base()
    private(data)["ipv4"] = value
    refused(data, field, "has host bits set; the network is 192.168.100.")


def test_not_a_prefix_is_refused() -> None:
    data = base()
    private(data)["ipv4"] = "192.168.100/29"
    refused(data, f"{PRIVATE}.ipv4", "is not an IP prefix")


def test_peering_needs_ipv4_or_ipv6() -> None:
    data = base()
    del private(data)["ipv4"]
    refused(data, PRIVATE, "a peering needs ipv4 (one /29 or two /30s), ipv6 (one /125 or two /126s), or both")


def test_link_addresses_customer_first_usable_msee_second() -> None:
    data = base()
    private(data)["ipv6"] = ["2001:db8:1::/126", "2001:db8:2::/126"]
    peering = Model.from_data(data).circuits["contoso-ams"].peering(PeeringType.PRIVATE)
    assert peering is not None
    assert peering.ipv4 == (ipaddress.ip_network("192.168.100.128/30"), ipaddress.ip_network("192.168.100.132/30"))
    found = {
        (side, version): (str(link.customer), str(link.msee))
        for side in Side
        for version in (4, 6)
        if (link := peering.link(side, version)) is not None
    }
    assert found == {
        (Side.PRIMARY, 4): ("192.168.100.129/30", "192.168.100.130/30"),
        (Side.SECONDARY, 4): ("192.168.100.133/30", "192.168.100.134/30"),
        (Side.PRIMARY, 6): ("2001:db8:1::1/126", "2001:db8:1::2/126"),
        (Side.SECONDARY, 6): ("2001:db8:2::1/126", "2001:db8:2::2/126"),
    }
    ms = Model.from_data(base()).circuits["contoso-ams"].peering(PeeringType.MICROSOFT)
    assert ms is not None and ms.link(Side.PRIMARY, 6) is None
    with pytest.raises(ValueError, match="expected 4 or 6"):
        ms.link(Side.PRIMARY, 5)


@pytest.mark.parametrize(
    ("family", "subnet", "reserved"),
    [
        ("ipv4", "10.1.0.0/29", "10.0.0.0/8"),
        ("ipv4", "172.20.0.0/29", "172.16.0.0/12"),
        ("ipv4", "192.168.1.0/29", "192.168.0.0/16"),
        ("ipv4", "100.64.0.0/29", "100.64.0.0/10"),
        ("ipv4", "127.0.0.0/29", "127.0.0.0/8"),
        ("ipv4", "169.254.1.0/29", "169.254.0.0/16"),
        ("ipv4", "0.0.0.0/29", "0.0.0.0/8"),
        ("ipv4", "224.0.0.0/29", "224.0.0.0/4"),
        ("ipv6", "fd00::/125", "fc00::/7"),
        ("ipv6", "fe80::/125", "fe80::/10"),
        ("ipv6", "::/125", "::1/128"),
        ("ipv6", "ff02::/125", "ff00::/8"),
    ],
)
def test_microsoft_peering_subnets_must_be_public(family: str, subnet: str, reserved: str) -> None:
    data = base()
    microsoft(data)[family] = subnet
    refused(data, f"{MICROSOFT}.{family}", f"is not public: it overlaps {reserved}")


def test_public_peering_subnets_must_be_public() -> None:
    data = base()
    circuit(data)["legacy"] = True
    circuit(data)["peerings"]["public"] = {"vlan": 300, "peer_asn": 65010, "ipv4": "10.0.0.0/29"}
    refused(data, f"{CIRCUIT}.peerings.public.ipv4", "public peering needs public addresses you own")


@pytest.mark.parametrize(
    ("ipv4", "ipv6", "advertised"),
    [
        ("192.0.2.0/29", "2001:db8::/125", "198.51.100.0/24"),
        ("198.51.100.0/29", "2001:db8:1::/125", "2001:db8:ffff::/48"),
        ("203.0.113.0/29", None, "203.0.113.0/24"),
    ],
)
def test_documentation_ranges_count_as_public(ipv4: str, ipv6: str | None, advertised: str) -> None:
    data = base()
    microsoft(data).update(ipv4=ipv4, ipv6=ipv6, advertised_prefixes=[advertised])
    peering = Model.from_data(data).circuits["contoso-ams"].peering(PeeringType.MICROSOFT)
    assert peering is not None and peering.advertised_prefixes == (ipaddress.ip_network(advertised),)


def test_private_peering_subnets_may_be_private_or_public() -> None:
    data = base()
    private(data)["ipv4"] = "203.0.113.0/29"
    Model.from_data(data)
    private(data)["ipv4"] = "10.0.0.0/29"
    Model.from_data(data)


@pytest.mark.parametrize(
    ("family", "subnet", "space"),
    [("ipv4", "10.100.5.0/29", "10.100.0.0/16"), ("ipv6", "fd00:1::/125", "fd00::/16")],
)
def test_private_peering_subnet_must_not_overlap_a_connected_vnet(family: str, subnet: str, space: str) -> None:
    data = base()
    private(data)[family] = subnet
    hub(data)["address_space"] = ["10.100.0.0/16", "fd00::/16"]
    refused(data, f"{PRIVATE}.{family}", f"overlaps {space}, address space of VNet hub connected to this circuit")
    hub(data)["connections"] = []
    Model.from_data(data)


# ---------------------------------------------------------------- ASNs


@pytest.mark.parametrize(
    ("asn", "words"), [(-1, "-1 is out of range"), (2**32, "is out of range"), ("65010", "not a number")]
)
def test_peer_asn_1_to_4294967295(asn: Any, words: str) -> None:
    data = base()
    private(data)["peer_asn"] = asn
    refused(data, f"{PRIVATE}.peer_asn", words)


@pytest.mark.parametrize("asn", [1, 65010, 4294967295])
def test_peer_asn_accepts_two_and_four_byte_asns(asn: int) -> None:
    data = base()
    private(data)["peer_asn"] = asn
    assert Model.from_data(data).circuits["contoso-ams"].peerings[PeeringType.PRIVATE].peer_asn == asn


def test_peer_asn_0_is_refused() -> None:
    data = base()
    private(data)["peer_asn"] = 0
    refused(data, f"{PRIVATE}.peer_asn", "AS 0 is reserved (RFC 7607)")


def test_peer_asn_as_trans_is_refused() -> None:
    data = base()
    private(data)["peer_asn"] = 23456
    refused(data, f"{PRIVATE}.peer_asn", "AS 23456 is AS_TRANS")


@pytest.mark.parametrize("asn", [12076, 8074, 8075])
@pytest.mark.parametrize("peering", [private, microsoft])
def test_peer_asn_of_microsoft_is_refused(asn: int, peering: Any) -> None:
    data = base()
    peering(data)["peer_asn"] = asn
    field = PRIVATE if peering is private else MICROSOFT
    refused(data, f"{field}.peer_asn", f"AS {asn} is Microsoft's")


@pytest.mark.parametrize("asn", [65515, 65517, 65520])
@pytest.mark.parametrize("peering", [private, microsoft])
def test_peer_asn_65515_to_65520_is_refused(asn: int, peering: Any) -> None:
    data = base()
    peering(data)["peer_asn"] = asn
    field = PRIVATE if peering is private else MICROSOFT
    refused(
        data, f"{field}.peer_asn", f"AS {asn} is reserved by Azure (65515-65520); use another private or public ASN"
    )


@pytest.mark.parametrize("asn", [64496, 64511])
def test_peer_asn_documentation_range_is_refused_on_microsoft_peering(asn: int) -> None:
    data = base()
    microsoft(data)["peer_asn"] = asn
    refused(data, f"{MICROSOFT}.peer_asn", "documentation range 64496-64511, which may not appear in the path")
    microsoft(data)["peer_asn"] = 394000
    private(data)["peer_asn"] = asn
    Model.from_data(data)


@pytest.mark.parametrize(
    ("asn", "validated", "state"),
    [(394000, False, "Configured"), (65010, False, "ValidationNeeded"), (4200000000, False, "ValidationNeeded"),
     (65010, True, "Configured")],
)  # fmt: skip
def test_private_peer_asn_on_microsoft_peering_needs_validation(asn: int, validated: bool, state: str) -> None:
    data = base()
    microsoft(data).update(peer_asn=asn, validated=validated)
    model = Model.from_data(data).circuits["contoso-ams"]
    assert model.peerings[PeeringType.MICROSOFT].advertised_prefixes_state == state
    assert model.peerings[PeeringType.PRIVATE].advertised_prefixes_state == "NotConfigured"


@pytest.mark.parametrize(("asn", "words"), [(65516, "reserved by Azure"), (64500, "documentation range"), (0, "AS 0")])
def test_customer_asn_has_the_peer_asn_checks(asn: int, words: str) -> None:
    data = base()
    microsoft(data)["customer_asn"] = asn
    refused(data, f"{MICROSOFT}.customer_asn", words)


@pytest.mark.parametrize(("key", "value"), [("customer_asn", 394001), ("validated", True), ("route_filter", "arm")])
def test_customer_asn_validated_and_route_filter_only_on_microsoft_peering(key: str, value: Any) -> None:
    data = base()
    private(data)[key] = value
    refused(data, f"{PRIVATE}.{key}", f"only Microsoft peering has a {key}, not private peering")


# ---------------------------------------------------------------- MD5


@pytest.mark.parametrize("key", ["", "a" * 26, "abc-123", "pass word", "clé", 12345])
def test_md5_1_to_25_letters_and_digits(key: Any) -> None:
    data = base()
    private(data)["md5"] = key
    refused(data, f"{PRIVATE}.md5", "1 to 25 characters, letters and digits only")


def test_md5_of_25_letters_and_digits_is_accepted() -> None:
    data = base()
    private(data)["md5"] = "A1" * 12 + "z"
    assert Model.from_data(data).circuits["contoso-ams"].peerings[PeeringType.PRIVATE].md5 == "A1" * 12 + "z"


# ---------------------------------------------------------------- advertised prefixes


def test_advertised_prefixes_only_on_microsoft_or_public_peering() -> None:
    data = base()
    private(data)["advertised_prefixes"] = ["203.0.113.0/24"]
    refused(data, f"{PRIVATE}.advertised_prefixes", "only Microsoft and public peering have advertised prefixes")


@pytest.mark.parametrize(
    ("prefix", "words"),
    [
        ("0.0.0.0/0", "0.0.0.0/0 is a default route"),
        ("::/0", "::/0 is a default route"),
        ("10.0.0.0/8", "overlaps 10.0.0.0/8 (private, RFC 1918)"),
        ("0.0.0.0/1", "overlaps 0.0.0.0/8"),
        ("fd12::/48", "overlaps fc00::/7"),
        ("203.0.113.1/24", "has host bits set"),
        ("203.0.113.0", "expected a prefix with its length"),
    ],
)
def test_advertised_prefixes_must_be_public_networks(prefix: str, words: str) -> None:
    data = base()
    microsoft(data)["advertised_prefixes"] = ["198.51.100.0/24", prefix]
    refused(data, f"{MICROSOFT}.advertised_prefixes[1]", words)


@pytest.mark.parametrize("prefixes", [[], None])
def test_microsoft_peering_needs_advertised_prefixes(prefixes: Any) -> None:
    data = base()
    if prefixes is None:
        del microsoft(data)["advertised_prefixes"]
    else:
        microsoft(data)["advertised_prefixes"] = prefixes
    refused(data, f"{MICROSOFT}.advertised_prefixes", "without one Microsoft accepts nothing from you")


# ---------------------------------------------------------------- route filters


def test_route_filter_must_be_defined() -> None:
    data = base()
    microsoft(data)["route_filter"] = "m365"
    refused(data, f"{MICROSOFT}.route_filter", "no route filter named 'm365' in route_filters (defined: arm)")


@pytest.mark.parametrize("rules", [[], None, [{"communities": ["12076:5070"]}] * 2])
def test_route_filter_has_exactly_one_rule(rules: Any) -> None:
    data = base()
    data["route_filters"]["arm"]["rules"] = rules
    refused(data, "route_filters.arm.rules", "exactly one rule")


def test_route_filter_rule_must_allow() -> None:
    data = base()
    data["route_filters"]["arm"]["rules"][0]["access"] = "deny"
    refused(data, "route_filters.arm.rules[0].access", "Azure does not support deny rules")


def test_route_filter_rule_access_defaults_to_allow() -> None:
    data = base()
    del data["route_filters"]["arm"]["rules"][0]["access"]
    assert Model.from_data(data).route_filters["arm"].communities == (parse_community("12076:5070"),)


@pytest.mark.parametrize("communities", [[], None])
def test_route_filter_needs_communities(communities: Any) -> None:
    data = base()
    rule = data["route_filters"]["arm"]["rules"][0]
    if communities is None:
        del rule["communities"]
    else:
        rule["communities"] = communities
    refused(data, "route_filters.arm.rules[0].communities", "list at least one community")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("12076", "quoted 'ASN:value' string"),
        (3900010, "quoted 'ASN:value' string"),
        ("70000:5010", "both halves 0..65535"),
        ("12076:70000", "both halves 0..65535"),
        ("a:b", "both halves 0..65535"),
    ],
)
def test_route_filter_communities_are_asn_colon_value(value: Any, words: str) -> None:
    data = base()
    data["route_filters"]["arm"]["rules"][0]["communities"] = ["12076:5070", value]
    refused(data, "route_filters.arm.rules[0].communities[1]", words)


@pytest.mark.parametrize("value", ["12076:9999", "12076:50002", "65000:100"])
def test_route_filter_communities_must_be_in_the_catalogue(value: str) -> None:
    data = base()
    data["route_filters"]["arm"]["rules"][0]["communities"] = [value]
    error = refused(data, "route_filters.arm.rules[0].communities[0]", "regional community (12076:51xxx)")
    assert "e.g. 12076:5010 (Exchange Online)" in error.message


@pytest.mark.parametrize("value", ["12076:5010", "12076:5020", "12076:5030", "12076:5100"])
def test_microsoft365_route_filter_needs_authorized_circuit(value: str) -> None:
    data = base()
    data["route_filters"]["arm"]["rules"][0]["communities"] = ["12076:5070", value]
    refused(data, f"{MICROSOFT}.route_filter", f"allows Microsoft 365 communities ({value}); attaching it fails")
    circuit(data)["microsoft365_authorized"] = True
    assert Model.from_data(data).circuits["contoso-ams"].microsoft365_authorized


def test_unattached_microsoft365_route_filter_is_allowed() -> None:
    data = base()
    data["route_filters"]["m365"] = {"rules": [{"access": "allow", "communities": ["12076:5010"]}]}
    assert "m365" in Model.from_data(data).route_filters


# ---------------------------------------------------------------- VNets


@pytest.mark.parametrize("space", [[], None])
def test_vnet_address_space_is_not_empty(space: Any) -> None:
    data = base()
    if space is None:
        del hub(data)["address_space"]
    else:
        hub(data)["address_space"] = space
    refused(data, f"{HUB}.address_space", "a VNet needs at least one address range")


@pytest.mark.parametrize(("value", "words"), [("10.100.0.1/16", "host bits"), ("10.100.0.0/33", "not an IP prefix")])
def test_vnet_address_space_is_valid_networks(value: str, words: str) -> None:
    data = base()
    hub(data)["address_space"] = ["10.99.0.0/16", value]
    refused(data, f"{HUB}.address_space[1]", words)


def test_vnet_address_space_must_not_overlap_itself() -> None:
    data = base()
    hub(data)["address_space"] = ["10.100.0.0/16", "10.100.8.0/24"]
    refused(data, f"{HUB}.address_space[1]", "10.100.8.0/24 overlaps 10.100.0.0/16, already in this VNet")


def test_vnets_on_one_circuit_must_not_overlap() -> None:
    data = base()
    data["vnets"]["spoke"] = {
        "address_space": ["10.200.0.0/16", "10.100.1.0/24"],
        "connections": [{"circuit": "contoso-ams"}],
    }
    refused(data, "vnets.spoke.address_space[1]", "overlaps 10.100.0.0/16 of VNet hub, also connected to circuit")
    data["vnets"]["spoke"]["connections"] = []
    Model.from_data(data)


@pytest.mark.parametrize("value", ["65000:20001", "12076", "12076:70000", 20001])
def test_custom_community_is_12076_colon_value(value: Any) -> None:
    data = base()
    hub(data)["custom_community"] = value
    refused(data, f"{HUB}.custom_community", "custom VNet communities are written 12076:<value>")


def test_user_route_next_hop_type_is_one_of_azures() -> None:
    data = base()
    hub(data)["user_routes"] = [{"prefix": "0.0.0.0/0", "next_hop_type": "Gateway"}]
    refused(data, f"{HUB}.user_routes[0].next_hop_type", "use one of VirtualAppliance, VirtualNetworkGateway, Internet")


def test_a_user_route_to_the_expressroute_gateway_is_refused_as_azure_does() -> None:
    data = base()
    hub(data)["user_routes"] = [{"prefix": "10.30.0.0/16", "next_hop_type": "VirtualNetworkGateway"}]
    refused(data, f"{HUB}.user_routes[0].next_hop_type",
            "Azure refuses a user-defined route to an ExpressRoute gateway")


@pytest.mark.parametrize(
    ("route", "words"),
    [
        ({"prefix": "0.0.0.0/0", "next_hop_type": "VirtualAppliance"}, "required with VirtualAppliance"),
        (
            {"prefix": "0.0.0.0/0", "next_hop_type": "Internet", "next_hop_ip": "10.100.1.4"},
            "only VirtualAppliance has one, not Internet",
        ),
    ],
)
def test_next_hop_ip_if_and_only_if_virtual_appliance(route: dict[str, str], words: str) -> None:
    data = base()
    hub(data)["user_routes"] = [route]
    refused(data, f"{HUB}.user_routes[0].next_hop_ip", words)


@pytest.mark.parametrize(
    ("address", "words"),
    [("10.101.0.4", "outside the VNet's address space (10.100.0.0/16)"), ("fd00::4", "outside"), ("nva", "not an IP")],
)
def test_next_hop_ip_is_an_address_inside_the_vnet(address: str, words: str) -> None:
    data = base()
    hub(data)["user_routes"] = [{"prefix": "0.0.0.0/0", "next_hop_type": "VirtualAppliance", "next_hop_ip": address}]
    refused(data, f"{HUB}.user_routes[0].next_hop_ip", words)


def test_user_route_prefix_is_required_and_valid() -> None:
    data = base()
    hub(data)["user_routes"] = [{"next_hop_type": "Internet"}]
    refused(data, f"{HUB}.user_routes[0].prefix", "required")
    hub(data)["user_routes"] = [{"prefix": "10.0.0.1/8", "next_hop_type": "Internet"}]
    refused(data, f"{HUB}.user_routes[0].prefix", "host bits")


def test_gateway_route_propagation_is_a_boolean() -> None:
    data = base()
    hub(data)["gateway_route_propagation"] = "off"
    refused(data, f"{HUB}.gateway_route_propagation", "expected true or false")


def test_connection_circuit_must_exist() -> None:
    data = base()
    hub(data)["connections"] = [{"circuit": "contoso-par"}]
    refused(data, f"{HUB}.connections[0].circuit", "no circuit named 'contoso-par' (defined: contoso-ams)")


def test_connection_circuit_needs_private_peering() -> None:
    data = base()
    del circuit(data)["peerings"]["private"]
    refused(data, f"{HUB}.connections[0].circuit", "circuit contoso-ams has no private peering")


@pytest.mark.parametrize("weight", [-1, 32001, "high"])
def test_connection_weight_0_to_32000(weight: Any) -> None:
    data = base()
    hub(data)["connections"] = [{"circuit": "contoso-ams", "weight": weight}]
    refused(data, f"{HUB}.connections[0].weight", "a routing weight is")


def test_vnet_connects_once_per_circuit() -> None:
    data = base()
    hub(data)["connections"] = [{"circuit": "contoso-ams"}, {"circuit": "contoso-ams", "weight": 10}]
    refused(data, f"{HUB}.connections[1].circuit", "already connected to circuit contoso-ams")
