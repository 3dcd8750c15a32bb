"""Where a lab's nodes live, behind one interface: the rest of the lab never learns how.

Kinds, faults, probes, `bgplab exec` and the pytest plugin act on a node through `Runtime`: run a
command in it (with input), start a long-running process in it, find its network namespace (our
own nodes open their sockets there), see which processes it holds, bring a fibre down or up.
Only the modules of this package know what a node is: a network namespace running the host's
programs (netns, the default), or a container of bgplab's image for its kind whose network
namespace is wired the same way (docker).

Two ways to run a program in a node, which the netns runtime does alike:
* `exec`/`popen`: the node's own programs (its daemon, the daemon's CLI and config checker, what
  `bgplab exec` runs), from the node's filesystem: in a container, its image's;
* `net_exec`/`net_popen`: the lab's own tools (nft, tc, sysctl, the probe agent), from the host,
  in the node's network namespace only, so faults, probes and shaping need nothing in an image.

A node's working directory (configs, pid files, control sockets, logs) is a directory of the
lab's state on the host, and a runtime makes it visible inside the node at the same path, so
what a daemon writes there is read by the lab where it wrote it, whatever the runtime.

Every resource a runtime creates is journaled in the lab's state before it is created; the
journal entry's type names the resource, and `undo` here removes one such entry, so `bgplab down`
(in `bgplab.lab.state`) can clean up after any crash without knowing what the resource is.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bgplab.lab.plan import LabPlan, Link
from bgplab.lab.runtime import netns
from bgplab.lab.runtime.netns import Redirect

if TYPE_CHECKING:
    from bgplab.lab.state import LabState


class Runtime(Protocol):
    plan: LabPlan

    def build(self) -> None:
        """Create every namespace (node), link, address, route and shaper of the plan, journaled."""

    def exited(self, key: str) -> str | None:
        """Why the namespace's container is no longer running, in its own words (docker), or None."""
        ...

    def management_address(self, key: str) -> str | None:
        """The namespace's address on the lab's management network (docker only), or None."""
        ...

    def netns_path(self, key: str) -> str:
        """The network namespace of a plan namespace key, as a path `setns` takes (a `/run/netns`
        name here, `/proc/PID/ns/net` for a container): where our own nodes open their sockets."""

    def exec(self, key: str, args: Sequence[str], check: bool = True, timeout: float = 60.0, *,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program of the node inside it to completion, text in and out."""

    def net_exec(self, key: str, args: Sequence[str], check: bool = True, timeout: float = 60.0, *,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a host program in the node's network namespace to completion, text in and out."""

    def program(self, name: str) -> str:
        """How a node's `exec`/`popen` names one of its programs ("exabgp", "python3"): the path
        scripts/setup installed it at on the host, or the name the node's image has on its PATH."""

    def exec_argv(self, key: str, args: Sequence[str]) -> list[str]:
        """A host command line that runs args inside a namespace, for a caller that runs it itself
        (`bgplab exec` hands it the terminal)."""

    def popen(self, key: str | None, args: Sequence[str], *, node: str, what: str,
              stdout: Redirect = None, stderr: Redirect = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running program of the node inside it (None: on the host, for our own
        nodes, which enter their namespaces through `netns_path`), journaled as the node's; its
        pid is the program's own."""

    def net_popen(self, key: str, args: Sequence[str], *, node: str, what: str,
                  stdout: Redirect = None, stderr: Redirect = None) -> subprocess.Popen[bytes]:
        """Start a long-running host program in the node's network namespace, journaled as the node's."""

    def processes(self, key: str) -> list[int]:
        """Every process inside a namespace, whoever started it (a node's power loss ends them
        all), but what holds the namespace itself (a container's init)."""

    def set_physical(self, physical: str, up: bool) -> list[Link]:
        """Carrier loss (or its repair) on one fibre: every link of it, at both ends."""


RUNTIMES = ("netns", "docker")


def make_runtime(plan: LabPlan, state: LabState) -> Runtime:
    """The runtime the plan names. The docker runtime (and the Docker SDK) is imported only for a
    lab that uses it."""
    if plan.runtime == "docker":
        from bgplab.lab.runtime import docker

        return docker.DockerRuntime(plan, state)
    if plan.runtime != "netns":
        raise ValueError(f"runtime {plan.runtime!r}: expected one of {', '.join(RUNTIMES)}")
    return netns.NetnsRuntime(plan, state)


Undo = Callable[[Mapping[str, Any]], tuple[bool, int]]
"""Remove one journaled resource if it is still there: whether it was, and how many processes
(left running inside it) ended with it."""


def _remove_container(entry: Mapping[str, Any]) -> tuple[bool, int]:
    from bgplab.lab.runtime import docker

    return docker.remove_container(entry)


def _remove_network(entry: Mapping[str, Any]) -> tuple[bool, int]:
    from bgplab.lab.runtime import docker

    return docker.remove_network(entry)


def _sweep(entry: Mapping[str, Any]) -> tuple[bool, int]:
    from bgplab.lab.runtime import docker

    return docker.sweep(entry)


RESOURCES: dict[str, Undo] = {"namespace": netns.remove_namespace, "container": _remove_container,
                              "network": _remove_network, "docker-sweep": _sweep}
"""Journal entry types that name a runtime's resources, with how each is undone."""
