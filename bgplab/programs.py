"""Where bgplab finds the programs it runs, and which ones its test suite needs.

Programs come from Debian packages (on PATH, or FRR's daemons in /usr/lib/frr) and from Python
packages installed into the environment bgplab runs from (ExaBGP, in `.venv/bin` when
scripts/setup made it). That environment's bin is not on PATH when a script calls
`.venv/bin/python` directly, so it is searched first, found from the running interpreter: a
program is then found the same way whoever starts us, and never by PATH luck.

`python -m bgplab.programs` lists what the suite needs and is missing, with the package that brings
each, and exits 1 if anything is: scripts/test runs it before anything else, so a missing program
stops the run with its name instead of showing up as skipped or erroring tests.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

FRR_LIBDIR = Path("/usr/lib/frr")


class MissingProgram(RuntimeError):
    """A program bgplab needs is not installed; the message names the package that brings it."""


@dataclass(frozen=True, slots=True)
class Program:
    name: str
    """A command name, looked up in this environment's bin then on PATH, or an absolute path."""
    package: str
    """What installs it: a Debian package, or `pip:NAME` for a Python package."""


SUITE = (
    Program("ip", "iproute2"),
    Program("tc", "iproute2"),
    Program("nft", "nftables"),
    Program("ping", "iputils-ping"),
    Program("traceroute", "traceroute"),
    Program("vtysh", "frr"),
    *(Program(str(FRR_LIBDIR / d), "frr") for d in ("zebra", "bgpd", "bfdd", "staticd")),
    Program("bird", "bird2"),
    Program("birdc", "bird2"),
    Program("gobgpd", "gobgpd"),
    Program("gobgp", "gobgpd"),
    Program("exabgp", "pip:exabgp"),
    Program("nsenter", "util-linux"),
    Program("docker", "docker.io"),
    Program("dockerd", "docker.io"),
    Program("docker-compose", "docker-compose"),
    Program("debootstrap", "debootstrap"),
)
"""Every program the tests and benchmarks run; scripts/setup installs each of these."""

_PACKAGES = {p.name: p.package for p in SUITE}


def find(name: str) -> str | None:
    """The program's path, or None: an absolute path as it is, else this environment's bin, else PATH."""
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def program(name: str) -> str:
    """The program's path; MissingProgram names the package to install when it is not there."""
    found = find(name)
    if found is None:
        package = _PACKAGES.get(name, "")
        how = f"pip install {package[4:]}" if package.startswith("pip:") else f"apt-get install {package}"
        raise MissingProgram(f"{name} is not installed" + (f" ({how}, or run scripts/setup)" if package else ""))
    return found


def missing(programs: tuple[Program, ...] = SUITE) -> list[Program]:
    return [p for p in programs if find(p.name) is None]


def main() -> int:
    absent = missing()
    if not absent:
        print(f"programs: all {len(SUITE)} the tests need are installed")
        return 0
    print("programs: the tests need these, which are not installed (scripts/setup installs them):", file=sys.stderr)
    for p in absent:
        print(f"  {p.name}  (package {p.package})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
