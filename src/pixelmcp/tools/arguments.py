"""The arguments tools share: their types, descriptions and fixed bounds (one name and one description per idea).

A bound that holds for every model and every server (a seed is 0..2**32-1, a scale 0..2) is part of the type:
the published schema states it, clients can show it, and the SDK refuses a value outside it before the tool
runs (server/validation.py words that refusal like every other check). Bounds that depend on the model or
the configuration (steps, sizes, guidance, images per call) are checked in service/checks.py, whose
messages give the whole range for the model (a lone "at least 1" in the schema would only pre-empt them).

Integer choices are bounds, not enums (`Literal[2, 4]`): google-genai's Schema takes only strings as enum
values, and one such tool would fail the conversion of every tool of the session."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from pixelmcp.service.checks import MAX_SEED
from pixelmcp.service.loras import LoraChoice
from pixelmcp.service.rewriting import RewriteChoice


def _finite(value: float | None, info: ValidationInfo) -> float | None:
    # JSON parsers (the SDK's included) accept NaN and Infinity literals, and strings like "nan" parse as
    # floats: every float argument is refused here, while the arguments are validated, before any check
    # compares it to a range (every comparison with NaN is false).
    if value is not None and not math.isfinite(value):
        raise PydanticCustomError(
            "finite_number", "Invalid {argument}={value}: not a finite number (NaN and infinities are refused). "
            "Pass an ordinary number.", {"argument": info.field_name, "value": repr(value)},
        )
    return value


#: The type of every float tool argument: NaN, Infinity and -Infinity are refused with the argument's name.
Number = Annotated[float, AfterValidator(_finite)]
OptionalNumber = Annotated[float | None, AfterValidator(_finite)]


def _finite_input(value: Any, info: ValidationInfo) -> Any:
    """Before a bound compares it: a non-finite number (or "NaN", "inf" as text) is refused as not finite."""
    if isinstance(value, str | float):
        try:
            number = float(value)
        except ValueError:
            return value  # not a number at all: pydantic says so
        _finite(number, info)
    return value


def number(low: float | None = None, high: float | None = None, *, above: float | None = None):
    """A float argument within fixed bounds: at least `low` (or more than `above`), at most `high`."""
    return Annotated[float, Field(ge=low, gt=above, le=high), BeforeValidator(_finite_input)]


def fixes(**by_argument: str):
    """A tool's own fix for an argument the schema refuses, where the generic "pass it within 2..8" misses the
    point (server/validation.py reads it)."""

    def mark(fn):
        fn.argument_fixes = by_argument
        return fn

    return mark


def integer(low: int | None = None, high: int | None = None):
    """An int argument within fixed bounds."""
    return Annotated[int, Field(ge=low, le=high)]


# Arguments every image tool shares. Descriptions are short: every tool's schema is sent on every turn; the README
# says the rest, and each check's error says what to change.
PromptArg = Annotated[str, Field(description="What the image should show.")]
NegativePromptArg = Annotated[str | None, Field(description="What to keep out.")]
ModelArg = Annotated[str | None, Field(description="An alias from list_models, or provider:model.")]
WidthArg = Annotated[int | None, Field(description="Pixels, a multiple of 8 (SD3/FLUX: 16).")]
HeightArg = Annotated[int | None, Field(description="Pixels, as width.")]
StepsArg = Annotated[int | None, Field(description="Denoising steps.")]
GuidanceArg = Annotated[OptionalNumber, Field(description="Prompt adherence (CFG).")]
SeedArg = Annotated[integer(0, MAX_SEED) | None, Field(description="Same seed and arguments: same image.")]
NArg = Annotated[int, Field(description="Images to make; image i has seed + i.")]
ImageArg = Annotated[str, Field(description="A pixelmcp:// uri, data: uri, base64, or allowed file path.")]
VerifyArg = Annotated[
    bool | Literal["auto", "caption"],
    Field(description="'caption'/true: the vision model describes each image; 'auto': when cheap."),
]
LorasArg = Annotated[
    list[LoraChoice] | None,
    Field(description="LoRAs: name from list_models (or a .safetensors path), weight (default: the LoRA's)."),
]
RewriteArg = Annotated[RewriteChoice, Field(description="Expand the prompt with an LLM first ('auto': if short).")]
