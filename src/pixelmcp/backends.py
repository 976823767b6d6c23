"""The seam between tools and the backends that do the work: the requests they take, the results they give,
and the small protocols they implement.

The tools' argument checks make one `ImageRequest`; every generator reads it as it is. The local
engine implements the protocols on the in-process model pool; remote providers implement the same
ones, and the router picks one from the `model` argument. Nothing here imports torch.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from pixelmcp.catalog import ModelSpec

#: `await progress(done, total, message)`; total may be None when unknown.
Progress = Callable[[float, float | None, str | None], Awaitable[None]]


@dataclass(frozen=True)
class ControlRequest:
    """Structure guidance: a ControlNet and the image its map is made from (or the map itself)."""

    control_type: str
    controlnet: ModelSpec | None  # the ControlNet, as a loadable catalog entry (None: a provider reads the image)
    image: Image.Image
    preprocess: bool  # make the map from `image` (canny, depth, segmentation, pose), or use `image` as the map
    conditioning_scale: float
    low_threshold: int = 100  # canny
    high_threshold: int = 200
    preprocessor: ModelSpec | None = None  # the model that makes the map (depth, segmentation, pose) with preprocess
    person_threshold: float = 0.5  # pose: the detector's confidence that a box is a person
    keypoint_threshold: float = 0.3  # pose: the keypoint model's confidence that draws a joint


@dataclass(frozen=True)
class StyleRequest:
    """Reference guidance: through an IP-Adapter locally, through the prompt for image-editing providers."""

    adapter: ModelSpec | None  # the IP-Adapter, as a loadable catalog entry (None for providers)
    image: Image.Image
    scale: float | None  # the IP-Adapter's strength (None for providers); the engine spreads it over blocks
    mode: str = "style"  # style: take the look; subject: keep the reference's subject


@dataclass(frozen=True)
class EditRequest:
    """Start from an image instead of noise: image-to-image, inpainting (with `mask`), or tiled refinement.

    `image` and `mask` are at the size the tool answers with; a generator works at the request's width and
    height (or tile by tile) and may return any size: the tool restores this size and blends the original
    back outside the mask (tools/editing.py), so no backend can change a pixel the mask keeps.
    """

    image: Image.Image  # RGB
    mask: Image.Image | None  # L, white = repaint, black = keep (soft edges allowed); None: change the whole image
    strength: float | None  # how much changes, (0, 1]; None: the provider decides
    tile: int | None = None  # refine `image` in overlapping tiles of this side (upscaling); None: in one pass


@dataclass(frozen=True)
class LoraUse:
    """One LoRA of a request: its entry (a catalog alias, or one made for a .safetensors file) and its weight."""

    spec: ModelSpec  # kind lora: source (repo or folder) and weight_name; `alias` is the name the caller gave
    weight: float
    key: str  # the adapter's name in the model: the same file (and, for a file, the same size and mtime) -> same key

    @property
    def record(self) -> dict[str, Any]:
        """As stored with the image and replayed by `generate --from`."""
        return {"name": self.spec.alias, "weight": self.weight}


@dataclass(frozen=True)
class ImageRequest:
    """A validated image request, checked against `spec` before any work; `seeds[i]` makes image i.

    The tools' argument checks make it (nothing is clamped there); a rewrite sets `revised_prompt`
    with `dataclasses.replace`; generators read it as it is.
    """

    spec: ModelSpec
    prompt: str  # as the caller gave it
    negative_prompt: str | None
    width: int
    height: int
    steps: int | None  # None: the model (a remote provider) takes no steps, guidance or seed
    guidance_scale: float | None
    n: int
    seed: int | None
    revised_prompt: str | None = None  # the rewriter's prompt, when the prompt was rewritten
    control: ControlRequest | None = None
    style: StyleRequest | None = None
    edit: EditRequest | None = None
    loras: tuple[LoraUse, ...] = ()  # local diffusion models only, in the order given

    @property
    def seeds(self) -> tuple[int | None, ...]:
        """One per image: seed + i, or None where the model takes no seed."""
        if self.seed is None:
            return (None,) * self.n
        return tuple(self.seed + i for i in range(self.n))

    @property
    def model_prompt(self) -> str:
        """The prompt the model receives: the revised one when there is one."""
        return self.revised_prompt or self.prompt


@dataclass
class GeneratedImages:
    """What a generator returns: the images (in seed order) and how they were made."""

    images: list[Image.Image]
    scheduler: str | None  # None for remote providers
    device: str  # the accelerator, or the provider's address
    timings: dict[str, float] = field(default_factory=dict)
    control_map: Image.Image | None = None  # the map that steered the images, at their size
    people: int | None = None  # a pose map made from a photo: how many people it shows
    batch_size: int = 1  # requests whose images were made in the same pipeline call
    revised_prompt: str | None = None  # the prompt a provider says it used instead (DALL-E 3)


@dataclass(frozen=True)
class Rewritten:
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

    def sampling_request(self, prompt: str, style: str | None) -> None:
        """These rewriters run here, never on the client's LLM."""
        return

    async def rewrite(self, prompt: str, *, style: str | None, progress: Progress, sampled: Any = None) -> Rewritten:
        from pixelmcp.prompts.rewrite import SYSTEM_PROMPT, clean_rewrite, user_message

        started = time.perf_counter()
        key = (prompt, style)
        if key in self._cache:
            self._cache.move_to_end(key)
            return Rewritten(self._cache[key], self.name, time.perf_counter() - started, cached=True)
        reply = await self.reply(SYSTEM_PROMPT, user_message(prompt, style), progress)
        cleaned = clean_rewrite(reply, self.max_chars)
        if not cleaned:
            raise RewriteFailed(f"{self.name} returned no usable prompt (reply was {reply[:80]!r})")
        self._cache[key] = cleaned
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return Rewritten(cleaned, self.name, time.perf_counter() - started)


