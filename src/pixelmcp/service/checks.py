"""The checks of the arguments tools share. Each names the argument, the value, the accepted range and the
fix. Nothing is clamped or rounded: a value is either accepted as given or refused. `check_image_request` turns
an image tool's arguments into the one `ImageRequest` every generator reads."""

from __future__ import annotations

import math
import secrets

from PIL import Image

from pixelmcp.backends import ImageRequest
from pixelmcp.catalog import ModelSpec
from pixelmcp.config import Settings
from pixelmcp.errors import InvalidArgument
from pixelmcp.media.store import ImageStore
from pixelmcp.service.loras import LoraChoice, resolve_loras

MAX_SEED = 2**32 - 1
#: Explicit width/height may differ from an input image's aspect ratio by this much at most.
ASPECT_TOLERANCE = 0.05


def check_image_request(
    settings: Settings,
    store: ImageStore,
    spec: ModelSpec,
    *,
    prompt: str,
    negative_prompt: str | None,
    width: int | None,
    height: int | None,
    steps: int | None,
    guidance_scale: float | None,
    seed: int | None,
    n: int,
    default_size: tuple[int, int] | None = None,
    loras: list[LoraChoice] | None = None,
) -> ImageRequest:
    """Check every argument an image tool shares, against `spec`, before any work. `default_size` overrides the
    model's (e.g. to follow a control image)."""
    check_supported(spec, seed=seed, steps=steps, guidance_scale=guidance_scale)
    width, height = check_size(width, height, default_size or (spec.default_width, spec.default_height), spec)
    n = check_n(n, settings, spec)
    # Before any work: a folder that cannot take the PNGs (at most raw size each, plus a control map) fails now.
    store.check_writable((n + 1) * (width * height * 3 + 65536))
    # An image engine's model keeps its own steps and guidance unless the caller sets them.
    engine_guidance = spec.engine_defaults and guidance_scale is None
    guidance = check_guidance(guidance_scale, spec) if spec.takes_guidance and not engine_guidance else None
    negative = check_text("negative_prompt", negative_prompt, settings, required=False)
    return ImageRequest(
        spec=spec,
        prompt=check_text("prompt", prompt, settings, required=True),
        negative_prompt=check_negative_prompt(negative, None if engine_guidance else guidance or 0.0, spec),
        width=width,
        height=height,
        steps=check_steps(steps, spec) if spec.takes_steps and not (spec.engine_defaults and steps is None) else None,
        guidance_scale=guidance,
        n=n,
        seed=check_seed(seed) if spec.takes_seed else None,
        loras=resolve_loras(settings, spec, loras),
    )


def check_text(argument: str, value: str | None, settings: Settings, *, required: bool) -> str | None:
    """A prompt-like string: non-blank when required, at most `max_prompt_chars`."""
    if value is None:
        if required:
            raise InvalidArgument(argument, value, "is required", f"Describe the image in {argument}.")
        return None
    if not value.strip():
        if required:
            raise InvalidArgument(argument, value, "is empty", f"Describe the image in {argument}.")
        return None
    if len(value) > settings.max_prompt_chars:
        raise InvalidArgument(
            argument, value, f"is {len(value)} characters, over the limit of {settings.max_prompt_chars}",
            f"Shorten {argument} (or raise PIXELMCP_MAX_PROMPT_CHARS).",
        )
    return value.strip()


def check_side(argument: str, value: int | None, default: int, spec: ModelSpec) -> int:
    """Width or height: a multiple of the model's step, within its bounds."""
    if value is None:
        return default
    accepted = f"{spec.min_side}..{spec.max_side} in multiples of {spec.multiple_of} for model {spec.alias!r}"
    if value < spec.min_side or value > spec.max_side:
        raise InvalidArgument(argument, value, f"out of range; accepted: {accepted}",
                              f"Use e.g. {argument}={spec.default_width if argument == 'width' else spec.default_height}.")
    if value % spec.multiple_of:
        lower = value - value % spec.multiple_of
        candidates = [c for c in (lower, lower + spec.multiple_of) if spec.min_side <= c <= spec.max_side]
        raise InvalidArgument(argument, value, f"not a multiple of {spec.multiple_of}; accepted: {accepted}",
                              f"Use {' or '.join(str(c) for c in candidates)}.")
    return value


def check_steps(value: int | None, spec: ModelSpec) -> int:
    if value is None:
        return spec.default_steps
    if not 1 <= value <= spec.max_steps:
        raise InvalidArgument("steps", value, f"out of range; model {spec.alias!r} accepts 1..{spec.max_steps}",
                              f"Use steps={spec.default_steps} (the model's default) or another value in range.")
    return value


def check_guidance(value: float | None, spec: ModelSpec) -> float:
    if value is None:
        return spec.default_guidance
    if not math.isfinite(value):
        raise InvalidArgument("guidance_scale", value, "is not a finite number",
                              f"Use a number in {spec.min_guidance}..{spec.max_guidance}.")
    if not spec.min_guidance <= value <= spec.max_guidance:
        if spec.min_guidance == spec.max_guidance:
            problem = f"model {spec.alias!r} does not use guidance (accepted: only {spec.max_guidance})"
            fix = "Omit guidance_scale."
        else:
            problem = f"out of range; model {spec.alias!r} accepts {spec.min_guidance}..{spec.max_guidance}"
            fix = f"Use guidance_scale={spec.default_guidance} (the model's default) or another value in range."
        raise InvalidArgument("guidance_scale", value, problem, fix)
    return float(value)


