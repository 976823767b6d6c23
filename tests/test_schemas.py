"""Every tool's input schema is accepted by the major function-calling dialects, and results can leave out
resource_link blocks for frameworks that fail on them."""

from __future__ import annotations

import json
import re

import pytest
from helpers import data_uri, ok, shapes
from mcp import Client

from pixelmcp.server.app import build_server
from pixelmcp.server.schemas import portable_schema

pytestmark = pytest.mark.anyio

#: The JSON Schema keywords OpenAI's strict function calling accepts (Structured Outputs' supported subset).
OPENAI_STRICT_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "description", "title", "enum", "anyOf", "items",
    "$defs", "$ref", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "pattern",
    "format", "minItems", "maxItems", "default",
}


def openai_strict_problems(schema, path="$") -> list[str]:
    """Where `schema` breaks OpenAI's strict rules once a client's strict conversion has marked every property
    required and closed every object (as openai-agents, langchain and pydantic-ai do): only supported keywords,
    no non-null default, no object that asks to stay open, no `additionalProperties` other than false (google-genai
    fails on a boolean there, so none is written)."""
    problems = []
    if isinstance(schema, dict):
        for key in schema:
            if key not in OPENAI_STRICT_KEYWORDS:
                problems.append(f"{path}: keyword {key!r}")
        if schema.get("default") is not None:
            problems.append(f"{path}: non-null default {schema['default']!r}")
        if "additionalProperties" in schema:
            problems.append(f"{path}: additionalProperties {schema['additionalProperties']!r}")
        for key, value in schema.items():
            if key == "properties":
                problems += [p for name, sub in value.items() for p in openai_strict_problems(sub, f"{path}.{name}")]
            elif key in ("items", "anyOf", "$defs"):  # one schema, a list of them, or named ones
                subs = (value.items() if key == "$defs" else enumerate(value if isinstance(value, list) else [value]))
                problems += [p for name, sub in subs for p in openai_strict_problems(sub, f"{path}.{key}[{name}]")]
    return problems


@pytest.fixture
async def tools(server):
    async with Client(server) as client:
        return (await client.list_tools()).tools


async def test_every_tool_schema_fits_openai_strict_rules(tools):
    problems = {tool.name: openai_strict_problems(tool.input_schema) for tool in tools}
    assert not any(problems.values()), {name: found for name, found in problems.items() if found}


async def test_every_tool_schema_converts_to_a_gemini_function_declaration(tools):
    from google.genai import types

    for tool in tools:
        schema = types.Schema.from_json_schema(json_schema=types.JSONSchema(**tool.input_schema),
                                               api_option="GEMINI_API")
        assert schema.type == types.Type.OBJECT
        types.FunctionDeclaration(name=tool.name, description=tool.description,
                                  parameters_json_schema=tool.input_schema)
    rewrite = next(t for t in tools if t.name == "generate_image").input_schema["properties"]["rewrite"]
    assert {"type": "string", "enum": ["auto"]} in rewrite["anyOf"]  # kept, not dropped, where const was


async def test_every_tool_fits_anthropics_tool_rules(tools):
    for tool in tools:
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool.name)
        assert tool.input_schema["type"] == "object" and tool.description
        assert not set(tool.input_schema) & {"oneOf", "allOf", "anyOf"}  # no combinators at the top level


async def test_defaults_move_into_the_description_and_still_apply(server, tools):
    n = next(t for t in tools if t.name == "generate_image").input_schema["properties"]["n"]
    assert "default" not in n and n["description"].endswith("Default: 1.")
    async with Client(server) as client:
        data = ok(await client.call_tool("generate_image", {"prompt": "a kite", "seed": 1, "rewrite": False}))
    assert len(data["images"]) == 1


