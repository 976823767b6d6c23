"""Images on OpenAI-compatible engines (SGLang Diffusion, vLLM-Omni), and replicas of one endpoint, against local
fakes of their images API."""

from __future__ import annotations

import base64
import io

import pytest
from fake_providers import FakeEngine, Reply
from helpers import error_text, ok, pixels, preview_of
from mcp import Client
from PIL import Image

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

FLUX = "black-forest-labs/FLUX.1-dev"


@pytest.fixture
def engine():
    with FakeEngine() as server:
        yield server


@pytest.fixture
def second():
    with FakeEngine() as server:
        yield server


def url(fake) -> str:
    return f"http://127.0.0.1:{fake.port}/v1"


def endpoint(*fakes, **extra) -> dict:
    urls = [fake if isinstance(fake, str) else url(fake) for fake in fakes]
    where = {"base_url": urls[0]} if len(urls) == 1 else {"base_urls": urls}
    return {"serves": ["images", "edits"], "engine": "sglang", "image_models": [FLUX], **where, **extra}


@pytest.fixture
def settings_with(make_settings):
    def make(endpoints: dict, **extra):
        return make_settings(endpoints=endpoints, provider_retry_base_s=0.01, **extra)

    return make


def png(colour=(200, 40, 40), size=(64, 64)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_an_engine_makes_each_image_from_its_own_seed_with_the_fields_its_api_takes(settings_with, engine):
    settings = settings_with({"gpu": endpoint(engine)})
    model = f"gpu:{FLUX}"
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_image", {
            "prompt": "a lighthouse", "model": model, "n": 2, "seed": 7, "steps": 12, "guidance_scale": 3.5,
            "negative_prompt": "blur", "width": 512, "height": 768, "rewrite": False})
        again = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": model, "seed": 8,
                                                             "width": 512, "height": 768, "rewrite": False}))
        plain = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "model": model,
                                                             "rewrite": False}))
    data = ok(result)
    assert data["provider"] == "gpu" and data["model"] == model and preview_of(result).size[0] > 0
    assert (data["seed"], data["steps"], data["guidance_scale"]) == (7, 12, 3.5)
    assert len(data["images"]) == 2 and data["images"][0]["uri"].startswith("pixelmcp://images/")
    sent = sorted((r.body for r in engine.to("/images/generations")[:2]), key=lambda body: body["seed"])
    assert [(body["seed"], body["n"]) for body in sent] == [(7, 1), (8, 1)]  # one call per image, seed + i
    assert sent[0]["num_inference_steps"] == 12 and sent[0]["guidance_scale"] == 3.5
    assert sent[0]["negative_prompt"] == "blur" and sent[0]["size"] == "512x768" and sent[0]["model"] == FLUX
    assert sent[0]["response_format"] == "b64_json"
    # Image 1 of the call is the image seed 8 makes alone: each image is reproducible by itself.
    assert pixels(data["images"][1]["path"]) == pixels(again["images"][0]["path"])
    # Omitted steps and guidance are the engine's own: not sent, and reported as unknown.
    last = engine.to("/images/generations")[-1].body
    assert "num_inference_steps" not in last and "guidance_scale" not in last
    assert plain["steps"] is None and plain["guidance_scale"] is None and (plain["width"], plain["height"]) == (
        1024, 1024)


async def test_an_engine_that_links_its_images_is_read_from_the_link(settings_with):
    with FakeEngine(links=True) as linking:
        settings = settings_with({"omni": endpoint(linking, engine="vllm-omni")})
        async with Client(build_server(settings)) as client:
            data = ok(await client.call_tool("generate_image", {"prompt": "a fox", "model": f"omni:{FLUX}",
                                                                "seed": 1, "width": 256, "height": 256,
                                                                "rewrite": False}))
        fetched = [r for r in linking.requests if r.method == "GET" and r.path.endswith("/content")]
    assert len(fetched) == 1 and data["provider"] == "omni"
    with Image.open(data["images"][0]["path"]) as stored:
        assert stored.size == (256, 256)


async def test_endpoint_declarations_are_enforced_before_any_request(settings_with, engine):
    settings = settings_with({
        "gpu": endpoint(engine),
        "plain": endpoint(engine, engine="openai", image_models=[], sizes=[[1024, 1024], [1536, 1024]]),
        "chat": {"base_url": url(engine)},
    })
    async with Client(build_server(settings)) as client:
        unknown = error_text(await client.call_tool("generate_image", {"prompt": "a", "model": "gpu:other/model"}))
        chat_only = error_text(await client.call_tool("generate_image", {"prompt": "a", "model": "chat:m"}))
        seed = error_text(await client.call_tool("generate_image", {"prompt": "a", "model": "plain:m", "seed": 3}))
        size = error_text(await client.call_tool("generate_image", {"prompt": "a", "model": "plain:m",
                                                                    "width": 512, "height": 512}))
        vision = error_text(await client.call_tool("ask_about_image", {"image": png(), "question": "what?",
                                                                       "model": f"gpu:{FLUX}"}))
        chat = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a", "model": f"gpu:{FLUX}"}))
    assert "Invalid model='gpu:other/model'" in unknown and "not an image model gpu serves" in unknown
    assert f"Use one of the image models it lists: {FLUX}" in unknown
    assert "does not declare images" in chat_only and "[endpoints.chat]" in chat_only
    assert "Invalid seed=3" in seed and "does not take seed" in seed
    assert "Invalid width=512" in size and "1536x1024" in size
    assert "does not declare vision" in vision and "does not declare chat" in chat and "[endpoints.gpu]" in chat
    assert engine.requests == []


