"""Local backends: the ImageGenerator and PromptRewriter protocols on the in-process pool."""

from __future__ import annotations

import time

import anyio.from_thread
from PIL import Image

from pixelmcp.backends import CachedRewriter, ControlRequest, ImageBatch, ImageRequest, Progress
from pixelmcp.config import ModelSpec
from pixelmcp.engine.batching import MicroBatcher
from pixelmcp.engine.pool import Job, ModelPool


class LocalImageGenerator:
    """Text-to-image on diffusers pipelines held by the pool."""

    def __init__(self, pool: ModelPool):
        self.pool = pool
        settings = pool.settings
        self.batcher = MicroBatcher(pool, settings.batch_window_ms / 1000, settings.max_batch)

    async def generate(self, spec: ModelSpec, request: ImageRequest, progress: Progress) -> ImageBatch:
        """Plain text-to-image requests go through the micro-batcher; guided ones run alone."""
        tasks = self.pool.background
        plain = request.control is None and request.style is None
        if plain and tasks is not None and self.batcher.max_images > 1 and len(request.seeds) <= self.batcher.max_images:
            return await self.batcher.generate(spec, request, progress, tasks)
        return await self._generate_alone(spec, request, progress)

    async def _generate_alone(self, spec: ModelSpec, request: ImageRequest, progress: Progress) -> ImageBatch:
        from pixelmcp.engine import control, diffusion

        def work(job: Job) -> ImageBatch:
            def on_step(done: int, total: int) -> None:
                job.status = f"step {done}/{total}"
                anyio.from_thread.run(progress, done, total, job.status)

            # 1. Models: the base pipeline, plus the ControlNet / IP-Adapter the request needs.
            announce_load(self.pool, spec, progress)
            pipe = self.pool.get(spec, pipeline_loader(self.pool, spec), job)
            controlnet = ip_adapter = control_map = None
            if request.control is not None:
                wanted = request.control.controlnet
                announce_load(self.pool, wanted, progress)
                controlnet = self.pool.get(wanted, control.load_controlnet(wanted), job)
                control_map = self._control_map(request.control, request.width, request.height, job, progress)
            if request.style is not None:
                wanted = request.style.adapter
                announce_load(self.pool, wanted, progress)
                ip_adapter = self.pool.get(wanted, control.load_ip_adapter(wanted, spec.ip_adapter), job)

            # 2. Denoise.
            call = diffusion.DiffusionCall(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                width=request.width,
                height=request.height,
                steps=request.steps,
                guidance_scale=request.guidance_scale,
                seeds=request.seeds,
                control_image=control_map,
                conditioning_scale=request.control.conditioning_scale if request.control else 1.0,
                ip_image=request.style.image if request.style else None,
                ip_scale=request.style.scale if request.style else 1.0,
            )
            started = time.perf_counter()
            images, scheduler = diffusion.text_to_image(
                pipe, call, job, on_step, controlnet=controlnet, ip_adapter=ip_adapter
            )
            batch = ImageBatch(images=images, scheduler=scheduler, device=self.pool.device, control_map=control_map)
            batch.timings = {"load_s": job.load_seconds, "run_s": time.perf_counter() - started}
            return batch

        batch, queue_s = await self.pool.run(work, heartbeat(progress))
        batch.timings = {"queue_s": queue_s, **batch.timings}
        return batch

    def _control_map(self, wanted: ControlRequest, width: int, height: int, job: Job, progress: Progress):
        """The control map at the output size: made from the image, or the image itself."""
        from pixelmcp.engine import control

        if not wanted.preprocess:
            return wanted.image.resize((width, height), Image.Resampling.BICUBIC)
        if wanted.control_type == "canny":
            source = wanted.image.resize((width, height), Image.Resampling.LANCZOS)
            return control.canny_map(source, wanted.low_threshold, wanted.high_threshold)
        if wanted.control_type == "depth" and wanted.depth_model is not None:
            announce_load(self.pool, wanted.depth_model, progress)
            estimator = self.pool.get(wanted.depth_model, control.load_depth_estimator(wanted.depth_model), job)
            return control.depth_map(estimator, wanted.image, job).resize((width, height), Image.Resampling.BICUBIC)
        raise ValueError(f"no preprocessor for control_type {wanted.control_type!r}")  # the tool checks first


class LocalRewriter(CachedRewriter):
    """Prompt rewriting with a local instruct LLM; greedy decoding, answers cached."""

    def __init__(self, pool: ModelPool, spec: ModelSpec, max_new_tokens: int):
        super().__init__()
        self.pool = pool
        self.spec = spec
        self.max_new_tokens = max_new_tokens
        self.name = f"local:{spec.alias}"

    async def reply(self, system: str, user: str, progress: Progress) -> str:
        from pixelmcp.engine import text

        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]

        def work(job: Job) -> str:
            announce_load(self.pool, self.spec, progress)
            llm = self.pool.get(self.spec, text.load_chat_model(self.spec), job)
            job.status = "rewriting prompt"
            anyio.from_thread.run(progress, 0, None, job.status)
            reply, _ = text.chat(llm, messages, max_new_tokens=self.max_new_tokens, job=job)
            return reply

        reply, _ = await self.pool.run(work, heartbeat(progress))
        return reply


def announce_load(pool: ModelPool, spec: ModelSpec, progress: Progress) -> None:
    """From a worker: tell the client a model load is about to start (it can take minutes)."""
    if not pool.is_resident(spec.alias):
        anyio.from_thread.run(progress, 0, None, f"loading {spec.alias}")


def heartbeat(progress: Progress):
    async def beat(status: str) -> None:
        await progress(0, None, status)

    return beat


def loader_for(pool: ModelPool, spec: ModelSpec):
    """The pool loader for any catalog entry, by its task."""
    from pixelmcp.engine import control, text, vision

    if spec.task == "generate":
        return pipeline_loader(pool, spec)
    loaders = {"rewrite": text.load_chat_model,
               "preprocess": control.load_depth_estimator, "classify": vision.load_classifier,
               "answer": vision.load_vlm}
    return loaders[spec.task](spec)


def pipeline_loader(pool: ModelPool, spec: ModelSpec):
    """The diffusion pipeline loader with the server's optimisation settings."""
    from pixelmcp.engine import diffusion

    return diffusion.load_pipeline(spec, channels_last=pool.settings.channels_last, compile=pool.settings.compile)
