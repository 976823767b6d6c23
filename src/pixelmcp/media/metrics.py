"""Pixel measurements for compare_images: SSIM, mean absolute difference, changed regions, heat-maps.

Plain numpy and OpenCV on 8-bit RGB images of the same size; no model involved, so the numbers
can be used to check what a vision-language model says about the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

#: A pixel counts as changed when a channel differs by more than this (of 255).
CHANGE_THRESHOLD = 24
#: Changed blobs smaller than this share of the image are treated as noise.
MIN_REGION_SHARE = 0.0005


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    width: int
    height: int
    pixels: int


@dataclass(frozen=True)
class PixelComparison:
    ssim: float
    mean_abs_diff: float  # 0..1, over all pixels and channels
    changed_share: float  # share of pixels that changed
    regions: list[Region]
    heatmap: Image.Image


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two grey images (Wang et al. 2004: 11x11 Gaussian, sigma 1.5)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(np.clip(ssim_map.mean(), -1.0, 1.0))


def compare_pixels(first: Image.Image, second: Image.Image) -> PixelComparison:
    """Measure how `second` differs from `first` (same size required).

    Whole-image reductions use OpenCV, which releases the GIL while it works: numpy holds it through a reduction
    over a short axis (the three channels), which would hold the server's event loop up on large photos."""
    if first.size != second.size:
        raise ValueError(f"sizes differ: {first.size} vs {second.size}")
    a = np.asarray(first.convert("RGB"))
    b = np.asarray(second.convert("RGB"))
    absolute = cv2.absdiff(a, b)
    diff = cv2.max(cv2.max(absolute[:, :, 0], absolute[:, :, 1]), absolute[:, :, 2])  # the largest channel's
    gray_a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
    gray_b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    peak = int(cv2.minMaxLoc(diff)[1])
    score = 1.0 if peak == 0 else round(ssim(gray_a, gray_b), 6)
    changed = cv2.threshold(diff, CHANGE_THRESHOLD, 1, cv2.THRESH_BINARY)[1]
    return PixelComparison(
        ssim=score,
        mean_abs_diff=round(float(sum(cv2.mean(absolute)[:3]) / 3 / 255.0), 6),
        changed_share=round(cv2.countNonZero(changed) / changed.size, 6),
        regions=changed_regions(diff, changed),
        heatmap=heatmap(diff, peak),
    )


def changed_regions(diff: np.ndarray, changed: np.ndarray | None = None) -> list[Region]:
    """Bounding boxes of connected areas where pixels changed (`changed`: 1 where diff > CHANGE_THRESHOLD, made
    here when not given), largest first."""
    mask = changed if changed is not None else (diff > CHANGE_THRESHOLD).astype(np.uint8)
    # Closing joins a changed object's pixels that happen to match by chance; it does not grow boxes.
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_pixels = max(4, int(MIN_REGION_SHARE * diff.size))
    regions = [
        Region(int(x), int(y), int(w), int(h), int(area))
        for x, y, w, h, area in stats[1:count]
        if area >= min_pixels
    ]
    return sorted(regions, key=lambda r: r.pixels, reverse=True)


def heatmap(diff: np.ndarray, peak: int | None = None) -> Image.Image:
    """Per-pixel difference as a colour map (blue = same, red = most different), scaled to its `peak`."""
    peak = int(cv2.minMaxLoc(diff)[1]) if peak is None else peak
    scaled = np.zeros_like(diff) if peak == 0 else cv2.convertScaleAbs(diff, alpha=255.0 / peak)
    coloured = cv2.applyColorMap(scaled, cv2.COLORMAP_JET)
    return Image.fromarray(cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB))
