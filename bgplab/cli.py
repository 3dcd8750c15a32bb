"""The `bgplab` command: one entry point, one sub-command per job."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

USAGE = """usage: bgplab COMMAND [ARGS]

commands:
  speak     run a standalone BGP speaker (inject and collect routes)
  node      run one of bgplab's own nodes (msee, gateway) from its config file

  up        bring a lab up from a topology file and wait for its sessions
  down      remove a lab and everything it created
  status    every session of every speaker in a lab
  routes    a node's BGP routes (MSEE: --peering, --direction)
  effective-routes   a VNet's effective routes
  events    our nodes' session, route and fault events (--follow)
  exec      run a command in a node: bgplab exec NODE -- CMD
  fail      break a link, node, daemon or session (restore undoes it)
  restore   undo a fault, or all of them
  run       run a scenario (faults, expectations, probes) and report
  graph     a picture of a lab (SVG or Mermaid)
  export    the lab as a containerlab topology
  schema    the topology file's JSON schema

Run 'bgplab COMMAND --help' for a command's options."""


def _speak(argv: Sequence[str]) -> int:
    from bgplab.speak import main

    return main(argv)


def _node(argv: Sequence[str]) -> int:
    from bgplab.expressroute.node import main

    return main(argv)


def _lab(name: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        from bgplab.lab.commands import main

        return main([name, *argv])

    return run


LAB_COMMANDS = ("up", "down", "status", "routes", "effective-routes", "events", "exec", "fail", "restore", "run",
                "graph", "export", "schema")
COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "speak": _speak,
    "node": _node,
    **{name: _lab(name) for name in LAB_COMMANDS},
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"bgplab: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        return command(args[1:])
    except BrokenPipeError:
        # `bgplab ... | head`: the reader left, which is no error of ours; keep Python quiet at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
