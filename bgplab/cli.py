"""The `bgplab` command: one entry point, one sub-command per job."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

USAGE = """usage: bgplab COMMAND [ARGS]

commands:
  speak     run a standalone BGP speaker (inject and collect routes)
  node      run one of bgplab's own nodes (msee, gateway) from its config file

Run 'bgplab COMMAND --help' for a command's options."""


def _speak(argv: Sequence[str]) -> int:
    from bgplab.speak import main

    return main(argv)


def _node(argv: Sequence[str]) -> int:
    from bgplab.expressroute.node import main

    return main(argv)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"speak": _speak, "node": _node}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"bgplab: unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
