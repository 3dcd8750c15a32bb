"""Demo: `bgplab speak` (playing the Microsoft edge, AS 12076) and a real FRR router (the customer edge).

Two network namespaces joined by a veth; FRR announces the customer's prefixes, our speaker
announces a VNet's address space. Each side's view is printed, then everything is removed.
Until the lab harness lands (`bgplab up`), this is the end-to-end demo that scripts/demo runs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bgplab.testing.daemons import FrrDaemon, Neighbor, Route
from bgplab.testing.netns import LinkedPair

MSEE_ASN, CE_ASN = 12076, 65010


def main() -> int:
    with LinkedPair("demo") as lab, tempfile.TemporaryDirectory() as tmp:
        routes = Path(tmp) / "vnet.routes"
        routes.write_text("route 10.100.0.0/16 next-hop self\nroute 2001:db8:100::/48 next-hop self\n")
        ce = FrrDaemon(
            lab.b, CE_ASN, "10.0.0.2",
            [Neighbor(lab.A4, MSEE_ASN, families=("ipv4",)), Neighbor(lab.A6, MSEE_ASN, families=("ipv6",))],
            [Route("10.1.0.0/16", communities=("65010:100",)), Route("2001:db8:10::/48")],
        )
        with ce:
            print(f"FRR (CE, AS {CE_ASN}) runs in namespace {lab.b.name}; bgplab speak (AS {MSEE_ASN}) in {lab.a.name}")
            speak = lab.a.popen(
                [sys.executable, "-m", "bgplab", "speak", "--asn", str(MSEE_ASN), "--router-id", "10.0.0.1",
                 "--listen", lab.A4, "--listen", f"[{lab.A6}]", "--announce", str(routes), "--json",
                 "--peer", f"{lab.B4},{CE_ASN},hold=9", "--peer", f"[{lab.B6}],{CE_ASN},hold=9"],
                stdout=subprocess.PIPE,
            )
            ce.wait_state(lab.A4)
            ce.wait_state(lab.A6)
            ce.wait_route("10.100.0.0/16")
            ce.wait_route("2001:db8:100::/48")
            time.sleep(1)
            print("\n--- FRR's table (what the customer edge learned from us) ---")
            print(ce.vtysh("show bgp ipv4 unicast", "show bgp ipv6 unicast"))
            speak.send_signal(signal.SIGTERM)
            out, _ = speak.communicate(timeout=20)
            print("--- bgplab speak --json (what we learned from the customer edge) ---")
            for line in out.decode().splitlines():
                event = json.loads(line)
                if event["type"] in ("state", "update", "eor", "summary"):
                    print(line)
            return speak.returncode
    return 1


if __name__ == "__main__":
    sys.exit(main())
