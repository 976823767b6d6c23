"""The anthropic provider (Claude), against a local server speaking the Messages API's wire format."""

from __future__ import annotations

import json

import pytest
from fake_providers import Reply, anthropic_error, fake_anthropic
from helpers import data_uri, error_text, ok, shapes
from mcp import Client

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

KEY = "sk-ant-test-0123456789abcdefSECRET"


@pytest.fixture
def api():
    with fake_anthropic() as server:
        yield server


@pytest.fixture
def anthropic_settings(make_settings, api, monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)

    def make(**overrides):
        values = dict(anthropic_base_url=f"http://127.0.0.1:{api.port}", provider_retry_base_s=0.01)
        return make_settings(**{**values, **overrides})

    return make


async def test_ask_and_compare_send_every_image_as_a_base64_block_before_the_question(anthropic_settings, api):
    async with Client(build_server(anthropic_settings())) as client:
        asked = ok(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "What is it?",
                                                              "model": "anthropic:claude-sonnet-4-5"}))
        compared = ok(await client.call_tool("compare_images", {
            "images": [data_uri(shapes()), data_uri(shapes(offset=10))], "model": "anthropic:claude-sonnet-4-5"}))
    # After each answer, the same model lists its claims in a text-only request.
    first, listing, second, _ = api.to("/v1/messages")
    assert listing.body["system"] and isinstance(listing.body["messages"][0]["content"], str)
    assert KEY in (first.headers.get("x-api-key") or first.headers["authorization"])
    assert "anthropic-version" in first.headers
    content = first.body["messages"][0]["content"]
    assert [part["type"] for part in content] == ["image", "text"]
    assert content[0]["source"]["type"] == "base64" and content[0]["source"]["media_type"] == "image/png"
    assert first.body["model"] == "claude-sonnet-4-5" and first.body["max_tokens"] == 512
    assert [part["type"] for part in second.body["messages"][0]["content"]] == ["image", "image", "text"]
    assert asked["answer"].startswith("I see 1 image(s)") and asked["provider"] == "anthropic"
    assert compared["answer"].startswith("I see 2 image(s)") and compared["pairs"][0]["ssim"] is not None
    assert KEY not in json.dumps(asked) + json.dumps(compared)


async def test_rewriting_with_claude_by_setting_and_by_argument(anthropic_settings, api):
    async with Client(build_server(anthropic_settings(rewriter="anthropic"))) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a fox", "seed": 1, "rewrite": True}))
        direct = ok(await client.call_tool("rewrite_prompt", {"prompt": "a hare",
                                                              "model": "anthropic:claude-sonnet-4-5"}))
    assert data["rewriter"] == "anthropic:claude-haiku-4-5" and data["revised_prompt"].startswith("A richly")
    assert direct["revised_prompt"].startswith("A richly detailed scene") and "hare" in direct["revised_prompt"]
    sent = api.to("/v1/messages")[0].body
    assert sent["system"] and sent["model"] == "claude-haiku-4-5"


async def test_overloaded_529_is_retried_and_a_refusal_is_a_clear_error(anthropic_settings, api):
    api.queue("/v1/messages", anthropic_error(529, "overloaded_error", "Overloaded"))
    async with Client(build_server(anthropic_settings())) as client:
        retried = ok(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "q",
                                                                "model": "anthropic:claude-sonnet-4-5"}))
        api.queue("/v1/messages", Reply(200, {
            "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "stop_reason": "refusal",
            "content": [{"type": "text", "text": "I can't help with that."}], "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 6}}))
        refused = error_text(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "q",
                                                                        "model": "anthropic:claude-sonnet-4-5"}))
        api.queue("/v1/messages", *[anthropic_error(529, "overloaded_error", "Overloaded")] * 5)
        overloaded = error_text(await client.call_tool("ask_about_image", {
            "image": data_uri(shapes()), "question": "q", "model": "anthropic:claude-sonnet-4-5"}))
    assert retried["answer"].startswith("I see 1")
    assert "refused" in refused and "I can't help with that." in refused
    assert "529" in overloaded and "overloaded" in overloaded.lower()


async def test_a_missing_key_and_image_making_are_refused_with_what_to_do(anthropic_settings, monkeypatch):
    async with Client(build_server(anthropic_settings())) as client:
        image = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "anthropic:claude-x"}))
        labels = error_text(await client.call_tool("classify_image", {
            "image": data_uri(shapes()), "labels": ["a", "b"], "model": "anthropic:claude-x"}))
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        keyless = error_text(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "q",
                                                                        "model": "anthropic:claude-x"}))
        providers = {p["name"]: p for p in ok(await client.call_tool("list_models", {}))["providers"]}
    assert "do not make them" in image and "gemini:gemini-2.5-flash-image" in image
    assert "local CLIP or SigLIP" in labels
    assert "ANTHROPIC_API_KEY" in keyless
    assert providers["anthropic"]["ready"] is False and "ANTHROPIC_API_KEY" in providers["anthropic"]["fix"]


async def test_the_sdks_own_base_url_variable_is_honoured(make_settings, api, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{api.port}")
    async with Client(build_server(make_settings(provider_retry_base_s=0.01))) as client:
        ok(await client.call_tool("ask_about_image", {"image": data_uri(shapes()), "question": "q",
                                                      "model": "anthropic:claude-haiku-4-5", "check_claims": False}))
    assert len(api.to("/v1/messages")) == 1
