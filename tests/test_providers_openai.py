"""The openai and openai-compatible providers, against a local server speaking OpenAI's wire format."""

from __future__ import annotations

import json

import anyio
import pytest
from conftest import OPENAI_TEST_KEY, stored_files
from fake_providers import Reply, openai_error
from helpers import error_text, ok, preview_of
from mcp import Client

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

KEY = OPENAI_TEST_KEY  # the fixtures api and openai_settings (conftest.py) serve the fake OpenAI API with it


def _everything_written(settings) -> str:
    return "\n".join(p.read_text(errors="replace") for p in settings.output_dir.glob("*.json"))


async def test_gpt_image_generation_stores_the_images_like_local_ones(openai_settings, api):
    settings = openai_settings()
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a red fox in snow", "model": "openai:gpt-image-1",
                                                           "n": 2, "width": 1536, "height": 1024})
    data = ok(result)
    assert data["model"] == "openai:gpt-image-1" and data["provider"] == "openai"
    assert data["seed"] is None and data["steps"] is None and data["guidance_scale"] is None
    assert len(data["images"]) == 2 and data["images"][0]["uri"].startswith("pixelmcp://images/")
    assert preview_of(result).size[0] > 0
    sent = api.to("/images/generations")[0]
    assert sent.body["model"] == "gpt-image-1" and sent.body["n"] == 2 and sent.body["size"] == "1536x1024"
    assert "response_format" not in sent.body  # gpt-image models refuse it
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    # The prompt-dependent fake colours: two images of one call differ, and nothing echoes the key.
    assert data["images"][0]["id"] != data["images"][1]["id"]
    assert KEY not in json.dumps(data) and KEY not in _everything_written(settings)


async def test_dall_e_3_returns_its_own_revised_prompt_and_auto_rewrites_nothing(openai_settings, api):
    async with Client(build_server(openai_settings(rewriter="openai"))) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a cat", "model": "openai:dall-e-3"}))
        both = ok(await client.call_tool("generate_image", {"prompt": "a dog", "model": "openai:dall-e-3",
                                                           "rewrite": True}))
    assert data["revised_prompt"] == "A detailed rendering of a cat"
    assert data["rewriter"] == "openai:dall-e-3"
    assert api.to("/images/generations")[0].body["response_format"] == "b64_json"
    assert len(api.to("/chat/completions")) == 1  # only for rewrite=true
    assert both["rewriter"] == "openai:gpt-4.1-mini + openai:dall-e-3"
    assert api.to("/images/generations")[1].body["prompt"].startswith("A richly detailed scene: a dog")


async def test_style_transfer_on_gpt_image_edits_from_the_reference_images(openai_settings, api):
    async with Client(build_server(openai_settings())) as client:
        data = ok(await client.call_tool("style_transfer", {
            "prompt": "a harbour at dusk", "style_image": _tiny_png((0, 0, 255)), "image": _tiny_png((0, 255, 0)),
            "model": "openai:gpt-image-1", "rewrite": False}))
        dall_e = error_text(await client.call_tool("style_transfer", {"prompt": "x", "style_image": _tiny_png(),
                                                                      "model": "openai:dall-e-3"}))
    (sent,) = api.to("/images/edits")
    assert sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.body.count(b'filename="reference.png"') == 1 and sent.body.count(b'filename="structure.png"') == 1
    prompt = sent.body.split(b'name="prompt"\r\n\r\n')[1].split(b"\r\n--")[0].decode()
    assert "visual style of the reference image" in prompt and "a harbour at dusk" in prompt, prompt
    assert data["provider"] == "openai" and data["scale"] is None and data["structure_image"] is not None
    assert "no IP-Adapter" in dall_e and "openai:gpt-image-1" in dall_e


