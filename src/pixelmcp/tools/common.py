"""What every image-making tool shares: argument checks, the prompt rewrite, storing, answering."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import Resolve, Sample
from mcp_types import CallToolResult, CreateMessageResult, TextContent
from pydantic import BaseModel, Field

from pixelmcp import __version__
from pixelmcp.backends import (
    ControlRequest,
    ImageBatch,
    ImageRequest,
    Progress,
    PromptRewriter,
    RewriteFailed,
    StyleRequest,
)
from pixelmcp.backends import Rewrite as RewriteValue
from pixelmcp.config import ModelSpec
from pixelmcp.errors import InvalidArgument, PixelError, StoreError
from pixelmcp.providers.sampling import SamplingRewriter
from pixelmcp.server.state import AppState, app_state
from pixelmcp.server.store import StoredImage
from pixelmcp.tools import arguments
from pixelmcp.tools.results import image_blocks

logger = logging.getLogger(__name__)

Rewrite = bool | Literal["auto"]

# Argument types shared by every image tool: one name and one description per idea.
PromptArg = Annotated[str, Field(description="What the image should show.")]
NegativePromptArg = Annotated[
    str | None, Field(description="What to keep out of the image (models with guidance only).")
]
ModelArg = Annotated[
    str | None,
    Field(description="Model alias from the server's catalog (e.g. sdxl, flux-schnell), or provider:model "
                      "(e.g. openai:gpt-image-1, gemini:gemini-2.5-flash-image); default from config."),
]
WidthArg = Annotated[int | None, Field(description="Width in px; a multiple of 8 (16 for SD3/FLUX). Default per model.")]
HeightArg = Annotated[int | None, Field(description="Height in px; same rules as width. Default per model.")]
StepsArg = Annotated[int | None, Field(description="Denoising steps. Default per model.")]
GuidanceArg = Annotated[arguments.OptionalNumber, Field(description="Prompt adherence (CFG). Default per model.")]
SeedArg = Annotated[
    int | None, Field(description="0..4294967295. Same seed and arguments give the same image; omit for random. "
                                  "Local models only.")
]
NArg = Annotated[int, Field(description="Number of images; image i uses seed + i.")]
ImageArg = Annotated[
    str,
    Field(description="A pixelmcp://images/<id> uri from an earlier result, a data:image/...;base64 uri, bare "
                      "base64, or a file path inside the server's allowed folders."),
]
RewriteArg = Annotated[
    Rewrite, Field(description="Expand the prompt with an LLM first: true, false, or 'auto' (short prompts, local models only).")
]


# --------------------------------------------------------------------------- result shapes


class StoredRef(BaseModel):
    """A stored image that is not a generated result (e.g. a control map)."""

    id: str
    uri: str = Field(description="pixelmcp://images/{id}: readable as a resource, usable as an image input")
    path: str
    width: int
    height: int


class ImageInfo(StoredRef):
    seed: int | None = Field(description="re-running the call gives the same pixels; this seed with n=1 gives the "
                                         "same picture (null: the provider takes no seed)")


class Timings(BaseModel):
    rewrite_s: float = 0.0
    queue_s: float = 0.0
    load_s: float = 0.0
    run_s: float = 0.0
    total_s: float = 0.0


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
    timings: Timings


# --------------------------------------------------------------------------- arguments


@dataclass(frozen=True)
class GenerationArgs:
    """The arguments every image tool shares, checked against the chosen model."""

    spec: ModelSpec
    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    steps: int | None  # None: the model (a remote provider) takes no steps, guidance or seed
    guidance_scale: float | None
    n: int
    seed: int | None

    @property
    def seeds(self) -> tuple[int | None, ...]:
        if self.seed is None:
            return (None,) * self.n
        return tuple(self.seed + i for i in range(self.n))

    def request(self, rewrite: RewriteOutcome, control: ControlRequest | None = None,
                style: StyleRequest | None = None) -> ImageRequest:
        """What the backend gets: the revised prompt when there is one, and any guidance."""
        return ImageRequest(
            prompt=rewrite.revised_prompt or self.prompt, negative_prompt=self.negative_prompt, width=self.width,
            height=self.height, steps=self.steps, guidance_scale=self.guidance_scale, seeds=self.seeds,
            control=control, style=style,
        )


def check_generation_args(
    app: AppState,
    spec: ModelSpec,
    *,
    prompt: str,
    negative_prompt: str | None,
    width: int | None,
    height: int | None,
    steps: int | None,
    guidance_scale: float | None,
    seed: int | None,
    n: int,
    default_size: tuple[int, int] | None = None,
) -> GenerationArgs:
    """Check every shared argument up front; nothing is clamped. `default_size` overrides the model's."""
    arguments.check_supported(spec, seed=seed, steps=steps, guidance_scale=guidance_scale)
    width, height = arguments.check_size(width, height, default_size or (spec.default_width, spec.default_height), spec)
    n = arguments.check_n(n, app.settings, spec)
    # Before any work: a folder that cannot take the PNGs (at most raw size each, plus a control map) fails now.
    app.store.check_writable((n + 1) * (width * height * 3 + 65536))
    guidance = arguments.check_guidance(guidance_scale, spec) if spec.takes_guidance else None
    negative = arguments.check_text("negative_prompt", negative_prompt, app.settings, required=False)
    return GenerationArgs(
        spec=spec,
        prompt=arguments.check_text("prompt", prompt, app.settings, required=True),
        negative_prompt=arguments.check_negative_prompt(negative, guidance or 0.0, spec),
        width=width,
        height=height,
        steps=arguments.check_steps(steps, spec) if spec.takes_steps else None,
        guidance_scale=guidance,
        n=n,
        seed=arguments.check_seed(seed) if spec.takes_seed else None,
    )


