"""Kernel FIB programming (bgplab.bgp.fib).

The codec tests need no privileges: what we pack is decoded by pyroute2, an independent netlink
implementation, and what we parse was packed by pyroute2 (or, for VRF devices, laid out by hand
from the kernel headers). The `interop` tests program a real kernel FIB in a namespace joined by a
veth to a "neighbours" namespace holding three routers' addresses on the connected subnets, and
check every result with iproute2 (`ip -j route`), not with our own read-back.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg  # type: ignore[import-untyped]
from pyroute2.netlink.rtnl.rtmsg import rtmsg  # type: ignore[import-untyped]

from bgplab.bgp.fib import (
    BLACKHOLE,
    DEFAULT_METRIC,
    RTPROT_BGPLAB,
    ApplyResult,
    Fib,
    FibError,
    FibFeeder,
    RouteError,
    VrfUnsupported,
    probe_vrf,
)
from bgplab.bgp.fib import worker as fibworker
from bgplab.bgp.fib.rtnetlink import RT_TABLE_COMPAT, KernelRoute, RouteEncoder, parse_route
from bgplab.bgp.fib.vrf import vrf_table_of
from bgplab.bgp.rib import LOCAL, DecisionOptions, LocRib, PeerInfo
from bgplab.bgp.sockets import NetnsError
from bgplab.bgp.wire import IPV4_UNICAST, IPV6_UNICAST, PathAttributes, as_sequence
from bgplab.bgp.wire.nlri import parse_prefix
from bgplab.testing.netns import LinkedPair, add_address

NH4 = ("192.0.2.2", "192.0.2.3", "192.0.2.4")
NH6 = ("2001:db8::2", "2001:db8::3", "2001:db8::4")


def key(prefix: str) -> int:
    return parse_prefix(prefix)[1]


def v4(prefix: str, *hops: str) -> tuple[tuple[int, int], int, tuple[str, ...]]:
    return (IPV4_UNICAST, key(prefix), hops)


def v6(prefix: str, *hops: str) -> tuple[tuple[int, int], int, tuple[str, ...]]:
    return (IPV6_UNICAST, key(prefix), hops)


# -- codec, against pyroute2 -------------------------------------------------------------------


def decode(data: bytes) -> Any:
    msg = rtmsg(data)
    msg.decode()
    return msg


def test_add_message_decodes_with_pyroute2() -> None:
    enc = RouteEncoder(table=100, protocol=RTPROT_BGPLAB, metric=20)
    tail = enc.tail(socket.AF_INET, ("192.0.2.2",))
    assert isinstance(tail, bytes)
    msg = decode(enc.add(7, 0, socket.AF_INET, key("10.1.0.0/16"), tail))
    assert msg["header"]["type"] == 24 and msg["header"]["sequence_number"] == 7
    assert msg["header"]["length"] == len(enc.add(7, 0, socket.AF_INET, key("10.1.0.0/16"), tail))
    assert (msg["family"], msg["dst_len"], msg["proto"], msg["table"], msg["type"]) == (2, 16, 201, 100, 1)
    assert msg.get("RTA_DST") == "10.1.0.0"
    assert msg.get("RTA_GATEWAY") == "192.0.2.2"
    assert msg.get("RTA_TABLE") == 100 and msg.get("RTA_PRIORITY") == 20


def test_multipath_message_decodes_with_pyroute2() -> None:
    enc = RouteEncoder(table=1000, protocol=RTPROT_BGPLAB, metric=None)
    tail = enc.tail(socket.AF_INET6, NH6[:2])
    assert isinstance(tail, bytes)
    msg = decode(enc.add(1, 0, socket.AF_INET6, key("2001:db8:5::/48"), tail))
    assert msg["table"] == RT_TABLE_COMPAT and msg.get("RTA_TABLE") == 1000
    assert msg.get("RTA_PRIORITY") is None
    assert msg.get("RTA_DST") == "2001:db8:5::"
    assert [hop.get("RTA_GATEWAY") for hop in msg.get("RTA_MULTIPATH")] == list(NH6[:2])


def test_ipv4_route_via_ipv6_next_hop_uses_rta_via() -> None:
    enc = RouteEncoder(table=254, protocol=RTPROT_BGPLAB, metric=20)
    tail = enc.tail(socket.AF_INET, ("2001:db8::2",))
    assert isinstance(tail, bytes)
    msg = decode(enc.add(1, 0, socket.AF_INET, key("10.4.0.0/16"), tail))
    assert msg.get("RTA_VIA")["addr"] == "2001:db8::2"


def test_delete_message_matches_protocol_and_table_only() -> None:
    enc = RouteEncoder(table=100, protocol=RTPROT_BGPLAB, metric=20)
    msg = decode(enc.delete(3, 0, socket.AF_INET, key("10.1.0.0/16"), 20))
    assert msg["header"]["type"] == 25
    assert (msg["proto"], msg["scope"], msg["type"]) == (RTPROT_BGPLAB, 255, 0)
    assert msg.get("RTA_GATEWAY") is None and msg.get("RTA_TABLE") == 100 and msg.get("RTA_PRIORITY") == 20


def test_unencodable_next_hops_are_reasons_not_exceptions() -> None:
    enc = RouteEncoder(table=254, protocol=RTPROT_BGPLAB, metric=20)
    assert enc.tail(socket.AF_INET, ("not-an-address",))[0] == errno.EINVAL
    assert enc.tail(socket.AF_INET6, ("192.0.2.2",))[0] == errno.EINVAL
    assert enc.tail(socket.AF_INET6, ("fe80::1%nosuchdev0",))[0] == errno.ENODEV


def test_parse_route_made_by_pyroute2() -> None:
    msg = rtmsg()
    msg["header"]["type"] = 24
    msg["family"], msg["dst_len"], msg["table"], msg["proto"], msg["type"] = 2, 24, 100, RTPROT_BGPLAB, 1
    msg["attrs"] = [
        ("RTA_DST", "10.9.8.0"),
        ("RTA_TABLE", 100),
        ("RTA_PRIORITY", 20),
        ("RTA_MULTIPATH", [{"attrs": [("RTA_GATEWAY", h)], "oif": 2} for h in NH4[:2]]),
    ]
    msg.encode()
    route = parse_route(memoryview(bytes(msg.data)), str)
    assert route == KernelRoute(IPV4_UNICAST, key("10.9.8.0/24"), 100, RTPROT_BGPLAB, 20, NH4[:2])


def test_vrf_table_read_from_kernel_layout() -> None:
    """An RTM_NEWLINK for a VRF device as the kernel lays it out (linux/if_link.h), read via pyroute2."""

    def nla(kind: int, value: bytes) -> bytes:
        return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)

    linkinfo = nla(1, b"vrf\0") + nla(2, nla(1, struct.pack("=I", 1001)))  # INFO_KIND, INFO_DATA{VRF_TABLE}
    body = struct.pack("=BxHiII", 0, 1, 5, 0, 0) + nla(3, b"red\0") + nla(18, linkinfo)  # IFNAME, LINKINFO
    msg = ifinfmsg(struct.pack("=IHHII", 16 + len(body), 16, 0, 0, 0) + body)
    msg.decode()
    assert vrf_table_of(msg) == 1001


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        Fib(table=100, vrf="red")
    with pytest.raises(ValueError, match="local"):
        Fib(table=255)
    with pytest.raises(ValueError, match="kernel"):
        Fib(protocol=2)
    with pytest.raises(FibError, match="known only once"):
        _ = Fib(vrf="red").table


def test_route_error_names_prefix_and_reason() -> None:
    err = RouteError(
        IPV4_UNICAST, key("10.3.0.0/16"), ("198.51.100.1",), errno.ENETUNREACH, "Nexthop has invalid gateway"
    )
    assert str(err) == "10.3.0.0/16 via 198.51.100.1: ENETUNREACH: Nexthop has invalid gateway"


# -- the kernel FIB in a namespace -------------------------------------------------------------


@pytest.fixture
def lab() -> Iterator[LinkedPair]:
    """Side a is the FIB's namespace; side b holds the neighbours .2, .3 and .4 on the connected subnets."""
    with LinkedPair("bfib") as pair:
        for h4, h6 in zip(NH4[1:], NH6[1:], strict=True):
            add_address(pair.b, pair.ifname, f"{h4}/24")
            add_address(pair.b, pair.ifname, f"{h6}/64")
        yield pair


