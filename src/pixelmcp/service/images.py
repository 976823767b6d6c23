"""One image run, for every tool that makes images (generate_image, controlnet_generate, style_transfer,
edit_image, extend_image, upscale_image): rewrite the prompt -> the backend makes the images -> the original put
back where the mask keeps it -> store the images, with everything needed to make them again, and what they used
-> check them (alignment with the prompt, captions) and pick the best of the candidates. A tool checks its
arguments into an `ImageRun`, calls `make_images`, and answers with what it returns.

Storing is CPU-bound: it runs in worker threads (`AppState.encoders`), never on the event loop. A check that
cannot run (no similarity or vision model) says why in the summary: the images are never lost to their check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from PIL import Image

from pixelmcp import __version__
from pixelmcp.backends import GeneratedImages, ImageGenerator, ImageRequest, Progress
from pixelmcp.errors import PixelError, StoreError
from pixelmcp.media import editing
from pixelmcp.media.store import URI_PREFIX, ImageRef, StoredImage
from pixelmcp.service.results import Alignment, GenerationTimings, ImageInfo
from pixelmcp.service.rewriting import RewriteChoice, RewriteOutcome, rewrite_for_generation
from pixelmcp.service.state import AppState


@dataclass
class Keep:
    """An image a result used, stored with it and linked after its previews: an input (`given`, the argument as
    the caller passed it: an image of the store is its own record, not stored twice), or the control map the
    backend made (`made`)."""

    field: str  # its key in the images' stored parameters and in the result
    role: str  # what it is, stored with it ("source image", "mask", ...)
    image: Image.Image | None = None  # None: this call has none (stored as null)
    given: str | None = None
    made: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    title: str | None = None  # the link's title (default: the role); "" : not linked


@dataclass
class ImageRun:
    """An image tool's call, its arguments checked: what `make_images` needs."""

    tool: str
    request: ImageRequest  # n: the images to make, best_of candidates each
    generator: ImageGenerator
    started: float  # when the call began (perf_counter), for the timings
    params: dict[str, Any] = field(default_factory=dict)  # the tool's own parameters, stored with every image
    keep: list[Keep] = field(default_factory=list)
    rewrite: RewriteChoice = False
    revised_prompt: str | None = None
    sampled: Any = None  # the client's LLM's rewrite (MCP sampling), when asked before the call
    original: Image.Image | None = None  # each image is put back over it where `mask` is black (all: no mask)
    mask: Image.Image | None = None
    align: bool = True
    verify: bool | str = False
    best_of: int = 1


@dataclass
class MadeImages:
    """What a run made, stored and checked: the result model's fields and the summary's lines."""

    request: ImageRequest  # with the revised prompt
    images: list[Image.Image]  # the images returned (the chosen ones, for best_of)
    records: list[StoredImage]
    kept: dict[str, StoredImage | None]  # by Keep.field
    fields: dict[str, Any]  # GenerateImageResult's
    lines: list[str]  # the checks', and best_of's
    links: list[tuple[StoredImage, str]]
    made: GeneratedImages  # what the backend reported (e.g. the people a pose map shows)

    def ref(self, name: str) -> ImageRef | None:
        record = self.kept.get(name)
        return record.ref() if record is not None else None


async def make_images(app: AppState, run: ImageRun, progress: Progress) -> MadeImages:
    request, rewritten = await rewrite_for_generation(app, run.request, run.rewrite, progress, run.sampled,
                                                      run.revised_prompt)
    made = await run.generator.generate(request, progress)

    def store() -> tuple[dict[str, StoredImage | None], list[StoredImage]]:
        if run.original is not None:
            radius = editing.feather_radius(run.original.size)
            made.images = [editing.composite(run.original, image, run.mask, radius) for image in made.images]
        kept = {keep.field: _store_kept(app, keep, made.control_map) for keep in run.keep}
        params = {**run.params, **{name: record.uri if record else None for name, record in kept.items()}}
        return kept, store_images(app, run.tool, request, made, params)

    kept, records = await anyio.to_thread.run_sync(store, limiter=app.encoders)
    fields = result_fields(request, rewritten, made, records, run.started)
    links = [(kept[keep.field], keep.title or keep.role) for keep in run.keep
             if kept[keep.field] is not None and keep.title != ""]
    images, lines = made.images, []
    if run.best_of > 1:
        chosen, others, lines = await _best(app, fields, images, progress, request.n // run.best_of)
        links += [(records[i], "candidate not chosen") for i in others]
        images, records = [images[i] for i in chosen], [records[i] for i in chosen]
    lines += await verify_images(app, fields["images"], request.prompt, images, progress,
                                 align=run.align and run.best_of == 1, verify=run.verify)
    return MadeImages(request=request, images=images, records=records, kept=kept, fields=fields, lines=lines,
                      links=links, made=made)


def _store_kept(app: AppState, keep: Keep, control_map: Image.Image | None) -> StoredImage | None:
    image = control_map if keep.made else keep.image
    if image is None:
        return None
    if keep.given is not None:
        return reference_record(app, keep.given, image, keep.role)
    return store_reference(app, image, keep.role, **keep.params)


async def _best(app: AppState, fields: dict[str, Any], images: list[Image.Image], progress: Progress,
                n: int) -> tuple[list[int], list[int], list[str]]:
    """best_of: the `n` candidates that match the prompt best, first, into `fields` (the others become its
    candidates, stored, listed and linked); the chosen and the others' indices, and the summary's lines."""
    infos: list[ImageInfo] = fields["images"]
    scored = await score_alignment(app, infos, fields["prompt"], images, progress)
    if all(info.alignment is not None for info in infos):
        order = sorted(range(len(infos)), key=lambda i: (-infos[i].alignment.score, i))  # ties: the earlier seed
        how = f"Best {n} of {len(infos)} by alignment with the prompt."
    else:
        order = list(range(len(infos)))
        how = f"best_of could not rank the {len(infos)} candidates, so they are in seed order."
    chosen, others = order[:n], order[n:]
    fields.update(infos[chosen[0]].model_dump(include={"id", "uri", "path", "width", "height", "seed"}),
                  images=[infos[i] for i in chosen], candidates=[infos[i] for i in others])
    return chosen, others, [how, scored] + [_also_made(infos[i]) for i in others]


def _also_made(info: ImageInfo) -> str:
    details = ([f"seed {info.seed}"] if info.seed is not None else []) + (
        [f"alignment {info.alignment.score:.2f}"] if info.alignment is not None else [])
    return f"Also made: {info.uri}" + (f" ({', '.join(details)})" if details else "")


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
    if request.loras:
        params["loras"] = [use.record for use in request.loras]
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
        loras=[use.record for use in request.loras], timings=timings,
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
