"""generate_image and rewrite_prompt."""

from __future__ import annotations

import time
from typing import Annotated

import anyio
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, CreateMessageResult
from pydantic import BaseModel, Field

from pixelmcp.backends import RewriteFailed
from pixelmcp.errors import InvalidArgument, PixelError
from pixelmcp.media.store import StoredImage
from pixelmcp.tools import arguments
from pixelmcp.tools.arguments import (
    GuidanceArg,
    HeightArg,
    ModelArg,
    NArg,
    NegativePromptArg,
    PromptArg,
    RewriteArg,
    SeedArg,
    StepsArg,
    VerifyArg,
    WidthArg,
)
from pixelmcp.tools.results import (
    GenerateImageResult,
    ProgressReporter,
    result_fields,
    score_alignment,
    store_images,
    tool_result,
    verify_images,
)
from pixelmcp.tools.rewriting import (
    RevisedPromptArg,
    SampledArg,
    rewrite_for_generation,
    run_rewriter,
    sample_rewrite,
)
from pixelmcp.tools.state import AppContext, app_state

MAX_BEST_OF = 4


class RewriteResult(BaseModel):
    revised_prompt: str
    rewriter: str = Field(description="the model that wrote it: a catalog alias, provider:model, or sampling:MODEL")
    cached: bool = Field(description="answered from the rewriter's cache (same prompt and style)")
    note: str | None = Field(None, description="e.g. why another rewriter than the configured one answered")


async def generate_image(
    prompt: PromptArg,
    ctx: AppContext,
    negative_prompt: NegativePromptArg = None,
    model: ModelArg = None,
    width: WidthArg = None,
    height: HeightArg = None,
    steps: StepsArg = None,
    guidance_scale: GuidanceArg = None,
    seed: SeedArg = None,
    n: NArg = 1,
    rewrite: RewriteArg = "auto",
    best_of: Annotated[
        int, Field(description="1..4 candidates per image; the best by alignment is returned, the others linked.")
    ] = 1,
    verify: VerifyArg = "auto",
    revised_prompt: RevisedPromptArg = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, GenerateImageResult]:
    """Generate images from a prompt (local GPU, or provider:model): previews and pixelmcp:// links, each scored
    against the prompt; a short prompt may be expanded first (revised_prompt)."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    _check_best_of(app.settings, best_of, n)
    request = arguments.check_image_request(
        app.settings, app.store, spec, prompt=prompt, negative_prompt=negative_prompt, width=width, height=height,
        steps=steps, guidance_scale=guidance_scale, seed=seed, n=n * best_of,
    )
    progress = ProgressReporter(ctx)

    # 2. Rewrite the prompt, if asked; a failed rewrite falls back to the prompt as given.
    request, rewritten = await rewrite_for_generation(app, request, rewrite, progress, sampled,
                                                      revised_prompt)

    # 3. Generate.
    made = await generator.generate(request, progress)

    # 4. Store and answer (encoding runs in worker threads, never on the event loop).
    records = await anyio.to_thread.run_sync(lambda: store_images(app, "generate_image", request, made, {}),
                                             limiter=app.encoders)
    result = GenerateImageResult(**result_fields(request, rewritten, made, records, started))
    if best_of > 1:
        return await _best_of(app, result, records, made.images, n, verify, progress)
    checks = await verify_images(app, result, made.images, progress, verify=verify)
    return await tool_result(app, result, records, made.images, lines=checks)


async def _best_of(app, result: GenerateImageResult, records: list[StoredImage], images: list, n: int,
                   verify: bool | str, progress: ProgressReporter):
    """The `n` candidates that match the prompt best, first; the others stay stored, listed and linked."""
    scored = await score_alignment(app, result, images, progress)
    infos = list(result.images)
    if all(info.alignment is not None for info in infos):
        order = sorted(range(len(infos)), key=lambda i: (-infos[i].alignment.score, i))  # ties: the earlier seed
        how = f"Best {n} of {len(infos)} by alignment with the prompt."
    else:
        order = list(range(len(infos)))
        how = f"best_of could not rank the {len(infos)} candidates, so they are in seed order."
    chosen, others = order[:n], order[n:]
    result = result.model_copy(update={**infos[chosen[0]].model_dump(include={"id", "uri", "path", "width", "height",
                                                                               "seed"}),
                                       "images": [infos[i] for i in chosen], "candidates": [infos[i] for i in others]})
    chosen_images = [images[i] for i in chosen]
    checks = await verify_images(app, result, chosen_images, progress, align=False, verify=verify)
    lines = [how, scored] + [_also_made(infos[i]) for i in others] + checks
    links = [(records[i], "candidate not chosen") for i in others]
    return await tool_result(app, result, [records[i] for i in chosen], chosen_images, lines=lines, links=links)


def _also_made(info) -> str:
    details = ([f"seed {info.seed}"] if info.seed is not None else []) + (
        [f"alignment {info.alignment.score:.2f}"] if info.alignment is not None else [])
    return f"Also made: {info.uri}" + (f" ({', '.join(details)})" if details else "")


def _check_best_of(settings, best_of: int, n: int) -> None:
    if not 1 <= best_of <= MAX_BEST_OF:
        raise InvalidArgument("best_of", best_of, f"out of range; accepted: 1..{MAX_BEST_OF}",
                              "Use best_of=2..4 to pick the best of that many candidates, or 1 for none.")
    if best_of > 1 and not settings.alignment:
        raise InvalidArgument("best_of", best_of, "ranks candidates by alignment, which this server does not score "
                                                  "(PIXELMCP_ALIGNMENT=false)",
                              "Omit best_of, or enable PIXELMCP_ALIGNMENT.")
    if best_of > 1 and n * best_of > settings.max_images:  # (n alone: checked with the other arguments)
        raise InvalidArgument("best_of", best_of, f"with n={n} makes {n * best_of} images, over the limit of "
                                                  f"{settings.max_images} per call",
                              f"Lower n or best_of so that n x best_of <= {settings.max_images} (or raise "
                              "PIXELMCP_MAX_IMAGES).")


async def rewrite_prompt(
    prompt: Annotated[str, Field(description="The terse prompt to expand.")],
    ctx: AppContext,
    style: Annotated[str | None, Field(description="Optional style to follow, e.g. 'watercolour', 'film noir'.")] = None,
    model: Annotated[
        str | None,
        Field(description="Rewriter: a catalog LLM alias, provider:model (e.g. openai:gpt-4.1-mini), or 'sampling' "
                          "(your own model, if the client offers MCP sampling); default from config."),
    ] = None,
    sampled: Annotated[CreateMessageResult | None, Resolve(sample_rewrite)] = None,
) -> RewriteResult:
    """Expand a terse image prompt into a detailed one without changing its subject; to preview or edit a prompt
    before generate_image."""
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
        result = await run_rewriter(rewriter, prompt, style, ProgressReporter(ctx), sampled)
    except RewriteFailed as e:
        raise PixelError(f"{e}. Try again with a different wording or another rewriter model.") from e
    return RewriteResult(revised_prompt=result.text, rewriter=result.rewriter, cached=result.cached, note=result.note)


