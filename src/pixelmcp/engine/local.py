"""Local backends: the ImageGenerator and PromptRewriter protocols on the in-process pool."""

from __future__ import annotations

import time
from collections import OrderedDict

import anyio.from_thread

from pixelmcp.backends import ImageBatch, ImageRequest, Progress, Rewrite, RewriteFailed
from pixelmcp.config import ModelSpec
from pixelmcp.engine.pool import Job, ModelPool
from pixelmcp.prompts.rewrite import SYSTEM_PROMPT, clean_rewrite, user_message

_REWRITE_CACHE_SIZE = 512
_REWRITE_MAX_CHARS = 1000


class LocalImageGenerator:
    """Text-to-image on diffusers pipelines held by the pool."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def generate(self, spec: ModelSpec, request: ImageRequest, progress: Progress) -> ImageBatch:
        from pixelmcp.engine import diffusion

        call = diffusion.DiffusionCall(
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            width=request.width,
            height=request.height,
            steps=request.steps,
            guidance_scale=request.guidance_scale,
            seeds=request.seeds,
        )

        def work(job: Job) -> tuple[list, str, float, float]:
            def on_step(done: int, total: int) -> None:
                job.status = f"step {done}/{total}"
                anyio.from_thread.run(progress, done, total, job.status)

            _announce_load(self.pool, spec, progress)
            pipe = self.pool.get(spec, diffusion.load_pipeline(spec), job)
            started = time.perf_counter()
            images, scheduler = diffusion.text_to_image(pipe, call, job, on_step)
            return images, scheduler, time.perf_counter() - started, job.load_seconds

        (images, scheduler, run_s, load_s), queue_s = await self.pool.run(work, _heartbeat(progress))
        return ImageBatch(
            images=images,
            scheduler=scheduler,
            device=self.pool.device,
            timings={"queue_s": queue_s, "load_s": load_s, "run_s": run_s},
        )


class LocalRewriter:
    """Prompt rewriting with a local instruct LLM; greedy decoding, answers cached."""

    def __init__(self, pool: ModelPool, spec: ModelSpec, max_new_tokens: int):
        self.pool = pool
        self.spec = spec
        self.max_new_tokens = max_new_tokens
        self.name = f"local:{spec.alias}"
        self._cache: OrderedDict[tuple[str, str | None], str] = OrderedDict()

    async def rewrite(self, prompt: str, *, style: str | None, progress: Progress) -> Rewrite:
        from pixelmcp.engine import text

        started = time.perf_counter()
        key = (prompt, style)
        if key in self._cache:
            self._cache.move_to_end(key)
            return Rewrite(self._cache[key], self.name, time.perf_counter() - started, cached=True)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_message(prompt, style)},
        ]

        def work(job: Job) -> str:
            _announce_load(self.pool, self.spec, progress)
            llm = self.pool.get(self.spec, text.load_chat_model(self.spec), job)
            job.status = "rewriting prompt"
            anyio.from_thread.run(progress, 0, None, job.status)
            reply, _ = text.chat(llm, messages, max_new_tokens=self.max_new_tokens, job=job)
            return reply

        reply, _ = await self.pool.run(work, _heartbeat(progress))
        cleaned = clean_rewrite(reply, _REWRITE_MAX_CHARS)
        if not cleaned:
            raise RewriteFailed(f"{self.name} returned no usable prompt (reply was {reply[:80]!r})")
        self._cache[key] = cleaned
        if len(self._cache) > _REWRITE_CACHE_SIZE:
            self._cache.popitem(last=False)
        return Rewrite(cleaned, self.name, time.perf_counter() - started)


def _announce_load(pool: ModelPool, spec: ModelSpec, progress: Progress) -> None:
    """From a worker: tell the client a model load is about to start (it can take minutes)."""
    if spec.alias not in {m.spec.alias for m in pool.loaded()}:
        anyio.from_thread.run(progress, 0, None, f"loading {spec.alias}")


def _heartbeat(progress: Progress):
    async def beat(status: str) -> None:
        await progress(0, None, status)

    return beat
