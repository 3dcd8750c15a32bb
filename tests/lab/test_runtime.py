"""The runtime's journal undo, on what is already gone (no root needed): `down` after a crash
meets resources that were journaled but never created, and must pass over them."""

from __future__ import annotations

import secrets

from bgplab.lab.runtime import RESOURCES
from bgplab.lab.runtime.netns import namespace_exists


def test_undoing_a_namespace_that_was_never_created_removes_nothing() -> None:
    name = f"bl-never-{secrets.token_hex(4)}"
    assert not namespace_exists(name)
    assert RESOURCES["namespace"]({"type": "namespace", "name": name, "key": "x"}) == (False, 0)

