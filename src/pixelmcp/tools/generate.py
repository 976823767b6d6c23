"""generate_image and rewrite_prompt."""

from __future__ import annotations

import time
from typing import Annotated

from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, CreateMessageResult
from pydantic import BaseModel, Field

from pixelmcp.backends import RewriteFailed
from pixelmcp.errors import InvalidArgument, PixelError
from pixelmcp.service import checks
from pixelmcp.service.images import ImageRun, make_images
from pixelmcp.service.results import GenerateImageResult
from pixelmcp.service.rewriting import run_rewriter
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
    integer,
)
from pixelmcp.tools.context import AppContext, app_state
from pixelmcp.tools.results import ProgressReporter, answer
from pixelmcp.tools.rewriting import RevisedPromptArg, SampledArg, sample_rewrite

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
        integer(1, MAX_BEST_OF), Field(description="Candidates per image; the best by alignment is returned, the "
                                                   "others linked.")
    ] = 1,
    verify: VerifyArg = "auto",
    revised_prompt: RevisedPromptArg = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, GenerateImageResult]:
    """Generate images from a prompt (local GPU, or provider:model): previews and pixelmcp:// links, each scored
    against the prompt; a short prompt may be expanded first (revised_prompt)."""
    app = app_state(ctx)
    started = time.perf_counter()
    spec, generator = await app.router.generator(model)
    _check_best_of(app.settings, best_of, n)
    request = checks.check_image_request(
        app.settings, app.store, spec, prompt=prompt, negative_prompt=negative_prompt, width=width, height=height,
        steps=steps, guidance_scale=guidance_scale, seed=seed, n=n * best_of,
    )
    done = await make_images(app, ImageRun(
        "generate_image", request, generator, started, rewrite=rewrite, revised_prompt=revised_prompt,
        sampled=sampled, verify=verify, best_of=best_of,
    ), ProgressReporter(ctx))
    return await answer(ctx, GenerateImageResult(**done.fields), done)


def _check_best_of(settings, best_of: int, n: int) -> None:
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
    prompt = checks.check_text("prompt", prompt, app.settings, required=True)
    style = checks.check_text("style", style, app.settings, required=False)
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


