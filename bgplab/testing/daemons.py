"""Real BGP daemons (FRR, BIRD, GoBGP, ExaBGP) run inside a Netns from one common spec.

Every daemon gets a private working directory (config, pid file, control socket, logs) so that any
number of instances, and any system-wide instance, can run side by side. They all answer the same
questions (session state, received routes) in the same normalised form, so a test or a benchmark
can swap one peer for another without changing its assertions.

Normalised forms, whoever the daemon is:

* neighbor states are RFC 4271 names in lower case (`STATES`);
* communities are "ASN:VALUE" in decimal, well-known ones included ("65535:65281", never
  "no-export"), sorted numerically without duplicates; large communities are "A:B:C", likewise;
* `Route.as_path` is the path *before* the originating daemon prepends its own ASN, so the peer of
  an eBGP session receives `(origin_asn, *route.as_path)` and an iBGP peer receives `route.as_path`;
* `Route.local_pref` only reaches iBGP peers (RFC 4271 §5.1.5); every daemon drops it on eBGP.

This module is the harness's API; each daemon lives in its own module of `bgplab.testing`, on
the lab's module of its router kind (`bgplab.lab.kinds.frr` ...), which renders its configs,
drives its CLI and parses its output for the lab and the harness alike.
"""

from __future__ import annotations

from bgplab.lab.kinds.router import FAMILIES, STATES, Neighbor, Route, family_of
from bgplab.testing.bird import BirdDaemon
from bgplab.testing.exabgp import ExabgpDaemon
from bgplab.testing.frr import FrrDaemon
from bgplab.testing.gobgp import GobgpDaemon
from bgplab.testing.harness import KEEP_WORKDIR_ENV, BgpDaemon, DaemonError, RouteView, wait_until

__all__ = [
    "FAMILIES",
    "KEEP_WORKDIR_ENV",
    "STATES",
    "BgpDaemon",
    "BirdDaemon",
    "DaemonError",
    "ExabgpDaemon",
    "FrrDaemon",
    "GobgpDaemon",
    "Neighbor",
    "Route",
    "RouteView",
    "family_of",
    "wait_until",
]