async def test_arguments_a_provider_cannot_use_are_refused_not_dropped(openai_settings, api):
    async with Client(build_server(openai_settings())) as client:
        seed = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:dall-e-3",
                                                                    "seed": 5}))
        steps = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:gpt-image-1",
                                                                     "steps": 20}))
        negative = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:gpt-image-1",
                                                                        "negative_prompt": "text"}))
        size = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:dall-e-3",
                                                                    "width": 512, "height": 512}))
        n = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:dall-e-3", "n": 2}))
    assert "seed=5" in seed and "does not take seed" in seed
    assert "steps=20" in steps
    assert "negative_prompt" in negative
    assert "512x512" in size and "1792x1024" in size
    assert "n=2" in n and "at most 1" in n
    assert api.requests == []  # every refusal came before any request


async def test_a_missing_key_names_the_variable(openai_settings, api, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    async with Client(build_server(openai_settings())) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:gpt-image-1"}))
    assert "OPENAI_API_KEY" in text
    assert api.requests == []


async def test_429_and_5xx_are_retried_with_backoff_then_succeed(openai_settings, api):
    api.queue("/images/generations", openai_error(429, "Rate limit reached", headers={"retry-after-ms": "20"}),
              openai_error(503, "The server is overloaded"))
    async with Client(build_server(openai_settings())) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a boat", "model": "openai:gpt-image-1"}))
    assert len(data["images"]) == 1
    assert len(api.to("/images/generations")) == 3


async def test_the_client_hears_about_the_wait_and_each_retry(openai_settings, api):
    api.queue("/images/generations", openai_error(503, "Slow down", headers={"retry-after": "0"}))
    messages = []

    async def on_progress(progress, total, message):
        messages.append(message)

    async with Client(build_server(openai_settings())) as client:
        ok(await client.call_tool("generate_image", {"prompt": "a boat", "model": "openai:gpt-image-1"},
                                  progress_callback=on_progress))
    assert "waiting for openai (gpt-image-1)" in messages
    assert any("HTTP 503" in m and "retry 1 of 2" in m for m in messages)


async def test_a_retry_after_beyond_a_minute_is_not_waited_for(openai_settings, api):
    api.queue("/chat/completions", openai_error(429, "Too many requests", headers={"retry-after": "3600"}))
    async with Client(build_server(openai_settings())) as client:
        with anyio.fail_after(10):
            text = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a cat",
                                                                        "model": "openai:gpt-4.1-mini"}))
    assert "wait 3600 s" in text and len(api.requests) == 1


async def test_a_used_up_quota_is_not_retried(openai_settings, api):
    api.queue("/chat/completions", openai_error(429, "You exceeded your current quota", code="insufficient_quota"))
    async with Client(build_server(openai_settings())) as client:
        text = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a cat",
                                                                    "model": "openai:gpt-4.1-mini"}))
    assert "quota used up" in text and "Add credit" in text and len(api.requests) == 1


async def test_retries_are_bounded_and_the_last_failure_is_explained(openai_settings, api):
    api.queue("/images/generations", *[openai_error(500, "Internal error") for _ in range(3)])
    settings = openai_settings(provider_max_retries=2)
    async with Client(build_server(settings)) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "a boat", "model": "openai:gpt-image-1"}))
        assert stored_files(settings) == []  # nothing half-made was stored
        # The next call works: nothing is left broken.
        assert ok(await client.call_tool("generate_image", {"prompt": "a boat", "model": "openai:gpt-image-1"}))
    assert len(stored_files(settings)) == 2  # the image and its sidecar
    assert "after 3 attempts" in text and "HTTP 500" in text and "Internal error" in text
    assert len(api.to("/images/generations")) == 4


async def test_a_slow_provider_times_out_with_a_clear_error(openai_settings, api):
    api.queue("/chat/completions", Reply(delay=3.0, body={}))
    settings = openai_settings(provider_timeout_s=0.5, provider_max_retries=0)
    async with Client(build_server(settings)) as client:
        with anyio.fail_after(10):
            text = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a cat",
                                                                        "model": "openai:gpt-4.1-mini"}))
    assert "no answer within 0.5 s" in text and "PIXELMCP_PROVIDER_TIMEOUT_S" in text


async def test_a_content_policy_refusal_quotes_the_provider(openai_settings, api):
    api.queue("/images/generations", openai_error(400, "Your request was rejected by the safety system.",
                                                  code="moderation_blocked"))
    async with Client(build_server(openai_settings())) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "x", "model": "openai:gpt-image-1"}))
    assert "refused" in text and "rejected by the safety system" in text
    assert len(api.requests) == 1  # a refusal is not retried


