"""Hostile and malformed inputs through an MCP client: each is a clear error, the server keeps
answering, and nothing is written outside the output folder."""

from __future__ import annotations

import base64
import io
import os

import pytest
from conftest import stored_files
from helpers import error_text, ok
from mcp import Client
from PIL import Image

pytestmark = pytest.mark.anyio


def b64(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def hostile_images(tmp_path) -> list[tuple[str, str]]:
    secret = tmp_path / "secret.png"
    Image.new("RGB", (8, 8)).save(secret)
    allowed = tmp_path / "allowed"
    allowed.mkdir(exist_ok=True)
    (allowed / "escape.png").unlink(missing_ok=True)
    os.symlink(secret, allowed / "escape.png")
    truncated = base64.b64decode(b64(Image.new("RGB", (64, 64), "red")))[:60]
    webp = base64.b64decode(b64(Image.new("RGB", (64, 64), "red"), "WEBP"))
    (allowed / "folder.png").mkdir(exist_ok=True)  # a folder where an image file is expected
    return [
        (str(allowed / "folder.png"), "is a folder, not an image file"),
        (base64.b64encode(webp[: len(webp) // 2]).decode(), "unreadable image header"),  # a truncated WebP
        (b64(Image.new("L", (9000, 9000))), "pixels, over the"),  # decompression bomb (header only)
        (base64.b64encode(truncated).decode(), "truncated or corrupt"),
        (base64.b64encode(b"GIF89a" + b"\x00" * 20).decode(), "supported format"),
        ("data:text/html;base64,PGh0bWw+", "not an image"),
        (b64(Image.new("RGB", (16, 16)), "ICO"), "supported format"),
        (str(secret), "outside the folders"),
        (f"file://{secret}", "outside the folders"),
        (str(allowed / "escape.png"), "outside the folders"),
        (str(allowed / ".." / "secret.png"), "outside the folders"),
        ("/etc/passwd", "outside the folders"),
        ("pixelmcp://images/../../../etc/passwd", "not a pixelmcp image id"),
        ("pixelmcp://images/20990101-000000-abcdef12", "no stored image"),
        ("http://169.254.169.254/latest/meta-data/", "URLs are not fetched"),
        ("x" * 5000, "supported format"),  # valid base64 of garbage bytes
    ]


_PLAIN = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElF"
          "TkSuQmCC")  # one red pixel

TOOLS = [
    ("classify_image", lambda image: {"image": image, "labels": ["a", "b"]}),
    ("ask_about_image", lambda image: {"image": image, "question": "what?"}),
    ("controlnet_generate", lambda image: {"prompt": "a", "image": image, "rewrite": False}),
    ("style_transfer", lambda image: {"prompt": "a", "style_image": image, "rewrite": False}),
    ("edit_image", lambda image: {"image": image, "prompt": "a"}),
    ("edit_image mask", lambda image: {"image": _PLAIN, "prompt": "a", "mask": image}),
    ("extend_image", lambda image: {"image": image, "prompt": "a", "right": 8}),
    ("upscale_image", lambda image: {"image": image}),
    ("remove_background", lambda image: {"image": image}),
]


@pytest.mark.parametrize(("tool", "arguments"), TOOLS, ids=[t for t, _ in TOOLS])
async def test_every_image_taking_tool_refuses_hostile_images_and_keeps_answering(
    make_settings, tmp_path, tool, arguments
):
    from pixelmcp.server.app import build_server

    settings = make_settings(allowed_dirs=[tmp_path / "allowed"], allow_cwd=False)  # cwd is tmp_path here
    inputs = hostile_images(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    async with Client(build_server(settings)) as client:
        for value, expected in inputs:
            message = error_text(await client.call_tool(tool.split()[0], arguments(value)))
            assert "Invalid " in message and expected in message, (value[:60], message)
            assert "root:" not in message  # never a file's contents
        ok(await client.call_tool("list_models", {}))  # still answering
    assert stored_files(settings) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "out") == [n for n in before if n != "out"]


NUMBERS_AND_STRINGS = [
    ("generate_image", {"prompt": "a", "steps": 10**12}, "Invalid steps="),
    ("generate_image", {"prompt": "a", "width": -64}, "Invalid width="),
    ("generate_image", {"prompt": "a", "guidance_scale": "Infinity"}, "Invalid guidance_scale="),
    ("generate_image", {"prompt": "a", "seed": 2**70}, "Invalid seed="),
    ("generate_image", {"prompt": "a", "n": 10**6}, "Invalid n="),
    ("generate_image", {"prompt": "\u202e" + "x" * 3000}, "Invalid prompt="),
    ("rewrite_prompt", {"prompt": "a", "style": "y" * 3000}, "Invalid style="),
    ("controlnet_generate", {"prompt": "a", "image": "IMG", "conditioning_scale": "-inf"}, "Invalid conditioning_scale="),
    ("controlnet_generate", {"prompt": "a", "image": "IMG", "low_threshold": -5}, "Invalid low_threshold="),
    ("style_transfer", {"prompt": "a", "style_image": "IMG", "scale": "NaN"}, "Invalid scale="),
    ("edit_image", {"image": "IMG", "prompt": "a", "strength": "NaN"}, "Invalid strength="),
    ("edit_image", {"image": "IMG", "prompt": "a", "mask_prompt": "m" * 3000}, "Invalid mask_prompt="),
    ("extend_image", {"image": "IMG", "prompt": "a", "top": 10**9}, "Invalid top="),
    ("upscale_image", {"image": "IMG", "scale": 10**6}, "Invalid scale="),
    ("upscale_image", {"image": "IMG", "strength": "-inf"}, "Invalid strength="),
    ("remove_background", {"image": "IMG", "subject": "s" * 3000}, "Invalid subject="),
    ("classify_image", {"image": "IMG", "labels": ["x"] * 1000}, "Invalid labels="),
    ("classify_image", {"image": "IMG", "labels": ["a", "z" * 500]}, "Invalid labels="),
    ("classify_image", {"images": ["IMG"] * 100, "labels": ["a", "b"]}, "Invalid images="),
    ("compare_images", {"images": ["IMG"] * 50}, "Invalid images="),
    ("ask_about_image", {"image": "IMG", "question": "q" * 5000}, "Invalid question="),
    ("ask_about_image", {"image": "IMG", "question": "q", "max_tokens": 10**9}, "Invalid max_tokens="),
]


@pytest.mark.parametrize(("tool", "arguments", "expected"), NUMBERS_AND_STRINGS)
async def test_numbers_strings_and_lists_are_bounded(server, settings, tool, arguments, expected):
    image = "data:image/png;base64," + b64(Image.new("RGB", (32, 32), "blue"))

    def fill(value):
        if value == "IMG":
            return image
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    async with Client(server) as client:
        message = error_text(await client.call_tool(tool, {k: fill(v) for k, v in arguments.items()}))
        ok(await client.call_tool("list_models", {}))
    assert expected in message
    assert stored_files(settings) == []
