"""Micro-batching: concurrent text-to-image requests that agree on model, size, steps, guidance and
negative prompt run as one pipeline call, with one generator per image.

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
import time
from dataclasses import dataclass, field

import anyio
import anyio.from_thread

from pixelmcp.backends import ImageBatch, ImageRequest, Progress
from pixelmcp.config import ModelSpec
from pixelmcp.engine.pool import Job, ModelPool
from pixelmcp.errors import GenerationCancelled, PixelError

logger = logging.getLogger(__name__)

_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


@dataclass(eq=False)
class Member:
    request: ImageRequest
    progress: Progress
    cancel: threading.Event = field(default_factory=threading.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    result: ImageBatch | None = None
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
class Batch:
    key: tuple
    members: list[Member] = field(default_factory=list)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def try_add(self, member: Member, max_images: int) -> bool:
        with self.lock:
            images = sum(len(m.request.seeds) for m in self.members)
            if self.closed or images + len(member.request.seeds) > max_images:
                return False
            self.members.append(member)
            return True

    def close(self) -> list[Member]:
        """Stop accepting members; the ones still wanted."""
        with self.lock:
            self.closed = True
            return [m for m in self.members if not m.cancel.is_set()]


def batch_key(spec: ModelSpec, request: ImageRequest) -> tuple:
    return (spec.alias, request.width, request.height, request.steps, request.guidance_scale, request.negative_prompt)


class MicroBatcher:
    """Groups compatible text-to-image requests into shared pipeline calls."""

    def __init__(self, pool: ModelPool, window_s: float, max_images: int):
        self.pool = pool
        self.window_s = window_s
        self.max_images = max_images
        self._open: dict[tuple, Batch] = {}

    async def generate(self, spec: ModelSpec, request: ImageRequest, progress: Progress, tasks) -> ImageBatch:
        """Make `request`'s images as part of a batch; `tasks` is a task group that outlives requests."""
        member = Member(request, progress)
        key = batch_key(spec, request)
        batch = self._open.get(key)
        if batch is None or not batch.try_add(member, self.max_images):
            batch = Batch(key)
            batch.try_add(member, self.max_images)
            self._open[key] = batch
            tasks.start_soon(self._run, spec, batch)
        try:
            await member.done.wait()
        except anyio.get_cancelled_exc_class():
            member.cancel.set()
            raise
        if member.error is not None:
            raise member.error
        assert member.result is not None
        return member.result

    async def _run(self, spec: ModelSpec, batch: Batch) -> None:
        from pixelmcp.engine import diffusion
        from pixelmcp.engine.local import announce_load, pipeline_loader

        if self.window_s:
            await anyio.sleep(self.window_s)
        started_members: list[Member] = []

        def work(job: Job) -> tuple[list, str, float, float]:
            members = batch.close()
            started_members.extend(members)
            if not members:
                raise GenerationCancelled()
            first = members[0]

            def on_step(done: int, total: int) -> None:
                job.status = f"step {done}/{total}"
                for m in members:
                    anyio.from_thread.run(m.report, done, total, job.status)
                if all(m.cancel.is_set() for m in members):
                    job.cancel.set()  # everyone left: stop at the next step

            announce_load(self.pool, spec, first.report)
            pipe = self.pool.get(spec, pipeline_loader(self.pool, spec), job)
            call = diffusion.DiffusionCall(
                prompt=tuple(m.request.prompt for m in members for _ in m.request.seeds),
                negative_prompt=first.request.negative_prompt,
                width=first.request.width,
                height=first.request.height,
                steps=first.request.steps,
                guidance_scale=first.request.guidance_scale,
                seeds=tuple(seed for m in members for seed in m.request.seeds),
            )
            started = time.perf_counter()
            images, scheduler = diffusion.text_to_image(pipe, call, job, on_step)
            return images, scheduler, time.perf_counter() - started, job.load_seconds

        async def beat(status: str) -> None:
            for m in batch.members:
                await m.report(0, None, status)

        try:
            (images, scheduler, run_s, load_s), queue_s = await self.pool.run(work, beat)
        except GenerationCancelled:
            for m in batch.members:
                m.error = GenerationCancelled()
        except Exception as e:  # every member gets the batch's error (a Busy refusal, a load failure, ...)
            for m in batch.members:
                m.error = e
        else:
            offset = 0
            size = len(started_members)
            for m in started_members:
                count = len(m.request.seeds)
                m.result = ImageBatch(
                    images=images[offset:offset + count], scheduler=scheduler, device=self.pool.device,
                    timings={"queue_s": queue_s, "load_s": load_s, "run_s": run_s}, batch_size=size,
                )
                offset += count
            for m in batch.members:
                if m not in started_members:
                    m.error = GenerationCancelled()
        finally:
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]
            for m in batch.members:
                if m.result is None and m.error is None:
                    m.error = PixelError("The server stopped before this request ran; try again.")
                m.done.set()
