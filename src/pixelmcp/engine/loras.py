"""LoRAs on pooled diffusion models: loaded once per model as named adapters, switched between calls.

Just before a pipeline call, the call's LoRAs (backends.LoraUse) are made active on the model it runs:
each is loaded the first time that model meets it (diffusers' `load_lora_weights`, as a peft adapter named
by `LoraUse.key`), then every LoRA-capable module of the model (UNet or transformer, text encoders) is
switched to exactly these adapters at these weights, and every other adapter it holds is off. Switching
sets a few scales; nothing is reloaded or merged, so a LoRA at weight 0 gives the model's own pixels.

Isolation: jobs on one device run one at a time (engine/queue.py) and each device holds its own copy of
a model (engine/pool.py), so a call never runs with another call's adapters; the micro-batcher puts
only requests with the same LoRAs in one pipeline call (engine/batching.py).

Memory: adapters are parameters of the model they are loaded into, so the pool counts them in that
model's bytes (measured after every job). A model holds at most PIXELMCP_LORA_CACHE adapters; loading
one more first deletes the least recently used one the call does not use.

Dtypes: peft makes each adapter layer in the dtype and on the device of the layer it wraps, so a
half-precision model gets half-precision adapters and nothing is cast; the pool's dtype check after
every job holds it.

A dedicated inpainting UNet (a separate pooled model) gets the LoRA's UNet part loaded into it too
(`load_lora_adapter`); the text encoders are the base pipeline's.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pixelmcp.backends import LoraUse
from pixelmcp.engine import weights
from pixelmcp.errors import InvalidArgument, first_line

logger = logging.getLogger(__name__)

# peft warns on every adapter after a model's first ("Already found a `peft_config` attribute in the model. This
# will lead to having multiple adapters..."): several named adapters per model is the point here (diffusers' own
# multi-adapter API; huggingface/diffusers#6510 discusses the warning).
warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)


def _not_the_raised_failure(record: logging.LogRecord) -> bool:
    # diffusers logs a LoRA that does not load (every mismatched layer, a line each) and then raises it; the raise
    # becomes the tool's error here, naming the first mismatch, so that copy is left out of the log. Its warnings
    # (keys a LoRA has that the model lacks) stay.
    return "was unsuccessful with the following error" not in record.getMessage()


logging.getLogger("diffusers.loaders.peft").addFilter(_not_the_raised_failure)

#: Cross-attention input widths of the families' UNets at real size: SD 1.x's CLIP-L, SDXL's CLIP-L + bigG.
_CONTEXT_WIDTHS = {768: "sd15", 2048: "sdxl"}
_CROSS_ATTENTION = re.compile(r"attn2[._]to_k.*(lora_A|lora_down)[._]weight$")


def adapter_key(label: str, *identity: object) -> str:
    """A peft adapter name for a LoRA: readable, a valid module key (no dots), and different for a different file."""
    digest = hashlib.sha256("\0".join(map(str, identity)).encode()).hexdigest()[:12]
    readable = re.sub(r"\W+", "_", Path(label).stem)[:32].strip("_") or "lora"
    return f"{readable}_{digest}"


def guess_family(path: Path) -> str | None:
    """The image family a LoRA file was trained for, from its keys and shapes (its header only), or None when they
    do not say: SDXL's second text encoder or cross-attention width, SD 1.x's width, FLUX's single-stream blocks,
    SD3's joint blocks."""
    header = weights.safetensors_header(path)
    if header is None:
        return None
    keys = [key for key in header if key != "__metadata__"]
    if any("text_encoder_2" in key or key.startswith("lora_te2_") for key in keys):
        return "sdxl"
    if any("single_transformer_blocks" in key or "single_blocks" in key for key in keys):
        return "flux"
    if any("joint_blocks" in key or "context_block" in key for key in keys):
        return "sd3"
    for key in keys:
        if _CROSS_ATTENTION.search(key):
            shape = header[key].get("shape") if isinstance(header[key], dict) else None
            if shape and len(shape) == 2 and shape[1] in _CONTEXT_WIDTHS:
                return _CONTEXT_WIDTHS[shape[1]]
    return None


_MISMATCH = re.compile(r"size mismatch for (?P<name>\S+?): copying a param with shape torch\.Size\((?P<given>\[[^\]]*\])\) "
                       r"from checkpoint, the shape in current model is torch\.Size\((?P<wanted>\[[^\]]*\])\)")


def _misfit(error: BaseException) -> str:
    """Why a LoRA did not load, in one line: the first layer whose shape differs, else the library's first line."""
    found = _MISMATCH.search(str(error))
    if found is None:
        return first_line(error) or type(error).__name__
    layer = re.sub(r"\.lora_[AB]\.[^.]+\.weight$", "", found["name"])
    return (f"its layer {layer} has shape {found['given']} where the model's has {found['wanted']} (layer widths "
            "differ between model families)")


