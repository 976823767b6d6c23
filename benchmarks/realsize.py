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


#: Real-size families by benchmark name, and the shared/model-configs folder of each.
FAMILIES = {"sd15": "sd15", "sdxl": "sdxl", "flux-schnell": "flux-schnell"}


def build_pipeline(name: str, device: str, dtype):
    """A real-size pipeline (sd15, sdxl or flux-schnell) with random weights, built directly on `device` in `dtype`.

    Only the modules are made inside `torch.device(device)`: a scheduler made there keeps its tables on the GPU,
    and diffusers' schedulers then fail in numpy ("can't convert cuda:0 device type tensor to numpy").
    """
    import diffusers
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from pixelmcp.engine.tiny import clip_tokenizer, t5_tokenizer

    family = FAMILIES[name]
    scheduler_config = config(family, "scheduler", "scheduler_config.json")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    torch.manual_seed(0)
    try:
        with torch.device(device):
            parts = {"vae": diffusers.AutoencoderKL.from_config(config(family, "vae"))}
            parts["text_encoder"] = CLIPTextModel(CLIPTextConfig.from_dict(config(family, "text_encoder")))
            if name == "flux-schnell":
                parts["transformer"] = diffusers.FluxTransformer2DModel.from_config(config(family, "transformer"))
                parts["text_encoder_2"] = T5EncoderModel(T5Config.from_dict(config(family, "text_encoder_2")))
            else:
                parts["unet"] = diffusers.UNet2DConditionModel.from_config(config(family, "unet"))
                if name == "sdxl":
                    parts["text_encoder_2"] = CLIPTextModelWithProjection(
                        CLIPTextConfig.from_dict(config(family, "text_encoder_2")))
    finally:
        torch.set_default_dtype(previous)
    for module in parts.values():
        module.eval()
    parts["tokenizer"] = clip_tokenizer()
    if name == "flux-schnell":
        parts.update(tokenizer_2=t5_tokenizer(),
                     scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_config(scheduler_config))
        return diffusers.FluxPipeline(**parts)
    if name == "sdxl":
        parts.update(tokenizer_2=clip_tokenizer(),
                     scheduler=diffusers.EulerDiscreteScheduler.from_config(scheduler_config))
        return diffusers.StableDiffusionXLPipeline(**parts)
    parts["scheduler"] = diffusers.PNDMScheduler.from_config(scheduler_config)
    return diffusers.StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)


def save_pipeline(name: str, folder: Path, device: str, dtype) -> Path:
    """Build `name` at real size (random weights) and save it to `folder` once, in `dtype`; reuse it afterwards."""
    if (folder / ".complete").exists():
        return folder
    started = time.perf_counter()
    pipe = build_pipeline(name, device, dtype)
    pipe.save_pretrained(folder)
    (folder / ".complete").write_text("ok\n")
    print(f"built real-size {name} in {folder} ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    return folder


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
