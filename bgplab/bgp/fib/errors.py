"""What the FIB raises when it cannot be used as asked (refused routes are reported, not raised)."""

from __future__ import annotations


class FibError(RuntimeError):
    """The FIB cannot be used as asked: closed, a VRF that cannot be resolved, and the like."""


class VrfUnsupported(FibError):
    """The kernel has no VRF devices; the message carries the probe's answer."""
