"""generate_image and rewrite_prompt."""

from __future__ import annotations

import time
from typing import Annotated

import anyio
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, CreateMessageResult
from pydantic import BaseModel, Field

from pixelmcp.backends import RewriteFailed
from pixelmcp.errors import PixelError
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
    WidthArg,
)
from pixelmcp.tools.results import (
    GenerateImageResult,
    ProgressReporter,
    result_fields,
    store_images,
    tool_result,
)
from pixelmcp.tools.rewriting import (
    RevisedPromptArg,
    SampledArg,
    rewrite_for_generation,
    run_rewriter,
    sample_rewrite,
)
from pixelmcp.tools.state import AppContext, app_state


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
    revised_prompt: RevisedPromptArg = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, GenerateImageResult]:
    """Generate images from a text prompt on the server's GPU (or a provider's model, e.g. openai:gpt-image-1).
    Returns a preview plus a pixelmcp:// link to each full PNG; a short prompt may first be expanded by an LLM,
    and the revised prompt is returned."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    request = arguments.check_image_request(
        app.settings, app.store, spec, prompt=prompt, negative_prompt=negative_prompt, width=width, height=height,
        steps=steps, guidance_scale=guidance_scale, seed=seed, n=n,
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
    return await tool_result(app, result, records, made.images)


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
        result = await run_rewriter(rewriter, prompt, style, ProgressReporter(ctx), sampled)
    except RewriteFailed as e:
        raise PixelError(f"{e}. Try again with a different wording or another rewriter model.") from e
    return RewriteResult(revised_prompt=result.text, rewriter=result.rewriter, cached=result.cached, note=result.note)


