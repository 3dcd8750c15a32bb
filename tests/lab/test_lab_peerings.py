"""The peerings of a circuit in a running lab (tests/lab/topologies/legacy-peerings.yaml: the
connect-to shape on a pre-2018 circuit with private peering over IPv4 and IPv6, Microsoft
peering and legacy public peering on each link), checked where the CE's operator would look:
its own FRR (vtysh), and `bgplab status` / `effective-routes` for the Microsoft side.

Tests run in file order on one lab; the one that fails a link restores it and waits for every
session to be back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.labcli import Cli, running_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

TOPOLOGY = Path(__file__).resolve().parent / "topologies" / "legacy-peerings.yaml"
CATALOGUE = Path(__file__).resolve().parents[2] / "bgplab" / "expressroute" / "data" / "services.yaml"
MSEE1, MSEE2 = "fabrikam-lon-msee1", "fabrikam-lon-msee2"
REGION = "uk-south"
"""The circuit's region in the topology file."""
# Per peering of each link: (the CE's address, the MSEE's), the first and second hosts of the
# link's subnet in the topology file (docs/lab.md: the CE takes the first host, the MSEE the second).
PRIMARY = {"private": ("192.168.110.1", "192.168.110.2"), "private-v6": ("2001:db8:110::1", "2001:db8:110::2"),
           "microsoft": ("198.51.100.17", "198.51.100.18"), "public": ("198.51.100.33", "198.51.100.34")}
SECONDARY = {"private": ("192.168.110.5", "192.168.110.6"), "private-v6": ("2001:db8:110::5", "2001:db8:110::6"),
             "microsoft": ("198.51.100.21", "198.51.100.22"), "public": ("198.51.100.37", "198.51.100.38")}
VM6, ONPREM6 = "2001:db8:120::10", "2001:db8:2:1::10"

LabRun = tuple[Cli, str]


@pytest.fixture(scope="module")
def lab(runtime: str) -> Iterator[LabRun]:
    with running_lab(TOPOLOGY, "pe", runtime) as (cli, name, up):
        assert up["established"]
        yield cli, name


def sessions(run: LabRun) -> dict[tuple[str, str], str]:
    """(node, neighbor) -> state, from `bgplab status --json` (exit 1 while some are down)."""
    cli, name = run
    status = cli.run("status", "--lab", name, "--json", check=False)
    return {(r["node"], r["neighbor"]): str(r["state"]) for r in json.loads(status.stdout)["sessions"]}


def frr_states(run: LabRun, node: str) -> dict[str, str]:
    """Neighbor -> BGP state, as the node's own FRR says."""
    cli, name = run
    out = cli.run("exec", "--lab", name, node, "--", "vtysh", "-c", "show bgp neighbors json").stdout
    return {address: str(info.get("bgpState")) for address, info in json.loads(out).items()}


def frr_routes(run: LabRun, node: str, family: str, neighbor: str | None = None) -> dict[str, dict[str, Any]]:
    """Prefix -> path (with communities) in the node's FRR, only those from `neighbor` if given."""
    cli, name = run
    out = cli.run("exec", "--lab", name, node, "--", "vtysh", "-c", f"show bgp {family} unicast json detail").stdout
    found = {}
    for prefix, paths in json.loads(out).get("routes", {}).items():
        for path in paths:
            if neighbor is None or path.get("peer", {}).get("peerId") == neighbor:
                found[prefix] = path
    return found


def link_up(run: LabRun, link: dict[str, tuple[str, str]], msee: str, ce: str) -> bool:
    """Every peering session of one link Established, at the MSEE and at the CE."""
    ours, theirs = sessions(run), frr_states(run, ce)
    return all(ours.get((msee, c)) == "established" and theirs.get(m) == "Established" for c, m in link.values())


