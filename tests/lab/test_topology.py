"""Topology files: the expansion of `expressroute:` into a LabPlan, field by field, and every refusal
with its file, line, field and words. No root, no sockets: plans are plain data."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bgplab.expressroute.profile import PROFILES
from bgplab.expressroute.rules import MseeRules
from bgplab.lab.plan import Endpoint, LabPlan, Link, Namespace, plan_from_data, plan_to_data
from bgplab.lab.topology import TopologyError, load_topology, plan_from_text, topology_schema

HERE = Path(__file__).parent / "topologies"
CONNECT_TO = HERE / "connect-to.yaml"
MSEE1, MSEE2 = "contoso-ams-msee1", "contoso-ams-msee2"
RULES = dataclasses.asdict(MseeRules(drain_prepend=2))


def plan(text: str, base_dir: Path = HERE) -> LabPlan:
    return plan_from_text(textwrap.dedent(text), "lab.yaml", base_dir)


def refusal(text: str, base_dir: Path = HERE) -> TopologyError:
    with pytest.raises(TopologyError) as caught:
        plan(text, base_dir)
    return caught.value


@pytest.fixture(scope="module")
def lab() -> LabPlan:
    return load_topology(CONNECT_TO)


# ---------------------------------------------------------------- the connect-to lab, field by field


def test_lab_header(lab: LabPlan) -> None:
    assert (lab.name, lab.profile, lab.source) == ("contoso", "fast", str(CONNECT_TO))
    assert list(lab.nodes) == ["ce1", "ce2", "onprem", MSEE1, MSEE2, "hub-gw", "vm1", "azure-internet"]
    assert {n: (node.kind, node.namespaces) for n, node in lab.nodes.items()} == {
        "ce1": ("frr", ("ce1",)),
        "ce2": ("frr", ("ce2",)),
        "onprem": ("host", ("onprem",)),
        MSEE1: ("msee", (f"{MSEE1}.private", f"{MSEE1}.microsoft")),
        MSEE2: ("msee", (f"{MSEE2}.private", f"{MSEE2}.microsoft")),
        "hub-gw": ("gateway", ("hub-gw",)),
        "vm1": ("host", ("vm1",)),
        "azure-internet": ("host", ("azure-internet",)),
    }
    assert list(lab.namespaces) == [
        "ce1", "ce2", "onprem", f"{MSEE1}.private", f"{MSEE1}.microsoft", f"{MSEE2}.private",
        f"{MSEE2}.microsoft", "hub-gw", "vm1", "azure-internet",
    ]  # fmt: skip


def test_lab_namespaces(lab: LabPlan) -> None:
    # What the data plane of Microsoft peering adds (the CE's NAT, Microsoft's services and ACL) is
    # checked below, the rest here.
    ns = {key: dataclasses.replace(n, local=(), nft="") for key, n in lab.namespaces.items()}
    assert ns["ce1"] == Namespace(
        "ce1",
        "ce1",
        addresses=(
            ("lo", "10.1.0.1/32"),
            ("eth9", "10.1.1.1/24"),
            ("eth8", "10.0.12.1/30"),
            ("eth1.100", "192.168.100.129/30"),
            ("eth1.200", "198.51.100.1/30"),
        ),
        forwarding=True,
    )
    assert ns["ce2"] == Namespace(
        "ce2",
        "ce2",
        addresses=(("eth8", "10.0.12.2/30"), ("eth1.100", "192.168.100.133/30"), ("eth1.200", "198.51.100.5/30")),
        forwarding=True,
    )
    assert ns["onprem"] == Namespace(
        "onprem", "onprem", addresses=(("eth1", "10.1.1.10/24"),), routes=(("0.0.0.0/0", "10.1.1.1"),)
    )
    assert ns[f"{MSEE1}.private"] == Namespace(
        # toward the gateway: a /30 for each of its two instances, the same offset in each pool
        f"{MSEE1}.private", MSEE1, addresses=(("eth1.100", "192.168.100.130/30"), ("vnet1", "169.254.0.1/30"),
                                              ("vnet1", "169.254.128.1/30")),
        forwarding=True,
    )  # fmt: skip
    assert ns[f"{MSEE1}.microsoft"] == Namespace(
        f"{MSEE1}.microsoft", MSEE1, addresses=(("eth1.200", "198.51.100.2/30"),), forwarding=True
    )
    assert ns[f"{MSEE2}.private"] == Namespace(
        f"{MSEE2}.private", MSEE2, addresses=(("eth1.100", "192.168.100.134/30"), ("vnet1", "169.254.0.5/30"),
                                              ("vnet1", "169.254.128.5/30")),
        forwarding=True,
    )  # fmt: skip
    assert ns[f"{MSEE2}.microsoft"] == Namespace(
        f"{MSEE2}.microsoft", MSEE2, addresses=(("eth1.200", "198.51.100.6/30"),), forwarding=True
    )
    assert ns["hub-gw"] == Namespace(
        "hub-gw",
        "hub-gw",
        addresses=(
            ("m1", "169.254.0.2/30"),
            ("m1", "169.254.128.2/30"),
            ("m2", "169.254.0.6/30"),
            ("m2", "169.254.128.6/30"),
            ("vnet", "10.100.0.1/16"),
            ("inet", "192.0.2.2/30"),
        ),
        forwarding=True,
        bridges=(("vnet", ("h1",)),),
    )
    assert ns["vm1"] == Namespace(
        "vm1", "vm1", addresses=(("eth0", "10.100.1.10/16"),), routes=(("0.0.0.0/0", "10.100.0.1"),)
    )
    assert ns["azure-internet"] == Namespace(
        "azure-internet",
        "azure-internet",
        addresses=(("gw1", "192.0.2.1/30"),),
        routes=(("10.100.0.0/16", "192.0.2.2"),),
        forwarding=True,
    )


def test_lab_links(lab: LabPlan) -> None:
    def peering(ce: str, msee: str, name: str, vlan: int) -> Link:
        return Link(Endpoint(ce, f"eth1.{vlan}"), Endpoint(f"{msee}.{name}", f"eth1.{vlan}"), f"{ce}:eth1", vlan, 1000)

    assert lab.links == (
        peering("ce1", MSEE1, "private", 100),
        peering("ce1", MSEE1, "microsoft", 200),
        peering("ce2", MSEE2, "private", 100),
        peering("ce2", MSEE2, "microsoft", 200),
        Link(Endpoint(f"{MSEE1}.private", "vnet1"), Endpoint("hub-gw", "m1"), f"{MSEE1}:vnet1"),
        Link(Endpoint(f"{MSEE2}.private", "vnet1"), Endpoint("hub-gw", "m2"), f"{MSEE2}:vnet1"),
        Link(Endpoint("vm1", "eth0"), Endpoint("hub-gw", "h1"), "vm1:eth0"),
        Link(Endpoint("hub-gw", "inet"), Endpoint("azure-internet", "gw1"), "hub-gw:inet"),
        Link(Endpoint("ce1", "eth9"), Endpoint("onprem", "eth1"), "ce1:eth9"),
        Link(Endpoint("ce1", "eth8"), Endpoint("ce2", "eth8"), "ce1:eth8", rate_mbps=100),
    )


def test_lab_microsoft_peering_data_plane(lab: LabPlan) -> None:
    """Each generated CE NATs what leaves on Microsoft peering, but its own link address (its BGP
    session), to the NAT pool the peering advertises; each MSEE's Microsoft-peering namespace answers
    for the catalogue's service prefixes and admits only sources within that pool."""
    for ce, own in (("ce1", "198.51.100.1"), ("ce2", "198.51.100.5")):
        assert (f'oifname "eth1.200" ip saddr != {{ 203.0.113.0/28, {own} }} counter snat to 203.0.113.0-203.0.113.15;'
                in lab.namespaces[ce].nft.splitlines()[3])
    for msee in (MSEE1, MSEE2):
        services = lab.namespaces[f"{msee}.microsoft"]
        assert "198.18.0.0/21" in services.local and "2001:db8:f000::/45" in services.local
        ipv4 = [line for line in services.nft.splitlines() if line.strip().startswith("ip daddr")]
        assert ipv4 and ipv4[0].endswith("ip saddr != { 203.0.113.0/28 } drop;")
        assert lab.namespaces[f"{msee}.private"].nft == "" and lab.namespaces[f"{msee}.private"].local == ()
    assert lab.namespaces["onprem"].nft == ""