async def test_a_rejected_key_is_reported_without_echoing_it(openai_settings, api):
    api.queue("/chat/completions", openai_error(401, f"Incorrect API key provided: {KEY[:8]}****{KEY[-4:]}. "
                                                     f"Full: {KEY}", code="invalid_api_key"))
    async with Client(build_server(openai_settings())) as client:
        text = error_text(await client.call_tool("ask_about_image", {"image": _tiny_png(), "question": "what?",
                                                                     "model": "openai:gpt-4o"}))
    assert "HTTP 401" in text and "API key" in text
    assert KEY not in text and KEY[-4:] + "." not in text.replace("[redacted", "")


async def test_vision_questions_send_every_image_as_a_data_uri(openai_settings, api):
    async with Client(build_server(openai_settings())) as client:
        answer = ok(await client.call_tool("ask_about_image", {"image": _tiny_png(), "question": "what colour?",
                                                               "model": "openai:gpt-4o"}))
        compared = ok(await client.call_tool("compare_images", {"images": [_tiny_png(), _tiny_png((0, 0, 255))],
                                                                "model": "openai:gpt-4o"}))
    assert answer["answer"].startswith("I see 1 image(s)") and answer["model"] == "openai:gpt-4o"
    assert answer["provider"] == compared["provider"] == "openai"
    assert answer["tokens_generated"] == 7
    assert compared["answer"].startswith("I see 2 image(s)") and compared["pairs"][0]["pixel_metrics"]
    # Each answer is followed by a text-only request, in which the same model lists the answer's claims.
    asked = [r.body for r in api.to("/chat/completions")]
    assert [isinstance(body["messages"][-1]["content"], list) for body in asked] == [True, False, True, False]
    assert answer["claim_check"]["claims"] and compared["claim_check"]["claims"]
    sent = asked[2]
    urls = [part["image_url"]["url"] for part in sent["messages"][0]["content"] if part["type"] == "image_url"]
    assert len(urls) == 2 and all(url.startswith("data:image/png;base64,") for url in urls)
    assert sent["model"] == "gpt-4o" and sent["max_completion_tokens"] == 512


async def test_a_chat_refusal_is_a_tool_error(openai_settings, api):
    refusal = {"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": None,
                                                          "refusal": "I can't help with that."}}]}
    api.queue("/chat/completions", Reply(200, refusal))
    async with Client(build_server(openai_settings())) as client:
        text = error_text(await client.call_tool("ask_about_image", {"image": _tiny_png(), "question": "who?",
                                                                     "model": "openai:gpt-4o"}))
    assert "refused" in text and "I can't help with that." in text


async def test_the_openai_rewriter_is_used_when_configured(openai_settings, api):
    async with Client(build_server(openai_settings(rewriter="openai"))) as client:
        rewritten = ok(await client.call_tool("rewrite_prompt", {"prompt": "a lighthouse"}))
        again = ok(await client.call_tool("rewrite_prompt", {"prompt": "a lighthouse"}))
        generated = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "steps": 2}))
    assert rewritten["rewriter"] == "openai:gpt-4.1-mini" and "lighthouse" in rewritten["revised_prompt"]
    assert again["cached"] is True
    assert generated["provider"] == "local" and generated["rewriter"] == "openai:gpt-4.1-mini"
    assert generated["revised_prompt"] == rewritten["revised_prompt"]
    sent = api.to("/chat/completions")[0].body
    assert sent["temperature"] == 0 and sent["messages"][0]["role"] == "system"
    assert len(api.to("/chat/completions")) == 1  # the rest came from the cache


