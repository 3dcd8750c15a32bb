"""Recorded benchmark runs, and the tables in bench/README.md generated from them.

    python -m bench.record ingest --sizes 1000000      # run bench.ingest, keep what it printed
    python -m bench.record --readme                    # rewrite README's recorded sections

A run is kept in `bench/recorded/BENCH.json` (committed; its history is git's): the exact
command, the commit it ran at (and whether the tree had changes), the date, the machine, every
line the bench printed and the figures of its `--json`. README.md holds each recorded bench's
printed tables between `<!-- recorded: BENCH -->` and `<!-- /recorded -->`, stamped with that
commit and date, and nothing there is typed by hand: `--readme` rewrites the sections from the
files, and tests/test_bench_record.py fails when they differ, so a table cannot go stale silently.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RECORDED = BENCH / "recorded"
README = BENCH / "README.md"
BENCHES = ("ingest", "bestpath", "fib", "bfd", "bringup", "failover")
_SECTION = re.compile(r"(<!-- recorded: (\w+) -->\n)(.*?)(<!-- /recorded -->)", re.DOTALL)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=BENCH.parent, capture_output=True, text=True, check=True).stdout.strip()


def record(bench: str, args: list[str]) -> Path:
    """Run `python -m bench.BENCH ARGS --json TMP`, echoing what it prints, and keep it all."""
    with tempfile.TemporaryDirectory() as tmp:
        figures = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", f"bench.{bench}", *args, "--json", str(figures)]
        proc = subprocess.Popen(command, cwd=BENCH.parent, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line.rstrip("\n"))
        if proc.wait() != 0:
            raise SystemExit(f"bench.{bench} exited {proc.returncode}: nothing recorded")
        data = json.loads(figures.read_text()) if figures.exists() else None
    run = {
        "bench": bench,
        "command": f"python -m bench.{bench} {' '.join(args)}".strip(),
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        # What this recorder writes itself (the README, the recorded files) is not a change to the code.
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/README.md",
                           ":!bench/recorded")),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "output": lines,
        "figures": data,
    }
    RECORDED.mkdir(exist_ok=True)
    path = RECORDED / f"{bench}.json"
    path.write_text(json.dumps(run, indent=1) + "\n")
    return path


def _progress(line: str) -> bool:
    return line.startswith("  [")


def tables(output: list[str]) -> list[str]:
    """The report blocks of a bench's output: from each `== ...` heading to the blank line that
    ends it (one followed by indented notes on the table belongs to it, progress lines `  [...`
    never do); a bench that prints no headings is kept whole, less its progress lines."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for i, line in enumerate(output):
        if line.startswith("== "):
            current = [line]
            blocks.append(current)
        elif current is not None:
            if line.strip() and not _progress(line):
                current.append(line)
            elif not line.strip():
                following = output[i + 1] if i + 1 < len(output) else ""
                if following.startswith("  ") and not _progress(following):
                    current.append(line)
                else:
                    current = None
            else:
                current = None
    if blocks:
        return [line for block in blocks for line in [*block, ""]][:-1]
    return [line for line in output if not _progress(line)]


def section(run: dict[str, Any]) -> str:
    tree = " (with uncommitted changes)" if run["dirty"] else ""
    head = (f"Recorded by `{run['command']}` at commit `{run['commit']}`{tree} on {run['date']} "
            f"(bench/recorded/{run['bench']}.json); regenerate with `python -m bench.record --readme`.\n")
    return head + "\n```\n" + "\n".join(tables(run["output"])) + "\n```\n"


def readme_text(text: str) -> str:
    """README with every recorded section rebuilt from its file (a section with no file is left)."""
    def build(match: re.Match[str]) -> str:
        path = RECORDED / f"{match.group(2)}.json"
        if not path.exists():
            return match.group(0)
        return match.group(1) + section(json.loads(path.read_text())) + match.group(4)
    return _SECTION.sub(build, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.record", description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", nargs="?", choices=BENCHES)
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's recorded sections")
    args, rest = parser.parse_known_args(argv)
    if args.bench is None and not args.readme:
        parser.error("name a bench to record, or --readme")
    if args.bench is not None:
        print(f"recorded: {record(args.bench, rest)}", file=sys.stderr)
    if args.readme or args.bench is not None:
        README.write_text(readme_text(README.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
