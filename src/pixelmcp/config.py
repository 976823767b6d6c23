"""Settings: everything configurable, with the environment variable that sets it.

Settings come from `PIXELMCP_*` environment variables and, optionally, a TOML file named by
`PIXELMCP_CONFIG` (or `--config`); environment variables win over the file. The profile's model
catalog (catalog.py) is built here, with the file's `[models.NAME]` tables applied on top.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pixelmcp.catalog import DEFAULT_CATALOG, REMOTE_ONLY, TINY_CATALOG, ModelSpec
from pixelmcp.registry import BUILTIN_NAMES, provider_rows, split_model

Profile = Literal["default", "tiny"]

EndpointService = Literal["chat", "vision", "images", "edits"]
ImageEngine = Literal["openai", "sglang", "vllm-omni"]

#: Who may rewrite prompts: the local LLM, a provider (or named endpoint), the client's own LLM, or nobody.
REWRITERS = ("local", *BUILTIN_NAMES, "sampling", "none")


class Endpoint(BaseModel):
    """An OpenAI-compatible server (vLLM, SGLang, vLLM-Omni, Ollama, LM Studio, TGI): `[endpoints.NAME]` in the
    TOML file. It declares what it serves; image engines declare which extra fields their API takes."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(None, description="e.g. http://gpu-box:8000/v1")
    base_urls: list[str] = Field(
        default_factory=list, description="replicas of one server, each a base URL: the least busy one answers"
    )
    api_key_env: str | None = Field(None, description="environment variable holding its key, if it needs one")
    serves: list[EndpointService] = Field(
        default_factory=lambda: ["chat", "vision"],
        description="chat (rewrite_prompt), vision (ask_about_image, compare_images), images (generate_image: "
                    "/v1/images/generations), edits (edit_image, extend_image: /v1/images/edits)",
    )
    engine: ImageEngine = Field(
        "openai", description="the image API's dialect: openai (the standard fields only), sglang or vllm-omni (also "
                              "seed, num_inference_steps, guidance_scale and negative_prompt)",
    )
    image_models: list[str] = Field(
        default_factory=list, description="the image models it serves (empty: any model id is passed on)"
    )
    sizes: list[tuple[int, int]] = Field(
        default_factory=list, description="the only (width, height) pairs its image models make (empty: any size)"
    )
    max_n: int | None = Field(None, ge=1, description="most images per call (when the engine limits it)")

    @model_validator(mode="after")
    def _one_address(self) -> Endpoint:
        if bool(self.base_url) == bool(self.base_urls):
            raise ValueError("give base_url (one server) or base_urls (replicas), not both or neither")
        return self

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self.base_urls) if self.base_urls else (self.base_url,)


#: A `[models.ALIAS]` table in the TOML file: point an alias at a folder, change any of its catalog fields, or
#: add a model (with source and kind). Every field of a catalog entry but its alias and the remote-only ones.
ModelOverride = create_model(
    "ModelOverride",
    __config__=ConfigDict(extra="forbid"),
    **{name: (field.annotation | None, None) for name, field in ModelSpec.model_fields.items()
       if name not in ("alias", "part_of", "component", *REMOTE_ONLY)},
)


