"""The docker runtime: a container per plan namespace, wired exactly as the netns runtime wires namespaces.

Each namespace of the plan is a container of its node's image (bgplab's, built by
`containers/build`) with no Docker networking of its own (`network_mode: none`). Its network
namespace is then given the name the netns runtime would use (`ip netns attach`), so links,
addresses, routes, bridges, shaping, faults and probes are the netns runtime's own code, acting
from the host; only where a node's programs run differs.

A node's programs (its daemon, that daemon's CLI and config checker, `bgplab exec`) run from
the container's filesystem: `nsenter` into its mount, UTS, IPC and network namespaces, which
execs the program in place, so the pid the lab journals, signals and reads back from pid files
is the program's own. For that the containers share the host's pid namespace (`pid_mode: host`):
a program outside a container's pid namespace would find its own /proc/self missing. The
container's init (`sleep infinity`, the images' CMD) holds the namespaces and runs nothing else.
Our own nodes (msee, gateway) stay host processes that open their sockets in their containers'
network namespaces, as in the netns runtime (one MSEE serves peerings in two containers).

The lab's state directory is bind-mounted at the same path into every container, so configs,
pid files, control sockets and logs are where the lab reads them. Every container carries the
labels `org.bgplab.lab` and `org.bgplab.namespace`, and is journaled before it is created:
`bgplab down` removes it after any crash (and only a container with the lab's label).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

from bgplab.lab import system
from bgplab.lab.plan import LabPlan
from bgplab.lab.runtime.netns import NetnsRuntime, Redirect, namespace_pids

if TYPE_CHECKING:
    from bgplab.lab.state import LabState

LAB_LABEL = "org.bgplab.lab"
NAMESPACE_LABEL = "org.bgplab.namespace"
NODE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
            "LANG": "C.UTF-8"}
"""The environment of a node's programs: the image's, not the host's (no virtual environment's PATH)."""
USER_IMAGE_CAPS = ("NET_ADMIN", "NET_RAW", "SYS_ADMIN", "IPC_LOCK", "SYS_NICE")
"""Beyond Docker's defaults, for a user's image: routes, raw sockets (BFD, OSPF), mounts, locked memory."""
OUR_IMAGES = ("base", "frr", "bird", "gobgp", "exabgp", "host", "bgplab")
"""The images containers/build makes, as bgplab/NAME."""
_PARALLEL = 8
"""Containers created at once: the engine starts each in ~0.25 s, mostly waiting."""


class DockerError(RuntimeError):
    """The Docker engine is unreachable, or refused; the message says what to do."""


def _missing(image: str) -> str:
    """What to do about an image the engine does not have: ours are built here, a user's are theirs."""
    name = image.rsplit(":", 1)[0]
    kind = name.split("/", 1)[1] if name.startswith("bgplab/") else None
    if kind is not None and kind in OUR_IMAGES:
        return f"image {image} is not built; build it with: containers/build {kind}"
    return (f"image {image} is not on this Docker engine: build it (docker build -t {image} DIR) or load it "
            "(docker load -i FILE, docker pull from your registry), then bring the lab up again")


@functools.cache
def client() -> docker.DockerClient:
    """The engine DOCKER_HOST names (default: /var/run/docker.sock), one client per process."""
    try:
        engine = docker.from_env(timeout=60)
        engine.ping()
    except docker.errors.DockerException as exc:
        raise DockerError(f"cannot reach the Docker engine ({exc}); start one with scripts/dockerd") from None
    return engine


def remove_network(entry: Mapping[str, Any]) -> tuple[bool, int]:
    """Undo a journaled management network, as a container: only one carrying the lab's label."""
    try:
        network = client().networks.get(str(entry["name"]))
    except docker.errors.NotFound:
        return False, 0
    if (network.attrs.get("Labels") or {}).get(LAB_LABEL) != entry.get("lab"):
        return False, 0
    network.remove()
    return True, 0


def sweep(entry: Mapping[str, Any]) -> tuple[bool, int]:
    """Undone last (journaled first): every container and network that still carries the lab's
    label. An `up` SIGKILLed while the engine creates a container leaves a create that the engine
    may finish after `down` looked for that container by name; its label still finds it."""
    engine = client()
    label = f"{LAB_LABEL}={entry['lab']}"
    found = engine.containers.list(all=True, filters={"label": label})
    for container in found:
        container.remove(force=True)
    networks = engine.networks.list(filters={"label": label})
    for network in networks:
        network.remove()
    return bool(found or networks), 0


