"""The gemini provider, against a local server speaking the Gemini API's wire format."""

from __future__ import annotations

import base64
import io
import json

import anyio
import pytest
from fake_providers import Reply, fake_gemini, gemini_error, png_b64
from helpers import error_text, ok, pixels
from mcp import Client
from PIL import Image

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

KEY = "AIzaTestKey0123456789abcdef"


@pytest.fixture
def api():
    with fake_gemini() as server:
        yield server


@pytest.fixture
def gemini_settings(make_settings, api, monkeypatch):
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)

    def make(**overrides):
        values = dict(gemini_base_url=f"http://127.0.0.1:{api.port}/", provider_retry_base_s=0.01)
        return make_settings(**{**values, **overrides})

    return make


def _png(colour=(255, 0, 0), size=(48, 32)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_gemini_image_generation_asks_for_the_aspect_ratio_and_stores_the_image(gemini_settings, api):
    settings = gemini_settings()
    async with Client(build_server(settings)) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a teapot", "n": 2, "width": 1344, "height": 768,
                                                           "model": "gemini:gemini-2.5-flash-image"}))
        other = ok(await client.call_tool("generate_image", {"prompt": "a kettle",
                                                            "model": "gemini:gemini-2.5-flash-image"}))
    assert data["provider"] == "gemini" and len(data["images"]) == 2
    calls = api.to(":generateContent")
    assert "/models/gemini-2.5-flash-image:generateContent" in calls[0].path
    assert calls[0].headers["x-goog-api-key"] == KEY
    assert calls[0].body["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"
    assert calls[0].body["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    assert pixels(other["path"]) != pixels(data["path"])  # another prompt, another image
    assert KEY not in json.dumps(data)
    assert all(KEY not in p.read_text() for p in settings.output_dir.glob("*.json"))


async def test_a_size_gemini_does_not_make_lists_the_sizes_it_does(gemini_settings, api):
    async with Client(build_server(gemini_settings())) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "x", "width": 1000, "height": 1000,
                                                                    "model": "gemini:gemini-2.5-flash-image"}))
        chat_model = error_text(await client.call_tool("generate_image", {"prompt": "x",
                                                                          "model": "gemini:gemini-2.5-flash"}))
    assert "1000x1000" in text and "1344x768" in text
    assert "gemini-2.5-flash-image" in chat_model
    assert api.requests == []


async def test_style_transfer_sends_the_reference_and_structure_images(gemini_settings, api):
    async with Client(build_server(gemini_settings())) as client:
        data = ok(await client.call_tool("style_transfer", {
            "prompt": "a harbour at dusk", "style_image": _png((0, 0, 255)), "image": _png((0, 255, 0), (64, 36)),
            "model": "gemini:gemini-2.5-flash-image", "mode": "subject"}))
        scale = error_text(await client.call_tool("style_transfer", {
            "prompt": "x", "style_image": _png(), "scale": 0.5, "model": "gemini:gemini-2.5-flash-image"}))
    body = api.to(":generateContent")[0].body
    parts = body["contents"][0]["parts"]
    assert sum(1 for part in parts if "inlineData" in part) == 2
    assert "subject of the reference image" in parts[0]["text"] and "layout" in parts[0]["text"]
    assert body["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"  # follows the structure image
    assert data["scale"] is None and data["control_map"] is None and data["structure_image"] is not None
    assert "scale=0.5" in scale


async def test_controlnet_generate_on_a_provider_says_to_use_a_local_model(gemini_settings):
    async with Client(build_server(gemini_settings())) as client:
        text = error_text(await client.call_tool("controlnet_generate", {
            "prompt": "x", "image": _png(), "model": "gemini:gemini-2.5-flash-image"}))
    assert "local diffusion models only" in text and "tiny-sd15" in text


async def test_questions_and_comparisons_carry_every_image(gemini_settings, api):
    async with Client(build_server(gemini_settings(vision_model="gemini:gemini-2.5-flash"))) as client:
        answer = ok(await client.call_tool("ask_about_image", {"image": _png(), "question": "what colour?"}))
        compared = ok(await client.call_tool("compare_images", {"images": [_png(), _png((0, 0, 255)), _png()]}))
    assert answer["answer"] == "I see 1 image(s)." and answer["tokens_generated"] == 6
    assert answer["model"] == "gemini:gemini-2.5-flash"
    assert compared["answer"] == "I see 3 image(s)." and len(compared["pairs"]) == 3
    config = api.to(":generateContent")[0].body["generationConfig"]
    assert config["maxOutputTokens"] == 512 and config["temperature"] == 0


async def test_a_blocked_prompt_is_a_refusal_with_the_reason(gemini_settings, api):
    api.queue(":generateContent", Reply(200, {"promptFeedback": {"blockReason": "SAFETY",
                                                                 "blockReasonMessage": "unsafe request"}}))
    async with Client(build_server(gemini_settings())) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "x",
                                                                    "model": "gemini:gemini-2.5-flash-image"}))
    assert "refused" in text and "SAFETY" in text and "unsafe request" in text


async def test_an_image_safety_stop_quotes_what_the_model_said(gemini_settings, api):
    stopped = {"candidates": [{"content": {"role": "model", "parts": [{"text": "I can't draw that person."}]},
                               "finishReason": "IMAGE_SAFETY"}]}
    api.queue(":generateContent", Reply(200, stopped))
    async with Client(build_server(gemini_settings())) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "x",
                                                                    "model": "gemini:gemini-2.5-flash-image"}))
    assert "IMAGE_SAFETY" in text and "I can't draw that person." in text


