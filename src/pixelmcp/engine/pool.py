"""ModelPool: lazy loading, device and dtype choice, one job per device in a worker thread.

The pool is the only owner of loaded models. A tool asks it to `run` a job; the job runs in
a worker thread (the event loop never blocks) while the request holds its device's lock, so
one GPU job runs per device at a time. Models are loaded on first use inside the job and
kept for reuse.

Cancellation: when the request's task is cancelled (client timeout or
`notifications/cancelled`), the job's cancel event is set; the job checks it between steps
and stops. The device stays locked until the worker thread has really returned, so a
cancelled job never overlaps the next one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio

from pixelmcp.config import TINY_PREFIX, ModelSpec, Settings
from pixelmcp.errors import GenerationCancelled, ModelLoadError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between heartbeat progress messages while a request waits for its device or runs.
HEARTBEAT_SECONDS = 10.0
Heartbeat = Callable[[str], Awaitable[None]]


@dataclass
class LoadedModel:
    """A model in memory, with what it cost to load."""

    spec: ModelSpec
    value: Any
    device: str
    dtype: str
    load_seconds: float
    uses: int = 0


@dataclass
class PoolStats:
    loads: int = 0
    hits: int = 0
    jobs: int = 0
    cancelled: int = 0


@dataclass
class Job:
    """What a worker sees of its request: the cancel event and the load time it spent."""

    cancel: threading.Event = field(default_factory=threading.Event)
    load_seconds: float = 0.0
    status: str = "starting"

    def check(self) -> None:
        """Raise GenerationCancelled if the request was cancelled."""
        if self.cancel.is_set():
            raise GenerationCancelled()


class ModelPool:
    """Loads models lazily, keeps them, and runs one job per device at a time."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stats = PoolStats()
        self._models: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()
        self._device_locks: dict[str, anyio.Lock] = {}
        self._device: str | None = None

    # ------------------------------------------------------------------ devices

    @property
    def device(self) -> str:
        """The device jobs run on (imports torch on first use)."""
        if self._device is None:
            self._device = pick_device(self.settings.device)
            logger.info("pixelmcp device: %s", self._device)
        return self._device

    def dtype_for(self, spec: ModelSpec):
        """fp32 on CPU; on GPU, bf16 for the transformer families and fp16 for UNets."""
        import torch

        if self.settings.dtype != "auto":
            return getattr(torch, self.settings.dtype)
        device = self.device
        if device == "cpu":
            return torch.float32
        if device == "mps":
            return torch.float16
        if spec.kind in ("sd3", "flux", "chat-llm", "depth") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    def accelerator_memory_gb(self) -> float:
        """Total memory of the accelerator in GiB (0 on CPU)."""
        import torch

        device = self.device
        if device.startswith("cuda"):
            return torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
        if device == "mps":
            import psutil

            return psutil.virtual_memory().total / 2**30 / 2  # unified memory, shared with the OS
        return 0.0

    # ------------------------------------------------------------------ models

    def source_of(self, spec: ModelSpec) -> str:
        """Where from_pretrained loads `spec` from: a built tiny folder, a local folder, or a hub id."""
        return resolve_source(spec.source, spec.alias, self.settings)

    def get(self, spec: ModelSpec, loader: Callable[[str, str, Any], Any], job: Job) -> Any:
        """The loaded model for `spec`, loading it with `loader(source, device, dtype)` if needed.

        Runs in a worker thread. Adds the time spent loading to `job.load_seconds`.
        """
        with self._load_lock:
            loaded = self._models.get(spec.alias)
            if loaded is None:
                job.check()
                job.status = f"loading {spec.alias}"
                started = time.perf_counter()
                device, dtype = self.device, self.dtype_for(spec)
                source = self.source_of(spec)
                logger.info("loading %s from %s on %s (%s)", spec.alias, source, device, dtype)
                value = loader(source, device, dtype)
                loaded = LoadedModel(spec, value, device, str(dtype).removeprefix("torch."),
                                     time.perf_counter() - started)
                self._models[spec.alias] = loaded
                self.stats.loads += 1
                job.load_seconds += loaded.load_seconds
                logger.info("loaded %s in %.1fs", spec.alias, loaded.load_seconds)
            else:
                self.stats.hits += 1
            loaded.uses += 1
            return loaded.value

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())

    # ------------------------------------------------------------------ jobs

    async def run(self, work: Callable[[Job], T], heartbeat: Heartbeat | None = None) -> tuple[T, float]:
        """Run `work(job)` in a worker thread, one job per device; returns (result, queue seconds).

        Waiting for the device can be cancelled (the request simply leaves the queue). A
        running job is asked to stop through `job.cancel`; GenerationCancelled from the
        worker is swallowed here and the request's own cancellation propagates. While the
        request waits or runs, `heartbeat(job.status)` is awaited every HEARTBEAT_SECONDS, so
        clients see progress through queueing and long model loads.
        """
        lock = self._device_locks.setdefault(self.settings.device, anyio.Lock())
        job = Job(status="waiting for the device" if lock.locked() else "starting")
        finished = False
        outcome: list[tuple[T, float]] = []
        failure: list[Exception] = []

        async def watch() -> None:
            try:
                while heartbeat is not None:
                    await anyio.sleep(HEARTBEAT_SECONDS)
                    await heartbeat(job.status)
                await anyio.sleep_forever()
            finally:
                if not finished:
                    job.cancel.set()

        queued_at = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            try:
                async with lock:
                    queue_seconds = time.perf_counter() - queued_at
                    self.stats.jobs += 1
                    job.status = "running"
                    # Not abandoned on cancel: the thread is waited for, so the device lock is
                    # held until the worker really stops.
                    outcome.append((await anyio.to_thread.run_sync(work, job), queue_seconds))
            except GenerationCancelled:
                self.stats.cancelled += 1
            except Exception as e:  # re-raised below, outside the task group, so it is not wrapped in a group
                failure.append(e)
            finally:
                finished = True
                tg.cancel_scope.cancel()
        if failure:
            raise failure[0]
        if not outcome:
            await anyio.lowlevel.checkpoint()  # delivers the request's pending cancellation
            raise GenerationCancelled()
        return outcome[0]


def resolve_source(source: str, alias: str, settings: Settings) -> str:
    """A `tiny:` source built (once) into the cache, a local folder checked, or a hub id as given."""
    if source.startswith(TINY_PREFIX):
        from pixelmcp.engine.tiny import ensure_built

        return str(ensure_built(source.removeprefix(TINY_PREFIX), settings.tiny_dir))
    folder = Path(source).expanduser()
    if folder.is_dir():
        return str(folder)
    if source.startswith(("/", "~", ".", "\\")) or (len(source) > 1 and source[1] == ":"):
        raise ModelLoadError(
            f"Model {alias!r} points at the folder {source!r}, which does not exist. "
            f"Fix its source under [models.{alias.split('+')[0]}] in the config file, or download the model there."
        )
    return source


def pick_device(setting: str) -> str:
    """Resolve the `device` setting: `auto` prefers CUDA, then Apple MPS, then CPU."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        device = torch.device(setting)
    except RuntimeError as e:
        raise ModelLoadError(f"PIXELMCP_DEVICE={setting!r} is not a device ({e}); use auto, cuda, cuda:N, mps or cpu") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"PIXELMCP_DEVICE={setting!r} but torch sees no CUDA GPU; use auto or cpu, "
                             "or install a CUDA build of torch")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"PIXELMCP_DEVICE={setting!r} but MPS is not available here; use auto or cpu")
    return setting
