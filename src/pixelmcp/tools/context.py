"""The context every tool declares (`ctx: AppContext`): MCP's request context, whose lifespan context is the
server's AppState."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from pixelmcp.service.state import AppState

AppContext = Context[AppState, Any]


def app_state(ctx: AppContext) -> AppState:
    return ctx.request_context.lifespan_context
