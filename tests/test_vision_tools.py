"""classify_image, ask_about_image and compare_images through an in-memory MCP client (tiny profile)."""

from __future__ import annotations

import base64
import io
import math

import anyio
import numpy as np
import pytest
from conftest import stored_files
from helpers import error_text, ok
from mcp import Client
from PIL import Image, ImageDraw

from pixelmcp.media.metrics import compare_pixels

pytestmark = pytest.mark.anyio


def data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def noise(size=(96, 64), seed=0) -> Image.Image:
    pixels = (np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype("uint8")
    return Image.fromarray(pixels)


def with_red_square(image: Image.Image, box=(30, 20, 49, 39)) -> Image.Image:
    copy = image.copy()
    ImageDraw.Draw(copy).rectangle(box, fill=(255, 0, 0))
    return copy


# --------------------------------------------------------------------------- classify_image


async def test_clip_scores_are_a_softmax_over_the_labels(server):
    async with Client(server) as client:
        data = ok(await client.call_tool("classify_image", {"image": data_uri(noise()),
                                                             "labels": ["cat", "dog", "car"]}))
    assert data["scoring"] == "softmax" and data["model"] == "tiny-clip"
    (result,) = data["results"]
    scores = [entry["score"] for entry in result["labels"]]
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-5)
    assert scores == sorted(scores, reverse=True)
    assert result["top_label"] == result["labels"][0]["label"] and result["top_score"] == scores[0]
    assert {entry["label"] for entry in result["labels"]} == {"cat", "dog", "car"}


async def test_label_order_does_not_change_a_labels_score(server):
    image = data_uri(noise())
    async with Client(server) as client:
        first = ok(await client.call_tool("classify_image", {"image": image, "labels": ["cat", "dog", "car"]}))
        second = ok(await client.call_tool("classify_image", {"image": image, "labels": ["car", "cat", "dog"]}))
    as_dict = lambda d: {e["label"]: e["score"] for e in d["results"][0]["labels"]}
    for label, score in as_dict(first).items():
        assert math.isclose(score, as_dict(second)[label], abs_tol=1e-5)


async def test_the_image_changes_the_scores(server):
    async with Client(server) as client:
        a = ok(await client.call_tool("classify_image", {"image": data_uri(noise(seed=1)), "labels": ["cat", "dog"]}))
        b = ok(await client.call_tool("classify_image", {"image": data_uri(Image.new("RGB", (64, 64), "white")),
                                                          "labels": ["cat", "dog"]}))
    assert a["results"][0]["labels"] != b["results"][0]["labels"]


async def test_siglip_scores_are_independent_sigmoids(server):
    async with Client(server) as client:
        data = ok(await client.call_tool("classify_image", {"image": data_uri(noise()), "labels": ["cat", "dog"],
                                                             "model": "tiny-siglip"}))
        more = ok(await client.call_tool("classify_image", {"image": data_uri(noise()),
                                                             "labels": ["cat", "dog", "car"], "model": "tiny-siglip"}))
    assert data["scoring"] == "sigmoid"
    cat = next(e["score"] for e in data["results"][0]["labels"] if e["label"] == "cat")
    cat_again = next(e["score"] for e in more["results"][0]["labels"] if e["label"] == "cat")
    assert math.isclose(cat, cat_again, abs_tol=1e-5)  # adding a label does not move the others
    assert all(0 < e["score"] < 1 for e in data["results"][0]["labels"])


async def test_clip_multi_label_scores_each_label_on_its_own(server):
    async with Client(server) as client:
        data = ok(await client.call_tool("classify_image", {"image": data_uri(noise()), "labels": ["cat", "dog"],
                                                             "multi_label": True}))
    assert data["scoring"] == "binary-softmax"
    assert all(0 < e["score"] < 1 for e in data["results"][0]["labels"])