def msee_neighbor(address: str, local: str, md5: str | None, bfd: bool, prepend: int, peering: str,
                  export: list[str]) -> dict[str, Any]:
    return {
        "address": address, "asn": 12076, "md5": md5, "bfd": bfd, "prepend": prepend, "local_address": local,
        "families": ["ipv4"], "role": "msee", "circuit": "contoso-ams", "peering": peering, "export": export,
    }  # fmt: skip


def user_neighbor(address: str, bfd: bool) -> dict[str, Any]:
    return {
        "address": address, "asn": 65010, "md5": None, "bfd": bfd, "prepend": 0, "local_address": None,
        "families": ["ipv4"], "role": "user",
    }  # fmt: skip


def test_lab_ce_intents(lab: LabPlan) -> None:
    assert lab.nodes["ce1"].spec == {
        "intent": {
            "asn": 65010,  # the private peering's peer_asn
            "router_id": "10.1.0.1",  # the first IPv4 loopback
            # its own, then what its circuit's Microsoft peering advertises (its NAT pool)
            "announce": ["10.1.0.0/16", "203.0.113.0/28"],
            "announce_cover": [],
            "neighbors": [
                # each MSEE session carries out only what its peering is meant to: nothing transits
                msee_neighbor("192.168.100.130", "192.168.100.129", "S3cret", True, 0, "private", ["10.1.0.0/16"]),
                msee_neighbor("198.51.100.2", "198.51.100.1", None, True, 0, "microsoft", ["203.0.113.0/28"]),
                user_neighbor("10.0.12.2", False),
            ],
        }
    }
    assert lab.nodes["ce2"].spec == {
        "intent": {
            "asn": 65010,
            "router_id": "10.0.12.2",  # no loopback: the first IPv4 interface address
            "announce": ["10.1.0.0/16", "203.0.113.0/28"],
            "announce_cover": [],
            "neighbors": [
                msee_neighbor("192.168.100.134", "192.168.100.133", "S3cret", False, 2, "private", ["10.1.0.0/16"]),
                msee_neighbor("198.51.100.6", "198.51.100.5", None, False, 2, "microsoft", ["203.0.113.0/28"]),
                user_neighbor("10.0.12.1", True),
            ],
        }
    }
    for host in ("onprem", "vm1", "azure-internet"):
        assert lab.nodes[host].spec == {}


