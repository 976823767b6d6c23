"""The stdio transport, with one repair at pixelmcp's edge: every request gets an answer.

The mcp SDK's stdio reader drops a line that is JSON with an `id` but not a valid JSON-RPC
request (wrong `jsonrpc`, a method that is not a string, params that are not an object): the
server never answers and the client waits forever. Over HTTP the same message gets a JSON-RPC
error. Here such a line is answered with an Invalid Request error carrying its id, written
through the SDK's own stdout writer so replies never interleave.

The SDK's `stdio_server` still owns stdout (fd 1 points at stderr while serving, so stray prints
from libraries cannot corrupt the wire). It skips its stdin claim when given a stream, so stdin
is claimed here the same way: the wire is read from a private duplicate and fd 0 points at the
null device, so nothing else in the process can read requests.

SIGTERM and SIGINT stop the server cleanly (server/shutdown.py). Lines are read in a worker thread
that a stop abandons (a read blocked on an open stdin cannot be interrupted), so the process ends
with `os._exit` once the lifespan has released everything.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from io import TextIOWrapper
from typing import Any, BinaryIO

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from pixelmcp.server import shutdown

logger = logging.getLogger(__name__)


def run_stdio(server: MCPServer) -> None:
    """Serve `server` over this process's stdin and stdout until stdin closes, or a signal stops it."""
    anyio.run(serve_stdio, server)
    if shutdown.stopping():
        _exit(0)  # (the abandoned stdin reader would keep the interpreter from exiting)


async def serve_stdio(server: MCPServer) -> None:
    buffer, restore = _claim_stdin()
    text = _UnownedTextWrapper(buffer, encoding="utf-8", errors="replace")
    try:
        lines = CheckedLines(_lines_of(text))
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, group.cancel_scope)
            async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
                lines.replies = write_stream
                # MCPServer.run_stdio_async does exactly this with the SDK's own reader.
                lowlevel = server._lowlevel_server
                await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
            group.cancel_scope.cancel()  # stdin closed: no signal to wait for
    finally:
        if not shutdown.stopping():  # (stopped: the abandoned reader holds the stream's lock; the process exits)
            text.close()
            if restore is not None:
                restore()


async def _stop_on_signal(serving: anyio.CancelScope) -> None:
    """On SIGTERM or SIGINT: stop reading requests and cancel what runs (see server/shutdown.py)."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for number in signals:
            shutdown.reason = signal.Signals(number).name
            logger.warning("%s: stopping; calls in progress are cancelled at their next step", shutdown.reason)
            timer = threading.Timer(shutdown.STOP_DEADLINE_S, _late)
            timer.daemon = True
            timer.start()
            serving.cancel()
            return


def _late() -> None:
    logger.error("work did not stop within %g s of %s; exiting now", shutdown.STOP_DEADLINE_S, shutdown.reason)
    _exit(0)


def _exit(code: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


async def _lines_of(text: TextIOWrapper) -> AsyncIterator[str]:
    """The lines of the wire, each read in a worker thread that a stop may abandon."""
    while True:
        line = await anyio.to_thread.run_sync(text.readline, abandon_on_cancel=True)
        if not line:
            return
        yield line


class CheckedLines:
    """The lines of stdin, minus invalid requests, which are answered instead of passed on."""

    def __init__(self, lines: Any):
        self._lines = lines
        self.replies: Any = None  # the transport's write stream, set as soon as it exists

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        async for line in self._lines:
            reply = invalid_request_reply(line)
            if reply is None:
                yield line
            else:
                logger.warning("answered an invalid JSON-RPC request (id %r): %s", reply.id, reply.error.message)
                await self.replies.send(SessionMessage(reply))


def invalid_request_reply(line: str) -> types.JSONRPCError | None:
    """The error answering `line` when it is a request with an id that is not valid JSON-RPC, else None.

    Valid messages, notifications, responses and lines that are not JSON at all are left to the SDK
    (a line without a usable id cannot be answered in a way a client can match).
    """
    if not line.strip():
        return None
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        return None
    except ValidationError as e:
        problems = _request_problems(e)
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or "result" in raw or "error" in raw:
        return None  # not a request; a response is never answered
    request_id = raw.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return None
    message = f"Invalid request: {problems}" if problems else "Invalid request"
    return types.JSONRPCError(jsonrpc="2.0", id=request_id,
                              error=types.ErrorData(code=types.INVALID_REQUEST, message=message))


def _request_problems(error: ValidationError) -> str:
    """What is wrong with the message read as a request, e.g. "jsonrpc: Input should be '2.0'"."""
    found = []
    for problem in error.errors():
        location = problem["loc"]
        if location and location[0] == "JSONRPCRequest":
            found.append(f"{'.'.join(str(part) for part in location[1:]) or 'message'}: {problem['msg']}")
    return "; ".join(found)


class _UnownedTextWrapper(TextIOWrapper):
    """Text layer whose close leaves the underlying binary stream open (it may be sys.stdin's)."""

    def close(self) -> None:
        try:
            self.detach()
        except ValueError:
            pass


def _claim_stdin() -> tuple[BinaryIO, Callable[[], None] | None]:
    """The wire as a private binary stream, with fd 0 pointed at the null device; and how to undo that.

    Where descriptors cannot be moved (no real fd 0, Windows), stdin's own buffer is read in place.
    """
    try:
        if sys.stdin.buffer.fileno() != 0:
            raise OSError("stdin is not fd 0")
        import fcntl

        wire = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    except (AttributeError, ImportError, OSError, ValueError):
        return sys.stdin.buffer, None
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)

    def restore() -> None:
        # `wire` stays open: a reader thread may still be blocked on it (as in the SDK's own claim).
        os.dup2(wire, 0)

    return os.fdopen(wire, "rb", closefd=False), restore
