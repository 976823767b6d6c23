"""The arguments tools share: their types and descriptions (one name and one description per idea). Their
checks are service/checks.py's."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo
from pydantic_core import PydanticCustomError

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

# Arguments every image tool shares. Descriptions are short: every tool's schema is sent on every turn; the README
# says the rest, and each check's error says what to change.
PromptArg = Annotated[str, Field(description="What the image should show.")]
NegativePromptArg = Annotated[str | None, Field(description="What to keep out.")]
ModelArg = Annotated[str | None, Field(description="An alias from list_models, or provider:model.")]
WidthArg = Annotated[int | None, Field(description="Pixels, a multiple of 8 (SD3/FLUX: 16).")]
HeightArg = Annotated[int | None, Field(description="Pixels, as width.")]
StepsArg = Annotated[int | None, Field(description="Denoising steps.")]
GuidanceArg = Annotated[OptionalNumber, Field(description="Prompt adherence (CFG).")]
SeedArg = Annotated[int | None, Field(description="0..4294967295; same seed and arguments: same image.")]
NArg = Annotated[int, Field(description="Images to make; image i has seed + i.")]
ImageArg = Annotated[str, Field(description="A pixelmcp:// uri, data: uri, base64, or allowed file path.")]
VerifyArg = Annotated[
    bool | Literal["auto", "caption"],
    Field(description="'caption'/true: the vision model describes each image; 'auto': when cheap."),
]
RewriteArg = Annotated[RewriteChoice, Field(description="Expand the prompt with an LLM first ('auto': if short).")]
