"""The harness against real daemons: namespaces clean up, and every daemon peers with the others.

Daemons peer with each other here, not with bgplab's speaker, so that a failure points at the
harness. Each ordered pair sends in both directions, so every daemon is shown both originating
and receiving every attribute the harness promises.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import pytest

from bgplab.testing.daemons import (
    BgpDaemon,
    BirdDaemon,
    DaemonError,
    ExabgpDaemon,
    FrrDaemon,
    GobgpDaemon,
    Neighbor,
    Route,
    RouteView,
    wait_until,
)
from bgplab.testing.netns import LinkedPair, Netns, drop_all, set_link

DAEMONS: dict[str, type[BgpDaemon]] = {
    "frr": FrrDaemon, "bird": BirdDaemon, "gobgp": GobgpDaemon, "exabgp": ExabgpDaemon}
pytestmark = pytest.mark.interop

ASN_A, ASN_B = 65001, 65002
P = LinkedPair


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def neighbors(v4: str, v6: str, asn: int, **options: Any) -> list[Neighbor]:
    """One IPv4 and one IPv6 session, each carrying its own family only."""
    return [Neighbor(v4, asn, families=("ipv4",), **options), Neighbor(v6, asn, families=("ipv6",), **options)]


@pytest.fixture
def pair() -> Iterator[LinkedPair]:
    with LinkedPair() as p:
        yield p


def start_pair(stack: ExitStack, pair: LinkedPair, kind_a: str, kind_b: str, asn_b: int = ASN_B,
               routes_a: list[Route] | None = None, routes_b: list[Route] | None = None,
               **options: Any) -> tuple[BgpDaemon, BgpDaemon]:
    """Start daemon a (the .1 side) and daemon b (the .2 side), stopped when stack closes."""
    a = DAEMONS[kind_a](pair.a, ASN_A, P.A4, neighbors(P.B4, P.B6, asn_b, **options), routes_a or [])
    b = DAEMONS[kind_b](pair.b, asn_b, P.B4, neighbors(P.A4, P.A6, ASN_A, **options), routes_b or [])
    stack.enter_context(a)
    stack.enter_context(b)
    return a, b


def wait_established(a: BgpDaemon, b: BgpDaemon, timeout: float = 30.0) -> None:
    for daemon, peers in ((a, (P.B4, P.B6)), (b, (P.A4, P.A6))):
        for peer in peers:
            daemon.wait_state(peer, "established", timeout)


# -- namespaces --------------------------------------------------------------------------------

def test_netns_kills_its_processes_and_disappears() -> None:
    with Netns() as ns:
        assert ns.name in netns_names() and ns.path.exists()
        tracked = ns.popen(["sleep", "300"])
        # A grandchild the namespace never saw started: only the sweep of `ip netns pids` finds it.
        ns.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 &"])
        stray = [pid for pid in ns.pids() if pid != tracked.pid]
        assert len(stray) == 1
    assert ns.name not in netns_names()
    assert tracked.returncode is not None
    assert not pid_alive(stray[0])
    ns.close()  # idempotent


def test_linked_pair_cleans_up_when_the_block_raises() -> None:
    p = LinkedPair()
    with pytest.raises(RuntimeError, match="boom"), p:
        assert {p.a.name, p.b.name} <= netns_names()
        raise RuntimeError("boom")
    assert not {p.a.name, p.b.name} & netns_names()


def test_linked_pair_cleans_up_when_creation_fails_half_way() -> None:
    p = LinkedPair(ifname="x" * 16)  # namespaces are made, then the veth is refused
    with pytest.raises(ValueError, match="interface name"), p:
        pass
    assert not {p.a.name, p.b.name} & netns_names()


def tcp_connects(ns: Netns, host: str, port: int) -> bool:
    """Whether a TCP connect from ns reaches host's kernel (a refusal counts: it answered)."""
    code = (f"import socket\ntry: socket.create_connection(({host!r}, {port}), timeout=1)\n"
            "except ConnectionRefusedError: pass\n")
    return ns.run(["python3", "-c", code], check=False).returncode == 0


