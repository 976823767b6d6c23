"""Control maps and adapters: ControlNet models, IP-Adapters, canny and depth preprocessing.

ControlNets and IP-Adapters never get a pipeline of their own: diffusion.py builds a
per-request view over the already loaded base pipeline (`diffusion.view`), so the UNet, VAE and
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
from pixelmcp.engine.loading import loading, pretrained_pair
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
        # In the model's dtype from the start: attached per request, it is then never cast on the way in.
        state = {group: {name: tensor.to(dtype) if tensor.is_floating_point() else tensor
                         for name, tensor in tensors.items()} for group, tensors in _read_adapter(weights).items()}
        return IPAdapter(state, encoder, CLIPImageProcessor(size=size, crop_size=size))

    return load


def _read_adapter(path: Path) -> dict[str, dict[str, Any]]:
    """{"image_proj": {...}, "ip_adapter": {...}} from a .safetensors or .bin checkpoint."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        state: dict[str, dict[str, Any]] = {"image_proj": {}, "ip_adapter": {}}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for key in f.keys():  # noqa: SIM118 (a safetensors file handle, not a dict: it only has keys())
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


#: ADE20K's 150 class colours, in class order: the colours segmentation ControlNets were trained on.
ADE20K_PALETTE: tuple[tuple[int, int, int], ...] = tuple(tuple(colour) for colour in (
    [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50],
    [4, 200, 3], [120, 120, 80], [140, 140, 140], [204, 5, 255],
    [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7],
    [150, 5, 61], [120, 120, 70], [8, 255, 51], [255, 6, 82],
    [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3],
    [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255],
    [255, 7, 71], [255, 9, 224], [9, 7, 230], [220, 220, 220],
    [255, 9, 92], [112, 9, 255], [8, 255, 214], [7, 255, 224],
    [255, 184, 6], [10, 255, 71], [255, 41, 10], [7, 255, 255],
    [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7],
    [255, 122, 8], [0, 255, 20], [255, 8, 41], [255, 5, 153],
    [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255],
    [140, 140, 140], [250, 10, 15], [20, 255, 0], [31, 255, 0],
    [255, 31, 0], [255, 224, 0], [153, 255, 0], [0, 0, 255],
    [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255],
    [11, 200, 200], [255, 82, 0], [0, 255, 245], [0, 61, 255],
    [0, 255, 112], [0, 255, 133], [255, 0, 0], [255, 163, 0],
    [255, 102, 0], [194, 255, 0], [0, 143, 255], [51, 255, 0],
    [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255],
    [173, 255, 0], [0, 255, 153], [255, 92, 0], [255, 0, 255],
    [255, 0, 245], [255, 0, 102], [255, 173, 0], [255, 0, 20],
    [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255],
    [255, 0, 204], [0, 255, 194], [0, 255, 82], [0, 10, 255],
    [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255],
    [0, 255, 163], [255, 153, 0], [0, 255, 10], [255, 112, 0],
    [143, 255, 0], [82, 0, 255], [163, 255, 0], [255, 235, 0],
    [8, 184, 170], [133, 0, 255], [0, 255, 92], [184, 0, 255],
    [255, 0, 31], [0, 184, 255], [0, 214, 255], [255, 0, 112],
    [92, 255, 0], [0, 224, 255], [112, 224, 255], [70, 184, 160],
    [163, 0, 255], [153, 0, 255], [71, 255, 0], [255, 0, 163],
    [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0],
    [255, 0, 235], [245, 0, 255], [255, 0, 122], [255, 245, 0],
    [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255],
    [255, 255, 0], [0, 153, 255], [0, 41, 255], [0, 255, 204],
    [41, 0, 255], [41, 255, 0], [173, 0, 255], [0, 245, 255],
    [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255],
    [184, 255, 0], [0, 133, 255], [255, 214, 0], [25, 194, 194],
    [102, 255, 0], [92, 0, 255],
))


@dataclass
class SemanticSegmenter:
    """An ADE20K semantic segmentation model (UperNet, SegFormer, ...) and its image processor."""

    processor: Any
    model: Any


def load_semantic_segmenter(spec: ModelSpec) -> Callable[[str, str, Any], SemanticSegmenter]:
    return _image_model_loader(spec, SemanticSegmenter, "AutoModelForSemanticSegmentation")


def segmentation_map(segmenter: SemanticSegmenter, image: Image.Image, job: Job) -> Image.Image:
    """Each pixel coloured by its ADE20K class, at the image's size (the map segmentation ControlNets read)."""
    import numpy as np
    import torch

    logits = torch.nn.functional.interpolate(_predict(segmenter, image, job).logits.float(),
                                             size=(image.height, image.width), mode="bilinear", align_corners=False)
    classes = logits.argmax(dim=1)[0].cpu().numpy()
    palette = np.asarray(ADE20K_PALETTE, dtype=np.uint8)
    return Image.fromarray(palette[classes % len(palette)], mode="RGB")


def load_depth_estimator(spec: ModelSpec) -> Callable[[str, str, Any], DepthEstimator]:
    return _image_model_loader(spec, DepthEstimator, "AutoModelForDepthEstimation")


def _image_model_loader(spec: ModelSpec, bundle: type, model_class: str) -> Callable[[str, str, Any], Any]:
    """A pool loader for an image model and its image processor (transformers' `model_class` auto class)."""

    def load(source: str, device: str, dtype) -> Any:
        import transformers

        return bundle(*pretrained_pair(spec, source, device, dtype, transformers.AutoImageProcessor,
                                       getattr(transformers, model_class)))

    return load


def depth_map(estimator: DepthEstimator, image: Image.Image, job: Job) -> Image.Image:
    """Relative depth as a grey image the size of `image` (near = bright), normalised to 0..255."""
    import torch

    depth = _predict(estimator, image, job).predicted_depth
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


def _predict(estimator: DepthEstimator | SemanticSegmenter, image: Image.Image, job: Job) -> Any:
    """One forward pass of an image model on `image` (its processor's size and normalisation)."""
    import torch

    job.check()
    inputs = estimator.processor(images=image.convert("RGB"), return_tensors="pt").to(estimator.model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(estimator.model.dtype)
    with torch.inference_mode():
        return estimator.model(**inputs)
