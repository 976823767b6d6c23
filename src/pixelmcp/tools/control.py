"""controlnet_generate and style_transfer: images steered by a control map or a reference image."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated, Literal

from mcp_types import CallToolResult
from pydantic import Field

from pixelmcp.backends import ControlRequest, StyleRequest
from pixelmcp.errors import InvalidArgument
from pixelmcp.media.store import ImageRef
from pixelmcp.service import checks
from pixelmcp.service.images import ImageRun, Keep, make_images
from pixelmcp.service.results import GenerateImageResult
from pixelmcp.tools.arguments import (
    GuidanceArg,
    HeightArg,
    ImageArg,
    LorasArg,
    ModelArg,
    NArg,
    NegativePromptArg,
    PromptArg,
    RewriteArg,
    SeedArg,
    StepsArg,
    VerifyArg,
    WidthArg,
    integer,
    number,
)
from pixelmcp.tools.context import AppContext, app_state
from pixelmcp.tools.results import ProgressReporter, answer
from pixelmcp.tools.rewriting import RevisedPromptArg, SampledArg

PREPROCESSORS = ("canny", "depth", "segmentation", "pose")
DEFAULT_IP_SCALE = 0.8
DEFAULT_PERSON_THRESHOLD = 0.5
DEFAULT_KEYPOINT_THRESHOLD = 0.3


class ControlNetResult(GenerateImageResult):
    control_type: str
    conditioning_scale: float
    preprocess: bool
    control_map: ImageRef = Field(description="the map that steered the image (edges, depth, pose, segmentation)")
    people: int | None = Field(None, description="control_type='pose' with preprocess: how many people the skeleton "
                                                 "map shows")


class StyleTransferResult(GenerateImageResult):
    mode: Literal["style", "subject"]
    scale: float | None = Field(description="IP-Adapter strength (null: a provider that reads the reference itself)")
    style_image: ImageRef = Field(description="the reference image, as stored with the result")
    control_map: ImageRef | None = Field(
        None, description="canny edges of `image`, when a structure image steered a local model"
    )
    structure_image: ImageRef | None = Field(None, description="the structure image, as stored with the result")


# --------------------------------------------------------------------------- tools


async def controlnet_generate(
    prompt: PromptArg,
    image: ImageArg,
    ctx: AppContext,
    control_type: Annotated[
        str, Field(description="canny, depth, pose or segmentation.")
    ] = "canny",
    preprocess: Annotated[
        bool, Field(description="Make the map from the image; false: the image is the map.")
    ] = True,
    conditioning_scale: Annotated[number(0, 2), Field(description="How strongly the map steers.")] = 1.0,
    negative_prompt: NegativePromptArg = None,
    model: ModelArg = None,
    width: WidthArg = None,
    height: HeightArg = None,
    steps: StepsArg = None,
    guidance_scale: GuidanceArg = None,
    seed: SeedArg = None,
    n: NArg = 1,
    loras: LorasArg = None,
    rewrite: RewriteArg = "auto",
    verify: VerifyArg = "auto",
    low_threshold: Annotated[integer(0, 1000), Field(description="Canny: lower threshold.")] = 100,
    high_threshold: Annotated[integer(0, 1000), Field(description="Canny: upper threshold.")] = 200,
    person_threshold: Annotated[
        number(0, 1), Field(description="Pose: person confidence.")
    ] = DEFAULT_PERSON_THRESHOLD,
    keypoint_threshold: Annotated[
        number(0, 1), Field(description="Pose: joint confidence.")
    ] = DEFAULT_KEYPOINT_THRESHOLD,
    revised_prompt: RevisedPromptArg = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, ControlNetResult]:
    """Generate images that keep the structure of `image` (edges, depth, pose, segments) while the prompt sets the
    content. Returns the images and the control map."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    controlnet = app.router.controlnet(spec, control_type)
    _check_preprocess(control_type, preprocess)
    _check_thresholds(control_type, low_threshold, high_threshold)
    _check_pose_thresholds(control_type, preprocess, person_threshold, keypoint_threshold)
    source = await app.load_image(image, "image")
    control = ControlRequest(
        control_type=control_type, controlnet=controlnet, image=source, preprocess=preprocess,
        conditioning_scale=conditioning_scale, low_threshold=low_threshold, high_threshold=high_threshold,
        preprocessor=app.router.map_maker(control_type) if preprocess else None,
        person_threshold=person_threshold, keypoint_threshold=keypoint_threshold,
    )
    request = replace(checks.check_image_request(
        app.settings, app.store, spec, prompt=prompt, negative_prompt=negative_prompt, width=width, height=height,
        steps=steps, guidance_scale=guidance_scale, seed=seed, n=n, loras=loras,
        default_size=checks.size_following(source, width, height, spec, "image"),
    ), control=control)
    pose = (dict(person_threshold=person_threshold, keypoint_threshold=keypoint_threshold)
            if control_type == "pose" and preprocess else {})  # (the people found are stored too: store_images)
    done = await make_images(app, ImageRun(
        "controlnet_generate", request, generator, started, rewrite=rewrite, revised_prompt=revised_prompt,
        sampled=sampled, verify=verify,
        params=dict(control_type=control_type, preprocess=preprocess, conditioning_scale=conditioning_scale,
                    low_threshold=low_threshold, high_threshold=high_threshold, **pose),
        keep=[Keep("control_map", "control map", made=True, params=dict(control_type=control_type),
                   title=f"{control_type} control map")],
    ), ProgressReporter(ctx))
    people = done.made.people
    result = ControlNetResult(**done.fields, control_type=control_type, conditioning_scale=conditioning_scale,
                              preprocess=preprocess, control_map=done.ref("control_map"), people=people)
    shows = f" ({people} {'person' if people == 1 else 'people'})" if people is not None else ""
    return await answer(ctx, result, done, lines=[f"Control map ({control_type}){shows}: {done.kept['control_map'].uri}"])


