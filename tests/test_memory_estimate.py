"""The memory check counts what a loader reads from real hub layouts, not every file in a snapshot.

Folders are laid out as the published repos are (file names and sizes from their listings), with
sparse files: no bytes are written, only lengths.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from pixelmcp.catalog import IPAdapterSpec, ModelSpec
from pixelmcp.engine import memory, weights
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job
from pixelmcp.errors import ModelLoadError

GB = 10**9
MB = 10**6


def twins(folder: str, stem: str, fp32: int, *, bin_twin: bool = True, fp16: bool = True,
          non_ema: bool = False) -> dict[str, int]:
    """The weight files the hub holds for one component: fp32 and fp16, safetensors and bin."""
    files = {f"{folder}/{stem}.safetensors": fp32}
    if bin_twin:
        files[f"{folder}/{'pytorch_model' if stem == 'model' else stem}.bin"] = fp32
    if fp16:
        files[f"{folder}/{stem}.fp16.safetensors"] = fp32 // 2
        if bin_twin:
            files[f"{folder}/{'pytorch_model' if stem == 'model' else stem}.fp16.bin"] = fp32 // 2
    if non_ema:
        files[f"{folder}/{stem}.non_ema.safetensors"] = fp32
        files[f"{folder}/{stem}.non_ema.bin"] = fp32
    return files


SD15_INDEX = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.6.0",
              "feature_extractor": ["transformers", "CLIPImageProcessor"],
              "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
              "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
              "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
              "vae": ["diffusers", "AutoencoderKL"]}
SD15_FILES = {
    "v1-5-pruned-emaonly.safetensors": 4_270 * MB, "v1-5-pruned-emaonly.ckpt": 4_270 * MB,
    "v1-5-pruned.safetensors": 7_700 * MB, "v1-5-pruned.ckpt": 7_700 * MB,
    **twins("unet", "diffusion_pytorch_model", 3_440 * MB, non_ema=True),
    **twins("text_encoder", "model", 492 * MB),
    **twins("vae", "diffusion_pytorch_model", 335 * MB),
    **twins("safety_checker", "model", 1_220 * MB),
}
SDXL_INDEX = {"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.19.0.dev0",
              "force_zeros_for_empty_prompt": True, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
              "text_encoder": ["transformers", "CLIPTextModel"],
              "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
              "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
              "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
SDXL_FILES = {
    "sd_xl_base_1.0.safetensors": 6_940 * MB, "sd_xl_base_1.0_0.9vae.safetensors": 6_940 * MB,
    "sd_xl_offset_example-lora_1.0.safetensors": 50 * MB,
    **twins("unet", "diffusion_pytorch_model", 10_270 * MB, bin_twin=False),
    "unet/openvino_model.bin": 10_270 * MB, "unet/model.onnx": 1 * MB, "unet/model.onnx_data": 10_270 * MB,
    **twins("text_encoder", "model", 492 * MB, bin_twin=False),
    "text_encoder/openvino_model.bin": 492 * MB, "text_encoder/flax_model.msgpack": 492 * MB,
    **twins("text_encoder_2", "model", 2_780 * MB, bin_twin=False),
    **twins("vae", "diffusion_pytorch_model", 335 * MB, bin_twin=False),
    "vae_1_0/diffusion_pytorch_model.safetensors": 335 * MB,
    "vae_decoder/model.onnx": 198 * MB, "vae_encoder/model.onnx": 137 * MB,
}
IP_ADAPTER_FILES = {
    "models/ip-adapter_sd15.safetensors": 44 * MB, "models/ip-adapter_sd15_light.safetensors": 44 * MB,
    "models/ip-adapter-plus_sd15.safetensors": 98 * MB, "models/ip-adapter-full-face_sd15.safetensors": 43 * MB,
    "models/image_encoder/model.safetensors": 2_530 * MB, "models/image_encoder/pytorch_model.bin": 2_530 * MB,
    "sdxl_models/ip-adapter_sdxl.safetensors": 703 * MB,
    "sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors": 848 * MB,
    "sdxl_models/image_encoder/model.safetensors": 3_690 * MB,
}


def lay_out(root: Path, files: dict[str, int], index: dict | None = None) -> Path:
    """A folder with these files as sparse files of these lengths (and a model_index.json)."""
    for name, size in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.truncate(size)
    if index is not None:
        (root / "model_index.json").write_text(json.dumps(index))
    return root


@pytest.mark.parametrize(("dtype_bytes", "variant", "expected"), [
    (4, None, (3_440 + 492 + 335) * MB),        # CPU: the fp32 weights of unet, text encoder and vae
    (2, "fp16", (1_720 + 246 + 167) * MB),       # GPU: the fp16 variant
    (2, None, (3_440 + 492 + 335) * MB // 2),    # GPU, an entry without a variant: fp32 files cast to half
])
def test_sd15_counts_only_the_components_the_pipeline_loads(tmp_path, dtype_bytes, variant, expected):
    folder = lay_out(tmp_path / "sd15", SD15_FILES, SD15_INDEX)
    assert sum(SD15_FILES.values()) > 29 * GB  # what counting every file used to say
    estimate = memory.estimate_bytes(str(folder), dtype_bytes, preferred_variant=variant)
    assert estimate == pytest.approx(expected, rel=0.01)


def test_sdxl_ignores_root_checkpoints_onnx_openvino_flax_and_unlisted_folders(tmp_path):
    folder = lay_out(tmp_path / "sdxl", SDXL_FILES, SDXL_INDEX)
    read = set(weights.folder_plan(folder).weights)
    assert read == {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                    "text_encoder_2/model.safetensors", "vae/diffusion_pytorch_model.safetensors"}
    assert memory.estimate_bytes(str(folder), 4) == pytest.approx((10_270 + 492 + 2_780 + 335) * MB, rel=0.01)


def test_an_ip_adapter_counts_its_weight_file_and_its_image_encoder_only(tmp_path):
    folder = lay_out(tmp_path / "ip", IP_ADAPTER_FILES)
    adapter = IPAdapterSpec(source=str(folder), subfolder="models", weight_name="ip-adapter_sd15.safetensors")
    spec = ModelSpec(alias="sd15+ip-adapter", kind="sd15", source=str(folder), ip_adapter=adapter)
    estimate = memory.estimate_bytes(str(folder), 4, paths=spec.weight_paths)
    assert estimate == pytest.approx((44 + 2_530) * MB, rel=0.01)


def test_safetensors_headers_give_exact_sizes_whatever_the_stored_dtype(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    save_file({"weight": torch.zeros(1000, dtype=torch.bfloat16), "steps": torch.zeros(10, dtype=torch.int64)},
              str(folder / "model.safetensors"))
    assert memory.estimate_bytes(str(folder), 4) == 1000 * 4 + 10 * 8
    assert memory.estimate_bytes(str(folder), 2) == 1000 * 2 + 10 * 8


@pytest.mark.parametrize(("name", "files", "index", "fits_mb"), [
    ("sd15", SD15_FILES, SD15_INDEX, 15_000),
    ("sdxl", SDXL_FILES, SDXL_INDEX, 15_000),
])
def test_a_real_layout_is_admitted_under_a_budget_it_fits(make_settings, tmp_path, name, files, index, fits_mb):
    folder = lay_out(tmp_path / name, files, index)
    settings = make_settings(memory_budget_mb=fits_mb, device="cpu",
                             models={name: {"source": str(folder), "kind": name}})
    pool = ModelPool(settings)
    loaded = pool.get(settings.catalog[name], lambda source, device, dtype: torch.nn.Linear(2, 2), Job())
    assert isinstance(loaded, torch.nn.Linear)
    too_small = ModelPool(make_settings(memory_budget_mb=2_000, device="cpu",
                                        models={name: {"source": str(folder), "kind": name}}))
    with pytest.raises(ModelLoadError, match="needs about"):
        too_small.get(settings.catalog[name], lambda source, device, dtype: torch.nn.Linear(2, 2), Job())