async def test_a_batch_scores_like_one_image_at_a_time(server):
    images = [data_uri(noise(seed=s)) for s in (1, 2, 3)]
    labels = ["cat", "dog", "car"]
    async with Client(server) as client:
        batch = ok(await client.call_tool("classify_image", {"images": images, "labels": labels}))
        alone = [ok(await client.call_tool("classify_image", {"image": image, "labels": labels})) for image in images]
    assert [r["image"] for r in batch["results"]] == [0, 1, 2]
    for result, single in zip(batch["results"], alone, strict=True):
        batched_scores = {e["label"]: e["score"] for e in result["labels"]}
        for entry in single["results"][0]["labels"]:
            assert math.isclose(entry["score"], batched_scores[entry["label"]], abs_tol=1e-5)


CLASSIFY_ERRORS = [
    ({"labels": []}, "Invalid labels=", "2..64"),
    ({"labels": ["cat"]}, "Invalid labels=", "2..64"),
    ({"labels": ["cat", "Cat"]}, "Invalid labels=", "duplicates: Cat"),
    ({"labels": ["cat", " "]}, "Invalid labels=", "empty label"),
    ({"labels": [f"l{i}" for i in range(65)]}, "Invalid labels=", "2..64"),
    ({"labels": ["a", "b"], "template": "a photo"}, "Invalid template=", "{}"),
    ({"labels": ["a", "b"], "image": None, "images": None}, "Invalid image=", "exactly one of image or images"),
    ({"labels": ["a", "b"], "images": ["x"] * 17, "image": None}, "Invalid images=", "1..16"),
    ({"labels": ["a", "b"], "image": "data:image/png;base64,aGVsbG8gd29ybGQ="}, "Invalid image=", "supported"),
    ({"labels": ["a", "b"], "model": "tiny-llava"}, "Invalid model='tiny-llava'", "tiny-clip, tiny-siglip"),
]


@pytest.mark.parametrize(("extra", "start", "hint"), CLASSIFY_ERRORS)
async def test_classify_argument_errors_are_clear(server, extra, start, hint):
    arguments = {"image": data_uri(noise()), **extra}
    arguments = {k: v for k, v in arguments.items() if v is not None}
    async with Client(server) as client:
        message = error_text(await client.call_tool("classify_image", arguments))
    assert start in message and hint in message


# --------------------------------------------------------------------------- ask_about_image


@pytest.mark.parametrize("model", ["tiny-qwen2-vl", "tiny-qwen2.5-vl", "tiny-llava", "tiny-llava-next",
                                   "tiny-idefics3", "tiny-internvl"])
async def test_ask_about_image_answers_with_each_vlm_family(server, model):
    async with Client(server) as client:
        data = ok(await client.call_tool("ask_about_image", {"image": data_uri(noise()), "question": "What is it?",
                                                              "model": model, "max_tokens": 24}))
        again = ok(await client.call_tool("ask_about_image", {"image": data_uri(noise()), "question": "What is it?",
                                                               "model": model, "max_tokens": 24}))
        other = ok(await client.call_tool("ask_about_image", {"image": data_uri(noise(seed=7)),
                                                               "question": "What is it?", "model": model,
                                                               "max_tokens": 24}))
    assert data["model"] == model and 0 < data["tokens_generated"] <= 24
    assert isinstance(data["answer"], str)
    assert data["answer"] == again["answer"]  # greedy decoding
    assert (data["answer"], data["tokens_generated"]) != (other["answer"], 0)
    assert set(data["timings"]) == {"queue_s", "load_s", "run_s", "total_s"}


async def test_ask_reports_progress_per_chunk_of_tokens(server):
    events = []

    async def on_progress(progress, total, message):
        events.append((progress, total, message))

    async with Client(server) as client:
        ok(await client.call_tool("ask_about_image", {"image": data_uri(noise()), "question": "Describe it.",
                                                       "max_tokens": 64}, progress_callback=on_progress))
    token_events = [e for e in events if e[2] and e[2].endswith("tokens")]
    assert [e[0] for e in token_events][:2] == [16, 32] and token_events[0][1] == 64


