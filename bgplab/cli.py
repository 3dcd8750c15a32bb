"""The `bgplab` command: the one list of its verbs, and the one parser built from it.

A verb is named here once, with its help line and the module whose `verb_NAME` declares its
arguments and returns its handler: arguments live beside the code that reads them (the speaker,
our nodes, the lab commands). That module is imported only when its verb is parsed: a lab starts
`bgplab node` once per node, and that should not load the lab harness first.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Verb:
    """One verb: its module's `verb_NAME` (dashes as underscores) adds its arguments and returns its handler."""

    name: str
    help: str
    module: str

    def setup(self, parser: argparse.ArgumentParser) -> Handler:
        function = getattr(importlib.import_module(self.module), "verb_" + self.name.replace("-", "_"))
        handler: Handler = function(parser)
        return handler


def _verbs(module: str, *verbs: tuple[str, str]) -> tuple[Verb, ...]:
    """Verbs by the module that implements them, which is named once for all of them."""
    return tuple(Verb(name, help_, module) for name, help_ in verbs)


VERBS = (
    *_verbs("bgplab.speak", ("speak", "run a BGP speaker: announce routes from a file, print what peers send")),
    *_verbs("bgplab.expressroute.node", ("node", "run one of bgplab's own nodes (msee, gateway) from its config file")),
    *_verbs(
        "bgplab.lab.commands",
        ("up", "bring a lab up from a topology file and wait for its sessions"),
        ("down", "remove a lab: every namespace, link and process it created"),
        ("status", "every session of every speaker, ours and the routers', in one schema"),
        ("routes", "a node's BGP routes (an MSEE's per peering and direction)"),
        ("effective-routes", "a VNet's effective routes, as Azure computes them"),
        ("events", "session, route and fault events of our nodes (--follow streams them)"),
        ("exec", "run a command in a node's namespace: bgplab exec NODE -- CMD"),
        ("fail", "break something: a link, a node, a daemon, a session, ..."),
        ("restore", "undo a fault (`restore all`: every fault in force)"),
        ("set", "change a running lab as an operator would: a connection's weight, or the connection itself"),
        ("run", "run a scenario: faults, waits and expectations, with a report"),
        ("graph", "a picture of a lab: SVG, or Mermaid text"),
        ("export", "the lab for another tool: `bgplab export containerlab TOPOLOGY`"),
        ("schema", "the topology file's JSON schema, for editors"),
    ),
)


class VerbParser(argparse.ArgumentParser):
    """A verb's parser, which imports its verb's module and adds the arguments when it first parses.

    `bgplab --help` then loads no verb's module, and `bgplab VERB` only its own.
    """

    def __init__(self, *args: Any, verb: Verb | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verb = verb

    def parse_known_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> tuple[Any, list[str]]:
        if self._verb is not None:
            verb, self._verb = self._verb, None
            self.set_defaults(handler=verb.setup(self))
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bgplab", description="A BGP speaker and an Azure ExpressRoute lab.",
                                     epilog="Run 'bgplab COMMAND --help' for a command's options.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, parser_class=VerbParser)
    for verb in VERBS:
        sub.add_parser(verb.name, help=verb.help, description=verb.help, verb=verb)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not args:
        parser.print_help()
        return 2
    if not args[0].startswith("-") and args[0] not in {verb.name for verb in VERBS}:
        # argparse's "invalid choice" crams every verb onto one line; the help lists them with what they do.
        print(f"bgplab: unknown command {args[0]!r}\n", file=sys.stderr)
        parser.print_help(sys.stderr)
        return 2
    parsed = parser.parse_args(args)
    handler: Handler = parsed.handler
    try:
        return handler(parsed)
    except BrokenPipeError:
        # `bgplab ... | head`: the reader left, which is no error of ours; keep Python quiet at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
