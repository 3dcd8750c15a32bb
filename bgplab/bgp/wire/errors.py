"""How the codec reports bad input: an exception for errors that end the session, records for the rest.

RFC 7606 replaced "reset on any UPDATE error" with a ladder of milder answers, so a decoder
must be able to say "this UPDATE was damaged, and this is what I did about it" without
raising. Only errors that require a NOTIFICATION raise `NotificationError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bgplab.bgp.wire.constants import describe_error


class NotificationError(Exception):
    """Input that the RFCs answer with a NOTIFICATION and the end of the session."""

    def __init__(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        self.code = code
        self.subcode = subcode
        self.data = data
        self.reason = reason
        super().__init__(f"{describe_error(code, subcode)}: {reason}" if reason else describe_error(code, subcode))


class UpdateAction(Enum):
    """RFC 7606 section 2 approaches, most severe first (session reset raises instead)."""

    AFI_SAFI_DISABLE = "afi-safi-disable"
    TREAT_AS_WITHDRAW = "treat-as-withdraw"
    ATTRIBUTE_DISCARD = "attribute-discard"


@dataclass(frozen=True, slots=True)
class UpdateError:
    """One error found in an UPDATE and the action taken; logged by the speaker (RFC 7606 section 6)."""

    action: UpdateAction
    attr_type: int | None
    reason: str

    def __str__(self) -> str:
        where = f"attribute {self.attr_type}: " if self.attr_type is not None else ""
        return f"{self.action.value}: {where}{self.reason}"
