"""What image-making calls return and keep: the result models, storing the images with everything needed to make
them again, and the checks of the images (alignment with the prompt, captions). Storing is CPU-bound: it runs in
worker threads (`AppState.encoders`), never on the event loop.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from PIL import Image
from pydantic import BaseModel, Field

from pixelmcp import __version__
from pixelmcp.backends import GeneratedImages, ImageRequest, Progress
from pixelmcp.errors import PixelError, StoreError
from pixelmcp.media.store import URI_PREFIX, ImageRef, StoredImage
from pixelmcp.service.rewriting import RewriteOutcome
from pixelmcp.service.state import AppState

# --------------------------------------------------------------------------- result shapes


class Alignment(BaseModel):
    """How well an image shows its prompt, by a similarity model: a check, not a proof."""

    score: float = Field(description="0..1: 0.6 or more matches the prompt well, under 0.3 weakly (README: "
                                     "'Reading alignment scores')")
    similarity: float = Field(description="the model's raw score: CLIP's cosine similarity, SigLIP's logit")
    model: str = Field(description="the similarity model (PIXELMCP_ALIGNMENT_MODEL)")


class ImageInfo(ImageRef):
    seed: int | None = Field(description="re-running the call gives the same pixels; this seed with n=1 gives the "
                                         "same picture (null: the provider takes no seed)")
    alignment: Alignment | None = Field(None, description="how well it shows the prompt (null: not scored)")
    caption: str | None = Field(None, description="verify='caption': what the vision model sees in it, in one "
                                                  "sentence")


class Timings(BaseModel):
    """Where a call's time went, in seconds."""

    queue_s: float = 0.0
    load_s: float = 0.0
    run_s: float = 0.0
    total_s: float = 0.0


class GenerationTimings(Timings):
    rewrite_s: float = 0.0


class GenerateImageResult(BaseModel):
    id: str = Field(description="id of the first image (same as images[0].id)")
    uri: str
    path: str
    width: int
    height: int
    seed: int | None = Field(description="seed of the first image; image i used seed + i (null: no seed)")
    images: list[ImageInfo]
    model: str
    provider: str = Field(description="local (this server's GPU pool) or the remote provider that made the images")
    steps: int | None = Field(description="denoising steps (null: set by the provider)")
    guidance_scale: float | None = Field(description="null: set by the provider")
    scheduler: str | None
    prompt: str = Field(description="the prompt as given")
    revised_prompt: str | None = Field(description="the rewritten prompt the model received, or null if not rewritten")
    negative_prompt: str | None
    rewriter: str | None = Field(None, description="who rewrote the prompt (a model, sampling:MODEL, or the provider)")
    rewrite_note: str | None = Field(None, description="e.g. why another rewriter than the configured one answered")
    rewrite_error: str | None = Field(None, description="why a requested rewrite did not happen")
    batch_size: int = Field(1, description="requests whose images were made in the same pipeline call")
    timings: GenerationTimings
    candidates: list[ImageInfo] = Field(
        default_factory=list, description="best_of: the images not chosen, with their alignment (stored and linked)"
    )


# --------------------------------------------------------------------------- storing


def store_images(app: AppState, tool: str, request: ImageRequest, made: GeneratedImages,
                 extra: dict[str, Any]) -> list[StoredImage]:
    """Store every image with everything needed to make it again (in a worker thread)."""
    params = {**dict(
        tool=tool, model=request.spec.alias, provider=request.spec.provider, source=request.spec.source,
        prompt=request.prompt, revised_prompt=made.revised_prompt or request.revised_prompt,
        negative_prompt=request.negative_prompt, width=request.width, height=request.height, steps=request.steps,
        guidance_scale=request.guidance_scale, scheduler=made.scheduler, device=made.device, n=request.n,
        pixelmcp_version=__version__,
    ), **extra}  # (an edit's extra says its own size: the image's, not the size the model worked at)
    params["batch_size"] = made.batch_size  # >1: made in one pipeline call with other requests
    if made.people is not None:
        params["people"] = made.people  # a pose map made from a photo: the people it shows
    records: list[StoredImage] = []
    for index, (image, seed) in enumerate(zip(made.images, request.seeds, strict=True)):
        try:
            records.append(app.store.save(image, {**params, "seed": seed, "index": index}))
        except StoreError as e:
            if not records:
                raise
            saved = ", ".join(f"{r.uri} ({r.path})" for r in records)
            raise StoreError(f"{e} Saved before the failure: {saved}.") from e
    return records


def store_reference(app: AppState, image: Image.Image, role: str, **params) -> StoredImage:
    """Store an image a result used (a control map, a mask, a copy of an input), saying what it was."""
    return app.store.save(image, {"role": role, **params})


def reference_record(app: AppState, given: str, image: Image.Image, role: str) -> StoredImage:
    """The stored record of an input image: itself if it came from the store, else a stored copy."""
    if given.strip().startswith(URI_PREFIX):
        return app.store.get(app.store.id_from_uri(given.strip()))
    return store_reference(app, image, role)


