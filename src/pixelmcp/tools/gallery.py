"""list_images: the stored images, newest first, a page at a time, with small previews (the gallery of the
pixelmcp app, and a way for a model to find an earlier image's uri)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import anyio
from mcp_types import CallToolResult, TextContent
from PIL import Image
from pydantic import BaseModel, Field

from pixelmcp.errors import InvalidArgument
from pixelmcp.media.images import encode_preview
from pixelmcp.media.store import StoredImage
from pixelmcp.service.results import LoraApplied
from pixelmcp.tools.context import AppContext, app_state

#: The MCP Apps interface (viewer, gallery, mask painter) the image tools point at.
STUDIO_URI = "ui://pixelmcp/studio.html"
#: Hosts known to render MCP Apps; every other host shows the same complete results without the interface.
APP_HOSTS = ("Claude (web and desktop)", "ChatGPT", "VS Code", "Cursor", "Goose")
#: The tools whose results open in the app.
UI_TOOLS = ("generate_image", "controlnet_generate", "style_transfer", "edit_image", "extend_image", "upscale_image",
            "vary_image", "remove_background", "list_images")
MAX_PAGE = 48
THUMBNAIL_SIDE = 160


class GalleryImage(BaseModel):
    id: str
    uri: str
    width: int
    height: int
    created: str
    tool: str | None = Field(None, description="the tool that made it, or what it was to a result (a mask, a map)")
    prompt: str | None = None
    model: str | None = None
    seed: int | None = None
    loras: list[LoraApplied] = Field(default_factory=list)
    strength: float | None = Field(None, description="an edit's or variation's strength")
    source_image: str | None = Field(None, description="the image it was made from (a variation's parent)")
    thumbnail: str = Field(description=f"a preview at most {THUMBNAIL_SIDE} px, as a data: uri")


class ImageList(BaseModel):
    images: list[GalleryImage]
    total: int = Field(description="how many images are stored")
    offset: int
    limit: int


async def list_images(
    ctx: AppContext,
    offset: Annotated[int, Field(description="How many of the newest images to skip (paging).")] = 0,
    limit: Annotated[int, Field(description=f"How many images to return (1..{MAX_PAGE}).")] = 12,
) -> Annotated[CallToolResult, ImageList]:
    """List the images this server has made, newest first: prompt, model, seed, size, a small preview, and the
    pixelmcp:// uri any image argument takes."""
    app = app_state(ctx)
    if offset < 0:
        raise InvalidArgument("offset", offset, "is negative", "Use 0 for the newest images.")
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument("limit", limit, f"out of range; accepted: 1..{MAX_PAGE}", "Use e.g. 12.")
    store = app.store

    def page() -> ImageList:
        ids = store.ids()  # one listing of the folder for the page and the total
        return ImageList(images=[_entry(record) for record in store.list(limit, offset, ids)], total=len(ids),
                         offset=offset, limit=limit)

    listed = await anyio.to_thread.run_sync(page, limiter=app.encoders)
    lines = [f"{listed.total} stored image(s); {len(listed.images)} from #{offset + 1}, newest first:"]
    lines += [f"- {image.uri} {image.width}x{image.height}" + (f" seed {image.seed}" if image.seed is not None else "")
              + (f": {image.prompt}" if image.prompt else "") for image in listed.images]
    return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))],
                          structured_content=listed.model_dump(mode="json"))


def _loras(params: dict[str, Any]) -> list[LoraApplied]:
    """The LoRAs a sidecar records (a hand-edited or older sidecar's odd entries are left out, never fatal)."""
    entries = params.get("loras")
    return [LoraApplied(name=e["name"], weight=e["weight"]) for e in entries if isinstance(e, dict)
            and isinstance(e.get("name"), str) and isinstance(e.get("weight"), int | float)] \
        if isinstance(entries, list) else []


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _entry(record: StoredImage) -> GalleryImage:
    params: dict[str, Any] = record.params
    with Image.open(record.path) as image:
        data, mime = encode_preview(image.convert("RGB"), max_side=THUMBNAIL_SIDE, max_bytes=12_000, fmt="webp")
    seed = params.get("seed")
    return GalleryImage(id=record.id, uri=record.uri, width=record.width, height=record.height, created=record.created,
                        tool=params.get("tool") or params.get("role"), prompt=params.get("prompt"), model=params.get("model"),
                        seed=seed if isinstance(seed, int) else None, loras=_loras(params),
                        strength=_number(params.get("strength")), source_image=_text(params.get("source_image")),
                        thumbnail=f"data:{mime};base64,{base64.b64encode(data).decode()}")