@pytest.fixture
async def fib(lab: LinkedPair) -> AsyncIterator[Fib]:
    async with Fib(lab.a.name) as f:
        yield f


def ip_routes(lab: LinkedPair, *args: str) -> dict[str, Any]:
    """`ip -j route show ARGS` in the FIB's namespace, by destination."""
    out = lab.a.run(["ip", "-j", "route", "show", *args]).stdout
    return {r["dst"]: r for r in json.loads(out or "[]")}


def ip_routes6(lab: LinkedPair, *args: str) -> dict[str, Any]:
    out = lab.a.run(["ip", "-6", "-j", "route", "show", *args]).stdout
    return {r["dst"]: r for r in json.loads(out or "[]")}


def gateways(route: dict[str, Any]) -> list[str]:
    if "nexthops" in route:
        return [h["gateway"] for h in route["nexthops"]]
    return [route["gateway"]]


def ours_everywhere(lab: LinkedPair) -> list[dict[str, Any]]:
    """Every route with our protocol, in any table, either family."""
    found = []
    for fam in ("-4", "-6"):
        out = lab.a.run(["ip", fam, "-j", "route", "show", "table", "all", "proto", str(RTPROT_BGPLAB)]).stdout
        found += json.loads(out or "[]")
    return found


interop = pytest.mark.interop


