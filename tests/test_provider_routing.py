"""Routing by the `model` argument and provider configuration, before any request leaves the server."""

from __future__ import annotations

import pytest
from helpers import error_text, ok
from mcp import Client

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def no_keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_COMPATIBLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


async def test_model_arguments_that_name_no_known_provider_or_model_are_explained(make_settings, no_keys):
    async with Client(build_server(make_settings())) as client:
        unknown = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "acme:img-1"}))
        empty = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:"}))
        chat = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:gpt-4o"}))
        classify = error_text(await client.call_tool("classify_image", {"labels": ["a", "b"], "image": "x",
                                                                        "model": "openai:gpt-4o"}))
        unset = error_text(await client.call_tool("ask_about_image", {"image": "x", "question": "?",
                                                                      "model": "openai-compatible:m"}))
    assert "'acme' is not a provider" in unknown and "openai, gemini, anthropic, openai-compatible" in unknown
    assert "names no model" in empty and "openai:gpt-image-1" in empty
    assert "not an image model" in chat and "openai:dall-e-3" in chat
    assert "local CLIP or SigLIP" in classify and "tiny-clip" in classify
    assert "PIXELMCP_OPENAI_COMPATIBLE_BASE_URL" in unset


async def test_list_models_shows_providers_and_what_they_need(make_settings, no_keys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcdefghijklmnop")
    settings = make_settings(endpoints={"vllm": {"base_url": "http://gpu:8000/v1"}})
    async with Client(build_server(settings)) as client:
        report = ok(await client.call_tool("list_models", {}))
    providers = {p["name"]: p for p in report["providers"]}
    assert providers["openai"]["ready"] and providers["openai"]["key_set"]
    assert not providers["gemini"]["ready"] and "GEMINI_API_KEY" in providers["gemini"]["fix"]
    assert not providers["openai-compatible"]["ready"]
    assert providers["vllm"]["ready"] and providers["vllm"]["base_url"] == "http://gpu:8000/v1"
    assert "sk-abcdefghijklmnop" not in str(report)


async def test_tools_say_they_reach_outside_only_when_a_provider_is_configured(make_settings, no_keys, monkeypatch):
    async with Client(build_server(make_settings())) as client:
        local = {t.name: t.annotations.open_world_hint for t in (await client.list_tools()).tools}
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaabcdefghijklmnop")
    async with Client(build_server(make_settings())) as client:
        remote = {t.name: t.annotations.open_world_hint for t in (await client.list_tools()).tools}
    assert not any(local.values())
    assert remote["generate_image"] and remote["ask_about_image"] and not remote["classify_image"]


def test_settings_accept_provider_models_and_refuse_unknown_rewriters(make_settings):
    settings = make_settings(generate_model="openai:gpt-image-1", vision_model="gemini:gemini-2.5-flash",
                             rewriter="openai", rewrite_model="gpt-4.1-nano")
    assert settings.generate_model == "openai:gpt-image-1"
    with pytest.raises(ValueError, match="rewriter='acme' is not one of"):
        make_settings(rewriter="acme")
    with pytest.raises(ValueError, match="generate_model='nope:x'"):
        make_settings(generate_model="nope:x")
    with pytest.raises(ValueError, match="sampling_fallback='sampling'"):
        make_settings(sampling_fallback="sampling")
    with pytest.raises(ValueError, match="reserved"):
        make_settings(endpoints={"openai": {"base_url": "http://x/v1"}})


async def test_a_rewriter_that_is_not_set_up_fails_the_rewrite_not_the_generation(make_settings, no_keys):
    async with Client(build_server(make_settings(rewriter="openai-compatible"))) as client:
        plain = ok(await client.call_tool("generate_image", {"prompt": "a cat", "steps": 2, "rewrite": False}))
        asked = ok(await client.call_tool("generate_image", {"prompt": "a cat", "steps": 2, "rewrite": True}))
        refused = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a cat"}))
    assert plain["revised_prompt"] is None and plain["rewrite_error"] is None
    assert asked["revised_prompt"] is None and "PIXELMCP_REWRITE_MODEL" in asked["rewrite_error"]
    assert "PIXELMCP_REWRITE_MODEL" in refused
