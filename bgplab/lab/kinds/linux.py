"""A user's own container image (kind linux): its entrypoint runs the node, bgplab only wires it.

The image starts whatever it runs the moment its container does, before its links exist, as under
containerlab (CLAB_INTFS tells an entrypoint how many interfaces to wait for). Once the links
are up, `start` runs the node's `exec` commands in it and retries its `ready` command until it
succeeds. Its BGP is seen through the CLI its `cli` names (the image's own vtysh, birdc or gobgp,
read with the parsers of bgplab's frr, bird and gobgp kinds), or not at all: then `blind` says
so, `bgplab status` marks it, and its sessions show from the MSEEs' side only. There is no
daemon of bgplab's to kill or restart in it.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from bgplab.lab.kinds import ConfigCheckError, Kind, NotSupported, RunningNode, bird, gobgp, register
from bgplab.lab.kinds.frr import parse_routes, parse_sessions
from bgplab.lab.kinds.router import check_family
from bgplab.lab.plan import LabPlan, Node
from bgplab.lab.runtime import Runtime

_READY_INTERVAL = 0.5


class LinuxNode(RunningNode):
    def __init__(self, plan: LabPlan, node: Node, runtime: Runtime, workdir: Path) -> None:
        self.plan = plan
        self.node = node
        self.runtime = runtime
        self.workdir = workdir
        self.key = node.namespaces[0]

    def start(self) -> None:
        if self.plan.runtime != "docker":
            raise ConfigCheckError(f"node {self.node.name} runs the image {self.node.image}, so the lab needs the "
                                   "docker runtime (`runtime: docker`, or `bgplab up --runtime docker`)")
        for command in self.node.spec.get("exec", []):
            self._running()
            proc = self.runtime.exec(self.key, ["sh", "-c", command], check=False)
            if proc.returncode != 0:
                self._running()
                raise RuntimeError(f"{self.node.name}: exec {command!r} exited {proc.returncode}: "
                                   f"{(proc.stdout + proc.stderr).strip()[-1000:]}")
        ready = self.node.spec.get("ready")
        if ready:
            self._wait_ready(str(ready), float(self.node.spec.get("ready_timeout", 60.0)))

    def _running(self) -> None:
        """An image that exited (refusing its config, say) is reported in its own words."""
        why = self.runtime.exited(self.key)
        if why:
            raise RuntimeError(why)

    def _wait_ready(self, command: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            proc = self.runtime.exec(self.key, ["sh", "-c", command], check=False, timeout=timeout)
            if proc.returncode == 0:
                return
            self._running()  # an image that died is not going to become ready
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node.name}: not ready after {timeout:g}s ({command!r} exited "
                                   f"{proc.returncode}: {(proc.stdout + proc.stderr).strip()[-1000:]})")
            time.sleep(_READY_INTERVAL)

    def healthy(self) -> str | None:
        proc = self.runtime.exec(self.key, ["true"], check=False)
        if proc.returncode != 0:
            return f"its container ({self.node.image}) is not running: {(proc.stdout + proc.stderr).strip()}"
        return None

    def blind(self) -> str | None:
        if self.node.spec.get("cli"):
            return None
        return "kind linux without cli: bgplab cannot read its BGP; its sessions show from its peers' side"

    def no_power_loss(self) -> str | None:
        # Power back means the image's entrypoint booting again, which only restarting its
        # container does, and the engine gives a restarted container a new network namespace,
        # without the lab's links.
        return (f"{self.node.name} runs its own image, which bgplab cannot power back on with its links; "
                f"fail its links instead (`bgplab fail link {self.node.name}:IFACE`, or `cut`)")

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The image's own CLI (`cli`), with these words, in the container."""
        if not self.node.spec.get("cli"):
            raise NotSupported(f"{self._what()} has no cli bgplab can read ({self.blind()})")
        return self.runtime.exec(self.key, list(args), check=False)

    def _checked(self, *args: str) -> str:
        proc = self._cli(*args)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.node.name}: {' '.join(args)}: {(proc.stdout + proc.stderr).strip()}")
        return proc.stdout

    def _gobgp(self, *args: str) -> Any:
        text = self._checked("gobgp", "-j", *args)
        return json.loads(text) if text.strip() else None

    def sessions(self) -> list[dict[str, Any]]:
        cli = self.node.spec.get("cli")
        if cli == "bird":
            return bird.read_sessions(self.node.name, lambda *words: self._cli("birdc", *words))
        if cli == "gobgp":
            return gobgp.read_sessions(self.node.name, self._gobgp)
        if cli == "frr":
            return parse_sessions(self.node.name, self._checked("vtysh", "-c", "show bgp neighbors json"))
        return []

    def routes(self, family: str = "ipv4", **options: Any) -> list[dict[str, Any]]:
        check_family(family)
        cli = self.node.spec.get("cli")
        if cli == "bird":
            return bird.read_routes(self.node.name, lambda *words: self._cli("birdc", *words), family)
        if cli == "gobgp":
            return gobgp.read_routes(self.node.name, self._gobgp, family)
        return parse_routes(self._checked("vtysh", "-c", f"show bgp {family} unicast json detail"), family)

    def stop(self) -> None:
        """Nothing of bgplab's runs in it: the container goes with the lab."""


register(Kind("linux", LinuxNode, start_rank=0, router=True, image=""))