@interop
async def test_install_ipv4_and_ipv6(lab: LinkedPair, fib: Fib) -> None:
    result = await fib.apply([v4("10.1.0.0/16", NH4[0]), v6("2001:db8:1::/48", NH6[0]), v4("10.2.0.0/24", NH4[1])])
    assert result.ok and result.installed == 3
    routes4, routes6 = ip_routes(lab), ip_routes6(lab)
    assert gateways(routes4["10.1.0.0/16"]) == [NH4[0]] and gateways(routes4["10.2.0.0/24"]) == [NH4[1]]
    assert gateways(routes6["2001:db8:1::/48"]) == [NH6[0]]
    for route in (routes4["10.1.0.0/16"], routes6["2001:db8:1::/48"]):
        assert route["protocol"] == str(RTPROT_BGPLAB) and route["metric"] == DEFAULT_METRIC
    assert await fib.routes() == {
        (IPV4_UNICAST, key("10.1.0.0/16")): (NH4[0],),
        (IPV4_UNICAST, key("10.2.0.0/24")): (NH4[1],),
        (IPV6_UNICAST, key("2001:db8:1::/48")): (NH6[0],),
    }
    assert set(await fib.routes(IPV6_UNICAST)) == {(IPV6_UNICAST, key("2001:db8:1::/48"))}


@interop
async def test_replace_next_hop(lab: LinkedPair, fib: Fib) -> None:
    await fib.apply([v4("10.1.0.0/16", NH4[0]), v6("2001:db8:1::/48", NH6[0])])
    result = await fib.apply([v4("10.1.0.0/16", NH4[2]), v6("2001:db8:1::/48", NH6[2])])
    assert result.ok and result.installed == 2
    assert gateways(ip_routes(lab)["10.1.0.0/16"]) == [NH4[2]]
    assert gateways(ip_routes6(lab)["2001:db8:1::/48"]) == [NH6[2]]
    assert len(ours_everywhere(lab)) == 2  # replaced, not added beside


@interop
async def test_ecmp_then_one_path_withdrawn(lab: LinkedPair, fib: Fib) -> None:
    result = await fib.apply([v4("10.1.0.0/16", *NH4[:2]), v6("2001:db8:1::/48", *NH6[:2])])
    assert result.ok
    r4, r6 = ip_routes(lab)["10.1.0.0/16"], ip_routes6(lab)["2001:db8:1::/48"]
    assert sorted(gateways(r4)) == sorted(NH4[:2]) and "nexthops" in r4
    assert sorted(gateways(r6)) == sorted(NH6[:2]) and "nexthops" in r6
    result = await fib.apply([v4("10.1.0.0/16", NH4[1]), v6("2001:db8:1::/48", NH6[1])])
    assert result.ok
    r4, r6 = ip_routes(lab)["10.1.0.0/16"], ip_routes6(lab)["2001:db8:1::/48"]
    assert "nexthops" not in r4 and r4["gateway"] == NH4[1]
    assert "nexthops" not in r6 and r6["gateway"] == NH6[1]
    # ...and back to three paths, the IPv6 replace taking every sibling along.
    assert (await fib.apply([v4("10.1.0.0/16", *NH4), v6("2001:db8:1::/48", *NH6)])).ok
    assert sorted(gateways(ip_routes(lab)["10.1.0.0/16"])) == sorted(NH4)
    assert sorted(gateways(ip_routes6(lab)["2001:db8:1::/48"])) == sorted(NH6)
    assert sorted((await fib.routes())[(IPV6_UNICAST, key("2001:db8:1::/48"))]) == sorted(NH6)