def check_negative_prompt(value: str | None, guidance: float | None, spec: ModelSpec) -> str | None:
    """A negative prompt must be able to act: the model supports it and guidance is on (None: the engine's own
    guidance, which it knows)."""
    if value is None:
        return None
    if not spec.negative_prompt:
        raise InvalidArgument("negative_prompt", value, f"model {spec.alias!r} does not support negative prompts",
                              "Omit negative_prompt, or describe what you want in prompt instead.")
    if guidance is not None and guidance <= 1.0:
        raise InvalidArgument(
            "negative_prompt", value,
            f"has no effect at guidance_scale={guidance} (classifier-free guidance runs only above 1)",
            "Omit negative_prompt, or pass guidance_scale above 1.",
        )
    return value


def check_n(value: int, settings: Settings, spec: ModelSpec) -> int:
    if spec.max_n is not None and spec.max_n < settings.max_images and value > spec.max_n:
        raise InvalidArgument("n", value, f"model {spec.alias!r} makes at most {spec.max_n} image(s) per call",
                              f"Pass n={spec.max_n} and call again for more, or use another model.")
    if not 1 <= value <= settings.max_images:
        raise InvalidArgument("n", value, f"out of range; accepted: 1..{settings.max_images}",
                              "Ask for fewer images per call (or raise PIXELMCP_MAX_IMAGES).")
    return value


def check_size(width: int | None, height: int | None, default: tuple[int, int], spec: ModelSpec) -> tuple[int, int]:
    """Width and height for a model that makes only certain sizes (`spec.sizes`); each side alone otherwise."""
    if not spec.sizes:
        return check_side("width", width, default[0], spec), check_side("height", height, default[1], spec)
    if width is None and height is None:
        return nearest_size(default, spec)
    matches = [size for size in spec.sizes if width in (None, size[0]) and height in (None, size[1])]
    if len(matches) == 1:
        return matches[0]
    accepted = ", ".join(f"{w}x{h}" for w, h in spec.sizes)
    argument, value = ("width", width) if width is not None else ("height", height)
    if matches:
        raise InvalidArgument(argument, value, f"model {spec.alias!r} makes {len(matches)} sizes with it "
                              f"({', '.join(f'{w}x{h}' for w, h in matches)})", "Give both width and height.")
    shown = f"{width if width is not None else '?'}x{height if height is not None else '?'}"
    raise InvalidArgument(argument, value, f"{shown} is not a size model {spec.alias!r} makes; accepted: {accepted}",
                          "Pass one of those sizes as width and height (omit both for the default).")


def nearest_size(wanted: tuple[int, int], spec: ModelSpec) -> tuple[int, int]:
    """The listed size closest in aspect ratio to `wanted` (for defaults only, never for given values)."""
    ratio = wanted[0] / wanted[1]
    return min(spec.sizes, key=lambda size: abs(math.log(size[0] / size[1] / ratio)))


def check_supported(spec: ModelSpec, **given) -> None:
    """Refuse arguments the model does not take (remote providers: seed, steps, guidance), never drop them."""
    takes = {"seed": spec.takes_seed, "steps": spec.takes_steps, "guidance_scale": spec.takes_guidance}
    for argument, value in given.items():
        if value is not None and not takes[argument]:
            why = "its images cannot be reproduced from a seed" if argument == "seed" else "the provider sets it"
            raise InvalidArgument(argument, value, f"model {spec.alias!r} does not take {argument} ({why})",
                                  f"Omit {argument}, or use a local model (list_models) for control over it.")


def check_seed(value: int | None) -> int:
    """The given seed, or a fresh random one (reported back so the image can be reproduced)."""
    if value is None:
        return secrets.randbelow(MAX_SEED + 1)
    return value  # (0..MAX_SEED: a bound of the tools' schema, tools/arguments.py)


def size_following(image: Image.Image, width: int | None, height: int | None, spec: ModelSpec,
                   argument: str) -> tuple[int, int]:
    """Default output size that follows `image`: its aspect ratio, within the model's bounds.

    An explicit width and height must keep the image's aspect ratio (within 5%): an input image is
    never silently stretched. With one of them given, the other follows the ratio.
    """
    ratio = image.width / image.height
    if width is not None and height is not None:
        if abs(math.log((width / height) / ratio)) > math.log1p(ASPECT_TOLERANCE):
            raise InvalidArgument(
                "width", width, f"{width}x{height} would distort the {image.width}x{image.height} {argument} "
                f"(aspect ratios {width / height:.2f} vs {ratio:.2f})",
                f"Omit width and height to follow the {argument}, give only one of them, or crop the {argument} first.",
            )
        return width, height
    if width is not None:
        return width, _fit(width / ratio, spec)
    if height is not None:
        return _fit(height * ratio, spec), height
    scale = min(1.0, spec.max_side / max(image.width, image.height))
    scale = max(scale, spec.min_side / min(image.width, image.height))
    if max(image.width, image.height) * scale > spec.max_side + spec.multiple_of:
        raise InvalidArgument(
            argument, f"<{image.width}x{image.height} image>",
            f"its aspect ratio cannot fit model {spec.alias!r} ({spec.min_side}..{spec.max_side} px a side)",
            f"Crop the {argument} to a less extreme aspect ratio.",
        )
    return _fit(image.width * scale, spec), _fit(image.height * scale, spec)


def _fit(length: float, spec: ModelSpec) -> int:
    """The nearest multiple of the model's step inside its bounds (a default, not a user value)."""
    rounded = round(length / spec.multiple_of) * spec.multiple_of
    lowest = math.ceil(spec.min_side / spec.multiple_of) * spec.multiple_of
    highest = spec.max_side // spec.multiple_of * spec.multiple_of
    return min(max(rounded, lowest), highest)
