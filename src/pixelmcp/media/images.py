"""Image inputs and outputs at the protocol edge.

Inputs: every tool that takes an image accepts the same forms, resolved here to a PIL image
with limits applied *before* decoding (bytes, pixels, known formats):

- `pixelmcp://images/{id}`: an image an earlier call made (chain tools without re-uploading)
- `data:image/...;base64,...`: a data URI
- bare base64 of a PNG / JPEG / WebP / GIF / BMP / TIFF file
- a file path or `file://` URI inside an allowed folder (output folder, working directory,
  `PIXELMCP_ALLOWED_DIRS`), checked after resolving symlinks
- an http(s) URL, only when PIXELMCP_ALLOW_URLS is on (see media/fetch.py for the guards)

Outputs: `encode_preview` makes the small inline image clients can display, within a size
and byte budget; the full PNG stays in the store behind a resource link.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image, ImageOps, UnidentifiedImageError

from pixelmcp.errors import InvalidArgument
from pixelmcp.media.store import URI_PREFIX, ImageStore, UnknownImageError

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF"})
_FORMS = "a pixelmcp://images/<id> uri, a data:image/...;base64 uri, bare base64, or a path inside an allowed folder"
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-\r\n]{16,}$")
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)$", re.DOTALL)


@dataclass(frozen=True)
class InputLimits:
    """Bounds applied to every input image before it is decoded."""

    max_bytes: int
    max_pixels: int
    read_roots: tuple[Path, ...]
    allow_urls: bool = False
    allow_private_urls: bool = False


def load_image(value: str, *, argument: str, store: ImageStore, limits: InputLimits) -> Image.Image:
    """Resolve one image argument to an RGB PIL image, or raise InvalidArgument saying why."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(argument, value, "empty image", f"Pass {_FORMS}.")
    text = value.strip()
    if text.startswith(URI_PREFIX):
        return _decode(_read_stored(text, argument, store, limits), argument, limits)
    if text.startswith("data:"):
        return _decode(_read_data_uri(text, argument, limits), argument, limits)
    scheme = urlparse(text).scheme.lower()
    if scheme in ("http", "https"):
        if not limits.allow_urls:
            raise InvalidArgument(
                argument, value, "URLs are not fetched by this server (PIXELMCP_ALLOW_URLS is off)",
                "Download the image and pass it as a data URI or base64, or save it inside an allowed folder.",
            )
        from pixelmcp.media.fetch import FetchPolicy, fetch_image_bytes

        policy = FetchPolicy(allow_private=limits.allow_private_urls, max_bytes=limits.max_bytes)
        return _decode(fetch_image_bytes(text, argument, policy), argument, limits)
    # Base64 of a JPEG starts with "/9j/", which also looks like a path: check the magic bytes first.
    if _is_base64_image(text) or (_BASE64_CHARS.match(text) and not _looks_like_path(text) and scheme != "file"):
        return _decode(_b64decode(text, argument, limits), argument, limits)
    if scheme == "file" or _looks_like_path(text):
        return _decode(_read_path(text, argument, limits), argument, limits)
    raise InvalidArgument(argument, value, "not a recognised image reference", f"Pass {_FORMS}.")


_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")


