"""FRR configs from intent: `bfd_timers` sets the `msee` BFD profile, and FRR's own parser
(`vtysh --dryrun -f`) accepts what is rendered."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bgplab.expressroute.profile import PROFILES
from bgplab.lab.kinds.frr import render_intent

FAST = PROFILES["fast"].ce

INTENT: dict[str, Any] = {
    "asn": 65010,
    "router_id": "10.1.0.2",
    "announce": ["10.1.0.0/16"],
    "neighbors": [
        {"address": "192.168.100.134", "asn": 12076, "md5": "Contoso2026", "bfd": True, "prepend": 2,
         "local_address": "192.168.100.133", "families": ["ipv4"], "role": "msee",
         "circuit": "contoso-ams", "peering": "private", "export": ["10.1.0.0/16"]},
        {"address": "10.0.12.1", "asn": 65010, "md5": None, "bfd": False, "prepend": 0, "local_address": None,
         "families": ["ipv4"], "role": "user"},
    ],
}


def bfd_profile(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(" profile msee")
    return [line.strip() for line in lines[start + 1: start + 4]]


def dryrun(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "frr.conf"
    path.write_text(text)
    return subprocess.run(["vtysh", "--dryrun", "-f", str(path)], capture_output=True, text=True, check=False)


def test_without_bfd_timers_the_profile_is_the_msees_300ms_x3(tmp_path: Path) -> None:
    text = render_intent("ce2", INTENT, FAST)
    # The MSEE runs BFD at 300 ms x 3 (expressroute.md, BFD); written out here, not read from the code.
    assert bfd_profile(text) == ["transmit-interval 300", "receive-interval 300", "detect-multiplier 3"]
    assert " neighbor 192.168.100.134 bfd profile msee" in text.splitlines()
    proc = dryrun(tmp_path, text)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("timers", [[100, 100, 3], (50, 80, 5), [10, 10, 2]])
def test_bfd_timers_override_the_profile_and_frr_accepts_the_config(tmp_path: Path, timers: Any) -> None:
    text = render_intent("ce2", {**INTENT, "bfd_timers": timers}, FAST)
    assert bfd_profile(text) == [f"transmit-interval {timers[0]}", f"receive-interval {timers[1]}",
                                 f"detect-multiplier {timers[2]}"]
    proc = dryrun(tmp_path, text)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bfd_timers_without_a_bfd_neighbor_render_no_profile(tmp_path: Path) -> None:
    quiet = {**INTENT, "bfd_timers": [100, 100, 3],
             "neighbors": [{**n, "bfd": False} for n in INTENT["neighbors"]]}
    text = render_intent("ce2", quiet, FAST)
    assert "profile msee" not in text
    assert dryrun(tmp_path, text).returncode == 0


@pytest.mark.parametrize("timers", [[5, 100, 3], [100, 100, 1], [100, 100], "100x3", [100.0, 100, 3], [True, 100, 3]])
def test_bfd_timers_frr_would_refuse_are_refused_naming_the_node(timers: Any) -> None:
    expected = r"ce2: intent bfd_timers .*: expected \[transmit ms, receive ms, multiplier\]"
    with pytest.raises(ValueError, match=expected):
        render_intent("ce2", {**INTENT, "bfd_timers": timers}, FAST)


def test_msee_sessions_are_filtered_both_ways_and_frr_accepts_the_config(tmp_path: Path) -> None:
    msee, ibgp = INTENT["neighbors"]
    microsoft = {**msee, "address": "198.51.100.6", "local_address": "198.51.100.5", "peering": "microsoft",
                 "export": []}
    intent = {**INTENT, "neighbors": [{**msee, "export": ["10.1.0.0/16", "10.64.0.0/14+"]}, microsoft, ibgp]}
    lines = render_intent("ce2", intent, FAST).splitlines()
    assert [line for line in lines if "prefix-list" in line and "neighbor" not in line] == [
        "ip prefix-list TO-CONTOSO-AMS-PRIVATE seq 5 permit 10.1.0.0/16",
        "ip prefix-list TO-CONTOSO-AMS-PRIVATE seq 10 permit 10.64.0.0/14 le 32",
        "ip prefix-list FROM-AZURE seq 5 deny 0.0.0.0/0",
        "ip prefix-list FROM-AZURE seq 10 permit any",
        "ip prefix-list TO-CONTOSO-AMS-MICROSOFT seq 5 deny any",  # nothing to send: nothing goes
    ]
    assert "  neighbor 192.168.100.134 prefix-list TO-CONTOSO-AMS-PRIVATE out" in lines
    assert "  neighbor 198.51.100.6 prefix-list TO-CONTOSO-AMS-MICROSOFT out" in lines
    assert "  neighbor 192.168.100.134 prefix-list FROM-AZURE in" in lines
    assert not [line for line in lines if line.startswith("  neighbor 10.0.12.1 prefix-list")]
    proc = dryrun(tmp_path, "\n".join(lines) + "\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