def test_legacy_public_peering_delivers_the_service_prefixes(lab: LabRun) -> None:
    catalogue = yaml.safe_load(CATALOGUE.read_text())
    services, regions = catalogue["services"], catalogue["regions"]
    # A Standard circuit gets the services of its geopolitical region (UK South: Europe's).
    europe = {key for key, region in regions.items() if region["geo"] == regions[REGION]["geo"]}
    expected: dict[str, tuple[str, str]] = {}  # IPv4 prefix -> (service community, regional community)
    for region, per_service in catalogue["prefixes"].items():
        regional = regions[region]["microsoft_community"]
        for service, prefixes in per_service.items():
            # A regional service (Storage 12076:52000) takes the region's last three digits.
            community = services[service].get("community") or (
                f"12076:{int(services[service]['regional'].split(':')[1]) + int(regional.split(':')[1]) % 1000}")
            for prefix in prefixes:
                if ":" not in prefix and region in europe:
                    expected[prefix] = (community, regional)
    assert len(expected) > 10
    for ce, link in (("ce1", PRIMARY), ("ce2", SECONDARY)):
        msee_address = link["public"][1]
        assert frr_states(lab, ce)[msee_address] == "Established"
        routes = wait_for(f"the service prefixes at {ce} over public peering",
                          lambda: (r := frr_routes(lab, ce, "ipv4", msee_address)) and set(r) == set(expected) and r,
                          timeout=10)
        for prefix, path in routes.items():
            assert path["aspath"]["string"] == "12076", (prefix, path["aspath"])
            # The service's and its region's communities (docs: every prefix carries a regional one).
            assert set(expected[prefix]) <= set(path.get("community", {}).get("list", [])), (prefix, path)
    # The route filter (Exchange Online only) limits Microsoft peering, not public peering.
    microsoft = frr_routes(lab, "ce1", "ipv4", PRIMARY["microsoft"][1])
    exchange = {p for p, (service, _) in expected.items() if service == services["exchange-online"]["community"]}
    assert set(microsoft) == exchange != set(expected)
    region = catalogue["regions"][REGION]["microsoft_community"]
    assert any(region in path["community"]["list"] for path in microsoft.values())


def test_ipv6_routes_and_packets_cross_the_circuit(lab: LabRun) -> None:
    cli, name = lab
    assert frr_states(lab, "ce1")[PRIMARY["private-v6"][1]] == "Established"
    # The VNet's IPv6 space at the CE, from the primary MSEE, with Azure's path.
    vnet = wait_for("the VNet's IPv6 prefix at ce1", lambda: frr_routes(lab, "ce1", "ipv6", PRIMARY["private-v6"][1]),
                    timeout=10)
    assert set(vnet) == {"2001:db8:120::/48"} and vnet["2001:db8:120::/48"]["aspath"]["string"] == "12076"

    def onprem6() -> list[dict[str, Any]]:
        return [r for r in cli.json("effective-routes", "hub", "--lab", name)
                if r["addressPrefix"] == ["2001:db8:2::/48"] and r["state"] == "Active"]

    [route] = wait_for("on-premises IPv6 in the VNet's effective routes", onprem6, timeout=10)
    assert route["nextHopType"] == "VirtualNetworkGateway" and len(route["nextHopIpAddress"]) == 1
    for source, target in (("azure-vm", ONPREM6), ("onprem", VM6)):
        ping = cli.run("exec", "--lab", name, source, "--", "ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", target,
                       check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    trace = cli.run("exec", "--lab", name, "onprem", "--", "traceroute", "-6", "-n", "-q", "1", "-w", "1", VM6).stdout
    hops = [line.split()[1] for line in trace.splitlines()[1:]]
    assert hops[1] == PRIMARY["private-v6"][1] and hops[-1] == VM6, trace  # ce1, then the primary MSEE


def test_failing_a_link_takes_every_peering_on_it_down_and_restore_brings_them_back(lab: LabRun) -> None:
    cli, name = lab
    assert link_up(lab, PRIMARY, MSEE1, "ce1") and link_up(lab, SECONDARY, MSEE2, "ce2")
    cli.run("fail", "link", "ce1:eth1", "--lab", name)
    try:
        # ce1 sees its carrier go at once; the MSEE drops the IPv6 session (no BFD there) when its
        # 9 s hold timer expires, so that is the longest this can take.
        def all_down() -> bool:
            ours, theirs = sessions(lab), frr_states(lab, "ce1")
            return all(ours.get((MSEE1, c)) != "established" and theirs.get(m) != "Established"
                       for c, m in PRIMARY.values())

        wait_for("every peering of the primary link down, at both ends", all_down, timeout=12)
        # The secondary link's peerings and the primary MSEE's session to the gateway stay up.
        assert link_up(lab, SECONDARY, MSEE2, "ce2")
        assert sessions(lab)[(MSEE1, "169.254.0.2")] == "established"
    finally:
        cli.run("restore", "link", "ce1:eth1", "--lab", name)
    wait_for("every peering of the primary link back", lambda: link_up(lab, PRIMARY, MSEE1, "ce1"), timeout=30)
    assert cli.json("status", "--lab", name)["faults"] == []
