"""Every failure to read an image input is the argument's clear error; deep images keep their values.

Pillow fails on malformed files with many exception types (ValueError for oversized text and ICC
chunks, OSError for truncated data and unsupported depths, SyntaxError, ...). Each must reach the
model as "Invalid ARGUMENT=...", never as the bare "Error executing tool".
"""

from __future__ import annotations

import base64
import io
import os
import random
import struct
import zlib

import numpy as np
import pytest
from conftest import stored_files
from helpers import error_text, ok
from mcp import Client
from PIL import Image

from pixelmcp.errors import InvalidArgument
from pixelmcp.media import images
from pixelmcp.media.images import InputLimits, load_image, read_bounded
from pixelmcp.media.store import ImageStore

pytestmark = pytest.mark.anyio


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_with_chunk(kind: bytes, data: bytes) -> bytes:
    """A valid PNG with one more chunk before its image data."""
    png = encoded(Image.new("RGB", (16, 16), "red"), "PNG")
    at = png.index(b"IDAT") - 4
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return png[:at] + chunk + png[at:]


def malformed_images() -> dict[str, bytes]:
    """One member of each way Pillow fails, by the exception it raises (as of Pillow 13)."""
    rgb = Image.new("RGB", (32, 32), "orange")
    webp, jpeg, gif, tiff = (encoded(rgb, fmt) for fmt in ("WEBP", "JPEG", "GIF", "TIFF"))
    bmp = bytearray(encoded(rgb, "BMP"))
    bmp[28:30] = struct.pack("<H", 7)  # bits per pixel
    return {
        "png text chunk over the limit (ValueError)": png_with_chunk(
            b"zTXt", b"comment\x00\x00" + zlib.compress(b"x" * (2 << 20))),
        "png ICC profile over the limit (ValueError)": png_with_chunk(
            b"iCCP", b"icc\x00\x00" + zlib.compress(b"x" * (2 << 20))),
        "truncated webp (OSError)": webp[: len(webp) // 2],
        "bmp with 7 bits per pixel (OSError)": bytes(bmp),
        "truncated jpeg (OSError)": jpeg[:-40],
        "truncated gif (OSError)": gif[:-10],
        "truncated tiff (OSError)": tiff[: len(tiff) // 2],
    }


MALFORMED = malformed_images()
IMAGE_ARGUMENTS = [
    ("classify_image", "image", lambda image: {"image": image, "labels": ["a", "b"]}),
    ("controlnet_generate", "image", lambda image: {"prompt": "a", "image": image, "rewrite": False}),
    ("style_transfer", "style_image", lambda image: {"prompt": "a", "style_image": image, "rewrite": False}),
    ("compare_images", "images[1]", lambda image: {"images": [GOOD, image]}),
]
GOOD = "data:image/png;base64," + base64.b64encode(encoded(Image.new("RGB", (32, 32), "blue"), "PNG")).decode()


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_each_kind_of_decode_failure_is_the_arguments_error(server, settings, name):
    value = "data:image/png;base64," + base64.b64encode(MALFORMED[name]).decode()
    async with Client(server) as client:
        for tool, argument, arguments in IMAGE_ARGUMENTS:
            message = error_text(await client.call_tool(tool, arguments(value)))
            assert f"Invalid {argument}=" in message, (tool, message)
            assert "truncated or corrupt" in message or "unreadable" in message or "supported format" in message
        ok(await client.call_tool("list_models", {}))
    assert stored_files(settings) == []


def test_randomly_damaged_images_of_every_format_decode_or_are_refused_clearly(tmp_path):
    """A seeded mutation fuzz: whatever the damage, the outcome is an RGB image or InvalidArgument."""
    rng = random.Random(1234)
    store = ImageStore(tmp_path / "out")
    limits = InputLimits(max_bytes=1 << 20, max_pixels=1 << 20, read_roots=())
    source = Image.radial_gradient("L").resize((48, 40)).convert("RGB")
    outcomes = {"decoded": 0, "refused": 0}
    for fmt in sorted(images.ALLOWED_FORMATS):
        original = encoded(source, fmt)
        for _ in range(40):
            data = bytearray(original)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(8, len(data))]
            value = base64.b64encode(bytes(data)).decode()
            try:
                decoded = load_image(value, argument="image", store=store, limits=limits)
            except InvalidArgument as e:
                assert str(e).startswith("Invalid image="), e
                outcomes["refused"] += 1
            else:
                assert decoded.mode == "RGB" and decoded.width * decoded.height > 0
                outcomes["decoded"] += 1
    assert outcomes["refused"] > 0 and outcomes["decoded"] > 0


# --------------------------------------------------------------------------- deep images


def sixteen_bit_grey_png(value: int) -> bytes:
    return encoded(Image.fromarray(np.full((32, 32), value, dtype=np.uint16)), "PNG")


def sixteen_bit_tiff(value: int) -> bytes:
    return encoded(Image.fromarray(np.full((32, 32), value, dtype=np.uint16)), "TIFF")


def sixteen_bit_rgb_png(value: int) -> bytes:
    import cv2  # Pillow cannot write 48-bit PNGs; OpenCV can

    ok_, data = cv2.imencode(".png", np.full((32, 32, 3), value, dtype=np.uint16))
    assert ok_
    return data.tobytes()


def float_tiff(value: float) -> bytes:
    return encoded(Image.fromarray(np.full((32, 32), value, dtype=np.float32)), "TIFF")


@pytest.mark.parametrize(("data", "expected"), [
    (sixteen_bit_grey_png(32768), 128),  # 50% grey: 32768 / 65535 * 255 = 127.5
    (sixteen_bit_grey_png(65535), 255),
    (sixteen_bit_grey_png(0), 0),
    (sixteen_bit_tiff(32768), 128),
    (sixteen_bit_rgb_png(32768), 128),
    (float_tiff(0.5), 128),
    (float_tiff(0.25), 64),
], ids=["png16-half", "png16-white", "png16-black", "tiff16-half", "rgb48-png-half", "float-half", "float-quarter"])
async def test_deep_greyscale_control_maps_are_scaled_not_clipped(server, data, expected):
    value = "data:image/png;base64," + base64.b64encode(data).decode()
    async with Client(server) as client:
        result = ok(await client.call_tool("controlnet_generate", {
            "prompt": "a", "image": value, "control_type": "depth", "preprocess": False, "rewrite": False}))
    with Image.open(result["control_map"]["path"]) as stored:
        used = np.asarray(stored.convert("RGB"))
    assert used.min() == used.max() == expected


@pytest.mark.parametrize(("data", "problem"), [
    (float_tiff(2.0), "outside the F image range 0..1"),
    (float_tiff(-0.5), "outside the F image range 0..1"),
    (float_tiff(float("nan")), "NaN or infinite pixel values"),
])
async def test_float_images_outside_zero_to_one_are_refused_not_clipped(server, data, problem):
    value = "data:image/tiff;base64," + base64.b64encode(data).decode()
    async with Client(server) as client:
        message = error_text(await client.call_tool("classify_image", {"image": value, "labels": ["a", "b"]}))
    assert "Invalid image=" in message and problem in message


# --------------------------------------------------------------------------- bounded reads


def test_a_file_is_read_only_up_to_the_limit(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\x00" * 5_000_000)
    requested: list[int] = []
    real_fdopen = os.fdopen

    def counting_fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        real_read = f.read

        class Counted:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def read(self, size=-1):
                requested.append(size)
                return real_read(size)

        return Counted()

    monkeypatch.setattr(images.os, "fdopen", counting_fdopen)
    with pytest.raises(InvalidArgument, match="over the 1000-byte limit"):
        read_bounded(big, "image", str(big), 1000)
    assert requested == [1001]  # never "read everything, then look at the size"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
async def test_a_fifo_in_an_allowed_folder_is_refused_without_blocking(server, settings):
    fifo = settings.output_dir / "pipe.png"
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    async with Client(server) as client:
        message = error_text(await client.call_tool("classify_image", {"image": str(fifo), "labels": ["a", "b"]}))
    assert "Invalid image=" in message and "not a regular file" in message
