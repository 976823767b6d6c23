"""Which files of a model its loader reads, from a folder, a hub snapshot or a hub listing.

Hub repositories hold much more than a loader reads: fp32 and fp16 twins, `.bin` next to
`.safetensors`, non-EMA copies, ONNX / OpenVINO / Flax / TensorFlow exports, root single-file
checkpoints, and (IP-Adapter) adapters for other base models. One selection serves every use, so
they cannot disagree: the memory check before a load, `pixelmcp pull`, and the first load of a
hub model, which downloads exactly the pulled set and loads it from the local snapshot.

The rules, per model folder ("component": each folder named in a diffusers model_index.json, or
the top level of a transformers / single diffusers model):
1. weights are the files from_pretrained reads directly in the folder (`model*.safetensors`,
   `pytorch_model*.bin`, `diffusion_pytorch_model*`), never non-EMA copies, LoRAs or exports;
2. the variant's files (e.g. `*.fp16.safetensors`) when a variant is asked for and present,
   otherwise the plain ones;
3. safetensors over a `.bin` twin.
Everything else a loader may read (configs, tokenizers, processors, chat templates) is fetched
too, while other heavy files (exports, checkpoints, archives, large sample media) are not.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
#: The weight file names from_pretrained reads (diffusers models; transformers models), and their shards.
_WEIGHT_NAMES = ("diffusion_pytorch_model", "model", "pytorch_model")
#: Files no PyTorch loader of pixelmcp reads, however small: exports for other runtimes and archives.
_NEVER = (".ckpt", ".onnx", ".onnx_data", ".msgpack", ".h5", ".pb", ".tflite", ".gguf", ".mlmodel", ".pkl",
          ".npz", ".zip", ".tar", ".gz", ".mp4")
#: Pipeline components pixelmcp never loads (the SD 1.5 safety checker is passed as None).
SKIPPED_COMPONENTS = frozenset({"safety_checker"})
#: Sample images, documents and videos above this size are not fetched (a loader never reads them). Every
#: other non-weight file is: tokenizers can be large (some tokenizer.json files pass 30 MB).
MEDIA_LIMIT_BYTES = 20 * 2**20
_MEDIA = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".pdf", ".mov", ".avi", ".mkv")


@dataclass(frozen=True)
class Plan:
    """What one model source needs on disk: its weight files, and every file to fetch (weights included)."""

    weights: tuple[str, ...]
    files: tuple[str, ...]
    variant: str | None


def wanted_variant(variant: str | None, dtype_bytes: int) -> str | None:
    """The variant a catalog entry prefers (e.g. fp16), when the model runs in half precision; else None."""
    return variant if dtype_bytes == 2 else None


def variant_of(name: str) -> str | None:
    """"fp16" for diffusion_pytorch_model.fp16.safetensors (and its shards), None for plain names."""
    base = posixpath.basename(name)
    suffix = posixpath.splitext(base)[1]
    stem = base[: -len(suffix)] if suffix else base
    if "." not in stem:
        return None
    return stem.rsplit(".", 1)[1].split("-", 1)[0]


def is_weight(name: str) -> bool:
    """A file from_pretrained reads as weights: model.safetensors, pytorch_model-00001-of-00002.bin,
    diffusion_pytorch_model.fp16.safetensors, ...; not LoRAs, exports or non-EMA copies that share a folder."""
    base = posixpath.basename(name)
    stem = base.split(".", 1)[0].split("-", 1)[0]
    return base.endswith(WEIGHT_SUFFIXES) and stem in _WEIGHT_NAMES and "non_ema" not in base


def plan(names: dict[str, int | None], *, model_index: dict | None = None, preferred_variant: str | None = None,
         paths: tuple[str, ...] | None = None) -> Plan:
    """The files a loader reads among `names` (repo-relative "/" paths, with sizes when known).

    `preferred_variant` is used for every component that has it (a component without it loads its
    plain weights). `paths` narrows the source to these files and folders.
    """
    folders = _folders(names, model_index, paths)
    variant = preferred_variant if preferred_variant and any(
        variant_of(n) == preferred_variant for n in names if is_weight(n) and posixpath.dirname(n) in folders) else None
    weights = [n for folder in folders for n in _component_weights(names, folder, variant)]
    if paths is not None:
        weights += [n for n in paths if n in names]
    inside = (lambda n: any(n == p or n.startswith(p.rstrip("/") + "/") for p in paths)) if paths else (lambda n: True)
    others = [n for n, size in names.items()
              if inside(n) and not n.endswith(WEIGHT_SUFFIXES) and not n.endswith(_NEVER) and not n.startswith(".")
              and "/onnx/" not in f"/{n}" and not (n.lower().endswith(_MEDIA) and (size or 0) > MEDIA_LIMIT_BYTES)]
    return Plan(tuple(sorted(set(weights))), tuple(sorted(set(weights) | set(others))), variant)


def _folders(names: Iterable[str], model_index: dict | None, paths: tuple[str, ...] | None) -> list[str]:
    """The component folders whose weights load ("" is the top level)."""
    if paths is not None:
        return [p.rstrip("/") for p in paths if any(posixpath.dirname(n) == p.rstrip("/") for n in names)]
    if model_index is None:
        return [""]
    return [name for name, entry in model_index.items()
            if not name.startswith("_") and name not in SKIPPED_COMPONENTS and isinstance(entry, list)
            and entry and entry[0] is not None]


def _component_weights(names: Iterable[str], folder: str, variant: str | None) -> list[str]:
    candidates = [n for n in names if posixpath.dirname(n) == folder and is_weight(n)]
    wanted = [n for n in candidates if variant and variant_of(n) == variant]
    if not wanted:
        wanted = [n for n in candidates if variant_of(n) is None] or candidates
    safetensors = [n for n in wanted if n.endswith(".safetensors")]
    return safetensors or wanted


# --------------------------------------------------------------------------- on disk


def folder_listing(folder: Path) -> dict[str, int | None]:
    """Every file below `folder` (symlinks into a hub cache followed), repo-relative, with its size."""
    listing: dict[str, int | None] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            listing[path.relative_to(folder).as_posix()] = path.stat().st_size
    return listing


def read_model_index(folder: Path) -> dict | None:
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return None
    return index if isinstance(index, dict) else None


def folder_plan(folder: Path, *, preferred_variant: str | None = None, paths: tuple[str, ...] | None = None) -> Plan:
    """`plan` for a model folder on disk."""
    return plan(folder_listing(folder), model_index=read_model_index(folder), preferred_variant=preferred_variant,
                paths=paths)


def safetensors_header(path: Path) -> dict | None:
    """The JSON header of a .safetensors file, or None when it is not a readable one."""
    try:
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if not 0 < length <= 100 * 2**20:
                return None
            header = json.loads(f.read(length))
    except (OSError, ValueError):
        return None
    return header if isinstance(header, dict) else None
