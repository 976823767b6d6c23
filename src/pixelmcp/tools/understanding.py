"""classify_image, ask_about_image and compare_images."""

from __future__ import annotations

import math
import time
from typing import Annotated, Literal

import anyio
from mcp_types import CallToolResult, TextContent
from PIL import Image
from pydantic import BaseModel, Field

from pixelmcp.errors import InvalidArgument, StoreError
from pixelmcp.media.images import load_image
from pixelmcp.media.store import ImageRef
from pixelmcp.prompts.questions import (
    DEFAULT_COMPARE_QUESTION,
    answer_prompt,
    compare_prompt,
)
from pixelmcp.service import checks
from pixelmcp.service.results import Timings
from pixelmcp.service.state import AppState
from pixelmcp.tools.arguments import ImageArg, ModelArg, fixes, integer
from pixelmcp.tools.claims import ClaimCheck, check_answer, claim_lines
from pixelmcp.tools.context import AppContext, app_state
from pixelmcp.tools.results import ProgressReporter, image_link, wants_links

ClaimsArg = Annotated[
    bool | None,
    Field(description="Check the answer's claims against the image(s); default: PIXELMCP_CLAIM_CHECK."),
]

MAX_COMPARE_IMAGES = 8
MAX_ANSWER_TOKENS = 2048
#: Most pixels per image handed to a VLM for each `detail`, in Qwen2.5-VL's units of one visual token per 28x28
#: pixels: 256 tokens (fast), 1280 (the model card's advice for the speed/quality balance), 4096. Unbounded, a
#: 24 MP photo would become ~16k visual tokens under Qwen2.5-VL's own default limit of 12.8 MP.
DETAIL_MAX_PIXELS: dict[str, int] = {"low": 256 * 28 * 28, "auto": 1280 * 28 * 28, "high": 4096 * 28 * 28}
#: compare_images resizes the second image of a pair to the first's size when their aspect ratios
#: agree this closely; otherwise pixel metrics are not computed for that pair.
RESIZE_ASPECT_TOLERANCE = 0.01


# --------------------------------------------------------------------------- result shapes


class LabelScore(BaseModel):
    label: str
    score: float


class ImageLabels(BaseModel):
    image: int = Field(description="index of the image in the request (0 for `image`)")
    top_label: str
    top_score: float
    labels: list[LabelScore] = Field(description="every label, highest score first")


class ClassifyResult(BaseModel):
    model: str
    scoring: Literal["softmax", "sigmoid", "binary-softmax"] = Field(
        description="softmax: scores over the labels sum to 1 (CLIP); sigmoid: independent per label (SigLIP); "
                    "binary-softmax: each label against a neutral prompt (CLIP with multi_label)"
    )
    template: str
    results: list[ImageLabels]
    timings: Timings


CLAIM_CHECK_FIELD = Field(None, description="the answer's claims checked against the image(s): a check, not a proof "
                                           "(null when check_claims=false or PIXELMCP_CLAIM_CHECK=off)")


class AnswerResult(BaseModel):
    answer: str
    model: str
    provider: str = Field(description="local (this server's GPU pool) or the remote provider that answered")
    tokens_generated: int
    image_size: list[int] | None = Field(None, description="[width, height] the model saw, after the detail bound")
    claim_check: ClaimCheck | None = CLAIM_CHECK_FIELD
    timings: Timings


class Region(BaseModel):
    """A changed area (media/metrics.py's Region, without its pixel count)."""

    x: int
    y: int
    width: int
    height: int


class PairComparison(BaseModel):
    a: int = Field(description="index of the first image")
    b: int = Field(description="index of the second image")
    clip_similarity: float = Field(description="cosine similarity of the CLIP/SigLIP image embeddings (1 = same)")
    pixel_metrics: bool = Field(description="whether SSIM / difference / regions were measured for this pair")
    resized: bool = Field(False, description="image b was resized to image a's size (same aspect ratio) first")
    note: str | None = Field(None, description="why pixel metrics or the heat-map are missing")
    ssim: float | None = None
    mean_abs_diff: float | None = Field(None, description="0..1 over all pixels and channels")
    changed_share: float | None = Field(None, description="share of pixels that changed noticeably")
    changed_regions: list[Region] = Field(default_factory=list, description="boxes of changed areas, in image a's pixels")
    heatmap: ImageRef | None = None


