"""Lab bring-up benchmark: `bgplab up` of a ready lab until every session is Established.

    sudo python -m bench.bringup [--topology topologies/connect-to.yaml] [--runs 5] [--json FILE]

Each run is `bgplab up TOPOLOGY --name UNIQUE --json` as a user types it, in its own state
directory, on the profile the topology names (the ready labs use `fast`). The figures:

* seconds: from starting `bgplab up` to it returning with every session Established (what the
  command measures itself is printed too: namespaces, links, daemons, our nodes and the wait);
* memory: once up, the resident set (RSS) of every process of the lab summed: each FRR daemon,
  each MSEE and gateway node (the journal's pids plus anything else inside its namespaces), and
  the peak (VmHWM) summed likewise; the kernel's own memory for namespaces is not counted;
* down: seconds for `bgplab down` to remove it all.

The targets (issue 5) are under 5 s and under 300 MB for connect-to; the table prints both beside
the figures. Figures, not asserts.
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

TARGET_SECONDS = 5.0
TARGET_MB = 300.0


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def lab_pids(state: Path, name: str) -> set[int]:
    journal = state / name / "journal.jsonl"
    pids: set[int] = set()
    for line in journal.read_text().splitlines():
        entry = json.loads(line)
        if entry["type"] == "process" and system.alive(entry["pid"]):
            pids.add(entry["pid"])
        elif entry["type"] == "namespace":
            pids.update(system.netns_pids(entry["name"]))
    return pids


def one_run(topology: Path, index: int) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bgplab-bench-"))
    state.chmod(0o755)
    env = {**os.environ, "BGPLAB_STATE_DIR": str(state)}
    name = f"bu{os.getpid() % 10000}x{index}"
    cli = [sys.executable, "-m", "bgplab"]
    started = time.monotonic()
    up = subprocess.run([*cli, "up", str(topology), "--name", name, "--json"], env=env, capture_output=True,
                        text=True)
    seconds = time.monotonic() - started
    try:
        # Exit 1 is a lab that came up without every session Established: recorded, not timed.
        if up.returncode not in (0, 1) or not up.stdout.strip():
            raise RuntimeError(f"bgplab up exited {up.returncode}: {up.stderr.strip()[-500:]}")
        report = json.loads(up.stdout)
        pids = lab_pids(state, name)
        rss = sum(_status_kb(p, "VmRSS") for p in pids) / 1024
        peak = sum(_status_kb(p, "VmHWM") for p in pids) / 1024
        sessions = len(report["sessions"])
    finally:
        down_started = time.monotonic()
        subprocess.run([*cli, "down", name], env=env, capture_output=True, text=True)
        down = time.monotonic() - down_started
        subprocess.run(["rm", "-rf", str(state)], check=False)
    return {"seconds": seconds, "reported": report["seconds"], "sessions": sessions, "processes": len(pids),
            "rss_mb": rss, "peak_mb": peak, "down_seconds": down, "established": report["established"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", type=Path, default=Path("topologies/connect-to.yaml"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    runs = [one_run(args.topology, i) for i in range(args.runs)]
    timed = [r for r in runs if r["established"]]  # "until all Established" means nothing for the others
    if not timed:
        print(f"bench.bringup: none of {len(runs)} runs established every session", file=sys.stderr)
        return 1

    def row(label: str, key: str, unit: str, target: float | None) -> str:
        values = [r[key] for r in timed]
        med, worst = statistics.median(values), max(values)
        goal = f"target < {target:g} {unit}: {'met' if worst < target else 'MISSED'}" if target else ""
        return f"{label:<34} median {med:7.2f} {unit}  max {worst:7.2f} {unit}  {goal}"

    print(f"bench.bringup: {args.topology} x {args.runs} on {platform.node()} ({os.cpu_count()} cores); "
          f"{runs[0]['sessions']} sessions, {runs[0]['processes']} processes")
    print(row("up until all Established", "seconds", "s", TARGET_SECONDS))
    print(row("  (as `bgplab up` reports it)", "reported", "s", None))
    print(row("RSS of the whole lab, once up", "rss_mb", "MB", TARGET_MB))
    print(row("peak RSS (VmHWM) summed", "peak_mb", "MB", TARGET_MB))
    print(row("down", "down_seconds", "s", None))
    if len(timed) < len(runs):
        print(f"WARNING: {len(runs) - len(timed)} of {len(runs)} runs did not establish every session "
              "(left out of the figures above)")
    if args.json:
        args.json.write_text(json.dumps({"topology": str(args.topology), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
