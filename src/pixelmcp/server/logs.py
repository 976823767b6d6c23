"""Logs: on stderr only (on stdio, stdout belongs to the protocol), one record per line.

On a terminal they are drawn by Rich (colours, wrapped to the window); anywhere else (a file, a
pipe, a service manager's journal) each record is one plain line, with line breaks inside a
message written as `\\n`, so a log can be searched and parsed line by line. uvicorn's access and
error lines take the same way.
"""

from __future__ import annotations

import logging
import sys


class OneLine(logging.Formatter):
    """`2026-11-26 08:15:23 INFO pixelmcp.engine.pool: message`, on one line whatever the message holds."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", "\\n")


def configure_logging(level: str) -> None:
    """Send every log record to stderr at `level`, unless the host program set up logging itself."""
    root = logging.getLogger()
    if root.handlers:
        return  # (a program embedding the server, or a test runner, owns its logging)
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), rich_tracebacks=True)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLine())
    root.addHandler(handler)
    root.setLevel(level)
