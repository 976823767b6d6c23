"""`pixelmcp pull` and first-use downloads fetch exactly what the loaders read, against a local fake hub
that lists the real repositories' files (names and sizes as published) with small stand-in contents."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_hub import FakeHub
from test_memory_estimate import IP_ADAPTER_FILES, SD15_FILES, SD15_INDEX, SDXL_FILES, SDXL_INDEX, MB

CONFIGS = {"model_index.json": 600, "README.md": 14_000, ".gitattributes": 1_500}


def component_configs(*folders: str) -> dict[str, int]:
    return {f"{folder}/config.json": 700 for folder in folders}


def controlnet(fp32: int, *, fp16: bool = True, bins_only: bool = False) -> dict[str, int]:
    files = {"config.json": 1_000, "README.md": 5_000, "images/input.png": 400_000}
    if bins_only:
        return {**files, "diffusion_pytorch_model.bin": fp32}
    files.update({"diffusion_pytorch_model.safetensors": fp32, "diffusion_pytorch_model.bin": fp32})
    if fp16:
        files.update({"diffusion_pytorch_model.fp16.safetensors": fp32 // 2, "diffusion_pytorch_model.fp16.bin": fp32 // 2})
    return files


def transformers_repo(weights: dict[str, int], extra: dict[str, int] | None = None) -> dict[str, int]:
    return {"config.json": 4_000, "README.md": 9_000, "tokenizer.json": 2_000_000, "tokenizer_config.json": 5_000,
            "preprocessor_config.json": 500, **weights, **(extra or {})}


REPOS = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {
        **SD15_FILES, **CONFIGS, **component_configs("unet", "vae", "text_encoder", "safety_checker"),
        "tokenizer/vocab.json": 1_000_000, "tokenizer/merges.txt": 500_000, "scheduler/scheduler_config.json": 300,
        "feature_extractor/preprocessor_config.json": 500},
    "stabilityai/stable-diffusion-xl-base-1.0": {
        **SDXL_FILES, **CONFIGS, **component_configs("unet", "vae", "text_encoder", "text_encoder_2", "vae_1_0"),
        "tokenizer/vocab.json": 1_000_000, "tokenizer_2/vocab.json": 1_000_000, "scheduler/scheduler_config.json": 500,
        "01.png": 1_500_000},
    "lllyasviel/control_v11p_sd15_canny": controlnet(1_445 * MB),
    "lllyasviel/control_v11f1p_sd15_depth": controlnet(1_445 * MB),
    "lllyasviel/control_v11p_sd15_openpose": controlnet(1_445 * MB),
    "diffusers/controlnet-canny-sdxl-1.0": controlnet(5_000 * MB),
    "diffusers/controlnet-depth-sdxl-1.0": controlnet(5_000 * MB),
    "thibaud/controlnet-openpose-sdxl-1.0": {**controlnet(5_000 * MB, bins_only=True),
                                             "control-lora-openposeXL2-rank256.safetensors": 774 * MB},
    "h94/IP-Adapter": {**IP_ADAPTER_FILES, "models/image_encoder/config.json": 600,
                       "sdxl_models/image_encoder/config.json": 600, "models/ip-adapter_sd15.bin": 44 * MB,
                       "README.md": 6_000},
    "depth-anything/Depth-Anything-V2-Small-hf": transformers_repo({"model.safetensors": 99 * MB}),
    "openai/clip-vit-large-patch14": transformers_repo(
        {"model.safetensors": 1_710 * MB, "pytorch_model.bin": 1_710 * MB, "flax_model.msgpack": 1_710 * MB,
         "tf_model.h5": 1_710 * MB}, {"vocab.json": 961_000, "merges.txt": 525_000}),
    "HuggingFaceTB/SmolVLM-Instruct": transformers_repo(
        {"model.safetensors": 4_490 * MB}, {"onnx/vision_encoder.onnx": 1_700 * MB, "onnx/decoder_model_merged.onnx":
                                            6_800 * MB, "onnx/decoder_model_merged.onnx_data": 15_000 * MB,
                                            "onnx/config.json": 3_000, "chat_template.json": 500}),
}
INDEXES = {("stable-diffusion-v1-5/stable-diffusion-v1-5", "model_index.json"): json.dumps(SD15_INDEX).encode(),
           ("stabilityai/stable-diffusion-xl-base-1.0", "model_index.json"): json.dumps(SDXL_INDEX).encode()}


@pytest.fixture
def hub():
    with FakeHub(REPOS, INDEXES) as fake:
        yield fake


@pytest.fixture
def pixelmcp(hub, tmp_path):
    """The CLI in the default profile, talking to the fake hub with an empty cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELMCP_", "HF_"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), PIXELMCP_OUTPUT_DIR=str(tmp_path / "out"),
               CUDA_VISIBLE_DEVICES="", HF_HUB_DISABLE_PROGRESS_BARS="1")

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pixelmcp.cli", *args], capture_output=True, text=True,
                              timeout=300, env={**env, **extra}, check=False)

    return run