def test_lab_msee_and_gateway_specs(lab: LabPlan) -> None:
    for msee, side, gw, local in ((MSEE1, "primary", ".2", ".1"), (MSEE2, "secondary", ".6", ".5")):
        assert lab.nodes[msee].spec == {
            "kind": "msee",
            "name": msee,
            "profile": "fast",
            "circuit": "contoso-ams",
            "side": side,
            "rules": RULES,
            "peerings": {
                "private": {"netns": f"{msee}.private", "gateways": [  # one session per gateway instance
                    {"address": f"169.254.0{gw}", "local_address": f"169.254.0{local}"},
                    {"address": f"169.254.128{gw}", "local_address": f"169.254.128{local}"}]},
                "microsoft": {"netns": f"{msee}.microsoft"},
            },
        }
    assert lab.nodes["hub-gw"].spec == {
        "kind": "gateway",
        "name": "hub-gw",
        "profile": "fast",
        "vnet": "hub",
        "netns": "hub-gw",
        "internet": ["192.0.2.1"],
        "neighbors": [
            {"address": "169.254.0.1", "circuit": "contoso-ams", "side": "primary", "local_address": "169.254.0.2",
             "instance": 0},
            {"address": "169.254.128.1", "circuit": "contoso-ams", "side": "primary",
             "local_address": "169.254.128.2", "instance": 1},
            {"address": "169.254.0.5", "circuit": "contoso-ams", "side": "secondary", "local_address": "169.254.0.6",
             "instance": 0},
            {"address": "169.254.128.5", "circuit": "contoso-ams", "side": "secondary",
             "local_address": "169.254.128.6", "instance": 1},
        ],
    }


def test_lab_model_data_has_no_lab_only_keys(lab: LabPlan) -> None:
    assert lab.expressroute is not None
    assert set(lab.expressroute) == {"circuits", "route_filters", "vnets"}
    circuit = lab.expressroute["circuits"]["contoso-ams"]
    assert "edges" not in circuit and circuit["bandwidth"] == "1Gbps"
    assert circuit["peerings"]["private"] == {
        "vlan": 100, "peer_asn": 65010, "ipv4": ["192.168.100.128/30", "192.168.100.132/30"], "md5": "S3cret",
    }  # fmt: skip
    assert lab.expressroute["vnets"]["hub"] == {
        "address_space": ["10.100.0.0/16"],
        "connections": [{"circuit": "contoso-ams", "weight": 0}],
    }
    assert lab.expressroute["route_filters"] == {
        "exchange": {"rules": [{"access": "allow", "communities": ["12076:5010"]}]}
    }
    json.dumps(lab.expressroute)  # plain data for the node configs


def test_lab_every_address_once_every_interface_once(lab: LabPlan) -> None:
    addresses = [a.split("/")[0] for ns in lab.namespaces.values() for _, a in ns.addresses]
    assert len(addresses) == len(set(addresses))
    ends = [(e.namespace, e.interface) for link in lab.links for e in (link.a, link.b)]
    assert len(ends) == len(set(ends))
    assert all(e[0] in lab.namespaces for e in ends)
    assert all(len(e[1]) <= 15 for e in ends)


# ---------------------------------------------------------------- other shapes


def test_single_ce_on_both_links_gets_eth1_and_eth2() -> None:
    solo = load_topology(HERE / "single-ce.yaml")
    assert list(solo.nodes) == ["ce1", "solo-lon-msee1", "solo-lon-msee2"]
    assert solo.profile == "azure"
    assert solo.links == (
        Link(Endpoint("ce1", "eth1.300"), Endpoint("solo-lon-msee1.private", "eth1.300"), "ce1:eth1", 300, 200),
        Link(Endpoint("ce1", "eth2.300"), Endpoint("solo-lon-msee2.private", "eth1.300"), "ce1:eth2", 300, 200),
    )
    assert solo.namespaces["ce1"].addresses == (
        ("lo", "10.9.0.1/32"),
        ("eth1.300", "192.168.50.1/30"),
        ("eth1.300", "2001:db8:50::1/126"),
        ("eth2.300", "192.168.50.5/30"),
        ("eth2.300", "2001:db8:50::5/126"),
    )
    assert solo.namespaces["solo-lon-msee2.private"].addresses == (
        ("eth1.300", "192.168.50.6/30"),
        ("eth1.300", "2001:db8:50::6/126"),
    )
    # Its own config, by absolute path; no VNet, so no gateway and no internet edge.
    assert solo.nodes["ce1"].spec == {"config": str((HERE / "configs" / "ce1.conf").absolute())}
    assert solo.nodes["solo-lon-msee1"].spec["peerings"] == {
        "private": {"netns": "solo-lon-msee1.private", "gateways": []}
    }
    assert solo.nodes["solo-lon-msee1"].spec["rules"] == dataclasses.asdict(MseeRules())


