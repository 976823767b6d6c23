"""End to end: generate_image through `pixelmcp serve` over stdio against the same model called directly with
diffusers in this process, alternating runs, for SD 1.5 (512 px, 25 steps), SDXL (1024 px, 30 steps) and
FLUX.1-schnell (1024 px, 4 steps); then 8 concurrent SD 1.5 requests against the same 8 one after another.

Real sizes are built from shared/model-configs with random weights, saved once under benchmarks/.cache in
the dtype pixelmcp runs them in (fp16 UNets, bf16 FLUX), and loaded by both sides from that folder.

    python benchmarks/bench_served.py                  # on a GPU, real sizes
    python benchmarks/bench_served.py --tiny --runs 1  # the tiny profile on the CPU (a smoke test)

Targets: served/direct <= 1.05 for every model; batching >= 3x on a GPU. The last line is the median ratio
served/direct over all models.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).parent))
from realsize import save_pipeline

CACHE = Path(__file__).parent / ".cache"
PROMPT = "a lighthouse on a cliff at dusk"
#: (side, steps, guidance) per model at real size; the tiny profile runs 64 px, 2 steps.
REAL = {"sd15": (512, 25, 7.5), "sdxl": (1024, 30, 5.0), "flux-schnell": (1024, 4, 0.0)}
TINY = {"sd15": "tiny-sd15", "sdxl": "tiny-sdxl", "flux-schnell": "tiny-flux"}  # alias in the tiny profile
TINY_BUILD = {"sd15": "sd15", "sdxl": "sdxl", "flux-schnell": "flux"}


def dtype_of(name: str, device: str):
    """What pixelmcp's dtype=auto picks (engine/devices.py), so both sides run the same precision."""
    from pixelmcp.engine.devices import dtype_for

    return dtype_for("auto", device, {"sd15": "sd15", "sdxl": "sdxl", "flux-schnell": "flux"}[name])


def folders(names: list[str], tiny: bool, device: str, cache: Path) -> dict[str, Path]:
    if tiny:
        from pixelmcp.config import load_settings
        from pixelmcp.engine.tiny import ensure_built

        tiny_dir = load_settings(profile="tiny", cache_dir=cache).tiny_dir
        return {name: ensure_built(TINY_BUILD[name], tiny_dir) for name in names}
    return {name: save_pipeline(name, CACHE / f"{name}-real-{str(dtype_of(name, device)).removeprefix('torch.')}",
                                device, dtype_of(name, device)) for name in names}


def server_env(names: list[str], found: dict[str, Path], tiny: bool, cache: Path, batch: int) -> dict[str, str]:
    env = dict(os.environ, PIXELMCP_OUTPUT_DIR=tempfile.mkdtemp(), PIXELMCP_CACHE_DIR=str(cache),
               PIXELMCP_REWRITER="none", PIXELMCP_ALIGNMENT="false", PIXELMCP_LOG_LEVEL="WARNING",
               PIXELMCP_MAX_BATCH=str(batch), HF_HUB_OFFLINE="1")
    if tiny:
        env["PIXELMCP_PROFILE"] = "tiny"
    else:  # the catalog's own entries, pointed at the built folders
        env["PIXELMCP_MODELS"] = json.dumps({name: {"source": str(found[name])} for name in names})
    return env


class Direct:
    """One model called as a script would: from_pretrained on the device, then pipe(...)."""

    def __init__(self, folder: Path, device: str, dtype):
        import diffusers

        self.pipe = diffusers.DiffusionPipeline.from_pretrained(folder, local_files_only=True, dtype=dtype).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.device = device

    def __call__(self, side: int, steps: int, guidance: float, seed: int) -> float:
        import torch

        started = time.perf_counter()
        self.pipe(PROMPT, width=side, height=side, num_inference_steps=steps, guidance_scale=guidance,
                  generator=torch.Generator("cpu").manual_seed(seed), output_type="pil")
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started

    def close(self) -> None:
        import torch

        self.pipe = None
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()


