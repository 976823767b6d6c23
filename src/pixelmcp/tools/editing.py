"""edit_image, extend_image, upscale_image, vary_image and remove_background: the tools that start from an image.

Each takes any image argument (a pixelmcp:// uri, a data URI, base64, an allowed path, a URL when
enabled), works on it at a size its model accepts, and answers at the image's own size (extend
and upscale: exactly the size asked for). Where a mask keeps pixels, they are the original's
exactly: the result is blended back over the original by the mask (media/editing.py), whichever
backend made it.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Annotated, Literal

import anyio
from mcp_types import CallToolResult, TextContent
from PIL import Image
from pydantic import BaseModel, Field

from pixelmcp.backends import EditRequest, ImageRequest
from pixelmcp.catalog import ModelSpec
from pixelmcp.errors import InvalidArgument
from pixelmcp.media import editing
from pixelmcp.media.store import URI_PREFIX, ImageRef, StoredImage, UnknownImageError
from pixelmcp.service import checks
from pixelmcp.service.images import ImageRun, Keep, make_images, reference_record
from pixelmcp.service.loras import LoraChoice
from pixelmcp.service.results import GenerateImageResult, Timings
from pixelmcp.service.rewriting import RewriteChoice
from pixelmcp.service.state import AppState
from pixelmcp.tools.arguments import (
    GuidanceArg,
    ImageArg,
    LorasArg,
    ModelArg,
    NArg,
    NegativePromptArg,
    SeedArg,
    StepsArg,
    VerifyArg,
    integer,
    number,
)
from pixelmcp.tools.context import AppContext, app_state
from pixelmcp.tools.results import ProgressReporter, answer, image_blocks, wants_links
from pixelmcp.tools.rewriting import RevisedPromptArg, SampledArg

UPSCALE_FACTORS = (2, 4)
#: vary_image's strength when none is given: close variations.
DEFAULT_VARIATION = 0.35
#: The tools whose images vary_image can vary (they store a prompt, a model and settings).
VARIABLE_TOOLS = frozenset({"generate_image", "controlnet_generate", "style_transfer", "edit_image", "extend_image",
                            "upscale_image", "vary_image"})
DEFAULT_UPSCALE_STRENGTH = 0.3
#: What upscaling asks the model for when no prompt is given: detail that fits what is already there.
DEFAULT_UPSCALE_PROMPT = "high quality, sharp focus, fine detail"
#: A pixel belongs to a mask_prompt's area when the segmenter is at least this sure (0..1).
MASK_PROMPT_LEVEL = 0.4
#: remove_background keeps this when no subject is named.
DEFAULT_SUBJECT = "the main subject"
#: Cut-out alpha ramps from 0 to 1 over this band of segmenter scores (soft, but no haze far from the subject).
CUTOUT_RAMP = (0.25, 0.75)

EditPromptArg = Annotated[str, Field(description="What the result (or the repainted area) should show.")]
EditRewriteArg = Annotated[
    RewriteChoice,
    Field(description="Expand the prompt with an LLM first."),
]
StrengthArg = Annotated[
    number(above=0, high=1) | None,
    Field(description="How much may change: 0.3 touches up, 1 repaints; default 0.75, 1 in a mask."),
]
SideArg = Annotated[integer(0), Field(description="Pixels to add on this side.")]


class EditImageResult(GenerateImageResult):
    mode: Literal["image-to-image", "inpaint"]
    strength: float | None = Field(description="how much could change (null: the provider decided)")
    source_image: ImageRef = Field(description="the image that was edited")
    mask: ImageRef | None = Field(None, description="the mask that was used (white = repainted), when inpainting")
    mask_prompt: str | None = Field(None, description="the words the mask was made from")
    mask_coverage: float | None = Field(None, description="share of the image's pixels the mask repainted")


class ExtendImageResult(GenerateImageResult):
    left: int
    right: int
    top: int
    bottom: int
    source_image: ImageRef = Field(description="the image that was extended (placed unchanged in the result)")
    mask: ImageRef = Field(description="the new border that was generated (white)")


class VaryImageResult(GenerateImageResult):
    strength: float | None = Field(description="how far each could stray from the parent (null: the provider decided)")
    source_image: ImageRef = Field(description="the parent: the image these are variations of")


class UpscaleImageResult(GenerateImageResult):
    scale: int
    strength: float = Field(description="how much the model could change each tile")
    source_image: ImageRef = Field(description="the image that was upscaled")


class RemoveBackgroundResult(BaseModel):
    id: str
    uri: str
    path: str = Field(description="the RGBA PNG: the image's colours, the subject's mask as alpha")
    width: int
    height: int
    model: str = Field(description="the segmenter that found the subject")
    subject: str = Field(description="what was kept")
    coverage: float = Field(description="share of the pixels that are mostly opaque (alpha at least 0.5)")
    source_image: ImageRef
    timings: Timings


# --------------------------------------------------------------------------- tools


async def edit_image(
    image: ImageArg,
    prompt: EditPromptArg,
    ctx: AppContext,
    mask: Annotated[
        str | None, Field(description="Where to repaint: an image, white to repaint, black to keep (any size).")
    ] = None,
    mask_prompt: Annotated[
        str | None, Field(description="Where to repaint, in words (e.g. 'the sky'), instead of mask.")
    ] = None,
    strength: StrengthArg = None,
    negative_prompt: NegativePromptArg = None,
    model: ModelArg = None,
    steps: StepsArg = None,
    guidance_scale: GuidanceArg = None,
    seed: SeedArg = None,
    n: NArg = 1,
    loras: LorasArg = None,
    rewrite: EditRewriteArg = False,
    verify: VerifyArg = "auto",
    revised_prompt: RevisedPromptArg = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, EditImageResult]:
    """Edit an image: all of it (strength says how much), or only a mask's area (mask image or mask_prompt words),
    the rest kept exactly."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    _check_edits(spec, "edit_image")
    if mask is not None and mask_prompt is not None:
        raise InvalidArgument("mask_prompt", mask_prompt, "was given together with mask (the area to repaint comes "
                              "from one of them)", "Pass either mask (an image) or mask_prompt (words), not both.")
    if mask_prompt is not None and not mask_prompt.strip():
        raise InvalidArgument("mask_prompt", mask_prompt, "is empty", "Name the area to repaint, e.g. 'the sky', "
                              "or omit mask_prompt to change the whole image.")
    mask_prompt = checks.check_text("mask_prompt", mask_prompt, app.settings, required=False)
    inpaint = mask is not None or mask_prompt is not None
    segmenter = app.router.segmenter() if mask_prompt is not None else None
    source = await app.load_image(image, "image")
    mask_image = (await anyio.to_thread.run_sync(_checked_mask, await app.load_image(mask, "mask"), source)
                  if mask is not None else None)
    request = _edit_request(app, spec, source, mask_image, prompt=prompt, negative_prompt=negative_prompt,
                            steps=steps, guidance_scale=guidance_scale, seed=seed, n=n, loras=loras,
                            strength=_check_strength(strength, spec, inpaint))
    progress = ProgressReporter(ctx)
    if segmenter is not None:  # the mask from words
        segmenter_spec, backend = segmenter
        (scores,) = await backend.segment(segmenter_spec, source, [mask_prompt], progress)
        mask_image = await anyio.to_thread.run_sync(_mask_from_scores, scores, mask_prompt)
        request = replace(request, edit=replace(request.edit, mask=mask_image))
    coverage = await anyio.to_thread.run_sync(editing.coverage, mask_image) if mask_image is not None else None
    done = await make_images(app, ImageRun(
        "edit_image", request, generator, started, rewrite=rewrite, revised_prompt=revised_prompt, sampled=sampled,
        verify=verify, original=source, mask=mask_image,
        params=dict(width=source.width, height=source.height, strength=request.edit.strength, mask_prompt=mask_prompt),
        keep=[Keep("source_image", "source image", source, given=image),
              Keep("mask", "mask", mask_image, params=dict(mask_prompt=mask_prompt))],
    ), progress)
    result = EditImageResult(**done.fields, mode="inpaint" if inpaint else "image-to-image",
                             strength=request.edit.strength, source_image=done.ref("source_image"),
                             mask=done.ref("mask"), mask_prompt=mask_prompt, mask_coverage=coverage)
    mask_line = (f" within the mask {result.mask.uri}" if result.mask else "") + (
        f" (made from {mask_prompt!r}, {coverage:.0%} of the image)" if mask_prompt else "")
    strength_line = f"; strength {request.edit.strength}." if request.edit.strength is not None else "."
    return await answer(ctx, result, done, lines=[f"Edited {result.source_image.uri}{mask_line}{strength_line}"],
                        verb="Edited")


