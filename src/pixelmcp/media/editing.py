"""Pixel work around edits, with no model in it: masks, blending the original back, the canvas of an
outpainting, tiles for upscaling, and cut-outs.

Every change of a mask's shape is here: a user's mask fitted to its image, a segmenter's scores made a mask
or an alpha, and the hard mask a model repaints at the size it works at (engine and providers alike).

The rule every edit keeps: where the mask is black (0), the result's pixels are the original's,
exactly. `composite` guarantees it by construction: the blend weight is the mask times its own
blur, so it fades in inside the mask's edge and is exactly 0 wherever the mask is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

#: A mask pixel counts as "repaint" above this level (of 255) when the model needs a hard mask.
MASK_LEVEL = 128


def feather_radius(size: tuple[int, int]) -> int:
    """How far (px) an edit fades in from its mask's edge: about 1.5% of the shorter side, at least 2 px."""
    return max(2, round(min(size) / 64))


def mask_at(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A mask image as luminance (white = repaint) at `size` (any size is stretched to fit)."""
    gray = mask.convert("L")
    return gray if gray.size == size else gray.resize(size, Image.Resampling.BILINEAR)


def coverage(mask: Image.Image) -> float:
    """The fraction of pixels the mask repaints (at the hard threshold)."""
    values = np.asarray(mask.convert("L"))
    return float((values >= MASK_LEVEL).mean())


def fitted_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image | None:
    """A user's mask at the image's size (luminance, white = repaint); None when no pixel is light enough to
    repaint (MASK_LEVEL)."""
    fitted = mask_at(mask, size)
    return fitted if fitted.getextrema()[1] >= MASK_LEVEL else None


def mask_from_scores(scores: Image.Image, level: float) -> Image.Image | None:
    """A segmenter's scores (L, 0..255) as a mask: where it is at least `level` (0..1) sure, grown by the feather
    width so the repainted area covers the thing's edges; None where it is that sure nowhere."""
    threshold = round(level * 255)
    hard = scores.point(lambda v: 255 if v >= threshold else 0)
    if hard.getextrema()[1] == 0:
        return None
    return model_mask(hard, hard.size, feather_radius(hard.size))


def alpha_from_scores(scores: Image.Image, ramp: tuple[float, float]) -> tuple[Image.Image, int]:
    """A segmenter's scores as a cut-out's alpha: transparent below ramp[0], opaque above ramp[1], linear between;
    and the alpha's highest level."""
    low, high = (round(level * 255) for level in ramp)
    alpha = scores.point(lambda v: 0 if v <= low else 255 if v >= high else round((v - low) * 255 / (high - low)))
    return alpha, alpha.getextrema()[1]


def model_inputs(image: Image.Image, mask: Image.Image | None, size: tuple[int, int],
                 grow: int | None = None) -> tuple[Image.Image, Image.Image | None]:
    """What a model edits, at the `size` it works at: the image (RGB), and its hard mask grown by `grow` px
    (default: the feather radius, so the model also paints the band where the result fades into the original)."""
    start = image.convert("RGB")
    if start.size != size:
        start = start.resize(size, Image.Resampling.LANCZOS)
    if mask is None:
        return start, None
    return start, model_mask(mask, size, feather_radius(size) if grow is None else grow)


def model_mask(mask: Image.Image, size: tuple[int, int], grow: int) -> Image.Image:
    """The hard mask a model repaints: thresholded, at `size`, grown by `grow` px so the model also paints the
    band where the result fades into the original."""
    hard = mask_at(mask, size).point(lambda v: 255 if v >= MASK_LEVEL else 0)
    if grow > 0:
        hard = hard.filter(ImageFilter.MaxFilter(2 * grow + 1))
    return hard


def blend_weights(mask: Image.Image, radius: int) -> np.ndarray:
    """Per-pixel weight of the edited image, float32 0..1: the mask times its blur (0 wherever the mask is 0)."""
    soft = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    blurred = np.asarray(mask.convert("L").filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0
    return soft * blurred


def composite(original: Image.Image, edited: Image.Image, mask: Image.Image | None, radius: int) -> Image.Image:
    """`edited` at the original's size, with the original kept outside `mask` (exactly where the mask is 0).

    Without a mask, the edited image is only brought to the original's size."""
    if edited.size != original.size:
        edited = edited.resize(original.size, Image.Resampling.LANCZOS)
    edited = edited.convert("RGB")
    if mask is None:
        return edited
    weight = blend_weights(mask_at(mask, original.size), radius)[..., None]
    before = np.asarray(original.convert("RGB"), dtype=np.float32)
    after = np.asarray(edited, dtype=np.float32)
    blended = before * (1.0 - weight) + after * weight
    return Image.fromarray(np.rint(blended).astype(np.uint8), mode="RGB")


# --------------------------------------------------------------------------- outpainting


def extended_canvas(image: Image.Image, left: int, right: int, top: int,
                    bottom: int) -> tuple[Image.Image, Image.Image]:
    """The larger canvas with `image` placed unchanged, its border filled by stretching the image's edge pixels
    (a start the model continues better than a flat colour), and the mask of the new border (white)."""
    pixels = np.asarray(image.convert("RGB"))
    padded = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="edge")
    canvas = Image.fromarray(padded, mode="RGB")
    mask = Image.new("L", canvas.size, 255)
    mask.paste(0, (left, top, left + image.width, top + image.height))
    return canvas, mask


# --------------------------------------------------------------------------- tiles


@dataclass(frozen=True)
class Tile:
    left: int
    top: int
    width: int
    height: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.left + self.width, self.top + self.height


def padded_size(size: tuple[int, int], multiple: int, least: int) -> tuple[int, int]:
    """`size` rounded up to a multiple of `multiple`, each side at least `least`."""
    return tuple(max(math.ceil(side / multiple) * multiple, math.ceil(least / multiple) * multiple) for side in size)


def pad_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` at the top left of `size`, the rest filled with its edge pixels (cropped off again afterwards)."""
    if image.size == size:
        return image
    pixels = np.asarray(image.convert("RGB"))
    padded = np.pad(pixels, ((0, size[1] - image.height), (0, size[0] - image.width), (0, 0)), mode="edge")
    return Image.fromarray(padded, mode="RGB")


def tiles(size: tuple[int, int], tile: int, overlap: int) -> list[Tile]:
    """Overlapping tiles of at most `tile` px covering a canvas of `size` (already padded to the model's step),
    the last one in each row and column flush with the edge."""

    def starts(length: int, side: int) -> list[int]:
        if length <= side:
            return [0]
        stride = side - overlap
        found = list(range(0, length - side, stride))
        return [*found, length - side]

    width, height = size
    tile_w, tile_h = min(tile, width), min(tile, height)
    return [Tile(x, y, tile_w, tile_h) for y in starts(height, tile_h) for x in starts(width, tile_w)]


class TileBlender:
    """Tiles put back together: each weighted by its distance from its own edges, so seams fade across the
    overlap; the sum is divided by the weights at the end."""

    def __init__(self, size: tuple[int, int], overlap: int):
        self.total = np.zeros((size[1], size[0], 3), dtype=np.float64)
        self.weights = np.zeros((size[1], size[0], 1), dtype=np.float64)
        self.overlap = max(overlap, 1)

    def add(self, tile: Tile, image: Image.Image) -> None:
        ys = np.arange(tile.height, dtype=np.float64)
        xs = np.arange(tile.width, dtype=np.float64)
        ramp_y = np.minimum(ys + 1, tile.height - ys) / self.overlap
        ramp_x = np.minimum(xs + 1, tile.width - xs) / self.overlap
        weight = np.clip(np.minimum(ramp_y[:, None], ramp_x[None, :]), 1e-3, 1.0)[..., None]
        pixels = np.asarray(image.convert("RGB").resize((tile.width, tile.height)), dtype=np.float64)
        region = (slice(tile.top, tile.top + tile.height), slice(tile.left, tile.left + tile.width))
        self.total[region] += pixels * weight
        self.weights[region] += weight

    def image(self) -> Image.Image:
        return Image.fromarray(np.rint(self.total / np.maximum(self.weights, 1e-9)).clip(0, 255).astype(np.uint8),
                               mode="RGB")


# --------------------------------------------------------------------------- cut-outs


def cutout(image: Image.Image, alpha: Image.Image) -> Image.Image:
    """RGBA: the image's colours, `alpha` (L, at the image's size) as transparency."""
    rgba = image.convert("RGB").convert("RGBA")
    rgba.putalpha(mask_at(alpha, image.size))
    return rgba


def on_checkerboard(rgba: Image.Image, square: int = 16) -> Image.Image:
    """An RGBA image over a grey checkerboard, as image editors show transparency (for previews)."""
    ys, xs = np.indices((rgba.height, rgba.width))
    light = ((ys // square + xs // square) % 2 == 0)
    board = np.where(light[..., None], 204, 153).astype(np.uint8).repeat(3, axis=2)
    background = Image.fromarray(board, mode="RGB").convert("RGBA")
    return Image.alpha_composite(background, rgba.convert("RGBA")).convert("RGB")
