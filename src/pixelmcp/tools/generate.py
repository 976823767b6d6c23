"""generate_image and rewrite_prompt."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Literal

from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from pixelmcp import __version__
from pixelmcp.backends import ImageRequest, PromptRewriter, RewriteFailed
from pixelmcp.errors import InvalidArgument, PixelError
from pixelmcp.server.state import AppState, app_state
from pixelmcp.tools import arguments
from pixelmcp.tools.results import ProgressReporter, image_blocks

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- result shapes


class ImageInfo(BaseModel):
    id: str
    uri: str = Field(description="pixelmcp://images/{id}: readable as a resource, usable as an image input")
    path: str = Field(description="the PNG on the server's disk")
    width: int
    height: int
    seed: int = Field(description="re-running with this seed and n=1 gives the same pixels")


class Timings(BaseModel):
    rewrite_s: float = 0.0
    queue_s: float = 0.0
    load_s: float = 0.0
    run_s: float = 0.0
    total_s: float = 0.0


class RewriteResult(BaseModel):
    revised_prompt: str
    rewriter: str
    cached: bool = Field(description="answered from the rewriter's cache (same prompt and style)")


class GenerateImageResult(BaseModel):
    id: str = Field(description="id of the first image (same as images[0].id)")
    uri: str
    path: str
    width: int
    height: int
    seed: int = Field(description="seed of the first image; image i used seed + i")
    images: list[ImageInfo]
    model: str
    steps: int
    guidance_scale: float
    scheduler: str
    prompt: str = Field(description="the prompt as given")
    revised_prompt: str | None = Field(description="the rewritten prompt the model received, or null if not rewritten")
    negative_prompt: str | None
    rewrite_error: str | None = Field(None, description="why a requested rewrite did not happen")
    timings: Timings


# --------------------------------------------------------------------------- tools


async def generate_image(
    prompt: Annotated[str, Field(description="What the image should show.")],
    ctx: Context,
    negative_prompt: Annotated[
        str | None, Field(description="What to keep out of the image (models with guidance only).")
    ] = None,
    model: Annotated[
        str | None, Field(description="Model alias from the server's catalog (e.g. sdxl, flux-schnell); default from config.")
    ] = None,
    width: Annotated[int | None, Field(description="Width in px; a multiple of 8 (16 for SD3/FLUX). Default per model.")] = None,
    height: Annotated[int | None, Field(description="Height in px; same rules as width. Default per model.")] = None,
    steps: Annotated[int | None, Field(description="Denoising steps. Default per model.")] = None,
    guidance_scale: Annotated[float | None, Field(description="Prompt adherence (CFG). Default per model.")] = None,
    seed: Annotated[
        int | None, Field(description="0..4294967295. Same seed and arguments give the same image; omit for random.")
    ] = None,
    n: Annotated[int, Field(description="Number of images; image i uses seed + i.")] = 1,
    rewrite: Annotated[
        bool | Literal["auto"],
        Field(description="Expand the prompt with an LLM first: true, false, or 'auto' (short prompts only)."),
    ] = "auto",
) -> Annotated[CallToolResult, GenerateImageResult]:
    """Generate images from a text prompt on the server's GPU. Returns a preview plus a pixelmcp:// link to
    each full PNG; a short prompt may first be expanded by an LLM, and the revised prompt is returned."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    prompt = arguments.check_text("prompt", prompt, app.settings, required=True)
    width = arguments.check_side("width", width, spec.default_width, spec)
    height = arguments.check_side("height", height, spec.default_height, spec)
    steps = arguments.check_steps(steps, spec)
    guidance = arguments.check_guidance(guidance_scale, spec)
    negative = arguments.check_text("negative_prompt", negative_prompt, app.settings, required=False)
    negative = arguments.check_negative_prompt(negative, guidance, spec)
    n = arguments.check_n(n, app.settings)
    seed = arguments.check_seed(seed)
    progress = ProgressReporter(ctx)

    # 2. Rewrite the prompt, if asked; a failed rewrite falls back to the prompt as given.
    revised, rewrite_error, rewrite_s = None, None, 0.0
    if _wants_rewrite(rewrite, prompt, app):
        rewrite_started = time.perf_counter()
        try:
            result = await _rewrite(app.router.rewriter(), prompt, None, progress)
            revised = result.revised_prompt
        except (RewriteFailed, PixelError) as e:
            rewrite_error = str(e)
            logger.warning("rewrite failed, using the original prompt: %s", e)
        rewrite_s = time.perf_counter() - rewrite_started

    # 3. Generate.
    request = ImageRequest(
        prompt=revised or prompt,
        negative_prompt=negative,
        width=width,
        height=height,
        steps=steps,
        guidance_scale=guidance,
        seeds=tuple(seed + i for i in range(n)),
    )
    batch = await generator.generate(spec, request, progress)

    # 4. Store every image with everything needed to make it again.
    params = dict(
        tool="generate_image", model=spec.alias, source=spec.source, prompt=prompt, revised_prompt=revised,
        negative_prompt=negative, width=width, height=height, steps=steps, guidance_scale=guidance,
        scheduler=batch.scheduler, device=batch.device, n=n, pixelmcp_version=__version__,
    )
    records = [app.store.save(image, {**params, "seed": s}) for image, s in zip(batch.images, request.seeds, strict=True)]

    # 5. Answer: previews + links for the client, structured content for programs.
    timings = Timings(rewrite_s=rewrite_s, **batch.timings, total_s=time.perf_counter() - started)
    infos = [ImageInfo(id=r.id, uri=r.uri, path=r.path, width=r.width, height=r.height, seed=r.params["seed"])
             for r in records]
    structured = GenerateImageResult(
        **infos[0].model_dump(), images=infos, model=spec.alias, steps=steps, guidance_scale=guidance,
        scheduler=batch.scheduler, prompt=prompt, revised_prompt=revised, negative_prompt=negative,
        rewrite_error=rewrite_error, timings=timings,
    )
    summary = _summary(structured)
    return CallToolResult(
        content=[*image_blocks(records, batch.images, app.settings), TextContent(type="text", text=summary)],
        structured_content=structured.model_dump(mode="json"),
    )