async def style_transfer(
    prompt: PromptArg,
    style_image: Annotated[str, Field(description="The reference image (any image form).")],
    ctx: AppContext,
    scale: Annotated[
        number(0, 2) | None, Field(description="Strength of the reference; default 0.8.")
    ] = None,
    mode: Annotated[
        Literal["style", "subject"],
        Field(description="style: its colours, texture, medium; subject: its subject or identity."),
    ] = "style",
    image: Annotated[
        str | None, Field(description="Optional structure image whose edges also steer.")
    ] = None,
    negative_prompt: NegativePromptArg = None,
    model: ModelArg = None,
    width: WidthArg = None,
    height: HeightArg = None,
    steps: StepsArg = None,
    guidance_scale: GuidanceArg = None,
    seed: SeedArg = None,
    n: NArg = 1,
    loras: LorasArg = None,
    rewrite: RewriteArg = "auto",
    verify: VerifyArg = "auto",
    revised_prompt: RevisedPromptArg = None,
    sampled: SampledArg = None,
) -> Annotated[CallToolResult, StyleTransferResult]:
    """Generate images in the style of a reference image, or keeping its subject (mode); with `image`, its edges
    also fix the composition."""
    app = app_state(ctx)
    started = time.perf_counter()

    # 1. Check every argument before any work.
    spec, generator = await app.router.generator(model)
    adapter = app.router.ip_adapter(spec)
    if adapter is None and scale is not None:
        raise InvalidArgument("scale", scale, f"model {spec.alias!r} reads the reference itself and takes no scale",
                              "Omit scale; say in the prompt how closely to follow the reference.")
    if adapter is not None and scale is None:
        scale = DEFAULT_IP_SCALE
    if adapter is not None and mode == "style" and spec.style_blocks is None:
        raise InvalidArgument("mode", mode, f"model {spec.alias!r} has no style-block map for style-only transfer",
                              "Use mode='subject', or set style_blocks for the model in the config file.")
    controlnet = None
    if image is not None and not spec.remote:
        try:
            controlnet = app.router.controlnet(spec, "canny")
        except InvalidArgument as e:
            raise InvalidArgument("image", image, f"a structure image needs a canny ControlNet ({e})",
                                  "Omit image, or choose a model with a canny ControlNet.") from e
    reference = await app.load_image(style_image, "style_image")
    structure = await app.load_image(image, "image") if image is not None else None
    default_size = checks.size_following(structure, width, height, spec, "image") if structure is not None else None
    style = StyleRequest(adapter=adapter, image=reference, scale=scale, mode=mode)
    control = None
    if structure is not None:
        control = ControlRequest(control_type="canny", controlnet=controlnet, image=structure, preprocess=True,
                                 conditioning_scale=1.0)
    request = replace(checks.check_image_request(
        app.settings, app.store, spec, prompt=prompt, negative_prompt=negative_prompt, width=width, height=height,
        steps=steps, guidance_scale=guidance_scale, seed=seed, n=n, loras=loras, default_size=default_size,
    ), control=control, style=style)
    done = await make_images(app, ImageRun(
        "style_transfer", request, generator, started, rewrite=rewrite, revised_prompt=revised_prompt,
        sampled=sampled, verify=verify, params=dict(mode=mode, scale=scale),
        keep=[Keep("style_image", "style reference", reference, given=style_image),
              Keep("structure_image", "structure image", structure, given=image, title=""),
              Keep("control_map", "control map", made=True, params=dict(control_type="canny"),
                   title="canny control map")],
    ), ProgressReporter(ctx))
    result = StyleTransferResult(**done.fields, mode=mode, scale=scale, style_image=done.ref("style_image"),
                                 control_map=done.ref("control_map"), structure_image=done.ref("structure_image"))
    lines = [f"Style reference: {result.style_image.uri} (mode {mode}" + (f", scale {scale})" if scale is not None
                                                                         else ")")]
    if result.control_map:
        lines.append(f"Control map (canny): {result.control_map.uri}")
    return await answer(ctx, result, done, lines=lines)


# --------------------------------------------------------------------------- checks


def _check_preprocess(control_type: str, preprocess: bool) -> None:
    if not preprocess or control_type in PREPROCESSORS:
        return
    raise InvalidArgument(
        "preprocess", True, f"there is no preprocessor for control_type {control_type!r} (only {', '.join(PREPROCESSORS)})",
        f"Pass a ready {control_type} map as image with preprocess=false.",
    )


def _check_thresholds(control_type: str, low: int, high: int) -> None:
    if control_type != "canny":
        if (low, high) != (100, 200):
            raise InvalidArgument("low_threshold", low, f"thresholds apply only to control_type='canny', not {control_type!r}",
                                  "Omit low_threshold and high_threshold.")
        return
    if low >= high:
        raise InvalidArgument("low_threshold", low, f"must be below high_threshold={high}",
                              "Use e.g. low_threshold=100, high_threshold=200.")


def _check_pose_thresholds(control_type: str, preprocess: bool, person: float, keypoint: float) -> None:
    for name, value, default in (("person_threshold", person, DEFAULT_PERSON_THRESHOLD),
                                 ("keypoint_threshold", keypoint, DEFAULT_KEYPOINT_THRESHOLD)):
        if value != default and not (control_type == "pose" and preprocess):
            where = f"not {control_type!r}" if control_type != "pose" else "not a ready map (preprocess=false)"
            raise InvalidArgument(name, value, f"it applies only to pose maps made from a photo, {where}",
                                  f"Omit {name}.")