async def test_cancelled_question_stops_generation_early(server, monkeypatch):
    from pixelmcp.engine import vision

    seen = anyio.Event()
    generated: list[int] = []
    original = vision.chat_about_images

    def spy(*args, **kwargs):
        text, tokens = original(*args, **kwargs)
        generated.append(tokens)
        return text, tokens

    monkeypatch.setattr(vision, "chat_about_images", spy)

    async def on_progress(progress, total, message):
        if message and message.endswith("tokens"):
            seen.set()

    async with Client(server) as client:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "ask_about_image",
                              {"image": data_uri(noise()), "question": "Describe it.", "max_tokens": 2048},
                              None, on_progress)
                await seen.wait()
                tg.cancel_scope.cancel()
            after = ok(await client.call_tool("ask_about_image", {"image": data_uri(noise()), "question": "Hi?",
                                                                   "max_tokens": 4}))
    assert generated == [4]  # the cancelled call never finished; the next one ran normally
    assert after["tokens_generated"] == 4


ASK_ERRORS = [
    ({"question": ""}, "Invalid question=", "empty"),
    ({"question": "x" * 2001}, "Invalid question=", "over the limit"),
    ({"max_tokens": 0}, "Invalid max_tokens=0", "1..2048"),
    ({"max_tokens": 5000}, "Invalid max_tokens=5000", "1..2048"),
    ({"image": "bm90IGFuIGltYWdlIGF0IGFsbA=="}, "Invalid image=", "supported format"),
    ({"detail": "ultra"}, "detail", "auto"),
    ({"model": "tiny-clip"}, "Invalid model='tiny-clip'", "tiny-llava-next, tiny-qwen2-vl"),
]


@pytest.mark.parametrize(("extra", "start", "hint"), ASK_ERRORS)
async def test_ask_argument_errors_are_clear(server, extra, start, hint):
    async with Client(server) as client:
        message = error_text(await client.call_tool("ask_about_image", {"image": data_uri(noise()), "question": "What?",
                                                                         **extra}))
    assert start in message and hint in message


# --------------------------------------------------------------------------- compare_images


def test_identical_images_have_ssim_one_and_no_changed_regions():
    image = noise()
    measured = compare_pixels(image, image.copy())
    assert measured.ssim == 1.0 and measured.mean_abs_diff == 0 and measured.regions == []


def test_a_red_square_is_found_as_one_region_with_its_box():
    image = noise()
    measured = compare_pixels(image, with_red_square(image))
    assert len(measured.regions) == 1
    region = measured.regions[0]
    assert (region.x, region.y, region.width, region.height) == (30, 20, 20, 20)
    assert measured.ssim < 1 and measured.mean_abs_diff > 0


async def test_compare_images_combines_an_answer_with_measurements(server, settings):
    base = noise()
    async with Client(server) as client:
        result = await client.call_tool("compare_images", {"images": [data_uri(base), data_uri(base),
                                                                      data_uri(with_red_square(base))]})
    data = ok(result)
    assert data["model"] == "tiny-qwen2-vl" and data["similarity_model"] == "tiny-clip"
    pairs = {(p["a"], p["b"]): p for p in data["pairs"]}
    assert set(pairs) == {(0, 1), (0, 2), (1, 2)}
    same = pairs[(0, 1)]
    assert same["ssim"] == 1.0 and same["changed_regions"] == [] and same["heatmap"] is None
    assert math.isclose(same["clip_similarity"], 1.0, abs_tol=1e-5)
    changed = pairs[(0, 2)]
    assert changed["changed_regions"] == [{"x": 30, "y": 20, "width": 20, "height": 20}]
    assert changed["heatmap"]["uri"].startswith("pixelmcp://images/")
    links = [b for b in result.content if b.type == "resource_link"]
    assert {link.uri for link in links} == {pairs[(0, 2)]["heatmap"]["uri"], pairs[(1, 2)]["heatmap"]["uri"]}
    assert "Measured:" in result.content[0].text


