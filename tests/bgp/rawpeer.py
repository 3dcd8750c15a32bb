"""A scripted BGP peer over a plain socket, for sending exactly the bytes a test wants.

It speaks just enough BGP to get a session Established, then lets the test write raw bytes
(malformed on purpose) and read back what the speaker under test answered.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque

from bgplab.bgp.wire import Framer, Notification, decode_notification, decode_open, encode_open
from bgplab.bgp.wire.capabilities import Capability, EnhancedRouteRefresh, FourOctetAs, Multiprotocol, RouteRefresh
from bgplab.bgp.wire.constants import MessageType
from bgplab.bgp.wire.messages import KEEPALIVE, Open


class RawPeer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.framer = Framer(65535)
        self.peer_open: Open | None = None
        self.backlog: deque[tuple[int, bytes]] = deque()

    @classmethod
    async def connect(cls, host: str, port: int, source: str) -> RawPeer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    async def establish(
        self, asn: int, router_id: str, hold: int = 30, four_octet: bool = True, enhanced_refresh: bool = False
    ) -> Open:
        caps: list[Capability] = [Multiprotocol(1, 1), Multiprotocol(2, 1), RouteRefresh()]
        if enhanced_refresh:
            caps.append(EnhancedRouteRefresh())
        if four_octet:
            caps.append(FourOctetAs(asn))
        self.send(encode_open(Open(asn, hold, router_id, tuple(caps))))
        msg_type, body = await self.read_message()
        assert msg_type == MessageType.OPEN, (msg_type, body)
        self.peer_open = decode_open(body)
        self.send(KEEPALIVE)
        msg_type, _ = await self.read_message()
        assert msg_type == MessageType.KEEPALIVE
        return self.peer_open

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def start_keepalives(self, interval: float) -> None:
        """Keep the session alive in the background, as a well-behaved router would."""

        async def beat() -> None:
            while not self.writer.is_closing():
                self.send(KEEPALIVE)
                await asyncio.sleep(interval)

        self._beat = asyncio.get_running_loop().create_task(beat())

    async def read_message(self, timeout: float = 5.0) -> tuple[int, bytes]:
        while not self.backlog:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                raise ConnectionError("closed by the speaker")
            messages, error = self.framer.feed(data)
            assert error is None, error
            self.backlog.extend(messages)
        return self.backlog.popleft()

    async def read_until(self, wanted: int, timeout: float = 5.0) -> bytes:
        """Skip KEEPALIVEs and UPDATEs until a message of type `wanted` arrives."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg_type, body = await self.read_message(max(0.01, deadline - loop.time()))
            if msg_type == wanted:
                return body

    async def notification(self, timeout: float = 5.0) -> Notification:
        return decode_notification(await self.read_until(MessageType.NOTIFICATION, timeout))

    async def closed(self, timeout: float = 5.0) -> bool:
        """True when the speaker closed the connection within `timeout`."""
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not data:
                    return True
        except (TimeoutError, ConnectionError):
            return False

    def close(self) -> None:
        beat = getattr(self, "_beat", None)
        if beat is not None:
            beat.cancel()
        self.writer.close()