async def test_a_compatible_endpoint_needs_no_key_and_uses_max_tokens(make_settings, api, monkeypatch):
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    settings = make_settings(openai_compatible_base_url=f"http://127.0.0.1:{api.port}/v1")
    async with Client(build_server(settings)) as client:
        data = ok(await client.call_tool("ask_about_image", {"image": _tiny_png(), "question": "what?",
                                                             "model": "openai-compatible:qwen2.5-vl-7b"}))
        image = error_text(await client.call_tool("generate_image", {"prompt": "x", "seed": 1,
                                                                     "model": "openai-compatible:some-image-model"}))
    assert data["model"] == "openai-compatible:qwen2.5-vl-7b"
    sent = api.to("/chat/completions")[0]
    assert sent.body["model"] == "qwen2.5-vl-7b" and sent.body["max_tokens"] == 512
    assert "max_completion_tokens" not in sent.body
    # Its image API is plain OpenAI's unless PIXELMCP_OPENAI_COMPATIBLE_ENGINE names an engine that takes seeds.
    assert "Invalid seed=1" in image and "does not take seed" in image


async def test_named_endpoints_send_their_own_key(make_settings, api, monkeypatch):
    monkeypatch.setenv("VLLM_KEY", "vllm-secret")
    settings = make_settings(endpoints={"vllm": {"base_url": f"http://127.0.0.1:{api.port}/v1",
                                                 "api_key_env": "VLLM_KEY"}})
    async with Client(build_server(settings)) as client:
        ok(await client.call_tool("ask_about_image", {"image": _tiny_png(), "question": "what?",
                                                      "model": "vllm:served-model"}))
    assert api.requests[0].headers["authorization"] == "Bearer vllm-secret"


async def test_an_unreachable_endpoint_is_a_clear_error(make_settings):
    settings = make_settings(openai_compatible_base_url="http://127.0.0.1:9/v1", provider_max_retries=1,
                             provider_retry_base_s=0.01)
    async with Client(build_server(settings)) as client:
        text = error_text(await client.call_tool("ask_about_image", {"image": _tiny_png(), "question": "what?",
                                                                     "model": "openai-compatible:m"}))
    assert "cannot connect" in text and "127.0.0.1:9" in text and "after 2 attempts" in text


def _tiny_png(colour=(255, 0, 0)) -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _multipart_file(body: bytes, filename: str) -> bytes:
    """The bytes of one uploaded file in a multipart body."""
    part = body.split(f'filename="{filename}"'.encode())[1]
    return part.split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]


async def test_edit_image_on_gpt_image_sends_the_image_and_an_alpha_mask_and_keeps_the_rest(openai_settings, api):
    import io

    import numpy as np
    from helpers import data_uri, shapes
    from PIL import Image

    source = shapes((64, 48))
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (0, 0, 32, 48))
    async with Client(build_server(openai_settings())) as client:
        data = ok(await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "a red wall",
                                                        "mask": data_uri(mask), "model": "openai:gpt-image-1"}))
        whole = ok(await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "as a watercolour",
                                                         "model": "openai:gpt-image-1"}))
        strength = error_text(await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "x",
                                                                    "strength": 0.5, "model": "openai:gpt-image-1"}))
        dall_e = error_text(await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "x",
                                                                  "model": "openai:dall-e-3"}))
    first, second = api.to("/images/edits")
    sent_mask = Image.open(io.BytesIO(_multipart_file(first.body, "mask.png")))
    sent_image = Image.open(io.BytesIO(_multipart_file(first.body, "image.png")))
    assert sent_mask.mode == "RGBA" and sent_mask.size == sent_image.size == (1536, 1024)  # nearest aspect ratio
    alpha = np.asarray(sent_mask)[..., 3]
    assert alpha[:, :700].max() == 0 and alpha[:, 800:].min() == 255  # OpenAI's convention: transparent = edit
    assert b'name="prompt"' in first.body and b"a red wall" in first.body
    assert b'filename="mask.png"' not in second.body
    with Image.open(data["path"]) as edited:
        out = np.asarray(edited.convert("RGB"))
    assert out.shape == (48, 64, 3) and np.array_equal(out[:, 32:], np.asarray(source)[:, 32:])
    assert (data["provider"], data["strength"], data["mode"]) == ("openai", None, "inpaint")
    assert whole["mode"] == "image-to-image" and (whole["width"], whole["height"]) == (64, 48)
    assert "strength=0.5" in strength and "decides itself" in strength
    assert "does not edit images" in dall_e
