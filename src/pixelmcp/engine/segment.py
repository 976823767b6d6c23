"""Masks from words with CLIPSeg (transformers' CLIPSegForImageSegmentation, no remote code).

CLIPSeg scores every pixel of a 352 px view of the image against a text prompt; the scores are
upsampled to the image's size. Its masks are soft and coarse at object edges: they say where
something is, which is what inpainting needs (the edit fades in over the mask's edge anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from pixelmcp.catalog import ModelSpec
from pixelmcp.engine.loading import pretrained_pair
from pixelmcp.engine.queue import Job


@dataclass
class SegmenterModel:
    model: Any
    processor: Any


def load_segmenter(spec: ModelSpec) -> Callable[[str, str, Any], SegmenterModel]:
    """A pool loader for a CLIPSeg checkpoint."""

    def load(source: str, device: str, dtype) -> SegmenterModel:
        from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor

        processor, model = pretrained_pair(spec, source, device, dtype, CLIPSegProcessor, CLIPSegForImageSegmentation)
        return SegmenterModel(model, processor)

    return load


def segment(segmenter: SegmenterModel, image: Image.Image, prompts: list[str], job: Job) -> list[Image.Image]:
    """One L image per prompt, at the image's size: the sigmoid of CLIPSeg's logits (255 = surely)."""
    import numpy as np
    import torch

    model = segmenter.model
    inputs = segmenter.processor(text=prompts, images=[image.convert("RGB")] * len(prompts), padding=True,
                                 return_tensors="pt")
    parameter = next(model.parameters())
    inputs = {key: value.to(parameter.device, dtype=parameter.dtype if value.is_floating_point() else value.dtype)
              for key, value in inputs.items()}
    job.check()
    with torch.inference_mode():
        logits = model(**inputs).logits
    logits = logits.reshape(len(prompts), *logits.shape[-2:]).float()[:, None]
    scores = torch.nn.functional.interpolate(logits, size=(image.height, image.width), mode="bilinear",
                                             align_corners=False).sigmoid()[:, 0]
    values = np.rint(scores.cpu().numpy() * 255).astype(np.uint8)
    return [Image.fromarray(value, mode="L") for value in values]
