"""Parameter sweeps: one generation per cell of a grid over one or two of guidance_scale, steps, seed and the
weight of a LoRA.

The prompt is rewritten once (the first cell's run) and every other cell receives that revised
prompt; the other cells then run together, so the pool batches those it can (cells that differ
only in seed share a pipeline call; cells with another LoRA weight switch the adapter's scale, not reload it). A labelled contact sheet of all cells is stored with them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any

import anyio
from PIL import Image

from pixelmcp.backends import Progress
from pixelmcp.media.sheets import contact_sheet
from pixelmcp.media.store import StoredImage
from pixelmcp.service.images import ImageRun, MadeImages, make_images, store_reference
from pixelmcp.service.state import AppState

#: The arguments a sweep may vary, and the most cells (images) one sweep makes.
SWEEPABLE = ("guidance_scale", "steps", "seed", "lora_weight")
MAX_CELLS = 16


@dataclass
class SweptImages:
    cells: list[dict[str, Any]]  # each cell's values, in grid order (the first axis slowest)
    runs: list[MadeImages]
    sheet: StoredImage
    sheet_image: Image.Image


def grid(axes: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, the first axis varying slowest."""
    names = list(axes)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())]


def label(values: dict[str, Any]) -> str:
    short = {"guidance_scale": "cfg", "steps": "steps", "seed": "seed", "lora_weight": "lora"}
    return "  ".join(f"{short[name]} {value:g}" if isinstance(value, float) else f"{short[name]} {value}"
                     for name, value in values.items())


async def make_sweep(app: AppState, runs: list[ImageRun], axes: dict[str, list], progress: Progress) -> SweptImages:
    """One run per cell of `grid(axes)` (`runs[i]` makes cell i); the contact sheet has a row per value of the
    first axis when there are two."""
    cells = grid(axes)
    columns = len(list(axes.values())[-1]) if len(axes) > 1 else min(len(cells), 4)
    made: list[MadeImages | None] = [None] * len(runs)
    made[0] = await make_images(app, runs[0], _Part(progress, 0, len(runs)))
    revised = made[0].request.revised_prompt

    async def one(index: int) -> None:
        run = replace(runs[index], rewrite=False, revised_prompt=revised, sampled=None)
        made[index] = await make_images(app, run, _Part(progress, index, len(runs)))

    async with anyio.create_task_group() as group:
        for index in range(1, len(runs)):
            group.start_soon(one, index)

    def sheet() -> tuple[StoredImage, Image.Image]:
        picture = contact_sheet([m.images[0] for m in made], [label(c) for c in cells], columns)
        return store_reference(app, picture, "contact sheet", axes=axes), picture

    record, picture = await anyio.to_thread.run_sync(sheet, limiter=app.encoders)
    return SweptImages(cells=cells, runs=made, sheet=record, sheet_image=picture)


class _Part:
    """A cell's progress as its share of the whole sweep's steps."""

    def __init__(self, progress: Progress, index: int, parts: int):
        self.progress, self.index, self.parts = progress, index, parts

    async def __call__(self, done: float, total: float | None, message: str | None) -> None:
        if total:
            await self.progress(self.index * total + done, self.parts * total, message)
        else:
            await self.progress(done, None, message)
