"""Memory accounting: bytes held by loaded models, per device, with shared storage counted once.

A loaded "model" may be a diffusers pipeline (components are modules), a transformers model,
or one of the engine's small bundles (dataclasses holding models and tensors). Everything is
walked down to its tensors, and each tensor storage is counted once however many objects share
it, so components shared by pipeline views never count twice.
"""

from __future__ import annotations

import dataclasses
import gc
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pixelmcp.engine import weights


def tensors_of(value: Any, _seen: set[int] | None = None) -> Iterator[Any]:
    """Every tensor reachable from `value` (modules, pipelines, bundles, dicts, lists)."""
    import torch

    seen = _seen if _seen is not None else set()
    if id(value) in seen or value is None or isinstance(value, (str, bytes, int, float, bool)):
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, torch.nn.Module):
        yield from value.parameters()
        yield from value.buffers()
    elif hasattr(value, "components") and isinstance(getattr(value, "components", None), dict):
        for component in value.components.values():  # a diffusers pipeline
            yield from tensors_of(component, seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from tensors_of(getattr(value, item.name), seen)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_of(item, seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_of(item, seen)


def parts_of(value: Any) -> dict[str, Any]:
    """The named parts of a loaded model: a pipeline's components, a bundle's fields, or the model itself ("")."""
    if hasattr(value, "components") and isinstance(getattr(value, "components", None), dict):
        return dict(value.components)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: getattr(value, item.name) for item in dataclasses.fields(value)}
    return {"": value}


@dataclasses.dataclass(frozen=True)
class Census:
    """A loaded model's dtypes, in one walk over its tensors: bytes by dtype (each storage once), and each part's
    floating-point dtypes, e.g. {"unet": ("bfloat16",), "text_encoder_2": ("float16", "float32")} for T5 with
    its float32 `wo` layers (parts without any are left out). Bytes by device are `bytes_by_device`'s."""

    by_dtype: dict[str, int]
    layout: dict[str, tuple[str, ...]]


def census(value: Any) -> Census:
    """Count `value`'s tensors once, part by part (see Census)."""
    counted: set[tuple[str, int]] = set()
    by_dtype: dict[str, int] = {}
    layout: dict[str, tuple[str, ...]] = {}
    for name, part in parts_of(value).items():
        found = set()
        for tensor, new in storages(part, counted):
            dtype = str(tensor.dtype).removeprefix("torch.")
            if tensor.is_floating_point():
                found.add(dtype)
            if new:
                by_dtype[dtype] = by_dtype.get(dtype, 0) + tensor.untyped_storage().nbytes()
        if found:
            layout[name] = tuple(sorted(found))
    return Census(by_dtype, layout)


def restore_dtypes(value: Any, layout: dict[str, tuple[str, ...]], now: dict[str, tuple[str, ...]]) -> list[str]:
    """Cast back the parts of `value` that were of one dtype in `layout` and are not `now`; returns their names.
    Parts that held a mix of dtypes cannot be put back this way and are left as they are."""
    import torch

    restored = []
    for name, part in parts_of(value).items():
        wanted = layout.get(name)
        if wanted is None or now.get(name) == wanted or len(wanted) != 1 or not isinstance(part, torch.nn.Module):
            continue
        part.to(dtype=getattr(torch, wanted[0]))
        restored.append(name or "the model")
    return restored


def storage_key(tensor: Any) -> tuple[str, int]:
    return (str(tensor.device), tensor.untyped_storage().data_ptr())


def storages(value: Any, counted: set[tuple[str, int]]) -> Iterator[tuple[Any, bool]]:
    """Each tensor of `value`, and whether its storage is new to `counted` (which it then joins); a meta tensor's
    never is: it holds nothing."""
    for tensor in tensors_of(value):
        key = storage_key(tensor)
        new = key not in counted and tensor.device.type != "meta"
        if new:
            counted.add(key)
        yield tensor, new


def bytes_by_device(value: Any, counted: set[tuple[str, int]] | None = None) -> dict[str, int]:
    """Bytes of the distinct tensor storages of `value`, by device ("cuda:0", "cuda:1", "cpu", "mps").

    Storages already in `counted` are skipped and new ones are added to it, so several values
    can be measured without counting what they share twice.
    """
    totals: dict[str, int] = {}
    for tensor, new in storages(value, counted if counted is not None else set()):
        if new:
            where = f"cuda:{tensor.device.index or 0}" if tensor.device.type == "cuda" else tensor.device.type
            totals[where] = totals.get(where, 0) + tensor.untyped_storage().nbytes()
    return totals


def move(value: Any, device: str) -> None:
    """Move a loaded model (pipeline, module or bundle) to `device`, in place."""
    import torch

    if isinstance(value, torch.nn.Module) or hasattr(value, "components"):
        value.to(device)
    elif dataclasses.is_dataclass(value):
        for item in dataclasses.fields(value):
            member = getattr(value, item.name)
            if isinstance(member, torch.nn.Module) or hasattr(member, "components"):
                member.to(device)


def release(device: str) -> None:
    """Give freed memory back: collect garbage, and return cached blocks to the driver."""
    gc.collect()
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()


def estimate_bytes(source: str, dtype_bytes: int, *, preferred_variant: str | None = None,
                   paths: tuple[str, ...] | None = None) -> int | None:
    """Bytes a model will take once loaded in a `dtype_bytes` dtype, from the weight files its loader
    will read (engine/weights.py). None when the weights are not on disk yet (a hub id not downloaded)."""
    folder = Path(source)
    if not folder.is_dir():
        folder = _hub_snapshot(source)
        if folder is None:
            return None
    found = weights.folder_plan(folder, preferred_variant=preferred_variant, paths=paths)
    if not found.weights:
        return None
    return sum(_loaded_bytes(folder / name, dtype_bytes) for name in found.weights)


_SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
                      "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _loaded_bytes(path: Path, dtype_bytes: int) -> int:
    """Bytes the tensors of one weight file take in memory, floats cast to a `dtype_bytes` dtype.

    Safetensors headers give every tensor's dtype and shape (read without the data). Other files
    are sized by their length: half precision when the name says so (fp16, bf16), else fp32.
    """
    if path.suffix == ".safetensors":
        header = weights.safetensors_header(path)
        if header is not None:
            total = 0
            for name, info in header.items():
                if name == "__metadata__" or not isinstance(info, dict):
                    continue
                count = math.prod(info.get("shape", ()))
                stored = _SAFETENSORS_BYTES.get(info.get("dtype"), 4)
                total += count * (dtype_bytes if str(info.get("dtype", "")).startswith(("F", "BF")) else stored)
            return total
    stored_bytes = 2 if weights.variant_of(path.name) in ("fp16", "bf16") else 4
    return int(path.stat().st_size * dtype_bytes / stored_bytes)


def _hub_snapshot(repo_id: str) -> Path | None:
    from pixelmcp.engine.hub import cached_snapshot

    return cached_snapshot(repo_id)


def device_capacity(device: str) -> int:
    """Bytes the device has in total (RAM for the CPU; half of unified memory for MPS)."""
    import psutil

    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_properties(torch.device(device)).total_memory
    if device == "mps":
        return psutil.virtual_memory().total // 2
    return psutil.virtual_memory().total


def device_available(device: str) -> int:
    """Bytes free right now: the driver's free memory plus what torch caches but does not use."""
    import psutil

    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        index = torch.device(device).index or 0
        return free + torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    return psutil.virtual_memory().available
