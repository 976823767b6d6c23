"""Event-loop stalls: the longest the server's loop waits to run a ready task while compare_images works on large
photos and upscale_image on a larger image (tiny profile, in-memory client).

    python benchmarks/bench_loop.py [photo megapixels]

No image operation runs on the loop (tests/test_event_loop.py holds that by construction); what is left is time
the loop waits for the GIL while worker threads run C code that holds it. The last line is the longest stall
(target <= 50 ms).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
from mcp import Client
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like image (gradients and noise): it resizes, compares and encodes as slowly as a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) * 255 // (size[0] + size[1])], axis=-1)
    return Image.fromarray(np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8))


async def longest_stall_while(call) -> tuple[float, object]:
    """Run `call()` while a task asks to run every 5 ms; returns (the longest wait beyond those 5 ms, the result)."""
    longest = 0.0
    done = anyio.Event()

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done.is_set():
            await anyio.sleep(0.005)
            now = time.perf_counter()
            longest = max(longest, now - last - 0.005)
            last = now

    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        try:
            result = await call()
        finally:
            done.set()
    return longest, result


async def main(megapixels: float) -> None:
    from pixelmcp.config import load_settings
    from pixelmcp.server.app import build_server

    folder = Path(tempfile.mkdtemp())
    settings = load_settings(profile="tiny", output_dir=folder / "out", cache_dir=folder / "cache", alignment=False,
                             allowed_dirs=[str(folder)], call_budget_s=0, log_level="WARNING")
    width = int(math.sqrt(megapixels * 1e6 * 3 / 2))
    photos = []
    for seed in range(3):
        path = folder / f"photo-{seed}.png"
        photo((width, width * 2 // 3), seed).save(path)
        photos.append(str(path))
    small = folder / "small.png"
    photo((192, 128), 7).save(small)
    async with Client(build_server(settings)) as client:
        await client.call_tool("upscale_image", {"image": str(small), "seed": 1})  # models loaded before timing
        await client.call_tool("compare_images", {"images": photos[:2], "check_claims": False})
        compare_stall, _ = await longest_stall_while(lambda: client.call_tool("compare_images", {
            "images": photos, "check_claims": False}))
        upscale_stall, _ = await longest_stall_while(lambda: client.call_tool("upscale_image", {
            "image": str(small), "scale": 4, "seed": 2}))
    print(f"compare_images, 3 photos of {width}x{width * 2 // 3}: longest stall {compare_stall * 1000:.0f} ms")
    print(f"upscale_image 4x of 192x128: longest stall {upscale_stall * 1000:.0f} ms")
    print(f"longest event-loop stall: {max(compare_stall, upscale_stall) * 1000:.0f} ms")


if __name__ == "__main__":
    anyio.run(main, float(sys.argv[1]) if len(sys.argv) > 1 else 6.0)