SD15_FP16 = {"unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.fp16.safetensors",
             "vae/diffusion_pytorch_model.fp16.safetensors"}
SD15_SMALL = {"model_index.json", "README.md", "unet/config.json", "vae/config.json", "text_encoder/config.json",
              "safety_checker/config.json", "tokenizer/vocab.json", "tokenizer/merges.txt",
              "scheduler/scheduler_config.json", "feature_extractor/preprocessor_config.json"}


def test_pull_fetches_exactly_what_sd15_its_controlnets_adapter_and_depth_estimator_load(hub, pixelmcp):
    out = pixelmcp("pull", "sd15", PIXELMCP_DTYPE="float16")  # a GPU's half precision: the fp16 variant
    assert out.returncode == 0, out.stdout + out.stderr
    assert hub.files_of("stable-diffusion-v1-5/stable-diffusion-v1-5") == SD15_FP16 | SD15_SMALL
    for repo in ("lllyasviel/control_v11p_sd15_canny", "lllyasviel/control_v11f1p_sd15_depth",
                 "lllyasviel/control_v11p_sd15_openpose"):
        assert hub.files_of(repo) == {"config.json", "README.md", "images/input.png",
                                      "diffusion_pytorch_model.fp16.safetensors"}
    assert hub.files_of("h94/IP-Adapter") == {"models/ip-adapter_sd15.safetensors", "models/image_encoder/config.json",
                                              "models/image_encoder/model.safetensors"}
    assert hub.files_of("depth-anything/Depth-Anything-V2-Small-hf") == set(
        REPOS["depth-anything/Depth-Anything-V2-Small-hf"])  # every file is needed (and small)
    assert "sd15: stable-diffusion-v1-5/stable-diffusion-v1-5 ready (13 files" in out.stdout


def test_pull_on_cpu_takes_the_full_precision_weights_once(hub, pixelmcp):
    out = pixelmcp("pull", "sd15")
    assert out.returncode == 0, out.stdout + out.stderr
    weights = {name for name in hub.files_of("stable-diffusion-v1-5/stable-diffusion-v1-5")
               if name.endswith((".safetensors", ".bin", ".ckpt"))}
    assert weights == {"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                       "vae/diffusion_pytorch_model.safetensors"}


def test_dry_run_prints_the_files_and_bytes_and_downloads_no_weights(hub, pixelmcp):
    out = pixelmcp("pull", "sdxl", "--dry-run", PIXELMCP_DTYPE="float16")
    assert out.returncode == 0, out.stdout + out.stderr
    assert {name for _, name in hub.downloaded} <= {"model_index.json"}
    lines = out.stdout.splitlines()
    sdxl = next(line for line in lines if line.startswith("sdxl: "))
    assert "fp16 weights" in sdxl and "GB" in sdxl
    listed = {line.split()[0] for line in lines if line.startswith("    ")}
    assert {"unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder_2/model.fp16.safetensors"} <= listed
    assert not any(name.endswith((".onnx", ".onnx_data", ".msgpack", ".ckpt")) or name.startswith(("vae_1_0/diffusion",
                   "sd_xl_")) or "openvino" in name for name in listed)
    # The openpose ControlNet has only a .bin (no fp16): that, and not the LoRA that shares its folder.
    assert "diffusion_pytorch_model.bin" in listed and "control-lora-openposeXL2-rank256.safetensors" not in listed
    total = next(line for line in lines if line.startswith("total: "))
    gigabytes = float(total.split()[1])
    expected = (5_135 + 246 + 1_390 + 167 + 2 * 2_500 + 5_000 + 703 + 3_690 + 99) / 1000  # about 21.4 GB
    assert gigabytes == pytest.approx(expected, abs=0.3)


def test_a_vlm_pull_skips_onnx_exports_and_brings_the_clip_compare_images_uses(hub, pixelmcp):
    out = pixelmcp("pull", "smolvlm")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not any(name.startswith("onnx/") for name in hub.files_of("HuggingFaceTB/SmolVLM-Instruct"))
    assert "model.safetensors" in hub.files_of("HuggingFaceTB/SmolVLM-Instruct")
    clip = hub.files_of("openai/clip-vit-large-patch14")
    assert "model.safetensors" in clip and not clip & {"pytorch_model.bin", "flax_model.msgpack", "tf_model.h5"}


def test_the_first_load_fetches_the_same_files_as_pull(hub, pixelmcp, tmp_path):
    out = pixelmcp("generate", "a", "--model", "sd15", "--no-rewrite", PIXELMCP_DTYPE="float16")
    # The stand-in weights cannot load; the download before it is what this test is about.
    assert out.returncode == 1 and "Could not load model 'sd15'" in out.stderr
    assert hub.files_of("stable-diffusion-v1-5/stable-diffusion-v1-5") == SD15_FP16 | SD15_SMALL


def test_an_unreachable_hub_with_nothing_cached_is_a_clear_message(pixelmcp):
    out = pixelmcp("pull", "clip-vit-base", HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_ETAG_TIMEOUT="2")
    assert out.returncode == 1 and "the hub cannot be reached for openai/clip-vit-base-patch32" in out.stdout
