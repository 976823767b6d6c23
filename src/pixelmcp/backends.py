"""The seams between tools and the backends that do the work.

A backend is anything that implements one of these small protocols. The local engine
implements them on the in-process model pool; remote providers implement the same ones, and
the router picks one from the `model` argument. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from pixelmcp.config import ModelSpec

#: `await progress(done, total, message)`; total may be None when unknown.
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass(frozen=True)
class ImageRequest:
    """A validated text-to-image request. `seeds[i]` makes image i."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    steps: int
    guidance_scale: float
    seeds: tuple[int, ...]


@dataclass
class ImageBatch:
    """What a generator returns: the images (in seed order) and how they were made."""

    images: list[Image.Image]
    scheduler: str
    device: str
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Rewrite:
    """A rewritten prompt and who wrote it."""

    text: str
    rewriter: str
    seconds: float
    cached: bool = False


class RewriteFailed(Exception):
    """The rewriter ran but produced nothing usable (or could not run)."""


class ImageGenerator(Protocol):
    async def generate(self, spec: ModelSpec, request: ImageRequest, progress: Progress) -> ImageBatch:
        """Make `len(request.seeds)` images; report progress; stop when the caller is cancelled."""
        ...


class PromptRewriter(Protocol):
    name: str

    async def rewrite(self, prompt: str, *, style: str | None, progress: Progress) -> Rewrite:
        """Return a detailed prompt with the same subject; raise RewriteFailed if none is usable.

        Must be deterministic for a given prompt and style, so a rewritten generation can be
        reproduced from its seed.
        """
        ...
