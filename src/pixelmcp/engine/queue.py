"""The device queue: jobs (one unit of device work each) run one per device at a time.

A job runs in a worker thread (the event loop never blocks) while its request holds the
device's lock. Requests waiting for the device form a bounded queue: past `max_queue` a
request is refused at once with a "busy" error.

Cancellation: when the request's task is cancelled, the job's cancel event is set; the job
checks it between steps and stops. The device stays locked until the worker thread has really
returned, so a cancelled job never overlaps the next one.

Progress: a job carries its request's progress callback. Workers report through `job.report`
(steps, tokens, phases such as "loading sdxl"); while the request waits or runs, the queue
repeats the job's status every HEARTBEAT_SECONDS, so clients see progress through queueing and
long loads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from pixelmcp.backends import Progress
from pixelmcp.errors import Busy, CallTimeout, GenerationCancelled

T = TypeVar("T")

#: Seconds between heartbeat progress messages while a request waits for its device or runs.
HEARTBEAT_SECONDS = 10.0


@dataclass
class Job:
    """What a worker sees of its request: the cancel event, progress, its model leases and the load time it spent."""

    cancel: threading.Event = field(default_factory=threading.Event)
    progress: Progress | None = None
    load_seconds: float = 0.0
    status: str = "starting"
    leases: list[Any] = field(default_factory=list)
    device: str | None = None  # where it runs (the pool places it)

    def check(self) -> None:
        """Raise GenerationCancelled if the request was cancelled."""
        if self.cancel.is_set():
            raise GenerationCancelled()

    def report(self, done: float, total: float | None, message: str) -> None:
        """From the worker thread: set the status and tell the client (total None: a phase, not a step)."""
        self.status = message
        if self.progress is not None:
            anyio.from_thread.run(self.progress, done, total, message)


@dataclass
class QueueStats:
    jobs: int = 0
    cancelled: int = 0
    busy_refusals: int = 0
    timeouts: int = 0


class DeviceQueue:
    """Runs jobs one per device, in arrival order, within the queue and time limits."""

    def __init__(self, max_queue: int, timeout_s: float | None, stats: QueueStats | None = None):
        self.max_queue = max_queue
        self.timeout_s = timeout_s or None
        self.stats = stats if stats is not None else QueueStats()
        self._locks: dict[str, anyio.Lock] = {}
        self.waiting: dict[str, int] = {}

    def load(self, device: str) -> int:
        """Jobs running or waiting on `device`."""
        lock = self._locks.get(device)
        return self.waiting.get(device, 0) + (1 if lock is not None and lock.locked() else 0)

    async def run(self, device: str, work: Callable[[Job], T], progress: Progress | None = None) -> tuple[T, float]:
        """Run `work(job)` in a worker thread once `device` is free; returns (result, queue seconds).

        A full queue refuses the request at once (Busy). Waiting for the device can be cancelled
        (the request simply leaves the queue). A running job is asked to stop through
        `job.cancel`; GenerationCancelled from the worker is swallowed here and the request's own
        cancellation propagates.
        """
        lock = self._locks.setdefault(device, anyio.Lock())
        waiting = self.waiting.get(device, 0)
        if lock.locked() and waiting >= self.max_queue:
            self.stats.busy_refusals += 1
            raise Busy(
                f"The server is busy: {waiting} request(s) are already waiting for {device} behind the running one "
                f"(queue limit {self.max_queue}). Try again in a little while, or raise PIXELMCP_MAX_QUEUE."
            )
        job = Job(progress=progress, status=f"waiting for the device: {waiting + 1} ahead" if lock.locked()
                  else "starting")
        if lock.locked() and progress is not None:
            await progress(0, None, job.status)
        self.waiting[device] = self.waiting.get(device, 0) + 1
        with anyio.move_on_after(self.timeout_s) as deadline:
            outcome, failure = await self._run_locked(lock, device, work, job)
        if failure:
            raise failure[0]
        if deadline.cancel_called and not outcome:
            self.stats.timeouts += 1
            raise CallTimeout(
                f"The request took longer than {self.timeout_s:g} s (PIXELMCP_CALL_TIMEOUT_S) and was stopped. Ask "
                "for less work (fewer steps, smaller images, a faster model) or raise the limit."
            )
        if not outcome:
            await anyio.lowlevel.checkpoint()  # delivers the request's pending cancellation
            raise GenerationCancelled()
        return outcome[0]

    async def _run_locked(self, lock: anyio.Lock, device: str, work: Callable[[Job], T],
                          job: Job) -> tuple[list[tuple[T, float]], list[Exception]]:
        """Wait for the device, run the job, and return ([(result, queue seconds)] or [], [error] or [])."""
        finished = False
        outcome: list[tuple[T, float]] = []
        failure: list[Exception] = []

        async def watch() -> None:
            try:
                while job.progress is not None:
                    await anyio.sleep(HEARTBEAT_SECONDS)
                    await job.progress(0, None, job.status)
                await anyio.sleep_forever()
            finally:
                if not finished:
                    job.cancel.set()

        queued_at = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            try:
                try:
                    await lock.acquire()
                finally:
                    self.waiting[device] -= 1
                try:
                    queue_seconds = time.perf_counter() - queued_at
                    self.stats.jobs += 1
                    job.status = "running"
                    # Not abandoned on cancel: the thread is waited for, so the device lock is
                    # held until the worker really stops.
                    result = await anyio.to_thread.run_sync(work, job)
                    outcome.append((result, queue_seconds))
                finally:
                    lock.release()
            except GenerationCancelled:
                self.stats.cancelled += 1
            except Exception as e:  # noqa: BLE001 (raised outside the task group, so it is not wrapped in a group)
                failure.append(e)
            finally:
                finished = True
                tg.cancel_scope.cancel()
        return outcome, failure
