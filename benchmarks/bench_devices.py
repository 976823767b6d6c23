"""Several GPUs: concurrent generate_image requests for one model on one GPU, then on two with a copy of the model
on each (PIXELMCP_DEVICES=cuda:0,cuda:1, PIXELMCP_MODEL_REPLICAS=2), same run, same requests, through an
in-memory MCP client (real-size SD 1.5, random weights).

    python benchmarks/bench_devices.py [requests] [side] [steps]

Needs two CUDA GPUs. The last line is the throughput ratio two GPUs / one (ideal: 2.0).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).parent))
from realsize import build_sd15, catalog_env


async def throughput(devices: str, replicas: int, count: int, side: int, steps: int) -> tuple[float, list[str]]:
    """Images per second for `count` concurrent requests, after a warm-up that loads the model everywhere."""
    from pixelmcp.config import load_settings
    from pixelmcp.server.app import build_server

    settings = load_settings(output_dir=tempfile.mkdtemp(), generate_model="bench-sd15", rewriter="none",
                             log_level="WARNING", devices=devices, model_replicas=replicas, max_batch=1)
    arguments = [{"prompt": f"a lighthouse number {i}", "seed": i, "width": side, "height": side, "steps": steps,
                  "rewrite": False} for i in range(count)]
    where: list[str] = []

    async def one(client: Client, args: dict) -> None:
        result = await client.call_tool("generate_image", args)
        assert not result.is_error, result.content[0].text

    async with Client(build_server(settings)) as client:
        async with anyio.create_task_group() as tasks:  # warm-up: two at once, so a copy is made where allowed
            for args in arguments[:2]:
                tasks.start_soon(one, client, args)
        started = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for args in arguments:
                tasks.start_soon(one, client, args)
        elapsed = time.perf_counter() - started
        report = await client.call_tool("list_models", {})
        where = [f"{m['alias']}@{m['device']}" for m in report.structured_content["loaded"]]
    return count / elapsed, where


async def main(count: int, side: int, steps: int) -> None:
    import torch

    if torch.cuda.device_count() < 2:
        sys.exit("bench_devices needs two CUDA GPUs")
    folder = build_sd15(Path(__file__).parent / ".cache" / "sd15-real")
    os.environ.update(catalog_env({"bench-sd15": folder}, side))
    one_rate, one_where = await throughput("cuda:0", 1, count, side, steps)
    two_rate, two_where = await throughput("cuda:0,cuda:1", 2, count, side, steps)
    gpu = torch.cuda.get_device_name(0)
    print(f"real-size SD 1.5, {side}x{side}, {steps} steps, {count} concurrent requests, {gpu}")
    print(f"one GPU:  {one_rate:.3f} images/s ({', '.join(one_where)})")
    print(f"two GPUs: {two_rate:.3f} images/s ({', '.join(two_where)})")
    print(f"throughput ratio two GPUs / one: {two_rate / one_rate:.2f}")


if __name__ == "__main__":
    args = [int(value) for value in sys.argv[1:4]]
    anyio.run(main, *(args + [16, 512, 20][len(args):]))