@interop
async def test_delete_on_withdraw(lab: LinkedPair, fib: Fib) -> None:
    await fib.apply([v4("10.1.0.0/16", NH4[0]), v6("2001:db8:1::/48", *NH6[:2]), v4("10.2.0.0/16", NH4[0])])
    result = await fib.apply([v4("10.1.0.0/16"), v6("2001:db8:1::/48"), v4("10.99.0.0/16")])  # the last: never there
    assert result.ok and result.removed == 3
    assert set(ip_routes(lab)) == {"10.2.0.0/16", "192.0.2.0/24"}
    assert "2001:db8:1::/48" not in ip_routes6(lab)


@interop
async def test_blackhole_routes_install_replace_and_flush(lab: LinkedPair, fib: Fib) -> None:
    result = await fib.apply([v4("10.0.0.0/8", BLACKHOLE), v6("2001:db8:9::/48", BLACKHOLE)])
    assert result.ok and result.installed == 2
    out4 = lab.a.run(["ip", "-j", "route", "show", "type", "blackhole"]).stdout
    assert [r["dst"] for r in json.loads(out4)] == ["10.0.0.0/8"]
    assert await fib.routes() == {
        (IPV4_UNICAST, key("10.0.0.0/8")): (BLACKHOLE,),
        (IPV6_UNICAST, key("2001:db8:9::/48")): (BLACKHOLE,),
    }
    assert (await fib.apply([v4("10.0.0.0/8", NH4[0])])).ok  # a blackhole becomes a forwarding route
    assert gateways(ip_routes(lab)["10.0.0.0/8"]) == [NH4[0]]
    assert (await fib.apply([v4("10.0.0.0/8", BLACKHOLE)])).ok
    assert await fib.flush() == 2
    assert ours_everywhere(lab) == []


@interop
async def test_routes_of_others_are_left_alone(lab: LinkedPair, fib: Fib) -> None:
    lab.a.run(["ip", "route", "add", "10.9.0.0/16", "via", NH4[0], "proto", "static"])
    lab.a.run(["ip", "route", "add", "10.1.0.0/16", "via", NH4[0], "proto", "static", "metric", "5"])
    # The connected prefixes themselves, as BGP routes: metric 20 sits beside the kernel's own routes
    # (metric 0 for IPv4, 256 for IPv6) instead of replacing them.
    result = await fib.apply([v4("192.0.2.0/24", NH4[1]), v4("10.1.0.0/16", NH4[1]), v6("2001:db8::/64", NH6[1])])
    assert result.ok
    connected = lab.a.run(["ip", "-j", "route", "show", "192.0.2.0/24", "proto", "kernel"]).stdout
    assert json.loads(connected)[0]["dev"] == lab.ifname
    await fib.apply([v4("192.0.2.0/24"), v4("10.1.0.0/16"), v4("10.9.0.0/16"), v6("2001:db8::/64")])
    assert await fib.flush() == 0
    routes = ip_routes(lab)
    assert routes["10.9.0.0/16"]["protocol"] == "static" and routes["10.1.0.0/16"]["protocol"] == "static"
    assert routes["192.0.2.0/24"]["protocol"] == "kernel"
    assert ip_routes6(lab)["2001:db8::/64"]["protocol"] == "kernel"


