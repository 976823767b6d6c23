"""Prompt rewriting: rewrite_prompt, and generate_image with rewrite on, off and auto."""

from __future__ import annotations

import pytest
from helpers import error_text, ok, pixels
from mcp import Client

from pixelmcp.prompts.rewrite import clean_rewrite
from pixelmcp.server.app import build_server

pytestmark = pytest.mark.anyio


async def test_rewrite_prompt_returns_the_revised_prompt_and_its_rewriter(server):
    async with Client(server) as client:
        result = await client.call_tool("rewrite_prompt", {"prompt": "a cat", "style": "watercolour"})
    data = ok(result)
    assert data["rewriter"] == "local:tiny-llm"
    assert isinstance(data["revised_prompt"], str) and data["revised_prompt"].strip()
    assert len(data["revised_prompt"]) <= 1000
    assert data["cached"] is False


async def test_rewrite_is_deterministic_and_cached(server):
    async with Client(server) as client:
        first = ok(await client.call_tool("rewrite_prompt", {"prompt": "a dog"}))
        second = ok(await client.call_tool("rewrite_prompt", {"prompt": "a dog"}))
    assert first["revised_prompt"] == second["revised_prompt"]
    assert (first["cached"], second["cached"]) == (False, True)


async def test_rewrite_prompt_errors_name_the_argument(server):
    async with Client(server) as client:
        empty = error_text(await client.call_tool("rewrite_prompt", {"prompt": " "}))
        wrong_model = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a", "model": "tiny-sd15"}))
    assert "Invalid prompt=" in empty
    assert "Invalid model='tiny-sd15'" in wrong_model and "tiny-llm" in wrong_model


async def test_auto_rewrites_a_short_prompt_and_the_pipeline_gets_the_revised_one(server):
    async with Client(server) as client:
        auto = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 11}))
        plain = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 11, "rewrite": False}))
        revised = ok(await client.call_tool(
            "generate_image", {"prompt": auto["revised_prompt"], "seed": 11, "rewrite": False}))
    assert auto["prompt"] == "a cat"
    assert auto["revised_prompt"] and auto["revised_prompt"] != "a cat"
    assert plain["revised_prompt"] is None
    assert pixels(auto["path"]) == pixels(revised["path"])
    assert pixels(auto["path"]) != pixels(plain["path"])


async def test_rewritten_generation_reproduces_with_the_same_seed(make_settings):
    # Two servers: the second has an empty rewrite cache, so the rewrite itself must repeat.
    args = {"prompt": "a small house", "seed": 21, "rewrite": True}
    async with Client(build_server(make_settings())) as client:
        first = ok(await client.call_tool("generate_image", args))
    async with Client(build_server(make_settings())) as client:
        second = ok(await client.call_tool("generate_image", args))
    assert first["revised_prompt"] == second["revised_prompt"]
    assert pixels(first["path"]) == pixels(second["path"])


async def test_auto_leaves_a_long_prompt_alone(server):
    long_prompt = " ".join(["a detailed oil painting of a harbour"] * 6)
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": long_prompt}))
    assert data["revised_prompt"] is None and data["rewrite_error"] is None


async def test_auto_does_not_rewrite_when_rewriting_is_switched_off(make_settings):
    async with Client(build_server(make_settings(rewriter="none"))) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a cat"}))
        asked = ok(await client.call_tool("generate_image", {"prompt": "a cat", "rewrite": True}))
        refused = error_text(await client.call_tool("rewrite_prompt", {"prompt": "a cat"}))
    assert data["revised_prompt"] is None and data["rewrite_error"] is None
    assert asked["revised_prompt"] is None and "switched off" in asked["rewrite_error"]
    assert "PIXELMCP_REWRITER=none" in refused


async def test_a_failed_rewrite_is_reported_and_generation_uses_the_original_prompt(make_settings, tmp_path):
    broken = make_settings(models={"tiny-llm": {"source": str(tmp_path / "no-such-model")}})
    async with Client(build_server(broken)) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 4, "rewrite": True}))
        plain = ok(await client.call_tool("generate_image", {"prompt": "a cat", "seed": 4, "rewrite": False}))
    assert data["revised_prompt"] is None
    assert "tiny-llm" in data["rewrite_error"] and "no-such-model" in data["rewrite_error"]
    assert pixels(data["path"]) == pixels(plain["path"])


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Here is the enhanced prompt: A tabby cat on a sofa.", "A tabby cat on a sofa."),
        ('"A tabby cat, soft light"', "A tabby cat, soft light"),
        ("Sure! Prompt: **A cat** in the rain\n\nThis prompt adds rain.", "A cat in the rain"),
        ("   \n\n  ", ""),
        ("!!! ...", ""),
    ],
)
def test_clean_rewrite_strips_preambles_quotes_markdown_and_notes(reply, expected):
    assert clean_rewrite(reply, 1000) == expected


def test_clean_rewrite_bounds_length_at_a_word_boundary():
    text = clean_rewrite("word " * 500, 100)
    assert len(text) <= 100 and text.endswith("word")


async def test_a_given_revised_prompt_is_used_as_is_and_the_prompt_is_kept(server):
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a cat", "revised_prompt": "a tabby cat asleep",
                                                            "seed": 1}))
        both = error_text(await client.call_tool("generate_image", {"prompt": "a cat", "revised_prompt": "x",
                                                                    "rewrite": True}))
    assert (data["prompt"], data["revised_prompt"], data["rewriter"]) == ("a cat", "a tabby cat asleep", "given")
    assert "rewrite" in both and "not both" in both
