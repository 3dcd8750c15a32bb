"""Commands and processes: the few system calls the lab makes, with errors an operator can read.

`ip`, `tc`, `sysctl` and the daemons' own tools are run as command lines rather than through
netlink bindings: every failure then carries the message an operator would see typing it (a
runtime, `bgplab.lab.runtime`, puts them inside a node).

Processes are ended by pid only, and only when the pid still names the process that was
recorded (its start time matches), so a recycled pid is never killed by mistake.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path


class CommandError(subprocess.CalledProcessError):
    """A failed command whose message carries its stderr."""

    def __str__(self) -> str:
        detail = (self.stderr or self.output or "").strip()
        command = " ".join(str(a) for a in self.cmd) if isinstance(self.cmd, list) else str(self.cmd)
        return f"`{command}` failed ({self.returncode})" + (f": {detail}" if detail else "")


def run(args: Sequence[str], check: bool = True, *, input: str | None = None,
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its text output."""
    proc = subprocess.run(list(args), input=input, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise CommandError(proc.returncode, list(args), proc.stdout, proc.stderr)
    return proc


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int) -> bool:
    """Whether pid still runs; a zombie counts as gone, since nothing can reap it for us."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_pids(pids: Sequence[int], timeout: float = 3.0, *, term: bool = True) -> None:
    """SIGTERM, then SIGKILL what is still there after `timeout` seconds. `term=False` is a crash
    or a power loss: SIGKILL at once, so nothing gets to clean up (no BGP Cease is sent), then
    wait up to `timeout` for the processes to be gone."""
    remaining = list(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL) if term else (signal.SIGKILL,):
        for pid in remaining:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while (remaining := [p for p in remaining if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not remaining:
            return
