"""The streamable HTTP transport: body limit, DNS-rebinding protection, and an optional bearer token.

Loopback binds keep the SDK's DNS-rebinding protection (Host and Origin checked). Any other bind
needs PIXELMCP_HTTP_TOKEN (or the loudly named insecure flag): every HTTP request must then carry
`Authorization: Bearer <token>`, compared in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from pixelmcp.config import Settings

logger = logging.getLogger(__name__)

_WILDCARDS = {"0.0.0.0", "::", "[::]", ""}


class BearerTokenGate:
    """ASGI middleware: HTTP requests without the right bearer token get 401 and never reach MCP."""

    def __init__(self, app: Any, token: str):
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
            if not hmac.compare_digest(given, self._expected):
                body = json.dumps({"error": "unauthorized", "error_description": "missing or wrong bearer token: send "
                                   "'Authorization: Bearer <token>' with the server's PIXELMCP_HTTP_TOKEN"}).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="pixelmcp"'),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


class DeclaredBodyLimit:
    """ASGI middleware: a request whose Content-Length is over the limit gets 413 saying what to do, before any
    of its body is read (the SDK's own limit, which also counts chunked bodies as they arrive, answers only
    "Request body too large")."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            declared = next((value for name, value in scope["headers"] if name == b"content-length"), b"")
            if declared.isdigit() and int(declared) > self.max_bytes:
                text = (f"The request body is {int(declared):,} bytes, over this server's limit of "
                        f"{self.max_bytes:,} (PIXELMCP_HTTP_MAX_BODY_MB). Send large images by path or pixelmcp:// "
                        "uri instead of base64, or raise the limit.")
                body = json.dumps({"error": "request_too_large", "error_description": text}).encode()
                await send({"type": "http.response.start", "status": 413, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def security_for(host: str, settings: Settings) -> TransportSecuritySettings | None:
    """None lets the SDK protect loopback binds itself; other binds check the configured hosts."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    hosts = list(settings.http_allowed_hosts)
    if host not in _WILDCARDS:
        hosts.append(f"{host}:*")
    if not hosts:
        logger.warning("binding %s with no PIXELMCP_HTTP_ALLOWED_HOSTS: Host headers are not checked (%s)",
                       host or "all addresses",
                       "the bearer token still is" if settings.http_token is not None else "and there is NO TOKEN")
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                     allowed_origins=origins)


def http_app(server: MCPServer, settings: Settings, host: str) -> Any:
    """The ASGI app serving MCP at /mcp, with the body limit and (when configured) the token gate."""
    limit = int(settings.http_max_body_mb * 2**20)
    app = DeclaredBodyLimit(server.streamable_http_app(
        host=host,
        transport_security=security_for(host, settings),
        max_request_body_size=limit,
    ), limit)
    # Settings turn an empty or blank token into None and refuse weak ones, so "a token is set" and
    # "the gate is installed" are the same condition.
    if settings.http_token is None:
        return app
    return BearerTokenGate(app, settings.http_token.get_secret_value())