class ImageGenerator(Protocol):
    async def generate(self, request: ImageRequest, progress: Progress) -> GeneratedImages:
        """Make `request.n` images with `request.spec`; report progress; stop when the caller is cancelled."""
        ...


class ChatCompleter(Protocol):
    """A provider's chat model, as prompt rewriting uses it."""

    name: str

    async def complete(self, model: str, system: str, user: str, progress: Progress) -> str:
        """The model's reply to one system + user turn (temperature 0 where the model allows)."""
        ...


class PromptRewriter(Protocol):
    name: str

    def sampling_request(self, prompt: str, style: str | None) -> Any | None:
        """What to ask the MCP client's own LLM before the tool body runs (an `mcp` Sample), or None for a
        rewriter that runs without the client."""
        ...

    async def rewrite(self, prompt: str, *, style: str | None, progress: Progress, sampled: Any = None) -> Rewritten:
        """Return a detailed prompt with the same subject; raise RewriteFailed if none is usable.

        `sampled` is the client's answer to `sampling_request`, when one was asked and given. Must be
        deterministic for a given prompt and style, so a rewritten generation can be reproduced from
        its seed.
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
class VisionAnswer:
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

    async def align(self, spec: ModelSpec, images: list[Image.Image], texts: list[str],
                    progress: Progress) -> list[list[tuple[float, float]]]:
        """[image][text]: (score 0..1, the model's raw similarity) of each image against each text (one batched
        pass)."""
        ...


class Segmenter(Protocol):
    async def segment(self, spec: ModelSpec, image: Image.Image, prompts: list[str],
                      progress: Progress) -> list[Image.Image]:
        """For each prompt, how likely each pixel belongs to what it names: an L image at the image's size
        (255 = surely)."""
        ...


class ObjectCounter(Protocol):
    async def count(self, spec: ModelSpec, images: list[Image.Image], threshold: float,
                    progress: Progress) -> list[dict[str, int]]:
        """For each image, how many objects of each of the detector's classes it finds with at least `threshold`
        confidence (every class listed, 0 where none)."""
        ...

    async def classes(self, spec: ModelSpec, progress: Progress) -> set[str]:
        """The classes the detector knows, lower-case (loading it if it is not loaded)."""
        ...


class VisionAnswerer(Protocol):
    async def answer(self, spec: ModelSpec, images: list[Image.Image], question: str, max_tokens: int,
                     progress: Progress) -> VisionAnswer:
        """Answer `question` about `images` (one prompt holding all of them)."""
        ...
