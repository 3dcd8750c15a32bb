"""Cutting a TCP byte stream into BGP messages.

The speaker feeds whatever the socket delivered and gets back every complete message at once,
so a 256 KiB read full of small UPDATEs costs one call, not one await per message: the
per-message await is what makes naive Python speakers slow (perf-robustness.md A.3).
"""

from __future__ import annotations

from bgplab.bgp.wire.constants import (
    HEADER_LEN,
    MARKER,
    MAX_MESSAGE_LEN,
    MIN_LENGTH,
    ErrorCode,
    HeaderSubcode,
    MessageType,
)
from bgplab.bgp.wire.errors import NotificationError

_HEADER = ErrorCode.MESSAGE_HEADER
_MIN_LENGTH: dict[int, int] = {int(t): n for t, n in MIN_LENGTH.items()}
"""MIN_LENGTH by plain int: also the set of known message types."""
_KEEPALIVE = int(MessageType.KEEPALIVE)


def frame(msg_type: int, body: bytes) -> bytes:
    """Prefix a message body with the marker, length and type."""
    return MARKER + (HEADER_LEN + len(body)).to_bytes(2, "big") + bytes((msg_type,)) + body


class Framer:
    """Accumulates stream bytes and yields complete (type, body) messages.

    After a header error the framer is poisoned: the session must end, so it returns the
    messages that preceded the error and the error, and then refuses further input.
    """

    __slots__ = ("_buf", "_error", "max_length")

    def __init__(self, max_length: int = MAX_MESSAGE_LEN) -> None:
        self._buf = bytearray()
        self.max_length = max_length
        self._error: NotificationError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> tuple[list[tuple[int, bytes]], NotificationError | None]:
        if self._error is not None:
            return [], self._error
        buf = self._buf
        if buf or type(data) is not bytes:
            # Join the kept partial message with the new bytes once, so every body below is a
            # single slice of immutable bytes rather than a bytearray slice copied again.
            buf += data
            data = bytes(buf)
            buf.clear()
        out: list[tuple[int, bytes]] = []
        append = out.append
        off = 0
        end = len(data)
        max_length = self.max_length
        min_length = _MIN_LENGTH
        while end - off >= HEADER_LEN:
            if not data.startswith(MARKER, off):
                self._error = NotificationError(
                    _HEADER, HeaderSubcode.CONNECTION_NOT_SYNCHRONIZED, reason="marker is not all ones"
                )
                break
            length = (data[off + 16] << 8) | data[off + 17]
            msg_type = data[off + 18]
            if length < HEADER_LEN or length > max_length:
                self._error = _bad_length(length, f"length {length} outside 19..{max_length}")
                break
            minimum = min_length.get(msg_type)
            if minimum is None:
                self._error = NotificationError(
                    _HEADER, HeaderSubcode.BAD_MESSAGE_TYPE, bytes((msg_type,)), f"unknown message type {msg_type}"
                )
                break
            if length < minimum or (msg_type == _KEEPALIVE and length != HEADER_LEN):
                self._error = _bad_length(length, f"length {length} wrong for {MessageType(msg_type).name}")
                break
            if end - off < length:
                break
            append((msg_type, data[off + HEADER_LEN : off + length]))
            off += length
        if self._error is None and off < end:
            buf += data[off:] if off else data
        return out, self._error


def _bad_length(length: int, reason: str) -> NotificationError:
    return NotificationError(_HEADER, HeaderSubcode.BAD_MESSAGE_LENGTH, length.to_bytes(2, "big"), reason)
