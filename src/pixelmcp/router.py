"""Router: picks the backend and catalog entry for a tool call from its `model` argument."""

from __future__ import annotations

import anyio

from pixelmcp.backends import ImageClassifier, ImageGenerator, PromptRewriter, VisionAnswerer
from pixelmcp.config import AUTO_GENERATORS, ModelSpec, Settings
from pixelmcp.engine.local import LocalImageGenerator, LocalRewriter
from pixelmcp.engine.local_vision import LocalAnswerer, LocalClassifier
from pixelmcp.engine.pool import ModelPool
from pixelmcp.errors import InvalidArgument

_TINY_DEFAULTS = {"generate": "tiny-sd15", "rewrite": "tiny-llm", "preprocess": "tiny-depth",
                  "classify": "tiny-clip", "answer": "tiny-qwen2-vl"}
_DEFAULTS = {"rewrite": "qwen2.5-1.5b-instruct", "preprocess": "depth-anything-v2-small",
             "classify": "clip-vit-large", "answer": "qwen2.5-vl-3b"}


class Router:
    """Maps `model` arguments to (catalog entry, backend)."""

    def __init__(self, settings: Settings, pool: ModelPool):
        self.settings = settings
        self.pool = pool
        self._local_generator = LocalImageGenerator(pool)
        self._local_classifier = LocalClassifier(pool)
        self._local_answerer = LocalAnswerer(pool)
        self._rewriters: dict[str, LocalRewriter] = {}
        self._auto_generator: str | None = None

    def _spec(self, model: str, task: str, argument: str = "model") -> ModelSpec:
        catalog = self.settings.catalog
        spec = catalog.get(model)
        if spec is None:
            choices = ", ".join(sorted(a for a, s in catalog.items() if s.task == task))
            raise InvalidArgument(
                argument, model, f"not a {task} model in the {self.settings.profile} profile's catalog",
                f"Use one of: {choices} (or add it under [models.{model}] in the config file).",
            )
        if spec.task != task:
            choices = ", ".join(sorted(a for a, s in catalog.items() if s.task == task))
            raise InvalidArgument(argument, model, f"is a {spec.task} model, not a {task} model", f"Use one of: {choices}.")
        return spec

    async def default_generator_alias(self) -> str:
        """The configured default, or (default profile) the best model for this accelerator's memory."""
        if self.settings.generate_model:
            return self.settings.generate_model
        if self.settings.profile == "tiny":
            return _TINY_DEFAULTS["generate"]
        if self._auto_generator is None:
            memory = await anyio.to_thread.run_sync(self.pool.accelerator_memory_gb)
            self._auto_generator = next(alias for floor, alias in AUTO_GENERATORS if memory >= floor)
        return self._auto_generator

    async def generator(self, model: str | None) -> tuple[ModelSpec, ImageGenerator]:
        alias = model if model is not None else await self.default_generator_alias()
        return self._spec(alias, "generate"), self._local_generator

    def rewriter(self, model: str | None = None) -> PromptRewriter | None:
        """The rewriter to use, or None when rewriting is switched off (`PIXELMCP_REWRITER=none`)."""
        if model is None and self.settings.rewriter == "none":
            return None
        spec = self._spec(model or self.settings.rewrite_model or self._default("rewrite"), "rewrite")
        if spec.alias not in self._rewriters:
            self._rewriters[spec.alias] = LocalRewriter(self.pool, spec, self.settings.rewrite_max_new_tokens)
        return self._rewriters[spec.alias]

    def _default(self, task: str) -> str:
        return (_TINY_DEFAULTS if self.settings.profile == "tiny" else _DEFAULTS)[task]

    def controlnet(self, base: ModelSpec, control_type: str) -> ModelSpec:
        """The ControlNet for `control_type` on `base`, as a loadable entry; a clear error if none."""
        source = base.controlnets.get(control_type)
        if source is None:
            others = sorted(a for a, s in self.settings.catalog.items() if control_type in s.controlnets)
            has = ", ".join(sorted(base.controlnets)) or "none"
            fix = (f"Use one of its types ({has})" if base.controlnets else "Use another model")
            fix += f", or a model with a {control_type} ControlNet: {', '.join(others)}." if others else "."
            raise InvalidArgument("control_type", control_type,
                                  f"model {base.alias!r} has no ControlNet for this type", fix)
        return ModelSpec(alias=f"{base.alias}+controlnet-{control_type}", kind=base.kind, source=source)

    def ip_adapter(self, base: ModelSpec) -> ModelSpec:
        """The IP-Adapter of `base`, as a loadable entry; a clear error if it has none."""
        if base.ip_adapter is None:
            others = sorted(a for a, s in self.settings.catalog.items() if s.ip_adapter is not None)
            raise InvalidArgument("model", base.alias, "has no IP-Adapter in the catalog",
                                  f"Use one of: {', '.join(others) or 'none configured'}.")
        return ModelSpec(alias=f"{base.alias}+ip-adapter", kind=base.kind, source=base.ip_adapter.source)

    def depth_estimator(self) -> ModelSpec:
        return self._spec(self.settings.depth_model or self._default("preprocess"), "preprocess", "depth_model")

    def classifier(self, model: str | None) -> tuple[ModelSpec, ImageClassifier]:
        """CLIP / SigLIP for zero-shot labels and image similarity."""
        spec = self._spec(model or self.settings.classify_model or self._default("classify"), "classify")
        return spec, self._local_classifier

    def answerer(self, model: str | None) -> tuple[ModelSpec, VisionAnswerer]:
        """The vision-language model that answers questions about images."""
        spec = self._spec(model or self.settings.vision_model or self._default("answer"), "answer")
        return spec, self._local_answerer
