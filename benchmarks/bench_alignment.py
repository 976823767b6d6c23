"""The cost of alignment scores: generate_image with scoring on and off, alternating on one warm server, through an
in-memory MCP client (real-size SD 1.5 and a real-size CLIP ViT-L/14, random weights).

    python benchmarks/bench_alignment.py [pairs] [side] [steps]

The last line is the ratio of the median times with / without alignment (the added cost per image).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from realsize import build_sd15, catalog_env


def build_clip_large(folder: Path) -> Path:
    """openai/clip-vit-large-patch14's architecture (its published config values) with random weights and the
    offline byte-level tokenizer (whose vocabulary sets the embedding table's size); saved once."""
    if (folder / ".complete").exists():
        return folder
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    from pixelmcp.engine.tiny import clip_tokenizer

    tokenizer = clip_tokenizer()
    text = dict(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                num_hidden_layers=12, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24,
                  image_size=224, patch_size=14)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=768)).eval().save_pretrained(folder)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(folder)
    (folder / ".complete").write_text("ok\n")
    return folder


async def main(pairs: int, side: int, steps: int) -> None:
    cache = Path(__file__).parent / ".cache"
    sd15, clip = build_sd15(cache / "sd15-real"), build_clip_large(cache / "clip-large-real")
    models = json.loads(catalog_env({"bench-sd15": sd15}, side)["PIXELMCP_MODELS"])
    models["bench-clip"] = {"source": str(clip), "kind": "clip"}
    os.environ["PIXELMCP_MODELS"] = json.dumps(models)
    from pixelmcp.config import load_settings
    from pixelmcp.server.app import build_server

    settings = load_settings(output_dir=tempfile.mkdtemp(), generate_model="bench-sd15", alignment_model="bench-clip",
                             rewriter="none", log_level="WARNING", max_batch=1)
    times: dict[bool, list[float]] = {True: [], False: []}
    async with Client(build_server(settings)) as client:
        async def generate(seed: int) -> float:
            started = time.perf_counter()
            result = await client.call_tool("generate_image", {"prompt": "a lighthouse on a cliff", "seed": seed,
                                                               "steps": steps, "rewrite": False})
            assert not result.is_error, result.content[0].text
            assert (result.structured_content["images"][0]["alignment"] is not None) == settings.alignment
            return time.perf_counter() - started

        await generate(0)  # loads both models
        for seed in range(1, pairs + 1):
            for scoring in (False, True):
                settings.alignment = scoring
                times[scoring].append(await generate(seed))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(f"real-size SD 1.5 {side}x{side}, {steps} steps; real-size CLIP ViT-L/14; {pairs} pairs, alternating")
    print(f"without alignment: median {off:.3f} s ({', '.join(f'{t:.2f}' for t in times[False])})")
    print(f"with alignment:    median {on:.3f} s ({', '.join(f'{t:.2f}' for t in times[True])})")
    print(f"added cost per image: {on - off:.3f} s; ratio with/without: {on / off:.3f}")


if __name__ == "__main__":
    args = [int(value) for value in sys.argv[1:4]]
    anyio.run(main, *(args + [5, 256, 4][len(args):]))
