"""Our MSEE pair and VNet gateway, as node processes, against a real FRR CE pair in namespaces.

One circuit lab serves the whole module (bring-up is about a second); every test leaves it as it
found it: routes withdrawn, drains off, filters detached, faults cleared.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bgplab.expressroute import control
from bgplab.expressroute.services import load_catalogue
from bgplab.testing.daemons import Route
from tests.expressroute.erlab import (
    CE_ASN,
    GATEWAY_LINKS,
    INTERNET_EDGE,
    MSEE_MICROSOFT,
    MSEE_PRIVATE,
    CircuitLab,
    circuit_lab,
    eventually,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

ONPREM = "10.1.0.0/16"
VNET = "10.100.0.0/16"
RESTART = 3.0
MSEE1_PRIVATE, MSEE2_PRIVATE = MSEE_PRIVATE["primary"][1], MSEE_PRIVATE["secondary"][1]
MSEE1_MICROSOFT = MSEE_MICROSOFT["primary"][1]
MSEE1_GW, MSEE2_GW = GATEWAY_LINKS["primary"][0], GATEWAY_LINKS["secondary"][0]


@pytest.fixture(scope="module")
def lab() -> Iterator[CircuitLab]:
    routes = {"ce1": [Route(ONPREM)], "ce2": [Route(ONPREM)]}
    with circuit_lab(ce_routes=routes, restart_after=RESTART) as built:
        for node in ("msee-primary", "msee-secondary"):
            built.wait_sessions(node, 3)
        built.wait_sessions("gateway", 2)
        yield built


def gateway_paths(lab: CircuitLab, prefix: str) -> list[str]:
    return sorted(r["next_hop"] for r in lab.nodes["gateway"].call("routes") if r["network"] == prefix)


def effective(lab: CircuitLab, prefix: str) -> dict[str, Any]:
    """The prefix's Active route, its rows (one per next hop, as Azure lists them) joined."""
    rows = [r for r in lab.nodes["gateway"].call("effective-routes") if r["addressPrefix"] == [prefix]]
    active = [r for r in rows if r["state"] == "Active"]
    assert active and all({**r, "nextHopIpAddress": []} == {**active[0], "nextHopIpAddress": []} for r in active), rows
    return {**active[0], "nextHopIpAddress": [hop for r in active for hop in r["nextHopIpAddress"]]}


def ce_path_from(lab: CircuitLab, ce: str, prefix: str, neighbor: str) -> list[int] | None:
    """The AS path `ce` holds for prefix from one neighbor (any path, not only the best)."""
    out = lab.ces[ce].vtysh(f"show bgp ipv4 unicast {prefix} json")
    for path in json.loads(out or "{}").get("paths", []):
        if path.get("peer", {}).get("peerId") == neighbor:
            return [a for seg in path.get("aspath", {}).get("segments", []) for a in seg["list"]]
    return None


def ce_best_peer(lab: CircuitLab, ce: str, prefix: str) -> str | None:
    out = lab.ces[ce].vtysh(f"show bgp ipv4 unicast {prefix} json")
    for path in json.loads(out or "{}").get("paths", []):
        if path.get("bestpath", {}).get("overall"):
            return str(path["peer"]["peerId"])
    return None


def events_since(lab: CircuitLab, node: str, since: float, want: Any, timeout: float = 20.0) -> dict[str, Any]:
    """The first event record of `node` since `since` (monotonic) that `want` accepts."""
    deadline = time.monotonic() + timeout
    for record in control.follow(lab.nodes[node].control, since=since, timeout=timeout):
        if want(record):
            return record
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{node}: no matching event within {timeout}s")


# ---- private peering


