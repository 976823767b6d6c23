"""Overhead: a warm generate_image through an MCP client over stdio, against the same pipeline called
directly in-process with identical arguments, alternating runs (real-size SD 1.5, random weights).

    python benchmarks/bench_overhead.py [runs] [side]

The last line is the median ratio pixelmcp / direct (target <= 1.05).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).parent))
from realsize import build_sd15, catalog_env

CACHE = Path(__file__).parent / ".cache"
ARGS = dict(prompt="a lighthouse on a cliff at dusk", steps=2, guidance_scale=7.5, seed=1234)


def direct_pipeline(folder: Path):
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_direct(pipe, side: int) -> float:
    import torch

    started = time.perf_counter()
    generator = torch.Generator("cpu").manual_seed(ARGS["seed"])
    pipe(ARGS["prompt"], width=side, height=side, num_inference_steps=ARGS["steps"],
         guidance_scale=ARGS["guidance_scale"], generator=generator, output_type="pil")
    return time.perf_counter() - started


async def main(runs: int, side: int) -> None:
    folder = build_sd15(CACHE / "sd15-real")
    env = dict(os.environ, PIXELMCP_OUTPUT_DIR=tempfile.mkdtemp(), PIXELMCP_GENERATE_MODEL="bench-sd15",
               PIXELMCP_REWRITER="none", PIXELMCP_LOG_LEVEL="WARNING", **catalog_env({"bench-sd15": folder}, side))
    params = StdioServerParameters(command=sys.executable, args=["-m", "pixelmcp.cli", "serve"], env=env)
    pipe = direct_pipeline(folder)
    arguments = {**ARGS, "width": side, "height": side, "rewrite": False}
    served, direct = [], []
    async with Client(params, read_timeout_seconds=600) as client:
        await client.call_tool("generate_image", arguments)  # warm: load the model in the server
        run_direct(pipe, side)  # warm the direct path too
        for _ in range(runs):
            started = time.perf_counter()
            result = await client.call_tool("generate_image", arguments)
            served.append(time.perf_counter() - started)
            assert not result.is_error, result.content[0].text
            direct.append(run_direct(pipe, side))  # in this thread, as a script would (the client is idle)
    ratios = [s / d for s, d in zip(served, direct, strict=True)]
    print(f"real-size SD 1.5, {side}x{side}, {ARGS['steps']} steps, CFG, fp32 on CPU, {runs} alternating runs")
    print(f"pixelmcp over stdio: median {statistics.median(served):.3f}s  (runs: {', '.join(f'{t:.2f}' for t in served)})")
    print(f"direct diffusers:    median {statistics.median(direct):.3f}s  (runs: {', '.join(f'{t:.2f}' for t in direct)})")
    print(f"median ratio pixelmcp/direct: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 5, int(sys.argv[2]) if len(sys.argv) > 2 else 128)
