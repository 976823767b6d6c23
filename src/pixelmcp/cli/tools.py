"""generate, control, style, edit, extend, upscale, cutout, ask, classify, compare: the MCP tools, from a terminal.

Each command builds the same server the MCP transports serve and calls its tool through an
in-memory MCP client, so validation, defaults, storage and results are exactly the tools'. On a
terminal, progress (model loading, denoising steps, tokens) is drawn as a bar on stderr; when
piped, only the result is printed. `--json` prints the structured result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio

from pixelmcp.cli.common import add_settings_flags, fail, load


def add_commands(sub) -> None:
    generate = sub.add_parser("generate", help="make images from a prompt (generate_image)")
    generate.add_argument("prompt", nargs="?", help="what the image should show")
    generate.add_argument("--from", dest="source", metavar="ID_OR_PNG",
                          help="re-run the parameters of a stored image (id, pixelmcp:// uri or PNG made by pixelmcp)")
    _generation_flags(generate)
    generate.add_argument("--best-of", type=int, help="make 2..4 candidates per image and keep the best by alignment")
    generate.set_defaults(run=_generate)

    control = sub.add_parser("control", help="make images that keep another image's structure (controlnet_generate)")
    control.add_argument("prompt")
    control.add_argument("image", help="image path, pixelmcp:// uri or data URI")
    control.add_argument("--control-type", default="canny",
                         help="canny (default), depth, pose, segmentation, or another type the model maps")
    control.add_argument("--no-preprocess", dest="preprocess", action="store_false",
                         help="use the image as the control map as it is")
    control.add_argument("--conditioning-scale", type=float, default=1.0)
    control.add_argument("--low-threshold", type=int, default=100)
    control.add_argument("--high-threshold", type=int, default=200)
    control.add_argument("--person-threshold", type=float,
                         help="pose: the detector's confidence that counts a person, 0..1 (default 0.5)")
    control.add_argument("--keypoint-threshold", type=float,
                         help="pose: the confidence that draws a joint, 0..1 (default 0.3)")
    _generation_flags(control)
    control.set_defaults(run=_control)

    style = sub.add_parser("style", help="make images in the style of a reference (style_transfer)")
    style.add_argument("prompt")
    style.add_argument("style_image", help="the reference image")
    style.add_argument("--scale", type=float, help="adapter strength 0..2 (default 0.8; local models only)")
    style.add_argument("--mode", choices=["style", "subject"], default="style")
    style.add_argument("--image", help="optional structure image (its edges steer the result)")
    _generation_flags(style)
    style.set_defaults(run=_style)

    edit = sub.add_parser("edit", help="edit an image, all of it or within a mask (edit_image)")
    edit.add_argument("image", help="image path, pixelmcp:// uri or data URI")
    edit.add_argument("prompt", help="what the edited image (or the repainted area) should show")
    where = edit.add_mutually_exclusive_group()
    where.add_argument("--mask", help="mask image: white = repaint, black = keep")
    where.add_argument("--mask-prompt", help="the area to repaint, in words (e.g. 'the sky')")
    edit.add_argument("--strength", type=float, help="how much may change, (0, 1]")
    _edit_flags(edit)
    edit.add_argument("--n", type=int, default=1)
    edit.set_defaults(run=_edit)

    extend = sub.add_parser("extend", help="extend an image's canvas, generating the new border (extend_image)")
    extend.add_argument("image")
    extend.add_argument("prompt", help="what the whole, larger picture shows")
    for side in ("left", "right", "top", "bottom"):
        extend.add_argument(f"--{side}", type=int, default=0, metavar="PX", help=f"pixels to add on the {side}")
    _edit_flags(extend)
    extend.add_argument("--n", type=int, default=1)
    extend.set_defaults(run=_extend)

    upscale = sub.add_parser("upscale", help="upscale an image 2x or 4x (upscale_image)")
    upscale.add_argument("image")
    upscale.add_argument("--scale", type=int, default=2, help="2 (default) or 4")
    upscale.add_argument("--prompt", help="what the image shows, to guide the added detail")
    upscale.add_argument("--strength", type=float, help="how much each tile may be redrawn (default 0.3)")
    _edit_flags(upscale, rewrite=False)
    upscale.set_defaults(run=_upscale)

    cutout = sub.add_parser("cutout", help="cut the subject out: an RGBA PNG (remove_background)")
    cutout.add_argument("image")
    cutout.add_argument("--subject", help="what to keep, in words (default: the main subject)")
    _common_flags(cutout)
    cutout.add_argument("-o", "--output", metavar="PATH", help="also save the PNG here")
    cutout.set_defaults(run=_cutout)

    ask = sub.add_parser("ask", help="ask a vision-language model about an image (ask_about_image)")
    ask.add_argument("image")
    ask.add_argument("question")
    ask.add_argument("--model")
    ask.add_argument("--max-tokens", type=int, default=512)
    ask.add_argument("--detail", choices=["auto", "low", "high"], default="auto")
    _claims_flag(ask)
    _common_flags(ask)
    ask.set_defaults(run=_ask)

    classify = sub.add_parser("classify", help="zero-shot labels for an image (classify_image)")
    classify.add_argument("image")
    classify.add_argument("labels", nargs="+", metavar="LABEL")
    classify.add_argument("--model")
    classify.add_argument("--template", default="a photo of {}")
    classify.add_argument("--multi-label", action="store_true")
    _common_flags(classify)
    classify.set_defaults(run=_classify)

    compare = sub.add_parser("compare", help="compare 2-8 images (compare_images)")
    compare.add_argument("images", nargs="+", metavar="IMAGE")
    compare.add_argument("--question")
    compare.add_argument("--model")
    _claims_flag(compare)
    _common_flags(compare)
    compare.set_defaults(run=_compare)


def _common_flags(parser: argparse.ArgumentParser) -> None:
    add_settings_flags(parser)
    parser.add_argument("--json", action="store_true", help="print the structured result as JSON")


def _image_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every image-making command shares."""
    _common_flags(parser)
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="also save the image here (several images: PATH-1.png, PATH-2.png, ...)")
    parser.add_argument("--model")
    parser.add_argument("--negative-prompt")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance-scale", "--guidance", dest="guidance_scale", type=float)
    parser.add_argument("--seed", type=int)


