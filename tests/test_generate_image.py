"""generate_image through an in-memory MCP client on the tiny profile."""

from __future__ import annotations

import anyio
import pytest
from conftest import stored_files
from helpers import assert_same_picture, error_text, ok, pixels, preview_of
from mcp import Client

pytestmark = pytest.mark.anyio

NO_REWRITE = {"rewrite": False}


async def test_result_has_preview_link_and_structured_content(server, settings):
    async with Client(server) as client:
        result = await client.call_tool("generate_image", {"prompt": "a red bicycle", "seed": 7, **NO_REWRITE})
    data = ok(result)
    assert [block.type for block in result.content] == ["image", "resource_link", "text"]
    image_block, link = result.content[0], result.content[1]
    assert image_block.mime_type == "image/webp"
    assert link.uri == data["uri"] == f"pixelmcp://images/{data['id']}"
    assert link.mime_type == "image/png"
    assert preview_of(result).size == (64, 64)
    for key in ("id", "uri", "path", "width", "height", "seed", "model", "steps", "guidance_scale",
                "prompt", "revised_prompt", "timings"):
        assert key in data
    assert (data["width"], data["height"], data["seed"], data["model"]) == (64, 64, 7, "tiny-sd15")
    assert data["steps"] == 4 and data["guidance_scale"] == 7.5
    assert data["prompt"] == "a red bicycle" and data["revised_prompt"] is None
    assert set(data["timings"]) == {"rewrite_s", "queue_s", "load_s", "run_s", "total_s"}
    assert sorted(stored_files(settings)) == sorted([f"{data['id']}.png", f"{data['id']}.json"])


async def test_same_seed_gives_same_pixels_and_other_seed_differs(server):
    args = {"prompt": "a lighthouse at dusk", "seed": 1234, **NO_REWRITE}
    async with Client(server) as client:
        first = ok(await client.call_tool("generate_image", args))
        second = ok(await client.call_tool("generate_image", args))
        other = ok(await client.call_tool("generate_image", {**args, "seed": 1235}))
    assert first["id"] != second["id"]
    assert pixels(first["path"]) == pixels(second["path"])
    assert pixels(first["path"]) != pixels(other["path"])


async def test_prompt_changes_the_image(server):
    async with Client(server) as client:
        a = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 5, **NO_REWRITE}))
        b = ok(await client.call_tool("generate_image", {"prompt": "a spaceship", "seed": 5, **NO_REWRITE}))
    assert pixels(a["path"]) != pixels(b["path"])


async def test_missing_seed_is_drawn_and_reported_so_the_image_can_be_reproduced(server):
    async with Client(server) as client:
        first = ok(await client.call_tool("generate_image", {"prompt": "a tree", **NO_REWRITE}))
        again = ok(await client.call_tool("generate_image", {"prompt": "a tree", "seed": first["seed"], **NO_REWRITE}))
    assert 0 <= first["seed"] <= 2**32 - 1
    assert pixels(first["path"]) == pixels(again["path"])


async def test_n_images_use_consecutive_seeds_and_the_same_call_gives_the_same_pixels(server):
    args = {"prompt": "a boat", "seed": 40, "n": 2, **NO_REWRITE}
    async with Client(server) as client:
        batch = ok(await client.call_tool("generate_image", args))
        again = ok(await client.call_tool("generate_image", args))
    assert [image["seed"] for image in batch["images"]] == [40, 41]
    for first, second in zip(batch["images"], again["images"], strict=True):
        assert pixels(first["path"]) == pixels(second["path"])  # the same batch: exact by construction
    assert pixels(batch["images"][0]["path"]) != pixels(batch["images"][1]["path"])


async def test_image_i_of_n_is_the_same_picture_as_its_seed_alone(server):
    async with Client(server) as client:
        batch = ok(await client.call_tool("generate_image", {"prompt": "a boat", "seed": 40, "n": 2, **NO_REWRITE}))
        alone = ok(await client.call_tool("generate_image", {"prompt": "a boat", "seed": 41, **NO_REWRITE}))
        other = ok(await client.call_tool("generate_image", {"prompt": "a boat", "seed": 42, **NO_REWRITE}))
    # Batched and single calls may round differently: the same picture, not necessarily the same bytes.
    assert_same_picture(batch["images"][1]["path"], alone["path"])
    assert pixels(other["path"]) != pixels(alone["path"])