def test_single_ce_intent_has_a_session_per_link_and_family() -> None:
    text = (HERE / "single-ce.yaml").read_text().replace("config: configs/ce1.conf", "bfd: true")
    neighbors = plan(text).nodes["ce1"].spec["intent"]["neighbors"]
    assert [(n["address"], n["local_address"], n["families"], n["bfd"]) for n in neighbors] == [
        ("192.168.50.2", "192.168.50.1", ["ipv4"], True),
        ("2001:db8:50::2", "2001:db8:50::1", ["ipv6"], False),  # BFD on IPv4 sessions only
        ("192.168.50.6", "192.168.50.5", ["ipv4"], True),
        ("2001:db8:50::6", "2001:db8:50::5", ["ipv6"], False),
    ]
    assert plan(text).nodes["ce1"].spec["intent"]["asn"] == 64900


def test_two_labs_plans_are_independent() -> None:
    first = load_topology(CONNECT_TO)
    solo = load_topology(HERE / "single-ce.yaml")
    again = load_topology(CONNECT_TO)
    assert first == again  # deterministic, and nothing carried over from the lab in between
    assert (first.name, solo.name) == ("contoso", "solo")
    assert "ce1" in first.nodes and "ce1" in solo.nodes  # the same keys; the runtime prefixes the lab name
    assert first.namespaces["ce1"] != solo.namespaces["ce1"]
    # No shared mutable state between plans.
    first.nodes["ce1"].spec["intent"]["neighbors"].clear()
    first.nodes[MSEE1].spec["rules"]["drain_prepend"] = 9
    assert first.expressroute is not None
    first.expressroute["circuits"].clear()
    assert load_topology(CONNECT_TO) == again != first
    assert again.nodes[MSEE2].spec["rules"]["drain_prepend"] == 2


def test_two_circuits_number_attachments_in_file_order_and_vnets_share_a_circuit() -> None:
    lab = plan("""
        name: two
        expressroute:
          circuits:
            ams:
              bandwidth: 500Mbps
              edges: [ce1, ce2]
              peerings: {private: {vlan: 10, peer_asn: 65010, ipv4: 192.168.1.0/29}}
            lon:
              bandwidth: 1Gbps
              edges: [ce2, ce1]
              peerings: {private: {vlan: 20, peer_asn: 65010, ipv4: 192.168.2.0/29}}
          vnets:
            hub: {address_space: [10.100.0.0/16], connections: [{circuit: ams}, {circuit: lon, weight: 10}]}
            spoke:
              address_space: [10.200.0.0/16, "2001:db8:200::/48"]
              connections: [{circuit: lon}]
              hosts: {vm1: 10.200.0.10, vm2: [10.200.5.5, "2001:db8:200::5"]}
          internet: false
        nodes:
          ce1: {kind: gobgp}
          ce2: {kind: exabgp}
    """)
    assert [(link.a, link.physical) for link in lab.links[:4]] == [
        (Endpoint("ce1", "eth1.10"), "ce1:eth1"),
        (Endpoint("ce2", "eth1.10"), "ce2:eth1"),
        (Endpoint("ce2", "eth2.20"), "ce2:eth2"),
        (Endpoint("ce1", "eth2.20"), "ce1:eth2"),
    ]
    gateway_links = [(link.a, link.b, link.physical) for link in lab.links if link.b.namespace.endswith("-gw")]
    assert gateway_links == [
        (Endpoint("ams-msee1.private", "vnet1"), Endpoint("hub-gw", "m1"), "ams-msee1:vnet1"),
        (Endpoint("ams-msee2.private", "vnet1"), Endpoint("hub-gw", "m2"), "ams-msee2:vnet1"),
        (Endpoint("lon-msee1.private", "vnet1"), Endpoint("hub-gw", "m3"), "lon-msee1:vnet1"),
        (Endpoint("lon-msee2.private", "vnet1"), Endpoint("hub-gw", "m4"), "lon-msee2:vnet1"),
        (Endpoint("lon-msee1.private", "vnet2"), Endpoint("spoke-gw", "m1"), "lon-msee1:vnet2"),
        (Endpoint("lon-msee2.private", "vnet2"), Endpoint("spoke-gw", "m2"), "lon-msee2:vnet2"),
        (Endpoint("vm1", "eth0"), Endpoint("spoke-gw", "h1"), "vm1:eth0"),
        (Endpoint("vm2", "eth0"), Endpoint("spoke-gw", "h2"), "vm2:eth0"),
    ]
    assert lab.namespaces["lon-msee2.private"].addresses == (
        ("eth1.20", "192.168.2.6/30"), ("vnet1", "169.254.0.13/30"), ("vnet1", "169.254.128.13/30"),
        ("vnet2", "169.254.0.21/30"), ("vnet2", "169.254.128.21/30"),
    )  # fmt: skip
    assert lab.nodes["lon-msee2"].spec["peerings"]["private"]["gateways"] == [
        {"address": "169.254.0.14", "local_address": "169.254.0.13"},
        {"address": "169.254.128.14", "local_address": "169.254.128.13"},
        {"address": "169.254.0.22", "local_address": "169.254.0.21"},
        {"address": "169.254.128.22", "local_address": "169.254.128.21"},
    ]
    spoke = lab.namespaces["spoke-gw"]
    assert spoke.bridges == (("vnet", ("h1", "h2")),)
    assert [a for a in spoke.addresses if a[0] == "vnet"] == [("vnet", "10.200.0.1/16"), ("vnet", "2001:db8:200::1/48")]
    assert lab.namespaces["vm2"].addresses == (("eth0", "10.200.5.5/16"), ("eth0", "2001:db8:200::5/48"))
    assert lab.namespaces["vm2"].routes == (("0.0.0.0/0", "10.200.0.1"), ("::/0", "2001:db8:200::1"))
    assert "azure-internet" not in lab.nodes and "internet" not in lab.nodes["hub-gw"].spec
    assert lab.nodes["ce2"].spec["intent"]["router_id"] == "192.168.1.5"
    # The plan names each circuit's MSEEs (primary first) and each VNet's gateway, so nothing
    # downstream rebuilds a node name from a circuit's; it survives the lab's state file.
    assert lab.circuits == {"ams": ("ams-msee1", "ams-msee2"), "lon": ("lon-msee1", "lon-msee2")}
    assert lab.gateways == {"hub": "hub-gw", "spoke": "spoke-gw"}
    again = plan_from_data(json.loads(json.dumps(plan_to_data(lab))))
    assert (again.circuits, again.gateways) == (lab.circuits, lab.gateways)


