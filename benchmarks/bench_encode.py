"""Storing and previewing results: the event loop must keep answering while images are encoded.

For n 1024x1024 photo-like images (default 4), runs the post-processing of one generate_image
result both ways, in one run, while a concurrent task "pings" the event loop every 5 ms:

- before: PNG at Pillow's default level (6) and the preview quality loop (WebP method 4, up to
  4 qualities x N sizes), run on the event loop, as the tools did;
- now: the tools' code (`store_images` in a worker thread, `answer` encoding previews in one).

    python benchmarks/bench_encode.py [n] [side]

Prints per-image post-processing time and the longest event-loop stall (the worst extra delay of
a ping) for each; the last line is the stall ratio before / now (target: now <= 50 ms).
"""

from __future__ import annotations

import base64
import io
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np
from PIL import Image

TICK_S = 0.005


def photo_like(side: int, seed: int) -> Image.Image:
    """Smooth structure at several scales plus fine grain: compresses like a photograph, unlike noise."""
    rng = np.random.default_rng(seed)
    canvas = np.zeros((side, side, 3))
    for scale, amplitude in ((256, 90), (64, 50), (16, 30), (4, 12)):
        small = rng.normal(0, 1, (side // scale + 1, side // scale + 1, 3))
        layer = Image.fromarray(((small - small.min()) / np.ptp(small) * 255).astype(np.uint8))
        smooth = np.asarray(layer.resize((side, side), Image.Resampling.BICUBIC), dtype=float)
        canvas += (smooth - 128) / 128 * amplitude
    canvas += rng.normal(0, 3, canvas.shape)
    return Image.fromarray(np.clip(canvas + 128, 0, 255).astype(np.uint8))


def previous_preview(image: Image.Image, max_side: int, max_bytes: int) -> bytes:
    """The preview encoder as it was: quality steps, then sizes, WebP at its default method."""
    preview = image.convert("RGB")
    if max(preview.size) > max_side:
        preview.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    while True:
        for quality in (85, 70, 55, 40):
            buffer = io.BytesIO()
            preview.save(buffer, format="WEBP", quality=quality)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if max(preview.size) <= 64:
            return buffer.getvalue()
        preview = preview.resize((preview.width * 3 // 4, preview.height * 3 // 4), Image.Resampling.LANCZOS)


async def measure(run) -> tuple[float, float]:
    """(seconds `run` took, longest extra delay of a 5 ms ping while it ran)."""
    stalls: list[float] = []
    done = anyio.Event()

    async def ping() -> None:
        while not done.is_set():
            asked = time.perf_counter()
            await anyio.sleep(TICK_S)
            stalls.append(time.perf_counter() - asked - TICK_S)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ping)
        await anyio.sleep(0.05)
        started = time.perf_counter()
        await run()
        took = time.perf_counter() - started
        done.set()
    return took, max(stalls)


async def main(count: int, side: int) -> None:
    from pixelmcp.backends import GeneratedImages
    from pixelmcp.config import load_settings
    from pixelmcp.engine.pool import ModelPool
    from pixelmcp.media.store import ImageStore
    from pixelmcp.router import Router
    from pixelmcp.service.checks import check_image_request
    from pixelmcp.service.images import result_fields, store_images
    from pixelmcp.service.jobs import JobBoard
    from pixelmcp.service.results import GenerateImageResult
    from pixelmcp.service.rewriting import RewriteOutcome
    from pixelmcp.service.state import AppState
    from pixelmcp.tools.results import tool_result

    images = [photo_like(side, seed) for seed in range(count)]
    settings = load_settings(profile="tiny", output_dir=tempfile.mkdtemp(), log_level="WARNING", alignment=False,
                             models={"bench": {"source": "tiny:sd15", "kind": "sd15", "min_side": 64,
                                                 "max_side": 2048}})
    store = ImageStore(settings.output_dir, settings.png_compress_level)
    pool = ModelPool(settings)
    app = AppState(settings=settings, store=store, pool=pool, router=Router(settings, pool),
                   jobs=JobBoard(Path(settings.output_dir) / "jobs", settings.max_jobs, settings.job_retention_s))
    request = check_image_request(settings, store, settings.catalog["bench"], prompt="a photo", negative_prompt=None,
                                  width=side, height=side, steps=4, guidance_scale=None, seed=1, n=count)
    made = GeneratedImages(images=images, scheduler="bench", device="cpu",
                           timings={"queue_s": 0.0, "load_s": 0.0, "run_s": 0.0})
    rewrite = RewriteOutcome()
    per_image_bytes = max(settings.preview_max_bytes // count, 8_000)

    async def before() -> None:
        old = ImageStore(Path(settings.output_dir) / "before", png_compress_level=6)
        for image in images:
            old.save(image, {"prompt": "a photo"})
            base64.b64encode(previous_preview(image, settings.preview_max_side, per_image_bytes))

    async def now() -> None:
        records = await anyio.to_thread.run_sync(lambda: store_images(app, "generate_image", request, made, {}),
                                                 limiter=app.encoders)
        result = GenerateImageResult(**result_fields(request, rewrite, made, records, time.perf_counter()))
        await tool_result(app, result, records, made.images)

    await measure(now)  # warm up imports and thread pool
    old_s, old_stall = await measure(before)
    new_s, new_stall = await measure(now)
    print(f"{count} images of {side}x{side}, preview budget {per_image_bytes} bytes each")
    print(f"before: {old_s / count * 1000:.0f} ms per image, event loop stalled up to {old_stall * 1000:.0f} ms")
    print(f"now:    {new_s / count * 1000:.0f} ms per image, event loop stalled up to {new_stall * 1000:.0f} ms")
    print(f"per-image time before/now {old_s / new_s:.2f}; stall before/now {old_stall / max(new_stall, 1e-4):.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    anyio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 4, int(sys.argv[2]) if len(sys.argv) > 2 else 1024)