class Settings(BaseSettings):
    """Everything configurable, with the environment variable that sets it (`PIXELMCP_` + NAME)."""

    model_config = SettingsConfigDict(env_prefix="PIXELMCP_", env_nested_delimiter="__", extra="ignore",
                                      allow_inf_nan=False)

    profile: Profile = Field("default", description="`default` (real models) or `tiny` (offline random weights)")
    output_dir: Path = Field(
        default_factory=lambda: platformdirs.user_data_path("pixelmcp") / "images",
        description="where generated images and their sidecars are written",
    )
    cache_dir: Path = Field(
        default_factory=lambda: platformdirs.user_cache_path("pixelmcp"),
        description="where the tiny profile's models are built and cached",
    )
    allowed_dirs: list[Path] = Field(
        default_factory=list, description="extra folders image paths may be read from (output dir always allowed)"
    )
    lora_dirs: list[Path] = Field(
        default_factory=list, description="folders of LoRA .safetensors files, used by file name in `loras` (JSON list)"
    )
    allow_cwd: bool = Field(
        True, description="allow reading image paths inside the working directory (never when it is / or the home folder)"
    )
    allow_urls: bool = Field(False, description="fetch http(s) image URLs (public addresses only)")
    allow_private_urls: bool = Field(
        False, description="with allow_urls: also fetch from private and loopback addresses (intranets; SSRF risk)"
    )
    device: str = Field("auto", description="`auto`, `cuda`, `cuda:N`, `mps` or `cpu`")
    devices: str | None = Field(
        None, description="several GPUs for the local pool, comma-separated, e.g. cuda:0,cuda:1 (default: with "
                          "device=auto, every CUDA GPU torch sees)"
    )
    model_replicas: int = Field(
        1, ge=1, le=16, description="devices that may hold a copy of one model at once: 2 lets two requests for a busy "
                                    "model run at once on two GPUs"
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    generate_model: str | None = Field(None, description="default model for generate_image (alias)")
    rewrite_model: str | None = Field(
        None, description="the rewriter's model: a catalog alias for `local`, the provider's model id otherwise "
                          "(defaults: openai gpt-4.1-mini, gemini gemini-2.5-flash), a model hint for `sampling`",
    )
    depth_model: str | None = Field(None, description="depth estimator for control_type='depth' (alias)")
    segmentation_model: str | None = Field(
        None, description="ADE20K semantic segmenter for control_type='segmentation' (alias)"
    )
    pose_model: str | None = Field(
        None, description="keypoint model (with its person detector) for control_type='pose' (alias)"
    )
    classify_model: str | None = Field(None, description="default CLIP/SigLIP for classify_image and similarity")
    vision_model: str | None = Field(None, description="default VLM for ask_about_image and compare_images")
    alignment: bool = Field(
        True, description="score every generated or edited image against its prompt (prompt-image similarity); "
                          "false on machines that cannot spare the similarity model"
    )
    alignment_model: str | None = Field(
        None, description="the CLIP / SigLIP alias that scores alignment (default: the classify_image default)"
    )
    claim_check: Literal["on", "similarity", "off"] = Field(
        "on", description="check the claims of every ask_about_image / compare_images answer against the images: on "
                          "(similarity, and counts with the pose model's detector), similarity (no detector), off"
    )
    claims_model: str | None = Field(
        None, description="who lists an answer's claims: a catalog chat alias, provider:model, or `sentences` (each "
                          "sentence is a claim; no model); default: a provider's VLM lists its own answer's, else "
                          "the local rewrite model"
    )
    segment_model: str | None = Field(
        None, description="the segmenter that makes masks from words (edit_image mask_prompt, remove_background)"
    )
    max_output_pixels: int = Field(
        16_777_216, ge=65_536, description="largest image extend_image and upscale_image make (w*h; 4096x4096)"
    )
    max_labels: int = Field(64, ge=2, le=1000, description="upper bound of classify_image labels")
    max_batch_images: int = Field(16, ge=1, le=256, description="upper bound of classify_image images")
    rewriter: str = Field(
        "local", description="who rewrites prompts: local, openai, gemini, openai-compatible (or a named endpoint), "
                             "sampling (the client's own LLM), none",
    )
    sampling_fallback: str = Field(
        "local", description="rewriter used when rewriter=sampling and the client cannot sample (none: no rewrite)"
    )
    # Remote providers. Keys are read from the environment only (the variables each row of
    # registry.py names, or each endpoint's api_key_env), never from here.
    openai_base_url: str | None = Field(None, description="OpenAI API base URL (proxies, gateways); default the API's")
    gemini_base_url: str | None = Field(None, description="Gemini API base URL; default the API's")
    anthropic_base_url: str | None = Field(
        None, description="Anthropic API base URL (gateways); default the SDK's (its ANTHROPIC_BASE_URL, or the API)"
    )
    openai_compatible_base_url: str | None = Field(
        None, description="base URL of the `openai-compatible` provider, e.g. http://gpu-box:8000/v1 (vLLM); several, "
                          "comma-separated, are replicas of one server"
    )
    openai_compatible_engine: ImageEngine = Field(
        "openai", description="the image API dialect of the `openai-compatible` provider: openai, sglang, vllm-omni"
    )
    endpoints: dict[str, Endpoint] = Field(
        default_factory=dict, description="more OpenAI-compatible servers, used as NAME:model ([endpoints.NAME])"
    )
    provider_timeout_s: float = Field(120, gt=0, description="longest wait for one provider request")
    provider_max_retries: int = Field(2, ge=0, le=10, description="retries after 429, 5xx, timeouts, lost connections")
    provider_retry_base_s: float = Field(
        1.0, ge=0, le=60, description="first retry delay; doubles per retry (a Retry-After header wins, up to 60 s)"
    )
    rewrite_auto_max_words: int = Field(
        30, ge=0, description="rewrite='auto' rewrites prompts with at most this many words"
    )
    rewrite_max_new_tokens: int = Field(160, ge=16, le=1024)
    max_images: int = Field(4, ge=1, le=16, description="upper bound of the `n` argument")
    max_prompt_chars: int = Field(2000, ge=16, description="upper bound of prompt lengths, in characters")
    preview_max_side: int = Field(1024, ge=64, description="longest side of inline previews, px")
    preview_max_bytes: int = Field(
        600_000, ge=16_000, description="byte budget for all inline previews of one result (base64 adds 1/3)"
    )
    preview_format: Literal["webp", "jpeg"] = "webp"
    resource_links: bool | Literal["auto"] = Field(
        "auto", description="send a resource_link block to each stored image: true, false, or auto (all clients but "
                            "the 1.x MCP Python SDK's unnamed default client, which agent frameworks use and whose "
                            "resource_link handling fails; the pixelmcp:// uri stays in the text and structured content)",
    )
    png_compress_level: int = Field(
        1, ge=0, le=9,
        description="zlib level of stored PNGs (lossless at every level): 1 encodes a 1024 px image in ~0.09 s, "
                    "6 (Pillow's default) in ~0.2 s for files ~10-15% smaller",
    )
    max_input_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest encoded input image")
    max_input_pixels: int = Field(40_000_000, ge=1024, description="largest decoded input image (w*h)")
    memory_budget_mb: float | None = Field(
        None, gt=0, description="memory models may use on each device; default: its capacity minus the reserve"
    )
    working_reserve_mb: float | None = Field(
        None, ge=0, description="memory kept free for activations; default 2048 on CUDA, 1024 elsewhere"
    )
    cpu_tier: bool = Field(True, description="keep models evicted from the GPU in CPU RAM when RAM allows")
    max_queue: int = Field(16, ge=0, description="requests that may wait for a busy device before 'busy' errors")
    lora_cache: int = Field(
        8, ge=1, le=64, description="LoRA adapters each model keeps loaded for quick switching (more: the least "
                                    "recently used is deleted; a call's own LoRAs always stay)"
    )
    keep_alive_s: float = Field(0, ge=0, description="unload models unused this long (0: keep until evicted)")
    call_budget_s: float = Field(
        40, ge=0, description="longest a tool call blocks; slower work continues as a job the caller collects with "
                              "check_job (0: calls block until done)"
    )
    max_jobs: int = Field(64, ge=1, le=10_000, description="jobs kept at once, running and finished")
    job_retention_s: float = Field(
        3600, gt=0, description="how long a finished job's result stays collectable with check_job"
    )
    call_timeout_s: float = Field(
        0, ge=0, description="stop a request's model work after this long, queueing included (0: no limit)"
    )
    preload: list[str] = Field(default_factory=list, description="aliases loaded in the background at start")
    batch_window_ms: float = Field(
        10, ge=0, le=1000,
        description="how long a generate_image request waits for others to batch with (0: no wait; batches still "
                    "form while the device is busy)",
    )
    max_batch: int = Field(8, ge=1, le=64, description="most images in one batched pipeline call (1: no batching)")
    http_token: SecretStr | None = Field(
        None, description="bearer token every HTTP request must carry (required to bind a non-loopback address)"
    )
    http_allowed_hosts: list[str] = Field(
        default_factory=list, description="Host headers accepted on a non-loopback bind, e.g. ['gpu-box:8000']"
    )
    http_max_body_mb: float = Field(32, gt=0, description="largest HTTP request body (images sent as base64)")
    channels_last: bool = Field(False, description="channels_last memory layout for UNets and VAEs (often faster on GPU)")
    compile: bool = Field(False, description="torch.compile the diffusion denoisers for text-to-image, in the "
                                             "background: calls run uncompiled until their image size is compiled")
    compile_backend: str = Field("inductor", description="torch.compile backend (inductor; eager traces only)")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    models: dict[str, ModelOverride] = Field(default_factory=dict, description="catalog overrides and additions")

    _catalog: dict[str, ModelSpec] = PrivateAttr(default_factory=dict)

    @field_validator("http_token", mode="after")
    @classmethod
    def _check_http_token(cls, token: SecretStr | None) -> SecretStr | None:
        """One meaning of "no token" everywhere: unset, empty and blank are all None (a launch script's
        unset variable must not read as a token); anything else must be a strong token."""
        if token is None or not token.get_secret_value().strip():
            return None
        problem = http_token_problem(token.get_secret_value())
        if problem:
            raise ValueError(f"http_token (PIXELMCP_HTTP_TOKEN) {problem}. Use at least {MIN_TOKEN_CHARS} random "
                             "characters, e.g. the output of: "
                             "python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
        return token

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("PIXELMCP_CONFIG")
        if toml_path:
            if not Path(toml_path).is_file():
                raise ValueError(f"PIXELMCP_CONFIG={toml_path!r} is not a file; fix the path or unset it")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)))
        return tuple(sources)

    @model_validator(mode="after")
    def _check_catalog(self) -> Settings:
        self._catalog = _build_catalog(self)
        providers = provider_rows(self)
        for name in ("rewriter", "sampling_fallback"):
            value = getattr(self, name)
            allowed = [r for r in (*REWRITERS, *self.endpoints) if not (name == "sampling_fallback" and r == "sampling")]
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
        reserved = set(REWRITERS) & set(self.endpoints)
        if reserved:
            raise ValueError(f"endpoints may not be named {', '.join(sorted(reserved))} (reserved names)")
        checked = [("generate_model", self.generate_model), ("depth_model", self.depth_model),
                   ("classify_model", self.classify_model), ("vision_model", self.vision_model),
                   ("segment_model", self.segment_model), ("segmentation_model", self.segmentation_model),
                   ("pose_model", self.pose_model), ("alignment_model", self.alignment_model)]
        if self.rewriter == "local":
            checked.append(("rewrite_model", self.rewrite_model))
        if self.claims_model != "sentences":
            checked.append(("claims_model", self.claims_model))
        for name, value in checked:
            split = split_model(value, self._catalog) if value is not None else None
            remote = (name in ("generate_model", "vision_model", "claims_model") and split is not None
                      and split[0] in providers)
            if value is not None and value not in self._catalog and not remote:
                raise ValueError(f"{name}={value!r} is not in the {self.profile} catalog: {sorted(self._catalog)}"
                                 + (" (or provider:model, e.g. openai:gpt-image-1)"
                                    if name in ("generate_model", "vision_model", "claims_model") else ""))
        unknown = [alias for alias in self.preload if alias not in self._catalog]
        if unknown:
            raise ValueError(f"preload names {unknown}, not in the {self.profile} catalog: {sorted(self._catalog)}")
        return self

    # ------------------------------------------------------------------ catalog

    @property
    def catalog(self) -> dict[str, ModelSpec]:
        """Aliases of this profile, with TOML/env overrides applied."""
        return self._catalog

    @property
    def tiny_dir(self) -> Path:
        return self.cache_dir / "tiny"

    def read_roots(self) -> list[Path]:
        """Folders an image path may point into, resolved.

        The working directory counts only when it is a real project folder: desktop clients often
        start servers in `/` or the home folder, and allowing those would expose every file.
        """
        roots = [Path(r).expanduser().resolve() for r in (self.output_dir, *self.allowed_dirs)]
        if self.allow_cwd:
            cwd = Path.cwd().resolve()
            if cwd != Path(cwd.anchor) and cwd != Path.home().resolve():
                roots.append(cwd)
        return roots


