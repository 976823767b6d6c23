"""controlnet_generate and style_transfer through an in-memory MCP client (tiny profile)."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from conftest import stored_files
from helpers import data_uri, error_text, ok, pixels, shapes
from mcp import Client
from PIL import Image

from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

QUIET = {"rewrite": False}


async def test_controlnet_result_links_images_and_the_canny_map_of_the_input(server):
    source = shapes()
    async with Client(server) as client:
        result = await client.call_tool("controlnet_generate", {"prompt": "a house", "image": data_uri(source),
                                                                 "seed": 3, **QUIET})
    data = ok(result)
    assert [b.type for b in result.content] == ["image", "resource_link", "resource_link", "text"]
    assert result.content[2].uri == data["control_map"]["uri"]
    assert (data["control_type"], data["conditioning_scale"], data["preprocess"]) == ("canny", 1.0, True)
    expected = cv2.Canny(cv2.cvtColor(np.asarray(source), cv2.COLOR_RGB2GRAY), 100, 200)
    with Image.open(data["control_map"]["path"]) as control_map:
        got = np.asarray(control_map.convert("RGB"))
    assert np.array_equal(got[..., 0], expected) and expected.any()


async def test_canny_thresholds_change_the_map(server):
    source = data_uri(shapes())
    async with Client(server) as client:
        default = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": source, "seed": 1, **QUIET}))
        strict = ok(await client.call_tool("controlnet_generate", {
            "prompt": "a", "image": source, "seed": 1, "low_threshold": 900, "high_threshold": 1000, **QUIET}))
    assert pixels(default["control_map"]["path"]) != pixels(strict["control_map"]["path"])


async def test_the_control_image_steers_the_output(server):
    async with Client(server) as client:
        a = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": data_uri(shapes()), "seed": 5,
                                                               **QUIET}))
        b = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": data_uri(shapes(offset=20)),
                                                               "seed": 5, **QUIET}))
        again = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": data_uri(shapes()),
                                                                   "seed": 5, **QUIET}))
    assert pixels(a["path"]) != pixels(b["path"])
    assert pixels(a["path"]) == pixels(again["path"])


async def test_conditioning_scale_zero_and_one_differ_and_zero_equals_plain_generation(server):
    source = data_uri(shapes())
    common = {"prompt": "a tower", "seed": 9, **QUIET}
    async with Client(server) as client:
        full = ok(await client.call_tool("controlnet_generate", {**common, "image": source}))
        off = ok(await client.call_tool("controlnet_generate", {**common, "image": source, "conditioning_scale": 0.0}))
        plain = ok(await client.call_tool("generate_image", common))
    assert pixels(full["path"]) != pixels(off["path"])
    assert pixels(off["path"]) == pixels(plain["path"])


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sdxl"])
async def test_depth_preprocessing_and_ready_maps_work_for_each_family(server, model):
    source = data_uri(shapes())
    async with Client(server) as client:
        depth = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": source, "model": model,
                                                                   "control_type": "depth", "seed": 1, **QUIET}))
        pose = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": source, "model": model,
                                                                  "control_type": "pose", "preprocess": False,
                                                                  "seed": 1, **QUIET}))
    with Image.open(depth["control_map"]["path"]) as depth_map:
        r, g, b = depth_map.convert("RGB").split()
        assert r.tobytes() == g.tobytes() == b.tobytes()  # grey
        assert depth_map.getextrema()[0] == (0, 255)  # normalised
    assert pixels(pose["control_map"]["path"]) == pixels_of(shapes())  # used as given
    assert depth["model"] == pose["model"] == model


def pixels_of(image: Image.Image) -> bytes:
    return image.convert("RGB").tobytes()


async def test_output_size_follows_the_control_image(server):
    async with Client(server) as client:
        follow = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": data_uri(shapes((96, 48))),
                                                                    **QUIET}))
        one_side = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": data_uri(shapes((96, 48))),
                                                                      "width": 128, **QUIET}))
        odd = ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": data_uri(shapes((101, 50))),
                                                                 **QUIET}))
    assert (follow["width"], follow["height"]) == (96, 48)
    assert (one_side["width"], one_side["height"]) == (128, 64)
    assert (odd["width"], odd["height"]) == (104, 48)  # nearest multiples of 8 keep the ratio within 5%
    assert (odd["control_map"]["width"], odd["control_map"]["height"]) == (104, 48)


async def test_controlnet_reports_progress_per_step(server):
    steps = []

    async def on_progress(progress, total, message):
        if message and message.startswith("step "):
            steps.append(progress)

    async with Client(server) as client:
        ok(await client.call_tool("controlnet_generate", {"prompt": "a", "image": data_uri(shapes()), "steps": 3,
                                                           **QUIET}, progress_callback=on_progress))
    assert steps == [1, 2, 3]


# --------------------------------------------------------------------------- style_transfer


async def test_ip_adapter_scale_zero_equals_plain_generation(server):
    common = {"prompt": "a garden", "seed": 12, **QUIET}
    async with Client(server) as client:
        zero = ok(await client.call_tool("style_transfer", {**common, "style_image": data_uri(shapes()), "scale": 0.0}))
        plain = ok(await client.call_tool("generate_image", common))
    assert pixels(zero["path"]) == pixels(plain["path"])


async def test_the_style_image_and_the_mode_change_the_output(server):
    common = {"prompt": "a garden", "seed": 12, "scale": 1.0, **QUIET}
    red, blue = Image.new("RGB", (40, 40), "red"), Image.new("RGB", (40, 40), "blue")
    async with Client(server) as client:
        styled_red = ok(await client.call_tool("style_transfer", {**common, "style_image": data_uri(red)}))
        styled_blue = ok(await client.call_tool("style_transfer", {**common, "style_image": data_uri(blue)}))
        subject_red = ok(await client.call_tool("style_transfer", {**common, "style_image": data_uri(red),
                                                                    "mode": "subject"}))
        again = ok(await client.call_tool("style_transfer", {**common, "style_image": data_uri(red)}))
    assert pixels(styled_red["path"]) != pixels(styled_blue["path"])
    assert pixels(styled_red["path"]) != pixels(subject_red["path"])
    assert pixels(styled_red["path"]) == pixels(again["path"])
    assert (styled_red["mode"], subject_red["mode"]) == ("style", "subject")
    assert pixels(styled_red["style_image"]["path"]) == pixels_of(red)


async def test_the_base_pipeline_is_unchanged_after_style_transfer_and_controlnet(server):
    common = {"prompt": "a bridge", "seed": 31, **QUIET}
    async with Client(server) as client:
        before = ok(await client.call_tool("generate_image", common))
        ok(await client.call_tool("style_transfer", {**common, "style_image": data_uri(shapes()), "scale": 1.0,
                                                      "image": data_uri(shapes())}))
        ok(await client.call_tool("controlnet_generate", {**common, "image": data_uri(shapes())}))
        after = ok(await client.call_tool("generate_image", common))
    assert pixels(before["path"]) == pixels(after["path"])


async def test_style_transfer_with_a_structure_image_applies_canny(server):
    common = {"prompt": "a bridge", "seed": 31, "style_image": data_uri(shapes()), **QUIET}
    async with Client(server) as client:
        styled = ok(await client.call_tool("style_transfer", common))
        structured = ok(await client.call_tool("style_transfer", {**common, "image": data_uri(shapes((96, 64)))}))
    assert styled["control_map"] is None
    assert structured["control_map"] is not None and (structured["width"], structured["height"]) == (96, 64)
    assert pixels(styled["path"]) != pixels(structured["path"])


async def test_chaining_by_uri_generate_then_controlnet_then_style(server):
    async with Client(server) as client:
        base = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 1, **QUIET}))
        controlled = ok(await client.call_tool("controlnet_generate", {"prompt": "a lion", "image": base["uri"],
                                                                        "seed": 2, **QUIET}))
        styled = ok(await client.call_tool("style_transfer", {"prompt": "a tiger", "style_image": controlled["uri"],
                                                               "image": base["uri"], "seed": 3, **QUIET}))
    assert styled["style_image"]["uri"] == controlled["uri"]  # a stored input is linked, not copied
    assert (styled["width"], styled["height"]) == (base["width"], base["height"])


# --------------------------------------------------------------------------- errors

_buffer = io.BytesIO()
shapes().save(_buffer, format="PNG")
SOURCE = "data:image/png;base64," + base64.b64encode(_buffer.getvalue()).decode()

CONTROL_ERRORS = [
    ({"control_type": "lineart"}, "Invalid control_type='lineart'", "has no ControlNet"),
    ({"model": "tiny-flux"}, "Invalid control_type='canny'", "tiny-sd15, tiny-sdxl"),
    ({"image": "data:image/png;base64,aGVsbG8gd29ybGQ="}, "Invalid image=", "supported format"),
    ({"image": "pixelmcp://images/20200101-000000-00000000"}, "Invalid image=", "no stored image"),
    ({"conditioning_scale": 2.5}, "Invalid conditioning_scale=2.5", "0..2"),
    ({"conditioning_scale": -0.1}, "Invalid conditioning_scale=-0.1", "0..2"),
    ({"conditioning_scale": "NaN"}, "Invalid conditioning_scale=nan", "not a finite number"),
    ({"low_threshold": 300, "high_threshold": 200}, "Invalid low_threshold=300", "below high_threshold"),
    ({"high_threshold": 5000}, "Invalid high_threshold=5000", "0..1000"),
    ({"control_type": "depth", "low_threshold": 50}, "Invalid low_threshold=50", "only to control_type='canny'"),
    ({"width": 64, "height": 32}, "Invalid width=64", "distort"),
    ({"width": 60}, "Invalid width=60", "multiple of 8"),
    ({"steps": 0}, "Invalid steps=0", "1..50"),
]


@pytest.mark.parametrize(("extra", "start", "hint"), CONTROL_ERRORS)
async def test_controlnet_argument_errors_are_clear(server, settings, extra, start, hint):
    async with Client(server) as client:
        message = error_text(await client.call_tool("controlnet_generate",
                                                    {"prompt": "a", "image": SOURCE, **QUIET, **extra}))
    assert start in message and hint in message
    assert stored_files(settings) == []


async def test_a_missing_image_is_refused_by_the_schema(server):
    async with Client(server) as client:
        message = error_text(await client.call_tool("controlnet_generate", {"prompt": "a"}))
        style = error_text(await client.call_tool("style_transfer", {"prompt": "a"}))
    assert "image" in message and "style_image" in style


STYLE_ERRORS = [
    ({"scale": 3}, "Invalid scale=3", "0..2"),
    ({"scale": -1}, "Invalid scale=-1", "0..2"),
    ({"model": "tiny-sd3"}, "Invalid model='tiny-sd3'", "IP-Adapter"),
    ({"style_image": "not an image"}, "Invalid style_image=", "not a recognised image reference"),
    ({"image": "data:image/png;base64,aGVsbG8gd29ybGQ="}, "Invalid image=", "supported format"),
    ({"mode": "texture"}, "mode", "style"),
]


@pytest.mark.parametrize(("extra", "start", "hint"), STYLE_ERRORS)
async def test_style_transfer_argument_errors_are_clear(server, settings, extra, start, hint):
    async with Client(server) as client:
        message = error_text(await client.call_tool("style_transfer",
                                                    {"prompt": "a", "style_image": SOURCE, **QUIET, **extra}))
    assert start in message and hint in message
    assert stored_files(settings) == []


async def test_style_mode_needs_a_style_block_map_and_structure_needs_canny(make_settings):
    settings = make_settings(models={"tiny-sd15": {"style_blocks": None, "controlnets": {"depth": "tiny:sd15-controlnet-depth"}}})
    async with Client(build_server(settings)) as client:
        style = error_text(await client.call_tool("style_transfer", {"prompt": "a", "style_image": SOURCE, **QUIET}))
        structure = error_text(await client.call_tool("style_transfer", {
            "prompt": "a", "style_image": SOURCE, "mode": "subject", "image": SOURCE, **QUIET}))
        subject = ok(await client.call_tool("style_transfer", {"prompt": "a", "style_image": SOURCE, "mode": "subject",
                                                               **QUIET}))
    assert "Invalid mode='style'" in style and "mode='subject'" in style
    assert "Invalid image=" in structure and "canny ControlNet" in structure
    assert subject["mode"] == "subject"


async def test_segmentation_control_makes_an_ade20k_coloured_map_from_a_photo(server):
    from pixelmcp.engine.control import ADE20K_PALETTE

    async with Client(server) as client:
        result = await client.call_tool("controlnet_generate", {"prompt": "a street", "image": data_uri(shapes()),
                                                                "control_type": "segmentation", "seed": 2, **QUIET})
        given = await client.call_tool("controlnet_generate", {"prompt": "a street", "image": data_uri(shapes()),
                                                               "control_type": "segmentation", "preprocess": False,
                                                               "seed": 2, **QUIET})
        models = ok(await client.call_tool("list_models", {"task": "preprocess"}))
    data = ok(result)
    assert data["control_type"] == "segmentation" and data["control_map"]["uri"] in [
        b.uri for b in result.content if b.type == "resource_link"]
    with Image.open(data["control_map"]["path"]) as stored:
        colours = {tuple(c) for c in np.asarray(stored.convert("RGB")).reshape(-1, 3)}
    assert colours and colours <= set(ADE20K_PALETTE)  # class colours only, never blended
    assert ok(given)["preprocess"] is False
    assert "tiny-upernet" in {entry["alias"] for entry in models["catalog"]}


async def test_pose_control_draws_openpose_skeletons_of_the_people_in_a_photo(server, settings):
    from pixelmcp.engine.pose import LIMB_SHADE, OPENPOSE_COLOURS

    photo = data_uri(shapes())
    async with Client(server) as client:
        result = await client.call_tool("controlnet_generate", {"prompt": "a dancer", "image": photo,
                                                                "control_type": "pose", "seed": 2, **QUIET})
        stricter = ok(await client.call_tool("controlnet_generate", {
            "prompt": "a dancer", "image": photo, "control_type": "pose", "keypoint_threshold": 0.7, "seed": 2,
            **QUIET}))
        nobody = error_text(await client.call_tool("controlnet_generate", {
            "prompt": "a dancer", "image": photo, "control_type": "pose", "person_threshold": 0.99, **QUIET}))
        models = ok(await client.call_tool("list_models", {"task": "preprocess"}))
    data = ok(result)
    assert data["control_type"] == "pose" and data["people"] >= 1
    assert f"({data['people']} {'person' if data['people'] == 1 else 'people'})" in result.content[-1].text
    assert data["control_map"]["uri"] in [b.uri for b in result.content if b.type == "resource_link"]
    palette = {(0, 0, 0), *OPENPOSE_COLOURS, *(tuple(int(c * LIMB_SHADE) for c in colour)
                                                for colour in OPENPOSE_COLOURS)}
    with Image.open(data["control_map"]["path"]) as stored:
        drawn = np.asarray(stored.convert("RGB"))
    colours = {tuple(c) for c in drawn.reshape(-1, 3)}
    assert colours <= palette and len(colours) > 1  # a skeleton, in OpenPose's colours only
    with Image.open(stricter["control_map"]["path"]) as fewer:  # fewer joints pass a higher threshold
        assert np.count_nonzero(np.asarray(fewer.convert("RGB")).any(-1)) < np.count_nonzero(drawn.any(-1))
    # Nobody sure enough to be a person: a clear error naming the best score, and nothing stored for it.
    assert "Invalid person_threshold=0.99" in nobody and "scored 0." in nobody and "preprocess=false" in nobody
    assert len(stored_files(settings)) == 2 * 2 * 2  # the calls that worked: an image and a map, PNG + JSON each
    pose = next(entry for entry in models["catalog"] if entry["alias"] == "tiny-vitpose")
    assert pose["kind"] == "pose" and pose["detector"] == "tiny:rtdetr"


POSE_ERRORS = [
    ({"person_threshold": 0.2}, "Invalid person_threshold=0.2", "only to pose maps made from a photo, not 'canny'"),
    ({"control_type": "pose", "preprocess": False, "keypoint_threshold": 0.5}, "Invalid keypoint_threshold=0.5",
     "not a ready map (preprocess=false)"),
    ({"control_type": "pose", "person_threshold": 1.5}, "Invalid person_threshold=1.5", "0..1"),
    ({"control_type": "pose", "keypoint_threshold": -0.1}, "Invalid keypoint_threshold=-0.1", "0..1"),
]


@pytest.mark.parametrize(("extra", "start", "hint"), POSE_ERRORS)
async def test_pose_threshold_errors_are_clear(server, extra, start, hint):
    async with Client(server) as client:
        message = error_text(await client.call_tool("controlnet_generate",
                                                    {"prompt": "a", "image": SOURCE, **QUIET, **extra}))
    assert start in message and hint in message


async def test_a_map_model_of_the_wrong_kind_is_named_with_the_ones_that_fit(make_settings):
    async with Client(build_server(make_settings(pose_model="tiny-depth"))) as client:
        message = error_text(await client.call_tool("controlnet_generate", {
            "prompt": "a", "image": SOURCE, "control_type": "pose", **QUIET}))
    assert "Invalid pose_model='tiny-depth'" in message and "a depth model, which cannot make pose maps" in message
    assert "PIXELMCP_POSE_MODEL to one of: tiny-vitpose" in message
