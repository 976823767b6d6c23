"""`pixelmcp pull` and first-use downloads fetch exactly what the loaders read, against a local fake hub
that lists the real repositories' files (names and sizes as published) with small stand-in contents."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_hub import FakeHub
from test_memory_estimate import (
    IP_ADAPTER_FILES,
    MB,
    SD15_FILES,
    SD15_INDEX,
    SDXL_FILES,
    SDXL_INDEX,
    twins,
)

from pixelmcp.catalog import DEFAULT_CATALOG

CONFIGS = {"model_index.json": 600, "README.md": 14_000, ".gitattributes": 1_500}


def component_configs(*folders: str) -> dict[str, int]:
    return {f"{folder}/config.json": 700 for folder in folders}


def controlnet(fp32: int, *, fp16: bool = True, bins_only: bool = False) -> dict[str, int]:
    files = {"config.json": 1_000, "README.md": 5_000, "images/input.png": 400_000}
    if bins_only:
        return {**files, "diffusion_pytorch_model.bin": fp32}
    files.update({"diffusion_pytorch_model.safetensors": fp32, "diffusion_pytorch_model.bin": fp32})
    if fp16:
        files.update({"diffusion_pytorch_model.fp16.safetensors": fp32 // 2,
                      "diffusion_pytorch_model.fp16.bin": fp32 // 2})
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
    "lllyasviel/control_v11p_sd15_seg": controlnet(1_445 * MB),
    "openmmlab/upernet-convnext-small": transformers_repo({"model.safetensors": 328 * MB,
                                                          "pytorch_model.bin": 328 * MB}),
    "diffusers/controlnet-canny-sdxl-1.0": controlnet(5_000 * MB),
    "diffusers/controlnet-depth-sdxl-1.0": controlnet(5_000 * MB),
    "thibaud/controlnet-openpose-sdxl-1.0": {**controlnet(5_000 * MB, bins_only=True),
                                             "control-lora-openposeXL2-rank256.safetensors": 774 * MB},
    "h94/IP-Adapter": {**IP_ADAPTER_FILES, "models/image_encoder/config.json": 600,
                       "sdxl_models/image_encoder/config.json": 600, "models/ip-adapter_sd15.bin": 44 * MB,
                       "README.md": 6_000},
    "depth-anything/Depth-Anything-V2-Small-hf": transformers_repo({"model.safetensors": 99 * MB}),
    "usyd-community/vitpose-base-simple": transformers_repo({"model.safetensors": 360 * MB}),
    "PekingU/rtdetr_r50vd_coco_o365": transformers_repo({"model.safetensors": 172 * MB,
                                                         "pytorch_model.bin": 172 * MB}),
    # Dedicated inpainting checkpoints: whole pipelines, of which only the UNet loads.
    "stable-diffusion-v1-5/stable-diffusion-inpainting": {
        **CONFIGS, "sd-v1-5-inpainting.ckpt": 4_270 * MB, **twins("unet", "diffusion_pytorch_model", 3_440 * MB),
        **twins("text_encoder", "model", 492 * MB), **twins("vae", "diffusion_pytorch_model", 335 * MB),
        **component_configs("unet", "vae", "text_encoder"), "tokenizer/vocab.json": 1_000_000},
    "diffusers/stable-diffusion-xl-1.0-inpainting-0.1": {
        **CONFIGS, **twins("unet", "diffusion_pytorch_model", 10_270 * MB),
        **twins("text_encoder", "model", 492 * MB), **twins("text_encoder_2", "model", 2_780 * MB),
        **twins("vae", "diffusion_pytorch_model", 335 * MB),
        **component_configs("unet", "vae", "text_encoder", "text_encoder_2")},
    # CLIPSeg: the main branch has only a .bin.
    "CIDAS/clipseg-rd64-refined": {"config.json": 8_920, "pytorch_model.bin": 603 * MB, "merges.txt": 525_000,
                                   "vocab.json": 1_060_000, "preprocessor_config.json": 368,
                                   "special_tokens_map.json": 472, "tokenizer_config.json": 974,
                                   ".gitattributes": 1_430},
    "openai/clip-vit-large-patch14": transformers_repo(
        {"model.safetensors": 1_710 * MB, "pytorch_model.bin": 1_710 * MB, "flax_model.msgpack": 1_710 * MB,
         "tf_model.h5": 1_710 * MB}, {"vocab.json": 961_000, "merges.txt": 525_000}),
    "HuggingFaceTB/SmolVLM-Instruct": transformers_repo(
        {"model.safetensors": 4_490 * MB}, {"onnx/vision_encoder.onnx": 1_700 * MB, "onnx/decoder_model_merged.onnx":
                                            6_800 * MB, "onnx/decoder_model_merged.onnx_data": 15_000 * MB,
                                            "onnx/config.json": 3_000, "chat_template.json": 500}),
}
GB = 1000 * MB
FLUX_INDEX = {"_class_name": "FluxPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
              "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
              "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
              "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
SD3_INDEX = {"_class_name": "StableDiffusion3Pipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModelWithProjection"],
             "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
             "text_encoder_3": ["transformers", "T5EncoderModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "tokenizer_2": ["transformers", "CLIPTokenizer"], "tokenizer_3": ["transformers", "T5TokenizerFast"],
             "transformer": ["diffusers", "SD3Transformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}


def shards(folder: str, stem: str, sizes: list[int]) -> dict[str, int]:
    prefix = f"{folder}/" if folder else ""
    files = {f"{prefix}{stem}-{i:05d}-of-{len(sizes):05d}.safetensors": size for i, size in enumerate(sizes, start=1)}
    return {**files, f"{prefix}{stem}.safetensors.index.json": 90_000}


def flux(root_checkpoint: str) -> dict[str, int]:
    return {**CONFIGS, root_checkpoint: 23_800 * MB, "ae.safetensors": 335 * MB, "grid.jpeg": 900_000,
            **shards("transformer", "diffusion_pytorch_model", [9_980 * MB, 9_950 * MB, 3_870 * MB]),
            "text_encoder/model.safetensors": 246 * MB, **shards("text_encoder_2", "model", [4_990 * MB, 4_530 * MB]),
            "vae/diffusion_pytorch_model.safetensors": 168 * MB, "tokenizer/vocab.json": 1_000_000,
            "tokenizer_2/spiece.model": 792_000, "tokenizer_2/tokenizer.json": 2_400_000,
            "scheduler/scheduler_config.json": 300,
            **component_configs("transformer", "text_encoder", "text_encoder_2", "vae")}


REPOS.update({
    "stabilityai/sdxl-turbo": {
        **CONFIGS, "sd_xl_turbo_1.0.safetensors": 13_900 * MB, "sd_xl_turbo_1.0_fp16.safetensors": 6_940 * MB,
        **twins("unet", "diffusion_pytorch_model", 10_270 * MB, bin_twin=False),
        **twins("text_encoder", "model", 492 * MB, bin_twin=False),
        **twins("text_encoder_2", "model", 2_780 * MB, bin_twin=False),
        **twins("vae", "diffusion_pytorch_model", 335 * MB, bin_twin=False),
        **component_configs("unet", "vae", "text_encoder", "text_encoder_2")},
    "stabilityai/stable-diffusion-3-medium-diffusers": {
        **CONFIGS, "sd3_medium.safetensors": 4_340 * MB, "sd3_medium_incl_clips_t5xxlfp8.safetensors": 10_900 * MB,
        "text_encoders/clip_g.safetensors": 1_390 * MB, "text_encoders/t5xxl_fp16.safetensors": 9_790 * MB,
        "transformer/diffusion_pytorch_model.safetensors": 4_170 * MB, "text_encoder/model.safetensors": 247 * MB,
        "text_encoder_2/model.safetensors": 1_390 * MB, **shards("text_encoder_3", "model", [4_990 * MB, 4_530 * MB]),
        "vae/diffusion_pytorch_model.safetensors": 168 * MB, "tokenizer_3/tokenizer.json": 2_400_000,
        **component_configs("transformer", "text_encoder", "text_encoder_2", "text_encoder_3", "vae")},
    "black-forest-labs/FLUX.1-schnell": flux("flux1-schnell.safetensors"),
    "black-forest-labs/FLUX.1-dev": flux("flux1-dev.safetensors"),
    "Qwen/Qwen2.5-0.5B-Instruct": transformers_repo({"model.safetensors": 988 * MB}),
    "Qwen/Qwen2.5-1.5B-Instruct": transformers_repo({"model.safetensors": 3_090 * MB}),
    "Qwen/Qwen2.5-3B-Instruct": transformers_repo(shards("", "model", [3_970 * MB, 2_200 * MB])),
    "openai/clip-vit-base-patch32": transformers_repo(
        {"model.safetensors": 605 * MB, "pytorch_model.bin": 605 * MB, "flax_model.msgpack": 605 * MB,
         "tf_model.h5": 605 * MB}),
    "google/siglip-so400m-patch14-384": transformers_repo({"model.safetensors": 3_510 * MB}, {"spiece.model": 800_000}),
    "Qwen/Qwen2.5-VL-3B-Instruct": transformers_repo(shards("", "model", [3_980 * MB, 3_530 * MB]),
                                                     {"chat_template.json": 1_000}),
    "Qwen/Qwen2.5-VL-7B-Instruct": transformers_repo(shards("", "model", [3_900 * MB] * 4 + [1_090 * MB])),
    "Qwen/Qwen2-VL-2B-Instruct": transformers_repo(shards("", "model", [3_990 * MB, 429 * MB])),
    "OpenGVLab/InternVL3-1B-hf": transformers_repo({"model.safetensors": 1_880 * MB},
                                                   {"chat_template.jinja": 481, "added_tokens.json": 811}),
    "OpenGVLab/InternVL3-8B-hf": transformers_repo(
        shards("", "model", [4_880 * MB, 4_990 * MB, 4_930 * MB, 1_090 * MB]),
        {"chat_template.jinja": 481, "added_tokens.json": 811}),
    "llava-hf/llava-1.5-7b-hf": transformers_repo({
        **shards("", "model", [4_980 * MB, 4_960 * MB, 4_180 * MB]),
        **{f"pytorch_model-{i:05d}-of-00003.bin": 4_900 * MB for i in (1, 2, 3)}}),
    "llava-hf/llava-v1.6-mistral-7b-hf": transformers_repo(shards("", "model", [3_900 * MB] * 3 + [3_400 * MB])),
    # LoRA repos (a stand-in layout, not their published listings): the catalog's weight file beside another LoRA
    # file and sample images, of which only the named file is a LoRA's load.
    "nerijs/pixel-art-xl": {".gitattributes": 1_500, "README.md": 2_000, "pixel-art-xl.safetensors": 171 * MB,
                            "pixel-art-xl-v1.1.safetensors": 171 * MB, "1.png": 1_200_000},
    "CiroN2022/toy-face": {".gitattributes": 1_500, "README.md": 2_000, "toy_face_sdxl.safetensors": 171 * MB,
                           "image_0.png": 1_100_000},
})
INDEXES = {("stable-diffusion-v1-5/stable-diffusion-v1-5", "model_index.json"): json.dumps(SD15_INDEX).encode(),
           ("stabilityai/stable-diffusion-xl-base-1.0", "model_index.json"): json.dumps(SDXL_INDEX).encode(),
           ("stabilityai/sdxl-turbo", "model_index.json"): json.dumps(SDXL_INDEX).encode(),
           ("stabilityai/stable-diffusion-3-medium-diffusers", "model_index.json"): json.dumps(SD3_INDEX).encode(),
           ("black-forest-labs/FLUX.1-schnell", "model_index.json"): json.dumps(FLUX_INDEX).encode(),
           ("black-forest-labs/FLUX.1-dev", "model_index.json"): json.dumps(FLUX_INDEX).encode()}

#: The weights each repo's loader reads in half precision: what `pull` may fetch of it, and all it must.
SDXL_FP16 = {"unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.fp16.safetensors",
             "text_encoder_2/model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors"}
FLUX_WEIGHTS = {*(f"transformer/diffusion_pytorch_model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)),
                "text_encoder/model.safetensors", "text_encoder_2/model-00001-of-00002.safetensors",
                "text_encoder_2/model-00002-of-00002.safetensors", "vae/diffusion_pytorch_model.safetensors"}


def sharded(count: int, stem: str = "model") -> set[str]:
    return {f"{stem}-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)}


EXPECTED_WEIGHTS = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": {
        "unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.fp16.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors"},
    "stabilityai/stable-diffusion-xl-base-1.0": SDXL_FP16,
    "stabilityai/sdxl-turbo": SDXL_FP16,
    "stabilityai/stable-diffusion-3-medium-diffusers": {
        "transformer/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
        "text_encoder_2/model.safetensors", "text_encoder_3/model-00001-of-00002.safetensors",
        "text_encoder_3/model-00002-of-00002.safetensors", "vae/diffusion_pytorch_model.safetensors"},
    "black-forest-labs/FLUX.1-schnell": FLUX_WEIGHTS,
    "black-forest-labs/FLUX.1-dev": FLUX_WEIGHTS,
    **{repo: {"diffusion_pytorch_model.fp16.safetensors"} for repo in (
        "lllyasviel/control_v11p_sd15_canny", "lllyasviel/control_v11f1p_sd15_depth",
        "lllyasviel/control_v11p_sd15_openpose", "lllyasviel/control_v11p_sd15_seg",
        "diffusers/controlnet-canny-sdxl-1.0",
        "diffusers/controlnet-depth-sdxl-1.0")},
    "thibaud/controlnet-openpose-sdxl-1.0": {"diffusion_pytorch_model.bin"},
    "nerijs/pixel-art-xl": {"pixel-art-xl.safetensors"},
    "CiroN2022/toy-face": {"toy_face_sdxl.safetensors"},
    **{repo: {"unet/diffusion_pytorch_model.fp16.safetensors"} for repo in (
        "stable-diffusion-v1-5/stable-diffusion-inpainting", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1")},
    "CIDAS/clipseg-rd64-refined": {"pytorch_model.bin"},
    "h94/IP-Adapter": {"models/ip-adapter_sd15.safetensors", "models/image_encoder/model.safetensors",
                       "sdxl_models/ip-adapter_sdxl.safetensors", "sdxl_models/image_encoder/model.safetensors"},
    "Qwen/Qwen2.5-3B-Instruct": sharded(2), "Qwen/Qwen2.5-VL-3B-Instruct": sharded(2),
    "Qwen/Qwen2.5-VL-7B-Instruct": sharded(5), "Qwen/Qwen2-VL-2B-Instruct": sharded(2),
    "OpenGVLab/InternVL3-8B-hf": sharded(4),
    "llava-hf/llava-1.5-7b-hf": sharded(3), "llava-hf/llava-v1.6-mistral-7b-hf": sharded(4),
}


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
    # Pose maps: the keypoint model and its person detector (safetensors only).
    assert "model.safetensors" in hub.files_of("usyd-community/vitpose-base-simple")
    assert hub.files_of("PekingU/rtdetr_r50vd_coco_o365") == set(REPOS["PekingU/rtdetr_r50vd_coco_o365"]) - {
        "pytorch_model.bin"}
    # Inpainting: the dedicated checkpoint's UNet alone, and the segmenter mask_prompt uses.
    assert hub.files_of("stable-diffusion-v1-5/stable-diffusion-inpainting") == {
        "unet/config.json", "unet/diffusion_pytorch_model.fp16.safetensors"}
    assert hub.files_of("CIDAS/clipseg-rd64-refined") == set(REPOS["CIDAS/clipseg-rd64-refined"]) - {".gitattributes"}
    assert "model.safetensors" in hub.files_of("openai/clip-vit-large-patch14")  # scores alignment
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
    # SDXL, its ControlNets, IP-Adapter, depth estimator, pose model and person detector, its inpainting UNet,
    # CLIPSeg and the CLIP that scores alignment: about 29.4 GB.
    expected = (5_135 + 246 + 1_390 + 167 + 2 * 2_500 + 5_000 + 703 + 3_690 + 99 + 360 + 172 + 5_135 + 603
                + 1_710) / 1000
    assert gigabytes == pytest.approx(expected, abs=0.3)


def test_a_vlm_pull_skips_onnx_exports_and_brings_what_compare_and_the_claim_check_use(hub, pixelmcp):
    out = pixelmcp("pull", "smolvlm")
    assert out.returncode == 0, out.stdout + out.stderr
    assert not any(name.startswith("onnx/") for name in hub.files_of("HuggingFaceTB/SmolVLM-Instruct"))
    assert "model.safetensors" in hub.files_of("HuggingFaceTB/SmolVLM-Instruct")
    clip = hub.files_of("openai/clip-vit-large-patch14")
    assert "model.safetensors" in clip and not clip & {"pytorch_model.bin", "flax_model.msgpack", "tf_model.h5"}
    # The claim check: the local model that lists claims, and the detector that counts (not the pose model).
    assert "model.safetensors" in hub.files_of("Qwen/Qwen2.5-1.5B-Instruct")
    assert "model.safetensors" in hub.files_of("PekingU/rtdetr_r50vd_coco_o365")
    assert not hub.files_of("usyd-community/vitpose-base-simple")
    quiet = pixelmcp("pull", "smolvlm", "--dry-run", PIXELMCP_CLAIM_CHECK="off")
    assert "Qwen2.5-1.5B" not in quiet.stdout and "rtdetr" not in quiet.stdout


def test_the_first_load_fetches_the_same_files_as_pull(hub, pixelmcp, tmp_path):
    out = pixelmcp("generate", "a", "--model", "sd15", "--no-rewrite", PIXELMCP_DTYPE="float16")
    # The stand-in weights cannot load; the download before it is what this test is about.
    assert out.returncode == 1 and "Could not load model 'sd15'" in out.stderr
    assert hub.files_of("stable-diffusion-v1-5/stable-diffusion-v1-5") == SD15_FP16 | SD15_SMALL


def test_an_unreachable_hub_with_nothing_cached_is_a_clear_message(pixelmcp):
    out = pixelmcp("pull", "clip-vit-base", HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_ETAG_TIMEOUT="2")
    assert out.returncode == 1 and "the hub cannot be reached for openai/clip-vit-base-patch32" in out.stdout


def planned(stdout: str) -> dict[str, set[str]]:
    """{repo: files} from `pull --dry-run` output."""
    return {repo: files for (_, repo), files in planned_entries(stdout).items()}


def planned_entries(stdout: str) -> dict[tuple[str, str], set[str]]:
    """{(entry, repo): files} from `pull --dry-run` output (an entry: an alias, or a part such as sd15+ip-adapter)."""
    found: dict[tuple[str, str], set[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("    ") and current is not None:
            found[current].add(line.split()[0])
        elif ": would fetch " in line:
            entry, repo = line.split(": ")[:2]
            current = (entry, repo)
            found[current] = set()
    return found


def test_every_default_alias_plans_exactly_the_weights_its_loaders_read(hub, pixelmcp):
    aliases = [spec.alias for spec in DEFAULT_CATALOG]
    out = pixelmcp("pull", *aliases, "--dry-run", PIXELMCP_DTYPE="float16")  # one run plans them all
    assert out.returncode == 0, out.stdout + out.stderr
    plans = planned_entries(out.stdout)
    assert {entry for entry, _ in plans} >= set(aliases), out.stdout
    for (entry, repo), files in plans.items():
        weights = {name for name in files if name.endswith((".safetensors", ".bin", ".pt", ".pth", ".ckpt"))}
        expected = EXPECTED_WEIGHTS.get(repo, {"model.safetensors"})
        if repo == "h94/IP-Adapter":
            expected = {name for name in expected if name.startswith("models/" if "sd15" in entry else "sdxl_")}
        assert weights == expected, (entry, repo)
        assert not any(name.endswith((".onnx", ".onnx_data", ".msgpack", ".h5")) for name in files), repo
    assert float(out.stdout.splitlines()[-1].split()[1]) > 0


def test_pull_of_a_lora_fetches_its_one_weight_file(hub, pixelmcp):
    out = pixelmcp("pull", "pixel-art-xl")
    assert out.returncode == 0, out.stdout + out.stderr
    assert hub.files_of("nerijs/pixel-art-xl") == {"pixel-art-xl.safetensors"}
    assert "pixel-art-xl: nerijs/pixel-art-xl ready (1 file" in out.stdout


def test_large_tokenizers_are_fetched_and_large_sample_media_are_not():
    from pixelmcp.engine import weights

    found = weights.plan({"model.safetensors": 5 * GB, "tokenizer.json": 33 * MB, "demo.png": 25 * MB,
                          "small.png": 1 * MB, "onnx/model.onnx": 1 * GB, "model.gguf": 4 * GB, "config.json": 900})
    assert set(found.files) == {"model.safetensors", "tokenizer.json", "small.png", "config.json"}
