"""Lab bring-up benchmark: `bgplab up` of a ready lab until every session is Established, on the
netns and docker runtimes side by side.

    sudo python -m bench.bringup [--topology topologies/connect-to.yaml] [--runs 5]
                                 [--runtimes netns,docker] [--cold] [--json FILE]

Each run is `bgplab up TOPOLOGY --name UNIQUE --runtime R --json` as a user types it, in its
own state directory, on the profile the topology names (the ready labs use `fast`); the runs
alternate between the runtimes, so neither gets a warmer machine. The figures:

* seconds: from starting `bgplab up` to it returning with every session Established (what the
  command measures itself is printed too);
* memory: once up, the resident set (RSS) of every process of the lab summed: each daemon, each
  MSEE and gateway node (the journal's pids plus anything else inside its namespaces: on docker
  that includes each container's init), on docker also each container's containerd-shim (its
  init's parent, which exists only for the container); and the peak (VmHWM) summed likewise.
  The kernel's own memory for namespaces, and the engine's daemons (dockerd, containerd, shared
  by every container on the machine), are not counted;
* down: seconds for `bgplab down` to remove it all; afterwards nothing of the lab may be left
  (its namespaces, containers), or the bench fails;
* images (docker): the size of each image the lab uses, a warm `containers/build` (everything
  up to date) and, with `--cold`, `containers/build --force` (every image rebuilt, no cache).

Targets (issues 5 and 12): connect-to up in under 5 s and 300 MB on netns; on docker, under 10 s
warm and under 2x the netns runtime. The table prints them beside the figures. Figures, not asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bgplab.lab import system
from bgplab.lab.runtime.docker import LAB_LABEL, client
from bgplab.lab.runtime.netns import namespace_pids
from bgplab.lab.topology import load_topology

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 5.0
TARGET_MB = 300.0
TARGET_DOCKER_SECONDS = 10.0
TARGET_DOCKER_RATIO = 2.0
FIGURES = (("up until all Established, s", "seconds"), ("  as `bgplab up` reports it, s", "reported"),
           ("RSS of the whole lab, MB", "rss_mb"), ("peak RSS (VmHWM) summed, MB", "peak_mb"),
           ("down, s", "down_seconds"))


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def _parent(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return 0


def lab_pids(state: Path, name: str) -> tuple[set[int], int]:
    """Every process of the lab, and how many of them are containerd shims."""
    journal = state / name / "journal.jsonl"
    pids: set[int] = set()
    shims: set[int] = set()
    engine = None
    for line in journal.read_text().splitlines():
        entry = json.loads(line)
        if entry["type"] == "process" and system.alive(entry["pid"]):
            pids.add(entry["pid"])
        elif entry["type"] == "namespace":
            pids.update(namespace_pids(entry["name"]))
        elif entry["type"] == "container":
            engine = engine or client()
            init = int(engine.containers.get(entry["name"]).attrs["State"]["Pid"])
            if init:
                shims.add(_parent(init))
    shims.discard(0)
    return pids | shims, len(shims)


def left_behind(name: str, runtime: str) -> list[str]:
    left = [n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
            if n.startswith(f"bl-{name}-")]
    if runtime == "docker":
        left += [c.name or "" for c in client().containers.list(all=True, filters={"label": f"{LAB_LABEL}={name}"})]
    return left


def one_run(topology: Path, runtime: str, index: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bgplab-bench-"))
    state.chmod(0o755)
    env = {**os.environ, "BGPLAB_STATE_DIR": str(state)}
    name = f"bu{os.getpid() % 10000}{runtime[0]}{index}"
    cli = [sys.executable, "-m", "bgplab"]
    started = time.monotonic()
    up = subprocess.run([*cli, "up", str(topology), "--name", name, "--runtime", runtime, "--json"], env=env,
                        capture_output=True, text=True)
    seconds = time.monotonic() - started
    try:
        # Exit 1 is a lab that came up without every session Established: recorded, not timed.
        if up.returncode not in (0, 1) or not up.stdout.strip():
            raise RuntimeError(f"bgplab up --runtime {runtime} exited {up.returncode}: {up.stderr.strip()[-500:]}")
        report = json.loads(up.stdout)
        pids, shims = lab_pids(state, name)
        rss = sum(_status_kb(p, "VmRSS") for p in pids) / 1024
        peak = sum(_status_kb(p, "VmHWM") for p in pids) / 1024
    finally:
        down_started = time.monotonic()
        subprocess.run([*cli, "down", name], env=env, capture_output=True, text=True)
        down = time.monotonic() - down_started
        subprocess.run(["rm", "-rf", str(state)], check=False)
    left = left_behind(name, runtime)
    if left:
        raise RuntimeError(f"bgplab down {name} ({runtime}) left {', '.join(left)}")
    return {"runtime": runtime, "seconds": seconds, "reported": report["seconds"],
            "sessions": len(report["sessions"]), "processes": len(pids), "shims": shims, "rss_mb": rss,
            "peak_mb": peak, "down_seconds": down, "established": report["established"]}


def build_seconds(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([str(REPO / "containers" / "build"), *args], check=True, capture_output=True, text=True)
    return time.monotonic() - started


def images(topology: Path) -> dict[str, float]:
    engine = client()
    used = sorted({node.image for node in load_topology(topology).nodes.values() if node.image})
    return {image: int(engine.images.get(image).attrs["Size"]) / 1e6 for image in used}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", type=Path, default=Path("topologies/connect-to.yaml"))
    parser.add_argument("--runs", type=int, default=5, help="runs per runtime")
    parser.add_argument("--runtimes", default="netns,docker", help="comma-separated (default: netns,docker)")
    parser.add_argument("--cold", action="store_true", help="also time containers/build --force (every image)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    builds: dict[str, float] = {}
    if "docker" in runtimes:
        if args.cold:
            builds["cold"] = build_seconds("--force")
        else:
            build_seconds()  # whatever is stale is built first: "warm" is every image up to date
        builds["warm"] = build_seconds()
    runs = [one_run(args.topology, runtime, i) for i in range(args.runs) for runtime in runtimes]
    timed = {r: [x for x in runs if x["runtime"] == r and x["established"]] for r in runtimes}
    if not all(timed.values()):
        print(f"bench.bringup: a runtime had no run that established every session: "
              f"{[r for r, x in timed.items() if not x]}", file=sys.stderr)
        return 1

    def stat(runtime: str, key: str) -> tuple[float, float]:
        values = [r[key] for r in timed[runtime]]
        return statistics.median(values), max(values)

    first = {r: timed[r][0] for r in runtimes}
    print(f"== bring-up of {args.topology}, {args.runs} runs per runtime, on {platform.node()} "
          f"({os.cpu_count()} cores): {first[runtimes[0]]['sessions']} sessions; processes "
          + ", ".join(f"{r} {first[r]['processes']}" + (f" (of them {first[r]['shims']} containerd-shim)"
                                                       if first[r]["shims"] else "") for r in runtimes))
    print(f"{'figure':<34}" + "".join(f"{r + ' median (max)':>22}" for r in runtimes)
          + (f"{'docker / netns':>16}" if {"netns", "docker"} <= set(runtimes) else ""))
    for label, key in FIGURES:
        cells = "".join(f"{'%.2f (%.2f)' % stat(r, key):>22}" for r in runtimes)
        times = (f"{stat('docker', key)[0] / stat('netns', key)[0]:>15.2f}x"
                 if {"netns", "docker"} <= set(runtimes) else "")
        print(f"{label:<34}{cells}{times}")
    goals = []
    if "netns" in runtimes:
        goals += [_goal("netns up", stat("netns", "seconds")[1], TARGET_SECONDS, "s"),
                  _goal("netns lab RSS", stat("netns", "rss_mb")[1], TARGET_MB, "MB")]
    if "docker" in runtimes:
        goals.append(_goal("docker up", stat("docker", "seconds")[1], TARGET_DOCKER_SECONDS, "s"))
        if "netns" in runtimes:
            ratio = stat("docker", "seconds")[0] / stat("netns", "seconds")[0]
            goals.append(_goal("docker up / netns up (medians)", ratio, TARGET_DOCKER_RATIO, "x"))
    print("targets (worst run unless said): " + "; ".join(goals))
    left_out = sum(1 for r in runs if not r["established"])
    if left_out:
        print(f"  {left_out} of {len(runs)} runs did not establish every session (left out of the figures above)")
    sizes: dict[str, float] = {}
    if "docker" in runtimes:
        sizes = images(args.topology)
        print()
        print("== images of the lab (docker runtime), each whole (its base's layers included)")
        for image, mb in sizes.items():
            print(f"{image:<34}{mb:>8.0f} MB")
        print("containers/build: " + ", ".join(f"{k} {v:.1f} s" for k, v in builds.items())
              + ("" if args.cold else " (--cold times a rebuild of every image)"))
    if args.json:
        args.json.write_text(json.dumps({"topology": str(args.topology), "runs": runs, "builds": builds,
                                         "images_mb": sizes}, indent=1))
    return 0


def _goal(what: str, value: float, target: float, unit: str) -> str:
    return f"{what} {value:.2f} {unit} < {target:g} {unit}: {'met' if value < target else 'MISSED'}"


if __name__ == "__main__":
    sys.exit(main())