async def test_explicit_size_steps_and_guidance_are_used(server):
    args = {"prompt": "a castle", "width": 96, "height": 48, "steps": 3, "guidance_scale": 2.5, "seed": 1}
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {**args, **NO_REWRITE}))
        with_negative = ok(await client.call_tool(
            "generate_image", {**args, "negative_prompt": "fog", **NO_REWRITE}))
    assert (data["width"], data["height"], data["steps"], data["guidance_scale"]) == (96, 48, 3, 2.5)
    assert with_negative["negative_prompt"] == "fog"
    assert pixels(data["path"]) != pixels(with_negative["path"])


@pytest.mark.parametrize("model", ["tiny-sdxl", "tiny-sd3", "tiny-flux"])
async def test_every_tiny_pipeline_family_generates(server, model):
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a fox", "model": model, "seed": 3, **NO_REWRITE}))
        again = ok(await client.call_tool("generate_image", {"prompt": "a fox", "model": model, "seed": 3, **NO_REWRITE}))
    assert data["model"] == model and (data["width"], data["height"]) == (64, 64)
    assert pixels(data["path"]) == pixels(again["path"])


async def test_progress_is_reported_once_per_denoising_step_and_increases(server):
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        events.append((progress, total, message))

    async with Client(server) as client:
        ok(await client.call_tool("generate_image", {"prompt": "a mountain", "steps": 3, "seed": 1, **NO_REWRITE},
                                  progress_callback=on_progress))
    steps = [e for e in events if e[2] and e[2].startswith("step ")]
    # The steps asked for (PNDM's extra warm-up evaluation is not counted as a step of its own).
    assert [(e[0], e[1], e[2]) for e in steps] == [(n, 3, f"step {n}/3") for n in (1, 2, 3)]
    values = [e[0] for e in events]
    assert values == sorted(values) and len(set(values)) == len(values)


async def test_cancelled_generation_stops_within_a_step_and_stores_nothing(server, settings, held):
    step_seen = anyio.Event()
    steps_seen: list[float] = []

    async def on_progress(progress, total, message):
        if message and message.startswith("step "):
            steps_seen.append(progress)
            step_seen.set()

    long_job = {"prompt": "a city", "steps": 50, "seed": 9, **NO_REWRITE}
    async with Client(server) as client:
        held.after = 10**9  # the warm-up runs through
        ok(await client.call_tool("generate_image", {"prompt": "warm up", **NO_REWRITE}))
        held.after = 1  # the long job is held at its first step until cancelled
        before = stored_files(settings)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "generate_image", long_job, None, on_progress)
                await step_seen.wait()
                tg.cancel_scope.cancel()
            held.after = 10**9
            # The device is free again only once the worker stopped: this call waits for it.
            ok(await client.call_tool("generate_image", {"prompt": "after", **NO_REWRITE}))
    assert len(steps_seen) < 50
    new_files = set(stored_files(settings)) - set(before)
    assert len(new_files) == 2  # only the image (and sidecar) of the call after the cancellation


# --------------------------------------------------------------------------- argument errors

BAD_ARGUMENTS = [
    ({"prompt": ""}, "prompt", "empty"),
    ({"prompt": "   "}, "prompt", "empty"),
    ({"prompt": "x" * 2001}, "prompt", "over the limit of 2000"),
    ({"prompt": "a", "width": 65}, "width", "multiple of 8"),
    ({"prompt": "a", "width": 8}, "width", "16..512"),
    ({"prompt": "a", "height": 1024}, "height", "16..512"),
    ({"prompt": "a", "steps": 0}, "steps", "1..50"),
    ({"prompt": "a", "steps": 51}, "steps", "1..50"),
    ({"prompt": "a", "guidance_scale": -1}, "guidance_scale", "0.0..30.0"),
    ({"prompt": "a", "guidance_scale": 31}, "guidance_scale", "0.0..30.0"),
    ({"prompt": "a", "n": 0}, "n", "1..4"),
    ({"prompt": "a", "n": 5}, "n", "1..4"),
    ({"prompt": "a", "seed": -1}, "seed", "0..4294967295"),
    ({"prompt": "a", "seed": 2**32}, "seed", "0..4294967295"),
    ({"prompt": "a", "model": "nope"}, "model", "tiny-flux, tiny-sd15, tiny-sd3, tiny-sdxl"),
    ({"prompt": "a", "model": "tiny-llm"}, "model", "is a model for prompt rewriting, not for image generation"),
    ({"prompt": "a", "model": "tiny-flux", "guidance_scale": 3.5}, "guidance_scale", "does not use guidance"),
    ({"prompt": "a", "model": "tiny-flux", "negative_prompt": "x"}, "negative_prompt", "does not support"),
    ({"prompt": "a", "model": "tiny-flux", "width": 72}, "width", "multiple of 16"),
    ({"prompt": "a", "guidance_scale": 1.0, "negative_prompt": "x"}, "negative_prompt", "no effect"),
    ({"prompt": "a", "negative_prompt": "x" * 2001}, "negative_prompt", "over the limit"),
]