async def test_edits_go_to_the_edit_api_and_keep_every_pixel_outside_the_mask(settings_with, engine):
    settings = settings_with({"gpu": endpoint(engine, engine="vllm-omni")})
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    async with Client(build_server(settings)) as client:
        data = ok(await client.call_tool("edit_image", {
            "image": png(), "prompt": "a blue square", "model": f"gpu:{FLUX}", "seed": 5,
            "mask": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()}))
    sent = engine.to("/images/edits")[0].body
    assert b'name="seed"' in sent and b'filename="image.png"' in sent
    assert b'filename="mask.png"' not in sent  # vLLM-Omni edits the whole image; the tool keeps the rest
    with Image.open(data["images"][0]["path"]) as edited:
        assert edited.getpixel((2, 2)) == (200, 40, 40) and edited.size == (64, 64)


async def test_a_failing_replica_rests_and_the_request_goes_to_another_at_once(settings_with, engine, second):
    settings = settings_with({"gpu": endpoint(engine, second)}, provider_max_retries=0)
    engine.queue("/images/generations", Reply(503, {"detail": "overloaded"}))
    async with Client(build_server(settings)) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a", "model": f"gpu:{FLUX}", "seed": 1,
                                                             "width": 256, "height": 256, "rewrite": False}))
        then = ok(await client.call_tool("generate_image", {"prompt": "b", "model": f"gpu:{FLUX}", "seed": 1,
                                                            "width": 256, "height": 256, "rewrite": False}))
        report = ok(await client.call_tool("list_models", {"task": "answer"}))
    assert first["provider"] == then["provider"] == "gpu"
    # The first replica failed once (no retries were allowed: the other replica answered within the attempt),
    # then rested, so the next request also went to the second one.
    assert len(engine.to("/images/generations")) == 1 and len(second.to("/images/generations")) == 2
    replicas = {r["url"]: r for r in next(p for p in report["providers"] if p["name"] == "gpu")["replicas"]}
    assert replicas[url(engine)]["failed"] == 1 and replicas[url(engine)]["resting_s"] > 0
    assert replicas[url(second)]["answered"] == 2
    assert replicas[url(engine)]["answers"] is True and replicas[url(second)]["answers"] is True


async def test_concurrent_images_spread_over_replicas_and_an_unreachable_one_is_skipped(settings_with, engine,
                                                                                       second):
    engine.routes["/images/generations"] = slow(engine.generations)
    second.routes["/images/generations"] = slow(second.generations)
    settings = settings_with({"gpu": endpoint(engine, second), "far": endpoint("http://127.0.0.1:9/v1", engine)},
                             provider_max_retries=0)
    async with Client(build_server(settings)) as client:
        ok(await client.call_tool("generate_image", {"prompt": "a", "model": f"gpu:{FLUX}", "seed": 1, "n": 2,
                                                     "width": 256, "height": 256, "rewrite": False}))
        far = ok(await client.call_tool("generate_image", {"prompt": "a", "model": f"far:{FLUX}", "seed": 1,
                                                           "width": 256, "height": 256, "rewrite": False}))
        report = ok(await client.call_tool("list_models", {"task": "answer"}))
    # Two images at once: one on each replica (the least busy one takes the next request).
    assert len(engine.to("/images/generations")) == 2 and len(second.to("/images/generations")) == 1
    assert far["provider"] == "far"
    down = next(p for p in report["providers"] if p["name"] == "far")["replicas"][0]
    assert down["answers"] is False and down["failed"] == 1 and "Connect" in down["detail"]


async def test_every_replica_failing_is_a_clear_error(settings_with):
    settings = settings_with({"gpu": endpoint("http://127.0.0.1:9/v1", "http://127.0.0.1:11/v1")},
                             provider_max_retries=0)
    async with Client(build_server(settings)) as client:
        text = error_text(await client.call_tool("generate_image", {"prompt": "a", "model": f"gpu:{FLUX}"}))
    assert "gpu (black-forest-labs/FLUX.1-dev) failed" in text and "cannot connect" in text


def slow(handler, delay: float = 0.4):
    def answer(record):
        reply = handler(record)
        reply.delay = delay
        return reply

    return answer


async def test_a_replica_that_hangs_ends_the_attempt_and_the_retry_goes_to_the_other(settings_with, engine, second):
    engine.routes["/images/generations"] = slow(engine.generations, 3.0)
    settings = settings_with({"gpu": endpoint(engine, second)}, provider_timeout_s=0.5, provider_max_retries=1)
    async with Client(build_server(settings)) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a", "model": f"gpu:{FLUX}", "seed": 1,
                                                            "width": 256, "height": 256, "rewrite": False}))
    assert data["provider"] == "gpu"
    assert len(engine.to("/images/generations")) == 1 and len(second.to("/images/generations")) == 1
