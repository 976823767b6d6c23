"""edit_image, extend_image, upscale_image and remove_background through an in-memory MCP client (tiny profile)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from helpers import data_uri, error_text, ok, preview_of, shapes
from mcp import Client
from PIL import Image

from pixelmcp.media import editing

pytestmark = pytest.mark.anyio

QUIET = {"rewrite": False}


def rgb(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def left_half_mask(size=(64, 48)) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    return mask


async def generated(client, **arguments) -> dict:
    return ok(await client.call_tool("generate_image", {"prompt": "a house", "seed": 1, **QUIET, **arguments}))


# --------------------------------------------------------------------------- edit_image


async def test_inpainting_keeps_every_pixel_outside_the_mask_and_the_image_size(server):
    source = shapes((72, 56))  # not a multiple of the model's step: it works on a resized copy
    mask = left_half_mask((36, 28))  # any size: stretched to the image
    async with Client(server) as client:
        result = await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "a red wall",
                                                       "mask": data_uri(mask), "seed": 4})
    data = ok(result)
    edited = rgb(data["path"])
    assert edited.shape == (56, 72, 3)
    keep = np.asarray(editing.mask_at(mask, source.size)) == 0
    assert keep.any() and np.array_equal(edited[keep], np.asarray(source)[keep])  # measured: exactly unchanged
    assert not np.array_equal(edited[~keep], np.asarray(source)[~keep])  # and the masked half was repainted
    assert (data["mode"], data["strength"], data["width"], data["height"]) == ("inpaint", 1.0, 72, 56)
    assert data["mask"]["uri"] in [b.uri for b in result.content if b.type == "resource_link"]
    assert data["source_image"]["width"] == 72 and data["mask_coverage"] == pytest.approx(0.5)


async def test_image_to_image_from_a_stored_uri_chains_and_strength_sets_how_much_changes(server):
    async with Client(server) as client:
        first = await generated(client)
        weak = ok(await client.call_tool("edit_image", {"image": first["uri"], "prompt": "at night", "strength": 0.25,
                                                        "steps": 8, "seed": 2}))
        strong = ok(await client.call_tool("edit_image", {"image": first["uri"], "prompt": "at night", "strength": 1.0,
                                                          "steps": 8, "seed": 2}))
        again = ok(await client.call_tool("edit_image", {"image": first["uri"], "prompt": "at night",
                                                         "strength": 0.25, "steps": 8, "seed": 2}))
        chained = ok(await client.call_tool("edit_image", {"image": weak["uri"], "prompt": "in fog", "seed": 3}))
    original = rgb(first["path"]).astype(int)
    assert weak["mode"] == "image-to-image" and weak["mask"] is None
    assert weak["source_image"]["uri"] == first["uri"]  # a stored input is linked, not copied
    assert np.array_equal(rgb(weak["path"]), rgb(again["path"]))  # same seed and arguments, same pixels
    assert np.abs(rgb(weak["path"]) - original).mean() != np.abs(rgb(strong["path"]) - original).mean()
    assert (chained["width"], chained["height"]) == (first["width"], first["height"])
    assert chained["strength"] == 0.75  # the model's default without a mask
    with Image.open(weak["path"]) as png:  # A1111's parameters, with the edit's strength and its own size
        parameters = png.text["parameters"]
    assert "Denoising strength: 0.25" in parameters and f"Size: {first['width']}x{first['height']}" in parameters


async def test_edit_from_base64_and_with_n_images(server):
    buffer = io.BytesIO()
    shapes().save(buffer, format="PNG")
    async with Client(server) as client:
        data = ok(await client.call_tool("edit_image", {"image": base64.b64encode(buffer.getvalue()).decode(),
                                                        "prompt": "a painting", "n": 2, "seed": 7}))
    assert len(data["images"]) == 2 and [image["seed"] for image in data["images"]] == [7, 8]
    assert rgb(data["images"][0]["path"]).shape == (64, 64, 3)


async def test_mask_prompt_makes_stores_and_links_the_mask_and_keeps_the_rest(server):
    source = shapes()
    async with Client(server) as client:
        result = await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "blue sky",
                                                       "mask_prompt": "the sky", "seed": 1})
    data = ok(result)
    assert data["mask_prompt"] == "the sky" and data["mode"] == "inpaint"
    with Image.open(data["mask"]["path"]) as stored:
        mask = np.asarray(stored.convert("L"))
    assert mask.shape == (64, 64) and 0 < data["mask_coverage"] <= 1
    keep = mask == 0
    if keep.any():
        assert np.array_equal(rgb(data["path"])[keep], np.asarray(source)[keep])
    assert "the sky" in result.content[-1].text and data["mask"]["uri"] in result.content[-1].text


async def test_a_dedicated_inpainting_unet_is_used_and_shares_the_base_weights(server):
    async with Client(server) as client:
        ok(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "x",
                                                 "mask": data_uri(left_half_mask((64, 64))), "seed": 1}))
        models = ok(await client.call_tool("list_models", {}))
    loaded = {entry["alias"] for entry in models["loaded"]}
    assert {"tiny-sd15", "tiny-sd15+inpaint"} <= loaded
    catalog = {entry["alias"]: entry for entry in models["catalog"]}
    assert catalog["tiny-sd15"]["inpaint"] == "dedicated" and catalog["tiny-sdxl"]["inpaint"] == "base"
    assert "edit_image" in catalog["tiny-sdxl"]["tools"] and "remove_background" in catalog["tiny-clipseg"]["tools"]


async def test_sdxl_inpaints_with_its_own_unet_through_from_pipe(server):
    source = shapes()
    mask = left_half_mask((64, 64))
    async with Client(server) as client:
        data = ok(await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "x", "model": "tiny-sdxl",
                                                        "mask": data_uri(mask), "seed": 1}))
    keep = np.asarray(mask) == 0
    assert np.array_equal(rgb(data["path"])[keep], np.asarray(source)[keep])


@pytest.mark.parametrize(("arguments", "argument", "words"), [
    ({"strength": 0}, "strength", "more than 0"),
    ({"strength": 1.5}, "strength", "at most 1"),
    ({"strength": 0.1, "steps": 4}, "strength", "no denoising step"),
    ({"mask": "not an image"}, "mask", "mask"),
    ({"mask_prompt": "  "}, "mask_prompt", "empty"),
    ({"mask_prompt": "sky", "mask": "x"}, "mask_prompt", "not both"),
])
async def test_bad_edit_arguments_are_named(server, arguments, argument, words):
    async with Client(server) as client:
        text = error_text(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "x",
                                                                **arguments}))
    assert argument in text and words in text


async def test_an_all_black_mask_is_refused_and_an_all_white_one_repaints_everything(server):
    black, white = Image.new("L", (64, 64), 0), Image.new("L", (64, 64), 255)
    async with Client(server) as client:
        text = error_text(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "x",
                                                                "mask": data_uri(black)}))
        full = ok(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "x",
                                                        "mask": data_uri(white), "seed": 1}))
    assert "mask" in text and "empty" in text and "white" in text
    assert full["mask_coverage"] == 1.0 and not np.array_equal(rgb(full["path"]), np.asarray(shapes()))


# --------------------------------------------------------------------------- extend_image


async def test_extend_gives_the_exact_size_with_the_original_placed_unchanged(server):
    source = shapes((40, 30))
    async with Client(server) as client:
        result = await client.call_tool("extend_image", {"image": data_uri(source), "prompt": "a wide landscape",
                                                         "left": 13, "right": 20, "top": 5, "seed": 2})
    data = ok(result)
    out = rgb(data["path"])
    assert out.shape == (35, 73, 3) and (data["width"], data["height"]) == (73, 35)
    assert np.array_equal(out[5:35, 13:53], np.asarray(source))
    assert (data["left"], data["right"], data["top"], data["bottom"]) == (13, 20, 5, 0)
    with Image.open(data["mask"]["path"]) as mask:
        assert mask.size == (73, 35) and mask.getpixel((0, 0)) > 0 and mask.getpixel((20, 10)) == 0


@pytest.mark.parametrize(("arguments", "argument", "words"), [
    ({}, "left", "all 0"),
    ({"left": -4}, "left", "at least 0"),
    ({"right": 5000}, "right", "over this server's limit"),
])
async def test_bad_extend_arguments_are_named(make_settings, arguments, argument, words):
    from pixelmcp.server.app import build_server

    server = build_server(make_settings(max_output_pixels=65536 * 4))
    async with Client(server) as client:
        text = error_text(await client.call_tool("extend_image", {"image": data_uri(shapes()), "prompt": "x",
                                                                  **arguments}))
    assert argument in text and words in text


# --------------------------------------------------------------------------- upscale_image


@pytest.mark.parametrize("scale", [2, 4])
async def test_upscale_gives_exactly_scale_times_the_size(server, scale):
    source = shapes((44, 36))
    async with Client(server) as client:
        data = ok(await client.call_tool("upscale_image", {"image": data_uri(source), "scale": scale, "seed": 1}))
    assert rgb(data["path"]).shape == (36 * scale, 44 * scale, 3)
    assert (data["scale"], data["strength"], data["width"]) == (scale, 0.3, 44 * scale)


async def test_upscale_runs_in_tiles_with_progress_and_follows_the_image(server):
    steps: list[str] = []

    async def heard(done, total, message):
        steps.append(message or "")

    async with Client(server) as client:
        big = ok(await client.call_tool("upscale_image", {"image": data_uri(shapes((80, 64))), "seed": 1,
                                                          "steps": 4, "strength": 0.5}, progress_callback=heard))
        other = ok(await client.call_tool("upscale_image", {"image": data_uri(shapes((80, 64), offset=20)),
                                                            "seed": 1, "steps": 4, "strength": 0.5}))
    assert any(message.startswith("tile 4/") for message in steps)  # 160x128 in 64 px tiles
    assert not np.array_equal(rgb(big["path"]), rgb(other["path"]))
    # Low strength keeps the picture: the upscale stays close to a plain resize of the image.
    plain = np.asarray(shapes((80, 64)).resize((160, 128), Image.Resampling.LANCZOS), dtype=int)
    assert np.abs(rgb(big["path"]).astype(int) - plain).mean() < 60


@pytest.mark.parametrize(("arguments", "argument", "words"), [
    ({"scale": 3}, "scale", "2 or 4"),
    ({"strength": 0}, "strength", "more than 0"),
    ({"scale": 4, "image_size": (300, 300)}, "scale", "over this server's limit"),
    ({"model": "openai:gpt-image-1"}, "model", "local diffusion models"),
])
async def test_bad_upscale_arguments_are_named(make_settings, arguments, argument, words):
    from pixelmcp.server.app import build_server

    server = build_server(make_settings(max_output_pixels=65536 * 16))
    image = shapes(arguments.pop("image_size", (64, 64)))
    async with Client(server) as client:
        text = error_text(await client.call_tool("upscale_image", {"image": data_uri(image), **arguments}))
    assert argument in text and words in text


# --------------------------------------------------------------------------- remove_background


async def test_remove_background_gives_an_rgba_cutout_with_a_checkerboard_preview(server):
    source = shapes()
    async with Client(server) as client:
        first = await generated(client)
        result = await client.call_tool("remove_background", {"image": first["uri"], "subject": "the house"})
        chained = await client.call_tool("edit_image", {"image": ok(result)["uri"], "prompt": "x", "seed": 1})
        from_bytes = ok(await client.call_tool("remove_background", {"image": data_uri(source)}))
    data = ok(result)
    with Image.open(data["path"]) as cutout:
        assert cutout.mode == "RGBA" and cutout.size == (first["width"], first["height"])
        alpha = np.asarray(cutout)[..., 3]
        colours = np.asarray(cutout)[..., :3]
    assert np.array_equal(colours, rgb(first["path"]))  # colours untouched: only alpha is added
    assert alpha.min() < alpha.max()
    assert data["subject"] == "the house" and data["source_image"]["uri"] == first["uri"]
    # The preview (lossy) is the cut-out over a checkerboard, not the opaque image.
    preview = np.asarray(preview_of(result).convert("RGB"), dtype=int)
    with Image.open(data["path"]) as cutout:
        board = np.asarray(editing.on_checkerboard(cutout), dtype=int)
    assert np.abs(preview - board).mean() < np.abs(preview - rgb(first["path"]).astype(int)).mean()
    assert ok(chained)["width"] == first["width"]  # an RGBA result chains into the next tool
    assert from_bytes["subject"] == "the main subject"


# --------------------------------------------------------------------------- media/editing, directly


def test_composite_is_exact_outside_the_mask_with_soft_edges():
    rng = np.random.default_rng(0)
    original = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    edited = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))  # any size
    mask = Image.new("L", (50, 40), 0)
    mask.paste(180, (10, 10, 30, 30))  # soft: 180 of 255
    out = np.asarray(editing.composite(original, edited, mask, 3))
    keep = np.asarray(mask) == 0
    assert out.shape == (40, 50, 3) and np.array_equal(out[keep], np.asarray(original)[keep])
    assert not np.array_equal(out[~keep], np.asarray(original)[~keep])


def test_tiles_cover_the_canvas_and_blend_back_a_flat_image_exactly():
    boxes = editing.tiles((200, 120), 64, 16)
    covered = np.zeros((120, 200), dtype=bool)
    for tile in boxes:
        assert tile.width == 64 and tile.height == 64
        covered[tile.top:tile.top + 64, tile.left:tile.left + 64] = True
    assert covered.all()
    blender = editing.TileBlender((200, 120), 16)
    for tile in boxes:
        blender.add(tile, Image.new("RGB", (64, 64), (10, 200, 30)))
    assert set(map(tuple, np.asarray(blender.image()).reshape(-1, 3))) == {(10, 200, 30)}


@pytest.mark.parametrize("model", ["tiny-sd3", "tiny-flux"])
async def test_transformer_families_edit_and_inpaint_through_their_own_pipelines(server, model):
    source = shapes((64, 48))
    mask = left_half_mask((64, 48))
    async with Client(server) as client:
        whole = ok(await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "x", "model": model,
                                                         "strength": 0.5, "seed": 1}))
        masked = ok(await client.call_tool("edit_image", {"image": data_uri(source), "prompt": "x", "model": model,
                                                          "mask": data_uri(mask), "seed": 1}))
    assert rgb(whole["path"]).shape == (48, 64, 3)
    keep = np.asarray(mask) == 0
    assert np.array_equal(rgb(masked["path"])[keep], np.asarray(source)[keep])
    assert not np.array_equal(rgb(masked["path"])[~keep], np.asarray(source)[~keep])


async def test_an_agent_chains_generate_edit_extend_upscale_and_cutout_by_uri(server):
    async with Client(server) as client:
        made = await generated(client, width=48, height=48)
        edited = ok(await client.call_tool("edit_image", {"image": made["uri"], "prompt": "snow",
                                                          "mask_prompt": "the roof", "seed": 2}))
        wider = ok(await client.call_tool("extend_image", {"image": edited["uri"], "prompt": "a village",
                                                           "left": 8, "bottom": 16, "seed": 3}))
        bigger = ok(await client.call_tool("upscale_image", {"image": wider["uri"], "scale": 2, "seed": 4}))
        cut = ok(await client.call_tool("remove_background", {"image": bigger["uri"]}))
    assert [step["source_image"]["uri"] for step in (edited, wider, bigger, cut)] == [
        made["uri"], edited["uri"], wider["uri"], bigger["uri"]]
    assert (wider["width"], wider["height"]) == (56, 64) and (cut["width"], cut["height"]) == (112, 128)
    # The extended image holds the edited one unchanged at its offset.
    assert np.array_equal(rgb(wider["path"])[0:48, 8:56], rgb(edited["path"]))


async def test_words_that_match_nothing_are_a_clear_error_for_mask_prompt_and_subject(server, monkeypatch):
    from pixelmcp.engine import segment

    def unsure(segmenter, image, prompts, job):  # a segmenter that finds nothing anywhere
        return [Image.new("L", image.size, 40) for _ in prompts]

    monkeypatch.setattr(segment, "segment", unsure)
    async with Client(server) as client:
        edit = error_text(await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "x",
                                                                "mask_prompt": "a unicorn"}))
        cut = error_text(await client.call_tool("remove_background", {"image": data_uri(shapes()),
                                                                      "subject": "a unicorn"}))
    assert "mask_prompt" in edit and "a unicorn" in edit and "matched nothing" in edit and "0.16" in edit
    assert "subject" in cut and "was not found" in cut and "0.16" in cut


# --------------------------------------------------------------------------- vary_image


async def test_variations_reuse_the_parents_prompt_and_settings_with_new_seeds_and_record_their_parent(server):
    from helpers import pixels

    async with Client(server) as client:
        parent = await generated(client, negative_prompt="blur", steps=8, guidance_scale=6.0)
        varied = ok(await client.call_tool("vary_image", {"image": parent["uri"], "n": 2, "seed": 11}))
        again = ok(await client.call_tool("vary_image", {"image": parent["uri"], "n": 2, "seed": 11}))
        closer = ok(await client.call_tool("vary_image", {"image": parent["uri"], "n": 1, "seed": 11,
                                                          "strength": 0.2}))
    assert varied["source_image"]["uri"] == parent["uri"] and varied["strength"] == 0.35  # the default: close takes
    assert (varied["prompt"], varied["negative_prompt"], varied["model"]) == ("a house", "blur", parent["model"])
    assert (varied["steps"], varied["guidance_scale"], varied["width"]) == (8, 6.0, parent["width"])
    first, second = (pixels(image["path"]) for image in varied["images"])
    assert len({first, second, pixels(parent["path"])}) == 3  # new takes, each its own
    assert [pixels(image["path"]) for image in again["images"]] == [first, second]  # same seed: same pixels
    assert pixels(closer["path"]) != first  # strength changes how far it strays
    import json
    from pathlib import Path

    stored = json.loads(Path(varied["path"]).with_suffix(".json").read_text())["params"]  # the sidecar
    assert stored["tool"] == "vary_image" and stored["source_image"] == parent["uri"] and stored["seed"] == 11


async def test_only_images_this_server_generated_can_be_varied(server):
    async with Client(server) as client:
        parent = await generated(client)
        control = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": parent["uri"], **QUIET}))
        pasted = error_text(await client.call_tool("vary_image", {"image": data_uri(shapes())}))
        a_map = error_text(await client.call_tool("vary_image", {"image": control["control_map"]["uri"]}))
        missing = error_text(await client.call_tool("vary_image", {"image": "pixelmcp://images/20990101-000000-ab"}))
    assert "Invalid image=" in pasted and "not a pixelmcp:// uri" in pasted and "edit_image" in pasted
    assert "Invalid image=" in a_map and "not made by a generation tool (control map)" in a_map
    assert "Invalid image=" in missing
