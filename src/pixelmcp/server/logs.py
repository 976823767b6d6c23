"""Logs: on stderr only (on stdio, stdout belongs to the protocol), one record per line.

On a terminal they are drawn by Rich (colours, wrapped to the window); anywhere else (a file, a
pipe, a service manager's journal) each record is one plain line, with line breaks inside a
message written as `\\n`, so a log can be searched and parsed line by line. uvicorn's access and
error lines take the same way.

No secret is ever written: every record, at every level and from every library (the SDK's, uvicorn's,
httpx's), passes `Redacted`, which replaces the HTTP bearer token and every provider key the server
holds, and any `Bearer ...` credential, with `[redacted]` before it is formatted.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

#: Any bearer credential, whoever's it is (a client's token echoed in a header dump, a provider's).
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
REDACTED = "[redacted]"


class Redacted(logging.Filter):
    """Replaces the given secrets, and any bearer credential, in a record's message, arguments and traceback."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these too (the longest first, so a secret that contains another goes whole)."""
        known = set(self.secrets) | {s for s in secrets if s and len(s) >= 8}
        self.secrets = sorted(known, key=len, reverse=True)

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return _BEARER.sub(rf"\1 {REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.clean(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            cleaned = self.clean(record.exc_text)
            if cleaned != record.exc_text:
                # Rich draws a traceback from exc_info itself, secrets and all: it gets the cleaned text instead.
                record.exc_text, record.exc_info = cleaned, None
        if record.stack_info:
            record.stack_info = self.clean(record.stack_info)
        return True


class OneLine(logging.Formatter):
    """`2026-11-26 08:15:23 INFO pixelmcp.engine.pool: message`, on one line whatever the message holds."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", "\\n")


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    """Send every log record to stderr at `level`, with `secrets` redacted, unless the host program set up
    logging itself (then its handlers get the redaction)."""
    root = logging.getLogger()
    secrets = list(secrets)
    if root.handlers:  # (a program embedding the server, or a test runner, owns its logging)
        for handler in root.handlers:
            known = [f for f in handler.filters if isinstance(f, Redacted)]
            if known:
                known[0].add(secrets)
            else:
                handler.addFilter(Redacted(secrets))
        return
    redacted = Redacted(secrets)
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=Console(stderr=True), rich_tracebacks=True)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLine())
    handler.addFilter(redacted)
    root.addHandler(handler)
    root.setLevel(level)
