"""The output folder failing: clear errors before the work where possible, no half-written pairs,
crash debris swept at start, and PNG text that carries no control characters."""

from __future__ import annotations

import base64
import errno
import io
import json
import logging
import os
import shutil
import time
from collections import namedtuple

import pytest
from conftest import stored_files
from helpers import error_text, ok
from mcp import Client
from PIL import Image

from pixelmcp.media import store as store_module
from pixelmcp.media.store import SWEEP_MIN_AGE_S, ImageStore
from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio

PROMPT = {"prompt": "a lighthouse", "seed": 3, "rewrite": False}


def png_bytes() -> bytes:
    return png_of("green")


async def loads_after(client: Client) -> int:
    return ok(await client.call_tool("list_models", {}))["stats"]["loads"]


async def test_an_output_folder_that_cannot_exist_fails_before_any_work_and_other_tools_still_work(make_settings,
                                                                                                   tmp_path, caplog):
    (tmp_path / "a-file").write_text("not a folder")
    server = build_server(make_settings(output_dir=tmp_path / "a-file" / "images"))
    image = Image.new("RGB", (32, 32), "red")
    image.save(tmp_path / "cat.png")
    with caplog.at_level(logging.ERROR, logger="pixelmcp"):
        async with Client(server) as client:
            await client.list_tools()
    assert any("is not writable" in r.getMessage() and "the others work" in r.getMessage() for r in caplog.records)
    async with Client(server) as client:
        message = error_text(await client.call_tool("generate_image", PROMPT))
        assert await loads_after(client) == 0  # refused before loading any model
        labels = ok(await client.call_tool("classify_image", {"image": str(tmp_path / "cat.png"),
                                                              "labels": ["a", "b"]}))
    assert f"The output folder {tmp_path / 'a-file' / 'images'} is not writable" in message
    assert "PIXELMCP_OUTPUT_DIR" in message and "Error executing tool generate_image: The output" in message
    assert labels["results"][0]["top_label"] in {"a", "b"}


class Patched:
    """A module with some functions replaced, for the store module only (the real module stays untouched)."""

    def __init__(self, module, **replacements):
        self._module = module
        self.__dict__.update(replacements)

    def __getattr__(self, name):
        return getattr(self._module, name)


@pytest.mark.parametrize("tool", ["generate_image", "controlnet_generate", "style_transfer"])
async def test_a_full_output_folder_fails_before_any_work(server, settings, monkeypatch, tool):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(store_module, "shutil", Patched(shutil, disk_usage=lambda path: usage(10**9, 10**9, 5000)))
    image = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    extra = {"controlnet_generate": {"image": image}, "style_transfer": {"style_image": image}}.get(tool, {})
    async with Client(server) as client:
        message = error_text(await client.call_tool(tool, {**PROMPT, **extra}))
        assert await loads_after(client) == 0
    assert f"The output folder {settings.output_dir} has 0.0 MB free" in message and "Nothing was generated" in message
    assert stored_files(settings) == []


def failing_os(step: int, error: int):
    """os for the store module whose `step`-th os.replace fails with `error`."""
    calls = []

    def replace(source, target):
        calls.append(target)
        if len(calls) == step:
            raise OSError(error, os.strerror(error))
        return os.replace(source, target)

    return Patched(os, replace=replace)


@pytest.mark.parametrize("failing", ["sidecar write", "sidecar rename", "image rename"])
async def test_a_pair_that_cannot_be_completed_leaves_neither_file(server, settings, monkeypatch, failing):
    if failing == "sidecar write":
        real_write = ImageStore._write_temporary
        writes = []

        def write(self, content, written):
            writes.append(1)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(self, content, written)

        monkeypatch.setattr(ImageStore, "_write_temporary", write)
    else:
        step = 2 if failing == "sidecar rename" else 1
        monkeypatch.setattr(store_module, "os", failing_os(step, errno.ENOSPC))
    async with Client(server) as client:
        message = error_text(await client.call_tool("generate_image", PROMPT))
    assert f"Could not save the image in {settings.output_dir} ({os.strerror(errno.ENOSPC)})" in message
    assert stored_files(settings) == []  # no orphan PNG, no temporary file