class CompareResult(BaseModel):
    answer: str
    model: str
    provider: str = Field(description="who answered in words; the measurements are always local")
    similarity_model: str
    tokens_generated: int
    images: list[str] = Field(description="the image arguments as given (uris and paths; data shown by size)")
    pairs: list[PairComparison]
    claim_check: ClaimCheck | None = CLAIM_CHECK_FIELD
    timings: Timings


# --------------------------------------------------------------------------- tools


async def classify_image(
    labels: Annotated[list[str], Field(description="Candidate labels, e.g. ['cat', 'dog'].")],
    ctx: AppContext,
    image: Annotated[str | None, Field(description="One image (any image form). Give image or images.")] = None,
    images: Annotated[list[str] | None, Field(description="Several images, in one batch.")] = None,
    model: ModelArg = None,
    template: Annotated[str, Field(description="Prompt per label; {} is replaced by the label.")] = "a photo of {}",
    multi_label: Annotated[bool, Field(description="Score each label independently (several may apply).")] = False,
) -> ClassifyResult:
    """Zero-shot classify images against your labels (CLIP or SigLIP): every label's score, ranked, per image."""
    app = app_state(ctx)
    started = time.perf_counter()
    spec, classifier = app.router.classifier(model)
    labels = _check_labels(labels, app)
    if "{}" not in template or template.count("{}") != 1:
        raise InvalidArgument("template", template, "must contain {} exactly once (where the label goes)",
                              "Use e.g. 'a photo of {}'.")
    checks.check_text("template", template, app.settings, required=True)
    given = _one_or_many(image, images, app.settings.max_batch_images)
    loaded = await _load_all(app, given, argument="image" if images is None else "images")
    neutral = template.format("something else")
    result = await classifier.classify(spec, loaded, [template.format(label) for label in labels], neutral,
                                       multi_label, ProgressReporter(ctx))
    per_image = []
    for index, scores in enumerate(result.scores):
        ranked = sorted(zip(labels, scores, strict=True), key=lambda pair: pair[1], reverse=True)
        per_image.append(ImageLabels(image=index, top_label=ranked[0][0], top_score=round(ranked[0][1], 6),
                                     labels=[LabelScore(label=lab, score=round(s, 6)) for lab, s in ranked]))
    return ClassifyResult(model=spec.alias, scoring=result.scoring, template=template, results=per_image,
                          timings=Timings(**result.timings, total_s=time.perf_counter() - started))


async def ask_about_image(
    image: ImageArg,
    question: Annotated[str, Field(description="What you want to know about the image.")],
    ctx: AppContext,
    model: ModelArg = None,
    max_tokens: Annotated[integer(1, MAX_ANSWER_TOKENS), Field(description="Longest answer, in tokens.")] = 512,
    detail: Annotated[
        Literal["auto", "low", "high"],
        Field(description="Pixels the model sees: low 0.2 MP, auto 1 MP, high 3.2 MP (small text; slower)."),
    ] = "auto",
    check_claims: ClaimsArg = None,
) -> Annotated[CallToolResult, AnswerResult]:
    """Ask a vision-language model a question about one image; the answer's claims come back checked against the
    image, weak ones flagged."""
    app = app_state(ctx)
    started = time.perf_counter()
    spec, answerer = app.router.answerer(model)
    question = checks.check_text("question", question, app.settings, required=True)
    (loaded,) = await _load_all(app, [image], argument="image", max_pixels=DETAIL_MAX_PIXELS[detail])
    progress = ProgressReporter(ctx)
    answer = await answerer.answer(spec, [loaded], answer_prompt(question), max_tokens, progress)
    checked = await check_answer(app, check_claims, question, answer.text, [loaded], spec, progress)
    result = AnswerResult(answer=answer.text, model=spec.alias, provider=spec.provider, tokens_generated=answer.tokens,
                          image_size=[loaded.width, loaded.height], claim_check=checked,
                          timings=Timings(**answer.timings, total_s=time.perf_counter() - started))
    lines = [result.answer or "(the model gave no answer)", *(claim_lines(checked) if checked else [])]
    return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))],
                          structured_content=result.model_dump(mode="json"))


