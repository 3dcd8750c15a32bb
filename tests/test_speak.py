"""`bgplab speak` as scripts use it: real processes, real sockets, the JSON-lines contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.bgp.test_speaker import free_port

ROUTES = """\
# ExaBGP syntax, comments and blank lines allowed

route 203.0.113.0/24 next-hop 192.0.2.1 as-path [ 65001 65002 ] origin igp med 10 local-preference 100 community [ 65001:1 no-export ] large-community [ 65001:1:1 ]
route 2001:db8:5::/48 next-hop 2001:db8::1 as-path [ 65003 ] origin incomplete community 65001:2
"""  # noqa: E501 - one route per line is the format


def speak(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bgplab", "speak", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_until(proc: subprocess.Popen[str], predicate: Any, timeout: float = 15) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(json.loads(line))
        if predicate(seen[-1]):
            return seen
    raise AssertionError(f"never saw the expected event; got {seen}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, list[dict[str, Any]], str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err


def test_two_speakers_exchange_routes_in_the_json_contract(tmp_path: Path) -> None:
    routes = tmp_path / "routes.txt"
    routes.write_text(ROUTES)
    port = free_port("127.0.0.2")
    receiver = speak("--asn", "65020", "--router-id", "10.0.0.2", "--listen", f"127.0.0.2:{port}",
                     "--peer", "127.0.0.1,65001,passive,hold=9", "--json")
    sender = None
    try:
        time.sleep(0.5)
        sender = speak("--asn", "65001", "--router-id", "10.0.0.1", "--announce", str(routes), "--json",
                       "--peer", f"127.0.0.2,65020,port={port},local=127.0.0.1,hold=9")
        events = read_until(receiver, lambda e: e["type"] == "eor" and e["family"] == "ipv6-unicast")
        states = [e["state"] for e in events if e["type"] == "state"]
        assert states[-1] == "established" and "opensent" in states
        updates = {e["prefix"]: e for e in events if e["type"] == "update"}
        assert set(updates) == {"203.0.113.0/24", "2001:db8:5::/48"}
        v4 = updates["203.0.113.0/24"]
        assert v4["peer"] == "127.0.0.1" and isinstance(v4["time"], float)
        assert v4["attributes"] == {
            "as_path": [65001, 65001, 65002],  # the sender prepends its AS on eBGP, as ExaBGP does
            "next_hop": "192.0.2.1",
            "origin": "igp",
            "med": 10,
            "local_pref": None,  # never sent to an external peer
            "communities": ["65001:1", "65535:65281"],
            "large_communities": ["65001:1:1"],
        }
        assert updates["2001:db8:5::/48"]["attributes"]["origin"] == "incomplete"
        times = [e["time"] for e in events]
        assert times == sorted(times)

        code, tail, _ = stop(sender, signal.SIGINT)
        sender = None
        assert code == 0
        assert tail[-1]["type"] == "summary" and tail[-1]["announced"] == 2
        note = read_until(receiver, lambda e: e["type"] == "notification")[-1]
        assert (note["code"], note["subcode"], note["direction"]) == (6, 2, "received")
        assert bytes.fromhex(note["data"])[1:].decode() == "bgplab speak shutting down"
        withdrawn = read_until(receiver, lambda e: e["type"] == "withdraw" and e["prefix"] == "2001:db8:5::/48")
        assert any(e["type"] == "withdraw" and e["prefix"] == "203.0.113.0/24" for e in withdrawn)
    finally:
        for proc in (sender, receiver):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    code, tail, err = stop(receiver) if receiver.poll() is None else (receiver.returncode, [], "")
    assert code in (0, -signal.SIGKILL)


def test_sigterm_gives_a_clean_exit_and_a_summary() -> None:
    proc = speak("--asn", "65001", "--router-id", "10.0.0.1", "--peer", "127.0.0.77,65002", "--json")
    read_until(proc, lambda e: e["type"] == "state" and e["state"] == "connect")
    code, events, err = stop(proc)
    assert code == 0, err
    summary = events[-1]
    assert summary["type"] == "summary"
    assert summary["peers"]["127.0.0.77"]["state"] == "idle"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--router-id", "10.0.0.1", "--peer", "192.0.2.1,65002"], "--asn"),
        (["--asn", "0", "--router-id", "10.0.0.1", "--peer", "192.0.2.1,65002"], "AS number"),
        (["--asn", "65001", "--router-id", "10.0.0.256", "--peer", "192.0.2.1,65002"], "A.B.C.D"),
        (["--asn", "65001", "--router-id", "10.0.0.1", "--peer", "192.0.2.1"], "ADDR,ASN"),
        (["--asn", "65001", "--router-id", "10.0.0.1", "--peer", "192.0.2.1,65002,hold=2"], "hold time"),
        (["--asn", "65001", "--router-id", "10.0.0.1", "--peer", "192.0.2.1,65002,colour=blue"], "unknown"),
        (["--asn", "65001", "--router-id", "10.0.0.1", "--peer", "[2001:db8::1]:179,65002"], "IPv6 as [ADDR]"),
        (["--asn", "65001", "--router-id", "10.0.0.1", "--peer", "192.0.2.1,65002,passive"], "--listen"),
        (["--asn", "65001", "--router-id", "10.0.0.1", "--peer", "192.0.2.1,65002", "--listen", "x:1"], "IP"),
        (["--asn", "65001", "--router-id", "10.0.0.1", "--peer", "192.0.2.1,65002", "--announce", "/nonexistent"],
         "--announce"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "bgplab", "speak", *args], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_bad_route_file_names_file_and_line(tmp_path: Path) -> None:
    routes = tmp_path / "routes.txt"
    routes.write_text("route 192.0.2.0/24 next-hop 192.0.2.1\n\nroute 192.0.2.0/24 med ten\n")
    proc = subprocess.run(
        [sys.executable, "-m", "bgplab", "speak", "--asn", "65001", "--router-id", "10.0.0.1",
         "--peer", "192.0.2.9,65002", "--announce", str(routes)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert f"{routes}:3: med 'ten'" in proc.stderr, proc.stderr


def test_ipv6_peer_in_brackets_is_accepted() -> None:
    from bgplab.speak import parse_peer

    cfg = parse_peer("[2001:db8::2],4200000001,md5=k3y,hold=30,ttl-security")
    assert (cfg.address, cfg.asn, cfg.md5, cfg.hold_time, cfg.ttl_security) == (
        "2001:db8::2", 4200000001, "k3y", 30, True)
