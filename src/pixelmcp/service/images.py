"""One image run, for every tool that makes images (generate_image, controlnet_generate, style_transfer,
edit_image, extend_image, upscale_image): rewrite the prompt -> the backend makes the images -> the original put
back where the mask keeps it -> store the images and what they used (in worker threads) -> check them (and pick
the best of the candidates). A tool checks its arguments into an `ImageRun`, calls `make_images`, and answers
with what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
from PIL import Image

from pixelmcp.backends import GeneratedImages, ImageGenerator, ImageRequest, Progress
from pixelmcp.media import editing
from pixelmcp.media.store import ImageRef, StoredImage
from pixelmcp.service.results import (
    ImageInfo,
    reference_record,
    result_fields,
    score_alignment,
    store_images,
    store_reference,
    verify_images,
)
from pixelmcp.service.rewriting import RewriteChoice, rewrite_for_generation
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
