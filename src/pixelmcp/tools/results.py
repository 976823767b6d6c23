"""The MCP answer of an image tool: previews and resource links for the client, a short summary for the model,
structured content for programs; and the progress notifications of a call. Formatting runs no model: the images
were checked by the service (service/images.py) before."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import anyio
from mcp_types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent
from PIL import Image

from pixelmcp.config import Settings
from pixelmcp.media.images import encode_preview
from pixelmcp.media.store import ImageRef, StoredImage
from pixelmcp.service.images import MadeImages
from pixelmcp.service.jobs import current_job
from pixelmcp.service.results import GenerateImageResult
from pixelmcp.service.state import AppState
from pixelmcp.service.sweeps import SweptImages, label
from pixelmcp.tools.context import AppContext, app_state

#: The protocol versions the 1.x MCP Python SDK speaks. Its ResourceLink's `uri` is a pydantic AnyUrl, which
#: frameworks built on it cannot pass on: google-genai JSON-dumps tool results into its next request ("Object of
#: type AnyUrl is not JSON serializable", google/adk-python#1540), and langchain-mcp-adapters turns an image link
#: into an image block whose url (pixelmcp://...) langchain-openai and langchain-anthropic send to the provider.
SDK1_PROTOCOLS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
#: The clientInfo name the MCP Python SDK sends when the program using it names none: a framework, not a host.
SDK_DEFAULT_CLIENT = "mcp"


def wants_links(ctx: AppContext) -> bool:
    """Whether this call's answer carries resource_link blocks (PIXELMCP_RESOURCE_LINKS). "auto": every client but
    the 1.x Python SDK's unnamed default one, which agent frameworks use as it comes; hosts (Claude, VS Code,
    Cursor, the Inspector) name themselves, and the 2.x SDK's links are plain strings."""
    setting = app_state(ctx).settings.resource_links
    if setting != "auto":
        return setting
    session = ctx.request_context.session
    params = session.client_params
    name = params.client_info.name if params is not None and params.client_info is not None else None
    return not (name == SDK_DEFAULT_CLIENT and session.protocol_version in SDK1_PROTOCOLS)


async def answer(ctx: AppContext, result: GenerateImageResult, done: MadeImages, *, lines: list[str] = (),
                 verb: str = "Generated") -> CallToolResult:
    """An image tool's answer for `done`: the tool's own `lines`, then the checks' (and best_of's)."""
    return await tool_result(app_state(ctx), result, done.records, done.images, lines=[*lines, *done.lines],
                             links=done.links, verb=verb, resource_links=wants_links(ctx))


async def sweep_answer(ctx: AppContext, result: GenerateImageResult, swept: SweptImages) -> CallToolResult:
    """A sweep's answer: its contact sheet as the preview, each cell's PNG linked, one summary line per cell."""
    grid = " x ".join(f"{name} {values}" for name, values in result.axes.items())
    lines = [f"Sweep of {grid}: contact sheet {swept.sheet.uri}"]
    for cell, run in zip(swept.cells, swept.runs, strict=True):
        info = run.fields["images"][0]
        scored = f" (alignment {info.alignment.score:.2f})" if info.alignment is not None else ""
        lines.append(f"- {label(cell)}: {info.uri}{scored}" + (f": {info.caption}" if info.caption else ""))
    # The checks' own lines say the same per cell; only what went otherwise (a check that could not run) stays.
    checks = list(dict.fromkeys(line for run in swept.runs for line in run.lines
                                if not line.startswith(("Alignment with the prompt", "Caption of"))))
    links = [(run.records[0], f"cell {label(cell)}") for cell, run in zip(swept.cells, swept.runs, strict=True)]
    return await tool_result(app_state(ctx), result, [swept.sheet], [swept.sheet_image], lines=lines + checks,
                             links=links, resource_links=wants_links(ctx))