def test_private_peering_up_on_both_msees_with_bfd(lab: CircuitLab) -> None:
    for side in ("primary", "secondary"):
        node, ce_address = f"msee-{side}", MSEE_PRIVATE[side][0]
        customer = {s["neighbor"]: s for s in lab.nodes[node].call("sessions")}[ce_address]
        assert customer["state"] == "established" and customer["remote_as"] == CE_ASN
        eventually(lambda: {s["neighbor"]: s for s in lab.nodes[node].call("sessions")}[ce_address]["bfd"] == "up",
                   f"{node}: BFD up with the CE")
    ce1 = lab.ces["ce1"]
    eventually(lambda: ce1.bfd_state(MSEE1_PRIVATE) == "up", "FRR bfdd sees the MSEE's BFD up")


def test_gateway_holds_customer_prefixes_with_two_next_hops(lab: CircuitLab) -> None:
    eventually(lambda: gateway_paths(lab, ONPREM) == [MSEE1_GW, MSEE2_GW], "a path from each MSEE")
    eventually(lambda: effective(lab, ONPREM)["nextHopIpAddress"] == [MSEE1_GW, MSEE2_GW], "ECMP effective route")
    route = effective(lab, ONPREM)
    assert route["nextHopType"] == "VirtualNetworkGateway"
    assert route["asPath"] == [12076, CE_ASN]
    eventually(lambda: lab.kernel_routes("gw").get(ONPREM) == [MSEE1_GW, MSEE2_GW], "ECMP in the gateway's kernel")
    # Each MSEE forwards to its own CE.
    eventually(lambda: lab.kernel_routes("m1p").get(ONPREM) == [MSEE_PRIVATE["primary"][0]], "MSEE1's kernel route")


def test_customer_sees_vnet_prefix_as_12076_with_custom_and_regional_communities(lab: CircuitLab) -> None:
    route = eventually(lambda: lab.ces["ce1"].received_routes().get(VNET), "VNet prefix at the CE")
    assert ce_path_from(lab, "ce1", VNET, MSEE1_PRIVATE) == [12076]  # 65515 stripped
    assert set(route.communities) >= {"12076:20001", "12076:50002"}  # custom + West Europe (private)
    eventually(lambda: lab.kernel_routes("m1p").get(VNET) == [GATEWAY_LINKS["primary"][1]], "MSEE1's VNet route")


def test_customer_path_that_already_holds_12076_is_rejected(lab: CircuitLab) -> None:
    msee1, ce1 = lab.nodes["msee-primary"], lab.ces["ce1"]
    ce1.announce(Route("10.2.0.0/16", as_path=(12076,)))  # e.g. learned from another circuit
    ce1.announce(Route("10.3.0.0/16"))
    try:
        def received() -> list[str]:
            return [r["network"] for r in msee1.call("routes", peering="private", direction="received")]

        eventually(lambda: "10.3.0.0/16" in received(), "the control prefix accepted")
        eventually(lambda: gateway_paths(lab, "10.3.0.0/16"), "the control prefix at the gateway")
        assert "10.2.0.0/16" not in received()
        assert gateway_paths(lab, "10.2.0.0/16") == []  # nor through the secondary (ce2 learns it over iBGP)
    finally:
        ce1.withdraw("10.2.0.0/16")
        ce1.withdraw("10.3.0.0/16")


def test_forced_tunnelling_default_route_then_internet_back(lab: CircuitLab) -> None:
    assert effective(lab, "0.0.0.0/0")["nextHopType"] == "Internet"
    assert lab.kernel_routes("gw")["default"] == [INTERNET_EDGE[0]]
    for ce in ("ce1", "ce2"):
        lab.ces[ce].announce(Route("0.0.0.0/0"))
    try:
        eventually(lambda: effective(lab, "0.0.0.0/0")["nextHopIpAddress"] == [MSEE1_GW, MSEE2_GW], "0/0 via both")
        assert effective(lab, "0.0.0.0/0")["nextHopType"] == "VirtualNetworkGateway"
        eventually(lambda: lab.kernel_routes("gw").get("default") == [MSEE1_GW, MSEE2_GW], "kernel default via MSEEs")
    finally:
        for ce in ("ce1", "ce2"):
            lab.ces[ce].withdraw("0.0.0.0/0")
    eventually(lambda: effective(lab, "0.0.0.0/0")["nextHopType"] == "Internet", "the internet route back")
    eventually(lambda: lab.kernel_routes("gw").get("default") == [INTERNET_EDGE[0]], "kernel default to the edge")