@fixes(images="Pass at least two images (and at most eight); for one image use ask_about_image.")
async def compare_images(
    images: Annotated[list[str], Field(min_length=2, max_length=MAX_COMPARE_IMAGES,
                                       description="The images (any image form), in order.")],
    ctx: AppContext,
    question: Annotated[str | None, Field(description="What to compare; default: what differs between them.")] = None,
    model: ModelArg = None,
    check_claims: ClaimsArg = None,
) -> Annotated[CallToolResult, CompareResult]:
    """Compare 2-8 images: a vision-language model answers (default: what differs), with measured facts per pair
    (similarity, SSIM, changed regions, a heat-map)."""
    app = app_state(ctx)
    started = time.perf_counter()
    spec, answerer = app.router.answerer(model)
    similarity_spec, classifier = app.router.classifier(None)
    question = checks.check_text("question", question, app.settings, required=False) or DEFAULT_COMPARE_QUESTION
    loaded = await _load_all(app, images)
    progress = ProgressReporter(ctx)

    # 1. Words: one multi-image prompt (images shrunk as for detail='auto', in a worker thread).
    shrunk = await anyio.to_thread.run_sync(lambda: [_shrink(image, DETAIL_MAX_PIXELS["auto"]) for image in loaded])
    answer = await answerer.answer(spec, shrunk, compare_prompt(question, len(loaded)), 512, progress)

    # 2. Numbers: embeddings for every pair, pixel metrics where sizes allow.
    embeddings = await classifier.embed(similarity_spec, loaded, progress)
    pairs = await anyio.to_thread.run_sync(lambda: _measure_pairs(app, loaded, embeddings))
    checked = await check_answer(app, check_claims, question, answer.text, shrunk, spec, progress)

    result = CompareResult(
        answer=answer.text, model=spec.alias, provider=spec.provider, similarity_model=similarity_spec.alias,
        tokens_generated=answer.tokens,
        images=[_shown(value) for value in images], pairs=pairs, claim_check=checked,
        timings=Timings(**answer.timings, total_s=time.perf_counter() - started),
    )
    return CallToolResult(content=_compare_content(result, wants_links(ctx)),
                          structured_content=result.model_dump(mode="json"))


# --------------------------------------------------------------------------- helpers


def _check_labels(labels: list[str], app: AppState) -> list[str]:
    maximum = app.settings.max_labels
    if not 2 <= len(labels) <= maximum:
        raise InvalidArgument("labels", labels, f"needs 2..{maximum} labels, got {len(labels)}",
                              "Give at least two candidate labels (scores are relative to the others).")
    cleaned = []
    for label in labels:
        text = label.strip()
        if not text:
            raise InvalidArgument("labels", labels, "contains an empty label", "Remove it.")
        if len(text) > 200:
            raise InvalidArgument("labels", text, "a label is over 200 characters", "Use short labels.")
        cleaned.append(text)
    seen: set[str] = set()
    repeats: set[str] = set()
    for label in cleaned:
        if label.casefold() in seen:
            repeats.add(label)
        seen.add(label.casefold())
    duplicates = sorted(repeats)
    if duplicates:
        raise InvalidArgument("labels", labels, f"has duplicates: {', '.join(duplicates)}", "Give each label once.")
    return cleaned


def _one_or_many(image: str | None, images: list[str] | None, maximum: int) -> list[str]:
    if (image is None) == (images is None):
        raise InvalidArgument("image", image, "give exactly one of image or images",
                              "Pass one image as image, or several as images.")
    if images is not None and not 1 <= len(images) <= maximum:
        raise InvalidArgument("images", f"<{len(images)} images>", f"accepted: 1..{maximum} images",
                              "Split the batch (or raise PIXELMCP_MAX_BATCH_IMAGES).")
    return [image] if image is not None else list(images)