async def extend_image(
    image: ImageArg,
    prompt: Annotated[str, Field(description="What the whole, larger picture shows.")],
    ctx: AppContext,
    left: SideArg = 0,
    right: SideArg = 0,
    top: SideArg = 0,
    bottom: SideArg = 0,
    negative_prompt: NegativePromptArg = None,
    model: ModelArg = None,
    steps: StepsArg = None,
    guidance_scale: GuidanceArg = None,
    seed: SeedArg = None,
    n: NArg = 1,
    loras: LorasArg = None,
    rewrite: EditRewriteArg = False,
    verify: VerifyArg = "auto",
    revised_prompt: RevisedPromptArg = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, ExtendImageResult]:
    """Extend an image (outpainting): the original kept unchanged, a new border generated around it."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    _check_edits(spec, "extend_image")
    sides = {"left": left, "right": right, "top": top, "bottom": bottom}
    if not any(sides.values()):
        raise InvalidArgument("left", left, "nothing to add: left, right, top and bottom are all 0",
                              "Pass the pixels to add on at least one side, e.g. right=256.")
    source = await app.load_image(image, "image")
    size = (source.width + left + right, source.height + top + bottom)
    widest = max(sides, key=sides.get)
    _check_output_size(app, size, widest, sides[widest], "Add fewer pixels, or extend a smaller image")
    canvas, border = await anyio.to_thread.run_sync(editing.extended_canvas, source, left, right, top, bottom)
    request = _edit_request(app, spec, canvas, border, prompt=prompt, negative_prompt=negative_prompt, steps=steps,
                            guidance_scale=guidance_scale, seed=seed, n=n, strength=None if spec.remote else 1.0,
                            loras=loras)
    done = await make_images(app, ImageRun(
        "extend_image", request, generator, started, rewrite=rewrite, revised_prompt=revised_prompt, sampled=sampled,
        verify=verify, original=canvas, mask=border, params=dict(width=size[0], height=size[1], **sides),
        keep=[Keep("source_image", "source image", source, given=image),
              Keep("mask", "outpainting mask", border, params=sides)],
    ), ProgressReporter(ctx))
    result = ExtendImageResult(**done.fields, **sides, source_image=done.ref("source_image"), mask=done.ref("mask"))
    added = ", ".join(f"{name} +{value}" for name, value in sides.items() if value)
    return await answer(ctx, result, done, verb="Extended", lines=[
        f"Extended {result.source_image.uri} ({source.width}x{source.height}; {added}); new border: {result.mask.uri}"])


async def upscale_image(
    image: ImageArg,
    ctx: AppContext,
    scale: Annotated[integer(2, 4), Field(description="2 or 4.")] = 2,
    prompt: Annotated[
        str | None, Field(description="What it shows (guides the added detail).")
    ] = None,
    strength: Annotated[
        number(above=0, high=1) | None,
        Field(description=f"How much each tile may be redrawn; default {DEFAULT_UPSCALE_STRENGTH}."),
    ] = None,
    negative_prompt: NegativePromptArg = None,
    model: ModelArg = None,
    steps: StepsArg = None,
    guidance_scale: GuidanceArg = None,
    seed: SeedArg = None,
    loras: LorasArg = None,
) -> Annotated[CallToolResult, UpscaleImageResult]:
    """Upscale an image exactly 2x or 4x: enlarged, then refined tile by tile by a local diffusion model."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    if spec.remote:
        local = sorted(a for a, s in app.settings.catalog.items() if s.task == "generate")
        raise InvalidArgument("model", spec.alias, "upscaling runs on local diffusion models (tiled image-to-image)",
                              f"Omit model, or use one of: {', '.join(local)}.")
    if scale not in UPSCALE_FACTORS:
        raise InvalidArgument("scale", scale, "is not an upscaling factor this tool makes; accepted: 2 or 4",
                              "Pass scale=2 or scale=4 (call twice with 2 and 4 for 8x).")
    strength = DEFAULT_UPSCALE_STRENGTH if strength is None else strength
    _check_strength(strength, spec, inpaint=False)
    source = await app.load_image(image, "image")
    size = (source.width * scale, source.height * scale)
    _check_output_size(app, size, "scale", scale, "Use scale=2, or upscale a smaller image")
    enlarged = await anyio.to_thread.run_sync(source.resize, size, Image.Resampling.LANCZOS)
    request = _edit_request(app, spec, enlarged, None, prompt=prompt or DEFAULT_UPSCALE_PROMPT,
                            negative_prompt=negative_prompt, steps=steps, guidance_scale=guidance_scale, seed=seed,
                            n=1, strength=strength, tile=spec.default_width, loras=loras)
    done = await make_images(app, ImageRun(
        "upscale_image", request, generator, started, original=enlarged, align=prompt is not None,
        params=dict(width=size[0], height=size[1], scale=scale, strength=strength),
        keep=[Keep("source_image", "source image", source, given=image)],
    ), ProgressReporter(ctx))
    result = UpscaleImageResult(**done.fields, scale=scale, strength=strength, source_image=done.ref("source_image"))
    line = (f"Upscaled {result.source_image.uri} {scale}x ({source.width}x{source.height} -> {size[0]}x{size[1]}), "
            f"strength {strength}.")
    return await answer(ctx, result, done, lines=[line], verb="Upscaled")


