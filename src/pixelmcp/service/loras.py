"""The `loras` argument of the local diffusion tools: each name resolved to a LoRA before any work.

A name is a catalog alias of kind lora (`[models.NAME]` with kind = "lora" adds one), the file name
(without .safetensors) of a LoRA in a PIXELMCP_LORA_DIRS folder, or the path of a .safetensors file
inside those folders or the ones image paths may be read from. A LoRA trained for another family than
the model's is refused here, naming both; a file whose family its header does not tell is checked when
it loads (engine/loras.py), with the same kind of message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from pixelmcp.backends import LoraUse
from pixelmcp.catalog import IMAGE_KINDS, ModelSpec
from pixelmcp.config import Settings
from pixelmcp.engine.loras import adapter_key, guess_family
from pixelmcp.errors import InvalidArgument

#: LoRAs one call may stack.
MAX_LORAS = 4
#: A LoRA's weight: its contribution's scale (negative: the opposite direction, as slider LoRAs use).
MIN_WEIGHT, MAX_WEIGHT = -4, 4
FAMILY_NAMES = {"sd15": "SD 1.5", "sdxl": "SDXL", "sd3": "SD3", "flux": "FLUX"}
_SUFFIX = ".safetensors"


class LoraChoice(BaseModel):
    # No docstring or field descriptions: the argument's description says it once (tools/arguments.py), where these
    # would be sent again with six tools on every turn of a conversation.
    name: str  # a catalog alias of kind lora, a PIXELMCP_LORA_DIRS file's name, or a .safetensors path
    weight: float | None = Field(None, ge=MIN_WEIGHT, le=MAX_WEIGHT, allow_inf_nan=False)  # None: the LoRA's own


def resolve_loras(settings: Settings, spec: ModelSpec, choices: list[LoraChoice] | None) -> tuple[LoraUse, ...]:
    """The LoRAs of a call on model `spec`, checked (see the module's docstring)."""
    if not choices:
        return ()
    if spec.remote or spec.kind not in IMAGE_KINDS:
        raise InvalidArgument("loras", [c.name for c in choices],
                              f"model {spec.alias!r} is served by {spec.provider}, and LoRAs run on local diffusion "
                              "models only", "Omit loras, or use a local model (list_models, task generate).")
    if len(choices) > MAX_LORAS:
        raise InvalidArgument("loras", [c.name for c in choices], f"stacks {len(choices)} LoRAs, over the limit of "
                              f"{MAX_LORAS} per call", f"Pass at most {MAX_LORAS}.")
    uses: list[LoraUse] = []
    for choice in choices:
        lora = find_lora(settings, choice.name)
        _check_family(settings, lora, spec, choice.name)
        if any(use.spec.alias == lora.alias for use in uses):
            raise InvalidArgument("loras", choice.name, "is given twice",
                                  "Give each LoRA once, with the weight you want.")
        weight = choice.weight if choice.weight is not None else lora.default_weight
        uses.append(LoraUse(spec=lora, weight=float(weight), key=_key(lora)))
    return tuple(uses)


def find_lora(settings: Settings, name: str) -> ModelSpec:
    """The LoRA `name` stands for: a catalog alias, a file of PIXELMCP_LORA_DIRS, or an allowed .safetensors path."""
    stripped = name.strip()
    entry = settings.catalog.get(stripped)
    if entry is not None:
        if entry.kind != "lora":
            raise InvalidArgument("loras", name, f"is the {entry.kind} model {entry.alias!r}, not a LoRA",
                                  f"Use one of {_known(settings)} (list_models, task lora).")
        return entry
    for folder in settings.lora_dirs:
        candidate = Path(folder).expanduser() / f"{stripped}{_SUFFIX}"
        if candidate.is_file() and "/" not in stripped and "\\" not in stripped:
            return file_lora(candidate, stripped)
    if not stripped.lower().endswith(_SUFFIX):
        raise InvalidArgument("loras", name, "is not a LoRA this server knows",
                              f"Use one of {_known(settings)} (list_models, task lora), or the path of a "
                              f"{_SUFFIX} LoRA file.")
    try:
        path = Path(stripped).expanduser().resolve(strict=True)
    except (OSError, RuntimeError):
        raise InvalidArgument("loras", name, "no such file", "Check the path of the LoRA file.") from None
    roots = [Path(folder).expanduser().resolve() for folder in settings.lora_dirs] + settings.read_roots()
    if not any(path.is_relative_to(root) for root in roots):
        raise InvalidArgument("loras", name, "is outside the folders this server may read",
                              "Put it in a PIXELMCP_LORA_DIRS folder (then its name alone will do), or add its "
                              "folder to PIXELMCP_LORA_DIRS.")
    if not path.is_file():
        raise InvalidArgument("loras", name, "is not a file", f"Pass the path of a {_SUFFIX} LoRA file.")
    return file_lora(path, str(path))


def file_lora(path: Path, alias: str) -> ModelSpec:
    """An entry for a LoRA file: its folder and name, and the family its header tells (None: checked on load)."""
    return ModelSpec(alias=alias, kind="lora", source=str(path.parent), weight_name=path.name,
                     base=guess_family(path), description=f"LoRA file {path}")


def folder_loras(settings: Settings) -> list[ModelSpec]:
    """The LoRA files of the PIXELMCP_LORA_DIRS folders, by file name (for list_models)."""
    found: dict[str, ModelSpec] = {}
    for folder in settings.lora_dirs:
        directory = Path(folder).expanduser()
        if directory.is_dir():
            for path in sorted(directory.glob(f"*{_SUFFIX}")):
                found.setdefault(path.stem, file_lora(path, path.stem))
    return list(found.values())


def _check_family(settings: Settings, lora: ModelSpec, spec: ModelSpec, name: str) -> None:
    if lora.base is None or lora.base == spec.kind:
        return
    suited = [s.alias for s in settings.catalog.values() if s.kind == lora.base][:3]
    others = [s.alias for s in settings.catalog.values() if s.kind == "lora" and s.base == spec.kind][:3]
    fix = f"Use it with a {FAMILY_NAMES[lora.base]} model" + (f" ({', '.join(suited)})" if suited else "")
    fix += f", or a LoRA made for {FAMILY_NAMES[spec.kind]}" + (f" ({', '.join(others)})" if others else "") + "."
    raise InvalidArgument("loras", name, f"was trained for {FAMILY_NAMES[lora.base]} ({lora.base}), and model "
                          f"{spec.alias!r} is {FAMILY_NAMES[spec.kind]} ({spec.kind})", fix)


def _key(lora: ModelSpec) -> str:
    """The adapter name: the same catalog entry, or the same file as it is now (size, mtime), gives the same one."""
    if Path(lora.source).is_dir():
        path = Path(lora.source) / (lora.weight_name or "")
        if path.is_file():
            stat = path.stat()
            return adapter_key(lora.alias, path, stat.st_size, stat.st_mtime_ns)
    return adapter_key(lora.alias, lora.source, lora.weight_name)


def _known(settings: Settings) -> str:
    names = [s.alias for s in settings.catalog.values() if s.kind == "lora"] + [s.alias for s in folder_loras(settings)]
    return ", ".join(names) if names else "none configured"
