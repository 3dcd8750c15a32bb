"""The `bgplab` parser: every verb has its help, unknown verbs are refused, and the docs list the verbs it has."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bgplab.cli import VERBS, Verb, main

REPO = Path(__file__).resolve().parents[1]


class Recording(argparse.ArgumentParser):
    """A parser that remembers the option strings its verb declares, to hold the help against."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.options: list[str] = []  # before the base class, which adds -h/--help
        super().__init__(*args, **kwargs)

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:  # type: ignore[override]
        self.options += [n for n in names if n.startswith("-")]
        return super().add_argument(*names, **kwargs)


def declared_options(verb: Verb) -> list[str]:
    parser = Recording(prog=f"bgplab {verb.name}")
    verb.setup(parser)
    return parser.options


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_every_verb_has_help_naming_its_options(verb: Verb, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([verb.name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: bgplab {verb.name} ") and verb.help in " ".join(out.split())
    assert all(option in out for option in declared_options(verb)), out


def test_the_top_level_help_lists_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^ +{re.escape(v.name)}\b", out, re.MULTILINE) for v in VERBS), out


def test_an_unknown_verb_exits_2_naming_it_and_listing_the_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bgplab: unknown command 'frobnicate'\n")
    assert all(v.name in err for v in VERBS)


def test_no_verb_exits_2_with_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "Run 'bgplab COMMAND --help'" in capsys.readouterr().out


def test_a_bad_option_exits_2_with_the_verbs_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["routes", "ce1", "--direction", "sideways"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bgplab routes ") and "bgplab routes: error: argument --direction" in err


def test_a_lab_error_names_the_verb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    # exec's own `command` argument once stood in for the verb's name here ("bgplab ['true']: ...").
    monkeypatch.setenv("BGPLAB_STATE_DIR", str(tmp_path))
    assert main(["exec", "--lab", "nosuch", "ce1", "--", "true"]) == 3
    assert capsys.readouterr().err == "bgplab exec: no lab 'nosuch' is up (labs up: none)\n"


def test_a_verb_loads_only_its_own_module() -> None:
    # A lab starts `bgplab node` once per node: the lab harness has no business in that process.
    probe = ("import sys\nfrom bgplab.cli import main\ntry:\n    main(['node', '--help'])\nexcept SystemExit:\n"
             "    pass\nprint(sorted(m for m in sys.modules if m.startswith(('bgplab.lab', 'bgplab.speak'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines()[-1] == "[]"


def documented_commands() -> dict[str, str]:
    """docs/lab.md's command table: each verb it names, with the text of its row's first column."""
    text = (REPO / "docs" / "lab.md").read_text()
    table = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| `bgplab ")]
    return {verb: row for row in rows for verb in re.findall(r"`bgplab ([a-z-]+)", row)}


def test_the_docs_list_exactly_the_verbs_the_parser_has() -> None:
    assert sorted(documented_commands()) == sorted(v.name for v in VERBS)


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_the_options_the_docs_show_are_the_verbs_own(verb: Verb) -> None:
    row = documented_commands()[verb.name]
    shown = re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", row.split(f"`bgplab {verb.name}", 1)[1].split("`")[0])
    assert set(shown) <= set(declared_options(verb)), row
