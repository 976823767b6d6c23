"""Local backends: the protocols of pixelmcp.backends on the in-process model pool.

Each backend hands the pool one job per call (`pool.run`, in a worker thread, one per device);
inside it, `pool.get` leases the models the job needs, loading them on first use. The pool tells
the client about loads and waits; the job reports steps and tokens through `job.report`.
"""

from __future__ import annotations

import time
from dataclasses import replace

from PIL import Image

from pixelmcp.backends import (
    CachedRewriter,
    Classification,
    ControlRequest,
    GeneratedImages,
    ImageRequest,
    Progress,
    VisionAnswer,
)
from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.batching import MicroBatcher
from pixelmcp.engine.loaders import loader_for, pipeline_loader
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job


class LocalImageGenerator:
    """Text-to-image on diffusers pipelines held by the pool: plain requests through the micro-batcher,
    guided ones (ControlNet, IP-Adapter) alone."""

    def __init__(self, pool: ModelPool):
        self.pool = pool
        settings = pool.settings
        self.batcher = MicroBatcher(pool, self.make, settings.batch_window_ms / 1000, settings.max_batch)

    async def generate(self, request: ImageRequest, progress: Progress) -> GeneratedImages:
        control, style = request.control, request.style
        models = [request.spec, control and control.controlnet, *_map_models(control), style and style.adapter,
                  _inpaint_unet(request), *(use.spec for use in request.loras)]
        if self.batcher.takes(request):
            await self.pool.ready(models, progress)  # each member's own download, before it joins a batch
            return await self.batcher.generate(request, progress)
        (made,), queue_s = await self.pool.run(lambda job: self.make(job, [request]), progress, models)
        made.timings = {"queue_s": queue_s, **made.timings}
        return made

    def make(self, job: Job, requests: list[ImageRequest]) -> list[GeneratedImages]:
        """In the worker: one pipeline call for `requests` (one request, or plain ones that agree on everything
        but prompt and seeds); each request's images come back in its own result."""
        from pixelmcp.engine import control, diffusion

        # 1. Models: the base pipeline, plus the ControlNet / IP-Adapter / inpainting UNet a request needs.
        first = requests[0]
        spec = first.spec
        pipe = self.pool.get(spec, pipeline_loader(self.pool.settings, spec), job)
        unet_entry = _inpaint_unet(first)
        unet = self.pool.get(unet_entry, diffusion.load_unet(unet_entry), job) if unet_entry else None
        controlnet = ip_adapter = control_map = people = None
        ip_scale: float | dict = 1.0
        if first.control is not None:
            wanted = first.control.controlnet
            controlnet = self.pool.get(wanted, control.load_controlnet(wanted), job)
            control_map, people = self._control_map(first.control, (first.width, first.height), job)
        if first.style is not None:
            wanted = first.style.adapter
            ip_adapter = self.pool.get(wanted, control.load_ip_adapter(wanted, spec.ip_adapter), job)
            # InstantStyle: in style mode, the reference acts only in the blocks that carry style.
            ip_scale = control.ip_adapter_scale(first.style.mode, first.style.scale, spec.style_blocks)

        # 2. The requests' LoRAs on the model, every other adapter it holds off (one set: the batcher's key).
        self.pool.loras.activate(pipe, first.loras, self._lora_folders(first, job), unet=unet, model=spec.alias)

        # 3. Denoise: from noise, from the image to edit, or tile by tile.
        started = time.perf_counter()
        if first.edit is not None and first.edit.tile:
            images, scheduler = self._tiles(pipe, first, job)
        else:
            start, mask = _edit_inputs(first)
            call = diffusion.DiffusionCall.of(requests, control_image=control_map, ip_scale=ip_scale, image=start,
                                              mask=mask)
            # What a compiled graph fits: no edit, ControlNet, IP-Adapter, or LoRA layers in the denoiser.
            plain = (first.edit is None and controlnet is None and ip_adapter is None
                     and not self.pool.loras.holds_any(pipe))
            compiler = self.pool.compiler
            compiled = compiler.denoiser_for(pipe, call, spec.alias) if compiler is not None and plain else None
            images, scheduler = diffusion.denoise(
                pipe, call, job, lambda done, total: job.report(done, total, f"step {done}/{total}"),
                controlnet=controlnet, ip_adapter=ip_adapter, unet=unet, denoiser=compiled,
            )
        timings = {"load_s": job.load_seconds, "run_s": time.perf_counter() - started}

        # 4. Each request's images, in seed order.
        results, offset = [], 0
        for request in requests:
            results.append(GeneratedImages(
                images=images[offset:offset + request.n], scheduler=scheduler, device=job.device or self.pool.device,
                timings=dict(timings), control_map=control_map, people=people, batch_size=len(requests),
            ))
            offset += request.n
        return results

    def _lora_folders(self, request: ImageRequest, job: Job) -> dict[str, str]:
        """Each LoRA's folder on local disk (a hub LoRA was downloaded before the job queued, like any model)."""
        from pixelmcp.engine.loading import loading

        folders = {}
        for use in request.loras:
            with loading(use.spec, self.pool.source_of(use.spec), paths=use.spec.weight_paths) as fetched:
                folders[use.key] = str(fetched.folder)
        job.check()
        return folders

    def _tiles(self, pipe, request: ImageRequest, job: Job) -> tuple[list[Image.Image], str]:
        """Image-to-image over overlapping tiles of `request.edit.image` (upscaling): each tile one pipeline call
        at a size the model works at, put back together with feathered seams."""
        from pixelmcp.engine import diffusion
        from pixelmcp.media import editing

        spec, edit = request.spec, request.edit
        canvas = edit.image
        size = editing.padded_size(canvas.size, spec.multiple_of, spec.min_side)
        padded = editing.pad_to(canvas, size)
        side = max(edit.tile // spec.multiple_of * spec.multiple_of, spec.multiple_of)
        overlap = max(side // 4 // spec.multiple_of * spec.multiple_of, spec.multiple_of)
        boxes = editing.tiles(size, side, overlap)
        blender = editing.TileBlender(size, overlap)
        scheduler = ""
        for index, tile in enumerate(boxes):
            call = replace(diffusion.DiffusionCall.of([request], image=padded.crop(tile.box)), width=tile.width,
                           height=tile.height)

            def on_step(done: int, total: int, index: int = index) -> None:
                job.report(index * total + done, len(boxes) * total,
                           f"tile {index + 1}/{len(boxes)}, step {done}/{total}")

            (image,), scheduler = diffusion.denoise(pipe, call, job, on_step)
            blender.add(tile, image)
        return [blender.image().crop((0, 0, *canvas.size))], scheduler

    def _control_map(self, wanted: ControlRequest, size: tuple[int, int], job: Job) -> tuple[Image.Image, int | None]:
        """The control map at the output size (made from the image, or the image itself); for a pose map made
        here, how many people it shows."""
        from pixelmcp.engine import control, pose

        if not wanted.preprocess:
            return wanted.image.resize(size, Image.Resampling.BICUBIC), None
        if wanted.control_type == "canny":
            source = wanted.image.resize(size, Image.Resampling.LANCZOS)
            return control.canny_map(source, wanted.low_threshold, wanted.high_threshold), None
        maker = wanted.preprocessor
        if maker is None:
            raise ValueError(f"no preprocessor for control_type {wanted.control_type!r}")  # the tool checks first
        model, *detector = (self.pool.get(entry, loader_for(self.pool.settings, entry), job)
                            for entry in maker.with_detector())
        if maker.kind == "depth":
            return control.depth_map(model, wanted.image, job).resize(size, Image.Resampling.BICUBIC), None
        if maker.kind == "semantic":  # class colours: drawn at the output size, never interpolated
            return control.segmentation_map(model, wanted.image.resize(size, Image.Resampling.LANCZOS), job), None
        return pose.skeleton_map(detector[0], model, wanted.image, size, wanted.person_threshold,
                                 wanted.keypoint_threshold, job)


def _map_models(control: ControlRequest | None) -> tuple[ModelSpec, ...]:
    """The models that make a control map from the image: the map model, and a pose model's person detector."""
    maker = control and control.preprocessor
    return maker.with_detector() if maker is not None else ()


def _inpaint_unet(request: ImageRequest) -> ModelSpec | None:
    """The dedicated inpainting UNet an inpainting request uses, when its model has one."""
    edit = request.edit
    if edit is None or edit.mask is None or not request.spec.inpaint:
        return None
    return request.spec.inpaint_entry()


def _edit_inputs(request: ImageRequest) -> tuple[Image.Image | None, Image.Image | None]:
    """The image to start from and the hard mask to repaint, at the size the model works at (the tool brings the
    result back to the image's own size)."""
    from pixelmcp.media import editing

    edit = request.edit
    if edit is None:
        return None, None
    return editing.model_inputs(edit.image, edit.mask, (request.width, request.height))


class LocalRewriter(CachedRewriter):
    """Prompt rewriting with a local instruct LLM; greedy decoding, answers cached."""

    def __init__(self, pool: ModelPool, spec: ModelSpec, max_new_tokens: int, doing: str = "rewriting prompt"):
        super().__init__()
        self.pool = pool
        self.spec = spec
        self.max_new_tokens = max_new_tokens
        self.doing = doing  # the progress message while the model writes
        self.name = f"local:{spec.alias}"

    async def reply(self, system: str, user: str, progress: Progress) -> str:
        from pixelmcp.engine import text

        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]

        def work(job: Job) -> str:
            llm = self.pool.get(self.spec, text.load_chat_model(self.spec), job)
            job.report(0, None, self.doing)
            reply, _ = text.chat(llm, messages, max_new_tokens=self.max_new_tokens, job=job)
            return reply

        reply, _ = await self.pool.run(work, progress, [self.spec])
        return reply


class LocalClassifier:
    """CLIP / SigLIP zero-shot classification and image embeddings."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def classify(self, spec: ModelSpec, images: list[Image.Image], prompts: list[str], neutral: str,
                       multi_label: bool, progress: Progress) -> Classification:
        from pixelmcp.engine import vision

        def work(job: Job) -> Classification:
            import torch

            classifier = self.pool.get(spec, vision.load_classifier(spec), job)
            started = time.perf_counter()
            if spec.kind == "siglip":
                # SigLIP is trained with a sigmoid loss: each label's score stands alone.
                scores, scoring = torch.sigmoid(vision.zero_shot_logits(classifier, images, prompts, job)), "sigmoid"
            elif multi_label:
                # CLIP logits only compare texts with each other: score each label against a neutral prompt.
                logits = vision.zero_shot_logits(classifier, images, [*prompts, neutral], job)
                pairs = torch.stack([logits[:, :-1], logits[:, -1:].expand(-1, len(prompts))], dim=-1)
                scores, scoring = pairs.softmax(dim=-1)[..., 0], "binary-softmax"
            else:
                scores, scoring = vision.zero_shot_logits(classifier, images, prompts, job).softmax(dim=-1), "softmax"
            return Classification(scores.tolist(), scoring, {"load_s": job.load_seconds,
                                                            "run_s": time.perf_counter() - started})

        result, queue_s = await self.pool.run(work, progress, [spec])
        result.timings = {"queue_s": queue_s, **result.timings}
        return result

    async def align(self, spec: ModelSpec, images: list[Image.Image], texts: list[str],
                    progress: Progress) -> list[list[tuple[float, float]]]:
        from pixelmcp.engine import vision

        def work(job: Job) -> list[list[tuple[float, float]]]:
            classifier = self.pool.get(spec, vision.load_classifier(spec), job)
            return vision.text_alignment(classifier, images, texts, *spec.alignment_range, job)

        scores, _ = await self.pool.run(work, progress, [spec])
        return scores

    async def embed(self, spec: ModelSpec, images: list[Image.Image], progress: Progress) -> list[list[float]]:
        from pixelmcp.engine import vision

        def work(job: Job) -> list[list[float]]:
            classifier = self.pool.get(spec, vision.load_classifier(spec), job)
            return vision.image_embeddings(classifier, images, job).tolist()

        embeddings, _ = await self.pool.run(work, progress, [spec])
        return embeddings


class LocalSegmenter:
    """Masks from words (CLIPSeg)."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def segment(self, spec: ModelSpec, image: Image.Image, prompts: list[str],
                      progress: Progress) -> list[Image.Image]:
        from pixelmcp.engine import segment

        def work(job: Job) -> list[Image.Image]:
            segmenter = self.pool.get(spec, segment.load_segmenter(spec), job)
            job.report(0, None, "segmenting")
            return segment.segment(segmenter, image, prompts, job)

        masks, _ = await self.pool.run(work, progress, [spec])
        return masks


