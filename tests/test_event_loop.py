"""No image operation runs on the event loop: while a tool resizes, masks, composites or encodes images, the server
keeps answering other clients (a stalled loop also stalls their progress and heartbeats).

Held by construction, not by the clock: every PIL pixel operation is watched, and none may run on the loop's
thread. (How long the loop still waits for the GIL while worker threads run C code that holds it is a
measurement for a benchmark, not a test on a noisy machine.)"""

from __future__ import annotations

import threading

import pytest
from helpers import data_uri, ok, shapes
from mcp import Client
from PIL import Image

pytestmark = pytest.mark.anyio

#: PIL's pixel work, which belongs in worker threads.
PIXEL_WORK = ("resize", "point", "filter", "save", "convert", "paste", "crop", "transpose", "putalpha", "thumbnail",
              "getextrema", "tobytes")


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
