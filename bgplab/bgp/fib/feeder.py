"""Feeding a `Fib` from a speaker's Loc-RIB: selections become coalesced batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from bgplab.bgp.fib.kernel import ApplyResult, Change, Fib
from bgplab.bgp.rib import LOCAL
from bgplab.bgp.rib import Change as RibChange
from bgplab.bgp.wire.update import Family

log = logging.getLogger("bgplab.fib")


def next_hops_of(change: RibChange) -> tuple[str, ...]:
    """The FIB next hops for a Loc-RIB selection: every selected path's next hop, best first.

    Nothing when the prefix is gone or when our own origination wins (a route we originate is
    not forwarded to a next hop; whatever makes it reachable locally is not BGP's to install).
    """
    return tuple(dict.fromkeys(a.next_hop for peer, a in change.paths if peer != LOCAL and a.next_hop))


class FibFeeder:
    """Loc-RIB changes in, FIB batches out: the glue between `Speaker.rib_listeners` and a Fib.

    The listener is synchronous and may fire for every UPDATE; the FIB is best written in large
    batches. So changes are coalesced per prefix (only the latest selection of a flapping prefix
    reaches the kernel) and one background task applies whatever has accumulated, one batch at a
    time: while the kernel takes one batch, the next one builds up. Refusals are logged (and
    handed to `on_result`, with the rest of each ApplyResult); they do not stop the feed.

        feeder = FibFeeder(fib)
        speaker.rib_listeners.append(feeder.on_rib_changes)
        ...
        await feeder.idle()          # everything selected so far is in the kernel
    """

    def __init__(self, fib: Fib, on_result: Callable[[ApplyResult], None] | None = None) -> None:
        self.fib = fib
        self.on_result = on_result
        self._pending: dict[tuple[Family, int], tuple[str, ...]] = {}
        self._task: asyncio.Task[None] | None = None
        self.applied = 0
        self.failed = 0

    def on_rib_changes(self, changes: Iterable[RibChange]) -> None:
        """A `Speaker.rib_listeners` callback; must be called from the event loop's thread."""
        pending = self._pending
        for change in changes:
            pending[(change.family, change.key)] = next_hops_of(change)
        self.submit_pending()

    def submit(self, changes: Iterable[Change]) -> None:
        """Queue FIB changes directly (as `apply` takes them), coalesced with the RIB's."""
        for family, key, hops in changes:
            self._pending[(family, key)] = tuple(hops)
        self.submit_pending()

    def submit_pending(self) -> None:
        if self._pending and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"fib-feed-{self.fib.netns}")

    async def _drain(self) -> None:
        while self._pending:
            batch = [(family, key, hops) for (family, key), hops in self._pending.items()]
            self._pending = {}
            try:
                result = await self.fib.apply(batch)
            except Exception:
                log.exception("%r: a FIB batch of %d changes failed", self.fib, len(batch))
                self.failed += len(batch)
                continue
            self.applied += len(batch) - len(result.errors)
            self.failed += len(result.errors)
            for error in result.errors[:10]:
                log.warning("%r: %s", self.fib, error)
            if len(result.errors) > 10:
                log.warning("%r: ... and %d more refused routes", self.fib, len(result.errors) - 10)
            if self.on_result is not None:
                self.on_result(result)

    async def idle(self) -> None:
        """Wait until every change handed over so far has been applied (or refused)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
