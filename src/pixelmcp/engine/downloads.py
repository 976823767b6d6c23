"""Model downloads ahead of the device: the first use of a hub model whose files are not on disk fetches
them before its job queues for the device, so a download of gigabytes never holds the device while
other requests wait.

A download fetches exactly what `pixelmcp pull` would (engine/hub.py), resumably, into the hub
cache, and reports the bytes received as they arrive ("downloading sdxl: 1.2 of 6.9 GB (17%)").
Requests for the same model share one download, which runs in the server's background task group:
a request that gives up does not stop it, so the next one finds the model further along. A model
found complete on disk is checked once per process.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from pixelmcp.backends import Progress
from pixelmcp.catalog import TINY_PREFIX, ModelSpec
from pixelmcp.engine import hub
from pixelmcp.engine.loading import loading
from pixelmcp.errors import ModelLoadError

logger = logging.getLogger(__name__)

#: Seconds between progress reports while a download runs.
REPORT_SECONDS = 1.0


@dataclass(eq=False)
class Download:
    """One model's download in progress."""

    spec: ModelSpec
    total: int  # bytes of the files still missing when it began
    folder: Path  # the repo's folder in the hub cache
    start_bytes: int
    started: float = field(default_factory=time.monotonic)
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None

    @property
    def received(self) -> int:
        return max(0, min(_bytes_under(self.folder) - self.start_bytes, self.total))

    def message(self) -> str:
        share = f" ({100 * self.received // self.total}%)" if self.total else ""
        return f"downloading {self.spec.alias}: {_size(self.received)} of {_size(self.total)}{share}"


class Downloads:
    """The downloads of one server: which models are known to be on disk, which are arriving."""

    def __init__(self) -> None:
        self._ready: set[str] = set()
        self._running: dict[str, Download] = {}

    def in_progress(self) -> list[dict[str, Any]]:
        """For list_models: each running download's model, source and bytes."""
        return [dict(alias=d.spec.alias, source=d.spec.source, received_bytes=d.received, total_bytes=d.total,
                     seconds=round(time.monotonic() - d.started, 1)) for d in self._running.values()]

    async def ensure(self, specs: list[ModelSpec | None], dtype_of: Callable[[ModelSpec], Any],
                     progress: Progress | None, tasks: Any) -> None:
        """Every hub model of `specs` on disk: checked, or downloaded while `progress` hears the bytes arrive.

        `dtype_of(spec)` is the dtype it will run in (it picks the weights variant; called in a
        worker). `tasks` is the background task group downloads run in (None: this call)."""
        for spec in specs:
            if spec is not None and not _local(spec.source) and spec.source not in self._ready:
                await self._ensure(spec, dtype_of, progress, tasks)

    async def _ensure(self, spec: ModelSpec, dtype_of: Callable[[ModelSpec], Any], progress: Progress | None,
                      tasks: Any) -> None:
        download = self._running.get(spec.source)
        if download is None:
            missing = await anyio.to_thread.run_sync(_missing_bytes, spec, dtype_of)
            if missing is None:
                self._ready.add(spec.source)
                return
            download = self._running.get(spec.source)  # another request may have started it meanwhile
            if download is None:
                folder = _cache_folder(spec.source)
                download = Download(spec, missing, folder, _bytes_under(folder))
                self._running[spec.source] = download
                if tasks is not None:
                    tasks.start_soon(self._run, download, dtype_of)
                else:
                    await self._run(download, dtype_of)
        while not download.done.is_set():
            if progress is not None:
                await progress(0, None, download.message())
            with anyio.move_on_after(REPORT_SECONDS):
                await download.done.wait()
        if download.error is not None:
            raise download.error

    async def _run(self, download: Download, dtype_of: Callable[[ModelSpec], Any]) -> None:
        logger.info("downloading %s (%s) in the background", download.spec.alias, download.spec.source)
        try:
            await anyio.to_thread.run_sync(_fetch, download.spec, dtype_of)
        except Exception as e:  # noqa: BLE001 (every waiting request gets it, raised in its own call)
            download.error = e
            logger.error("download of %s failed: %s", download.spec.alias, e)
        else:
            self._ready.add(download.spec.source)
            logger.info("downloaded %s in %.0f s", download.spec.alias, time.monotonic() - download.started)
        finally:
            self._running.pop(download.spec.source, None)
            download.done.set()


def _local(source: str) -> bool:
    return source.startswith(TINY_PREFIX) or Path(source).expanduser().is_dir()


def _missing_bytes(spec: ModelSpec, dtype_of: Callable[[ModelSpec], Any]) -> int | None:
    """In a worker: bytes of the files its loader reads that are not in the hub cache yet (None: all there)."""
    with loading(spec, spec.source, dtype_of(spec), paths=spec.weight_paths, download=False) as planned:
        snapshot = hub.cached_snapshot(spec.source)
        missing = [name for name in planned.plan.files if snapshot is None or not (snapshot / name).is_file()]
        return sum(planned.sizes.get(name) or 0 for name in missing) if missing else None


def _fetch(spec: ModelSpec, dtype_of: Callable[[ModelSpec], Any]) -> None:
    try:
        with loading(spec, spec.source, dtype_of(spec), paths=spec.weight_paths):
            pass
    except ModelLoadError as e:
        if isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.ENOSPC:
            raise ModelLoadError(f"The disk is full while downloading {spec.alias!r} ({spec.source}): free space where "
                                 "the hub cache lives (HF_HOME, by default ~/.cache/huggingface), or move it to a "
                                 "larger disk with HF_HOME, then try again; the download resumes.") from e
        raise


def _cache_folder(repo_id: str) -> Path:
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"


def _bytes_under(folder: Path) -> int:
    """Bytes of the blobs in a repo's cache folder, partial downloads included."""
    blobs = folder / "blobs"
    total = 0
    if blobs.is_dir():
        for path in blobs.iterdir():
            try:
                total += path.stat().st_size
            except OSError:
                pass  # renamed from .incomplete meanwhile: counted at the next report
    return total


def _size(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.0f} MB"
