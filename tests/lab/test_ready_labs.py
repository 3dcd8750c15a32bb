"""The ready labs in topologies/ other than connect-to (tested in test_connect_to.py): each comes
up with every session established and shows what it exists to show, in routes and in packets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bgplab.expressroute.services import load_catalogue
from tests.lab.labcli import Cli, running_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]


def hops(cli: Cli, name: str, node: str, target: str) -> list[str]:
    trace = cli.run("exec", "--lab", name, node, "--", "traceroute", "-n", "-q", "1", "-w", "1", target).stdout
    return [line.split()[1] for line in trace.splitlines()[1:]]


def next_hop_type(cli: Cli, name: str, vnet: str, prefix: str) -> str | None:
    """The next hop type of the active route for prefix (a row per next hop, all of one type), None
    while there is none (a predicate for wait_for: a route that has not arrived yet is waited for,
    not a failure)."""
    rows = [r for r in cli.json("effective-routes", vnet, "--lab", name)
            if r["addressPrefix"] == [prefix] and r["state"] == "Active"]
    assert len({r["nextHopType"] for r in rows}) <= 1, rows
    return str(rows[0]["nextHopType"]) if rows else None


def pings(cli: Cli, name: str, node: str, target: str) -> bool:
    return cli.run("exec", "--lab", name, node, "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", target,
                   check=False).returncode == 0


def test_forced_tunnel_sends_azure_internet_traffic_on_premises_then_falls_back(runtime: str) -> None:
    with running_lab("forced-tunnel.yaml", "ft", runtime) as (cli, name, up):
        assert up["established"]
        # ce1 runs the user's own config file (checked with vtysh --dryrun before start).
        default = wait_for("0/0 learned from on-premises",
                           lambda: next_hop_type(cli, name, "hub", "0.0.0.0/0") == "VirtualNetworkGateway")
        assert default
        assert hops(cli, name, "azure-vm", "203.0.113.2")[-2] == "192.168.100.129"  # out through ce1
        assert pings(cli, name, "azure-vm", "10.1.1.10") and pings(cli, name, "onprem", "10.100.1.10")
        cli.run("exec", "--lab", name, "ce1", "--", "vtysh", "-c", "configure terminal", "-c", "router bgp 65010",
                "-c", "address-family ipv4 unicast", "-c", "no network 0.0.0.0/0")
        wait_for("the internet route back", lambda: next_hop_type(cli, name, "hub", "0.0.0.0/0") == "Internet")
        assert hops(cli, name, "azure-vm", "203.0.113.2") == ["10.100.0.1", "192.0.2.1", "203.0.113.2"]


def test_microsoft_peering_delivers_exactly_the_filtered_service_prefixes(runtime: str) -> None:
    catalogue = load_catalogue()
    allowed = {0x2F2C1392, catalogue.region("west-europe").microsoft_community}  # 12076:5010, 12076:51002
    expected = {str(p.prefix) for p in catalogue.prefixes
                if p.prefix.version == 4 and allowed.intersection(p.communities)}
    with running_lab("microsoft-peering.yaml", "mp", runtime) as (cli, name, up):
        assert up["established"]

        def from_msee1() -> dict[str, dict[str, Any]]:
            return {r["network"]: r for r in cli.json("routes", "ce1", "--lab", name) if r["source"] == "198.51.100.2"}

        routes = wait_for("service prefixes at ce1", lambda: (r := from_msee1()) and set(r) == expected and r)
        for row in routes.values():
            assert row["path"] == "12076"
            assert allowed.intersection(int(a) << 16 | int(b) for a, b in (c.split(":") for c in row["communities"]))

        def received() -> list[str]:
            rows = cli.json("routes", "contoso-ams-msee1", "--lab", name, "--peering", "microsoft",
                            "--direction", "received")
            return [r["network"] for r in rows]

        # What ce1 sends follows what it receives by its own timing: wait for it, then hold it.
        wait_for("ce1's public prefix at msee1", lambda: received())
        assert received() == ["203.0.113.0/28"]  # 10.9.0.0/16 (RFC 1918) dropped...
        sent = json.loads(cli.run("exec", "--lab", name, "ce1", "--", "vtysh", "-c",
                                  "show bgp ipv4 unicast neighbors 198.51.100.2 advertised-routes json").stdout)
        assert sorted(sent["advertisedRoutes"]) == ["10.9.0.0/16", "203.0.113.0/28"]  # ...though ce1 sent it
        sessions = {(s["node"], s["neighbor"]): s for s in cli.json("status", "--lab", name)["sessions"]}
        assert sessions[("contoso-ams-msee1", "198.51.100.1")]["state"] == "established"
        assert sessions[("contoso-ams-msee1", "198.51.100.1")]["flaps"] == 0


def test_connect_through_keeps_the_two_customers_apart(runtime: str) -> None:
    with running_lab("connect-through.yaml", "cth", runtime) as (cli, name, up):
        assert up["established"]
        wait_for("customer A's site route in VNet A",
                 lambda: next_hop_type(cli, name, "vnet-a", "10.110.0.0/16") == "VirtualNetworkGateway")
        wait_for("customer B's site route in VNet B",
                 lambda: next_hop_type(cli, name, "vnet-b", "10.120.0.0/16") == "VirtualNetworkGateway")
        assert pings(cli, name, "site-a", "10.10.1.10") and pings(cli, name, "site-b", "10.20.1.10")
        # Neither learns the other's routes...
        a_routes = {r["network"] for r in cli.json("routes", "csp-a", "--lab", name)}
        b_routes = {r["network"] for r in cli.json("routes", "csp-b", "--lab", name)}
        assert a_routes == {"10.10.0.0/16", "10.110.0.0/16"} and b_routes == {"10.20.0.0/16", "10.120.0.0/16"}
        a_vnet = {tuple(r["addressPrefix"]) for r in cli.json("effective-routes", "vnet-a", "--lab", name)}
        assert ("10.120.0.0/16",) not in a_vnet and ("10.20.0.0/16",) not in a_vnet
        # ...and no packet crosses, in any direction.
        assert not pings(cli, name, "site-a", "10.20.1.10")
        assert not pings(cli, name, "site-a", "10.120.1.10")
        assert not pings(cli, name, "vm-a", "10.20.1.10")
        assert not pings(cli, name, "vm-a", "10.120.1.10")
        assert not pings(cli, name, "vm-b", "10.110.1.10")


def test_dual_stack_carries_both_families_end_to_end_through_the_primary(runtime: str) -> None:
    """Each MSEE receives on-premises per family, each on its own session (the CEs' prefix lists per
    family), and packets of both families go both ways through the primary MSEE."""
    with running_lab("dual-stack.yaml", "ds", runtime) as (cli, name, up):
        assert up["established"]

        def received(msee: str, family: str) -> list[tuple[str, str]]:
            rows = cli.json("routes", msee, "--lab", name, "--direction", "received", "--family", family)
            return sorted((r["network"], r["path"]) for r in rows)

        for family, prefix in (("ipv4", "10.1.0.0/16"), ("ipv6", "2001:db8:1::/48")):
            wait_for(f"{prefix} at both MSEEs", lambda f=family: received("contoso-ams-msee1", f)
                     and received("contoso-ams-msee2", f))
            assert received("contoso-ams-msee1", family) == [(prefix, "65010")]
            assert received("contoso-ams-msee2", family) == [(prefix, "65010 65010 65010")]  # ce2 prepends twice
        for source, target in (("azure-vm", "10.1.1.10"), ("onprem", "10.100.1.10"),
                               ("azure-vm", "2001:db8:1:1::10"), ("onprem", "2001:db8:100:1::10")):
            assert pings(cli, name, source, target), (source, target)
        assert hops(cli, name, "onprem", "2001:db8:100:1::10")[1] == "2001:db8:c0a8::2"  # the primary MSEE
        # the primary MSEE's end toward one of the gateway's two instances
        assert hops(cli, name, "azure-vm", "2001:db8:1:1::10")[1] in ("fd00:a9fe::1", "fd00:a9fe:0:1::1")