#: Shortest bearer token accepted: 16 random URL-safe characters are 96 bits.
MIN_TOKEN_CHARS = 16


def http_token_problem(token: str) -> str | None:
    """Why `token` cannot guard an HTTP server, or None when it can."""
    if len(token) < MIN_TOKEN_CHARS:
        return f"is {len(token)} characters long, shorter than the minimum of {MIN_TOKEN_CHARS}"
    if any(not ("!" <= c <= "~") for c in token):
        return ("contains spaces, control or non-ASCII characters, which clients cannot send unchanged in an "
                "Authorization header")
    return None


def _build_catalog(settings: Settings) -> dict[str, ModelSpec]:
    base = TINY_CATALOG if settings.profile == "tiny" else DEFAULT_CATALOG
    catalog = {spec.alias: spec for spec in base}
    for alias, override in settings.models.items():
        changes = override.model_dump(exclude_unset=True)
        if alias in catalog:
            catalog[alias] = ModelSpec.model_validate({**catalog[alias].model_dump(), **changes})
        else:
            missing = [key for key in ("source", "kind") if key not in changes]
            if missing:
                raise ValueError(
                    f"models.{alias} is a new model, so it needs {' and '.join(missing)} "
                    f"(kind is one of sd15, sdxl, sd3, flux, lora, chat-llm, depth, clip, siglip, vlm)"
                )
            catalog[alias] = ModelSpec(alias=alias, **changes)
    return catalog


def load_settings(**overrides) -> Settings:
    """Settings from the environment (and TOML file), with explicit keyword overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
