"""Small helpers for reading tool results in tests."""

from __future__ import annotations

import base64
import io

from PIL import Image


def error_text(result) -> str:
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    return result.content[0].text


def ok(result):
    assert not result.is_error, result.content[0].text if result.content else result
    return result.structured_content


def preview_of(result) -> Image.Image:
    block = next(b for b in result.content if b.type == "image")
    return Image.open(io.BytesIO(base64.b64decode(block.data)))


def pixels(path: str) -> bytes:
    with Image.open(path) as image:
        return image.convert("RGB").tobytes()