def test_user_links_may_end_on_generated_nodes() -> None:
    lab = plan("""
        name: inet
        expressroute:
          circuits:
            c1:
              bandwidth: 1Gbps
              edges: [ce1, ce1]
              peerings: {private: {vlan: 1, peer_asn: 65001, ipv4: 192.168.0.0/29}}
          vnets:
            hub: {address_space: [10.100.0.0/16], connections: [{circuit: c1}]}
          internet: {interfaces: {eth9: [203.0.113.1/24]}}
        nodes:
          ce1: {kind: frr}
          web: {kind: host, interfaces: {eth1: [203.0.113.10/24]}, gateway: 203.0.113.1}
        links:
          - [azure-internet:eth9, web:eth1]
    """)
    assert lab.links[-1] == Link(Endpoint("azure-internet", "eth9"), Endpoint("web", "eth1"), "azure-internet:eth9")
    assert lab.namespaces["azure-internet"].addresses == (("gw1", "192.0.2.1/30"), ("eth9", "203.0.113.1/24"))
    assert lab.namespaces["web"].routes == (("0.0.0.0/0", "203.0.113.1"),)


def test_rules_are_the_msee_rules_checked_by_them() -> None:
    described = topology_schema()["$defs"]["MseeRules"]["properties"]
    assert {name: field["default"] for name, field in described.items()} == dataclasses.asdict(MseeRules())
    error = circuit_refusal("""
      rules: {drain_prepend: 11}
    nodes:
      ce1: {kind: frr}
      ce2: {kind: frr}
    """)
    assert (error.line, error.field, error.message) == (11, "expressroute.rules", "drain_prepend 11: expected 0..10")
    error = circuit_refusal("""
      rules: {drain_prepend: '2', colour: blue}
    """)
    assert (error.field, error.message) == ("expressroute.rules.drain_prepend", "'2' is not a whole number")


def test_profiles_are_the_nodes_profiles() -> None:
    assert set(topology_schema()["properties"]["profile"]["enum"]) == set(PROFILES)


def test_schema_is_json_schema() -> None:
    schema = topology_schema()
    assert {"nodes", "links", "expressroute", "name", "profile"} <= set(schema["properties"])
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["name"]
    text = json.dumps(schema)
    assert '"frr"' in text and "edges" in text and "hosts" in text


def test_schema_describes_every_expressroute_field() -> None:
    defs = topology_schema()["$defs"]
    expressroute = ["ExpressRouteSpec", "CircuitSpec", "PeeringsSpec", "PeeringSpec", "RouteFilterSpec", "RuleSpec",
                    "VNetSpec", "UserRouteSpec", "ConnectionSpec", "MseeRules"]  # fmt: skip
    undescribed = [f"{d}.{f}" for d in expressroute for f, v in defs[d]["properties"].items() if "description" not in v]
    assert undescribed == []
    vlan = defs["PeeringSpec"]["properties"]["vlan"]
    assert (vlan["minimum"], vlan["maximum"], vlan["title"]) == (1, 4094, "a VLAN ID")
    assert defs["CircuitSpec"]["properties"]["sku"]["enum"] == ["standard", "premium", "local"]


# ---------------------------------------------------------------- refusals: file, line, field, words

