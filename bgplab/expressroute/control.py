"""The control socket of our own nodes (MSEE, gateway): JSON lines over a Unix stream socket.

One request per line, `{"command": "status", "args": {...}}`; one reply per line,
`{"ok": true, "result": ...}` or `{"ok": false, "error": "what went wrong and what would work"}`.
The `events` command turns the connection into a stream: a `{"ok": true, "stream": "events"}`
line, then one event record per line until the client hangs up. A Unix socket in the lab's state
directory, not TCP: nothing outside the machine can reach it, and file permissions guard it.

The CLI, the pytest plugin and the tests all use `call` / `follow` (blocking) or `request`
(async); they never need to know which node kind answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

log = logging.getLogger("bgplab.control")

Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]
_LINE_LIMIT = 1 << 20
"""Longest request line a node reads; replies (a route table can be megabytes) are read whole."""
_HISTORY = 10000


def flag(args: Mapping[str, Any], name: str, *, default: bool | None = None) -> bool:
    """A request's true/false argument; anything else is refused (the reply names the argument)."""
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected true or false")
    return value


def integer(args: Mapping[str, Any], name: str) -> int:
    """A request's whole-number argument (a JSON true is not one)."""
    value = args.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: expected a whole number, not {value!r}")
    return value


class ControlError(RuntimeError):
    """A request the node refused, or a node that cannot be reached; the message says which."""


class EventHub:
    """Fan-out of a node's event records to every `events` client, each with its own queue.

    The last `_HISTORY` records are kept, so a client that connects after something happened (a
    test that asks "did the session flap?") can still ask for it with `since`.
    """

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[dict[str, Any]]] = []
        self.history: list[dict[str, Any]] = []

    def publish(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if len(self.history) > _HISTORY:
            del self.history[: len(self.history) - _HISTORY]
        for queue in self._queues:
            queue.put_nowait(record)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues.append(queue)
        try:
            yield queue
        finally:
            self._queues.remove(queue)


class ControlServer:
    def __init__(self, path: str, handlers: Mapping[str, Handler], hub: EventHub) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self.hub = hub
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a crashed predecessor's socket file
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=_LINE_LIMIT)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while line := await reader.readline():
                reply, stream_since = await self._answer(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                if stream_since is not None:
                    await self._stream(writer, stream_since)
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away, or sent a line over the limit: nothing to answer
        except asyncio.CancelledError:
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    async def _answer(self, line: bytes) -> tuple[dict[str, Any], float | None]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise ControlError('a request is a JSON object: {"command": NAME, "args": {...}}')
            command, args = request["command"], request.get("args") or {}
            if not isinstance(args, dict):
                raise ControlError(f"{command}: args must be a JSON object")
            if command == "events":
                since = args.get("since")
                return {"ok": True, "stream": "events"}, float(since) if since is not None else float("inf")
            handler = self.handlers.get(command)
            if handler is None:
                known = ", ".join(sorted([*self.handlers, "events"]))
                raise ControlError(f"unknown command {command!r}; this node knows: {known}")
            return {"ok": True, "result": await handler(args)}, None
        except json.JSONDecodeError as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}, None
        except (ControlError, ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": str(exc).strip("'\"")}, None
        except Exception as exc:  # a handler bug must not take the node down with it
            log.exception("control command failed")
            return {"ok": False, "error": f"internal error: {exc!r}"}, None

    async def _stream(self, writer: asyncio.StreamWriter, since: float) -> None:
        with self.hub.subscription() as queue:
            for record in self.hub.history:
                if record.get("time", 0.0) >= since:
                    writer.write(json.dumps(record).encode() + b"\n")
            await writer.drain()
            while True:
                record = await queue.get()
                writer.write(json.dumps(record).encode() + b"\n")
                await writer.drain()


def _reply(line: bytes, path: str) -> Any:
    if not line:
        raise ControlError(f"{path}: the node closed the connection without answering")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "refused"))
    return reply.get("result", reply.get("stream"))


async def request(path: str, command: str, **args: Any) -> Any:
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=1 << 30)
    except OSError as exc:
        raise ControlError(f"{path}: cannot reach the node's control socket: {exc.strerror or exc}") from None
    try:
        writer.write(json.dumps({"command": command, "args": args}).encode() + b"\n")
        await writer.drain()
        return _reply(await reader.readline(), path)
    finally:
        writer.close()


def _connect(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise ControlError(f"{path}: cannot reach the node's control socket: {exc.strerror or exc}") from None
    return sock


def call(path: str, command: str, *, timeout: float = 30.0, **args: Any) -> Any:
    """Blocking `request`, for the CLI and for tests that run outside an event loop."""
    with _connect(path, timeout) as sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps({"command": command, "args": args}).encode() + b"\n")
        stream.flush()
        return _reply(stream.readline(), path)


def follow(path: str, *, since: float | None = None, timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """Event records as they happen (and those kept since `since`, a monotonic time)."""
    with _connect(path, timeout) as sock, sock.makefile("rwb") as stream:
        args = {} if since is None else {"since": since}
        stream.write(json.dumps({"command": "events", "args": args}).encode() + b"\n")
        stream.flush()
        _reply(stream.readline(), path)
        while line := stream.readline():
            yield json.loads(line)

