"""Pieces every image-producing tool returns: previews, resource links, progress."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import TYPE_CHECKING

from mcp.server.mcpserver import Context
from mcp_types import ContentBlock, ImageContent, ResourceLink
from PIL import Image

from pixelmcp.config import Settings
from pixelmcp.server.images import encode_preview
from pixelmcp.server.store import StoredImage

if TYPE_CHECKING:
    from pixelmcp.tools.common import StoredRef


def image_blocks(records: list[StoredImage], images: list[Image.Image], settings: Settings) -> list[ContentBlock]:
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
        blocks.append(image_link(
            record, f"{record.width}x{record.height} PNG (seed {record.params.get('seed')})",
            "Full-resolution PNG; pass this uri as an image argument to other tools.", size=_file_size(record.path),
        ))
    return blocks


def image_link(image: StoredImage | StoredRef, title: str, description: str, size: int | None = None) -> ResourceLink:
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
    """

    def __init__(self, ctx: Context):
        self._ctx = ctx
        self._last = 0.0
        self._total: float | None = None

    async def __call__(self, done: float, total: float | None, message: str | None) -> None:
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
