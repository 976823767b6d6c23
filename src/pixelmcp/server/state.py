"""What the lifespan builds and every tool reaches through its context."""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server.mcpserver import Context

from pixelmcp.config import Settings
from pixelmcp.engine.pool import ModelPool
from pixelmcp.router import Router
from pixelmcp.server.images import InputLimits
from pixelmcp.server.store import ImageStore


@dataclass
class AppState:
    settings: Settings
    store: ImageStore
    pool: ModelPool
    router: Router

    @property
    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_bytes=self.settings.max_input_bytes,
            max_pixels=self.settings.max_input_pixels,
            read_roots=tuple(self.settings.read_roots()),
            allow_urls=self.settings.allow_urls,
            allow_private_urls=self.settings.allow_private_urls,
        )


def app_state(ctx: Context) -> AppState:
    return ctx.request_context.lifespan_context
