"""Fetching image URLs, when the operator allows it (PIXELMCP_ALLOW_URLS, off by default).

A URL an assistant passes may come from text it read anywhere, so a fetch must not become a way
into the server's network: http(s) only; every host is resolved first and refused if any of its
addresses is private, loopback, link-local, multicast or reserved; the connection's peer address
is checked again (DNS can change between the two); redirects are followed by hand, each one
checked the same way; size, time and content type are bounded.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import httpx

from pixelmcp.errors import InvalidArgument

MAX_REDIRECTS = 3
TIMEOUT_S = 15.0


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool  # intranet use: accept private and loopback addresses
    max_bytes: int


def fetch_image_bytes(url: str, argument: str, policy: FetchPolicy) -> bytes:
    """The body of an image URL, or InvalidArgument saying why it was refused."""
    current = url
    with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check_url(current, url, argument, policy)
            try:
                with client.stream("GET", current, headers={"Accept": "image/*"}) as response:
                    _check_peer(response, url, argument, policy)
                    if response.is_redirect:
                        current = urljoin(current, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise InvalidArgument(argument, url, f"the server answered HTTP {response.status_code}",
                                              "Check the URL, or download the image and pass it as data.")
                    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if not kind.startswith("image/"):
                        raise InvalidArgument(argument, url, f"content type is {kind or 'missing'!r}, not an image",
                                              "Pass the URL of the image file itself.")
                    return _read_bounded(response, url, argument, policy.max_bytes)
            except httpx.TimeoutException as e:
                raise InvalidArgument(argument, url, f"no answer within {TIMEOUT_S:.0f} s",
                                      "Try again later, or download the image and pass it as data.") from e
            except httpx.HTTPError as e:
                raise InvalidArgument(argument, url, f"could not be fetched ({type(e).__name__}: {e})",
                                      "Check the URL, or download the image and pass it as data.") from e
    raise InvalidArgument(argument, url, f"more than {MAX_REDIRECTS} redirects", "Pass the final URL of the image.")


def _check_url(current: str, original: str, argument: str, policy: FetchPolicy) -> None:
    parsed = urlparse(current)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidArgument(argument, original, f"only http and https URLs are fetched (got {current!r})",
                              "Pass an http(s) URL, or the image as data.")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InvalidArgument(argument, original, f"host {parsed.hostname!r} does not resolve ({e.strerror})",
                              "Check the URL.") from e
    for info in infos:
        _check_address(info[4][0], parsed.hostname, original, argument, policy)


def _check_address(address: str, host: str, original: str, argument: str, policy: FetchPolicy) -> None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_global and not ip.is_multicast:
        return
    if policy.allow_private and (ip.is_private or ip.is_loopback) and not (ip.is_link_local or ip.is_multicast):
        return
    raise InvalidArgument(argument, original, f"{host} resolves to {ip}, a non-public address this server will not fetch",
                          "Only public http(s) image URLs are fetched; pass the image as data instead.")


def _check_peer(response: httpx.Response, original: str, argument: str, policy: FetchPolicy) -> None:
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer:
        _check_address(str(peer[0]), response.url.host, original, argument, policy)


def _read_bounded(response: httpx.Response, url: str, argument: str, limit: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise InvalidArgument(argument, url, f"the image is {declared} bytes, over the {limit}-byte limit",
                              "Use a smaller image (or raise PIXELMCP_MAX_INPUT_BYTES).")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise InvalidArgument(argument, url, f"the image is over the {limit}-byte limit",
                                  "Use a smaller image (or raise PIXELMCP_MAX_INPUT_BYTES).")
    return bytes(body)