async def tool_result(app: AppState, result: GenerateImageResult, records: list[StoredImage],
                      images: list[Image.Image], *, lines: list[str] = (),
                      links: list[tuple[StoredImage, str]] = (), verb: str = "Generated",
                      resource_links: bool = True) -> CallToolResult:
    """Previews and links for the client, a short summary for the model, structured content for programs: a
    formatter, which runs no model (the service checks the images first).

    `lines` add to the summary; `links` are the other stored images the result used (a control map,
    a reference), linked after the previews. The previews are encoded in a worker thread: the event loop keeps
    serving other clients meanwhile."""
    made = [f"{result.width}x{result.height}"]
    if result.steps is not None:
        made.append(f"{result.steps} steps")
    if result.guidance_scale is not None:
        made.append(f"guidance {result.guidance_scale}")
    if result.seed is not None:
        made.append(f"seed {result.seed}")
    where = f" ({result.provider})" if result.provider != "local" else ""
    if result.loras:
        where += (" and LoRA " if len(result.loras) == 1 else " and LoRAs ") + ", ".join(f"{lora.name} {lora.weight:g}" for lora in result.loras)
    summary = [f"{verb} {len(result.images)} image(s) with {result.model}{where}: {', '.join(made)}."]
    summary += [f"- {image.uri}" + (f" (seed {image.seed})" if image.seed is not None else "")
                + f" saved at {image.path}" for image in result.images]
    summary += list(lines)
    if result.revised_prompt:
        summary.append(f"Revised prompt ({result.rewriter}): {result.revised_prompt}")
    if result.rewrite_note:
        summary.append(f"Note: {result.rewrite_note}")
    if result.rewrite_error:
        summary.append(f"Prompt not rewritten: {result.rewrite_error}")
    blocks = await anyio.to_thread.run_sync(image_blocks, records, images, app.settings, resource_links,
                                            limiter=app.encoders)
    if resource_links:
        blocks += [image_link(r, f"{title} ({r.width}x{r.height})", f"The {title} used for this result.")
                   for r, title in links]
    return CallToolResult(
        content=[*blocks, TextContent(type="text", text="\n".join(summary))],
        structured_content=result.model_dump(mode="json"),
    )


def image_blocks(records: list[StoredImage], images: list[Image.Image], settings: Settings,
                 resource_links: bool = True) -> list[ContentBlock]:
    """For each image: an inline preview within the byte budget, and a link to the full PNG.

    The budget is shared by all previews of one result, so n images never exceed what
    clients accept in a single message.
    """
    per_image = max(settings.preview_max_bytes // max(len(images), 1), 8_000)
    blocks: list[ContentBlock] = []
    for record, image in zip(records, images, strict=True):
        data, mime = encode_preview(
            image, max_side=settings.preview_max_side, max_bytes=per_image, fmt=settings.preview_format
        )
        blocks.append(ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=mime))
        if resource_links:
            blocks.append(image_link(
                record, f"{record.width}x{record.height} PNG (seed {record.params.get('seed')})",
                "Full-resolution PNG; pass this uri as an image argument to other tools.", size=_file_size(record.path),
            ))
    return blocks


def image_link(image: ImageRef, title: str, description: str, size: int | None = None) -> ResourceLink:
    """A resource link to a stored PNG, readable at its pixelmcp:// uri."""
    return ResourceLink(type="resource_link", uri=image.uri, name=f"{image.id}.png", title=title,
                        description=description, mime_type="image/png", size=size)


def _file_size(path: str) -> int | None:
    try:
        return Path(path).stat().st_size
    except OSError:
        return None


class ProgressReporter:
    """Sends MCP progress notifications that only ever increase, as the spec requires.

    Steps report (done, total). Phase and heartbeat messages ("loading model", "waiting for
    the device") carry no step of their own; each is sent halfway between the last value and
    the next whole step, so the count increases and never overtakes the next real step.

    A call that runs as a job (service/jobs.py) records every report in the job; once the call has
    answered with the job, reports are only recorded.
    """

    def __init__(self, ctx: AppContext):
        self._ctx = ctx
        self._job = current_job.get()
        self._last = 0.0
        self._total: float | None = None

    async def __call__(self, done: float, total: float | None, message: str | None) -> None:
        if self._job is not None:
            self._job.update(done, total, message)
            if self._job.detached:
                return
        if total is None:
            done = self._last + (math.floor(self._last) + 1 - self._last) / 2
            total = self._total
            if done <= self._last:
                return  # float precision exhausted after ~50 messages within one step
        elif done <= self._last:
            return
        else:
            self._total = total
        self._last = done
        await self._ctx.report_progress(done, total, message)