def result_fields(request: ImageRequest, rewrite: RewriteOutcome, made: GeneratedImages, records: list[StoredImage],
                  started: float) -> dict[str, Any]:
    """The GenerateImageResult fields, for the result model of any image tool."""
    infos = [ImageInfo(**r.ref().model_dump(), seed=r.params["seed"]) for r in records]
    timings = GenerationTimings(rewrite_s=rewrite.seconds, **made.timings, total_s=time.perf_counter() - started)
    rewriter = rewrite.rewriter
    if made.revised_prompt:  # the provider rewrote the prompt (again) and says what it used
        rewriter = f"{rewriter} + {request.spec.alias}" if rewriter else request.spec.alias
    return dict(
        **infos[0].model_dump(), images=infos, model=request.spec.alias, provider=request.spec.provider,
        steps=request.steps, guidance_scale=request.guidance_scale, scheduler=made.scheduler, prompt=request.prompt,
        revised_prompt=made.revised_prompt or request.revised_prompt, negative_prompt=request.negative_prompt,
        rewriter=rewriter, rewrite_note=rewrite.note, rewrite_error=rewrite.error, batch_size=made.batch_size,
        timings=timings,
    )


# --------------------------------------------------------------------------- checking


async def verify_images(app: AppState, infos: list[ImageInfo], prompt: str, images: list[Image.Image],
                        progress: Progress, *, align: bool = True, verify: bool | str = False) -> list[str]:
    """The checks of a result's images, into `infos[i]`; the summary's lines. With `align` (and
    PIXELMCP_ALIGNMENT on), each image is scored against the prompt; with `verify` ("caption", true, or "auto"
    where it is cheap) each is described by the vision model. Their loads and runs report to `progress`, like the
    tool's other phases."""
    lines = []
    if align and app.settings.alignment:
        lines.append(await score_alignment(app, infos, prompt, images, progress))
    if await wants_captions(app, verify):
        lines.append(await caption_images(app, infos, images, progress))
    return [line for line in lines if line]


async def score_alignment(app: AppState, infos: list[ImageInfo], prompt: str, images: list[Image.Image],
                          progress: Progress) -> str:
    """Score each image against the prompt as given (one batched pass of the similarity model) into
    `infos[i].alignment`; the summary's line. A model that cannot run leaves the scores null and says why:
    the images are never lost to their check."""
    try:
        spec, scorer = app.router.aligner()
        scores = [row[0] for row in await scorer.align(spec, images, [prompt], progress)]
    except PixelError as e:
        return f"Alignment not scored: {e}"
    for info, (score, similarity) in zip(infos, scores, strict=True):
        info.alignment = Alignment(score=score, similarity=similarity, model=spec.alias)
    words = ", ".join(f"{score:.2f} ({_alignment_words(score)})" for score, _ in scores)
    return f"Alignment with the prompt ({spec.alias}): {words}."


#: Accelerator memory (GiB) from which verify="auto" captions with a local vision model: room for the image model
#: and the VLM side by side, so a caption costs no reload.
AUTO_CAPTION_MIN_GB = 24.0


async def wants_captions(app: AppState, verify: bool | str) -> bool:
    """verify: true / "caption" always, false never; "auto" when the vision model is a provider's (no local load)
    or the local accelerator has AUTO_CAPTION_MIN_GB or more."""
    if verify is not True and verify != "caption":
        if verify != "auto":
            return False
        try:
            spec, _ = app.router.answerer(None)
        except PixelError:  # no usable vision model: "auto" does without captions
            return False
        if not spec.remote:
            pool = app.pool
            memory = pool.accelerator_memory_gb() if pool.measured else await anyio.to_thread.run_sync(
                pool.accelerator_memory_gb)
            return memory >= AUTO_CAPTION_MIN_GB
    return True


async def caption_images(app: AppState, infos: list[ImageInfo], images: list[Image.Image],
                         progress: Progress) -> str:
    """One sentence per image by the configured vision model, into `infos[i].caption`; the summary's
    lines. A vision model that cannot answer leaves the captions null and says why."""
    from pixelmcp.prompts.questions import CAPTION_QUESTION

    try:
        spec, answerer = app.router.answerer(None)
        answers = [await answerer.answer(spec, [image], CAPTION_QUESTION, CAPTION_TOKENS, progress)
                   for image in images]
    except PixelError as e:
        return f"Not captioned: {e}"
    for info, answer in zip(infos, answers, strict=True):
        info.caption = " ".join(answer.text.split())
    return "\n".join(f"Caption of {info.uri} ({spec.alias}): {info.caption}" for info in infos)


CAPTION_TOKENS = 60


#: Alignment scores from which an image "matches well" and "matches partly" (below: weakly); claims use the same.
ALIGNMENT_WELL = 0.6
ALIGNMENT_PARTLY = 0.3


def _alignment_words(score: float) -> str:
    return ("matches well" if score >= ALIGNMENT_WELL else "matches partly" if score >= ALIGNMENT_PARTLY
            else "matches weakly")
