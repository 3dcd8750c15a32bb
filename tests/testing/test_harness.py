"""The harness's daemons on their router kinds' renderers and parsers, without running a daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bgplab.lab import kinds
from bgplab.lab.kinds import bird, exabgp, frr, gobgp
from bgplab.testing.daemons import ExabgpDaemon, Neighbor, Route, RouteView

ROUTE = Route("10.1.0.0/16", next_hop="192.0.2.9", as_path=(64500, 64501), med=5, local_pref=200,
              communities=("65535:65281", "1:2"), large_communities=("1:2:3",))


def test_kinds_register_themselves_in_the_order_messages_list_them() -> None:
    assert kinds.KINDS == ("frr", "bird", "gobgp", "exabgp", "linux", "msee", "gateway", "host")
    assert kinds.ROUTER_KINDS == ("frr", "bird", "gobgp", "exabgp", "linux")
    assert [kinds.kind_of(k).start_rank for k in ("frr", "msee", "gateway", "host")] == [0, 1, 2, 3]
    assert [k for k in kinds.KINDS if kinds.kind_of(k).events] == ["msee", "gateway"]


def test_a_route_row_becomes_a_route_view() -> None:
    row = {"network": "10.1.0.0/16", "next_hop": "", "path": "64500 64501", "med": 5, "local_pref": None,
           "communities": ["2:1", "1:2", "2:1"], "large_communities": [], "source": "2001:DB8::2"}
    assert RouteView.of_row(row) == RouteView(prefix="10.1.0.0/16", peer="2001:db8::2", next_hop=None,
                                              as_path=(64500, 64501), med=5, communities=("1:2", "2:1"))


def test_bird_paths_of_the_harness_protocols_are_its_received_routes() -> None:
    text = ("10.120.0.0/16        unicast [bl_n0 03:04:06.000] * (100) [AS12076i]\n"
            "\tBGP.as_path: 12076\n\tBGP.next_hop: 192.0.2.2\n\tBGP.local_pref: 150\n"
            "                     unicast [bl_n1 03:04:07.000] (100) [AS12076i]\n"
            "\tBGP.as_path: 65001 12076\n\tBGP.next_hop: 192.0.2.3\n\tBGP.local_pref: 100\n")
    rows = bird.route_rows(text, {"bl_n0": "192.0.2.2", "bl_n1": "192.0.2.3"}, {"bl_n1"})
    assert [(r["source"], r["best"], r["local_pref"], r["family"]) for r in rows] == [
        ("192.0.2.2", True, None, "ipv4-unicast"), ("192.0.2.3", False, 100, "ipv4-unicast")]
    protocols = bird.parse_protocols("bl_n0    BGP        ---        up     12:00:00.000  Established\n"
                                     "  BGP state:          Established\n"
                                     "    Routes:         7 imported, 1 filtered, 3 exported, 7 preferred\n")
    session = bird.session_row(protocols[0])
    assert (session["state"], session["accepted"], session["received"]) == ("established", 7, 8)


def test_gobgp_originates_every_attribute_over_its_api() -> None:
    assert gobgp.rib_add_args(ROUTE.prefix, next_hop=ROUTE.next_hop, as_path=ROUTE.as_path, med=ROUTE.med,
                              local_pref=ROUTE.local_pref, communities=ROUTE.communities,
                              large_communities=ROUTE.large_communities) == [
        "global", "rib", "add", "10.1.0.0/16", "origin", "igp", "nexthop", "192.0.2.9", "aspath", "64500,64501",
        "med", "5", "local-pref", "200", "community", "65535:65281,1:2", "large-community", "1:2:3", "-a", "ipv4"]
    assert gobgp.rib_add_args("2001:db8::/32") == ["global", "rib", "add", "2001:db8::/32", "origin", "igp",
                                                   "-a", "ipv6"]


def test_exabgp_routes_carry_the_asn_on_ebgp_only() -> None:
    ebgp, ibgp = Neighbor("192.0.2.2", 65002), Neighbor("192.0.2.3", 65001)
    assert exabgp.harness_route_spec(ROUTE, 65001, ebgp) == (
        "route 10.1.0.0/16 next-hop 192.0.2.9 origin igp as-path [ 65001 64500 64501 ] med 5 "
        "local-preference 200 community [ 65535:65281 1:2 ] large-community [ 1:2:3 ]")
    assert exabgp.harness_route_spec(Route("10.2.0.0/16"), 65001, ibgp) == "route 10.2.0.0/16 next-hop self origin igp"


class _Ns:
    name = "none"


def test_exabgp_drops_as_loops_and_takes_the_first_peer(tmp_path: Path) -> None:
    def update(peer: str, prefix: str, path: list[int]) -> dict[str, Any]:
        return {"type": "update", "neighbor": {
            "address": {"local": "192.0.2.1", "peer": peer}, "asn": {"local": 65001, "peer": path[0]},
            "message": {"update": {"attribute": {"as-path": path},
                                   "announce": {"ipv4 unicast": {peer: [{"nlri": prefix}]}}}}}}

    log = tmp_path / "received.jsonl"
    log.write_text("".join(json.dumps(m) + "\n" for m in [
        update("192.0.2.2", "10.1.0.0/16", [65002]), update("192.0.2.2", "10.2.0.0/16", [65002, 65001]),
        update("192.0.2.3", "10.1.0.0/16", [65003]), update("192.0.2.3", "10.2.0.0/16", [65003])]))
    neighbors = [Neighbor("192.0.2.2", 65002), Neighbor("192.0.2.3", 65003)]
    daemon = ExabgpDaemon(_Ns(), 65001, "192.0.2.1", neighbors)  # type: ignore[arg-type]
    daemon._messages = exabgp.MessageLog(log)
    assert {p: v.peer for p, v in daemon._received_routes().items()} == {
        "10.1.0.0/16": "192.0.2.2", "10.2.0.0/16": "192.0.2.3"}
    assert (daemon.received_count("192.0.2.2"), daemon.received_count("192.0.2.3")) == (1, 2)


def test_frr_next_hops_share_an_entry_and_leave_it_by_prefix() -> None:
    originated = frr.Originated()
    config = originated.render("frr-65001", 65001, "192.0.2.1", [Neighbor("192.0.2.2", 65002)],
                               [ROUTE, Route("10.3.0.0/16", next_hop="192.0.2.9"), Route("10.4.0.0/16")])
    assert config.count("route-map BL-OUT permit 1\n") == 1 and "route-map BL-OUT permit 2" not in config
    assert "ip prefix-list BL-NH-1 permit 10.3.0.0/16" in config
    assert originated.has_next_hop("10.3.0.0/16") and not originated.has_next_hop("10.4.0.0/16")
    assert originated.unset_next_hop("10.3.0.0/16") == ["no ip prefix-list BL-NH-1 permit 10.3.0.0/16"]
    assert originated.unset_next_hop("10.3.0.0/16") == []
