"""The seams between tools and the backends that do the work.

A backend is anything that implements one of these small protocols. The local engine
implements them on the in-process model pool; remote providers implement the same ones, and
the router picks one from the `model` argument. Nothing here imports torch.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

from pixelmcp.config import ModelSpec

#: `await progress(done, total, message)`; total may be None when unknown.
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass(frozen=True)
class ControlRequest:
    """Structure guidance: a ControlNet and the image its map is made from (or the map itself)."""

    control_type: str
    controlnet: ModelSpec | None  # the ControlNet, as a loadable catalog entry (None: a provider reads the image)
    image: Image.Image
    preprocess: bool  # make the map from `image` (canny / depth), or use `image` as the map
    conditioning_scale: float
    low_threshold: int = 100
    high_threshold: int = 200
    depth_model: ModelSpec | None = None  # for control_type "depth" with preprocess


@dataclass(frozen=True)
class StyleRequest:
    """Reference guidance: through an IP-Adapter locally, through the prompt for image-editing providers."""

    adapter: ModelSpec | None  # the IP-Adapter, as a loadable catalog entry (None for providers)
    image: Image.Image
    scale: float | dict | None  # set_ip_adapter_scale argument: one number, or per-block scales
    mode: str = "style"  # style: take the look; subject: keep the reference's subject


@dataclass(frozen=True)
class ImageRequest:
    """A validated text-to-image request. `seeds[i]` makes image i."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    steps: int
    guidance_scale: float
    seeds: tuple[int | None, ...]  # one per image; None where the model takes no seed (remote providers)
    control: ControlRequest | None = None
    style: StyleRequest | None = None


@dataclass
class ImageBatch:
    """What a generator returns: the images (in seed order) and how they were made."""

    images: list[Image.Image]
    scheduler: str | None  # None for remote providers
    device: str  # the accelerator, or the provider's address
    timings: dict[str, float] = field(default_factory=dict)
    control_map: Image.Image | None = None  # the map that steered the images, at their size
    batch_size: int = 1  # requests whose images were made in the same pipeline call
    revised_prompt: str | None = None  # the prompt a provider says it used instead (DALL-E 3)


@dataclass(frozen=True)
class Rewrite:
    """A rewritten prompt and who wrote it."""

    text: str
    rewriter: str
    seconds: float
    cached: bool = False
    note: str | None = None  # e.g. why another rewriter than the configured one answered


class RewriteFailed(Exception):
    """The rewriter ran but produced nothing usable (or could not run)."""


class CachedRewriter:
    """The shared half of a PromptRewriter: the instructions, cleaning of the reply, and an LRU cache, so the
    same prompt and style keep their rewrite. Subclasses set `name` and implement `reply`."""

    name: str
    cache_size = 512
    max_chars = 1000

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, str | None], str] = OrderedDict()

    async def reply(self, system: str, user: str, progress: Progress) -> str:
        """The model's raw answer to one chat turn."""
        raise NotImplementedError

    async def rewrite(self, prompt: str, *, style: str | None, progress: Progress) -> Rewrite:
        from pixelmcp.prompts.rewrite import SYSTEM_PROMPT, clean_rewrite, user_message

        started = time.perf_counter()
        key = (prompt, style)
        if key in self._cache:
            self._cache.move_to_end(key)
            return Rewrite(self._cache[key], self.name, time.perf_counter() - started, cached=True)
        reply = await self.reply(SYSTEM_PROMPT, user_message(prompt, style), progress)
        cleaned = clean_rewrite(reply, self.max_chars)
        if not cleaned:
            raise RewriteFailed(f"{self.name} returned no usable prompt (reply was {reply[:80]!r})")
        self._cache[key] = cleaned
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return Rewrite(cleaned, self.name, time.perf_counter() - started)


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


# --------------------------------------------------------------------------- understanding

Scoring = str  # "softmax" (over the labels), "sigmoid" (independent), "binary-softmax" (label vs. neutral)


@dataclass
class Classification:
    """scores[i][j]: image i's score for label j; how the scores were computed; timings."""

    scores: list[list[float]]
    scoring: Scoring
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Answer:
    text: str
    tokens: int
    timings: dict[str, float] = field(default_factory=dict)


class ImageClassifier(Protocol):
    async def classify(self, spec: ModelSpec, images: list[Image.Image], prompts: list[str], neutral: str,
                       multi_label: bool, progress: Progress) -> Classification:
        """Zero-shot scores of each image against each prompt (one batched pass)."""
        ...

    async def embed(self, spec: ModelSpec, images: list[Image.Image], progress: Progress) -> list[list[float]]:
        """Unit-length image embeddings."""
        ...


class VisionAnswerer(Protocol):
    async def answer(self, spec: ModelSpec, images: list[Image.Image], question: str, max_tokens: int,
                     progress: Progress) -> Answer:
        """Answer `question` about `images` (one prompt holding all of them)."""
        ...
