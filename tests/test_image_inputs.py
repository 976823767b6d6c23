"""Image inputs: every accepted form, and a clear error for everything else."""

from __future__ import annotations

import base64
import io
import os

import pytest
from PIL import Image

from pixelmcp.errors import InvalidArgument
from pixelmcp.media.images import InputLimits, encode_preview, load_image
from pixelmcp.media.store import ImageStore


@pytest.fixture
def store(tmp_path) -> ImageStore:
    return ImageStore(tmp_path / "out")


@pytest.fixture
def limits(tmp_path, store) -> InputLimits:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    return InputLimits(max_bytes=200_000, max_pixels=500 * 500, read_roots=(store.root, allowed.resolve()))


def png_bytes(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


def gradient(size=(32, 16)) -> Image.Image:
    image = Image.new("RGB", size)
    image.putdata([(x * 8 % 256, y * 16 % 256, 128) for y in range(size[1]) for x in range(size[0])])
    return image


def load(value, store, limits):
    return load_image(value, argument="image", store=store, limits=limits)


def test_pixelmcp_uri_of_a_stored_image_loads_it(store, limits):
    record = store.save(gradient(), {"seed": 1})
    assert load(record.uri, store, limits).tobytes() == gradient().tobytes()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_data_uri_and_bare_base64_decode_the_same_image(store, limits, fmt):
    source = gradient() if fmt != "GIF" else gradient().convert("P")
    encoded = base64.b64encode(png_bytes(source, fmt, **({"lossless": True} if fmt == "WEBP" else {}))).decode()
    from_uri = load(f"data:image/{fmt.lower()};base64,{encoded}", store, limits)
    bare = load(encoded, store, limits)
    assert from_uri.mode == "RGB" and from_uri.size == (32, 16)
    assert from_uri.tobytes() == bare.tobytes()


def test_jpeg_loads_and_exif_orientation_is_applied(store, limits):
    image = Image.new("RGB", (40, 20), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    encoded = base64.b64encode(png_bytes(image, "JPEG", exif=exif)).decode()
    assert load(encoded, store, limits).size == (20, 40)


def test_transparency_is_composited_onto_white(store, limits):
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    encoded = base64.b64encode(png_bytes(image)).decode()
    assert load(encoded, store, limits).getpixel((0, 0)) == (255, 255, 255)


def test_paths_inside_allowed_folders_load(tmp_path, store, limits):
    path = tmp_path / "allowed" / "in.png"
    gradient().save(path)
    assert load(str(path), store, limits).size == (32, 16)
    assert load(path.as_uri(), store, limits).size == (32, 16)


def test_paths_outside_allowed_folders_are_refused_without_reading_them(tmp_path, store, limits):
    outside = tmp_path / "secret.png"
    gradient().save(outside)
    with pytest.raises(InvalidArgument, match="outside the folders this server may read"):
        load(str(outside), store, limits)


def test_a_symlink_out_of_an_allowed_folder_is_refused(tmp_path, store, limits):
    outside = tmp_path / "secret.png"
    gradient().save(outside)
    link = tmp_path / "allowed" / "link.png"
    os.symlink(outside, link)
    with pytest.raises(InvalidArgument, match="outside the folders"):
        load(str(link), store, limits)


def test_traversal_through_an_allowed_folder_is_refused(tmp_path, store, limits):
    gradient().save(tmp_path / "secret.png")
    with pytest.raises(InvalidArgument, match="outside the folders"):
        load(str(tmp_path / "allowed" / ".." / "secret.png"), store, limits)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "empty image"),
        ("https://example.com/cat.png", "URLs are not fetched"),
        ("pixelmcp://images/20260101-000000-deadbeef", "no stored image"),
        ("pixelmcp://images/../../etc/passwd", "not a pixelmcp image id"),
        ("data:text/plain;base64,aGVsbG8=", "not an image"),
        ("data:image/png,rawbytes", "malformed data URI"),
        ("data:image/png;base64,!!!!", "invalid base64"),
        (base64.b64encode(b"hello, this is not an image at all").decode(), "not an image in a supported format"),
        ("/no/such/file.png", "no such file"),
        ("what is this?", "not a recognised image reference"),
    ],
)
def test_bad_inputs_are_clear_errors(store, limits, value, expected):
    with pytest.raises(InvalidArgument, match="image") as info:
        load(value, store, limits)
    assert expected in str(info.value)


def test_truncated_data_is_refused(store, limits):
    data = png_bytes(gradient((64, 64)))
    with pytest.raises(InvalidArgument, match="truncated or corrupt"):
        load(base64.b64encode(data[: len(data) // 2]).decode(), store, limits)


def test_too_many_bytes_is_refused_before_decoding(store, limits):
    noise = Image.frombytes("RGB", (300, 300), os.urandom(300 * 300 * 3))
    with pytest.raises(InvalidArgument, match="200000-byte limit"):
        load(base64.b64encode(png_bytes(noise)).decode(), store, limits)


def test_decompression_bomb_is_refused_from_its_header(store, limits):
    bomb = png_bytes(Image.new("L", (4000, 4000)))  # ~16 KB on disk, 16 M pixels decoded
    with pytest.raises(InvalidArgument, match="over the 250000 limit"):
        load(base64.b64encode(bomb).decode(), store, limits)


def test_unsupported_format_is_refused(store, limits):
    icon = png_bytes(gradient((16, 16)), "ICO")
    with pytest.raises(InvalidArgument, match="supported format"):
        load(base64.b64encode(icon).decode(), store, limits)


def test_preview_respects_size_and_byte_budget():
    noise = Image.frombytes("RGB", (1500, 900), os.urandom(1500 * 900 * 3))
    data, mime = encode_preview(noise, max_side=1024, max_bytes=60_000)
    preview = Image.open(io.BytesIO(data))
    assert mime == "image/webp" and preview.format == "WEBP"
    assert max(preview.size) <= 1024 and len(data) <= 60_000
    jpeg, mime = encode_preview(gradient(), max_side=16, max_bytes=60_000, fmt="jpeg")
    assert mime == "image/jpeg" and Image.open(io.BytesIO(jpeg)).size == (16, 8)


def test_a_preview_takes_one_encode_when_it_fits_and_two_when_it_must_shrink(monkeypatch):
    saves = []
    real_save = Image.Image.save

    def counting_save(self, *args, **kwargs):
        saves.append(self.size)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", counting_save)
    encode_preview(gradient((1024, 1024)), max_side=1024, max_bytes=600_000)
    assert len(saves) == 1
    saves.clear()
    noise = Image.frombytes("RGB", (1024, 1024), os.urandom(1024 * 1024 * 3))
    data, _ = encode_preview(noise, max_side=1024, max_bytes=100_000)
    assert len(data) <= 100_000 and len(saves) <= 3  # one at full size, then at the size its bytes predict