@interop
async def test_table_id_leaves_main_untouched(lab: LinkedPair) -> None:
    main_before = (ip_routes(lab), ip_routes6(lab))
    async with Fib(lab.a.name, table=100) as table_fib, Fib(lab.a.name) as main_fib:
        assert table_fib.table == 100
        assert (await table_fib.apply([v4("10.77.0.0/16", *NH4[:2]), v6("2001:db8:77::/48", NH6[0])])).ok
        assert (await main_fib.apply([v4("10.88.0.0/16", NH4[2])])).ok
        assert sorted(gateways(ip_routes(lab, "table", "100")["10.77.0.0/16"])) == sorted(NH4[:2])
        assert gateways(ip_routes6(lab, "table", "100")["2001:db8:77::/48"]) == [NH6[0]]
        assert set(ip_routes(lab)) - set(main_before[0]) == {"10.88.0.0/16"}
        assert ip_routes6(lab) == main_before[1]
        # Policy routing sends traffic through the table.
        lab.a.run(["ip", "rule", "add", "to", "10.77.0.0/16", "lookup", "100", "pref", "100"])
        got = json.loads(lab.a.run(["ip", "-j", "route", "get", "10.77.1.1"]).stdout)[0]
        assert got["table"] == "100" and got["gateway"] in NH4[:2]
        assert set(await table_fib.routes()) == {
            (IPV4_UNICAST, key("10.77.0.0/16")),
            (IPV6_UNICAST, key("2001:db8:77::/48")),
        }
        assert set(await main_fib.routes()) == {(IPV4_UNICAST, key("10.88.0.0/16"))}
        assert await table_fib.flush() == 2
        assert "10.88.0.0/16" in ip_routes(lab)  # the other table's flush left main alone
    assert (ip_routes(lab), ip_routes6(lab)) == main_before
    assert ip_routes(lab, "table", "100") == {}


@interop
async def test_close_leaves_nothing_behind(lab: LinkedPair) -> None:
    fib = await Fib(lab.a.name).open()
    await fib.apply([v4(f"10.{i}.0.0/16", NH4[i % 3]) for i in range(50)] + [v6("2001:db8:1::/48", *NH6)])
    assert len(ours_everywhere(lab)) == 51
    await fib.close()
    assert ours_everywhere(lab) == []
    await fib.close()  # twice is fine
    with pytest.raises(FibError, match="not open"):
        await fib.apply([v4("10.1.0.0/16", NH4[0])])


@interop
def test_close_without_flush_keeps_routes_sync(lab: LinkedPair) -> None:
    with Fib(lab.a.name) as fib:
        assert fib.apply_sync([v4("10.1.0.0/16", NH4[0])]).ok
        assert fib.routes_sync() == {(IPV4_UNICAST, key("10.1.0.0/16")): (NH4[0],)}
        fib.close_sync(flush=False)
    assert len(ours_everywhere(lab)) == 1  # close_sync(flush=False) first; the with-exit is then a no-op
    with Fib(lab.a.name) as fib:
        assert fib.flush_sync() == 1


@interop
async def test_flush_after_a_crash(lab: LinkedPair) -> None:
    crashed: Fib | None = await Fib(lab.a.name).open()
    assert crashed is not None
    await crashed.apply([v4(f"10.{i}.0.0/16", NH4[0]) for i in range(20)] + [v6("2001:db8:1::/48", NH6[0])])
    threads = {t for t in threading.enumerate() if t.name == f"fib-{lab.a.name}"}
    assert len(threads) == 1
    crashed = None  # dropped without close(), as a crashed process would
    gc.collect()
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()  # the worker and its socket went with the object...
    assert len(ours_everywhere(lab)) == 21  # ...the routes did not
    async with Fib(lab.a.name) as successor:
        assert len(await successor.routes()) == 21
        assert await successor.flush() == 21
        assert ours_everywhere(lab) == []


@interop
async def test_bad_next_hops_are_reported_and_the_rest_lands(lab: LinkedPair, fib: Fib) -> None:
    changes = [
        v4("10.1.0.0/16", NH4[0]),
        v4("10.3.0.0/16", "198.51.100.1"),  # not on a connected subnet
        v6("2001:db8:1::/48", NH6[0]),
        v6("2001:db8:4::/48", "2001:db9::1"),  # not on a connected subnet
        v4("10.5.0.0/16", "bogus"),
        v6("2001:db8:5::/48", NH4[0]),  # an IPv4 next hop for an IPv6 route
        v4("10.6.0.0/16", NH4[0], "198.51.100.1"),  # one bad path spoils the multipath route
        (IPV4_UNICAST, (0x0A070100 << 8) | 16, (NH4[0],)),  # 10.7.1.0/16: host bits set
        ((1, 128), key("10.8.0.0/16"), (NH4[0],)),  # not a family we program
        v4("10.2.0.0/16", NH4[1]),
    ]
    result = await fib.apply(changes)
    assert result.installed == 3
    by_prefix = {e.prefix: e for e in result.errors}
    assert set(by_prefix) == {
        "10.3.0.0/16",
        "2001:db8:4::/48",
        "10.5.0.0/16",
        "2001:db8:5::/48",
        "10.6.0.0/16",
        "10.7.1.0/16",
        "10.8.0.0/16",
    }
    assert by_prefix["10.3.0.0/16"].errno == errno.ENETUNREACH
    assert "gateway" in by_prefix["10.3.0.0/16"].message  # the kernel's extended ack, not just strerror
    assert by_prefix["2001:db8:4::/48"].errno == errno.EHOSTUNREACH
    assert by_prefix["10.5.0.0/16"].errno == errno.EINVAL
    assert by_prefix["10.8.0.0/16"].errno == errno.EAFNOSUPPORT
    assert set(ip_routes(lab)) == {"10.1.0.0/16", "10.2.0.0/16", "192.0.2.0/24"}
    assert "2001:db8:1::/48" in ip_routes6(lab)