def test_pair_addresses_silent_cut_and_link_down(pair: LinkedPair) -> None:
    for host in (P.B4, P.B6):
        assert tcp_connects(pair.a, host, 9)
    drop_all(pair.a, pair.ifname, True)
    drop_all(pair.a, pair.ifname, True)  # idempotent
    assert "state UP" in pair.a.run(["ip", "link", "show", pair.ifname]).stdout  # carrier stays
    assert not tcp_connects(pair.a, P.B4, 9)
    drop_all(pair.a, pair.ifname, False)
    assert tcp_connects(pair.a, P.B4, 9)
    set_link(pair.a, pair.ifname, False)
    assert not tcp_connects(pair.a, P.B4, 9)
    set_link(pair.a, pair.ifname, True)
    wait_until(lambda: tcp_connects(pair.a, P.B6, 9), 5, "the link to come back")


# -- daemons -----------------------------------------------------------------------------------

# Every attribute the harness promises, including a well-known community (NO_PEER, which no
# daemon here filters on) to pin down its numeric rendering.
ROUTE_A4 = Route("10.1.0.0/24", as_path=(65111, 65112), med=50, communities=("65001:7", "65535:65284"),
                 large_communities=("65001:1:2", "65001:1:1"))
ROUTE_A6 = Route("2001:db8:1::/48", med=60, communities=("65001:8",), large_communities=("65001:2:3",))
ROUTE_B4 = Route("10.2.0.0/24", med=5, communities=("65002:1",))
ROUTE_B6 = Route("2001:db8:2::/48", large_communities=("65002:9:9",))

PAIRS = [("frr", "bird"), ("bird", "frr"), ("gobgp", "frr"), ("frr", "gobgp"), ("exabgp", "frr"),
         ("frr", "exabgp"), ("bird", "exabgp"), ("exabgp", "gobgp"), ("gobgp", "bird")]


def expected(route: Route, peer: str, origin_asn: int) -> RouteView:
    """route as an eBGP peer receives it from peer, which originated it with next-hop-self."""
    return RouteView(prefix=route.prefix, peer=peer, next_hop=peer, as_path=(origin_asn, *route.as_path),
                     med=route.med, communities=route.communities, large_communities=route.large_communities)


def same_route(view: RouteView, want: RouteView, sender: str) -> bool:
    """FRR sends MED 0 on its own routes when none is set; the harness documents that quirk."""
    if sender == "frr" and want.med is None:
        want = replace(want, med=0)
    return view == want


def assert_receives(receiver: BgpDaemon, want: RouteView, sender: str) -> None:
    """Wait for want at receiver; on timeout, fail showing what arrived instead."""
    try:
        receiver.wait_route(want.prefix, timeout=15, check=lambda view: same_route(view, want, sender))
    except TimeoutError:
        pytest.fail(f"{receiver!r} never got {want}; it has {receiver.received_routes().get(want.prefix)}")


