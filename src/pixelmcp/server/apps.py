"""The MCP Apps interface: one `ui://` app (viewer, gallery, mask painter) that the image tools point at.

Hosts that render MCP Apps show it next to the conversation in a sandboxed frame; it talks to this server only
through the host (tools/call, resources/read), with the published app bridge (`@modelcontextprotocol/ext-apps`,
vendored by scripts/vendor_ext_apps.py) inlined, so it loads nothing from the network. Hosts without Apps see the
same complete tool results as before: the app only adds `_meta.ui.resourceUri` to the tools' definitions.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from mcp.server.apps import Apps, ResourceCsp

from pixelmcp.tools.gallery import STUDIO_URI, UI_TOOLS

__all__ = ["UI_TOOLS", "studio_app", "studio_html", "ui_meta"]
BRIDGE_SLOT = "/*EXT_APPS*/"


@cache
def studio_html() -> str:
    """The app's single HTML document, with the app bridge inlined."""
    folder = resources.files("pixelmcp.server") / "ui"
    page = (folder / "studio.html").read_text(encoding="utf-8")
    bridge = (folder / "ext-apps.js").read_text(encoding="utf-8")
    if page.count(BRIDGE_SLOT) != 1:
        raise RuntimeError(f"studio.html must hold {BRIDGE_SLOT} exactly once")
    return page.replace(BRIDGE_SLOT, bridge)


def studio_app() -> Apps:
    """The Apps extension with the app's resource. No CSP domain is declared: the app needs none, so hosts keep
    their strictest policy (no network; images come as data: uris from resources/read)."""
    apps = Apps()
    apps.add_html_resource(STUDIO_URI, studio_html(), name="pixelmcp studio", title="pixelmcp images",
                           description="View results at full size, browse stored images, paint masks for edits.",
                           csp=ResourceCsp(), prefers_border=False)
    return apps


def ui_meta() -> dict:
    """The `_meta` an app-bound tool carries (the key the Apps extension defines)."""
    return {"ui": {"resourceUri": STUDIO_URI}}
