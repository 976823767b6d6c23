"""Tool input schemas in the shape every major function-calling dialect accepts.

The SDK derives each tool's input schema from its signature with pydantic. Two of pydantic's
habits are outside what some dialects take:
- `const` (a one-value Literal such as rewrite's "auto"): Gemini's `Schema` has no `const`, and
  google-genai's MCP conversion silently drops it. `enum` with one value says the same everywhere.
- non-null `default` values: outside the strict subset some OpenAI-compatible endpoints enforce.
  The default moves into the description ("Default: 1."); the server still applies it when the
  argument is left out, so clients that omit an argument see no change.
- `"default": null` on every optional argument: an argument left out is the same as null, so it says nothing.
- `exclusiveMinimum` / `exclusiveMaximum` (strength's "more than 0"): google-genai's JSONSchema refuses them
  (extra_forbidden), failing the whole tool list. They become `minimum` / `maximum`; the server still
  refuses the bound itself, saying "more than 0".
- `anyOf: [{"type": T, ...}, {"type": "null"}]` for every optional argument: `"type": [T, "null"]` says the
  same in a quarter of the characters, and every dialect tested reads it (Gemini as `nullable`).
- `$defs` / `$ref` for an argument whose items are objects (loras' {name, weight}): some converters resolve
  no references. Each is written out in place.
- `title` on every property and on the schema (pydantic's "Negative Prompt" for negative_prompt): it repeats
  the argument's name, and every tool's schema is sent with every turn of a conversation. Dropped.
`additionalProperties: false`, which OpenAI's strict mode wants on every object, is deliberately
not written: google-genai's MCP conversion fails on any boolean `additionalProperties` (it expects
a schema there), which would take every tool of the session down with it, while every strict
converter tested (openai-agents, langchain, pydantic-ai) adds it itself.
Only the published schema changes: arguments are still validated against the signature.
"""

from __future__ import annotations

import json
from typing import Any


def portable_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a tool's input schema in the portable shape (see the module docstring)."""
    copied = json.loads(json.dumps(schema))
    definitions = copied.pop("$defs", {})
    return _portable(_inlined(copied, definitions))


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every `{"$ref": "#/$defs/NAME"}` replaced by that definition (the tools' argument models do not
    refer to themselves)."""
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in definitions:
        extra = {key: value for key, value in node.items() if key != "$ref"}
        return _inlined({**definitions[ref.removeprefix("#/$defs/")], **extra}, definitions)
    return {key: _inlined(value, definitions) for key, value in node.items()}


def _portable(node: Any) -> Any:
    if isinstance(node, list):
        return [_portable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _portable(value) if key != "default" else value for key, value in node.items()
            if not (key == "title" and isinstance(value, str))}
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if exclusive in node:
            node[inclusive] = node.pop(exclusive)
    branches = node.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
        (other,) = [branch for branch in branches if branch != {"type": "null"}]
        if isinstance(other, dict) and isinstance(other.get("type"), str) and not set(other) & set(node) - {"anyOf"}:
            del node["anyOf"]
            node.update(other, type=[other["type"], "null"])
    properties = node.get("properties")
    if isinstance(properties, dict):
        for prop in properties.values():
            if isinstance(prop, dict) and "default" in prop and prop["default"] is None:
                del prop["default"]
            elif isinstance(prop, dict) and prop.get("default") is not None:
                value = prop.pop("default")
                shown = json.dumps(value)
                text = prop.get("description", "").rstrip()
                if f"default {shown}" not in text.lower() and f"default: {shown}" not in text.lower():
                    prop["description"] = f"{text} Default: {shown}.".strip()
    return node