async def test_compare_resizes_same_aspect_images_and_explains_skipped_pairs(server):
    base = noise((96, 64))
    async with Client(server) as client:
        data = ok(await client.call_tool("compare_images", {"images": [
            data_uri(base), data_uri(base.resize((48, 32))), data_uri(noise((64, 64)))]}))
    pairs = {(p["a"], p["b"]): p for p in data["pairs"]}
    assert pairs[(0, 1)]["pixel_metrics"] and pairs[(0, 1)]["resized"]
    assert not pairs[(0, 2)]["pixel_metrics"] and "aspect ratios" in pairs[(0, 2)]["note"]


async def test_chaining_generated_images_into_understanding_tools(server):
    async with Client(server) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 1, "rewrite": False}))
        second = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 2, "rewrite": False}))
        labels = ok(await client.call_tool("classify_image", {"image": first["uri"], "labels": ["cat", "dog"]}))
        answer = ok(await client.call_tool("ask_about_image", {"image": first["uri"], "question": "What?",
                                                                "max_tokens": 8}))
        compared = ok(await client.call_tool("compare_images", {"images": [first["uri"], second["uri"], first["uri"]],
                                                                 "model": "tiny-llava"}))
    assert labels["results"][0]["top_label"] in {"cat", "dog"}
    assert answer["tokens_generated"] > 0
    assert compared["images"] == [first["uri"], second["uri"], first["uri"]]
    assert {(p["a"], p["b"]): p["ssim"] for p in compared["pairs"]}[(0, 2)] == 1.0


COMPARE_ERRORS = [
    ({"images": []}, "Invalid images=", "2..8"),
    ({"images": ["ONE"]}, "Invalid images=", "ask_about_image"),
    ({"images": ["x"] * 9}, "Invalid images=", "2..8"),
    ({"images": ["IMG", "bm90IGFuIGltYWdlIGF0IGFsbA=="]}, "Invalid images[1]=", "supported format"),
    ({"images": ["IMG", "IMG"], "question": " " * 3, "model": "tiny-sd15"}, "Invalid model='tiny-sd15'", "tiny-llava"),
]


@pytest.mark.parametrize(("arguments", "start", "hint"), COMPARE_ERRORS)
async def test_compare_argument_errors_are_clear(server, settings, arguments, start, hint):
    image = data_uri(noise())
    arguments = {**arguments, "images": [image if v in ("IMG", "ONE") else v for v in arguments["images"]]}
    async with Client(server) as client:
        message = error_text(await client.call_tool("compare_images", arguments))
    assert start in message and hint in message
    assert stored_files(settings) == []


@pytest.mark.parametrize(("detail", "budget"), [("low", 256 * 784), ("auto", 1280 * 784), ("high", 4096 * 784)])
async def test_detail_bounds_the_pixels_a_vlm_sees_and_keeps_the_aspect(server, detail, budget):
    big = Image.new("RGB", (3000, 2000), "white")
    async with Client(server) as client:
        data = ok(await client.call_tool("ask_about_image", {"image": data_uri(big), "question": "What is it?",
                                                             "max_tokens": 2, "detail": detail}))
    width, height = data["image_size"]
    assert width * height <= budget and width * height > budget * 0.98
    assert abs(width / height - 1.5) < 0.01


async def test_internvl_compares_several_images_in_one_prompt(server):
    async with Client(server) as client:
        data = ok(await client.call_tool("compare_images", {
            "images": [data_uri(noise()), data_uri(noise(seed=7)), data_uri(noise(seed=9))], "model": "tiny-internvl"}))
    assert data["model"] == "tiny-internvl" and len(data["pairs"]) == 3 and isinstance(data["answer"], str)