def test_portable_schema_rewrites_const_and_non_null_defaults_and_drops_null_ones_and_titles():
    schema = {"type": "object", "properties": {
        "mode": {"const": "auto", "type": "string", "default": "auto", "description": "How."},
        "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Maybe"},
        "title": {"type": "string", "title": "Title"},  # an argument named title stays
        "strength": {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"}]},
        "either": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        "nested": {"type": "object", "properties": {}}}, "title": "toolArguments"}
    portable = portable_schema(schema)
    assert portable["properties"]["mode"] == {"enum": ["auto"], "type": "string",
                                              "description": 'How. Default: "auto".'}
    assert portable["properties"]["maybe"] == {"type": ["string", "null"]}  # omitted = null
    # Gemini's JSONSchema has no exclusive bounds: the server refuses the bound itself
    assert portable["properties"]["strength"] == {"type": ["number", "null"], "minimum": 0, "maximum": 1}
    assert portable["properties"]["either"] == schema["properties"]["either"]  # not an optional: kept
    assert portable["properties"]["title"] == {"type": "string"} and "title" not in portable
    assert "additionalProperties" not in portable["properties"]["nested"]
    assert schema["properties"]["mode"]["const"] == "auto"  # the input is left as it was


async def test_resource_links_can_be_left_out_keeping_the_uri_in_text_and_structured_content(make_settings):
    server = build_server(make_settings(resource_links=False))
    async with Client(server) as client:
        made = await client.call_tool("generate_image", {"prompt": "a kite", "seed": 1, "rewrite": False})
        edited = await client.call_tool("edit_image", {"image": data_uri(shapes()), "prompt": "x", "seed": 1})
        compared = await client.call_tool("compare_images", {"images": [ok(made)["uri"], ok(edited)["uri"]]})
    for result in (made, edited, compared):
        assert "resource_link" not in [block.type for block in result.content]
    assert ok(made)["uri"] in made.content[-1].text and [b.type for b in made.content] == ["image", "text"]
    assert "pixelmcp://images/" in compared.content[0].text


async def test_by_default_links_go_to_every_client_but_the_sdk1_default_one_that_frameworks_use(server):
    from mcp_types import Implementation

    kite = {"prompt": "a kite", "seed": 1, "rewrite": False}
    # The 1.x Python SDK speaks the handshake protocols and, unless its program names itself, says "mcp".
    async with Client(server, mode="legacy") as framework:
        bare = await framework.call_tool("generate_image", kite)
        cut = await framework.call_tool("remove_background", {"image": ok(bare)["uri"]})
    async with Client(server, mode="legacy", client_info=Implementation(name="claude-ai", version="1")) as host:
        named = await host.call_tool("generate_image", kite)
    async with Client(server) as modern:  # the 2.x SDK (protocol 2026-07-28), whose links are plain strings
        current = await modern.call_tool("generate_image", kite)
    for result in (bare, cut):
        assert "resource_link" not in [block.type for block in result.content]
        assert ok(result)["uri"] in result.content[-1].text  # the uri stays in the text and structured content
    for result in (named, current):
        assert [block.type for block in result.content] == ["image", "resource_link", "text"]


async def test_list_models_filters_by_task_so_no_tool_has_an_argument_free_open_object(server, tools):
    assert all(tool.input_schema.get("properties") for tool in tools)  # (openai-agents refuses those in strict mode)
    async with Client(server) as client:
        segmenters = ok(await client.call_tool("list_models", {"task": "segment"}))
        everything = ok(await client.call_tool("list_models", {}))
    assert [entry["alias"] for entry in segmenters["catalog"]] == ["tiny-clipseg"]
    assert len(everything["catalog"]) > 10


async def test_the_tools_cost_an_assistant_at_most_1300_characters_each_on_average(tools):
    # Every tool's description and input schema is sent with every turn of a conversation: prose belongs in the
    # README, and the arguments' names explain themselves. (1200 before `loras`: a list of {name, weight} objects
    # with the weight's bounds is about 270 characters, on six tools.)
    sizes = {tool.name: len(tool.description or "") + len(json.dumps(tool.input_schema)) for tool in tools}
    assert sum(sizes.values()) / len(sizes) <= 1300, sizes
    for tool in tools:  # no pydantic titles repeating the names, no "default": null saying nothing
        text = json.dumps(tool.input_schema)
        assert '"title"' not in text and '"default": null' not in text, tool.name