async def rewrite_prompt(
    prompt: Annotated[str, Field(description="The terse prompt to expand.")],
    ctx: Context,
    style: Annotated[str | None, Field(description="Optional style to follow, e.g. 'watercolour', 'film noir'.")] = None,
    model: Annotated[str | None, Field(description="Rewriter LLM alias from the catalog; default from config.")] = None,
) -> RewriteResult:
    """Expand a terse image prompt into a detailed one (subject, setting, composition, lighting, medium) without
    changing what was asked for. Use it to preview or edit the prompt before calling generate_image."""
    app = app_state(ctx)
    prompt = arguments.check_text("prompt", prompt, app.settings, required=True)
    style = arguments.check_text("style", style, app.settings, required=False)
    rewriter = app.router.rewriter(model)
    if rewriter is None:
        raise PixelError(
            "Prompt rewriting is switched off on this server (PIXELMCP_REWRITER=none). "
            "Pass a model alias to use a local rewriter anyway, or write the detailed prompt yourself."
        )
    try:
        return await _rewrite(rewriter, prompt, style, ProgressReporter(ctx))
    except RewriteFailed as e:
        raise PixelError(f"{e}. Try again with a different wording or another rewriter model.") from e


# --------------------------------------------------------------------------- helpers


def _wants_rewrite(rewrite: bool | str, prompt: str, app: AppState) -> bool:
    if rewrite is True:
        return True  # a missing rewriter is reported as rewrite_error, not silently skipped
    if rewrite is False:
        return False
    if rewrite != "auto":
        raise InvalidArgument("rewrite", rewrite, "must be true, false or 'auto'", "Pass one of those.")
    return app.settings.rewriter != "none" and len(prompt.split()) <= app.settings.rewrite_auto_max_words


async def _rewrite(rewriter: PromptRewriter | None, prompt: str, style: str | None, progress) -> RewriteResult:
    if rewriter is None:
        raise RewriteFailed("prompt rewriting is switched off on this server (PIXELMCP_REWRITER=none)")
    result = await rewriter.rewrite(prompt, style=style, progress=progress)
    return RewriteResult(revised_prompt=result.text, rewriter=result.rewriter, cached=result.cached)


def _summary(result: GenerateImageResult) -> str:
    lines = [
        f"Generated {len(result.images)} image(s) with {result.model}: {result.width}x{result.height}, "
        f"{result.steps} steps, guidance {result.guidance_scale}, seed {result.seed}."
    ]
    lines += [f"- {image.uri} (seed {image.seed}) saved at {image.path}" for image in result.images]
    if result.revised_prompt:
        lines.append(f"Revised prompt: {result.revised_prompt}")
    if result.rewrite_error:
        lines.append(f"Prompt not rewritten: {result.rewrite_error}")
    return "\n".join(lines)
