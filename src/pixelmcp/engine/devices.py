"""Device policy: which accelerator jobs run on, the dtype each model family runs in, out-of-memory errors."""

from __future__ import annotations

from pixelmcp.errors import ModelLoadError

#: Families that run in bf16 on GPUs that support it (UNets run in fp16).
BF16_KINDS = frozenset({"sd3", "flux", "chat-llm", "depth", "vlm"})


def pick_device(setting: str) -> str:
    """Resolve the `device` setting: `auto` prefers CUDA, then Apple MPS, then CPU."""
    import torch

    if setting == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        device = torch.device(setting)
    except RuntimeError as e:
        raise ModelLoadError(f"PIXELMCP_DEVICE={setting!r} is not a device ({e}); use auto, cuda, cuda:N, mps or cpu") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"PIXELMCP_DEVICE={setting!r} but torch sees no CUDA GPU; use auto or cpu, "
                             "or install a CUDA build of torch")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"PIXELMCP_DEVICE={setting!r} but MPS is not available here; use auto or cpu")
    return setting


def pick_devices(setting: str, devices: str | None) -> list[str]:
    """The devices the pool places models on: PIXELMCP_DEVICES as given (each checked), else with device=auto every
    CUDA GPU torch sees (`cuda:0`, `cuda:1`, ...), else the one `device` names."""
    if devices:
        chosen = [pick_device(name.strip()) for name in devices.split(",") if name.strip()]
        if len(set(chosen)) != len(chosen):
            raise ModelLoadError(f"PIXELMCP_DEVICES={devices!r} names a device twice; name each GPU once")
        return [device_key(name) for name in chosen]
    if setting == "auto":
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 1:
            return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return [pick_device(setting)]


def device_key(device: str) -> str:
    """A device as tensors name it: `cuda` is `cuda:0`; other types have no index."""
    kind, _, index = device.partition(":")
    return f"cuda:{index or 0}" if kind == "cuda" else kind


def dtype_for(setting: str, device: str, kind: str):
    """The `dtype` setting if not auto; else fp32 on CPU, fp16 on MPS, and on GPU bf16 for the transformer
    families and fp16 for UNets."""
    import torch

    if setting != "auto":
        return getattr(torch, setting)
    if device == "cpu":
        return torch.float32
    if device == "mps":
        return torch.float16
    if kind in BF16_KINDS and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def device_type(device: str) -> str:
    return device.split(":")[0]


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA / MPS / CPU allocator out-of-memory errors (torch raises several kinds)."""
    import torch

    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
