"""Batching: 8 concurrent generate_image requests against the same 8 one after another, same model
(real-size SD 1.5, random weights, small images), through an in-memory MCP client.

    python benchmarks/bench_batching.py [requests] [side]

The last line is the throughput ratio concurrent / sequential (target >= 1.3).
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


async def main(count: int, side: int) -> None:
    folder = build_sd15(Path(__file__).parent / ".cache" / "sd15-real")
    os.environ.update(catalog_env({"bench-sd15": folder}, side))
    from pixelmcp.config import load_settings
    from pixelmcp.server.app import build_server

    settings = load_settings(output_dir=tempfile.mkdtemp(), generate_model="bench-sd15", rewriter="none",
                             log_level="WARNING", max_batch=count)
    server = build_server(settings)
    arguments = [{"prompt": f"a lighthouse number {i}", "seed": i, "width": side, "height": side, "steps": 2,
                  "rewrite": False} for i in range(count)]
    async with Client(server) as client:
        await client.call_tool("generate_image", arguments[0])  # load the model
        started = time.perf_counter()
        for args in arguments:
            result = await client.call_tool("generate_image", args)
            assert not result.is_error, result.content[0].text
        sequential = time.perf_counter() - started

        sizes = []

        async def one(args: dict) -> None:
            result = await client.call_tool("generate_image", args)
            assert not result.is_error, result.content[0].text
            sizes.append(result.structured_content["batch_size"])

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for args in arguments:
                tg.start_soon(one, args)
        concurrent = time.perf_counter() - started
    print(f"real-size SD 1.5, {side}x{side}, 2 steps, CFG, fp32 on CPU, {count} requests")
    print(f"one after another: {sequential:.2f}s ({count / sequential:.3f} images/s)")
    print(f"concurrent:        {concurrent:.2f}s ({count / concurrent:.3f} images/s), batch sizes {sorted(sizes)}")
    print(f"throughput ratio concurrent/sequential: {sequential / concurrent:.2f}")


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 8, int(sys.argv[2]) if len(sys.argv) > 2 else 128)
