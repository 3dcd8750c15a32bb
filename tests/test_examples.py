"""The examples as a user runs them: `python examples/speak_with_frr.py` from the repository, a
real FRR and `bgplab speak` in two namespaces; what it prints is FRR's own table and our JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bgplab.testing.netns import LinkedPair

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.interop
@pytest.mark.timeout(300)
def test_speak_with_frr_example_exchanges_routes_both_ways_and_cleans_up() -> None:
    run = subprocess.run([sys.executable, "examples/speak_with_frr.py"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    first = re.fullmatch(r"FRR \(CE, AS 65010\) runs in namespace (\S+); bgplab speak \(AS 12076\) in (\S+)",
                         out.splitlines()[0])
    assert first, out.splitlines()[0]
    assert not {first.group(1), first.group(2)} & set(os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])

    # FRR's own `show bgp` output: the VNet's ranges learned from us (AS 12076), best, next hop our end.
    frr = out[out.index("--- FRR's table"):out.index("--- bgplab speak --json")]
    assert re.search(rf"\*> 10\.100\.0\.0/16\s+{re.escape(LinkedPair.A4)}\s+0 12076 i\n", frr), frr
    assert re.search(rf"\*> 2001:db8:100::/48\s+{re.escape(LinkedPair.A6)}\s+0 12076 i\n", frr), frr
    assert re.search(r"\*> 10\.1\.0\.0/16\s+0\.0\.0\.0\s+0\s+32768 i\n", frr), frr  # FRR's own, beside ours

    # Our speaker's JSON lines: both sessions up, the CE's prefixes with their attributes, the summary.
    events: list[dict[str, Any]] = [json.loads(line) for line in out[out.index("--- bgplab speak --json"):]
                                    .splitlines()[1:]]
    ce4, ce6 = LinkedPair.B4, LinkedPair.B6
    assert {(e["peer"], e["state"]) for e in events if e["type"] == "state"} >= {(ce4, "established"),
                                                                                 (ce6, "established")}
    updates = {(e["peer"], e["prefix"]): e["attributes"] for e in events if e["type"] == "update"}
    assert set(updates) == {(ce4, "10.1.0.0/16"), (ce6, "2001:db8:10::/48")}
    v4, v6 = updates[(ce4, "10.1.0.0/16")], updates[(ce6, "2001:db8:10::/48")]
    assert v4["as_path"] == [65010] and v4["next_hop"] == ce4 and v4["communities"] == ["65010:100"]
    assert v6["as_path"] == [65010] and v6["next_hop"] == ce6 and v6["communities"] == []
    summary = [e for e in events if e["type"] == "summary"]
    assert len(summary) == 1 and summary[0]["announced"] == 2
    assert {p: s["prefixes_received"] for p, s in summary[0]["peers"].items()} == {ce4: 1, ce6: 1}
