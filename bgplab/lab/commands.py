"""The lab commands of `bgplab` (bgplab.cli lists them): each one's arguments (`verb_*`) and its work (`cmd_*`).

Human tables by default and `--json` everywhere. Exit codes CI can use: 0 done (and, for `up`,
every session established), 1 the lab is up but not every session came up in time or a node
failed, 2 bad input (a topology error names the file, the line and the field), 3 no such lab.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bgplab.expressroute import control
from bgplab.expressroute.profile import PROFILES, profile
from bgplab.lab import export, graph, system
from bgplab.lab.faults import BGP_MODES, Fault, FaultError, Faults
from bgplab.lab.faults import KINDS as FAULT_KINDS
from bgplab.lab.kinds import ConfigCheckError, NotSupported, RunningNode, kind_of
from bgplab.lab.lab import Lab, LabError
from bgplab.lab.plan import LabPlan
from bgplab.lab.runtime import RUNTIMES
from bgplab.lab.scenario import Runner, ScenarioError, load_scenario
from bgplab.lab.settings import SettingError, Settings
from bgplab.lab.state import LabState, labs
from bgplab.lab.topology import LAB_NAME, TopologyError, load_topology, topology_schema

EXIT_OK, EXIT_NOT_READY, EXIT_USAGE, EXIT_NO_LAB = 0, 1, 2, 3
PEERINGS = ("private", "microsoft", "public")
Handler = Callable[[argparse.Namespace], int]


def _lab_verb(parser: argparse.ArgumentParser, handler: Handler, lab_option: bool = True) -> Handler:
    """Adds the options every lab command takes; its handler, turning the lab's errors into one line on
    stderr and the exit codes above, so that a script can tell bad input from a missing lab."""
    parser.add_argument("--json", action="store_true", help="JSON output")
    if lab_option:
        parser.add_argument("--lab", help="which lab (default: the only one up)")

    def run(args: argparse.Namespace) -> int:
        error: Exception
        try:
            return handler(args)
        except (TopologyError, ConfigCheckError, FaultError, SettingError, ScenarioError, NotSupported) as exc:
            error, code = exc, EXIT_USAGE
        except LabError as exc:
            error, code = exc, EXIT_NO_LAB
        except (control.ControlError, RuntimeError, system.CommandError) as exc:
            error, code = exc, EXIT_NOT_READY
        print(f"{parser.prog}: {error}", file=sys.stderr)
        return code

    return run


def _out(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=1) if args.json else text)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(key) is None else str(r.get(key))) for key, _ in columns] for r in rows]
    widths = [max(len(title), *(len(c[i]) for c in cells)) for i, (_, title) in enumerate(columns)]
    lines = ["  ".join(title.ljust(w) for (_, title), w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


SESSION_COLUMNS = (("node", "NODE"), ("peering", "PEERING"), ("neighbor", "NEIGHBOR"), ("remote_as", "AS"),
                   ("state", "STATE"), ("uptime", "UP(s)"), ("accepted", "RCVD"), ("advertised", "SENT"),
                   ("bfd", "BFD"))
ROUTE_COLUMNS = (("network", "NETWORK"), ("next_hop", "NEXT HOP"), ("path", "PATH"), ("local_pref", "LOCPRF"),
                 ("communities", "COMMUNITIES"), ("source", "PEER"))


def _progress(args: argparse.Namespace) -> Callable[[str], None]:
    tty = sys.stderr.isatty()

    def say(text: str) -> None:
        if args.json:
            return
        with contextlib.suppress(OSError):  # progress is a courtesy: a closed stderr must not stop `up`
            if tty:
                sys.stderr.write(f"\r\033[K{text}")
                sys.stderr.flush()
            else:
                print(text, file=sys.stderr, flush=True)

    return say


def verb_up(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("topology", type=Path)
    parser.add_argument("--wait", type=float, help="seconds to wait for sessions (default: 60 fast, 300 azure)")
    parser.add_argument("--name", help="run under another lab name (two copies of one topology side by side)")
    _runtime_option(parser)
    return _lab_verb(parser, cmd_up, lab_option=False)


def _runtime_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="where the nodes live (default: the topology's `runtime:`, else netns); docker "
                             "needs the images of containers/build")
    parser.add_argument("--profile", choices=tuple(PROFILES),
                        help="timers (default: the topology's `profile:`): azure is Microsoft's own, 60/180 s "
                             "and BFD 300 ms x 3; fast is for CI, 3/9 s")


def cmd_up(args: argparse.Namespace) -> int:
    plan = load_topology(args.topology)
    if args.name:
        if not LAB_NAME.fullmatch(args.name):
            expected = "expected a lowercase letter, then up to 19 lowercase letters, digits or dashes"
            raise TopologyError(str(args.topology), None, "name", f"--name {args.name!r}: {expected}")
        plan = replace(plan, name=args.name)
    if args.runtime:
        plan = replace(plan, runtime=args.runtime)
    if args.profile:
        plan = replace(plan, profile=args.profile)
    lab = Lab(plan)
    say = _progress(args)
    started = time.monotonic()
    lab.up(say)
    wait = args.wait if args.wait is not None else profile(plan.profile).up_wait
    waiting = lab.wait_established(wait, say)
    seconds = round(time.monotonic() - started, 2)
    if sys.stderr.isatty() and not args.json:
        sys.stderr.write("\n")
    sessions = lab.sessions()
    data = {"lab": plan.name, "profile": plan.profile, "seconds": seconds, "state_dir": str(lab.state.dir),
            "established": not waiting, "sessions": sessions}
    text = (f"lab {plan.name} up in {seconds}s (profile {plan.profile}); "
            f"{len(sessions) - len(waiting)}/{len(sessions)} sessions established\n{_table(sessions, SESSION_COLUMNS)}")
    if profile(plan.profile).caveat:
        data["profile_caveat"] = profile(plan.profile).caveat
        text += f"\nnote: {profile(plan.profile).caveat}"
    if waiting:
        text += f"\nnot established after {wait:g}s: " + ", ".join(f"{r['node']}->{r['neighbor']}" for r in waiting)
    _out(args, data, text)
    return EXIT_NOT_READY if waiting else EXIT_OK


def verb_down(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("target", nargs="?", help="lab name or topology file (default: the only lab up)")
    parser.add_argument("--all", action="store_true", help="every lab on this machine")
    return _lab_verb(parser, cmd_down, lab_option=False)


def _lab_name(target: str) -> str:
    """A lab name, or a topology file whose lab is meant."""
    if target.endswith((".yaml", ".yml")) or os.sep in target:
        return load_topology(target).name
    return target


def cmd_down(args: argparse.Namespace) -> int:
    if args.all:
        states = labs()
    elif args.target:
        states = [LabState(_lab_name(args.target))]
    else:
        states = labs()
        if len(states) > 1:
            raise LabError(f"several labs are up ({', '.join(s.lab for s in states)}); name one or use --all")
    removed = []
    for state in states:
        done = state.teardown()
        removed.append({"lab": state.lab, "processes": done.processes, "namespaces": done.namespaces,
                        "containers": done.containers, "networks": done.networks})
    text = "\n".join(f"lab {r['lab']} down: {r['namespaces']} namespaces, "
                     + (f"{r['containers']} containers, " if r["containers"] else "")
                     + (f"{r['networks']} network, " if r["networks"] else "")
                     + f"{r['processes']} processes removed" for r in removed) or "no lab to take down"
    _out(args, removed, text)
    return EXIT_OK


def verb_status(parser: argparse.ArgumentParser) -> Handler:
    return _lab_verb(parser, cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    lab = Lab.open(args.lab)
    sessions = lab.sessions()
    problems = {name: p for name in sorted(lab.plan.nodes) if (p := lab.node(name).healthy())}
    blind = {name: why for name in sorted(lab.plan.nodes) if (why := lab.node(name).blind())}
    active = [f.key() for f in Faults(lab).active()]
    management = {n: lab.runtime.management_address(lab.plan.nodes[n].namespaces[0]) for n in sorted(lab.plan.nodes)}
    data = {"lab": lab.plan.name, "profile": lab.plan.profile, "state": lab.state.status(), "faults": active,
            "nodes": {n: {"kind": lab.plan.nodes[n].kind, "problem": problems.get(n), "blind": blind.get(n),
                          "management": management[n]}
                      for n in sorted(lab.plan.nodes)},
            "sessions": sessions}
    text = f"lab {lab.plan.name} ({lab.plan.profile}): {lab.state.status()}\n{_table(sessions, SESSION_COLUMNS)}"
    for name, problem in problems.items():
        text += f"\n{name}: {problem}"
    for name, why in blind.items():
        text += f"\n{name}: not seen: {why}"
    if active:
        text += "\nfaults in force: " + ", ".join(active)
    if any(management.values()):
        text += "\nmanagement (mgmt0): " + ", ".join(f"{n} {a}" for n, a in management.items() if a)
    _out(args, data, text)
    return EXIT_NOT_READY if problems else EXIT_OK


def verb_routes(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("node")
    parser.add_argument("--peering", choices=PEERINGS, help="MSEE peering (default private)")
    parser.add_argument("--direction", choices=("table", "received", "advertised"), default="table",
                        help="MSEE: its table, what the customer sent, what it sends the customer")
    parser.add_argument("--family", choices=("ipv4", "ipv6"), default="ipv4")
    return _lab_verb(parser, cmd_routes)


def cmd_routes(args: argparse.Namespace) -> int:
    lab = Lab.open(args.lab)
    options: dict[str, Any] = {}
    handle = lab.node(args.node)  # an unknown node raises, naming the ones there are
    if lab.plan.nodes[args.node].kind == "msee":
        options = {"peering": args.peering or "private", "direction": args.direction}
    elif args.peering:
        raise LabError(f"--peering applies to MSEE nodes; {args.node} is a {lab.plan.nodes[args.node].kind}")
    rows = handle.routes(args.family, **options)
    _out(args, rows, _table(rows, ROUTE_COLUMNS))
    return EXIT_OK


def verb_effective_routes(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("vnet")
    return _lab_verb(parser, cmd_effective_routes)


def cmd_effective_routes(args: argparse.Namespace) -> int:
    lab = Lab.open(args.lab)
    rows = lab.gateway(args.vnet).call("effective-routes")
    flat = [{"prefix": ", ".join(r["addressPrefix"]), "source": r["source"], "state": r["state"],
             "type": r["nextHopType"], "next_hop": ", ".join(r["nextHopIpAddress"])} for r in rows]
    _out(args, rows, _table(flat, (("source", "SOURCE"), ("state", "STATE"), ("prefix", "ADDRESS PREFIX"),
                                   ("type", "NEXT HOP TYPE"), ("next_hop", "NEXT HOP IP"))))
    return EXIT_OK


def verb_events(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("--follow", action="store_true")
    parser.add_argument("--node")
    return _lab_verb(parser, cmd_events)


def cmd_events(args: argparse.Namespace) -> int:
    lab = Lab.open(args.lab)
    ours = [n for n in sorted(lab.plan.nodes) if kind_of(lab.plan.nodes[n].kind).events]
    if args.follow and len(ours) != 1 and not args.node:
        raise LabError(f"--follow streams one node's events; pick one with --node ({', '.join(ours)})")
    nodes = [args.node] if args.node else ours
    records: list[dict[str, Any]] = []
    for name in nodes:
        handle = lab.node(name)
        if args.follow:
            for record in handle.follow(since=0.0):
                print(json.dumps(record) if args.json else f"{record['time']:.3f} {name} {record.get('text', '')}",
                      flush=True)
            return EXIT_OK
        for record in _history(handle):
            records.append(record)
    records.sort(key=lambda r: r.get("time", 0.0))
    _out(args, records, "\n".join(f"{r['time']:.3f} {r.get('node', '')} {r.get('text', '')}" for r in records))
    return EXIT_OK


def _history(node: RunningNode) -> list[dict[str, Any]]:
    """The events a node kept, read until the stream goes quiet."""
    records = []
    try:
        for record in node.follow(since=0.0, timeout=0.3):
            records.append(record)
    except TimeoutError:
        pass
    return records


def verb_exec(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("node")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return _lab_verb(parser, cmd_exec)


def cmd_exec(args: argparse.Namespace) -> int:
    lab = Lab.open(args.lab)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise LabError("nothing to run: bgplab exec NODE -- COMMAND [ARGS]")
    argv = lab.exec_args(args.node, command)
    os.execvp(argv[0], argv)


def verb_fail(parser: argparse.ArgumentParser) -> Handler:
    _fault_arguments(parser, restore=False)
    return _lab_verb(parser, cmd_fail)


def verb_restore(parser: argparse.ArgumentParser) -> Handler:
    _fault_arguments(parser, restore=True)
    return _lab_verb(parser, cmd_restore)


def _fault_arguments(parser: argparse.ArgumentParser, restore: bool) -> None:
    """What names a fault, one set for fail and restore: a restore names the fault as its fail did."""
    parser.add_argument("kind", choices=(*FAULT_KINDS, "all") if restore else FAULT_KINDS)
    parser.add_argument("target", nargs="?" if restore else None,
                        help="link (ce1:eth1), node, MSEE, gateway (maintenance), or circuit (peering faults)")
    parser.add_argument("--peering", choices=PEERINGS)
    parser.add_argument("--mode", choices=BGP_MODES, help="bgp faults")
    parser.add_argument("--code", type=int, help="bgp notification code (default 6, Cease)")
    parser.add_argument("--subcode", type=int, help="bgp notification subcode (default 2)")
    parser.add_argument("--loss", type=float, help="impair: percent of frames dropped each way")
    parser.add_argument("--rate", type=float, help="impair: Mbps")
    parser.add_argument("--delay", type=float, help="impair: ms (needs netem)")
    parser.add_argument("--jitter", type=float, help="impair: ms (needs netem)")
    parser.add_argument("--instance", type=int, help="maintenance: the gateway instance (0 or 1; default 0)")


def _fault(args: argparse.Namespace) -> Fault:
    options = {k: v for k in ("peering", "mode", "code", "subcode", "loss", "rate", "delay", "jitter", "instance")
               if (v := getattr(args, k, None)) is not None}
    return Fault(args.kind, args.target, options)


def cmd_fail(args: argparse.Namespace) -> int:
    applied = Faults(Lab.open(args.lab)).fail(_fault(args))
    _out(args, applied.to_json(), f"{applied.fault.key()} failed at {applied.time:.3f}")
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    faults = Faults(Lab.open(args.lab))
    if args.kind == "all":
        targets = faults.active()
    else:
        if not args.target:
            raise LabError("restore what? bgplab restore KIND TARGET, or bgplab restore all")
        targets = [_fault(args)]
    done = [faults.restore(f) for f in targets]
    _out(args, [a.to_json() for a in done],
         "\n".join(f"{a.fault.key()} restored at {a.time:.3f}" for a in done) or "no fault in force")
    return EXIT_OK


def verb_set(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("setting", choices=("weight", "connection"),
                        help="weight: the connection's routing weight (0-32000); connection: on or off")
    parser.add_argument("vnet")
    parser.add_argument("circuit")
    parser.add_argument("value", help="weight: a whole number; connection: on | off")
    return _lab_verb(parser, cmd_set)


def cmd_set(args: argparse.Namespace) -> int:
    settings = Settings(Lab.open(args.lab))
    if args.setting == "weight":
        try:
            weight = int(args.value)
        except ValueError:
            raise SettingError(f"weight {args.value!r}: expected a whole number 0-32000") from None
        done = settings.weight(args.vnet, args.circuit, weight)
        text = f"{args.vnet}: connection to {args.circuit}, weight {weight}"
    else:
        if args.value not in ("on", "off"):
            raise SettingError(f"connection {args.value!r}: expected on or off")
        done = settings.connection(args.vnet, args.circuit, args.value == "on")
        text = f"{args.vnet}: connection to {args.circuit} {'made' if args.value == 'on' else 'deleted'}"
    _out(args, done, f"{text} at {done['time']:.3f}")
    return EXIT_OK


def verb_run(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--junit", help="also write a JUnit XML report here")
    parser.add_argument("--html", help="also write an HTML timeline here")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--name", help="bring the lab up under this name")
    _runtime_option(parser)
    return _lab_verb(parser, cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    lab = Lab.open(args.lab) if args.lab else None
    if lab is not None and (args.profile or args.runtime):
        raise LabError(f"--profile and --runtime choose how a lab is brought up; lab {args.lab} is up already "
                       f"(profile {lab.plan.profile}, runtime {lab.plan.runtime})")
    if args.name and not LAB_NAME.fullmatch(args.name):
        raise LabError(f"--name {args.name!r}: a lowercase letter, then up to 19 lowercase letters, digits or dashes")
    result = Runner(scenario, lab=lab, keep=args.keep, name=args.name, runtime=args.runtime, profile=args.profile,
                    progress=_progress(args)).run()
    if sys.stderr.isatty() and not args.json:
        sys.stderr.write("\n")
    for option, render in ((args.junit, result.junit), (args.html, result.html)):
        if option:
            Path(option).write_text(render())
    _out(args, result.to_json(), result.text())
    return EXIT_OK if result.passed else EXIT_NOT_READY


def _plan_of(args: argparse.Namespace) -> LabPlan:
    """The plan of a topology file, or of a running lab (`--lab`)."""
    if args.topology is not None:
        return load_topology(args.topology)
    return Lab.open(args.lab).plan


def verb_graph(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("topology", nargs="?", type=Path, help="a topology file (default: the running lab, --lab)")
    parser.add_argument("--format", choices=("svg", "mermaid"), default="svg")
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    return _lab_verb(parser, cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    plan = _plan_of(args)
    text = graph.svg(plan) if args.format == "svg" else graph.mermaid(plan)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def verb_export(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("target", choices=("containerlab",))
    parser.add_argument("topology", nargs="?", type=Path, help="a topology file (default: the running lab, --lab)")
    parser.add_argument("-o", "--output", help="directory to write into (default: NAME-clab)")
    return _lab_verb(parser, cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    plan = _plan_of(args)
    out = Path(args.output or f"{plan.name}-clab")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{plan.name}.clab.yml"]
    written[0].write_text(export.containerlab(plan))
    for relative, text in export.containerlab_files(plan).items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    _out(args, [str(p) for p in written], f"wrote {written[0]} and {len(written) - 1} files it binds; "
         f"`containerlab deploy -t {written[0]}` (see the file's header for what carries over)")
    return EXIT_OK


def verb_schema(parser: argparse.ArgumentParser) -> Handler:
    return _lab_verb(parser, cmd_schema, lab_option=False)


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(topology_schema(), indent=1))
    return EXIT_OK