async def _load_all(app: AppState, values: list[str], argument: str = "images",
                    max_pixels: int | None = None) -> list[Image.Image]:
    limits = app.input_limits

    def load() -> list[Image.Image]:
        loaded = []
        for index, value in enumerate(values):
            name = argument if argument == "image" else f"{argument}[{index}]"
            loaded.append(_shrink(load_image(value, argument=name, store=app.store, limits=limits), max_pixels))
        return loaded

    return await anyio.to_thread.run_sync(load)


def _shrink(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """`image` scaled down (aspect kept) to at most `max_pixels` pixels; unchanged when it fits."""
    if max_pixels is None or image.width * image.height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (image.width * image.height))
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _measure_pairs(app: AppState, images: list[Image.Image], embeddings: list[list[float]]) -> list[PairComparison]:
    from pixelmcp.media import (
        metrics,  # OpenCV: imported on first use, not at server start
    )

    pairs = []
    for a in range(len(images)):
        for b in range(a + 1, len(images)):
            similarity = round(sum(x * y for x, y in zip(embeddings[a], embeddings[b], strict=True)), 6)
            first, second = images[a], images[b]
            pair = PairComparison(a=a, b=b, clip_similarity=similarity, pixel_metrics=False)
            if first.size != second.size:
                ratio_a, ratio_b = first.width / first.height, second.width / second.height
                if abs(ratio_a / ratio_b - 1) > RESIZE_ASPECT_TOLERANCE:
                    pair.note = (f"sizes {first.width}x{first.height} and {second.width}x{second.height} have "
                                 "different aspect ratios; pixel metrics need the same framing")
                    pairs.append(pair)
                    continue
                second = second.resize(first.size, Image.Resampling.LANCZOS)
                pair.resized = True
            measured = metrics.compare_pixels(first, second)
            pair.pixel_metrics = True
            pair.ssim, pair.mean_abs_diff, pair.changed_share = (measured.ssim, measured.mean_abs_diff,
                                                                 measured.changed_share)
            pair.changed_regions = [Region(x=r.x, y=r.y, width=r.width, height=r.height) for r in measured.regions]
            if measured.mean_abs_diff > 0:
                try:
                    record = app.store.save(measured.heatmap, {"role": "difference heat-map", "pair": [a, b]})
                    pair.heatmap = record.ref()
                except StoreError as e:  # the comparison stands; only its picture is missing
                    pair.note = f"heat-map not saved: {e}"
            pairs.append(pair)
    return pairs


def _shown(value: str) -> str:
    text = value.strip()
    return text if len(text) <= 200 and not text.startswith("data:") else f"<{len(text)} characters of image data>"


def _compare_content(result: CompareResult, links: bool) -> list:
    lines = [result.answer or "(the model gave no answer)", "", "Measured:"]
    for pair in result.pairs:
        line = f"- images {pair.a + 1} and {pair.b + 1}: CLIP similarity {pair.clip_similarity:.3f}"
        if pair.pixel_metrics:
            line += (f", SSIM {pair.ssim:.3f}, mean difference {pair.mean_abs_diff:.3f}, "
                     f"{len(pair.changed_regions)} changed region(s)" + (" (after resize)" if pair.resized else ""))
            line += "".join(f" [{r.x},{r.y} {r.width}x{r.height}]" for r in pair.changed_regions[:5])
        else:
            line += f" (no pixel metrics: {pair.note})"
        if pair.pixel_metrics and pair.note:
            line += f" ({pair.note})"
        if pair.heatmap is not None:
            line += f"; difference heat-map: {pair.heatmap.uri}"
        lines.append(line)
    if result.claim_check is not None:
        lines += claim_lines(result.claim_check)
    content: list = [TextContent(type="text", text="\n".join(lines))]
    for pair in result.pairs:
        if pair.heatmap is not None and links:
            content.append(image_link(pair.heatmap, f"difference heat-map, images {pair.a + 1} and {pair.b + 1}",
                                      "Blue: unchanged; red: most changed."))
    return content