def adapters_of(value: Any) -> list[str]:
    """The adapters a loaded model holds (a pipeline's, a lone UNet's), for list_models."""
    found: dict[str, None] = {}
    for module in _modules(value, None).values():
        found.update(dict.fromkeys(getattr(module, "peft_config", None) or {}))
    return list(found)


def _modules(pipe: Any, unet: Any) -> dict[str, Any]:
    """The LoRA-capable modules a call runs: the denoiser (`unet` in place of the pipeline's when given) and the
    text encoders; a lone UNet is its own."""
    names = getattr(type(pipe), "_lora_loadable_modules", None)
    if names is None:  # a dedicated inpainting UNet, pooled alone
        return {"unet": pipe} if hasattr(pipe, "peft_config") or hasattr(pipe, "load_lora_adapter") else {}
    modules = {name: getattr(pipe, name, None) for name in names}
    if unet is not None:
        modules["unet"] = unet
    return {name: module for name, module in modules.items() if module is not None}


class LoraBank:
    """Which adapters each pooled model holds, in least-recently-used order; loads, switches and deletes them."""

    def __init__(self, capacity: int, stats: Any = None):
        self.capacity = capacity
        self.stats = stats  # the pool's counters: lora_loads, lora_evictions
        self._held: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> OrderedDict[key, None]
        self._lock = threading.Lock()

    def activate(self, pipe: Any, uses: tuple[LoraUse, ...], folders: dict[str, str], *, unet: Any = None,
                 model: str = "") -> None:
        """Before a pipeline call on `pipe` (with `unet`, a dedicated inpainting UNet, in place of its own): the LoRAs
        of `uses` loaded (from `folders[key]`) and active at their weights, every other adapter off. `model` names
        the model in errors."""
        wanted = {use.key for use in uses}
        for owner in (pipe, unet) if uses else ():
            if owner is None:
                continue
            for use in uses:
                self._ensure(owner, use, folders[use.key], wanted, pipe, model)
        self._switch(_modules(pipe, unet), uses)

    def holds_any(self, pipe: Any) -> bool:
        """`pipe` has adapters loaded (its denoiser is then not the module a compiled graph was made for)."""
        return self._holds(pipe)

    def _holds(self, owner: Any) -> bool:
        with self._lock:
            return bool(self._held.get(owner))

    def _ensure(self, owner: Any, use: LoraUse, folder: str, wanted: set[str], pipe: Any, model: str) -> None:
        with self._lock:
            held = self._held.setdefault(owner, OrderedDict())
            if use.key in held:
                held.move_to_end(use.key)
                return
            while len(held) >= self.capacity:
                victim = next((key for key in held if key not in wanted), None)
                if victim is None:
                    break  # (the call's own LoRAs never exceed the capacity: the settings check it)
                del held[victim]
                owner.delete_adapters(victim)
                if self.stats is not None:
                    self.stats.lora_evictions += 1
                logger.info("deleted LoRA adapter %s from %s (PIXELMCP_LORA_CACHE=%d)", victim, model, self.capacity)
        spec = use.spec
        try:
            if owner is pipe:
                pipe.load_lora_weights(folder, weight_name=spec.weight_name, adapter_name=use.key,
                                       local_files_only=True)
            else:  # a dedicated inpainting UNet: the LoRA's UNet part, converted as the base pipeline converts it
                state, alphas = type(pipe).lora_state_dict(folder, weight_name=spec.weight_name, local_files_only=True)
                owner.load_lora_adapter(state, prefix="unet", network_alphas=alphas, adapter_name=use.key)
        except (RuntimeError, ValueError, KeyError) as e:  # diffusers / peft: shapes or layers that do not fit
            raise InvalidArgument(
                "loras", spec.alias,
                f"does not fit model {model!r} ({type(pipe).__name__}): {_misfit(e)}",
                "Use a LoRA made for this model's family (list_models, task lora, shows each one's base), or "
                "another model.",
            ) from e
        with self._lock:
            self._held.setdefault(owner, OrderedDict())[use.key] = None
        if self.stats is not None:
            self.stats.lora_loads += 1
        logger.info("loaded LoRA %s into %s as adapter %s", spec.alias, model, use.key)

    @staticmethod
    def _switch(modules: dict[str, Any], uses: tuple[LoraUse, ...]) -> None:
        """Each module to exactly the adapters of `uses` it holds, at their weights; modules with none of them off."""
        from diffusers import ModelMixin
        from diffusers.loaders.lora_base import (
            disable_lora_for_text_encoder,
            enable_lora_for_text_encoder,
            set_adapters_for_text_encoder,
        )

        for module in modules.values():
            present = getattr(module, "peft_config", None) or {}
            if not present:
                continue
            active = [use for use in uses if use.key in present]
            model_mixin = isinstance(module, ModelMixin)
            if not active:
                module.disable_lora() if model_mixin else disable_lora_for_text_encoder(module)
                continue
            names, scales = [use.key for use in active], [use.weight for use in active]
            if model_mixin:
                module.enable_lora()
                module.set_adapters(names, scales)
            else:
                enable_lora_for_text_encoder(module)
                set_adapters_for_text_encoder(names, module, scales)