def test_maintenance_drain_on_primary_moves_both_directions_to_the_secondary(lab: CircuitLab) -> None:
    msee1 = lab.nodes["msee-primary"]
    assert ce_best_peer(lab, "ce1", VNET) == MSEE1_PRIVATE
    msee1.call("drain", on=True)
    try:
        eventually(lambda: ce_path_from(lab, "ce1", VNET, MSEE1_PRIVATE) == [12076] * 4, "prepended path at ce1")
        # ce1 now prefers the secondary's shorter path, learned over iBGP from ce2.
        eventually(lambda: ce_best_peer(lab, "ce1", VNET) == "10.0.12.2", "ce1 prefers the secondary")
        eventually(lambda: effective(lab, ONPREM)["nextHopIpAddress"] == [MSEE2_GW], "gateway uses the secondary only")
        eventually(lambda: lab.kernel_routes("gw").get(ONPREM) == [MSEE2_GW], "kernel follows")
        assert msee1.call("status")["drained"] is True
    finally:
        msee1.call("drain", on=False)
    eventually(lambda: ce_best_peer(lab, "ce1", VNET) == MSEE1_PRIVATE, "ce1 back on the primary")
    eventually(lambda: lab.kernel_routes("gw").get(ONPREM) == [MSEE1_GW, MSEE2_GW], "ECMP again")


def test_prefix_limit_tears_down_with_cease_6_1_and_recovers_by_itself(lab: CircuitLab) -> None:
    msee1, ce1 = lab.nodes["msee-primary"], lab.ces["ce1"]

    def accepted() -> int:
        sessions = {s["neighbor"]: s for s in msee1.call("sessions")}
        return int(sessions[MSEE_PRIVATE["primary"][0]]["accepted"])

    extra = 4000 - accepted() + 1
    bulk = [str(n) for n in list(ipaddress.ip_network("10.64.0.0/12").subnets(new_prefix=24))[:extra]]
    since = time.monotonic()
    ce1.vtysh("configure terminal", f"router bgp {CE_ASN}", "address-family ipv4 unicast",
              *[f"network {p}" for p in bulk])
    try:
        note = events_since(lab, "msee-primary", since,
                            lambda r: r["type"] == "notification" and r["direction"] == "sent")
        assert (note["code"], note["subcode"]) == (6, 1)
        # RFC 4486: AFI 1, SAFI 1, the limit 4000.
        assert note["data"] == "0001" + "01" + f"{4000:08x}"
        assert note["peering"] == "private"
        # and what the CE itself saw, in FRR's own words: it received Cease/Maximum Number of Prefixes Reached
        eventually(lambda: ("received", 6, 1) in ce1.notifications(MSEE1_PRIVATE), "FRR logs the Cease 6/1")
        # Still over the limit: every retry is torn down again; reduce to the limit.
        ce1.vtysh("configure terminal", f"router bgp {CE_ASN}", "address-family ipv4 unicast", f"no network {bulk[-1]}")
        eventually(lambda: lab.session_states("msee-primary")[f"private:{MSEE_PRIVATE['primary'][0]}"] == "established"
                   and accepted() == 4000, "back by itself at the limit", timeout=30 + RESTART)
        time.sleep(RESTART + 1)
        assert lab.session_states("msee-primary")[f"private:{MSEE_PRIVATE['primary'][0]}"] == "established"
    finally:
        ce1.vtysh("configure terminal", f"router bgp {CE_ASN}", "address-family ipv4 unicast",
                  *[f"no network {p}" for p in bulk[:-1]])
    eventually(lambda: accepted() < 100, "bulk withdrawn")


