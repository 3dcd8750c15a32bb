"""`bgplab set` on a running lab (bgplab.lab.settings), with the two-circuits lab: a connection's
weight moves Azure's traffic between circuits, and a deleted connection ends the sessions at both
ends, each seen where it takes effect: the gateway namespace's kernel routes and the MSEEs' own
sessions. The gateway links' addresses come from the topology's order (169.254.0.0/16, one /30
per MSEE: contoso-ams-msee1 .1, msee2 .5, contoso-lon-msee1 .9, msee2 .13; the gateway on .2,
.6, .10, .14).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.lab.labcli import Cli, running_lab, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

AMS, LON = ["169.254.0.1", "169.254.0.5"], ["169.254.0.13", "169.254.0.9"]
"""The MSEEs' ends toward the gateway's instance 0, whose paths the effective routes take."""
AMS_SESSIONS = {*AMS, "169.254.128.1", "169.254.128.5"}
LON_SESSIONS = {*LON, "169.254.128.9", "169.254.128.13"}
"""The gateway's sessions with each circuit's MSEEs, both instances'."""


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Cli, str]]:
    with running_lab("two-circuits.yaml", "set") as (cli, name, up):
        assert up["established"]
        yield cli, name


def kernel_hops(cli: Cli, name: str) -> list[str]:
    """The next hops of on-premises' route in the gateway's kernel: where the VNet's packets go."""
    rows = json.loads(cli.run("exec", "--lab", name, "hub-gw", "--", "ip", "-j", "route", "show",
                              "10.1.0.0/16").stdout)
    if not rows:
        return []
    hops = [h["gateway"] for h in rows[0].get("nexthops", [])] or [rows[0].get("gateway", "")]
    return sorted(hops)


def sessions(cli: Cli, name: str, node: str) -> dict[str, str]:
    return {s["neighbor"]: s["state"] for s in cli.json("status", "--lab", name)["sessions"] if s["node"] == node}


def test_the_weight_moves_azures_traffic_to_the_other_circuit_and_back(lab: tuple[Cli, str]) -> None:
    cli, name = lab
    # lon-ce prepends: with equal weights the VNet uses Amsterdam's two MSEEs.
    assert wait_for("on-premises via Amsterdam", lambda: kernel_hops(cli, name) == sorted(AMS))
    done = cli.json("set", "weight", "hub", "contoso-lon", "100", "--lab", name)
    assert done["setting"] == "weight" and done["weight"] == 100
    wait_for("on-premises via London", lambda: kernel_hops(cli, name) == sorted(LON), timeout=5)
    cli.json("set", "weight", "hub", "contoso-lon", "0", "--lab", name)
    wait_for("on-premises via Amsterdam again", lambda: kernel_hops(cli, name) == sorted(AMS), timeout=5)


def test_a_deleted_connection_ends_its_sessions_at_both_ends_and_comes_back(lab: tuple[Cli, str]) -> None:
    cli, name = lab
    assert sessions(cli, name, "contoso-ams-msee1")["169.254.0.2"] == "established"
    cli.json("set", "connection", "hub", "contoso-ams", "off", "--lab", name)
    try:
        gone = wait_for("Amsterdam's sessions gone from both ends", lambda: (
            not {"169.254.0.2", "169.254.128.2"} & set(sessions(cli, name, "contoso-ams-msee1"))
            and not AMS_SESSIONS & set(sessions(cli, name, "hub-gw")) and kernel_hops(cli, name) == sorted(LON)),
            timeout=10)
        assert gone
        assert set(sessions(cli, name, "hub-gw")) == LON_SESSIONS
    finally:
        cli.json("set", "connection", "hub", "contoso-ams", "on", "--lab", name)
    wait_for("Amsterdam back", lambda: sessions(cli, name, "hub-gw").get("169.254.0.1") == "established"
             and sessions(cli, name, "contoso-ams-msee1").get("169.254.0.2") == "established", timeout=20)
    wait_for("on-premises via Amsterdam again", lambda: kernel_hops(cli, name) == sorted(AMS), timeout=10)


@pytest.mark.parametrize(("args", "words"), [
    (["weight", "spoke", "contoso-ams", "5"], "no VNet 'spoke' in lab"),
    (["weight", "hub", "fabrikam", "5"],
     "VNet hub has no connection to circuit 'fabrikam'; connected: contoso-ams, contoso-lon"),
    (["weight", "hub", "contoso-ams", "heavy"], "weight 'heavy': expected a whole number 0-32000"),
    (["weight", "hub", "contoso-ams", "40000"], "weight 40000: expected 0-32000"),
    (["connection", "hub", "contoso-ams", "maybe"], "connection 'maybe': expected on or off"),
    (["connection", "hub", "fabrikam", "off"], "VNet hub has no connection to circuit 'fabrikam'"),
])
def test_a_setting_that_cannot_be_made_exits_2_saying_why(lab: tuple[Cli, str], args: list[str], words: str) -> None:
    cli, name = lab
    proc = cli.run("set", *args, "--lab", name, check=False)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert kernel_hops(cli, name) == sorted(AMS)  # nothing changed
