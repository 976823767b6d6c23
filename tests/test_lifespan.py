"""The lifespan owns the store, the pool and the router: sessions share them; the last one out releases them."""

from __future__ import annotations

import anyio
import pytest
from helpers import ok
from mcp import Client

from pixelmcp.registry import provider_rows
from pixelmcp.router import Router

pytestmark = pytest.mark.anyio


async def test_sessions_share_loaded_models_and_the_last_one_out_releases_them(server):
    async with Client(server) as first:
        ok(await first.call_tool("generate_image", {"prompt": "a kite", "seed": 1, "rewrite": False}))
        async with Client(server) as second:  # a second session sees what the first loaded
            report = ok(await second.call_tool("list_models", {}))
            assert sorted(m["alias"] for m in report["loaded"]) == ["tiny-clip", "tiny-sd15"]
        report = ok(await first.call_tool("list_models", {}))  # the second leaving released nothing
        assert sorted(m["alias"] for m in report["loaded"]) == ["tiny-clip", "tiny-sd15"]
    async with Client(server) as again:  # everyone left: a new start, with nothing loaded
        report = ok(await again.call_tool("list_models", {}))
    assert report["loaded"] == [] and report["stats"]["loads"] == 0


async def test_closing_the_router_closes_provider_clients(settings):
    from pixelmcp.engine.pool import ModelPool

    router = Router(settings, ModelPool(settings))
    openai = router.provider(provider_rows(settings)["openai"])
    client = openai._client("sk-test-key", None)
    assert not client.is_closed()
    await router.aclose()
    assert client.is_closed()
    assert router.provider(provider_rows(settings)["openai"]) is not openai  # a later call makes a new one
    await router.aclose()
    await anyio.lowlevel.checkpoint()
