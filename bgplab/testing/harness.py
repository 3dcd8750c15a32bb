"""What every daemon of the test harness shares: a private workdir, a process in a Netns, waits.

A daemon is started from a `Neighbor`/`Route` model (`bgplab.lab.kinds.router`) and answers in
the normalised forms of `bgplab.testing.daemons`; its config, CLI and parsers are its router
kind's (`bgplab.lab.kinds.frr` and the others), so the lab and the tests run one FRR, one BIRD.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from bgplab.lab.kinds.router import STATES, Neighbor, PathAttributes, Route, canonical_address
from bgplab.testing.netns import Netns

KEEP_WORKDIR_ENV = "BGPLAB_KEEP_WORKDIR"
"""Set to 1 to keep every daemon's working directory after stop(), for post-mortem debugging."""

_T = TypeVar("_T")


class DaemonError(RuntimeError):
    """A daemon failed to start or to answer; the message carries the tail of its log."""


def wait_until(predicate: Callable[[], _T | None], timeout: float, what: str, *,
               interval: float = 0.2) -> _T:
    """Poll predicate until it returns something truthy and return that; raise TimeoutError if not.

    Interop tests only ever converge "eventually"; polling with a deadline is the honest way to
    say so, and the message names what never happened.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def _sorted_communities(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=lambda c: tuple(int(x) for x in c.split(":"))))


@dataclass(frozen=True)
class RouteView(PathAttributes):
    """A received route in the normalised form of `bgplab.testing.daemons`; `peer` sent it."""

    prefix: str
    peer: str
    next_hop: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", str(ipaddress.ip_network(self.prefix)))
        object.__setattr__(self, "peer", canonical_address(self.peer))
        if self.next_hop is not None:
            object.__setattr__(self, "next_hop", canonical_address(self.next_hop))
        object.__setattr__(self, "communities", _sorted_communities(self.communities))
        object.__setattr__(self, "large_communities", _sorted_communities(self.large_communities))

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> RouteView:
        """A route row of the lab's schema (`bgplab.lab.kinds`), received from `source`."""
        return cls(prefix=row["network"], peer=row["source"], next_hop=row["next_hop"] or None,
                   as_path=tuple(int(a) for a in row["path"].split()), med=row["med"],
                   local_pref=row["local_pref"], communities=tuple(row["communities"]),
                   large_communities=tuple(row["large_communities"]))