async def vary_image(
    image: Annotated[str, Field(description="A pixelmcp:// uri of an image this server made.")],
    ctx: AppContext,
    n: NArg = 4,
    strength: Annotated[
        number(above=0, high=1) | None, Field(description=f"How far each may stray; default {DEFAULT_VARIATION}.")
    ] = None,
    seed: SeedArg = None,
    verify: VerifyArg = "auto",
) -> Annotated[CallToolResult, VaryImageResult]:
    """New takes of an image this server made: its prompt, model and settings with new seeds, each changed by up to
    strength; each records its parent."""
    app = app_state(ctx)
    started = time.perf_counter()
    parent = _parent_of(app, image)
    made_with = parent.params
    spec, generator = await app.router.generator(made_with["model"])
    _check_edits(spec, "vary_image")
    strength = _check_strength(DEFAULT_VARIATION if strength is None and not spec.remote else strength, spec,
                               inpaint=False)
    source = await app.load_image(image, "image")
    request = _edit_request(app, spec, source, None, prompt=made_with["prompt"], seed=seed, n=n, strength=strength,
                            negative_prompt=made_with.get("negative_prompt"), steps=made_with.get("steps"),
                            guidance_scale=made_with.get("guidance_scale"), loras=_parent_loras(made_with))
    done = await make_images(app, ImageRun(
        "vary_image", request, generator, started, revised_prompt=made_with.get("revised_prompt"), verify=verify,
        original=source, params=dict(width=source.width, height=source.height, strength=strength),
        keep=[Keep("source_image", "source image", source, given=image, title="parent")],
    ), ProgressReporter(ctx))
    result = VaryImageResult(**done.fields, strength=strength, source_image=done.ref("source_image"))
    how = f", strength {strength}" if strength is not None else ""
    return await answer(ctx, result, done, verb="Varied", lines=[
        f"Variations of {parent.uri} with its prompt and {spec.alias}{how}."])


