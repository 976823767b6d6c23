"""The image store on disk and its MCP resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import ok
from mcp import Client, MCPError
from PIL import Image

from pixelmcp.media.store import ImageStore, UnknownImageError, a1111_parameters

pytestmark = pytest.mark.anyio


async def test_full_png_is_readable_as_a_resource(server):
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a kite", "seed": 2, "rewrite": False}))
        resource = await client.read_resource(data["uri"])
    import base64

    content = resource.contents[0]
    assert content.mime_type == "image/png"
    with open(data["path"], "rb") as f:
        assert base64.b64decode(content.blob) == f.read()


async def test_reading_an_unknown_or_malicious_id_is_an_error(server):
    async with Client(server) as client:
        for uri in ("pixelmcp://images/20260101-000000-deadbeef", "pixelmcp://images/..%2F..%2Fetc%2Fpasswd",
                    "pixelmcp://images/not-an-id"):
            with pytest.raises(MCPError):
                await client.read_resource(uri)


async def test_image_listing_resource_names_every_stored_image(server):
    async with Client(server) as client:
        a = ok(await client.call_tool("generate_image", {"prompt": "one", "rewrite": False}))
        b = ok(await client.call_tool("generate_image", {"prompt": "two", "rewrite": False}))
        listing = json.loads((await client.read_resource("pixelmcp://images")).contents[0].text)
        templates = await client.list_resource_templates()
    assert {a["id"], b["id"]} == {entry["id"] for entry in listing}
    assert any(t.uri_template == "pixelmcp://images/{image_id}" for t in templates.resource_templates)


async def test_sidecar_and_png_text_chunk_hold_every_parameter(server):
    args = {"prompt": "a harbour", "negative_prompt": "people", "seed": 8, "steps": 3, "guidance_scale": 4.0,
            "width": 64, "height": 48, "rewrite": False}
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", args))
    sidecar = json.loads(Path(data["path"].removesuffix(".png") + ".json").read_text())
    params = sidecar["params"]
    for key in ("prompt", "negative_prompt", "seed", "steps", "guidance_scale", "width", "height"):
        assert params[key] == args[key]
    assert params["model"] == "tiny-sd15" and params["scheduler"] == "PNDMScheduler"
    assert sidecar["uri"] == data["uri"] and sidecar["path"] == data["path"]
    with Image.open(data["path"]) as png:
        text = png.text
    assert text["parameters"].startswith("a harbour\nNegative prompt: people\n")
    assert "Steps: 3" in text["parameters"] and "Seed: 8" in text["parameters"] and "Size: 64x48" in text["parameters"]
    assert json.loads(text["pixelmcp"])["seed"] == 8


def test_store_writes_atomically_and_leaves_no_temporary_files(tmp_path):
    store = ImageStore(tmp_path)
    record = store.save(Image.new("RGB", (8, 8), "red"), {"prompt": "x", "seed": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{record.id}.json", f"{record.id}.png"]
    assert store.get(record.id).params == {"prompt": "x", "seed": 1}


@pytest.mark.parametrize("bad_id", ["../x", "20260101-000000-DEADBEEF", "", "/etc/passwd", "20260101-000000-deadbeef/.."])
def test_store_refuses_ids_that_are_not_its_own(tmp_path, bad_id):
    store = ImageStore(tmp_path)
    with pytest.raises(UnknownImageError):
        store.png_path(bad_id)


def test_a1111_parameters_prefers_the_revised_prompt():
    text = a1111_parameters({"prompt": "cat", "revised_prompt": "a tabby cat", "seed": 3, "width": 8, "height": 8})
    assert text.splitlines()[0] == "a tabby cat" and "Seed: 3" in text