class BgpDaemon(ABC):
    """Lifecycle and queries common to every daemon; subclasses supply config, command and parsing.

    The daemon owns `workdir` from start() to stop(). The process is started through the Netns,
    so closing the namespace kills it even if stop() is never reached.
    """

    kind: ClassVar[str]
    start_timeout: ClassVar[float] = 20.0
    supports_ttl_security: ClassVar[bool] = False
    supports_bfd: ClassVar[bool] = False

    def __init__(self, ns: Netns, asn: int, router_id: str, neighbors: Sequence[Neighbor],
                 routes: Sequence[Route] = (), listen_port: int = 179, *,
                 keep_workdir: bool = False) -> None:
        self.ns = ns
        self.asn = asn
        self.router_id = router_id
        self.neighbors = list(neighbors)
        if not self.supports_ttl_security and any(n.ttl_security for n in self.neighbors):
            raise ValueError(f"{type(self).__name__} cannot be configured for GTSM (ttl_security) here")
        if not self.supports_bfd and any(n.bfd for n in self.neighbors):
            raise ValueError(f"{type(self).__name__} cannot be configured for BFD here")
        self.routes: dict[str, Route] = {r.prefix: r for r in routes}
        self.listen_port = listen_port
        self.keep_workdir = keep_workdir or os.environ.get(KEEP_WORKDIR_ENV) == "1"
        self.proc: subprocess.Popen[bytes] | None = None
        self.helpers: dict[str, subprocess.Popen[bytes]] = {}
        """Processes the daemon needs beside the main one (FRR's zebra and bfdd), by program name, in start order."""
        self._workdir: Path | None = None
        self._final_log = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(asn={self.asn}, ns={self.ns.name})"

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._workdir

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        if self.proc is not None:
            raise RuntimeError(f"{self!r} already started")
        self._workdir = Path(tempfile.mkdtemp(prefix=f"bgplab-{self.kind}-"))
        try:
            self._write_config()
            self._start_helpers()
            with open(self.workdir / "stdout.log", "wb") as out:
                self.proc = self.ns.popen(self._command(), stdout=out, stderr=subprocess.STDOUT,
                                          env=self._env(), cwd=self.workdir)
            wait_until(self._ready_or_died, self.start_timeout, f"{self!r} to start")
            self._after_start()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, Exception):
                raise DaemonError(f"{self!r} failed to start: {exc}\n{self._final_log}") from exc
            raise
        return self

    def stop(self) -> None:
        """Kill the daemon and remove its workdir (kept if asked); safe to call more than once."""
        if self.proc is not None:
            self.ns.terminate(self.proc)
            self.proc = None
        for name in reversed(list(self.helpers)):  # the main daemon first, then helpers in reverse order
            self.ns.terminate(self.helpers.pop(name))
        if self._workdir is not None:
            self._final_log = self.log()
            if not self.keep_workdir:
                shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log(self, tail: int = 200) -> str:
        """The last lines of every log the daemon writes, for failure messages."""
        if self._workdir is None:
            return self._final_log
        parts = []
        for path in self._log_files():
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                parts.append(f"==> {path.name} <==\n" + "\n".join(lines))
        return "\n".join(parts)

    def _ready_or_died(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise DaemonError(f"{self!r} exited during start-up with status {code}")
        self._check_helpers()
        return self._ready()

    def _check_helpers(self) -> None:
        for name, helper in self.helpers.items():
            if helper.poll() is not None:
                raise DaemonError(f"{self!r}: {name} exited during start-up with status {helper.returncode}")

    def _spawn_helper(self, args: list[str]) -> subprocess.Popen[bytes]:
        """Start a helper process in the namespace, its output in workdir/NAME.out; stop() ends it."""
        name = Path(args[0]).name
        with open(self.workdir / f"{name}.out", "wb") as out:
            proc = self.ns.popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.helpers[name] = proc
        return proc

    # -- queries -----------------------------------------------------------------------------

    def neighbor(self, address: str) -> Neighbor:
        address = canonical_address(address)
        for n in self.neighbors:
            if n.address == address:
                return n
        raise KeyError(f"{self!r} has no neighbor {address}")

    def wait_state(self, address: str, state: str = "established", timeout: float = 30.0) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        seen: list[str] = []

        def reached() -> bool:
            seen.append(self.neighbor_state(address))
            return seen[-1] == state

        try:
            wait_until(reached, timeout, f"{self!r} neighbor {address} to be {state}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc} (last state {seen[-1] if seen else '?'})\n{self.log(40)}") from None

    def wait_route(self, prefix: str, timeout: float = 30.0,
                   check: Callable[[RouteView], bool] = lambda _: True) -> RouteView:
        """Wait until prefix is received (and passes check, e.g. carries the expected MED)."""
        prefix = str(ipaddress.ip_network(prefix))

        def found() -> RouteView | None:
            view = self.received_routes().get(prefix)
            return view if view is not None and check(view) else None

        return wait_until(found, timeout, f"{self!r} to receive {prefix}")

    def wait_withdrawn(self, prefix: str, timeout: float = 30.0) -> None:
        prefix = str(ipaddress.ip_network(prefix))
        wait_until(lambda: prefix not in self.received_routes(), timeout,
                   f"{self!r} to lose {prefix}")

    def neighbor_state(self, address: str) -> str:
        """The session state with address, one of STATES."""
        state: str = self._session(address)["state"]
        return state

    def received_routes(self) -> dict[str, RouteView]:
        """Best received path per prefix, across all neighbors; own routes are left out.

        LOCAL_PREF is reported only for iBGP-learned routes: it is meaningless on eBGP, and some
        daemons show the default they assign on import there, which would make them disagree.
        """
        ibgp = {n.address for n in self.neighbors if n.asn == self.asn}
        return {prefix: view if view.peer in ibgp else replace(view, local_pref=None)
                for prefix, view in self._received_routes().items()}

    def received_count(self, address: str) -> int:
        """Prefixes accepted from address, all families: a cheap counter for benchmarks."""
        count: int = self._session(address)["accepted"]
        return count

    # -- runtime changes ---------------------------------------------------------------------

    def announce(self, route: Route) -> None:
        """Originate route (replacing any route for the same prefix) while running."""
        self.routes[route.prefix] = route
        self._announce(route)

    def withdraw(self, prefix: str) -> None:
        route = self.routes.pop(str(ipaddress.ip_network(prefix)))
        self._withdraw(route)

    @abstractmethod
    def set_neighbor_enabled(self, address: str, enabled: bool) -> None:
        """Administratively shut the session (the peer gets a Cease NOTIFICATION) or re-enable it."""

    # -- subclass hooks ----------------------------------------------------------------------

    @abstractmethod
    def _session(self, address: str) -> dict[str, Any]:
        """The session with address, as its router kind parses it into the lab's session row
        (`bgplab.lab.kinds`): `state` and `accepted` at least."""

    @abstractmethod
    def _received_routes(self) -> dict[str, RouteView]:
        """Best received path per prefix, as the daemon reports it."""

    @abstractmethod
    def _write_config(self) -> None:
        """Render the configuration into workdir."""

    @abstractmethod
    def _command(self) -> list[str]:
        """The command line that runs the daemon in the foreground."""

    @abstractmethod
    def _ready(self) -> bool:
        """Whether the daemon answers its control interface yet."""

    @abstractmethod
    def _announce(self, route: Route) -> None: ...

    @abstractmethod
    def _withdraw(self, route: Route) -> None: ...

    def _env(self) -> dict[str, str] | None:
        return None

    def _start_helpers(self) -> None:  # noqa: B027 - optional hook, most daemons need nothing
        """Start processes the main daemon needs first (it is started once this returns)."""

    def _after_start(self) -> None:  # noqa: B027 - optional hook, most daemons need nothing
        """Work that needs the running daemon, such as originating routes over its API."""

    def _log_files(self) -> list[Path]:
        return [self.workdir / "stdout.log"]