BAD = [
    ("bad-kind.yaml", 4, "nodes.ce1.kind",
     "kind 'cisco' is not one bgplab runs; valid kinds: frr, bird, gobgp, exabgp, linux, host"),
    ("bad-duplicate-address.yaml", 11, "nodes.onprem.interfaces.eth1[0]",
     "10.1.1.1 is already assigned to ce1 eth1 (nodes.ce1.interfaces.eth1[0])"),
    ("bad-msee-address.yaml", 13, "nodes.ce1.interfaces.eth9[0]",
     "192.168.100.130 is the MSEE's address on 192.168.100.128/30 (the MSEE end of the primary link of circuit c1): "
     "the MSEE takes the second host and the CE the first, 192.168.100.129"),
    ("bad-reserved-asn.yaml", 10, "expressroute.circuits.c1.peerings.private.peer_asn",
     "AS 65515 is reserved by Azure (65515-65520)"),
    ("bad-dangling-link.yaml", 7, "links[1][1]", "ce3:eth1: no node named 'ce3' in this lab (nodes: ce1, onprem)"),
    ("bad-yaml-syntax.yaml", 4, "",
     "YAML syntax error at column 6: expected ',' or '}', but got ':' (while parsing a flow mapping that starts on "
     "line 3)"),
    ("bad-config-and-intent.yaml", 5, "nodes.ce1.config",
     "config and asn, announce together: a router runs either your own config (config) or one generated from intent"),
    ("bad-host-outside-vnet.yaml", 15, "expressroute.vnets.hub.hosts.vm2[0]",
     "10.200.1.10 is outside VNet hub's address space (10.100.0.0/16)"),
    ("bad-unknown-key.yaml", 3, "node",
     "unknown key 'node' (did you mean 'nodes'?); allowed: name, profile, runtime, management, expressroute, "
     "nodes, links"),
    ("bad-profile.yaml", 2, "profile", "profile 'slow' is not a timer profile; valid profiles: azure"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "line", "field", "words"), BAD, ids=[b[0].removesuffix(".yaml") for b in BAD])
def test_bad_file(file: str, line: int, field: str, words: str) -> None:
    path = HERE / file
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    error = caught.value
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert words in error.message
    where = f"{path}:{line}: {field}: " if field else f"{path}:{line}: "
    assert str(error) == where + error.message


def test_error_text_without_line_or_field() -> None:
    assert str(TopologyError("lab.yaml", None, "", "empty")) == "lab.yaml: empty"
    assert str(TopologyError("lab.yaml", None, "nodes", "bad")) == "lab.yaml: nodes: bad"
    assert str(TopologyError("lab.yaml", 3, "", "bad")) == "lab.yaml:3: bad"


CIRCUIT = """
    name: t
    expressroute:
      circuits:
        c1:
          bandwidth: 1Gbps
          edges: [ce1, ce2]
          peerings:
            private: {vlan: 100, peer_asn: 65010, ipv4: 192.168.100.128/29}
"""


def circuit_refusal(rest: str, circuit: str = "c1") -> TopologyError:
    return refusal(CIRCUIT.replace("c1:", f"{circuit}:") + rest)


def test_user_interface_clashing_with_a_generated_one_names_both() -> None:
    error = circuit_refusal("""
    nodes:
      ce1:
        kind: frr
        interfaces: {eth1.100: [10.0.0.1/30]}
      ce2: {kind: frr}
    """)
    assert (error.line, error.field) == (14, "nodes.ce1.interfaces.eth1.100")
    assert error.message.startswith(
        "ce1's eth1.100 is also the interface bgplab generates for the private peering (VLAN 100) of the primary "
        "link of circuit c1"
    )


def test_user_link_on_a_generated_interface_is_refused() -> None:
    error = circuit_refusal("""
    nodes:
      ce1: {kind: frr}
      ce2: {kind: frr}
    links:
      - [ce1:eth1, ce2:eth9]
    """)
    assert (error.line, error.field) == (15, "links[0][0]")
    assert "eth1 on ce1 is the interface bgplab generates for the primary link of circuit c1" in error.message


def test_edge_must_be_a_router_that_exists() -> None:
    error = circuit_refusal("""
    nodes:
      ce1: {kind: host}
      ce2: {kind: frr}
    """)
    assert (error.line, error.field) == (7, "expressroute.circuits.c1.edges[0]")
    assert "ce1 is a host; a circuit's edges are routers (frr, bird, gobgp, exabgp, linux)" in error.message
    error = circuit_refusal("""
    nodes:
      ce1: {kind: frr}
    """)
    assert (error.field, error.message) == (
        "expressroute.circuits.c1.edges[1]",
        "no node named 'ce2'; edges name router nodes (defined: ce1)",
    )


def test_generated_names_are_unique_and_valid() -> None:
    error = circuit_refusal("""
    nodes:
      ce1: {kind: frr}
      ce2: {kind: frr}
      c1-msee1: {kind: host}
    """)
    assert error.field == "expressroute.circuits.c1"
    assert "the primary MSEE of circuit c1 'c1-msee1' clashes with node c1-msee1" in error.message
    error = circuit_refusal(
        circuit="a-very-long-circuit",
        rest="""
    nodes:
      ce1: {kind: frr}
      ce2: {kind: frr}
    """,
    )
    assert "'a-very-long-circuit-msee1' is not a valid node name" in error.message


