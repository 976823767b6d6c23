"""generate, control, style, edit, extend, upscale, cutout, ask, classify, compare: the MCP tools, from a terminal.

Each command builds the same server the MCP transports serve and calls its tool through an
in-memory MCP client, so validation, defaults, storage and results are exactly the tools'. Its
flags are the tool's arguments, made from the tool's signature when the command runs. On a
terminal, progress (model loading, denoising steps, tokens) is drawn as a bar on stderr; when
piped, only the result is printed. `--json` prints the structured result.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import math
import os
import shutil
import sys
import types
import typing
from pathlib import Path
from typing import Any

import anyio

from pixelmcp.cli.common import add_settings_flags, fail, load

#: command: (tool module, tool, help, positional arguments (name, nargs), tool arguments the command leaves out)
COMMANDS: dict[str, tuple[str, str, str, tuple[tuple[str, str | None], ...], tuple[str, ...]]] = {
    "generate": ("generate", "generate_image", "make images from a prompt (generate_image)", (("prompt", "?"),), ()),
    "control": ("control", "controlnet_generate", ("make images that keep another image's structure "
                "(controlnet_generate)"), (("prompt", None), ("image", None)), ()),
    "style": ("control", "style_transfer", "make images in the style of a reference (style_transfer)",
              (("prompt", None), ("style_image", None)), ()),
    "edit": ("editing", "edit_image", "edit an image, all of it or within a mask (edit_image)",
             (("image", None), ("prompt", None)), ()),
    "extend": ("editing", "extend_image", "extend an image's canvas, generating the new border (extend_image)",
               (("image", None), ("prompt", None)), ()),
    "upscale": ("editing", "upscale_image", "upscale an image 2x or 4x (upscale_image)", (("image", None),), ()),
    "vary": ("editing", "vary_image", ("new takes of an image pixelmcp made, with its prompt and settings "
             "(vary_image)"), (("image", None),), ()),
    "cutout": ("editing", "remove_background", "cut the subject out: an RGBA PNG (remove_background)",
               (("image", None),), ()),
    "ask": ("understanding", "ask_about_image", "ask a vision-language model about an image (ask_about_image)",
            (("image", None), ("question", None)), ()),
    "classify": ("understanding", "classify_image", "zero-shot labels for an image (classify_image)",
                 (("image", None), ("labels", "+")), ("images",)),
    "compare": ("understanding", "compare_images", "compare 2-8 images (compare_images)", (("images", "+"),), ()),
}
#: Arguments that take an image: a terminal path is resolved, and its folder allowed for the run.
IMAGE_ARGUMENTS = frozenset({"image", "style_image", "mask", "images"})
#: Arguments no command sets: the MCP context, and the client's LLM's rewrite (MCP sampling).
NOT_FLAGS = frozenset({"ctx", "sampled"})
ALIASES = {"guidance_scale": ["--guidance"]}
#: Arguments whose items are objects: one flag per item, repeatable, in a short form of their own.
REPEATED = {"loras": ("--lora", "NAME[:WEIGHT]", ("a LoRA (list_models, task lora) or a .safetensors path, with "
                                                  "its weight after a colon (default: the LoRA's own); repeat for "
                                                  "several"))}


def add_commands(sub) -> None:
    """One command per tool. Its positional arguments are declared here; every other argument of the tool becomes a
    flag when the command runs (or shows its help), made from the tool's signature: the same names, types,
    descriptions and choices, and no defaults of their own (a flag left out leaves the tool's default)."""
    for command, (module, tool, description, positionals, left_out) in COMMANDS.items():
        parser = sub.add_parser(command, help=description, description=description)
        for name, nargs in positionals:
            parser.add_argument(name, nargs=nargs, metavar=name.upper() if nargs else None)
        if command == "generate":
            parser.add_argument("--from", dest="source", metavar="ID_OR_PNG",
                                help="re-run the parameters of a stored image (id, pixelmcp:// uri or PNG made by "
                                     "pixelmcp)")
        add_settings_flags(parser)
        parser.add_argument("--json", action="store_true", help="print the structured result as JSON")
        if command not in ("ask", "classify", "compare"):
            parser.add_argument("-o", "--output", metavar="PATH",
                                help="also save the image here (several images: PATH-1.png, PATH-2.png, ...)")
        skip = {name for name, _ in positionals} | set(left_out)
        parser.pending = functools.partial(_tool_flags, module=module, tool=tool, skip=skip)
        parser.set_defaults(run=_generate if command == "generate" else _run, tool=tool,
                            positionals=[name for name, _ in positionals])


def _tool_flags(parser: argparse.ArgumentParser, *, module: str, tool: str, skip: set[str]) -> None:
    """The flags of `tool`'s arguments, from its signature (see add_commands)."""
    fn = getattr(importlib.import_module(f"pixelmcp.tools.{module}"), tool)
    hints = typing.get_type_hints(fn, include_extras=True)
    flags = []
    for name, parameter in inspect.signature(fn).parameters.items():
        if name in NOT_FLAGS or name in skip:
            continue
        kind, choices, description, bounds, many = _described(hints[name])
        default = parameter.default
        shown = f" (default: {json.dumps(default)})" if default not in (None, inspect.Parameter.empty) else ""
        text = (description or "") + (f" {bounds}." if bounds else "") + shown
        flag = "--" + name.replace("_", "-")
        if name in REPEATED:
            flag, metavar, help_text = REPEATED[name]
            parser.add_argument(flag, dest=name, action="append", default=None, metavar=metavar, help=help_text,
                                type=functools.partial(_lora, flag=flag))
        elif kind is bool:
            if default is not True:
                parser.add_argument(flag, dest=name, action="store_const", const=True, default=None, help=text)
            if default is not False:
                parser.add_argument(f"--no-{name.replace('_', '-')}", dest=name, action="store_const", const=False,
                                    default=None, help=None if default is not True else text)
        elif kind == "choice":  # true, false or one of the named choices (rewrite, verify)
            metavar = "|".join(["true", "false", *choices])
            parser.add_argument(flag, dest=name, nargs="?", const=True, default=None, metavar=metavar,
                                type=functools.partial(_choice, name=name, choices=choices), help=text)
            parser.add_argument(f"--no-{name.replace('_', '-')}", dest=name, action="store_const", const=False,
                                default=None, help=f"the same as {flag} false")
        else:
            extra = {"choices": choices} if choices else {
                "type": functools.partial(_finite, flag=flag) if kind is float else kind}
            if many:
                extra["nargs"] = "+"
            parser.add_argument(flag, *ALIASES.get(name, []), dest=name, default=None, help=text, **extra)
        flags.append(name)
    parser.set_defaults(flags=flags)


def _described(hint: Any) -> tuple[Any, tuple | None, str | None, str | None, bool]:
    """(the flag's kind: int, float, str, bool or "choice" (for a list: its items'); its choices; the argument's
    description; its fixed bounds as words, e.g. "0..2"; whether it takes a list)."""
    description, bounds = None, {}
    while typing.get_origin(hint) is typing.Annotated:
        fields = [m for m in hint.__metadata__ if getattr(m, "description", None)]
        description = description or (fields[0].description if fields else None)
        hint = hint.__origin__
    args = [a for a in typing.get_args(hint) if a is not type(None)] if _is_union(hint) else [hint]
    if len(args) > 1:  # bool | Literal["auto", ...]
        literals = tuple(v for a in args if typing.get_origin(a) is typing.Literal for v in typing.get_args(a))
        return "choice", literals, description, None, False
    (hint,) = args
    while typing.get_origin(hint) is typing.Annotated:
        for field in hint.__metadata__:
            for bound in getattr(field, "metadata", []):
                bounds.update({k: getattr(bound, k) for k in ("ge", "gt", "le") if hasattr(bound, k)})
        hint = hint.__origin__
    words = None
    if "gt" in bounds:
        words = f"More than {bounds['gt']}" + (f", at most {bounds['le']}" if "le" in bounds else "")
    elif "ge" in bounds:
        words = f"{bounds['ge']}..{bounds['le']}" if "le" in bounds else f"At least {bounds['ge']}"
    if typing.get_origin(hint) is typing.Literal:
        return str, typing.get_args(hint), description, words, False
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        while typing.get_origin(item) is typing.Annotated:
            item = item.__origin__
        return item, None, description, words, True
    return hint, None, description, words, False


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _choice(value: str, *, name: str, choices: tuple[str, ...]):
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if value in choices:
        return value
    raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} takes true, false or {' or '.join(choices)}, "
                                     f"not {value!r}")