def _generation_flags(parser: argparse.ArgumentParser) -> None:
    _image_flags(parser)
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--n", type=int, default=1)
    rewrite = parser.add_mutually_exclusive_group()
    rewrite.add_argument("--rewrite", dest="rewrite", action="store_const", const=True, default="auto",
                         help="always expand the prompt with the LLM first")
    rewrite.add_argument("--no-rewrite", dest="rewrite", action="store_const", const=False,
                         help="never rewrite (default: short prompts are rewritten)")


def _edit_flags(parser: argparse.ArgumentParser, rewrite: bool = True) -> None:
    """The flags of the tools that start from an image (their size follows the image)."""
    _image_flags(parser)
    if rewrite:
        parser.add_argument("--rewrite", action="store_true", help="expand the prompt with the LLM first")


def _edit_arguments(args: argparse.Namespace) -> dict[str, Any]:
    return _present(image=_image(args.image), negative_prompt=args.negative_prompt, model=args.model,
                    steps=args.steps, guidance_scale=args.guidance_scale, seed=args.seed,
                    rewrite=getattr(args, "rewrite", None) or None, n=getattr(args, "n", None))


def _generation_arguments(args: argparse.Namespace) -> dict[str, Any]:
    return _present(prompt=args.prompt, negative_prompt=args.negative_prompt, model=args.model, width=args.width,
                    height=args.height, steps=args.steps, guidance_scale=args.guidance_scale, seed=args.seed,
                    n=args.n, rewrite=args.rewrite)


def _present(**values) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --------------------------------------------------------------------------- commands


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
    _call(args, "generate_image", {**_generation_arguments(args), **_present(best_of=args.best_of)})


def _control(args: argparse.Namespace) -> None:
    _call(args, "controlnet_generate", {
        **_generation_arguments(args), "image": _image(args.image), "control_type": args.control_type,
        "preprocess": args.preprocess, "conditioning_scale": args.conditioning_scale,
        "low_threshold": args.low_threshold, "high_threshold": args.high_threshold,
        **_present(person_threshold=args.person_threshold, keypoint_threshold=args.keypoint_threshold),
    })


def _style(args: argparse.Namespace) -> None:
    _call(args, "style_transfer", {
        **_generation_arguments(args), "style_image": _image(args.style_image), "mode": args.mode,
        **_present(image=_image(args.image) if args.image else None, scale=args.scale),
    })


def _edit(args: argparse.Namespace) -> None:
    _call(args, "edit_image", {**_edit_arguments(args), "prompt": args.prompt, **_present(
        mask=_image(args.mask) if args.mask else None, mask_prompt=args.mask_prompt, strength=args.strength)})


def _extend(args: argparse.Namespace) -> None:
    _call(args, "extend_image", {**_edit_arguments(args), "prompt": args.prompt, "left": args.left,
                                 "right": args.right, "top": args.top, "bottom": args.bottom})


def _upscale(args: argparse.Namespace) -> None:
    _call(args, "upscale_image", {**_edit_arguments(args), "scale": args.scale,
                                  **_present(prompt=args.prompt, strength=args.strength)})


def _cutout(args: argparse.Namespace) -> None:
    _call(args, "remove_background", _present(image=_image(args.image), subject=args.subject))


def _claims_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-check-claims", dest="check_claims", action="store_const", const=False,
                        help="skip checking the answer's claims against the image(s)")


def _ask(args: argparse.Namespace) -> None:
    _call(args, "ask_about_image", _present(image=_image(args.image), question=args.question, model=args.model,
                                            max_tokens=args.max_tokens, detail=args.detail,
                                            check_claims=args.check_claims))


def _classify(args: argparse.Namespace) -> None:
    _call(args, "classify_image", _present(image=_image(args.image), labels=args.labels, model=args.model,
                                           template=args.template, multi_label=args.multi_label))


def _compare(args: argparse.Namespace) -> None:
    _call(args, "compare_images", _present(images=[_image(i) for i in args.images], question=args.question,
                                           model=args.model, check_claims=args.check_claims))


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
