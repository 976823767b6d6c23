"""Micro-batching: concurrent text-to-image requests that agree on model, LoRAs, size, steps, guidance and
negative prompt run as one pipeline call, with one generator per image.

The loop is flat: requests gather into a batch -> one job makes every image (`make`, given by the
generator) -> each request gets its own images back.

A request joins the open batch for its key, or opens one. A batch runs in the pool's
background task group after a short window (PIXELMCP_BATCH_WINDOW_MS) and keeps accepting
members until its job starts on the device, so batches also form naturally while the device
is busy. Each image is still made from its own seed's noise, so a request's pixels do not
depend on what it was batched with (up to float rounding of batched kernels).

A member that is cancelled leaves the batch; the batch's job stops only when every member has
gone, and members that never started are simply left out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from pixelmcp.backends import GeneratedImages, ImageRequest, Progress
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job
from pixelmcp.errors import GenerationCancelled, PixelError

logger = logging.getLogger(__name__)

_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)

#: In the worker: one pipeline call for the requests, one result per request, in their order.
Make = Callable[[Job, list[ImageRequest]], list[GeneratedImages]]


@dataclass(eq=False)
class Member:
    request: ImageRequest
    progress: Progress
    cancel: threading.Event = field(default_factory=threading.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: GeneratedImages | None = None
    error: BaseException | None = None

    async def report(self, done: float, total: float | None, message: str | None) -> None:
        """Progress to this member's client; a client that went away just leaves the batch."""
        if self.cancel.is_set():
            return
        try:
            await self.progress(done, total, message)
        except _GONE:
            self.cancel.set()


@dataclass(eq=False)
class PendingBatch:
    """Requests gathering for one pipeline call; closed once its job starts."""

    key: tuple
    members: list[Member] = field(default_factory=list)
    closed: bool = False
    job: Job | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def try_add(self, member: Member, max_images: int) -> bool:
        with self.lock:
            images = sum(m.request.n for m in self.members)
            if self.closed or images + member.request.n > max_images:
                return False
            self.members.append(member)
            return True

    def close(self, job: Job) -> list[Member]:
        """Stop accepting members; the ones still wanted."""
        with self.lock:
            self.closed = True
            self.job = job
            return [m for m in self.members if not m.cancel.is_set()]

    async def report(self, done: float, total: float | None, message: str | None) -> None:
        """Progress to every member; once all have left a running batch, its job stops at the next step."""
        for m in self.members:
            await m.report(done, total, message)
        if self.job is not None and all(m.cancel.is_set() for m in self.members):
            self.job.cancel.set()


def batch_key(request: ImageRequest) -> tuple:
    """What members of one pipeline call share: the model, its LoRAs and their weights (the adapters are set once
    per call), and every argument but prompt and seeds."""
    return (request.spec.alias, request.width, request.height, request.steps, request.guidance_scale,
            request.negative_prompt, tuple((use.key, use.weight) for use in request.loras))


class MicroBatcher:
    """Groups compatible text-to-image requests into shared pipeline calls made by `make`."""

    def __init__(self, pool: ModelPool, make: Make, window_s: float, max_images: int):
        self.pool = pool
        self.make = make
        self.window_s = window_s
        self.max_images = max_images
        self._open: dict[tuple, PendingBatch] = {}

    def takes(self, request: ImageRequest) -> bool:
        """Plain text-to-image requests, while a server lends its task group, batching is on, and they fit."""
        plain = request.control is None and request.style is None and request.edit is None
        return plain and self.pool.background is not None and 1 < self.max_images and request.n <= self.max_images

    async def generate(self, request: ImageRequest, progress: Progress) -> GeneratedImages:
        """Make `request`'s images as part of a batch."""
        member = Member(request, progress)
        key = batch_key(request)
        batch = self._open.get(key)
        if batch is None or not batch.try_add(member, self.max_images):
            batch = PendingBatch(key)
            batch.try_add(member, self.max_images)
            self._open[key] = batch
            self.pool.background.start_soon(self._run, batch)  # a task group that outlives requests
        try:
            await member.done.wait()
        except anyio.get_cancelled_exc_class():
            member.cancel.set()
            raise
        if member.error is not None:
            raise member.error
        assert member.result is not None
        return member.result

    async def _run(self, batch: PendingBatch) -> None:
        if self.window_s:
            await anyio.sleep(self.window_s)
        started: list[Member] = []

        def work(job: Job) -> list[GeneratedImages]:
            started.extend(batch.close(job))
            if not started:
                raise GenerationCancelled()
            return self.make(job, [m.request for m in started])

        try:
            # Placed like any job: where its model is, or on another copy of it when that one is busy.
            results, queue_s = await self.pool.run(work, batch.report, [batch.members[0].request.spec])
        except GenerationCancelled:
            for m in batch.members:
                m.error = GenerationCancelled()
        except Exception as e:  # noqa: BLE001 (every member gets the batch's error: a Busy refusal, a failed load)
            for m in batch.members:
                m.error = e
        else:
            for m, result in zip(started, results, strict=True):
                result.timings = {"queue_s": queue_s, **result.timings}
                m.result = result
            for m in batch.members:
                if m not in started:
                    m.error = GenerationCancelled()
        finally:
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]
            for m in batch.members:
                if m.result is None and m.error is None:
                    m.error = PixelError("The server stopped before this request ran; try again.")
                m.done.set()