def _finite(value: str, *, flag: str) -> float:
    """A number flag's value: NaN and infinities are refused here, naming the flag, as the tools refuse them."""
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{flag} takes a number, not {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{flag} takes a finite number, not {value!r} (NaN and infinities are "
                                         "refused)")
    return number


def _lora(value: str, *, flag: str) -> dict[str, Any]:
    """NAME or NAME:WEIGHT: the text after the last colon is the weight when it reads as a number (so a Windows path
    keeps its drive's colon), and NaN or an infinity there is refused as every number flag refuses it."""
    name, _, weight = value.rpartition(":")
    if not value.strip():
        raise argparse.ArgumentTypeError(f"{flag} takes NAME or NAME:WEIGHT, not an empty value")
    try:
        float(weight)
    except ValueError:
        return {"name": value}
    if not name:
        raise argparse.ArgumentTypeError(f"{flag} takes NAME or NAME:WEIGHT, not {value!r}")
    return {"name": name, "weight": _finite(weight, flag=flag)}


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The tool's arguments: the positional ones, and the flags given."""
    arguments = {}
    for name in [*args.positionals, *args.flags]:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name in IMAGE_ARGUMENTS:
            value = [_image(v) for v in value] if isinstance(value, list) else _image(value)
        arguments[name] = value
    return arguments


# --------------------------------------------------------------------------- commands


def _run(args: argparse.Namespace) -> None:
    _call(args, args.tool, _arguments(args))


def _generate(args: argparse.Namespace) -> None:
    if args.source:
        from pixelmcp.cli.reproduce import replay_of
        from pixelmcp.errors import InvalidArgument

        settings = load(args)
        try:
            replay = replay_of(args.source, settings)
        except InvalidArgument as e:
            fail(str(e), 2)
        if replay.note:
            print(f"pixelmcp: note: {replay.note}", file=sys.stderr)
        _call(args, replay.tool, replay.arguments, settings=settings, pick=replay.index)
        return
    if not args.prompt:
        fail("generate needs a prompt (or --from ID_OR_PNG to re-run a stored image)", 2)
    _call(args, "generate_image", _arguments(args))


def _image(value: str) -> str:
    """Terminal paths are the user's own files: resolve them, and allow their folder for this run."""
    if value.startswith(("pixelmcp://", "data:")):
        return value
    path = Path(value).expanduser()
    if not path.exists():
        fail(f"no such image file: {value}", 2)
    _EXTRA_DIRS.add(path.resolve().parent)
    return str(path.resolve())


_EXTRA_DIRS: set[Path] = set()


# --------------------------------------------------------------------------- running a tool


def _call(args: argparse.Namespace, tool: str, arguments: dict[str, Any], settings=None,
          pick: int | None = None) -> None:
    """Run `tool` and print its result; `pick` narrows the output to one image of the call (--from)."""
    settings = settings or load(args)
    if args.log_level is None and "PIXELMCP_LOG_LEVEL" not in os.environ:
        settings = settings.model_copy(update={"log_level": "WARNING"})  # a terminal wants the result, not logs
    if _EXTRA_DIRS:
        settings = settings.model_copy(update={"allowed_dirs": [*settings.allowed_dirs, *_EXTRA_DIRS]})
    # In-process, with progress on the terminal: the command waits for the work, however long.
    settings = settings.model_copy(update={"call_budget_s": 0})
    result = anyio.run(_run_tool, settings, tool, arguments)
    if result.is_error:
        fail(result.content[0].text.removeprefix(f"Error executing tool {tool}: "))
    data = result.structured_content or {}
    text = next((b.text for b in result.content if b.type == "text"), "")
    if pick is not None:
        chosen = data["images"][pick]
        data = {**data, **chosen, "reproduced": chosen}
        if len(data["images"]) > 1:
            text += (f"\nReproduced: image {pick + 1} of this {len(data['images'])}-image call, {chosen['uri']} "
                     "(the whole call was run again: only the same batch gives the same pixels).")
    saved = _save_outputs(data, args.output, pick) if getattr(args, "output", None) else []
    if args.json:
        print(json.dumps({**data, "saved": saved} if saved else data, indent=2))
        return
    print(_labels(data) if tool == "classify_image" else text)
    for path in saved:
        print(f"saved {path}")


async def _run_tool(settings, tool: str, arguments: dict[str, Any]):
    from mcp import Client

    from pixelmcp.cli.progress import ProgressView
    from pixelmcp.server.app import build_server

    server = build_server(settings)
    with ProgressView(tool) as view:
        async with Client(server) as client:
            return await client.call_tool(tool, arguments, progress_callback=view.update)


def _save_outputs(data: dict[str, Any], output: str, pick: int | None = None) -> list[str]:
    images = data.get("images") or ([data] if "path" in data else [])  # (a cut-out is one image, no list)
    if pick is not None:
        images = [images[pick]]
    target = Path(output).expanduser()
    saved = []
    for index, image in enumerate(images, start=1):
        path = target if len(images) == 1 else target.with_name(f"{target.stem}-{index}{target.suffix or '.png'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image["path"], path)
        saved.append(str(path))
    return saved


def _labels(data: dict[str, Any]) -> str:
    lines = []
    for result in data["results"]:
        lines.append(f"image {result['image']}: {result['top_label']} ({data['scoring']})")
        lines += [f"  {entry['score']:.4f}  {entry['label']}" for entry in result["labels"]]
    return "\n".join(lines)
