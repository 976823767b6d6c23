"""What every call works with: the settings, the image store, the model pool, the router and the jobs of calls
that outlived their budget.

The server's lifespan builds it (and tears it down); tools reach it through their context
(tools/context.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import anyio
from PIL import Image

from pixelmcp.config import Settings
from pixelmcp.engine.pool import ModelPool
from pixelmcp.media.images import InputLimits, load_image
from pixelmcp.media.store import ImageStore
from pixelmcp.router import Router
from pixelmcp.service.jobs import JobBoard


@dataclass
class AppState:
    settings: Settings
    store: ImageStore
    pool: ModelPool
    router: Router
    jobs: JobBoard
    _encoders: Any = field(default=None, repr=False)

    @property
    def encoders(self) -> anyio.CapacityLimiter:
        """The worker threads that may encode results (PNGs, previews) at once: encoding is CPU-bound, so more
        threads than cores would not finish sooner, and the thread count stays bounded under load."""
        if self._encoders is None:  # created on first use, inside the server's event loop
            self._encoders = anyio.CapacityLimiter(max(1, min(4, os.cpu_count() or 1)))
        return self._encoders

    @property
    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_bytes=self.settings.max_input_bytes,
            max_pixels=self.settings.max_input_pixels,
            read_roots=tuple(self.settings.read_roots()),
            allow_urls=self.settings.allow_urls,
            allow_private_urls=self.settings.allow_private_urls,
        )

    async def load_image(self, value: str, argument: str) -> Image.Image:
        """An image argument, resolved and decoded within the input limits (in a worker thread)."""
        limits = self.input_limits
        return await anyio.to_thread.run_sync(lambda: load_image(value, argument=argument, store=self.store,
                                                                 limits=limits))

