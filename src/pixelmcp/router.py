"""Router: picks the backend and catalog entry for a tool call from its `model` argument.

A catalog alias (`sdxl`, `qwen2.5-vl-3b`) runs on the local pool; `provider:model`
(`openai:gpt-image-1`, `gemini:gemini-2.5-flash`, `openai-compatible:qwen2.5-vl-7b`, or
`NAME:model` for an endpoint in the config) goes to that provider, with the same result shapes.
"""

from __future__ import annotations

import anyio

from pixelmcp.backends import (
    CachedRewriter,
    ImageClassifier,
    ImageGenerator,
    ObjectCounter,
    PromptRewriter,
    Segmenter,
    VisionAnswerer,
)
from pixelmcp.catalog import AUTO_GENERATORS, DEFAULT_MODELS, ModelSpec
from pixelmcp.config import Settings
from pixelmcp.engine.local import (
    LocalAnswerer,
    LocalClassifier,
    LocalDetector,
    LocalImageGenerator,
    LocalRewriter,
    LocalSegmenter,
)
from pixelmcp.engine.pool import ModelPool
from pixelmcp.errors import InvalidArgument, PixelError
from pixelmcp.providers import anthropic, gemini, openai
from pixelmcp.providers.common import RemoteRewriter
from pixelmcp.providers.sampling import SamplingRewriter
from pixelmcp.registry import ProviderRow, provider_rows, split_model

#: What each task is, in the words of error messages.
_TASK_NAMES = {"generate": "image generation", "rewrite": "prompt rewriting", "preprocess": "control maps",
               "classify": "classification", "answer": "questions about images",
               "segment": "masks from words"}

#: The client for each API a provider speaks (`ProviderRow.client`): made as CLIENT(row, settings), with
#: CLIENT.image_spec(row, model) naming the image models it makes.
CLIENTS = {"openai": openai.OpenAIProvider, "gemini": gemini.GeminiProvider,
           "anthropic": anthropic.AnthropicProvider}
Provider = openai.OpenAIProvider | gemini.GeminiProvider | anthropic.AnthropicProvider


#: Longest reply of the model that lists an answer's claims (a JSON list of up to eight short claims).
CLAIM_TOKENS = 320

#: control_type -> (the setting naming the model that makes its maps, the kind of model it must be).
MAP_MAKERS: dict[str, tuple[str, str]] = {"depth": ("depth_model", "depth"),
                                          "segmentation": ("segmentation_model", "semantic"),
                                          "pose": ("pose_model", "pose")}