@interop
async def test_error_reports_survive_a_tiny_receive_buffer(lab: LinkedPair, monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for a handful of error reports, the kernel drops the rest (ENOBUFS): the batch is
    resent with an ack per request, and still every refusal is reported and every good route lands."""
    monkeypatch.setattr(fibworker, "_BUFFER", 4096)
    async with Fib(lab.a.name) as fib:
        bad = [v4(f"10.{i >> 8}.{i & 255}.0/24", "198.51.100.1") for i in range(600)]
        good = [v4(f"10.100.{i}.0/24", NH4[0]) for i in range(200)]
        result = await fib.apply(bad + good)
        assert len(result.errors) == 600 and all(e.errno == errno.ENETUNREACH for e in result.errors)
        assert result.installed == 200
        assert len(ours_everywhere(lab)) == 200


@interop
async def test_link_local_and_rfc8950_next_hops(lab: LinkedPair, fib: Fib) -> None:
    link_local = f"fe80::2%{lab.ifname}"
    result = await fib.apply([v6("2001:db8:9::/48", link_local), v4("10.9.0.0/16", NH6[0])])
    assert result.ok, result.errors
    r6 = ip_routes6(lab)["2001:db8:9::/48"]
    assert (r6["gateway"], r6["dev"]) == ("fe80::2", lab.ifname)
    r4 = ip_routes(lab)["10.9.0.0/16"]
    assert r4["via"] == {"family": "inet6", "host": NH6[0]}
    assert await fib.routes() == {
        (IPV6_UNICAST, key("2001:db8:9::/48")): (link_local,),
        (IPV4_UNICAST, key("10.9.0.0/16")): (NH6[0],),
    }


@interop
async def test_batches_land_in_call_order(lab: LinkedPair, fib: Fib) -> None:
    add, change, remove = [v4("10.1.0.0/16", NH4[0])], [v4("10.1.0.0/16", NH4[1])], [v4("10.2.0.0/16", NH4[0])]
    await asyncio.gather(fib.apply(add), fib.apply(change), fib.apply(remove), fib.apply([v4("10.2.0.0/16")]))
    assert await fib.routes() == {(IPV4_UNICAST, key("10.1.0.0/16")): (NH4[1],)}


@interop
async def test_10k_routes_in_one_batch_without_stalling_the_loop(lab: LinkedPair, fib: Fib) -> None:
    n = 10_000
    changes = [(IPV4_UNICAST, ((10 << 24 | i << 8) << 8) | 24, NH4[:2] if i % 2 else NH4[:1]) for i in range(n)]
    changes += [(IPV6_UNICAST, ((0x20010DB8_0001 << 80 | i << 64) << 8) | 64, NH6[:2]) for i in range(n)]
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    result = await fib.apply(changes)
    done.set()
    await tick
    assert result.ok and result.installed == 2 * n
    rate = 2 * n / result.seconds
    print(f"\n{2 * n} routes in {result.seconds:.2f}s ({rate:,.0f}/s), longest loop gap {max(gaps) * 1000:.1f} ms")
    assert max(gaps) < 0.25
    assert len(ip_routes(lab)) == n + 1  # and the connected route
    assert len(await fib.routes()) == 2 * n
    assert (await fib.apply([(f, k, ()) for f, k, _ in changes])).removed == 2 * n
    assert ours_everywhere(lab) == []


@interop
async def test_missing_namespace_is_an_error() -> None:
    with pytest.raises(NetnsError, match="bfib-no-such"):
        await Fib("bfib-no-such").open()


@interop
async def test_vrf_that_is_not_there(lab: LinkedPair) -> None:
    """The fallback path: without VRF devices (this machine), the error carries the probe's answer."""
    probe = probe_vrf()
    expected = FibError if probe.supported else VrfUnsupported
    with pytest.raises(expected, match="no VRF device 'red'") as info:
        await Fib(lab.a.name, vrf="red").open()
    if not probe.supported:
        assert probe.detail in str(info.value) and "table=N" in str(info.value)
    with pytest.raises(FibError, match="not a VRF device"):
        await Fib(lab.a.name, vrf=lab.ifname).open()


@interop
async def test_vrf_device_table(lab: LinkedPair) -> None:
    probe = probe_vrf()
    if not probe.supported:
        pytest.skip(f"kernel without VRF devices: {probe.detail}")
    lab.a.run(["ip", "link", "add", "red", "type", "vrf", "table", "1001"])
    lab.a.run(["ip", "link", "set", "red", "up"])
    lab.a.run(["ip", "link", "set", lab.ifname, "master", "red"])
    async with Fib(lab.a.name, vrf="red") as fib:
        assert fib.table == 1001
        assert (await fib.apply([v4("10.1.0.0/16", NH4[0]), v6("2001:db8:1::/48", NH6[0])])).ok
        assert gateways(ip_routes(lab, "vrf", "red")["10.1.0.0/16"]) == [NH4[0]]
        assert gateways(ip_routes6(lab, "vrf", "red")["2001:db8:1::/48"]) == [NH6[0]]
    assert ours_everywhere(lab) == []


@interop
async def test_feeder_follows_the_loc_rib(lab: LinkedPair, fib: Fib) -> None:
    """Real Loc-RIB changes through FibFeeder: one path, ECMP across two peers, one peer gone, all gone."""
    rib = LocRib(65001, "10.255.0.1", DecisionOptions(max_paths=2))
    for address, router_id in (
        (NH4[0], "10.255.0.2"),
        (NH4[1], "10.255.0.3"),
        (NH6[0], "10.255.0.4"),
        (NH6[1], "10.255.0.5"),
    ):
        rib.add_peer(address, PeerInfo(address, router_id, 65002, ebgp=True))
    results: list[ApplyResult] = []
    feeder = FibFeeder(fib, on_result=results.append)
    keys4 = [key(f"10.{i}.0.0/16") for i in range(100)]
    keys6 = [key(f"2001:db8:{i:x}::/48") for i in range(1, 101)]

    def attrs(hop: str) -> PathAttributes:
        return PathAttributes(origin=0, as_path=as_sequence(65002, 64500), next_hop=hop)

    feeder.on_rib_changes(rib.update(NH4[0], IPV4_UNICAST, keys4, attrs(NH4[0])))
    feeder.on_rib_changes(rib.update(NH6[0], IPV6_UNICAST, keys6, attrs(NH6[0])))
    feeder.on_rib_changes(rib.update(NH4[1], IPV4_UNICAST, keys4, attrs(NH4[1])))
    feeder.on_rib_changes(rib.update(NH6[1], IPV6_UNICAST, keys6, attrs(NH6[1])))
    await feeder.idle()
    assert len(results) == 1 and results[0].installed == 200  # coalesced: one batch, final state only
    assert sorted(gateways(ip_routes(lab)["10.7.0.0/16"])) == sorted(NH4[:2])
    assert sorted(gateways(ip_routes6(lab)["2001:db8:7::/48"])) == sorted(NH6[:2])

    feeder.on_rib_changes(rib.remove_peer(NH4[0]))
    feeder.on_rib_changes(rib.remove_peer(NH6[1]))
    await feeder.idle()
    assert gateways(ip_routes(lab)["10.7.0.0/16"]) == [NH4[1]]
    assert gateways(ip_routes6(lab)["2001:db8:7::/48"]) == [NH6[0]]

    # Our own origination wins over learned paths: it is not a route to a next hop, so it leaves the FIB.
    feeder.on_rib_changes(rib.update(LOCAL, IPV4_UNICAST, keys4[:1], attrs("0.0.0.0")))
    feeder.on_rib_changes(rib.remove_peer(NH4[1]))
    feeder.on_rib_changes(rib.remove_peer(NH6[0]))
    await feeder.idle()
    assert ours_everywhere(lab) == []
    assert feeder.failed == 0 and all(r.ok for r in results)
