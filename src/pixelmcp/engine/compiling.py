"""`torch.compile` of the denoiser without making anyone wait for it (PIXELMCP_COMPILE=true).

Compiling a real-size SDXL UNet takes minutes (over 150 s on a 16-core host), and each new input
shape compiles again. So nothing waits: the first call at a shape runs the plain denoiser at once
and asks for that shape to be compiled in a background thread, which traces and warms the compiled
denoiser with a short latent-only run over a private view (the shared pipeline is only read). Calls
at a shape that is warm run compiled from then on; the others keep running plain.

The compiled module wraps the very same weights (no copy, no cast). torch's Inductor caches what it
compiled on disk (TORCHINDUCTOR_CACHE_DIR, set under pixelmcp's cache folder unless given), so after
a restart the same shapes warm much faster.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def shape_of(call: Any) -> tuple:
    """What a compiled graph is specialised on: the latent size, the batch, whether guidance doubles it."""
    return (call.width, call.height, len(call.seeds), call.guidance_scale > 1.0)


@dataclass
class _Compiled:
    module: Any  # the compiled denoiser (torch.compile's wrapper over the pipeline's own)
    warm: set = field(default_factory=set)  # shapes traced and run once
    pending: set = field(default_factory=set)  # shapes being compiled now
    failed: bool = False


class BackgroundCompiler:
    """Compiled denoisers per loaded pipeline, compiled and warmed in a background thread, shape by shape."""

    def __init__(self, backend: str, cache_dir: Path):
        self.backend = backend
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._by_pipe: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.compiled_calls = 0  # calls that ran a compiled denoiser (list_models and tests read it)
        self.threads: list[threading.Thread] = []

    def denoiser_for(self, pipe: Any, call: Any, alias: str) -> Any | None:
        """The compiled denoiser when `call`'s shape is warm; else None (run the plain one) after asking for
        that shape to be compiled, unless compiling failed for this model before."""
        shape = shape_of(call)
        with self._lock:
            entry = self._by_pipe.get(pipe)
            if entry is None:
                entry = self._by_pipe[pipe] = _Compiled(self._compile(pipe))
            if entry.failed:
                return None
            if shape in entry.warm:
                self.compiled_calls += 1
                return entry.module
            if not entry.pending:  # one shape at a time
                entry.pending.add(shape)
                thread = threading.Thread(target=self._warm, args=(pipe, entry, call, shape, alias), daemon=True,
                                          name=f"compile {alias}")
                self.threads.append(thread)
                thread.start()
        return None

    def _compile(self, pipe: Any) -> Any:
        import torch

        from pixelmcp.engine.diffusion import denoiser_name

        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(self.cache_dir / "inductor"))
        return torch.compile(getattr(pipe, denoiser_name(pipe)), backend=self.backend)

    def _warm(self, pipe: Any, entry: _Compiled, call: Any, shape: tuple, alias: str) -> None:
        """In a background thread: trace, compile and run the compiled denoiser once at `shape`."""
        import torch

        from pixelmcp.engine.diffusion import denoiser_name, view

        started = time.perf_counter()
        logger.info("compiling the denoiser of %s for %dx%d, %d image(s), in the background", alias, *shape[:3])
        try:
            scheduler = pipe.scheduler.from_config(pipe.scheduler.config)
            run = view(type(pipe), pipe, scheduler=scheduler, **{denoiser_name(pipe): entry.module})
            prompt = call.prompt if isinstance(call.prompt, str) else list(call.prompt)
            with torch.inference_mode():  # latents only: the VAE (and SDXL's upcast of it) is never touched
                run(prompt=prompt, num_images_per_prompt=1 if not isinstance(call.prompt, str) else len(call.seeds),
                    width=call.width, height=call.height, num_inference_steps=2, guidance_scale=call.guidance_scale,
                    output_type="latent")
        except Exception:  # a background thread's boundary: the plain denoiser keeps serving
            logger.exception("compiling the denoiser of %s failed; it keeps running uncompiled", alias)
            with self._lock:
                entry.failed = True
                entry.pending.discard(shape)
            return
        with self._lock:
            entry.warm.add(shape)
            entry.pending.discard(shape)
        logger.info("compiled the denoiser of %s for %dx%d, %d image(s) in %.1f s; such calls now run compiled",
                    alias, *shape[:3], time.perf_counter() - started)

    def report(self) -> dict[str, Any]:
        """For list_models: the backend, the shapes compiled and being compiled per model, and the compiled calls."""
        with self._lock:
            entries = list(self._by_pipe.values())
            return {"backend": self.backend, "compiled_calls": self.compiled_calls,
                    "warm": sorted(list(shape) for entry in entries for shape in entry.warm),
                    "compiling": sorted(list(shape) for entry in entries for shape in entry.pending),
                    "failed": sum(entry.failed for entry in entries)}

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the compilations under way (tests, shutdown)."""
        for thread in list(self.threads):
            thread.join(timeout)