@pytest.mark.parametrize(("kind_a", "kind_b"), PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_ebgp_exchange(pair: LinkedPair, kind_a: str, kind_b: str) -> None:
    with ExitStack() as stack:
        a, b = start_pair(stack, pair, kind_a, kind_b, routes_a=[ROUTE_A4, ROUTE_A6],
                          routes_b=[ROUTE_B4, ROUTE_B6])
        wait_established(a, b)
        for receiver, sender, route, peer in ((b, kind_a, ROUTE_A4, P.A4), (b, kind_a, ROUTE_A6, P.A6),
                                              (a, kind_b, ROUTE_B4, P.B4), (a, kind_b, ROUTE_B6, P.B6)):
            assert_receives(receiver, expected(route, peer, ASN_A if receiver is b else ASN_B), sender)
        assert set(b.received_routes()) == {ROUTE_A4.prefix, ROUTE_A6.prefix}
        assert (b.received_count(P.A4), b.received_count(P.A6)) == (1, 1)
        assert (a.received_count(P.B4), a.received_count(P.B6)) == (1, 1)

        # At run time: a new route, a change of its attributes, then its withdrawal.
        extra = Route("10.1.1.0/24", med=1, communities=("65001:100",))
        a.announce(extra)
        b.wait_route(extra.prefix, timeout=15, check=lambda v: v.med == 1 and v.communities == ("65001:100",))
        a.announce(Route(extra.prefix, med=2, large_communities=("65001:0:2",)))
        b.wait_route(extra.prefix, timeout=15,
                     check=lambda v: v.med == 2 and not v.communities and v.large_communities == ("65001:0:2",))
        a.announce(Route("2001:db8:1:1::/64"))
        b.wait_route("2001:db8:1:1::/64", timeout=15)
        assert b.received_count(P.A4) == 2 and b.received_count(P.A6) == 2
        a.withdraw(extra.prefix)
        a.withdraw(ROUTE_A6.prefix)
        b.wait_withdrawn(extra.prefix, timeout=15)
        b.wait_withdrawn(ROUTE_A6.prefix, timeout=15)
        assert set(b.received_routes()) == {ROUTE_A4.prefix, "2001:db8:1:1::/64"}


@pytest.mark.parametrize("ibgp", [True, False], ids=["ibgp", "ebgp"])
@pytest.mark.parametrize("sender", list(DAEMONS))
def test_next_hop_and_local_pref(pair: LinkedPair, sender: str, ibgp: bool) -> None:
    """Third-party next hops on the shared subnet survive eBGP; LOCAL_PREF reaches iBGP only."""
    receiver = "bird" if sender == "frr" else "frr"
    asn_b = ASN_A if ibgp else ASN_B
    routes = [Route("10.1.0.0/24", next_hop="192.0.2.10", local_pref=200, as_path=(65111,)),
              Route("2001:db8:1::/48", next_hop="2001:db8::10", local_pref=300)]
    with ExitStack() as stack:
        a, b = start_pair(stack, pair, sender, receiver, asn_b=asn_b, routes_a=routes)
        prepend = () if ibgp else (ASN_A,)
        for route, peer in zip(routes, (P.A4, P.A6), strict=True):
            view = b.wait_route(route.prefix, timeout=30)
            assert (view.peer, view.next_hop, view.as_path) == (peer, route.next_hop, (*prepend, *route.as_path))
            assert view.local_pref == (route.local_pref if ibgp else None)
        a.announce(Route("10.1.0.0/24", next_hop="192.0.2.11"))
        b.wait_route("10.1.0.0/24", timeout=15, check=lambda v: v.next_hop == "192.0.2.11")
        a.announce(Route("10.1.0.0/24"))  # back to next-hop-self
        b.wait_route("10.1.0.0/24", timeout=15, check=lambda v: v.next_hop == P.A4)


def dropped(observer: FrrDaemon, address: str) -> int:
    """How many times FRR saw the session with address go down."""
    data = json.loads(observer.vtysh(f"show bgp neighbors {address} json"))
    return int(data[address].get("connectionsDropped", 0))


@pytest.mark.parametrize("kind", list(DAEMONS))
def test_neighbor_disable_sends_the_peer_down(pair: LinkedPair, kind: str) -> None:
    """Watched from an FRR peer, which counts every session loss (ExaBGP reconnects at once)."""
    with ExitStack() as stack:
        subject, observer = start_pair(stack, pair, kind, "frr")
        assert isinstance(observer, FrrDaemon)
        wait_established(subject, observer)
        before = dropped(observer, P.A4)
        subject.set_neighbor_enabled(P.B4, False)
        wait_until(lambda: dropped(observer, P.A4) > before, 10, "FRR to lose the session")
        if kind != "exabgp":
            time.sleep(2)
            assert observer.neighbor_state(P.A4) != "established"
        assert observer.neighbor_state(P.A6) == "established"  # the other session is untouched
        subject.set_neighbor_enabled(P.B4, True)
        observer.wait_state(P.A4, "established", timeout=30)


MD5_PAIRS = [("frr", "bird"), ("bird", "frr"), ("gobgp", "frr"), ("exabgp", "frr")]


@pytest.mark.parametrize(("kind_a", "kind_b"), MD5_PAIRS, ids=[f"{a}-{b}" for a, b in MD5_PAIRS])
def test_md5(pair: LinkedPair, kind_a: str, kind_b: str) -> None:
    with ExitStack() as stack:
        a, b = start_pair(stack, pair, kind_a, kind_b, md5="s3cret-key")
        wait_established(a, b)


def test_md5_mismatch_never_establishes(pair: LinkedPair) -> None:
    a = FrrDaemon(pair.a, ASN_A, P.A4, [Neighbor(P.B4, ASN_B, md5="right", families=("ipv4",))])
    b = BirdDaemon(pair.b, ASN_B, P.B4, [Neighbor(P.A4, ASN_A, md5="wrong", families=("ipv4",))])
    with a, b:
        time.sleep(4)
        assert a.neighbor_state(P.B4) != "established"
        assert b.neighbor_state(P.A4) != "established"


def test_silent_cut_expires_hold_timer(pair: LinkedPair) -> None:
    """drop_all keeps the carrier up, so only the hold timer can notice; then the session heals."""
    with ExitStack() as stack:
        a, b = start_pair(stack, pair, "frr", "bird", routes_a=[ROUTE_A4], hold_time=3, keepalive=1)
        wait_established(a, b)
        b.wait_route(ROUTE_A4.prefix, timeout=15)
        drop_all(pair.a, pair.ifname, True)
        started = time.monotonic()
        wait_until(lambda: b.neighbor_state(P.A4) != "established", 10, "BIRD's hold timer to expire")
        assert time.monotonic() - started >= 1.0  # not torn down by the rule itself
        b.wait_withdrawn(ROUTE_A4.prefix, timeout=5)
        drop_all(pair.a, pair.ifname, False)
        b.wait_state(P.A4, "established", timeout=30)
        b.wait_route(ROUTE_A4.prefix, timeout=15)


@pytest.mark.parametrize("kind", list(DAEMONS))
def test_daemon_stop_leaves_nothing(pair: LinkedPair, kind: str) -> None:
    daemon = DAEMONS[kind](pair.a, ASN_A, P.A4, [Neighbor(P.B4, ASN_B)])
    with daemon:
        assert daemon.running and daemon.proc is not None
        pid, workdir = daemon.proc.pid, daemon.workdir
        # ExaBGP says "connected" (opensent) to a refused connection for an instant: its poll
        # takes POLLOUT before SO_ERROR, and reading SO_ERROR clears the ECONNREFUSED it finds.
        unconnected = ("idle", "connect", "active") + (("opensent",) if kind == "exabgp" else ())
        assert daemon.neighbor_state(P.B4) in unconnected
        assert daemon.received_routes() == {}
    assert not pid_alive(pid)
    assert not workdir.exists()
    assert daemon.log()  # kept in memory for failure reports
    daemon.stop()  # idempotent
    wait_until(lambda: not pair.a.pids(), 5, "every process in the namespace to exit")


def test_start_failure_reports_the_log_and_cleans_up(pair: LinkedPair) -> None:
    daemon = BirdDaemon(pair.a, ASN_A, "not-an-address", [Neighbor(P.B4, ASN_B)])
    with pytest.raises(DaemonError, match="failed to start"):
        daemon.start()
    assert daemon.proc is None
    assert "syntax error" in daemon.log()
    assert not pair.a.pids()

