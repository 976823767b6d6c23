"""No image operation runs on the event loop: while a tool resizes, masks, composites or encodes images, the server
keeps answering other clients (a stalled loop also stalls their progress and heartbeats)."""

from __future__ import annotations

import threading
import time

import anyio
import numpy as np
import pytest
from helpers import data_uri, ok, shapes
from mcp import Client
from PIL import Image

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

#: The longest the loop may go without running a ready task while a tool works.
MAX_STALL_S = 0.050

#: PIL's pixel work (each releases the GIL in C, so in a worker thread it never holds the loop up).
PIXEL_WORK = ("resize", "point", "filter", "save", "convert", "paste", "crop", "transpose", "putalpha", "thumbnail",
              "getextrema", "tobytes")


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like image (smooth gradients and noise), which resizes and encodes as slowly as a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[1], 0:size[0]]
    base = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) * 255 // (size[0] + size[1])], axis=-1)
    return Image.fromarray(np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8))


@pytest.fixture
def on_the_loop(monkeypatch) -> list[str]:
    """Every PIL pixel operation that runs on this (the event loop's) thread, as 'method WxH'."""
    loop_thread = threading.current_thread()
    seen: list[str] = []
    for name in PIXEL_WORK:
        original = getattr(Image.Image, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            if threading.current_thread() is loop_thread:
                seen.append(f"{_name} {self.width}x{self.height}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Image.Image, name, spy)
    original_composite = Image.composite

    def composite(image1, image2, mask):
        if threading.current_thread() is loop_thread:
            seen.append(f"composite {image1.width}x{image1.height}")
        return original_composite(image1, image2, mask)

    monkeypatch.setattr(Image, "composite", composite)
    return seen


def left_half(size) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    return mask


async def test_no_image_tool_works_on_pixels_on_the_event_loop(server, on_the_loop):
    source, mask = data_uri(shapes()), data_uri(left_half((64, 64)))
    calls = [
        ("generate_image", {"prompt": "a", "seed": 1, "rewrite": False}),
        ("edit_image", {"image": source, "prompt": "x", "mask": mask, "seed": 1}),
        ("edit_image", {"image": source, "prompt": "x", "mask_prompt": "the square", "seed": 1}),
        ("extend_image", {"image": source, "prompt": "x", "left": 16, "seed": 1}),
        ("upscale_image", {"image": source, "seed": 1}),
        ("controlnet_generate", {"prompt": "a", "image": source, "seed": 1, "rewrite": False}),
        ("style_transfer", {"prompt": "a", "style_image": source, "seed": 1, "rewrite": False}),
        ("remove_background", {"image": source}),
        ("classify_image", {"image": source, "labels": ["a", "b"]}),
        ("ask_about_image", {"image": source, "question": "q", "max_tokens": 4, "check_claims": False}),
        ("compare_images", {"images": [source, data_uri(shapes(offset=8))], "check_claims": False}),
        ("list_images", {}),
    ]
    on_the_loop.clear()  # (the test made its inputs here)
    async with Client(server) as client:
        for tool, arguments in calls:
            ok(await client.call_tool(tool, arguments))
            assert not on_the_loop, f"{tool} worked on pixels on the event loop: {on_the_loop}"


async def longest_stall_while(call) -> tuple[float, object]:
    """Run `call()` while a task asks to run every 5 ms; returns (the longest gap between its turns, the result)."""
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


async def test_upscaling_and_comparing_large_images_keep_the_event_loop_responsive(make_settings, tmp_path):
    settings = make_settings(alignment=False, allowed_dirs=[str(tmp_path)], call_budget_s=0)
    photos = []
    for seed in range(3):
        path = tmp_path / f"photo-{seed}.png"
        photo((3000, 2000), seed).save(path)  # 6 MP: a phone photo
        photos.append(str(path))
    small = tmp_path / "small.png"
    photo((192, 128), 7).save(small)
    async with Client(build_server(settings)) as client:
        ok(await client.call_tool("upscale_image", {"image": str(small), "seed": 1}))  # models loaded, then timed
        stall, compared = await longest_stall_while(lambda: client.call_tool("compare_images", {
            "images": photos, "check_claims": False}))
        assert len(ok(compared)["pairs"]) == 3
        assert stall <= MAX_STALL_S, f"compare_images stalled the event loop for {stall * 1000:.0f} ms"
        stall, upscaled = await longest_stall_while(lambda: client.call_tool("upscale_image", {
            "image": str(small), "scale": 4, "seed": 2}))
        assert (ok(upscaled)["width"], ok(upscaled)["height"]) == (768, 512)
        assert stall <= MAX_STALL_S, f"upscale_image stalled the event loop for {stall * 1000:.0f} ms"