def remove_container(entry: Mapping[str, Any]) -> tuple[bool, int]:
    """Undo a journaled container: remove it by name, if it still is there and carries the lab's
    label (a container of the same name that is not the lab's is never touched)."""
    try:
        container = client().containers.get(str(entry["name"]))
    except docker.errors.NotFound:
        return False, 0
    if container.labels.get(LAB_LABEL) != entry.get("lab"):
        return False, 0
    container.remove(force=True)
    return True, 0


def _exit_report(container: Container) -> str:
    """A container that died as it started, in its own words (a user's image refusing its config)."""
    logs = container.logs(tail=20).decode(errors="replace").strip() or "no output"
    return (f"container {container.name} ({container.attrs['Config']['Image']}) exited with code "
            f"{container.attrs['State'].get('ExitCode')} as it started:\n{logs}")


class DockerRuntime(NetnsRuntime):
    def __init__(self, plan: LabPlan, state: LabState) -> None:
        super().__init__(plan, state)
        self._client: docker.DockerClient | None = None
        self._pids: dict[str, int] = {}
        self._env: dict[str, list[str]] = {}

    @property
    def docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = client()
        return self._client

    def image(self, key: str) -> str:
        node = self.plan.nodes[self.plan.namespaces[key].node]
        if not node.image:
            raise DockerError(f"node {node.name} ({node.kind}) has no container image")
        return node.image

    # ---- building

    @property
    def management_network(self) -> str:
        return f"bl-{self.plan.name}-mgmt"

    def on_management(self, key: str) -> bool:
        """Whether a namespace's container is on the management network: each node's first (an
        MSEE's peerings are one router)."""
        return self.plan.management is not None and self.plan.nodes[self.plan.namespaces[key].node].namespaces[0] == key

    def _create_management(self) -> None:
        """An internal network (no route out through the engine), journaled first like a container."""
        assert self.plan.management is not None
        name, subnet = self.management_network, self.plan.management.get("subnet")
        self.state.record("network", name=name, lab=self.plan.name)
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]) if subnet else None
        try:
            self.docker.networks.create(name, driver="bridge", internal=True, ipam=ipam,
                                        labels={LAB_LABEL: self.plan.name})
        except docker.errors.APIError as exc:
            raise DockerError(f"management network {name}: {exc.explanation or exc}") from None

    def create_namespaces(self) -> None:
        keys = list(self.plan.namespaces)
        for image in sorted({self.image(key) for key in keys}):
            try:
                self.docker.images.get(image)
            except docker.errors.ImageNotFound:
                raise DockerError(_missing(image)) from None
        self.state.record("docker-sweep", lab=self.plan.name)
        if self.plan.management is not None:
            self._create_management()  # journaled before the containers on it: `down` removes it after them
        for key in keys:
            # Journaled first, both: a crash between the engine creating the container and its
            # namespace getting its name leaves nothing `down` does not know of.
            # `down` undoes the newest first: the container (and its init) goes, then whatever
            # still runs in its network namespace, then the namespace's name.
            name = self.claim(key)
            self.state.record("container", name=name, key=key, lab=self.plan.name)
        with ThreadPoolExecutor(_PARALLEL) as pool:
            pids = list(pool.map(self._create, keys))
        for key, pid in zip(keys, pids, strict=True):
            self._pids[key] = pid
            try:
                system.run(["ip", "netns", "attach", self.ns(key), str(pid)])
            except system.CommandError:
                why = self.exited(key)  # its init died at once (a user's image refusing its config, say)
                if why:
                    raise DockerError(why) from None
                raise
            self.prepare(key)
            if self.on_management(key):
                self._prepare_management(key)

    def _prepare_management(self, key: str) -> None:
        """The engine's interface becomes mgmt0 (eth0 is a name a lab's links may use). Setting it
        down to rename it also ends the default route the engine gave it through its bridge (the
        kernel drops a down device's routes; back up, only its subnet's comes back): a lab routes
        only through its own links, never through the host (which may forward to its uplink)."""
        self.batch(key, ["link set eth0 down", "link set eth0 name mgmt0", "link set mgmt0 up"])

    def management_address(self, key: str) -> str | None:
        if not self.on_management(key):
            return None
        networks = self.docker.containers.get(self.ns(key)).attrs["NetworkSettings"]["Networks"]
        address = networks.get(self.management_network, {}).get("IPAddress")
        return str(address) if address else None

    def own_init(self, key: str) -> bool:
        """A user's image, whose own entrypoint runs as the container's init (kind linux)."""
        return bool(self.plan.nodes[self.plan.namespaces[key].node].container.get("init"))

    def _create(self, key: str) -> int:
        name = self.ns(key)
        node = self.plan.nodes[self.plan.namespaces[key].node]
        network = {"network": self.management_network} if self.on_management(key) else {"network_mode": "none"}
        common: dict[str, Any] = {
            "name": name, "hostname": node.name[:63], "detach": True, **network,
            "labels": {LAB_LABEL: self.plan.name, NAMESPACE_LABEL: key},
            "volumes": [f"{self.state.dir}:{self.state.dir}:rw"],
        }
        try:
            if self.own_init(key):
                # Its entrypoint runs much as under containerlab: in its own pid namespace, with the
                # capabilities a router OS uses (not --privileged, which needs every capability the
                # host has, and this kernel's bounding set lacks one), told how many interfaces to
                # wait for (they come once it runs).
                common["volumes"] += node.container.get("binds", [])
                for host, path in node.container.get("copies", []):
                    copy = self.state.dir / "nodes" / node.name / "files" / path.lstrip("/")
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(host, copy)
                    common["volumes"].append(f"{copy}:{path}:rw")
                count = sum(1 for link in self.plan.links for e in (link.a, link.b) if e.namespace == key)
                env = {**node.container.get("env", {}), "CLAB_INTFS": str(count), "BGPLAB_INTFS": str(count)}
                container = self.docker.containers.run(self.image(key), cap_add=list(USER_IMAGE_CAPS), environment=env,
                                                       **common)
            else:
                # Its init holds the namespaces whatever the image's CMD: the kinds start the daemons.
                container = self.docker.containers.run(self.image(key), ["sleep", "infinity"], pid_mode="host",
                                                       **common)
        except docker.errors.APIError as exc:
            raise DockerError(f"container {name}: {exc.explanation or exc}") from None
        return self._running_pid(container)

    @staticmethod
    def _running_pid(container: Container) -> int:
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        if not pid:
            raise DockerError(_exit_report(container))
        return pid

    def exited(self, key: str) -> str | None:
        """What the container said if it is no longer running (its exit code and log), else None."""
        try:
            container = self.docker.containers.get(self.ns(key))
        except docker.errors.NotFound:
            return f"container {self.ns(key)} of lab {self.plan.name} is gone"
        return None if container.attrs["State"].get("Running") else _exit_report(container)

    # ---- operating

    def init_pid(self, key: str) -> int:
        """The container's init, which holds its namespaces (and is no daemon of the node)."""
        if key not in self._pids:
            try:
                self._pids[key] = self._running_pid(self.docker.containers.get(self.ns(key)))
            except docker.errors.NotFound:
                raise DockerError(f"container {self.ns(key)} of lab {self.plan.name} is gone") from None
        return self._pids[key]

    def exec_argv(self, key: str, args: Sequence[str], cwd: Path | None = None) -> list[str]:
        """nsenter execs in place (no pid namespace to enter), and `env -i` gives the image's
        environment, in place too: the command's pid is the program's. In a user's image, whose
        container has its own pid namespace, nsenter enters that too (and so forks), with the
        environment the image declares, as `docker exec` would."""
        # nsenter's --wd=DIR is taken before its chroot, leaving the program outside its root: a
        # shell in the node changes directory, then execs the program (the pid stays its own).
        where = "--wd"
        if cwd is not None:
            args = ["sh", "-c", 'cd "$0" && exec "$@"', str(cwd), *args]
        term = {"TERM": os.environ["TERM"]} if "TERM" in os.environ else {}
        if self.own_init(key):
            env = [*self._image_env(key), *(f"{k}={v}" for k, v in term.items())]
            return ["nsenter", "--target", str(self.init_pid(key)), "--all", "--root", where, "--", "env", "-i",
                    *env, *args]
        return ["nsenter", "--target", str(self.init_pid(key)), "--mount", "--uts", "--ipc", "--net", "--root",
                where, "--", "env", "-i", *(f"{k}={v}" for k, v in {**NODE_ENV, **term}.items()), *args]

    def _image_env(self, key: str) -> list[str]:
        if key not in self._env:
            self._env[key] = list(self.docker.containers.get(self.ns(key)).attrs["Config"].get("Env") or [])
        return self._env[key]

    def program(self, name: str) -> str:
        return name

    def processes(self, key: str) -> list[int]:
        init = self.init_pid(key)
        return [pid for pid in namespace_pids(self.ns(key)) if pid != init]

    def popen(self, key: str | None, args: Sequence[str], *, node: str, what: str,
              stdout: Redirect = None, stderr: Redirect = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        if key is None:
            return super().popen(None, args, node=node, what=what, stdout=stdout, stderr=stderr, cwd=cwd)
        return self.spawn(self.exec_argv(key, args, cwd), node=node, what=what, stdout=stdout, stderr=stderr)