async def remove_background(
    image: ImageArg,
    ctx: AppContext,
    subject: Annotated[
        str | None, Field(description=f"What to keep, e.g. 'the dog'; default '{DEFAULT_SUBJECT}'.")
    ] = None,
) -> Annotated[CallToolResult, RemoveBackgroundResult]:
    """Cut the subject out of an image: an RGBA PNG whose alpha is the subject's mask, at the image's size."""
    app = app_state(ctx)
    started = time.perf_counter()
    if subject is not None and not subject.strip():
        raise InvalidArgument("subject", subject, "is empty",
                              f"Name what to keep, or omit subject ('{DEFAULT_SUBJECT}').")
    subject = checks.check_text("subject", subject, app.settings, required=False) or DEFAULT_SUBJECT
    spec, segmenter = app.router.segmenter()
    source = await app.load_image(image, "image")
    app.store.check_writable(source.width * source.height * 4 + 65536)
    (scores,) = await segmenter.segment(spec, source, [subject], ProgressReporter(ctx))
    alpha, found, best = await anyio.to_thread.run_sync(_cutout_alpha, scores)
    if found < editing.MASK_LEVEL:
        raise InvalidArgument("subject", subject, f"was not found in the image (the segmenter's highest score was "
                              f"{best / 255:.2f}; {CUTOUT_RAMP[1]} is sure)",
                              "Name the subject to keep in other words, e.g. subject='the cat on the sofa'.")

    def store() -> tuple[StoredImage, StoredImage, Image.Image, float]:
        rgba = editing.cutout(source, alpha)
        source_record = reference_record(app, image, source, "source image")
        record = app.store.save(rgba, dict(tool="remove_background", model=spec.alias, subject=subject,
                                           prompt=subject, width=source.width, height=source.height,
                                           source_image=source_record.uri))
        return record, source_record, editing.on_checkerboard(rgba), editing.coverage(alpha)

    record, source_record, preview, coverage = await anyio.to_thread.run_sync(store, limiter=app.encoders)
    result = RemoveBackgroundResult(
        **record.ref().model_dump(), model=spec.alias, subject=subject, coverage=coverage,
        source_image=source_record.ref(), timings=Timings(total_s=time.perf_counter() - started),
    )
    blocks = await anyio.to_thread.run_sync(image_blocks, [record], [preview], app.settings, wants_links(ctx),
                                            limiter=app.encoders)
    text = (f"Cut out {subject!r} from {source_record.uri} with {spec.alias}: {record.uri} saved at {record.path} "
            f"({record.width}x{record.height} RGBA, {result.coverage:.0%} opaque; the preview shows it over a "
            "checkerboard).")
    return CallToolResult(content=[*blocks, TextContent(type="text", text=text)],
                          structured_content=result.model_dump(mode="json"))