# --------------------------------------------------------------------------- rewriting


@dataclass
class RewriteOutcome:
    revised_prompt: str | None = None
    error: str | None = None
    seconds: float = 0.0
    rewriter: str | None = None
    note: str | None = None


def client_can_sample(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    return capabilities is not None and capabilities.sampling is not None


def wants_rewrite(rewrite: Rewrite, prompt: str, app: AppState, spec: ModelSpec | None = None) -> bool:
    if rewrite is True:
        return True  # a missing rewriter is reported as rewrite_error, not silently skipped
    if rewrite is False:
        return False
    if rewrite != "auto":
        raise InvalidArgument("rewrite", rewrite, "must be true, false or 'auto'", "Pass one of those.")
    if spec is not None and spec.remote:
        # Provider image models read short prompts well (DALL-E 3 even rewrites them itself), and a local
        # rewriter on a machine that only has an API key would mean a model download: only `true` rewrites.
        return False
    return app.settings.rewriter != "none" and len(prompt.split()) <= app.settings.rewrite_auto_max_words


async def sample_for_generation(ctx: Context, prompt: str, rewrite: Rewrite, model: str | None) -> Sample | None:
    """Resolver: ask the client's LLM for the rewrite, when the rewriter is `sampling` and the client can sample."""
    app = app_state(ctx)
    if app.settings.rewriter != "sampling" or not client_can_sample(ctx):
        return None  # (a misconfigured rewriter must not fail the call here: the rewrite reports it)
    rewriter = app.router.rewriter()
    if not isinstance(rewriter, SamplingRewriter):
        return None
    spec, _ = await app.router.generator(model)
    if not wants_rewrite(rewrite, prompt.strip(), app, spec):
        return None
    return rewriter.request(arguments.check_text("prompt", prompt, app.settings, required=True), None)


#: The parameter every image tool declares: the client's LLM's rewrite, when rewriting by MCP
#: sampling (filled by the framework before the tool body runs; None otherwise). Not in the schema.
SampledArg = Annotated[CreateMessageResult | None, Resolve(sample_for_generation)]


async def run_rewriter(rewriter: PromptRewriter | None, prompt: str, style: str | None, progress: Progress,
                       sampled: CreateMessageResult | None = None) -> RewriteValue:
    """The rewriter's answer (the client's, when it was sampled); RewriteFailed when there is none to ask or it
    produced nothing usable."""
    if rewriter is None:
        raise RewriteFailed("prompt rewriting is switched off on this server (PIXELMCP_REWRITER=none)")
    if isinstance(rewriter, SamplingRewriter) and sampled is not None:
        return rewriter.from_result(sampled)
    return await rewriter.rewrite(prompt, style=style, progress=progress)


async def rewrite_for_generation(app: AppState, args: GenerationArgs, rewrite: Rewrite, progress: Progress,
                                 sampled: CreateMessageResult | None = None) -> RewriteOutcome:
    """Rewrite the prompt if asked; a failure is reported, never raised: the original prompt is used."""
    if not wants_rewrite(rewrite, args.prompt, app, args.spec):
        return RewriteOutcome()
    started = time.perf_counter()
    try:
        result = await run_rewriter(app.router.rewriter(), args.prompt, None, progress, sampled)
    except (RewriteFailed, PixelError) as e:
        logger.warning("rewrite failed, using the original prompt: %s", e)
        return RewriteOutcome(error=str(e), seconds=time.perf_counter() - started)
    return RewriteOutcome(revised_prompt=result.text, seconds=time.perf_counter() - started,
                          rewriter=result.rewriter, note=result.note)


# --------------------------------------------------------------------------- answering


def store_images(app: AppState, tool: str, args: GenerationArgs, rewrite: RewriteOutcome, batch: ImageBatch,
                 extra: dict[str, Any]) -> list[StoredImage]:
    """Store every image with everything needed to make it again."""
    params = dict(
        tool=tool, model=args.spec.alias, provider=args.spec.provider, source=args.spec.source, prompt=args.prompt,
        revised_prompt=batch.revised_prompt or rewrite.revised_prompt, negative_prompt=args.negative_prompt, width=args.width,
        height=args.height, steps=args.steps, guidance_scale=args.guidance_scale, scheduler=batch.scheduler,
        device=batch.device, n=args.n, pixelmcp_version=__version__, **extra,
    )
    params["batch_size"] = batch.batch_size  # >1: made in one pipeline call with other requests
    records: list[StoredImage] = []
    for index, (image, seed) in enumerate(zip(batch.images, args.seeds, strict=True)):
        try:
            records.append(app.store.save(image, {**params, "seed": seed, "index": index}))
        except StoreError as e:
            if not records:
                raise
            saved = ", ".join(f"{r.uri} ({r.path})" for r in records)
            raise StoreError(f"{e} Saved before the failure: {saved}.") from e
    return records


def stored_ref(record: StoredImage) -> StoredRef:
    return StoredRef(id=record.id, uri=record.uri, path=record.path, width=record.width, height=record.height)


def result_fields(args: GenerationArgs, rewrite: RewriteOutcome, batch: ImageBatch, records: list[StoredImage],
                  started: float) -> dict[str, Any]:
    """The GenerateImageResult fields, for the result model of any image tool."""
    infos = [ImageInfo(**stored_ref(r).model_dump(), seed=r.params["seed"]) for r in records]
    timings = Timings(rewrite_s=rewrite.seconds, **batch.timings, total_s=time.perf_counter() - started)
    rewriter = rewrite.rewriter
    if batch.revised_prompt:  # the provider rewrote the prompt (again) and says what it used
        rewriter = f"{rewriter} + {args.spec.alias}" if rewriter else args.spec.alias
    return dict(
        **infos[0].model_dump(), images=infos, model=args.spec.alias, provider=args.spec.provider, steps=args.steps,
        guidance_scale=args.guidance_scale, scheduler=batch.scheduler, prompt=args.prompt,
        revised_prompt=batch.revised_prompt or rewrite.revised_prompt, negative_prompt=args.negative_prompt,
        rewriter=rewriter, rewrite_note=rewrite.note, rewrite_error=rewrite.error, batch_size=batch.batch_size,
        timings=timings,
    )


async def answer(app: AppState, result: GenerateImageResult, records: list[StoredImage], batch: ImageBatch,
                 extra_lines: list[str] = ()) -> CallToolResult:
    """Previews and links for the client, a short summary for the model, structured content for programs.

    The previews are encoded in a worker thread: the event loop keeps serving other clients meanwhile."""
    made = [f"{result.width}x{result.height}"]
    if result.steps is not None:
        made.append(f"{result.steps} steps")
    if result.guidance_scale is not None:
        made.append(f"guidance {result.guidance_scale}")
    if result.seed is not None:
        made.append(f"seed {result.seed}")
    where = f" ({result.provider})" if result.provider != "local" else ""
    lines = [f"Generated {len(result.images)} image(s) with {result.model}{where}: {', '.join(made)}."]
    lines += [f"- {image.uri}" + (f" (seed {image.seed})" if image.seed is not None else "") + f" saved at {image.path}"
              for image in result.images]
    lines += list(extra_lines)
    if result.revised_prompt:
        lines.append(f"Revised prompt ({result.rewriter}): {result.revised_prompt}")
    if result.rewrite_note:
        lines.append(f"Note: {result.rewrite_note}")
    if result.rewrite_error:
        lines.append(f"Prompt not rewritten: {result.rewrite_error}")
    blocks = await anyio.to_thread.run_sync(image_blocks, records, batch.images, app.settings, limiter=app.encoders)
    return CallToolResult(
        content=[*blocks, TextContent(type="text", text="\n".join(lines))],
        structured_content=result.model_dump(mode="json"),
    )