async def served(client: Client, alias: str, side: int, steps: int, guidance: float, seed: int) -> dict:
    result = await client.call_tool("generate_image", {
        "prompt": PROMPT, "model": alias, "width": side, "height": side, "steps": steps, "guidance_scale": guidance,
        "seed": seed, "rewrite": False, "verify": False})
    if result.is_error:
        raise SystemExit(f"generate_image failed: {result.content[0].text}")
    return result.structured_content


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="the tiny profile on this machine (a smoke test)")
    parser.add_argument("--models", default="sd15,sdxl,flux-schnell")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs per model, after one warm-up each")
    parser.add_argument("--batch", type=int, default=8, help="concurrent SD 1.5 requests (0: skip)")
    args = parser.parse_args()

    import torch

    from pixelmcp.engine.devices import pick_device

    device = pick_device("auto")
    names = args.models.split(",")
    cache = Path(tempfile.mkdtemp()) if args.tiny else CACHE
    found = folders(names, args.tiny, device, cache)
    params = StdioServerParameters(command=sys.executable, args=["-m", "pixelmcp.cli", "serve"],
                                   env=server_env(names, found, args.tiny, cache, max(args.batch, 1)))
    rows, batching = [], None
    async with Client(params, read_timeout_seconds=1800) as client:
        for name in names:
            side, steps, guidance = (64, 2, REAL[name][2]) if args.tiny else REAL[name]
            alias = TINY[name] if args.tiny else name
            direct = Direct(found[name], device, dtype_of(name, device))
            await served(client, alias, side, steps, guidance, 0)  # warm-ups: the server loads its model
            direct(side, steps, guidance, 0)
            times: tuple[list[float], list[float]] = ([], [])
            for run in range(args.runs):
                started = time.perf_counter()
                made = await served(client, alias, side, steps, guidance, run + 1)
                times[0].append(time.perf_counter() - started)
                times[1].append(direct(side, steps, guidance, run + 1))
            direct.close()
            dtype = str(dtype_of(name, device)).removeprefix("torch.")
            rows.append((name, side, steps, dtype, statistics.median(times[0]), statistics.median(times[1]),
                         made.get("timings", {})))
        if args.batch and "sd15" in names:
            side, steps, guidance = (64, 2, 7.5) if args.tiny else REAL["sd15"]
            alias = TINY["sd15"] if args.tiny else "sd15"
            started = time.perf_counter()
            for i in range(args.batch):
                await served(client, alias, side, steps, guidance, 100 + i)
            in_a_row = time.perf_counter() - started
            sizes: list[int] = []

            async def one(seed: int) -> None:
                sizes.append((await served(client, alias, side, steps, guidance, seed))["batch_size"])

            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for i in range(args.batch):
                    group.start_soon(one, 200 + i)
            batching = (in_a_row, time.perf_counter() - started, sorted(sizes))
        report = await client.call_tool("list_models", {})
    label = torch.cuda.get_device_name() if device.startswith("cuda") else device
    print(f"device: {label}; torch {torch.__version__}; {args.runs} alternating runs per model after a warm-up")
    print("| model | size | steps | dtype | served over stdio s | direct diffusers s | ratio | server run_s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, side, steps, dtype, served_s, direct_s, timings in rows:
        print(f"| {name} | {side} | {steps} | {dtype} | {served_s:.3f} | {direct_s:.3f} | {served_s / direct_s:.3f} | "
              f"{timings.get('run_s', float('nan')):.3f} |")
    for model in report.structured_content["loaded"]:
        print(f"loaded {model['alias']}: {model['bytes'] / 1e9:.2f} GB, dtypes {model['dtypes']}")
    if batching is not None:
        in_a_row, together, sizes = batching
        print(f"{args.batch} SD 1.5 requests: in a row {in_a_row:.2f} s, concurrent {together:.2f} s "
              f"(batch sizes {sizes}); throughput ratio concurrent/in a row: {in_a_row / together:.2f}")
    print(f"median ratio served/direct: {statistics.median(r[4] / r[5] for r in rows):.3f}")


if __name__ == "__main__":
    anyio.run(main)