def test_intent_asn_must_match_the_peerings() -> None:
    error = circuit_refusal("""
    nodes:
      ce1: {kind: frr, asn: 65020}
      ce2: {kind: frr}
    """)
    assert (error.line, error.field) == (12, "nodes.ce1.asn")
    assert "ce1 speaks AS 65020 but the private peering of circuit c1 has peer_asn 65010" in error.message


def test_router_without_asn_or_config() -> None:
    error = refusal("""
        name: t
        nodes:
          r1: {kind: bird}
    """)
    assert (error.line, error.field) == (4, "nodes.r1")
    assert "r1 needs an asn" in error.message
    error = refusal("""
        name: t
        nodes:
          r1: {kind: bird, asn: 65001}
    """)
    assert "r1 has no IPv4 address to take a router ID from" in error.message


def test_missing_config_file(tmp_path: Path) -> None:
    error = refusal("""
        name: t
        nodes:
          r1: {kind: frr, config: nowhere.conf}
    """, tmp_path)  # fmt: skip
    assert (error.line, error.field) == (4, "nodes.r1.config")
    assert f"nowhere.conf: no such file ({tmp_path / 'nowhere.conf'})" in error.message


NODE_REFUSALS = [
    ("r1: {kind: host, asn: 65001}", 4, "nodes.r1.asn", "r1 is a host and runs no BGP, so asn has no meaning"),
    ("r1: {kind: frr, asn: 65001, router_id: 10.0.0.1, gateway: 10.0.0.2}", 4, "nodes.r1.gateway",
     "only hosts take a gateway"),
    ("r1: {kind: msee}", 4, "nodes.r1.kind", "msee nodes are generated from expressroute:, never written"),
    ("r1:\n    kind: host\n    interfaces: {eth1: [10.0.0.1/24, 10.0.0/24]}", 6, "nodes.r1.interfaces.eth1[1]",
     "'10.0.0/24' is not an address with a prefix length"),
    ("r1:\n    kind: host\n    interfaces: {eth1: [10.0.0.1]}", 6, "nodes.r1.interfaces.eth1[0]",
     "'10.0.0.1': write an address with its prefix length, e.g. 10.1.1.1/24"),
    ("r1:\n    kind: host\n    interfaces:\n      an-interface-name: [10.0.0.1/24]", 7,
     "nodes.r1.interfaces.an-interface-name", "is not an interface name: 1 to 15 characters"),
    ("r1: {kind: host, interfaces: {eth1: [10.0.0.1/24]}}", 4, "nodes.r1.interfaces.eth1",
     "r1 has addresses on eth1 but no link ends at r1:eth1"),
    ("r1: {kind: frr, asn: 65001, router_id: 10.0.0.1, prepend: 11}", 4, "nodes.r1.prepend", "out of range"),
    ("r1: {kind: frr, asn: '65001', router_id: 10.0.0.1}", 4, "nodes.r1.asn", "'65001' is not a whole number"),
    ("r1: {kind: frr, asn: 65001, announce: [10.1.0.1/16]}", 4, "nodes.r1.announce[0]",
     "10.1.0.1/16 has host bits set; the prefix is 10.1.0.0/16"),
    ("R1: {kind: host}", 4, "nodes.R1", "node 'R1' is not a valid node name"),
    ("r1: {kind: host}\n  r1: {kind: host}", 5, "nodes.r1", "duplicate key 'r1' (first on line 4)"),
    ("r1: {kind: frr, asn: 65001, router_id: 10.0.0.1, neighbors: [{address: 10.0.0.2}]}", 4,
     "nodes.r1.neighbors[0].asn", "required: the neighbor's AS number"),
    ("r1: {kind: frr, asn: 65001, router_id: 10.0.0.1, advertise: {transit: [10.0.0.0/8]}}", 4,
     "nodes.r1.advertise.transit", "'transit' is not valid here; use one of 'private', 'microsoft' or 'public'"),
    ("r1: {kind: frr, asn: 65001, router_id: 10.0.0.1, advertise: {private: [10.0.0.1/8]}}", 4,
     "nodes.r1.advertise.private[0]", "10.0.0.1/8 has host bits set"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "line", "field", "words"), NODE_REFUSALS)
def test_node_refusals(body: str, line: int, field: str, words: str) -> None:
    error = refusal("\nname: t\nnodes:\n  " + body + "\n")
    assert (error.line, error.field) == (line, field)
    assert words in error.message


def test_host_gateway_must_be_on_its_subnet() -> None:
    error = refusal("""
        name: t
        nodes:
          h1: {kind: host, interfaces: {eth1: [10.0.0.1/24]}, gateway: [10.0.1.1]}
          h2: {kind: host, interfaces: {eth1: [10.0.0.2/24]}}
        links: [[h1:eth1, h2:eth1]]
    """)
    assert (error.line, error.field) == (4, "nodes.h1.gateway")
    assert "10.0.1.1 is on none of h1's IPv4 subnets (10.0.0.0/24)" in error.message


