"""Progress for people: a rich bar on a terminal, nothing when stderr is piped."""

from __future__ import annotations

import sys
from typing import Self


class ProgressView:
    """Turns MCP progress notifications into a progress bar on stderr (terminals only)."""

    def __init__(self, title: str, force: bool | None = None):
        self.title = title
        self.enabled = sys.stderr.isatty() if force is None else force
        self._progress = None
        self._task = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[note]}"),
                                      TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.title, total=None, note="starting")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    async def update(self, progress: float, total: float | None, message: str | None) -> None:
        if self._progress is None:
            return
        self._progress.update(self._task, completed=progress if total else None, total=total,
                              note=message or "")