def test_far_end_faults_notification_and_withdraw_all(lab: CircuitLab) -> None:
    msee1, ce1 = lab.nodes["msee-primary"], lab.ces["ce1"]
    before = ce1._neighbor_json(MSEE1_PRIVATE).get("connectionsDropped", 0)
    msee1.call("fault", peering="private", kind="notification", code=6, subcode=4)
    eventually(lambda: ce1._neighbor_json(MSEE1_PRIVATE).get("connectionsDropped", 0) > before, "session reset")
    assert ("received", 6, 4) in ce1.notifications(MSEE1_PRIVATE)  # FRR's own record: Cease/Administrative Reset
    eventually(lambda: ce1.neighbor_state(MSEE1_PRIVATE) == "established", "and back")
    eventually(lambda: ce_path_from(lab, "ce1", VNET, MSEE1_PRIVATE) == [12076], "VNet route back")
    msee1.call("fault", peering="private", kind="withdraw-all", on=True)
    try:
        eventually(lambda: ce_path_from(lab, "ce1", VNET, MSEE1_PRIVATE) is None, "everything withdrawn")
        assert ce1.neighbor_state(MSEE1_PRIVATE) == "established"
    finally:
        msee1.call("fault", peering="private", kind="withdraw-all", on=False)
    eventually(lambda: ce_path_from(lab, "ce1", VNET, MSEE1_PRIVATE) == [12076], "re-advertised")


def test_silent_far_end_expires_the_customers_hold_timer(lab: CircuitLab) -> None:
    msee2, ce2 = lab.nodes["msee-secondary"], lab.ces["ce2"]
    since = time.monotonic()
    msee2.call("fault", peering="private", kind="silent", on=True)
    try:
        note = events_since(lab, "msee-secondary", since,
                            lambda r: r["type"] == "notification" and r["direction"] == "received", timeout=20)
        assert (note["code"], note["subcode"]) == (4, 0)  # the CE's hold timer expired
    finally:
        msee2.call("fault", peering="private", kind="silent", on=False)
    eventually(lambda: ce2.neighbor_state(MSEE2_PRIVATE) == "established", "session back once we speak again",
               timeout=30)


def test_peering_disable_takes_the_session_down_and_enable_brings_it_back(lab: CircuitLab) -> None:
    msee2, ce2 = lab.nodes["msee-secondary"], lab.ces["ce2"]
    msee2.call("peering", peering="private", enabled=False)
    try:
        eventually(lambda: ce2.neighbor_state(MSEE2_PRIVATE) != "established", "CE session down")
        eventually(lambda: gateway_paths(lab, ONPREM) == [MSEE1_GW], "gateway keeps only the primary")
        assert "10.1.0.0/16" not in lab.kernel_routes("m2p")  # nothing left in the disabled domain's FIB
        with pytest.raises(control.ControlError, match="private peering is disabled"):
            msee2.call("routes", peering="private")
    finally:
        msee2.call("peering", peering="private", enabled=True)
    eventually(lambda: ce2.neighbor_state(MSEE2_PRIVATE) == "established", "CE session back", timeout=30)
    eventually(lambda: gateway_paths(lab, ONPREM) == [MSEE1_GW, MSEE2_GW], "both paths again", timeout=30)


# ---- Microsoft peering