@pytest.mark.parametrize(("arguments", "argument", "expected"), BAD_ARGUMENTS)
async def test_bad_argument_is_a_tool_error_naming_argument_value_and_range(
    server, settings, arguments, argument, expected
):
    async with Client(server) as client:
        message = error_text(await client.call_tool("generate_image", {**arguments, **NO_REWRITE}))
    assert f"Invalid {argument}=" in message
    assert expected in message
    assert stored_files(settings) == []


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity"])
async def test_non_finite_guidance_is_refused(server, value):
    # JSON has no NaN literal, but argument parsing accepts these strings as floats.
    async with Client(server) as client:
        message = error_text(await client.call_tool("generate_image", {"prompt": "a", "guidance_scale": value}))
    assert "Invalid guidance_scale=" in message
    assert "finite" in message or "out of range" in message


async def test_wrong_types_are_refused_by_the_schema_with_the_argument_name(server):
    async with Client(server) as client:
        message = error_text(await client.call_tool("generate_image", {"prompt": "a", "n": "many"}))
        missing = error_text(await client.call_tool("generate_image", {}))
        rewrite = error_text(await client.call_tool("generate_image", {"prompt": "a", "rewrite": "sometimes"}))
    assert "n" in message and "integer" in message
    assert "prompt" in missing
    assert "rewrite" in rewrite


async def test_the_server_answers_normally_after_errors(server):
    async with Client(server) as client:
        error_text(await client.call_tool("generate_image", {"prompt": "a", "width": 3}))
        ok(await client.call_tool("generate_image", {"prompt": "a", **NO_REWRITE}))


# --------------------------------------------------------------------------- sweeps


async def test_a_sweep_makes_one_image_per_cell_each_as_a_plain_call_would_with_a_labelled_contact_sheet(server):
    sweep = {"prompt": "a kite", "steps": 4, **NO_REWRITE, "sweep_guidance_scale": [2, 7], "sweep_seed": [1, 2]}
    async with Client(server) as client:
        swept = await client.call_tool("generate_image", sweep)
        alone = ok(await client.call_tool("generate_image", {"prompt": "a kite", "steps": 4, **NO_REWRITE,
                                                             "guidance_scale": 7, "seed": 2}))
    data = ok(swept)
    assert data["axes"] == {"guidance_scale": [2.0, 7.0], "seed": [1, 2]}
    assert [cell["values"] for cell in data["cells"]] == [{"guidance_scale": 2.0, "seed": 1}, {"guidance_scale": 2.0,
                                                          "seed": 2}, {"guidance_scale": 7.0, "seed": 1},
                                                          {"guidance_scale": 7.0, "seed": 2}]
    assert [block.type for block in swept.content] == ["image", "resource_link", *["resource_link"] * 4, "text"]
    sheet = data["contact_sheet"]
    assert swept.content[1].uri == sheet["uri"] and (sheet["width"], sheet["height"]) == (2 * 64, 2 * (64 + 18))
    assert {block.uri for block in swept.content[2:6]} == {cell["image"]["uri"] for cell in data["cells"]}
    assert "cfg 7  seed 2" in swept.content[-1].text
    # Each cell is the image a plain call with its values makes (batched cells: the same picture within rounding).
    assert_same_picture(data["cells"][3]["image"]["path"], alone["path"])


@pytest.mark.parametrize(("arguments", "named", "words"), [
    ({"seed": 3, "sweep_seed": [1, 2]}, "seed", "together with sweep_seed"),
    ({"sweep_seed": [1, 2], "sweep_steps": [2, 3], "sweep_guidance_scale": [2, 3]}, "sweep_seed", "at most two"),
    ({"sweep_seed": list(range(5)), "sweep_steps": [2, 3, 4, 5]}, "sweep_seed", "20 images, over the limit of 16"),
    ({"sweep_seed": [1, 1]}, "sweep_seed", "each once"),
    ({"sweep_seed": [1, 2], "n": 2}, "n", "sweep makes one image per cell"),
    ({"sweep_steps": [4, 500]}, "steps", "out of range"),  # every cell is checked before any work
])
async def test_bad_sweeps_are_refused_before_any_work(server, settings, arguments, named, words):
    async with Client(server) as client:
        message = error_text(await client.call_tool("generate_image", {"prompt": "a", **NO_REWRITE, **arguments}))
    assert f"Invalid {named}=" in message and words in message, message
    assert stored_files(settings) == []
