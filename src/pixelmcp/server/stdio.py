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
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from io import TextIOWrapper
from typing import Any, BinaryIO

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

logger = logging.getLogger(__name__)


def run_stdio(server: MCPServer) -> None:
    """Serve `server` over this process's stdin and stdout until stdin closes."""
    anyio.run(serve_stdio, server)


async def serve_stdio(server: MCPServer) -> None:
    buffer, restore = _claim_stdin()
    text = _UnownedTextWrapper(buffer, encoding="utf-8", errors="replace")
    try:
        lines = CheckedLines(anyio.wrap_file(text))
        async with stdio_server(stdin=lines) as (read_stream, write_stream):  # type: ignore[arg-type]
            lines.replies = write_stream
            # MCPServer.run_stdio_async does exactly this with the SDK's own reader.
            lowlevel = server._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
    finally:
        text.close()
        if restore is not None:
            restore()


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