async def test_a_failure_after_some_images_names_the_ones_that_were_saved(server, settings, monkeypatch):
    monkeypatch.setattr(store_module, "os", failing_os(3, errno.EROFS))  # the PNG of the second image
    async with Client(server) as client:
        message = error_text(await client.call_tool("generate_image", {**PROMPT, "n": 2}))
    (first_png,) = [name for name in stored_files(settings) if name.endswith(".png")]
    assert sorted(stored_files(settings)) == sorted([first_png, first_png.replace(".png", ".json")])
    assert f"({os.strerror(errno.EROFS)})" in message
    assert f"Saved before the failure: pixelmcp://images/{first_png[:-4]}" in message


async def test_crash_debris_is_swept_at_start_and_logged(settings, caplog):
    folder = settings.output_dir
    folder.mkdir(parents=True)
    kept_pair = ImageStore(folder).save(Image.new("RGB", (8, 8)), {"prompt": "kept"})
    old = time.time() - SWEEP_MIN_AGE_S - 5
    debris = [".pixelmcp-tmp-a1b2c3d4", ".tmp-k2j3h4g5", "20260101-000000-deadbeef.png"]
    young_orphan, foreign = "20260101-000000-0000beef.png", ["holiday.png", ".tmp-notours.txt", "notes.json"]
    for name in [*debris, young_orphan, *foreign]:
        (folder / name).write_bytes(b"x")
    for name in [*debris, *foreign]:
        os.utime(folder / name, (old, old))
    with caplog.at_level(logging.INFO, logger="pixelmcp"):
        async with Client(build_server(settings)) as client:
            await client.list_tools()
    left = set(stored_files(settings))
    assert not left & set(debris)
    assert {young_orphan, *foreign, f"{kept_pair.id}.png", f"{kept_pair.id}.json"} <= left
    swept = [r.getMessage() for r in caplog.records if "leftover" in r.getMessage()]
    assert swept and all(name in swept[0] for name in debris)


async def test_png_text_chunks_carry_no_control_characters_and_the_sidecar_keeps_the_prompt(server):
    prompt = "a \x1b[31mred\x07 kite\x00\nNegative prompt: forged\r\nSteps: 99\u202e\u2028end"
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": prompt, "negative_prompt": "fog\x1b\nSeed: 1",
                                                            "seed": 4, "rewrite": False}))
    with Image.open(data["path"]) as png:
        chunks = dict(png.text)
    parameters = chunks["parameters"]
    lines = parameters.split("\n")
    assert len(lines) == 3 and lines[1].startswith("Negative prompt: ")
    assert lines[0] == "a [31mred kite Negative prompt: forged  Steps: 99 end"
    assert lines[1] == "Negative prompt: fog Seed: 1" and "Seed: 4" in lines[2]
    for value in chunks.values():
        assert not any(ord(c) < 32 and c != "\n" for c in value) and "\u202e" not in value and "\x7f" not in value
    assert json.loads(chunks["pixelmcp"])["prompt"] == prompt.strip()
    sidecar = json.loads(open(data["path"].removesuffix(".png") + ".json").read())  # noqa: SIM115
    assert sidecar["params"]["prompt"] == prompt.strip()


async def test_compare_images_keeps_its_answer_when_the_heat_map_cannot_be_saved(server, monkeypatch):
    monkeypatch.setattr(store_module, "os", failing_os(1, errno.ENOSPC))
    red, blue = (("data:image/png;base64," + base64.b64encode(encoded).decode())
                 for encoded in (png_of("red"), png_of("blue")))
    async with Client(server) as client:
        result = await client.call_tool("compare_images", {"images": [red, blue]})
    data = ok(result)
    (pair,) = data["pairs"]
    assert pair["pixel_metrics"] and pair["heatmap"] is None
    assert pair["note"].startswith("heat-map not saved: Could not save the image in")
    assert "heat-map not saved" in result.content[0].text


def png_of(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()