class Router:
    """Maps `model` arguments to (catalog entry, backend)."""

    def __init__(self, settings: Settings, pool: ModelPool):
        self.settings = settings
        self.pool = pool
        self._local_generator = LocalImageGenerator(pool)
        self._local_classifier = LocalClassifier(pool)
        self._local_answerer = LocalAnswerer(pool)
        self._local_segmenter = LocalSegmenter(pool)
        self._local_detector = LocalDetector(pool)
        self._rewriters: dict[str, PromptRewriter] = {}
        self.rows = provider_rows(settings)
        self._providers: dict[str, Provider] = {}
        self._auto_generator: str | None = None

    # ------------------------------------------------------------------ providers

    def _remote(self, model: str) -> tuple[ProviderRow, str] | None:
        """(provider, model id) for `provider:model`; None for a catalog alias."""
        split = split_model(model, self.settings.catalog)
        if split is None:
            return None
        provider, name = split
        row = self.rows.get(provider)
        if row is None:
            raise InvalidArgument("model", model, f"{provider!r} is not a provider this server knows",
                                  f"Use a catalog alias (list_models) or provider:model with one of: {', '.join(self.rows)}.")
        if not name:
            raise InvalidArgument("model", model, "names no model after the provider",
                                  f"Write it as {provider}:MODEL_ID, e.g. {row.example()}.")
        return row, name

    def provider(self, row: ProviderRow) -> Provider:
        """The client of a provider (made once; keys are read from the environment at each call)."""
        if row.name not in self._providers:
            if row.needs_base_url and not row.address(self.settings):
                raise PixelError(
                    f"The {row.name} provider has no server configured: set PIXELMCP_{row.base_url_setting.upper()} "
                    "to its base URL (e.g. http://gpu-box:8000/v1 for vLLM, http://localhost:11434/v1 for Ollama) "
                    "and restart the server."
                )
            self._providers[row.name] = CLIENTS[row.client](row, self.settings)
        return self._providers[row.name]

    def replica_states(self) -> dict[str, list[dict]]:
        """How each provider client made so far spread its requests over its endpoint's base URLs."""
        return {name: provider.replicas.states() for name, provider in self._providers.items()
                if hasattr(provider, "replicas")}

    async def aclose(self) -> None:
        """Close the providers' HTTP clients (the server's lifespan ends)."""
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()

    def _spec(self, model: str, task: str, argument: str = "model") -> ModelSpec:
        catalog = self.settings.catalog
        spec = catalog.get(model)
        if spec is None:
            choices = ", ".join(sorted(a for a, s in catalog.items() if s.task == task))
            raise InvalidArgument(
                argument, model,
                f"not a model for {_TASK_NAMES[task]} in the {self.settings.profile} profile's catalog",
                f"Use one of: {choices} (or add it under [models.{model}] in the config file).",
            )
        if spec.task != task:
            choices = ", ".join(sorted(a for a, s in catalog.items() if s.task == task))
            problem = f"is a model for {_TASK_NAMES[spec.task]}, not for {_TASK_NAMES[task]}"
            raise InvalidArgument(argument, model, problem, f"Use one of: {choices}.")
        return spec

    async def default_generator_alias(self) -> str:
        """The configured default, or (default profile) the best model for this accelerator's memory."""
        if self.settings.generate_model:
            return self.settings.generate_model
        if self.settings.profile == "tiny":
            return DEFAULT_MODELS["tiny"]["generate"]
        if self._auto_generator is None:
            memory = await anyio.to_thread.run_sync(self.pool.accelerator_memory_gb)
            self._auto_generator = next(alias for floor, alias in AUTO_GENERATORS if memory >= floor)
        return self._auto_generator

    async def generator(self, model: str | None) -> tuple[ModelSpec, ImageGenerator]:
        alias = model if model is not None else await self.default_generator_alias()
        remote = self._remote(alias)
        if remote is None:
            return self._spec(alias, "generate"), self._local_generator
        row, name = remote
        makes_images = "generate_image" in row.serves or "edit_image" in row.serves
        spec = CLIENTS[row.client].image_spec(row, name) if makes_images else None
        if spec is None:
            raise InvalidArgument("model", alias, f"{name!r} is not an image model {row.name} serves here",
                                  row.image_help())
        return spec, self.provider(row)

    def rewriter(self, model: str | None = None) -> PromptRewriter | None:
        """The rewriter for `model` (`alias`, `provider:model`, `sampling[:hint]`), or else the configured one.

        None when rewriting is switched off (`PIXELMCP_REWRITER=none`) and no model was named.
        """
        if model is None:
            return self._configured_rewriter(self.settings.rewriter)
        if model == "sampling" or model.startswith("sampling:"):
            hint = model.partition(":")[2] or None
            return self._cached(model, lambda: self._sampling(hint))
        remote = self._remote(model)
        if remote is not None:
            self._check_serves(remote[0], model, "rewrite_prompt", "chat")
            return self._cached(model, lambda: RemoteRewriter(self.provider(remote[0]), remote[1]))
        spec = self._spec(model, "rewrite")
        return self._cached(spec.alias, lambda: LocalRewriter(self.pool, spec, self.settings.rewrite_max_new_tokens))

    def _configured_rewriter(self, kind: str) -> PromptRewriter | None:
        """The rewriter PIXELMCP_REWRITER (or the sampling fallback) names, with PIXELMCP_REWRITE_MODEL."""
        chosen = self.settings.rewrite_model
        if kind == "none":
            return None
        if kind == "sampling":
            return self._cached("sampling", lambda: self._sampling(chosen))
        if kind == "local":
            return self.rewriter(chosen if chosen and chosen in self.settings.catalog else self._default("rewrite"))
        row = self.rows.get(kind)
        model = chosen or (row.rewrite_model if row else None)
        if model is None:
            raise PixelError(f"The {kind} rewriter needs a model: set PIXELMCP_REWRITE_MODEL to a chat model that "
                             f"endpoint serves, or pass model='{kind}:MODEL' to rewrite_prompt.")
        return self.rewriter(f"{kind}:{model}")

    def _sampling(self, hint: str | None) -> SamplingRewriter:
        """The client's LLM (a catalog alias in PIXELMCP_REWRITE_MODEL is the local fallback's, not a hint)."""
        hint = None if hint in self.settings.catalog else hint
        return SamplingRewriter(lambda: self._configured_rewriter(self.settings.sampling_fallback), hint,
                                self.settings.rewrite_max_new_tokens)

    def _cached(self, key: str, make) -> PromptRewriter:
        if key not in self._rewriters:
            self._rewriters[key] = make()
        return self._rewriters[key]

    def _default(self, task: str) -> str:
        return DEFAULT_MODELS[self.settings.profile][task]

    def controlnet(self, base: ModelSpec, control_type: str) -> ModelSpec:
        """The ControlNet for `control_type` on `base`, as a loadable entry; a clear error if none."""
        if base.remote:
            local = sorted(a for a, s in self.settings.catalog.items() if s.controlnets)
            raise InvalidArgument("model", base.alias, "ControlNets run on local diffusion models only",
                                  f"Use one of: {', '.join(local) or 'none configured'}"
                                  + (" (or style_transfer with image=..., which gemini image models follow)."
                                     if base.provider != "gemini" else "; for gemini, style_transfer takes image=..."))
        if control_type not in base.controlnets:
            others = sorted(a for a, s in self.settings.catalog.items() if control_type in s.controlnets)
            has = ", ".join(sorted(base.controlnets)) or "none"
            fix = (f"Use one of its types ({has})" if base.controlnets else "Use another model")
            fix += f", or a model with a {control_type} ControlNet: {', '.join(others)}." if others else "."
            raise InvalidArgument("control_type", control_type,
                                  f"model {base.alias!r} has no ControlNet for this type", fix)
        return base.controlnet_entry(control_type)

    def ip_adapter(self, base: ModelSpec) -> ModelSpec | None:
        """The IP-Adapter of `base`, as a loadable entry (None for a provider model that reads the reference
        itself); a clear error if it has none."""
        if base.takes_reference:
            return None
        if base.ip_adapter is None:
            others = sorted(a for a, s in self.settings.catalog.items() if s.ip_adapter is not None)
            raise InvalidArgument("model", base.alias, "has no IP-Adapter in the catalog (nor reads reference images)",
                                  f"Use one of: {', '.join(others) or 'none configured'}; or a provider model that "
                                  "edits from references: openai:gpt-image-1, gemini:gemini-2.5-flash-image.")
        return base.ip_adapter_entry()

    def map_maker(self, control_type: str) -> ModelSpec | None:
        """The model that makes `control_type`'s map from an image (None: canny, made with OpenCV, or a type no
        model makes maps for); a clear error if the configured one is not a model of the right kind."""
        if control_type not in MAP_MAKERS:
            return None
        setting, kind = MAP_MAKERS[control_type]
        spec = self._spec(getattr(self.settings, setting) or self._default(control_type), "preprocess", setting)
        if spec.kind != kind:
            choices = ", ".join(sorted(a for a, s in self.settings.catalog.items() if s.kind == kind))
            raise InvalidArgument(setting, spec.alias, f"is a {spec.kind} model, which cannot make {control_type} maps",
                                  f"Set PIXELMCP_{setting.upper()} to one of: {choices or 'none configured'}.")
        return spec

    def segmenter(self) -> tuple[ModelSpec, Segmenter]:
        """The local model that makes masks from words (mask_prompt, remove_background)."""
        spec = self._spec(self.settings.segment_model or self._default("segment"), "segment", "segment_model")
        return spec, self._local_segmenter

    def classifier(self, model: str | None) -> tuple[ModelSpec, ImageClassifier]:
        """CLIP / SigLIP for zero-shot labels and image similarity."""
        if model is not None and self._remote(model) is not None:
            local = sorted(a for a, s in self.settings.catalog.items() if s.task == "classify")
            raise InvalidArgument("model", model, "classify_image runs on local CLIP or SigLIP models only (its scores "
                                  "come from image and text embeddings, which chat APIs do not return)",
                                  f"Omit model, or use one of: {', '.join(local)}; to ask a provider's model, use "
                                  "ask_about_image.")
        spec = self._spec(model or self.settings.classify_model or self._default("classify"), "classify")
        return spec, self._local_classifier

    def aligner(self) -> tuple[ModelSpec, ImageClassifier]:
        """The similarity model that scores images against their prompts (alignment)."""
        alias = self.settings.alignment_model or self.settings.classify_model or self._default("classify")
        return self._spec(alias, "classify", "alignment_model"), self._local_classifier

    def detector(self) -> tuple[ModelSpec, ObjectCounter] | None:
        """The object detector that counts what answers claim: the pose model's person detector (RT-DETR knows
        COCO's 80 classes); None when the pose model has none."""
        pose = self.map_maker("pose")
        if pose is None or not pose.detector:
            return None
        return pose.detector_entry(), self._local_detector

    def claim_extractor(self, answering: ModelSpec) -> CachedRewriter | None:
        """The chat model that lists an answer's claims (PIXELMCP_CLAIMS_MODEL; by default the answering
        provider's own model, or the local rewrite model); None for `sentences`, which needs no model."""
        chosen = self.settings.claims_model
        if chosen == "sentences":
            return None
        if chosen is None and answering.remote:
            chosen = f"{answering.provider}:{answering.source}"
        if chosen is None:
            rewrite = self.settings.rewrite_model
            chosen = rewrite if rewrite in self.settings.catalog else self._default("rewrite")
        key = f"claims:{chosen}"
        if key not in self._rewriters:
            remote = self._remote(chosen)
            if remote is not None:
                self._rewriters[key] = RemoteRewriter(self.provider(remote[0]), remote[1])
            else:
                spec = self._spec(chosen, "rewrite", "claims_model")
                self._rewriters[key] = LocalRewriter(self.pool, spec, CLAIM_TOKENS, doing="listing claims")
        return self._rewriters[key]

    def answerer(self, model: str | None) -> tuple[ModelSpec, VisionAnswerer]:
        """The vision-language model that answers questions about images."""
        alias = model or self.settings.vision_model or self._default("answer")
        remote = self._remote(alias)
        if remote is None:
            return self._spec(alias, "answer"), self._local_answerer
        row, name = remote
        self._check_serves(row, alias, "ask_about_image", "vision")
        spec = ModelSpec(alias=alias, kind="remote-vision", source=name, provider=row.name)
        return spec, self.provider(row)

    @staticmethod
    def _check_serves(row: ProviderRow, alias: str, tool: str, service: str) -> None:
        """An endpoint answers only what its config says it serves."""
        if tool in row.serves:
            return
        raise InvalidArgument("model", alias, f"the endpoint {row.name!r} does not declare {service}",
                              f"{row.undeclared(service)}, or use another model (list_models).")
