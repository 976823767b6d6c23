"""Image URLs: off by default; when on, public addresses only, with every fetch bounded."""

from __future__ import annotations

import http.server
import io
import socket
import threading

import pytest
from PIL import Image

from pixelmcp.errors import InvalidArgument
from pixelmcp.media.images import InputLimits, load_image
from pixelmcp.media.store import ImageStore


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), "green").save(buffer, format="PNG")
    return buffer.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    routes = {
        "/cat.png": (200, {"Content-Type": "image/png"}, png()),
        "/page": (200, {"Content-Type": "text/html"}, b"<html>not an image</html>"),
        "/big.png": (200, {"Content-Type": "image/png"}, b"\x89PNG" + b"0" * 5000),
        "/missing.png": (404, {"Content-Type": "text/plain"}, b"no"),
    }

    def do_GET(self):
        if self.path.startswith("/redirect-to"):
            target = self.path.split("?to=", 1)[1]
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()
            return
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def load(url: str, tmp_path, **limits):
    values = dict(max_bytes=4000, max_pixels=10_000, read_roots=(), allow_urls=True, allow_private_urls=False)
    values.update(limits)
    return load_image(url, argument="image", store=ImageStore(tmp_path / "out"), limits=InputLimits(**values))


def test_urls_are_refused_when_not_enabled(site, tmp_path):
    with pytest.raises(InvalidArgument, match="PIXELMCP_ALLOW_URLS is off"):
        load(f"{site}/cat.png", tmp_path, allow_urls=False)


def test_loopback_and_private_addresses_are_refused_by_default(site, tmp_path):
    with pytest.raises(InvalidArgument, match="127.0.0.1, a non-public address"):
        load(f"{site}/cat.png", tmp_path)
    with pytest.raises(InvalidArgument, match="non-public address"):
        load("http://localhost:9/cat.png", tmp_path)


def test_a_name_that_resolves_to_a_private_address_is_refused(tmp_path, monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(InvalidArgument, match="resolves to 10.1.2.3"):
        load("https://images.example.test/cat.png", tmp_path)


def test_an_allowed_fetch_returns_the_image(site, tmp_path):
    image = load(f"{site}/cat.png", tmp_path, allow_private_urls=True)
    assert image.size == (12, 8) and image.getpixel((0, 0)) == (0, 128, 0)


@pytest.mark.parametrize(("path", "expected"), [
    ("/page", "not an image"),
    ("/big.png", "over the 4000-byte limit"),
    ("/missing.png", "HTTP 404"),
])
def test_bad_responses_are_clear_errors(site, tmp_path, path, expected):
    with pytest.raises(InvalidArgument, match=expected):
        load(f"{site}{path}", tmp_path, allow_private_urls=True)


def test_redirects_are_followed_and_checked_like_the_first_url(site, tmp_path):
    image = load(f"{site}/redirect-to?to={site}/cat.png", tmp_path, allow_private_urls=True)
    assert image.size == (12, 8)
    with pytest.raises(InvalidArgument, match="169.254.169.254, a non-public address"):
        load(f"{site}/redirect-to?to=http://169.254.169.254/latest/meta-data", tmp_path, allow_private_urls=True)
    with pytest.raises(InvalidArgument, match="only http and https"):
        load(f"{site}/redirect-to?to=file:///etc/passwd", tmp_path, allow_private_urls=True)


def test_other_schemes_are_not_fetched(tmp_path):
    with pytest.raises(InvalidArgument) as info:
        load("ftp://example.com/cat.png", tmp_path)
    assert "Invalid image=" in str(info.value)