# --------------------------------------------------------------------------- checks


def _parent_of(app: AppState, image: str):
    """The stored record of the image to vary: one this server made with a generation tool."""
    value = image.strip()
    if not value.startswith(URI_PREFIX):
        raise InvalidArgument("image", image, "is not a pixelmcp:// uri: a variation reuses the prompt, model and "
                              "settings stored with an image this server made",
                              "Pass the uri a tool result gave; for an image of your own, use edit_image.")
    try:
        record = app.store.get(app.store.id_from_uri(value))
    except UnknownImageError as e:
        raise InvalidArgument("image", image, str(e), "Use a uri exactly as an earlier tool result gave it.") from e
    if record.params.get("tool") not in VARIABLE_TOOLS:
        what = record.params.get("tool") or record.params.get("role") or "unknown"
        raise InvalidArgument("image", image, f"was not made by a generation tool ({what}), so it has no prompt and "
                              "settings to reuse", "Pass an image generate_image or an edit made; for other "
                              "images, use edit_image with a prompt.")
    return record


def _parent_loras(params: dict) -> list[LoraChoice] | None:
    """The LoRAs an image was made with, as its variations apply them again."""
    stored = params.get("loras") or []
    return [LoraChoice(name=entry["name"], weight=entry["weight"]) for entry in stored] or None


def _check_edits(spec: ModelSpec, tool: str) -> None:
    """Local diffusion models all edit; of the providers' models, those that edit given images."""
    if spec.remote and not spec.takes_reference:
        raise InvalidArgument("model", spec.alias, f"does not edit images, which {tool} needs",
                              "Use a local model (list_models), openai:gpt-image-1, or a gemini image model "
                              "(e.g. gemini:gemini-2.5-flash-image).")


