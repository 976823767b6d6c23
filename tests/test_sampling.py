"""Prompt rewriting by the client's own LLM (MCP sampling), on both protocol generations, and the
fallback when the client cannot sample."""

from __future__ import annotations

import pytest
from helpers import error_text, ok
from mcp import Client
from mcp_types import CreateMessageResult, TextContent

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

MODES = ["legacy", "auto"]  # 2025-11-25 (request mid-call) and 2026-07-28 (input_required rounds)


class Sampler:
    """A client-side LLM: records what it was asked and answers with a fixed rewrite."""

    def __init__(self, reply: str = "A lighthouse on a basalt cliff at dusk, long exposure, teal and amber light"):
        self.reply = reply
        self.requests = []

    async def __call__(self, context, params):
        self.requests.append(params)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=self.reply),
                                   model="client-llm-1", stop_reason="endTurn")


@pytest.mark.parametrize("mode", MODES)
async def test_rewrite_prompt_samples_the_clients_model(make_settings, mode):
    sampler = Sampler()
    server = build_server(make_settings(rewriter="sampling", rewrite_model="claude"))
    async with Client(server, sampling_callback=sampler, mode=mode) as client:
        data = ok(await client.call_tool("rewrite_prompt", {"prompt": "a lighthouse", "style": "photo"}))
    assert data["revised_prompt"] == sampler.reply and data["rewriter"] == "sampling:client-llm-1"
    assert data["note"] is None
    (request,) = sampler.requests
    assert "Request: a lighthouse\nStyle: photo" in request.messages[0].content.text
    assert request.system_prompt and request.temperature == 0.0 and request.include_context == "none"
    assert request.model_preferences.hints[0].name == "claude"


@pytest.mark.parametrize("mode", MODES)
async def test_generate_image_uses_the_sampled_rewrite(make_settings, mode):
    sampler = Sampler()
    async with Client(build_server(make_settings(rewriter="sampling")), sampling_callback=sampler, mode=mode) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "steps": 2, "seed": 3}))
        plain = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "steps": 2, "seed": 3,
                                                            "rewrite": False}))
    assert data["revised_prompt"] == sampler.reply and data["rewriter"] == "sampling:client-llm-1"
    assert len(sampler.requests) == 1  # rewrite=False asked nothing
    assert plain["revised_prompt"] is None


async def test_sampling_is_not_part_of_any_tool_schema(make_settings):
    async with Client(build_server(make_settings(rewriter="sampling"))) as client:
        tools = (await client.list_tools()).tools
    assert all("sampled" not in tool.input_schema.get("properties", {}) for tool in tools)


async def test_a_client_without_sampling_gets_the_fallback_and_is_told(make_settings):
    async with Client(build_server(make_settings(rewriter="sampling"))) as client:
        rewritten = ok(await client.call_tool("rewrite_prompt", {"prompt": "a lighthouse"}))
        generated = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "steps": 2}))
    assert rewritten["rewriter"] == "local:tiny-llm" and "does not offer MCP sampling" in rewritten["note"]
    assert generated["rewriter"] == "local:tiny-llm" and "does not offer MCP sampling" in generated["rewrite_note"]


async def test_without_sampling_and_no_fallback_the_prompt_is_used_as_given(make_settings):
    settings = make_settings(rewriter="sampling", sampling_fallback="none")
    async with Client(build_server(settings)) as client:
        generated = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "steps": 2,
                                                                "rewrite": True}))
        refused = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a lighthouse"}))
    assert generated["revised_prompt"] is None and "PIXELMCP_SAMPLING_FALLBACK=none" in generated["rewrite_error"]
    assert "PIXELMCP_SAMPLING_FALLBACK=none" in refused


async def test_sampling_can_be_picked_per_call(make_settings):
    sampler = Sampler()
    async with Client(build_server(make_settings()), sampling_callback=sampler) as client:
        data = ok(await client.call_tool("rewrite_prompt", {"prompt": "a lighthouse", "model": "sampling:gpt-4o"}))
    assert data["rewriter"] == "sampling:client-llm-1"
    assert sampler.requests[0].model_preferences.hints[0].name == "gpt-4o"


async def test_an_empty_sampled_answer_falls_back_to_the_prompt_as_given(make_settings):
    sampler = Sampler(reply="   ")
    async with Client(build_server(make_settings(rewriter="sampling")), sampling_callback=sampler) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "steps": 2}))
    assert data["revised_prompt"] is None and "client-llm-1" in data["rewrite_error"]