def test_link_refusals() -> None:
    base = "\nname: t\nnodes:\n  a: {kind: host}\n  b: {kind: host}\nlinks:\n"
    error = refusal(base + "  - [a:eth1, b:eth1]\n  - {endpoints: [a:eth1, b:eth2]}\n")
    assert (error.line, error.field) == (8, "links[1].endpoints[0]")
    assert "a:eth1 is already an end of links[0] (a:eth1 - b:eth1)" in error.message
    error = refusal(base + "  - [a:eth1]\n")
    assert (error.line, error.field) == (7, "links[0].endpoints")
    assert "a link has exactly two ends" in error.message
    error = refusal(base + "  - {endpoints: [a:eth1, b:eth1], rate: fast}\n")
    assert error.field == "links[0].rate" and "'fast' is not a rate" in error.message
    error = refusal(base + "  - [a:eth1, azure-internet:eth1]\n")
    assert "azure-internet exists only with VNets" in error.message
    error = refusal(base + "  - [a, b:eth1]\n")
    assert "'a': a link end is NODE:INTERFACE" in error.message


def test_model_errors_are_placed_under_expressroute() -> None:
    error = refusal(CIRCUIT.replace("bandwidth: 1Gbps", "bandwidth: 3Gbps") + "    nodes: {}\n")
    assert (error.line, error.field) == (6, "expressroute.circuits.c1.bandwidth")
    assert "3Gbps is not an ExpressRoute bandwidth" in error.message
    error = refusal(CIRCUIT.replace("edges", "edgez"))
    assert (error.line, error.field) == (5, "expressroute.circuits.c1.edges")
    assert "required: the node on the primary link" in error.message


def test_vm_address_clash_with_the_segment_router() -> None:
    error = circuit_refusal("""
      vnets:
        hub:
          address_space: [10.100.0.0/16]
          connections: [{circuit: c1}]
          hosts: {vm1: 10.100.0.1}
    nodes:
      ce1: {kind: frr}
      ce2: {kind: frr}
    """)
    assert error.field == "expressroute.vnets.hub.hosts.vm1[0]"
    assert "the gateway takes the first address of 10.100.0.0/16" in error.message


def test_not_a_mapping_and_empty_file() -> None:
    assert refusal("").message.startswith("expected a mapping with name, nodes, links and expressroute")
    assert refusal("- a\n").line == 1


def test_announce_range_expands_and_is_covered_by_few_blocks() -> None:
    plan = plan_from_text(
        "name: r\nnodes:\n  r1: {kind: frr, asn: 65001, router_id: 10.0.0.1,\n"
        "       announce_range: {first: 10.64.0.0/24, count: 3990}}\n",
        "range.yaml", Path("."),
    )
    intent = plan.nodes["r1"].spec["intent"]
    assert len(intent["announce"]) == 3990 and intent["announce"][:2] == ["10.64.0.0/24", "10.64.1.0/24"]
    assert intent["announce"][-1] == "10.79.149.0/24"
    assert intent["announce_cover"] == ["10.64.0.0/13", "10.72.0.0/14", "10.76.0.0/15", "10.78.0.0/16",
                                        "10.79.0.0/17", "10.79.128.0/20", "10.79.144.0/22", "10.79.148.0/23"]


def test_a_range_goes_out_to_private_peering_as_its_covering_blocks_and_advertise_replaces_a_default() -> None:
    text = CONNECT_TO.read_text().replace(
        "    announce: [10.1.0.0/16]\n    loopback", "    announce: [10.1.0.0/16]\n"
        "    announce_range: {first: 10.64.0.0/24, count: 512}\n    advertise: {microsoft: [203.0.113.0/29]}\n"
        "    loopback", 1)
    intent = plan_from_text(text, "ct.yaml", HERE).nodes["ce1"].spec["intent"]
    exports = {(n["address"], n["peering"]): n["export"] for n in intent["neighbors"] if n["role"] == "msee"}
    assert exports == {("192.168.100.130", "private"): ["10.1.0.0/16", "10.64.0.0/15+"],
                       ("198.51.100.2", "microsoft"): ["203.0.113.0/29"]}
    assert "203.0.113.0/28" in intent["announce"]  # still originated: advertise is the filter only


def test_announce_range_past_the_address_space_is_refused() -> None:
    with pytest.raises(TopologyError, match=r"range.yaml:4: nodes.r1.announce_range: .*run past the address space"):
        plan_from_text("name: r\nnodes:\n  r1: {kind: frr, asn: 65001,\n    announce_range: {first: 255.255.255.0/24, "
                       "count: 2}}\n", "range.yaml", Path("."))


def test_the_schema_takes_exactly_the_kinds_a_topology_may_name() -> None:
    # The schema spells the kinds out for pydantic; the registry is where kinds come from.
    from typing import get_args

    from bgplab.lab.kinds import GENERATED_KINDS, USER_KINDS
    from bgplab.lab.topology.schema import NodeSpec

    assert get_args(NodeSpec.model_fields["kind"].annotation) == USER_KINDS
    assert set(USER_KINDS).isdisjoint(GENERATED_KINDS) and set(GENERATED_KINDS) == {"msee", "gateway"}