def _check_strength(value: float | None, spec: ModelSpec, inpaint: bool) -> float | None:
    """`strength` as given (or the default), in (0, 1]; providers decide it themselves."""
    if spec.remote:
        if value is not None:
            raise InvalidArgument("strength", value, f"model {spec.alias!r} decides itself how much changes",
                                  "Omit strength; say in the prompt how much to change.")
        return None
    if value is None:
        return 1.0 if inpaint else spec.default_strength
    return value


def _check_steps_run(request: ImageRequest) -> None:
    """Image-to-image runs steps x strength steps: at least one must run."""
    edit = request.edit
    if request.steps is None or edit.strength is None or int(request.steps * edit.strength) >= 1:
        return
    raise InvalidArgument(
        "strength", edit.strength, f"with steps={request.steps} runs no denoising step (steps x strength is below 1)",
        f"Raise strength to at least {math.ceil(100 / request.steps) / 100} or steps to at least "
        f"{math.ceil(1 / edit.strength)}.",
    )


def _check_output_size(app: AppState, size: tuple[int, int], argument: str, value: int, fix: str) -> None:
    limit = app.settings.max_output_pixels
    if size[0] * size[1] > limit:
        raise InvalidArgument(argument, value, f"would make a {size[0]}x{size[1]} image ({size[0] * size[1]:,} "
                              f"pixels), over this server's limit of {limit:,}",
                              f"{fix} (or raise PIXELMCP_MAX_OUTPUT_PIXELS).")


def _checked_mask(mask: Image.Image, source: Image.Image) -> Image.Image:
    """The mask at the image's size (luminance; white = repaint); an empty one is refused."""
    fitted = editing.fitted_mask(mask, source.size)
    if fitted is None:
        raise InvalidArgument(
            "mask", f"<{mask.width}x{mask.height} image>",
            f"is empty: no pixel is light enough to repaint (white, or at least {editing.MASK_LEVEL} of 255)",
            "Paint the area to change white and the rest black, or omit mask to change the whole image.",
        )
    return fitted


def _cutout_alpha(scores: Image.Image) -> tuple[Image.Image, int, int]:
    """The segmenter's scores as alpha (media/editing.py), the alpha's highest level and the scores' highest."""
    alpha, highest = editing.alpha_from_scores(scores, CUTOUT_RAMP)
    return alpha, highest, scores.getextrema()[1]


def _mask_from_scores(scores: Image.Image, mask_prompt: str) -> Image.Image:
    """The segmenter's scores as a mask (media/editing.py); nothing sure enough is refused."""
    mask = editing.mask_from_scores(scores, MASK_PROMPT_LEVEL)
    if mask is None:
        raise InvalidArgument(
            "mask_prompt", mask_prompt, f"matched nothing in the image (the segmenter's highest score was "
            f"{scores.getextrema()[1] / 255:.2f}; {MASK_PROMPT_LEVEL} is needed)",
            "Name the area in other words (e.g. 'the sky', 'the red car'), or pass a mask image.",
        )
    return mask


# --------------------------------------------------------------------------- the request and the result


def _edit_request(app: AppState, spec: ModelSpec, image: Image.Image, mask: Image.Image | None, *, prompt: str,
                  negative_prompt: str | None, steps: int | None, guidance_scale: float | None, seed: int | None,
                  n: int, strength: float | None, tile: int | None = None,
                  loras: list[LoraChoice] | None = None) -> ImageRequest:
    """The ImageRequest of an edit of `image`: the size the model works at follows the image (tiles: the image's
    own size), and every shared argument is checked as generate_image checks it."""
    if tile is not None:
        work = image.size
    elif spec.sizes:
        work = image.size  # a provider's listed size nearest the image's aspect ratio (check_size picks it)
    else:
        work = checks.size_following(image, None, None, spec, "image")
    request = checks.check_image_request(
        app.settings, app.store, spec, prompt=prompt, negative_prompt=negative_prompt, width=None, height=None,
        steps=steps, guidance_scale=guidance_scale, seed=seed, n=n, default_size=work, loras=loras,
    )
    request = replace(request, edit=EditRequest(image=image, mask=mask, strength=strength, tile=tile))
    _check_steps_run(request)
    return request
