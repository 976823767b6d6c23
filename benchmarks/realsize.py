"""Real-size architectures with random weights, built from the published configs in
shared/model-configs (see its README), for benchmarks on machines that cannot reach a model hub.

    python benchmarks/realsize.py sd15 DIR    # writes a from_pretrained-loadable SD 1.5 pipeline
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

CONFIGS = Path(os.environ.get("PIXELMCP_MODEL_CONFIGS", Path(__file__).resolve().parents[2] / "shared" / "model-configs"))


def config(family: str, component: str, name: str = "config.json") -> dict:
    path = CONFIGS / family / component / name
    if not path.is_file():
        sys.exit(f"missing {path}: set PIXELMCP_MODEL_CONFIGS to the model-configs folder")
    return json.loads(path.read_text())


def sd15_components(dtype=None, device: str = "cpu") -> dict:
    """SD 1.5's UNet, VAE, CLIP text encoder (random weights) with the offline byte-level tokenizer."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from pixelmcp.engine.tiny import clip_tokenizer

    dtype = dtype or torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(config("sd15", "unet")).to(dtype).eval()
        vae = AutoencoderKL.from_config(config("sd15", "vae")).to(dtype).eval()
        text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(config("sd15", "text_encoder"))).to(dtype).eval()
    scheduler = PNDMScheduler.from_config(config("sd15", "scheduler", "scheduler_config.json"))
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(), scheduler=scheduler)


def build_sd15(folder: Path) -> Path:
    """Save a real-size SD 1.5 pipeline (random weights, fp32) once; reuse it afterwards."""
    from diffusers import StableDiffusionPipeline

    if (folder / ".complete").exists():
        return folder
    started = time.perf_counter()
    pipe = StableDiffusionPipeline(**sd15_components(), safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(folder)
    (folder / ".complete").write_text("ok\n")
    print(f"built real-size SD 1.5 in {folder} ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    return folder


def catalog_env(aliases: dict[str, Path], side: int) -> dict[str, str]:
    """PIXELMCP_MODELS entries that point aliases at built folders, with small-image limits."""
    models = {
        alias: {"source": str(folder), "kind": "sd15", "default_width": side, "default_height": side,
                "min_side": 64, "default_steps": 2}
        for alias, folder in aliases.items()
    }
    return {"PIXELMCP_MODELS": json.dumps(models)}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "sd15":
        sys.exit(__doc__)
    build_sd15(Path(sys.argv[2]))
