"""Errors a client can act on.

Every failure a user or a model can cause is one of these. They subclass the MCP SDK's
`ToolError`, so their message reaches the model as `isError` content; any other exception
reaches it only as "Error executing tool NAME".
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.exceptions import ToolError


def first_line(error: BaseException) -> str:
    """The first line of an exception's message ("" when it has none): what a tool error quotes of it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


class PixelError(ToolError):
    """Base class of pixelmcp's anticipated failures."""


class InvalidArgument(PixelError):
    """An argument is out of range, malformed or unsupported by the chosen model."""

    def __init__(self, argument: str, value: Any, problem: str, fix: str):
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:100] + f"... ({len(shown)} characters)"
        super().__init__(f"Invalid {argument}={shown}: {problem}. {fix}")
        self.argument = argument


class ModelLoadError(PixelError):
    """A model could not be loaded (not downloaded, gated, corrupt, out of memory)."""


class StoreError(PixelError):
    """The output folder cannot take the images (missing, read-only, full); the message names it."""


class Busy(PixelError):
    """The device's queue is full; the request was refused without waiting."""


class CallTimeout(PixelError):
    """The request ran past PIXELMCP_CALL_TIMEOUT_S; its work was stopped."""


class OutOfMemory(PixelError):
    """The device ran out of memory even after freeing every model not in use."""


class EngineFailure(PixelError):
    """A library failed inside a tool's work (a dtype mismatch, any RuntimeError): not the caller's arguments.
    The message names the models and the step; the traceback is in the server log."""


class GenerationCancelled(Exception):
    """Raised inside a worker when the request's cancel event is set (not a tool error:
    the client that cancelled is no longer waiting for an answer)."""
