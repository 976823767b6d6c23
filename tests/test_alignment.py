"""Every generated or edited image is scored against its prompt by the similarity model (tiny profile)."""

from __future__ import annotations

import pytest
from helpers import data_uri, ok, shapes
from mcp import Client
from PIL import Image

from pixelmcp.engine import vision
from pixelmcp.engine.loaders import loader_for
from pixelmcp.engine.pool import ModelPool
from pixelmcp.engine.queue import Job
from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio


def direct_scores(settings, alias: str, paths: list[str], text: str) -> list[tuple[float, float]]:
    """The scores the similarity model gives the stored images for `text`, computed here without the server."""
    spec = settings.catalog[alias]
    pool = ModelPool(settings)
    classifier = pool.get(spec, loader_for(settings, spec), Job())
    images = [Image.open(path).convert("RGB") for path in paths]
    return [row[0] for row in vision.text_alignment(classifier, images, [text], *spec.alignment_range, Job())]


async def test_each_image_carries_its_alignment_with_the_prompt_as_given(make_settings):
    settings = make_settings()
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a red kite over the sea", "n": 2, "seed": 4,
                                                           "rewrite": True})
        edited = ok(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "a green door",
                                                          "seed": 1, "steps": 4}))
        upscaled = ok(await client.call_tool("upscale_image", {"image": data_uri(shapes()), "seed": 1}))
    data = ok(result)
    assert data["revised_prompt"] and data["revised_prompt"] != data["prompt"]
    found = [(image["alignment"]["score"], image["alignment"]["similarity"]) for image in data["images"]]
    assert all(image["alignment"]["model"] == "tiny-clip" for image in data["images"])
    assert all(0.0 <= score <= 1.0 for score, _ in found)
    # The caller's prompt (not the rewrite) against the final images, exactly as the model scores them.
    paths = [image["path"] for image in data["images"]]
    expected = direct_scores(settings, "tiny-clip", paths, data["prompt"])
    rewritten = direct_scores(settings, "tiny-clip", paths, data["revised_prompt"])
    assert [v for pair in found for v in pair] == pytest.approx([v for pair in expected for v in pair], abs=1e-3)
    assert [v for pair in found for v in pair] != pytest.approx([v for pair in rewritten for v in pair], abs=1e-3)
    assert "Alignment with the prompt (tiny-clip): " in result.content[-1].text
    assert edited["images"][0]["alignment"]["model"] == "tiny-clip"
    assert upscaled["images"][0]["alignment"] is None  # no prompt of the caller's to compare with


async def test_siglip_scores_with_its_own_sigmoid_and_alignment_can_be_switched_off(make_settings):
    async with Client(build_server(make_settings(alignment_model="tiny-siglip"))) as client:
        siglip = ok(await client.call_tool("generate_image", {"prompt": "a kite", "seed": 2, "rewrite": False}))
    async with Client(build_server(make_settings(alignment=False))) as client:
        result = await client.call_tool("generate_image", {"prompt": "a kite", "seed": 2, "rewrite": False})
    alignment = siglip["images"][0]["alignment"]
    assert alignment["model"] == "tiny-siglip" and 0.0 < alignment["score"] < 1.0
    assert ok(result)["images"][0]["alignment"] is None and "Alignment" not in result.content[-1].text


async def test_a_similarity_model_that_cannot_load_leaves_the_images_and_says_why(make_settings, tmp_path):
    settings = make_settings(models={"gone-clip": {"kind": "clip", "source": str(tmp_path / "missing")}},
                             alignment_model="gone-clip")
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a kite", "seed": 2, "rewrite": False})
    data = ok(result)
    assert data["images"][0]["alignment"] is None and data["images"][0]["uri"].startswith("pixelmcp://")
    assert "Alignment not scored: " in result.content[-1].text and "gone-clip" in result.content[-1].text


async def test_best_of_returns_the_best_matching_candidates_and_keeps_the_others(make_settings):
    settings = make_settings()
    async with Client(build_server(settings)) as client:
        result = await client.call_tool("generate_image", {"prompt": "a lighthouse", "seed": 10, "best_of": 3,
                                                           "rewrite": False})
        pair = ok(await client.call_tool("generate_image", {"prompt": "a lighthouse", "seed": 10, "n": 2,
                                                            "best_of": 2, "rewrite": False}))
        too_many = await client.call_tool("generate_image", {"prompt": "a", "n": 3, "best_of": 2})
        out_of_range = await client.call_tool("generate_image", {"prompt": "a", "best_of": 5})
    data = ok(result)
    kept, others = data["images"], data["candidates"]
    assert len(kept) == 1 and len(others) == 2
    scores = [kept[0]["alignment"]["score"]] + [c["alignment"]["score"] for c in others]
    assert scores[0] == max(scores)
    assert sorted(image["seed"] for image in kept + others) == [10, 11, 12]  # consecutive seeds, all kept
    assert data["seed"] == kept[0]["seed"] and data["uri"] == kept[0]["uri"]
    text = result.content[-1].text
    assert "Best 1 of 3 by alignment" in text and all(f"Also made: {c['uri']}" in text for c in others)
    links = [b.uri for b in result.content if b.type == "resource_link"]
    assert all(c["uri"] in links for c in others) and [b.type for b in result.content].count("image") == 1
    # n=2 of best_of=2: the two best of four, best first; the seeds continue where n images would.
    assert len(pair["images"]) == 2 and len(pair["candidates"]) == 2
    assert pair["images"][0]["alignment"]["score"] >= pair["images"][1]["alignment"]["score"] >= max(
        c["alignment"]["score"] for c in pair["candidates"])
    assert "Invalid best_of=2" in too_many.content[0].text and "6 images" in too_many.content[0].text
    assert "Invalid best_of=5" in out_of_range.content[0].text and "1..4" in out_of_range.content[0].text


async def test_verify_caption_describes_each_image_with_the_vision_model(make_settings):
    async with Client(build_server(make_settings())) as client:
        captioned = await client.call_tool("generate_image", {"prompt": "a kite", "seed": 2, "n": 2,
                                                              "verify": "caption", "rewrite": False})
        automatic = ok(await client.call_tool("generate_image", {"prompt": "a kite", "seed": 2, "rewrite": False}))
        edited = ok(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "a door",
                                                          "seed": 1, "steps": 4, "verify": True}))
    data = ok(captioned)
    assert all(isinstance(image["caption"], str) for image in data["images"])
    assert all(f"Caption of {image['uri']} (tiny-qwen2-vl): " in captioned.content[-1].text
               for image in data["images"])
    assert automatic["images"][0]["caption"] is None  # auto: a CPU has no room for a second model
    assert isinstance(edited["images"][0]["caption"], str)