def _is_base64_image(text: str) -> bool:
    head = re.sub(r"\s+", "", text[:128])[:64]
    if len(head) < 16 or not _BASE64_CHARS.match(head):
        return False
    try:
        raw = base64.b64decode(head[: len(head) // 4 * 4], validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(_MAGIC)


def _looks_like_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    return text.startswith(("/", "~", "./", "../", "\\\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", text)) or (
        "." in text[-6:] and ("/" in text or "\\" in text or not _BASE64_CHARS.match(text))
    )


def _read_stored(uri: str, argument: str, store: ImageStore, limits: InputLimits) -> bytes:
    try:
        path = store.png_path(store.id_from_uri(uri))
    except UnknownImageError as e:
        raise InvalidArgument(argument, uri, str(e), "Use a uri exactly as an earlier tool result gave it.") from e
    return read_bounded(path, argument, uri, limits.max_bytes)


def _read_data_uri(text: str, argument: str, limits: InputLimits) -> bytes:
    match = _DATA_URI.match(text)
    if not match:
        raise InvalidArgument(
            argument, text, "malformed data URI (only base64 data URIs are accepted)",
            "Use the form data:image/png;base64,<data>.",
        )
    mime = (match.group("mime") or "").lower()
    if mime and not mime.startswith("image/"):
        raise InvalidArgument(argument, text, f"data URI has media type {mime!r}, not an image", "Send an image.")
    return _b64decode(match.group("data"), argument, limits)


def _b64decode(data: str, argument: str, limits: InputLimits) -> bytes:
    compact = re.sub(r"\s+", "", data)
    # Refuse before decoding: base64 is 4/3 the size of what it encodes.
    if len(compact) * 3 // 4 > limits.max_bytes:
        raise InvalidArgument(
            argument, data, f"image data is about {len(compact) * 3 // 4} bytes, over the {limits.max_bytes}-byte limit",
            "Send a smaller or more compressed image (or raise PIXELMCP_MAX_INPUT_BYTES).",
        )
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidArgument(argument, data, f"invalid base64 ({e})", "Send the file's bytes base64-encoded.") from e


def _read_path(text: str, argument: str, limits: InputLimits) -> bytes:
    raw = unquote(urlparse(text).path) if text.lower().startswith("file://") else text
    try:
        path = Path(raw).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidArgument(argument, text, "no such file", f"Check the path; it must be inside {_roots(limits)}.")
    if not any(path.is_relative_to(root) for root in limits.read_roots):
        raise InvalidArgument(
            argument, text, "path is outside the folders this server may read",
            f"Move the file into one of {_roots(limits)}, or add its folder to PIXELMCP_ALLOWED_DIRS.",
        )
    return read_bounded(path, argument, text, limits.max_bytes)


def read_bounded(path: Path, argument: str, shown: str, max_bytes: int) -> bytes:
    """The bytes of the regular file at `path`, never more than `max_bytes` of them.

    The limit holds while reading (a file that grows meanwhile is refused, not read past it), and
    the file is checked to be regular after opening, so a path swapped for a FIFO or device
    between the checks cannot block or flood the server.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise InvalidArgument(argument, shown, f"cannot open the file ({e.strerror})",
                              "Check that it exists and the server may read it.") from e
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # (checked before fdopen, which would refuse a folder with IsADirectoryError)
        os.close(fd)
        what = "is a folder, not an image file" if stat.S_ISDIR(mode) else "not a regular file"
        raise InvalidArgument(argument, shown, what, "Pass the path of an image file.")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise InvalidArgument(argument, shown, f"the file could not be read ({e.strerror})",
                                  "Check the file and try again.") from e
    if len(data) > max_bytes:
        raise InvalidArgument(
            argument, shown, f"file is over the {max_bytes}-byte limit",
            "Use a smaller or more compressed image (or raise PIXELMCP_MAX_INPUT_BYTES).",
        )
    return data


def _roots(limits: InputLimits) -> str:
    return ", ".join(str(r) for r in limits.read_roots) or "(no folder allowed)"


def _decode(data: bytes, argument: str, limits: InputLimits) -> Image.Image:
    if len(data) > limits.max_bytes:
        raise InvalidArgument(
            argument, f"<{len(data)} bytes>", f"over the {limits.max_bytes}-byte limit",
            "Send a smaller image (or raise PIXELMCP_MAX_INPUT_BYTES).",
        )
    return decode_image(data, argument, max_pixels=limits.max_pixels)


def decode_image(data: bytes, argument: str, *, max_pixels: int) -> Image.Image:
    """Decode untrusted image bytes to RGB, or raise InvalidArgument naming `argument` and the problem.

    Pillow's format plugins fail on malformed data with many exception types (ValueError for
    oversized text or ICC chunks, OSError for truncated data and unsupported depths, SyntaxError,
    struct.error, EOFError, ...), and the set differs between versions. Every one of them means
    "these bytes are not a usable image", so this is the boundary that turns any decoding failure
    into the argument's error.
    """
    shown = f"<{len(data)} bytes>"
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
    except Image.DecompressionBombError as e:
        raise InvalidArgument(
            argument, shown, f"refused as a decompression bomb ({e})",
            "Downscale it first (or raise PIXELMCP_MAX_INPUT_PIXELS).",
        ) from e
    except UnidentifiedImageError as e:
        raise InvalidArgument(
            argument, shown, "not an image in a supported format",
            f"Send one of {', '.join(sorted(ALLOWED_FORMATS))}.",
        ) from e
    except Exception as e:  # see the docstring: any failure to read the header is the data's
        raise InvalidArgument(argument, shown, f"unreadable image header ({_reason(e)})", "Re-export the image.") from e
    # The header gives the size; refuse decompression bombs before decoding any pixels.
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise InvalidArgument(
            argument, shown, f"image is {image.width}x{image.height} = {pixels} pixels, over the {max_pixels} limit",
            "Downscale it first (or raise PIXELMCP_MAX_INPUT_PIXELS).",
        )
    if pixels == 0:
        raise InvalidArgument(argument, shown, f"image is {image.width}x{image.height}: it has no pixels",
                              "Send an image with at least one pixel.")
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(scaled_to_8_bits(image, argument, shown))
    except InvalidArgument:
        raise
    except Exception as e:  # see the docstring
        problem = f"truncated or corrupt {image.format} data, or a kind this server cannot decode ({_reason(e)})"
        raise InvalidArgument(argument, shown, problem,
                              "Re-export the image as an 8-bit PNG or JPEG.") from e


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def scaled_to_8_bits(image: Image.Image, argument: str, shown: str) -> Image.Image:
    """One-channel images deeper than 8 bits, scaled to 8 bits (Pillow's convert would clip them).

    16-bit greyscale (PNG, TIFF) spans 0..65535 and 32-bit integer TIFF its own bit depth; 32-bit
    float (TIFF) spans 0..1 by convention. So 50% grey stays 50% grey, which matters for depth maps.
    Multi-channel 16-bit images are already reduced to 8 bits correctly by Pillow.
    """
    if image.mode.startswith("I;16"):
        full = 65535.0
    elif image.mode == "I":
        bits = image.tag_v2.get(258, (16,))[0] if hasattr(image, "tag_v2") else 16  # TIFF BitsPerSample
        full = float(2 ** int(bits) - 1)
    elif image.mode == "F":
        full = 1.0
    else:
        return image
    import numpy as np

    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidArgument(argument, shown, "the image has NaN or infinite pixel values",
                              "Replace them with numbers in 0..1 before sending.")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > full:
        raise InvalidArgument(
            argument, shown, f"pixel values span {low:g}..{high:g}, outside the {image.mode} image range 0..{full:g}",
            "Normalise the image to that range (or save it as an 8- or 16-bit PNG).",
        )
    return Image.fromarray(np.rint(values * (255.0 / full)).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy; transparency is composited onto white (what a viewer would show)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


# --------------------------------------------------------------------------- previews


def encode_preview(image: Image.Image, *, max_side: int, max_bytes: int, fmt: str = "webp") -> tuple[bytes, str]:
    """Encode a display copy within `max_side` px and `max_bytes`; returns (bytes, mime type).

    Usually one encode: quality 85 at the size limit (WebP with its fastest method: ~15 ms for
    1024 px, files ~5% larger than the default method). A result over the byte budget is encoded
    once more at the size its bytes predict (bytes grow with the area), which nearly always fits;
    only then does the size keep stepping down.
    """
    preview = image.convert("RGB")
    if max(preview.size) > max_side:
        preview.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    pil_format, mime, options = (("WEBP", "image/webp", {"method": 0}) if fmt == "webp"
                                 else ("JPEG", "image/jpeg", {}))

    def encode(picture: Image.Image, quality: int) -> bytes:
        buffer = io.BytesIO()
        picture.save(buffer, format=pil_format, quality=quality, **options)
        return buffer.getvalue()

    data = encode(preview, 85)
    while len(data) > max_bytes and max(preview.size) > 64:
        scale = min(0.9, 0.9 * math.sqrt(max_bytes / len(data)))
        size = (max(1, int(preview.width * scale)), max(1, int(preview.height * scale)))
        preview = preview.resize(size, Image.Resampling.LANCZOS)
        data = encode(preview, 80)
    return data, mime  # (a preview of 64 px or less is small whatever its quality)
