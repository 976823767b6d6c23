"""generate_image and rewrite_prompt."""

from __future__ import annotations

import math
import time
from typing import Annotated

from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, CreateMessageResult
from pydantic import BaseModel, Field

from pixelmcp.backends import RewriteFailed
from pixelmcp.errors import InvalidArgument, PixelError
from pixelmcp.media.store import ImageRef
from pixelmcp.service import checks
from pixelmcp.service.checks import MAX_SEED
from pixelmcp.service.images import ImageRun, make_images
from pixelmcp.service.loras import MAX_WEIGHT, MIN_WEIGHT, LoraChoice
from pixelmcp.service.results import GenerateImageResult, ImageInfo
from pixelmcp.service.rewriting import run_rewriter
from pixelmcp.service.sweeps import MAX_CELLS, SweptImages, grid, make_sweep
from pixelmcp.tools.arguments import (
    GuidanceArg,
    HeightArg,
    LorasArg,
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
    number,
)
from pixelmcp.tools.context import AppContext, app_state
from pixelmcp.tools.results import ProgressReporter, answer, sweep_answer
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
    loras: LorasArg = None,
    rewrite: RewriteArg = "auto",
    best_of: Annotated[
        integer(1, MAX_BEST_OF), Field(description="Candidates per image; the best by alignment is returned, the "
                                                   "others linked.")
    ] = 1,
    verify: VerifyArg = "auto",
    revised_prompt: RevisedPromptArg = None,
    sweep_guidance_scale: Annotated[
        list[number(0)] | None, Field(description="Sweep: one image per value (with another sweep_*: a grid).")
    ] = None,
    sweep_steps: Annotated[list[integer(1)] | None, Field(description="Sweep: one image per step count.")] = None,
    sweep_seed: Annotated[list[integer(0, MAX_SEED)] | None, Field(description="Sweep: one image per seed.")] = None,
    sweep_lora_weight: Annotated[
        list[number(MIN_WEIGHT, MAX_WEIGHT)] | None, Field(description="Sweep: weights of the one LoRA.")
    ] = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, GenerateImageResult]:  # (a sweep's SweepResult extends it)
    """Generate images from a prompt (local GPU, or provider:model): previews and pixelmcp:// links, each scored
    against the prompt; a short prompt may be expanded first (revised_prompt). sweep_*: a labelled grid."""
    app = app_state(ctx)
    started = time.perf_counter()
    spec, generator = await app.router.generator(model)
    axes = _sweep_axes(dict(guidance_scale=sweep_guidance_scale, steps=sweep_steps, seed=sweep_seed,
                            lora_weight=sweep_lora_weight),
                       dict(guidance_scale=guidance_scale, steps=steps, seed=seed), n, best_of, loras)
    if axes:
        base = dict(prompt=prompt, negative_prompt=negative_prompt, width=width, height=height, steps=steps,
                    guidance_scale=guidance_scale, seed=seed, n=1, loras=loras)
        runs = [ImageRun("generate_image", checks.check_image_request(app.settings, app.store, spec,
                                                                      **{**base, **_cell_arguments(cell, loras)}),
                         generator, started, rewrite=rewrite, revised_prompt=revised_prompt, sampled=sampled,
                         verify=verify, params=dict(sweep=axes)) for cell in grid(axes)]
        swept = await make_sweep(app, runs, axes, ProgressReporter(ctx))
        return await sweep_answer(ctx, SweepResult.of(swept, axes), swept)
    _check_best_of(app.settings, best_of, n)
    request = checks.check_image_request(
        app.settings, app.store, spec, prompt=prompt, negative_prompt=negative_prompt, width=width, height=height,
        steps=steps, guidance_scale=guidance_scale, seed=seed, n=n * best_of, loras=loras,
    )
    done = await make_images(app, ImageRun(
        "generate_image", request, generator, started, rewrite=rewrite, revised_prompt=revised_prompt,
        sampled=sampled, verify=verify, best_of=best_of,
    ), ProgressReporter(ctx))
    return await answer(ctx, GenerateImageResult(**done.fields), done)


class SweepCell(BaseModel):
    values: dict[str, float | int] = Field(description="this cell's values of the swept arguments")
    image: ImageInfo


class SweepResult(GenerateImageResult):
    axes: dict[str, list[float | int]] = Field(description="the swept arguments and their values, in grid order")
    cells: list[SweepCell]
    contact_sheet: ImageRef = Field(description="every cell in one labelled grid (the preview)")

    @classmethod
    def of(cls, swept: SweptImages, axes: dict[str, list]) -> SweepResult:
        first = swept.runs[0].fields
        infos = [run.fields["images"][0] for run in swept.runs]
        return cls(**{**first, "images": infos}, axes=axes, contact_sheet=swept.sheet.ref(),
                   cells=[SweepCell(values=cell, image=info) for cell, info in zip(swept.cells, infos, strict=True)])


def _sweep_axes(sweeps: dict[str, list | None], given: dict[str, object], n: int, best_of: int,
                loras: list[LoraChoice] | None) -> dict[str, list]:
    """The swept arguments and their values, checked: at most two, none also given alone, at most MAX_CELLS."""
    axes = {name: values for name, values in sweeps.items() if values is not None}
    if "lora_weight" in axes:
        if len(loras or []) != 1:
            raise InvalidArgument("sweep_lora_weight", axes["lora_weight"], f"sweeps the weight of one LoRA, and loras "
                                  f"has {len(loras or [])}", "Pass exactly one LoRA in loras, without its weight.")
        given = {**given, "lora_weight": loras[0].weight}
    for name, values in axes.items():
        argument = f"sweep_{name}"
        if given[name] is not None:
            shown = "loras[0].weight" if name == "lora_weight" else name
            raise InvalidArgument(shown, given[name], f"was given together with {argument}, which sets it per image",
                                  f"Omit {shown}, or omit {argument}.")
        if not values or len(set(values)) != len(values):
            raise InvalidArgument(argument, values, "needs one or more values, each once", "Pass e.g. [5, 7, 9].")
    if len(axes) > 2:
        raise InvalidArgument(f"sweep_{list(axes)[2]}", axes[list(axes)[2]], "a sweep varies at most two arguments",
                              "Sweep one or two of guidance_scale, steps, seed and lora_weight.")
    cells = math.prod(len(values) for values in axes.values()) if axes else 0
    if cells > MAX_CELLS:
        raise InvalidArgument(f"sweep_{list(axes)[-1]}", axes[list(axes)[-1]], f"makes a grid of {cells} images, over "
                              f"the limit of {MAX_CELLS}", "Pass fewer values.")
    if axes and (n != 1 or best_of != 1):
        raise InvalidArgument("n" if n != 1 else "best_of", n if n != 1 else best_of, "applies to one image, and a "
                              "sweep makes one image per cell", "Omit it when sweeping.")
    return axes


def _cell_arguments(cell: dict[str, object], loras: list[LoraChoice] | None) -> dict[str, object]:
    """A cell's values as check_image_request's arguments: a LoRA weight is its one LoRA's weight."""
    if "lora_weight" not in cell:
        return cell
    values = {name: value for name, value in cell.items() if name != "lora_weight"}
    return {**values, "loras": [LoraChoice(name=loras[0].name, weight=cell["lora_weight"])]}


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