async def test_a_text_only_reply_to_an_image_request_is_explained(gemini_settings, api):
    chatty = {"candidates": [{"content": {"role": "model", "parts": [{"text": "What style would you like?"}]},
                              "finishReason": "STOP"}]}
    api.queue(":generateContent", Reply(200, chatty))
    async with Client(build_server(gemini_settings())) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "x",
                                                                    "model": "gemini:gemini-2.5-flash-image"}))
    assert "returned no image" in text and "What style would you like?" in text


async def test_resource_exhausted_is_retried_then_explained(gemini_settings, api):
    api.queue(":generateContent", *[gemini_error(429, "Resource has been exhausted", "RESOURCE_EXHAUSTED")] * 2)
    async with Client(build_server(gemini_settings(provider_max_retries=1))) as client:
        text = error_text(await client.call_tool("ask_about_image", {"image": _png(), "question": "?",
                                                                     "model": "gemini:gemini-2.5-flash"}))
        assert ok(await client.call_tool("ask_about_image", {"image": _png(), "question": "?",
                                                             "model": "gemini:gemini-2.5-flash"}))
    assert "HTTP 429" in text and "after 2 attempts" in text and "Resource has been exhausted" in text


async def test_a_slow_answer_times_out_and_the_next_call_works(gemini_settings, api):
    api.queue(":generateContent", Reply(delay=3.0, body={}))
    async with Client(build_server(gemini_settings(provider_timeout_s=0.5, provider_max_retries=0))) as client:
        with anyio.fail_after(10):
            text = error_text(await client.call_tool("generate_image", {"prompt": "x",
                                                                        "model": "gemini:gemini-2.5-flash-image"}))
            assert ok(await client.call_tool("generate_image", {"prompt": "x",
                                                                "model": "gemini:gemini-2.5-flash-image"}))
    assert "no answer within 0.5 s" in text


async def test_an_invalid_key_is_named_and_not_echoed(gemini_settings, api):
    api.queue(":generateContent", gemini_error(400, f"API key not valid ({KEY}). Please pass a valid API key.",
                                               "INVALID_ARGUMENT"))
    async with Client(build_server(gemini_settings())) as client:
        text = error_text(await client.call_tool("ask_about_image", {"image": _png(), "question": "?",
                                                                     "model": "gemini:gemini-2.5-flash"}))
    assert "GEMINI_API_KEY" in text and KEY not in text and len(api.requests) == 1


async def test_google_api_key_works_too_and_a_missing_key_names_both(gemini_settings, api, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    async with Client(build_server(gemini_settings())) as client:
        missing = error_text(await client.call_tool("ask_about_image", {"image": _png(), "question": "?",
                                                                        "model": "gemini:gemini-2.5-flash"}))
        monkeypatch.setenv("GOOGLE_API_KEY", "AIzaOtherKey0123456789")
        ok(await client.call_tool("ask_about_image", {"image": _png(), "question": "?",
                                                      "model": "gemini:gemini-2.5-flash"}))
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in missing
    assert api.requests[-1].headers["x-goog-api-key"] == "AIzaOtherKey0123456789"


async def test_the_gemini_rewriter_feeds_generation(gemini_settings, api):
    async with Client(build_server(gemini_settings(rewriter="gemini"))) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "steps": 2}))
    assert data["rewriter"] == "gemini:gemini-2.5-flash" and "lighthouse" in data["revised_prompt"]
    body = api.to("/models/gemini-2.5-flash:generateContent")[0].body
    assert "systemInstruction" in body and body["generationConfig"]["temperature"] == 0


def test_the_fake_images_are_real_pngs():
    image = Image.open(io.BytesIO(base64.b64decode(png_b64("x"))))
    assert image.format == "PNG"


async def test_edit_and_extend_send_the_image_and_the_mask_as_parts_and_keep_the_original(gemini_settings, api):
    import numpy as np
    from helpers import shapes

    source = shapes((64, 36))
    buffer = io.BytesIO()
    source.save(buffer, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    async with Client(build_server(gemini_settings())) as client:
        edited = ok(await client.call_tool("edit_image", {"image": image, "prompt": "make it snowy",
                                                          "model": "gemini:gemini-2.5-flash-image"}))
        extended = ok(await client.call_tool("extend_image", {"image": image, "prompt": "a wide street", "right": 30,
                                                              "model": "gemini:gemini-2.5-flash-image"}))
    plain, outpaint = (request.body for request in api.to(":generateContent"))
    parts = plain["contents"][0]["parts"]
    assert sum(1 for part in parts if "inlineData" in part) == 1 and "make it snowy" in parts[0]["text"]
    assert plain["generationConfig"]["imageConfig"]["aspectRatio"] == "16:9"  # the image's own shape
    parts = outpaint["contents"][0]["parts"]
    assert sum(1 for part in parts if "inlineData" in part) == 2 and "white in the second image" in parts[0]["text"]
    assert (edited["width"], edited["height"]) == (64, 36)
    with Image.open(extended["path"]) as result:
        out = np.asarray(result.convert("RGB"))
    assert out.shape == (36, 94, 3) and np.array_equal(out[:, :64], np.asarray(source))
