"""Argument errors that read like the tools' own checks.

The SDK validates a call's arguments against the tool's signature before the tool runs, and
answers a mismatch with pydantic's report ("Error executing tool X: 1 validation error for
XArguments ... [type=less_than_equal, ...] For further information visit ..."). A `CheckedTool`
answers instead as every other argument check does (errors.InvalidArgument): the argument, the
value, what is accepted (the bounds the published schema states) and the fix, one line per argument.
"""

from __future__ import annotations

import math
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from pydantic import ValidationError

from pixelmcp.errors import InvalidArgument


class CheckedTool(Tool):
    """A tool whose argument errors read like its own checks; `fixes(...)` (tools/arguments.py) on the tool's
    function adds the fix an argument's error gives, where a generic one would miss the point."""

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            return await super().run(arguments, context, convert_result)
        except ToolError as e:
            model = self.fn_metadata.arg_model
            if isinstance(e.__cause__, ValidationError) and e.__cause__.title == model.__name__:  # (the arguments')
                # The signature's own schema: the published one states exclusive bounds as inclusive (schemas.py).
                schema = model.model_json_schema()
                fixes = getattr(self.fn, "argument_fixes", {})
                raise ToolError(argument_errors(e.__cause__, schema, fixes)) from e.__cause__
            raise


def argument_errors(error: ValidationError, schema: dict[str, Any], fixes: dict[str, str] | None = None) -> str:
    """One InvalidArgument line per argument (or item field, e.g. loras[0].weight) that failed validation; `fixes`:
    the tool's own fix per argument."""
    lines: dict[str, str] = {}
    for problem in error.errors():
        loc = problem.get("loc") or ("arguments",)
        name = str(loc[0])
        label = name + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
        if label in lines:
            continue
        if problem["type"] == "finite_number" and problem["msg"].startswith("Invalid "):
            lines[label] = problem["msg"]  # our own validator's message (tools/arguments.py) says it all
            continue
        prop = property_at(schema, loc)
        value = problem.get("input")
        if problem["type"] in ("too_short", "too_long") and isinstance(value, list):
            value = f"<{len(value)} items>"  # (not the items: images, each of them long)
        required = len(loc) == 1 and name in (schema.get("required") or ())
        fix = (fixes or {}).get(name) or _fix(label, prop, required)
        lines[label] = str(InvalidArgument(label, value, _problem(problem, prop), fix))
    return "\n".join(lines.values())


def property_at(schema: dict[str, Any], loc: tuple) -> dict[str, Any]:
    """The schema of the value at `loc` (an argument, an item of a list argument, a field of an item), through the
    schema's $defs."""
    node = (schema.get("properties") or {}).get(str(loc[0]), {})
    for part in loc[1:]:
        key = "items" if isinstance(part, int) else "properties"
        holder = _with(_resolved(schema, node), key, schema)
        node = holder.get("items", {}) if isinstance(part, int) else (holder.get("properties") or {}).get(part, {})
    return _resolved(schema, node)


def _resolved(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref") if isinstance(node, dict) else None
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return (schema.get("$defs") or {}).get(ref.removeprefix("#/$defs/"), {})
    return node if isinstance(node, dict) else {}


def _with(node: dict[str, Any], key: str, schema: dict[str, Any]) -> dict[str, Any]:
    """`node`, or the branch of its anyOf that has `key` (a list or an object beside null)."""
    if key in node:
        return node
    for branch in node.get("anyOf", []):
        branch = _resolved(schema, branch)
        if key in branch:
            return branch
    return {}


def _problem(problem: dict[str, Any], prop: dict[str, Any]) -> str:
    kind, value = problem["type"], problem.get("input")
    if kind == "missing":
        return "is required"
    if kind == "finite_number":
        return "is not a finite number (NaN and infinities are refused)"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        if _not_finite(value):
            return "is not a finite number (NaN and infinities are refused)"
        return f"out of range; accepted: {_accepted(prop)}"
    if kind in ("too_short", "too_long"):
        return f"has {problem.get('ctx', {}).get('actual_length', '?')} item(s); accepted: {_accepted(prop)}"
    if kind in ("literal_error", "enum"):
        return f"is not one of the accepted values ({problem.get('ctx', {}).get('expected', _accepted(prop))})"
    message = problem["msg"]
    return "should be " + message[len("Input should be "):] if message.startswith("Input should be ") else message


def _fix(name: str, prop: dict[str, Any], required: bool) -> str:
    accepted = _accepted(prop)
    within = f" within {accepted}" if accepted != "any value" else " of the type the schema states"
    return f"Pass {name}{within}" + ("." if required else ", or omit it for its default.")


def _accepted(prop: dict[str, Any]) -> str:
    """What the schema accepts for one argument, e.g. '0..2', 'more than 0 and at most 1', '2..8 items'."""
    for branch in [prop, *prop.get("anyOf", [])]:
        low, high = branch.get("minimum"), branch.get("maximum")
        above = branch.get("exclusiveMinimum")
        if above is not None:
            return f"more than {above}" + (f" and at most {high}" if high is not None else "")
        if low is not None or high is not None:
            return f"{_shown(low, '')}..{_shown(high, '')}" if low is not None and high is not None else (
                f"at least {low}" if low is not None else f"at most {high}")
        few, many = branch.get("minItems"), branch.get("maxItems")
        if few is not None or many is not None:
            return f"{few or 0}..{many if many is not None else ''} items"
        if "enum" in branch:
            return " or ".join(repr(value) for value in branch["enum"])
    return "any value"


def _shown(value: Any, default: str) -> str:
    if value is None:
        return default
    return str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 else str(value)


def _not_finite(value: Any) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
