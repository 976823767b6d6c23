"""Local backends for understanding: ImageClassifier and VisionAnswerer on the in-process pool."""

from __future__ import annotations

import time

import anyio.from_thread
from PIL import Image

from pixelmcp.backends import Answer, Classification, Progress
from pixelmcp.config import ModelSpec
from pixelmcp.engine.local import announce_load, heartbeat
from pixelmcp.engine.pool import Job, ModelPool


class LocalClassifier:
    """CLIP / SigLIP zero-shot classification and image embeddings."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def classify(self, spec: ModelSpec, images: list[Image.Image], prompts: list[str], neutral: str,
                       multi_label: bool, progress: Progress) -> Classification:
        from pixelmcp.engine import vision

        def work(job: Job) -> Classification:
            import torch

            announce_load(self.pool, spec, progress)
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

        result, queue_s = await self.pool.run(work, heartbeat(progress))
        result.timings = {"queue_s": queue_s, **result.timings}
        return result

    async def embed(self, spec: ModelSpec, images: list[Image.Image], progress: Progress) -> list[list[float]]:
        from pixelmcp.engine import vision

        def work(job: Job) -> list[list[float]]:
            announce_load(self.pool, spec, progress)
            classifier = self.pool.get(spec, vision.load_classifier(spec), job)
            return vision.image_embeddings(classifier, images, job).tolist()

        embeddings, _ = await self.pool.run(work, heartbeat(progress))
        return embeddings


class LocalAnswerer:
    """Vision-language chat with a local VLM (Qwen2-VL / Qwen2.5-VL, LLaVA, LLaVA-NeXT, Idefics3)."""

    def __init__(self, pool: ModelPool):
        self.pool = pool

    async def answer(self, spec: ModelSpec, images: list[Image.Image], question: str, max_tokens: int,
                     progress: Progress) -> Answer:
        from pixelmcp.engine import vision

        def work(job: Job) -> Answer:
            def on_tokens(count: int) -> None:
                job.status = f"{count} tokens"
                anyio.from_thread.run(progress, count, max_tokens, job.status)

            announce_load(self.pool, spec, progress)
            vlm = self.pool.get(spec, vision.load_vlm(spec), job)
            started = time.perf_counter()
            text, tokens = vision.chat_about_images(vlm, images, question, max_new_tokens=max_tokens, job=job,
                                                    on_tokens=on_tokens)
            return Answer(text, tokens, {"load_s": job.load_seconds, "run_s": time.perf_counter() - started})

        result, queue_s = await self.pool.run(work, heartbeat(progress))
        result.timings = {"queue_s": queue_s, **result.timings}
        return result
