"""Generated CE configs as engineers write them (bgplab.lab.topology.intent), in the connect-to lab
with FRR and with BIRD CEs: each MSEE receives on each peering exactly what the CE means to send
there, seen both by the MSEE and by the CE's own daemon; nothing transits between peerings; and
on-premises hosts reach Microsoft-peering services only through the CE's NAT.

The prefixes expected are written out from the topology (on-premises 10.1.0.0/16 on private
peering, the NAT pool 203.0.113.0/28 on Microsoft peering), not taken from the plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bgplab.lab import system
from tests.lab.labcli import TOPOLOGIES, Cli, running_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

# (MSEE, peering) -> (the CE on that link, its address toward the MSEE, what it must send)
EXPECTED = {
    ("contoso-ams-msee1", "private"): ("ce1", "192.168.100.130", ["10.1.0.0/16"]),
    ("contoso-ams-msee1", "microsoft"): ("ce1", "198.51.100.2", ["203.0.113.0/28"]),
    ("contoso-ams-msee2", "private"): ("ce2", "192.168.100.134", ["10.1.0.0/16"]),
    ("contoso-ams-msee2", "microsoft"): ("ce2", "198.51.100.6", ["203.0.113.0/28"]),
}
VNET = "10.100.0.0/16"


@pytest.fixture(scope="module", params=["frr", "bird"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cli, str, str]]:
    kind = str(request.param)
    topology = tmp_path_factory.mktemp("ce-filters") / "connect-to.yaml"
    topology.write_text((TOPOLOGIES / "connect-to.yaml").read_text().replace("kind: frr", f"kind: {kind}"))
    with running_lab(topology, f"cf{kind[0]}") as (cli, name, _):
        yield cli, name, kind


def received(cli: Cli, name: str, msee: str, peering: str) -> list[str]:
    rows = cli.json("routes", msee, "--lab", name, "--peering", peering, "--direction", "received")
    return sorted(r["network"] for r in rows)


def sent_by_ce(cli: Cli, name: str, kind: str, ce: str, msee_address: str) -> list[str]:
    """What the CE's own daemon says it advertises to that MSEE."""
    if kind == "frr":
        out = cli.run("exec", "--lab", name, ce, "--", "vtysh", "-c",
                      f"show bgp ipv4 unicast neighbors {msee_address} advertised-routes json").stdout
        return sorted(json.loads(out).get("advertisedRoutes", {}))
    socket = cli.state_dir / name / "nodes" / ce / "bird.ctl"
    protocol = "bgp_" + msee_address.replace(".", "_")
    text = system.run(["birdc", "-s", str(socket), "show", "route", "export", protocol]).stdout
    return sorted(line.split()[0] for line in text.splitlines() if line[:1].isdigit())


def learned(cli: Cli, name: str, ce: str) -> set[str]:
    return {r["network"] for r in cli.json("routes", ce, "--lab", name)}


def test_each_msee_receives_exactly_what_the_ce_means_to_send(lab: tuple[Cli, str, str]) -> None:
    cli, name, kind = lab
    # What would leak is learned first: the VNet (private) and the service prefixes (Microsoft).
    for ce in ("ce1", "ce2"):
        wait_for(f"the VNet and a service prefix at {ce}",
                 lambda ce=ce: VNET in learned(cli, name, ce) and any(p.startswith("198.18.") for p in
                                                                      learned(cli, name, ce)))
    for msee, peering in EXPECTED:
        wait_for(f"routes at {msee} {peering}", lambda m=msee, p=peering: received(cli, name, m, p))
    for (msee, peering), (ce, address, want) in EXPECTED.items():
        assert sent_by_ce(cli, name, kind, ce, address) == want, (ce, address)
        assert received(cli, name, msee, peering) == want, (msee, peering)


def test_no_default_route_is_taken_from_azure_and_the_ibgp_pair_carries_everything(
    lab: tuple[Cli, str, str]
) -> None:
    """ce2 holds what ce1 learned from its MSEE (the VNet, the services) over iBGP, and ce1 its own;
    neither filters the other."""
    cli, name, _ = lab
    services = wait_for("services at ce2", lambda: {p for p in learned(cli, name, "ce2") if p.startswith("198.18.")})
    assert VNET in learned(cli, name, "ce2")
    assert services == {p for p in learned(cli, name, "ce1") if p.startswith("198.18.")}
    assert "0.0.0.0/0" not in learned(cli, name, "ce1") | learned(cli, name, "ce2")


def service_address(cli: Cli, name: str) -> str:
    prefix = wait_for("a service prefix at ce1", lambda: sorted(p for p in learned(cli, name, "ce1")
                                                                  if p.startswith("198.18.")))[0]
    return prefix.replace(".0/24", ".10")


def pings(cli: Cli, name: str, node: str, target: str, *source: str) -> bool:
    return cli.run("exec", "--lab", name, node, "--", "ping", "-c", "2", "-i", "0.2", "-W", "1", *source, target,
                   check=False).returncode == 0


def test_on_premises_reaches_a_service_through_the_ces_nat_only(lab: tuple[Cli, str, str]) -> None:
    """Microsoft admits only sources within the advertised NAT pool: from its own link address
    (which the CE does not translate) ce1 gets no answer; onprem, translated, does."""
    cli, name, _ = lab
    target = service_address(cli, name)
    wait_for("the NAT pool at msee1", lambda: received(cli, name, "contoso-ams-msee1", "microsoft"))
    assert not pings(cli, name, "ce1", target, "-I", "198.51.100.1")
    assert pings(cli, name, "onprem", target)
    assert translated(cli, name) > 0  # the CE's own count of the packets it translated


def translated(cli: Cli, name: str) -> int:
    table = json.loads(cli.run("exec", "--lab", name, "ce1", "--", "nft", "-j", "list", "table", "ip",
                               "bgplab-nat").stdout)
    return sum(e["counter"]["packets"] for item in table["nftables"] if "rule" in item
               for e in item["rule"]["expr"] if "counter" in e)


def test_a_standard_circuit_gets_the_services_of_its_geopolitical_region_only(lab: tuple[Cli, str, str]) -> None:
    """contoso-ams is Standard in West Europe, its filter allows Exchange Online (12076:5010) and
    other Office 365 (12076:5100): the CE holds those of the catalogue's European regions (West
    Europe, North Europe, UK South), none of East US, West US or Southeast Asia."""
    cli, name, _ = lab
    europe = {"198.18.0.0/24", "198.18.7.0/24", "198.18.16.0/24", "198.18.23.0/24", "198.18.64.0/24",
              "198.18.71.0/24"}
    wait_for("Europe's services at ce1", lambda: europe <= learned(cli, name, "ce1"))
    assert {p for p in learned(cli, name, "ce1") if p.startswith("198.18.")} == europe
