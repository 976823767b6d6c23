"""Control maps and adapters: ControlNet models, IP-Adapters, canny and depth preprocessing.

ControlNets and IP-Adapters never get a pipeline of their own: diffusion.py builds a
per-request view over the already loaded base pipeline with `from_pipe`, so the UNet, VAE and
text encoders are shared. The pool caches the ControlNet models, the IP-Adapter weights (in
CPU memory) with their image encoder, and the depth estimator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pixelmcp.catalog import IPAdapterSpec, ModelSpec
from pixelmcp.engine.loading import loading
from pixelmcp.engine.queue import Job


@dataclass
class IPAdapter:
    """An IP-Adapter ready for `load_ip_adapter`: its state dict and its CLIP image encoder."""

    state_dict: dict[str, dict[str, Any]]
    image_encoder: Any
    feature_extractor: Any


def load_controlnet(spec: ModelSpec) -> Callable[[str, str, Any], Any]:
    """A pool loader for the ControlNet at `spec.source`."""

    def load(source: str, device: str, dtype) -> Any:
        from diffusers import ControlNetModel

        with loading(spec, source, dtype) as fetched:
            variant = {"variant": fetched.variant} if fetched.variant else {}
            return ControlNetModel.from_pretrained(fetched.folder, dtype=dtype, local_files_only=True,
                                                   **variant).to(device).eval()

    return load


def load_ip_adapter(spec: ModelSpec, adapter: IPAdapterSpec) -> Callable[[str, str, Any], IPAdapter]:
    """A pool loader: the adapter's weights (kept on CPU) and its image encoder (on the device)."""

    def load(source: str, device: str, dtype) -> IPAdapter:
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        with loading(spec, source, dtype, paths=spec.weight_paths) as fetched:
            weights = Path(fetched.folder) / adapter.subfolder / adapter.weight_name
            if not weights.is_file():
                raise OSError(f"no IP-Adapter weights at {weights}")
            encoder = CLIPVisionModelWithProjection.from_pretrained(
                fetched.folder, subfolder=f"{adapter.subfolder}/{adapter.image_encoder_subfolder}", dtype=dtype,
                local_files_only=True,
            ).to(device).eval()
        size = encoder.config.image_size
        return IPAdapter(_read_adapter(weights), encoder, CLIPImageProcessor(size=size, crop_size=size))

    return load


def _read_adapter(path: Path) -> dict[str, dict[str, Any]]:
    """{"image_proj": {...}, "ip_adapter": {...}} from a .safetensors or .bin checkpoint."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():
                group, _, name = key.partition(".")
                if group in state:
                    state[group][name] = f.get_tensor(key)
        return state
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def ip_adapter_scale(mode: str, scale: float, style_blocks: dict | None) -> float | dict:
    """`set_ip_adapter_scale` argument: everywhere (subject), or only the style blocks (InstantStyle)."""
    if mode == "subject" or style_blocks is None:
        return scale

    def scaled(value):
        if isinstance(value, dict):
            return {key: scaled(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [scaled(inner) for inner in value]
        return value * scale

    return scaled(style_blocks)


# --------------------------------------------------------------------------- preprocessors


def canny_map(image: Image.Image, low_threshold: int, high_threshold: int) -> Image.Image:
    """White edges on black, as canny ControlNets were trained on (OpenCV's Canny)."""
    import cv2
    import numpy as np

    gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, low_threshold, high_threshold)
    return Image.fromarray(np.stack([edges] * 3, axis=-1))


@dataclass
class DepthEstimator:
    processor: Any
    model: Any


def load_depth_estimator(spec: ModelSpec) -> Callable[[str, str, Any], DepthEstimator]:
    def load(source: str, device: str, dtype) -> DepthEstimator:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        with loading(spec, source, dtype) as fetched:
            processor = AutoImageProcessor.from_pretrained(fetched.folder, local_files_only=True)
            model = AutoModelForDepthEstimation.from_pretrained(fetched.folder, dtype=dtype,
                                                                local_files_only=True).to(device).eval()
        return DepthEstimator(processor, model)

    return load


def depth_map(estimator: DepthEstimator, image: Image.Image, job: Job) -> Image.Image:
    """Relative depth as a grey image the size of `image` (near = bright), normalised to 0..255."""
    import torch

    job.check()
    inputs = estimator.processor(images=image, return_tensors="pt").to(estimator.model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(estimator.model.dtype)
    with torch.inference_mode():
        depth = estimator.model(**inputs).predicted_depth
    depth = torch.nn.functional.interpolate(
        depth[:, None].float(), size=(image.height, image.width), mode="bicubic", align_corners=False
    )[0, 0]
    low, high = depth.min(), depth.max()
    if not bool(high > low):
        scaled = torch.zeros_like(depth, dtype=torch.uint8)  # a flat scene (or a degenerate estimate)
    else:
        scaled = ((depth - low) / (high - low) * 255.0).round().clamp(0, 255).to(torch.uint8)
    grey = Image.fromarray(scaled.cpu().numpy())
    return Image.merge("RGB", (grey, grey, grey))
