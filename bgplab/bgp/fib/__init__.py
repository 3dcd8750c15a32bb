"""Kernel FIB programming: Loc-RIB best paths become routes in a network namespace's routing table.

Our MSEE and gateway nodes must forward the way BGP chose, so every selection change is written
to the kernel: a prefix with next hops becomes a route (RTA_MULTIPATH when there are several:
ECMP), a prefix without any is deleted. Everything we install carries our own routing protocol
number, `RTPROT_BGPLAB`, so that what we own can be read back and flushed (on shutdown, and at
start-up after a crashed run) without touching anyone else's routes.

Why netlink is spoken here by hand and not through pyroute2's route API: pyroute2 builds each
message from Python objects (measured on this machine: about 2,300 routes/s through
`IPRoute.route("add")`, and about 10,000 messages/s for its encoder alone), while the kernel
takes well over 100,000 routes/s when messages are packed with `struct` and sent many to a
`send()`. 100k routes then take about 0.7 s here, 2-3 times faster than FRR's zebra installing
the same BGP routes (bench/fib.py). Hence:

* **Batches.** `apply()` packs up to `batch` RTM_NEWROUTE/RTM_DELROUTE messages into one
  `send()`. Only the last message of a batch asks for an acknowledgement; the kernel processes
  netlink route requests synchronously inside `send()` and always reports a failed request, so
  when that last acknowledgement arrives every error of the batch has been read, each matched to
  its prefix by sequence number. A failure never stops the batch: the other messages still land.
  Should the socket's receive buffer ever overflow (ENOBUFS, some error reports lost), the batch is
  sent again with an acknowledgement per message, which is safe because every request is
  idempotent (replace, and delete where "already gone" counts as done).
* **One thread.** A worker thread enters the namespace once (`setns`), opens the netlink socket
  there, and does all the encoding, sending and reading; the async methods await it, so the event
  loop only ever waits for a future. Batches run strictly in the order they were submitted.
* **pyroute2 where speed does not matter.** Looking up a VRF device's table and probing whether
  the kernel has VRF devices at all go through pyroute2; its untyped calls stay in two functions.
  (The tests also use it as an independent decoder of what we encode.)
* **`FibFeeder`** connects a speaker's Loc-RIB listener to a Fib: it coalesces changes per prefix
  and keeps one batch in flight.

Kernel semantics worth knowing: a route replaces any route with the same table, destination,
TOS and metric, whoever installed it. So our routes use metric `DEFAULT_METRIC` (20, as zebra
uses for eBGP), which keeps them from replacing connected routes (metric 0 for IPv4, 256 for
IPv6); for IPv4 the connected route also wins over a BGP route for the same prefix, for IPv6 ours
(20 < 256) would, so the RIB should not select BGP paths for connected prefixes (zebra's
administrative distance is what prevents it there). Next hops must be reachable through a
connected route (the kernel refuses others: ENETUNREACH / EHOSTUNREACH); recursive resolution of
iBGP next hops is not done here. Link-local IPv6 next hops need their interface: "fe80::1%eth1".
"

The package, by job: `kernel` is the `Fib` (batches, acknowledgements, dumps, flush);
`rtnetlink` the sans-IO codec of route messages; `worker` the thread in the namespace and the
socket it owns; `feeder` the Loc-RIB glue; `vrf` VRF devices through pyroute2.
"""

from bgplab.bgp.fib.errors import FibError, VrfUnsupported
from bgplab.bgp.fib.feeder import FibFeeder, next_hops_of
from bgplab.bgp.fib.kernel import (
    DEFAULT_BATCH,
    DEFAULT_METRIC,
    MAIN_TABLE,
    RTPROT_BGPLAB,
    ApplyResult,
    Change,
    Fib,
    RouteError,
)
from bgplab.bgp.fib.rtnetlink import BLACKHOLE
from bgplab.bgp.fib.vrf import Probe, probe_vrf
from bgplab.bgp.fib.worker import REPLY_TIMEOUT

__all__ = [
    "BLACKHOLE",
    "DEFAULT_BATCH",
    "DEFAULT_METRIC",
    "MAIN_TABLE",
    "REPLY_TIMEOUT",
    "RTPROT_BGPLAB",
    "ApplyResult",
    "Change",
    "Fib",
    "FibError",
    "FibFeeder",
    "Probe",
    "RouteError",
    "VrfUnsupported",
    "next_hops_of",
    "probe_vrf",
]