class LocalDetector:
    """Objects counted per class by a detector (a pose model's person detector: RT-DETR, COCO's classes)."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def count(self, spec: ModelSpec, images: list[Image.Image], threshold: float,
                    progress: Progress) -> list[dict[str, int]]:
        from pixelmcp.engine import pose

        def work(job: Job) -> list[dict[str, int]]:
            detector = self.pool.get(spec, loader_for(self.pool.settings, spec), job)
            job.report(0, None, "counting objects")
            return pose.count_objects(detector, images, threshold, job)

        counts, _ = await self.pool.run(work, progress, [spec])
        return counts

    async def classes(self, spec: ModelSpec, progress: Progress) -> set[str]:
        from pixelmcp.engine import pose

        def work(job: Job) -> set[str]:
            return pose.class_names(self.pool.get(spec, loader_for(self.pool.settings, spec), job))

        names, _ = await self.pool.run(work, progress, [spec])
        return names


class LocalAnswerer:
    """Vision-language chat with a local VLM (Qwen2-VL / Qwen2.5-VL, LLaVA, LLaVA-NeXT, Idefics3)."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def answer(self, spec: ModelSpec, images: list[Image.Image], question: str, max_tokens: int,
                     progress: Progress) -> VisionAnswer:
        from pixelmcp.engine import vision

        def work(job: Job) -> VisionAnswer:
            vlm = self.pool.get(spec, vision.load_vlm(spec), job)
            started = time.perf_counter()
            text, tokens = vision.chat_about_images(
                vlm, images, question, max_new_tokens=max_tokens, job=job,
                on_tokens=lambda count: job.report(count, max_tokens, f"{count} tokens"),
            )
            return VisionAnswer(text, tokens, {"load_s": job.load_seconds, "run_s": time.perf_counter() - started})

        result, queue_s = await self.pool.run(work, progress, [spec])
        result.timings = {"queue_s": queue_s, **result.timings}
        return result