def test_microsoft_peering_advertises_nothing_until_a_filter_is_attached(lab: CircuitLab) -> None:
    msee1 = lab.nodes["msee-primary"]
    assert msee1.call("routes", peering="microsoft", direction="advertised") == []
    assert not [r for r in lab.ces["ce1"].received_routes().values() if r.peer == MSEE1_MICROSOFT]
    catalogue = load_catalogue()
    exchange = 0x2F2C1392  # 12076:5010
    # A Standard circuit in West Europe: the Exchange Online prefixes of Europe's regions only.
    europe = {key for key, region in catalogue.regions.items() if region.geo == "europe"}
    expected = {str(p.prefix) for p in catalogue.prefixes
                if exchange in p.communities and p.prefix.version == 4 and p.region in europe}
    assert expected and {"198.18.0.0/24", "198.18.16.0/24", "198.18.64.0/24"} == expected
    msee1.call("route-filter", name="exchange")
    try:
        def from_msee() -> dict[str, Any]:
            out = lab.ces["ce1"].vtysh("show bgp ipv4 unicast neighbors 198.51.100.2 routes json")
            return dict(json.loads(out or "{}").get("routes", {}))

        eventually(lambda: set(from_msee()) == expected, "exactly the Exchange Online prefixes")
        sample = next(iter(expected))
        view = lab.ces["ce1"].received_routes()[sample]
        region = next(p.region for p in catalogue.prefixes if str(p.prefix) == sample)
        regional = catalogue.region(region).microsoft_community
        assert set(view.communities) == {"12076:5010", f"12076:{regional & 0xFFFF}"}
        assert ce_path_from(lab, "ce1", sample, MSEE1_MICROSOFT) == [12076]
    finally:
        msee1.call("route-filter", name=None)
    eventually(lambda: msee1.call("routes", peering="microsoft", direction="advertised") == [], "detach withdraws all")


def test_microsoft_peering_drops_rfc1918_silently_and_keeps_the_session(lab: CircuitLab) -> None:
    msee1, ce1 = lab.nodes["msee-primary"], lab.ces["ce1"]
    flaps = {s["neighbor"]: s["flaps"] for s in msee1.call("sessions")}[MSEE_MICROSOFT["primary"][0]]
    for prefix in ("10.9.0.0/16", "203.0.113.0/28", "203.0.113.64/26"):
        ce1.announce(Route(prefix))
    try:
        eventually(
            lambda: [r["network"] for r in msee1.call("routes", peering="microsoft", direction="received")]
            == ["203.0.113.0/28"],
            "only the listed public prefix accepted",
        )
        sessions = {s["neighbor"]: s for s in msee1.call("sessions")}
        microsoft = sessions[MSEE_MICROSOFT["primary"][0]]
        assert microsoft["state"] == "established" and microsoft["flaps"] == flaps
        assert microsoft["received"] > microsoft["accepted"]  # dropped, per prefix, not the session
    finally:
        for prefix in ("10.9.0.0/16", "203.0.113.0/28", "203.0.113.64/26"):
            ce1.withdraw(prefix)


# ---- the control API and shutdown


def test_control_api_refuses_bad_commands_clearly(lab: CircuitLab) -> None:
    msee1 = lab.nodes["msee-primary"]
    with pytest.raises(control.ControlError, match=r"unknown command 'frobnicate'; this node knows: .*drain"):
        msee1.call("frobnicate")
    with pytest.raises(control.ControlError, match="peering 'nope': expected one of private, microsoft, public"):
        msee1.call("routes", peering="nope")
    with pytest.raises(control.ControlError, match="route filter 'nope' is not defined; known: exchange"):
        msee1.call("route-filter", name="nope")
    with pytest.raises(control.ControlError, match="on: expected true or false"):
        msee1.call("drain", on="yes")
    assert msee1.call("status")["drained"] is False  # nothing half-applied


def test_nodes_stop_cleanly_leaving_no_routes_or_sockets() -> None:
    with circuit_lab(ce_routes={"ce1": [Route(ONPREM)]}) as lab:
        lab.wait_sessions("gateway", 2)
        eventually(lambda: ONPREM in lab.kernel_routes("gw"), "a route to remove")
        for name in ("gateway", "msee-primary"):
            node = lab.nodes[name]
            assert node.stop() == 0, node.log.read_text()[-2000:]
            with pytest.raises(control.ControlError, match="cannot reach"):
                node.call("status")
        assert lab.kernel_routes("gw") == {}
        assert lab.kernel_routes("m1p") == {}
