"""Settings and the model catalog.

Settings come from `PIXELMCP_*` environment variables and, optionally, a TOML file named by
`PIXELMCP_CONFIG` (or `--config`); environment variables win over the file. The catalog maps
short aliases (`sdxl`, `flux-schnell`, ...) to a model source (hub id or local folder), the
pipeline kind that loads it, and the defaults and limits every argument is checked against.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pixelmcp.providers.registry import BUILTIN_NAMES, provider_rows, split_model

Profile = Literal["default", "tiny"]
ModelKind = Literal["sd15", "sdxl", "sd3", "flux", "chat-llm", "depth", "clip", "siglip", "vlm",
                    "remote-image", "remote-chat", "remote-vision"]
Task = Literal["generate", "rewrite", "preprocess", "classify", "answer"]
VLMFamily = Literal["qwen2-vl", "qwen2.5-vl", "llava", "llava-next", "idefics3"]

#: Sources with this prefix are built locally with tiny random weights (engine/tiny.py).
TINY_PREFIX = "tiny:"

#: Pipeline kinds that make images, and whether each takes a negative prompt.
IMAGE_KINDS: frozenset[str] = frozenset({"sd15", "sdxl", "sd3", "flux"})
_TASKS: dict[str, Task] = {"chat-llm": "rewrite", "depth": "preprocess", "clip": "classify", "siglip": "classify",
                           "vlm": "answer", "remote-image": "generate", "remote-chat": "rewrite",
                           "remote-vision": "answer"}

#: Who may rewrite prompts: the local LLM, a provider (or named endpoint), the client's own LLM, or nobody.
REWRITERS = ("local", *BUILTIN_NAMES, "sampling", "none")


class IPAdapterSpec(BaseModel):
    """Where an IP-Adapter checkpoint lives, in the h94/IP-Adapter layout."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="repo id or folder holding the adapter")
    subfolder: str = Field(description="folder of the weight file, e.g. models or sdxl_models")
    weight_name: str = Field(description="e.g. ip-adapter_sd15.safetensors")
    image_encoder_subfolder: str = Field("image_encoder", description="CLIP vision encoder, inside subfolder")


class ModelSpec(BaseModel):
    """One catalog entry: where a model comes from, how it loads, and the limits of its arguments."""

    model_config = ConfigDict(frozen=True)

    alias: str
    kind: ModelKind
    source: str = Field(description="Hugging Face repo id or local folder passed to from_pretrained")
    description: str = ""
    licence: str = Field("", description="the weights' licence, as the model's hub page states it")
    variant: str | None = Field(None, description="weights variant to prefer on GPU, e.g. fp16")
    min_memory_gb: float = Field(0.0, description="accelerator memory this model wants at its native dtype")
    # Image models only.
    default_width: int = 1024
    default_height: int = 1024
    min_side: int = 256
    max_side: int = 2048
    multiple_of: int = 8
    default_steps: int = 30
    max_steps: int = 150
    default_guidance: float = 7.5
    min_guidance: float = 0.0
    max_guidance: float = 30.0
    negative_prompt: bool = True
    controlnets: dict[str, str] = Field(default_factory=dict, description="control type -> ControlNet source")
    ip_adapter: IPAdapterSpec | None = None
    style_blocks: dict | None = Field(
        None, description="InstantStyle per-block IP-Adapter scales for style-only transfer (1.0 = the scale argument)"
    )
    family: VLMFamily | None = Field(None, description="vision-language model family (kind vlm)")
    offload: Literal["none", "model", "sequential"] = Field(
        "none", description="diffusers CPU offload on an accelerator: whole models, or layer by layer (slowest)"
    )
    # Remote models: who serves them and which arguments they take.
    provider: str = Field("local", description="local (the model pool), openai, gemini, or an OpenAI-compatible endpoint")
    sizes: tuple[tuple[int, int], ...] = Field((), description="the only (width, height) pairs accepted, if limited")
    takes_seed: bool = True
    takes_steps: bool = True
    takes_guidance: bool = True
    max_n: int | None = Field(None, description="most images per call, when the model limits it")
    takes_reference: bool = Field(False, description="a provider model that edits from reference images itself")

    @property
    def remote(self) -> bool:
        return self.provider != "local"

    @property
    def weight_paths(self) -> tuple[str, ...] | None:
        """The paths inside `source` that loading this entry reads, when not its whole layout: an IP-Adapter
        repo holds adapters for several base models, of which one weight file and its image encoder load."""
        adapter = self.ip_adapter
        if adapter is None or adapter.source != self.source:
            return None
        return (f"{adapter.subfolder}/{adapter.weight_name}", f"{adapter.subfolder}/{adapter.image_encoder_subfolder}")

    @property
    def task(self) -> Task:
        return "generate" if self.kind in IMAGE_KINDS else _TASKS[self.kind]

    @property
    def tiny(self) -> bool:
        """Built locally with tiny random weights (the tiny profile)."""
        return self.source.startswith(TINY_PREFIX)


def _sd(alias: str, source: str, **kw) -> ModelSpec:
    return ModelSpec(alias=alias, source=source, **kw)


SDXL_CONTROLNETS = {
    "canny": "diffusers/controlnet-canny-sdxl-1.0",
    "depth": "diffusers/controlnet-depth-sdxl-1.0",
    "pose": "thibaud/controlnet-openpose-sdxl-1.0",
}
SDXL_IP_ADAPTER = IPAdapterSpec(source="h94/IP-Adapter", subfolder="sdxl_models", weight_name="ip-adapter_sdxl.safetensors")
#: InstantStyle: up_blocks.0.attentions.1 carries style in SDXL.
SDXL_STYLE_BLOCKS = {"up": {"block_0": [0.0, 1.0, 0.0]}}

DEFAULT_CATALOG: tuple[ModelSpec, ...] = (
    _sd("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", kind="sd15", variant="fp16",
        licence="CreativeML Open RAIL-M",
        description="Stable Diffusion 1.5: small, fast, huge ecosystem of fine-tunes and ControlNets.",
        default_width=512, default_height=512, min_side=256, max_side=1024,
        default_steps=30, default_guidance=7.5, min_memory_gb=3,
        controlnets={"canny": "lllyasviel/control_v11p_sd15_canny", "depth": "lllyasviel/control_v11f1p_sd15_depth",
                     "pose": "lllyasviel/control_v11p_sd15_openpose"},
        ip_adapter=IPAdapterSpec(source="h94/IP-Adapter", subfolder="models", weight_name="ip-adapter_sd15.safetensors"),
        # SD 1.5's lowest-resolution cross-attention up block, the counterpart of SDXL's up_blocks.0.
        style_blocks={"up": {"block_1": [0.0, 1.0, 0.0]}}),
    _sd("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", kind="sdxl", variant="fp16",
        licence="CreativeML Open RAIL++-M",
        description="SDXL base 1.0: strong general-purpose 1024 px model.",
        default_steps=30, default_guidance=5.0, min_side=512, min_memory_gb=8,
        controlnets=SDXL_CONTROLNETS, ip_adapter=SDXL_IP_ADAPTER, style_blocks=SDXL_STYLE_BLOCKS),
    _sd("sdxl-turbo", "stabilityai/sdxl-turbo", kind="sdxl", variant="fp16",
        licence="Stability AI Non-Commercial Research Community License (non-commercial)",
        description="SDXL-Turbo: 1-4 step distilled SDXL at 512 px; guidance off.",
        default_width=512, default_height=512, min_side=256, max_side=1024,
        default_steps=1, max_steps=10, default_guidance=0.0, max_guidance=2.0, min_memory_gb=8,
        controlnets=SDXL_CONTROLNETS, ip_adapter=SDXL_IP_ADAPTER, style_blocks=SDXL_STYLE_BLOCKS),
    _sd("sd3-medium", "stabilityai/stable-diffusion-3-medium-diffusers", kind="sd3",
        licence="Stability AI Community License (gated)",
        description="Stable Diffusion 3 Medium (gated: accept the licence on the hub, set HF_TOKEN).",
        multiple_of=16, default_steps=28, default_guidance=7.0, min_side=512, min_memory_gb=16),
    _sd("flux-schnell", "black-forest-labs/FLUX.1-schnell", kind="flux", licence="Apache-2.0",
        description="FLUX.1 [schnell]: 1-4 step, Apache-2.0, excellent prompt following; no guidance.",
        multiple_of=16, default_steps=4, max_steps=16, default_guidance=0.0, max_guidance=0.0,
        negative_prompt=False, min_memory_gb=32),
    _sd("flux-dev", "black-forest-labs/FLUX.1-dev", kind="flux",
        licence="FLUX.1 [dev] Non-Commercial License (gated, non-commercial)",
        description="FLUX.1 [dev]: guidance-distilled, 28 steps, non-commercial licence (gated).",
        multiple_of=16, default_steps=28, max_steps=100, default_guidance=3.5, max_guidance=20.0,
        negative_prompt=False, min_memory_gb=32),
    _sd("qwen2.5-0.5b-instruct", "Qwen/Qwen2.5-0.5B-Instruct", kind="chat-llm", licence="Apache-2.0",
        description="Smallest Qwen2.5 instruct model; prompt rewriting on CPU or tiny GPUs."),
    _sd("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", kind="chat-llm", licence="Apache-2.0",
        description="Default prompt rewriter: good detail for its size, ~3 GB in bf16."),
    _sd("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct", kind="chat-llm",
        licence="Qwen Research License (non-commercial)",
        description="Larger rewriter for GPUs with memory to spare."),
    _sd("depth-anything-v2-small", "depth-anything/Depth-Anything-V2-Small-hf", kind="depth", licence="Apache-2.0",
        description="Monocular depth estimator that makes depth maps for ControlNet."),
    _sd("clip-vit-large", "openai/clip-vit-large-patch14", kind="clip", licence="MIT",
        description="CLIP ViT-L/14: zero-shot labels (softmax over the labels) and image similarity."),
    _sd("clip-vit-base", "openai/clip-vit-base-patch32", kind="clip", licence="MIT",
        description="CLIP ViT-B/32: smaller, faster."),
    _sd("siglip-so400m", "google/siglip-so400m-patch14-384", kind="siglip", licence="Apache-2.0",
        description="SigLIP so400m: stronger zero-shot, independent sigmoid score per label."),
    _sd("qwen2.5-vl-3b", "Qwen/Qwen2.5-VL-3B-Instruct", kind="vlm", family="qwen2.5-vl",
        licence="Qwen Research License (non-commercial)",
        description="Qwen2.5-VL 3B: default VLM; multi-image, good at text in images; ~8 GB in bf16."),
    _sd("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct", kind="vlm", family="qwen2.5-vl", licence="Apache-2.0",
        description="Qwen2.5-VL 7B: stronger answers; ~17 GB in bf16."),
    _sd("qwen2-vl-2b", "Qwen/Qwen2-VL-2B-Instruct", kind="vlm", family="qwen2-vl", licence="Apache-2.0",
        description="Qwen2-VL 2B: small multi-image VLM."),
    _sd("llava-1.5-7b", "llava-hf/llava-1.5-7b-hf", kind="vlm", family="llava", licence="Llama 2 Community License",
        description="LLaVA 1.5 7B (336 px, one image works best)."),
    _sd("llava-next-mistral-7b", "llava-hf/llava-v1.6-mistral-7b-hf", kind="vlm", family="llava-next",
        licence="Apache-2.0",
        description="LLaVA-NeXT (1.6) Mistral 7B: dynamic high resolution."),
    _sd("smolvlm", "HuggingFaceTB/SmolVLM-Instruct", kind="vlm", family="idefics3", licence="Apache-2.0",
        description="SmolVLM 2B (Idefics3 architecture): small, multi-image."),
)

_TINY_IMAGE = dict(default_width=64, default_height=64, min_side=16, max_side=512, default_steps=4, max_steps=50)


def _tiny_controlnets(family: str) -> dict[str, str]:
    return {control: f"tiny:{family}-controlnet-{control}" for control in ("canny", "depth", "pose")}


TINY_CATALOG: tuple[ModelSpec, ...] = (
    _sd("tiny-sd15", "tiny:sd15", kind="sd15", description="Tiny random-weight SD 1.5 architecture (offline tests).",
        default_guidance=7.5, controlnets=_tiny_controlnets("sd15"),
        ip_adapter=IPAdapterSpec(source="tiny:sd15-ip-adapter", subfolder="models",
                                 weight_name="ip-adapter_sd15.safetensors"),
        style_blocks={"up": {"block_0": [0.0, 1.0]}}, **_TINY_IMAGE),
    _sd("tiny-sdxl", "tiny:sdxl", kind="sdxl", description="Tiny random-weight SDXL architecture.",
        default_guidance=5.0, controlnets=_tiny_controlnets("sdxl"),
        ip_adapter=IPAdapterSpec(source="tiny:sdxl-ip-adapter", subfolder="sdxl_models",
                                 weight_name="ip-adapter_sdxl.safetensors"),
        style_blocks={"up": {"block_0": [0.0, 1.0]}}, **_TINY_IMAGE),
    _sd("tiny-sd3", "tiny:sd3", kind="sd3", description="Tiny random-weight SD3 architecture.",
        multiple_of=16, default_guidance=7.0, **_TINY_IMAGE),
    _sd("tiny-flux", "tiny:flux", kind="flux", description="Tiny random-weight FLUX.1-schnell architecture.",
        multiple_of=16, default_guidance=0.0, max_guidance=0.0, negative_prompt=False, **_TINY_IMAGE),
    _sd("tiny-llm", "tiny:chat-llm", kind="chat-llm",
        description="Tiny random-weight Qwen2 chat LM (rewrites into gibberish; for tests)."),
    _sd("tiny-depth", "tiny:depth-anything", kind="depth", description="Tiny random-weight Depth Anything."),
    _sd("tiny-clip", "tiny:clip", kind="clip", description="Tiny random-weight CLIP."),
    _sd("tiny-siglip", "tiny:siglip", kind="siglip", description="Tiny random-weight SigLIP."),
    _sd("tiny-qwen2-vl", "tiny:qwen2-vl", kind="vlm", family="qwen2-vl", description="Tiny random-weight Qwen2-VL."),
    _sd("tiny-qwen2.5-vl", "tiny:qwen2.5-vl", kind="vlm", family="qwen2.5-vl",
        description="Tiny random-weight Qwen2.5-VL (the default VLM's family)."),
    _sd("tiny-llava", "tiny:llava", kind="vlm", family="llava", description="Tiny random-weight LLaVA 1.5."),
    _sd("tiny-llava-next", "tiny:llava-next", kind="vlm", family="llava-next",
        description="Tiny random-weight LLaVA-NeXT (dynamic high resolution)."),
    _sd("tiny-idefics3", "tiny:idefics3", kind="vlm", family="idefics3",
        description="Tiny random-weight Idefics3 (SmolVLM's architecture)."),
)

#: Default-profile generator chosen by accelerator memory (GiB), best first.
AUTO_GENERATORS: tuple[tuple[float, str], ...] = ((40.0, "flux-schnell"), (12.0, "sdxl"), (0.0, "sd15"))


class Endpoint(BaseModel):
    """An OpenAI-compatible server (vLLM, Ollama, LM Studio, TGI): `[endpoints.NAME]` in the TOML file."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="e.g. http://gpu-box:8000/v1")
    api_key_env: str | None = Field(None, description="environment variable holding its key, if it needs one")


class ModelOverride(BaseModel):
    """A `[models.ALIAS]` table in the TOML file: point an alias at a folder, or add a model."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    kind: ModelKind | None = None
    description: str | None = None
    default_width: int | None = None
    default_height: int | None = None
    default_steps: int | None = None
    default_guidance: float | None = None
    min_side: int | None = None
    max_side: int | None = None
    max_steps: int | None = None
    controlnets: dict[str, str] | None = None
    ip_adapter: IPAdapterSpec | None = None
    style_blocks: dict | None = None
    family: VLMFamily | None = None
    offload: Literal["none", "model", "sequential"] | None = None


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
    allow_cwd: bool = Field(
        True, description="allow reading image paths inside the working directory (never when it is / or the home folder)"
    )
    allow_urls: bool = Field(False, description="fetch http(s) image URLs (public addresses only)")
    allow_private_urls: bool = Field(
        False, description="with allow_urls: also fetch from private and loopback addresses (intranets; SSRF risk)"
    )
    device: str = Field("auto", description="`auto`, `cuda`, `cuda:N`, `mps` or `cpu`")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    generate_model: str | None = Field(None, description="default model for generate_image (alias)")
    rewrite_model: str | None = Field(
        None, description="the rewriter's model: a catalog alias for `local`, the provider's model id otherwise "
                          "(defaults: openai gpt-4.1-mini, gemini gemini-2.5-flash), a model hint for `sampling`",
    )
    depth_model: str | None = Field(None, description="depth estimator for control_type='depth' (alias)")
    classify_model: str | None = Field(None, description="default CLIP/SigLIP for classify_image and similarity")
    vision_model: str | None = Field(None, description="default VLM for ask_about_image and compare_images")
    max_labels: int = Field(64, ge=2, le=1000, description="upper bound of classify_image labels")
    max_batch_images: int = Field(16, ge=1, le=256, description="upper bound of classify_image images")
    rewriter: str = Field(
        "local", description="who rewrites prompts: local, openai, gemini, openai-compatible (or a named endpoint), "
                             "sampling (the client's own LLM), none",
    )
    sampling_fallback: str = Field(
        "local", description="rewriter used when rewriter=sampling and the client cannot sample (none: no rewrite)"
    )
    # Remote providers. Keys are read from the environment only (OPENAI_API_KEY, GEMINI_API_KEY or
    # GOOGLE_API_KEY, OPENAI_COMPATIBLE_API_KEY, or each endpoint's api_key_env), never from here.
    openai_base_url: str | None = Field(None, description="OpenAI API base URL (proxies, gateways); default the API's")
    gemini_base_url: str | None = Field(None, description="Gemini API base URL; default the API's")
    openai_compatible_base_url: str | None = Field(
        None, description="base URL of the `openai-compatible` provider, e.g. http://gpu-box:8000/v1 (vLLM)"
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
    png_compress_level: int = Field(
        1, ge=0, le=9,
        description="zlib level of stored PNGs (lossless at every level): 1 encodes a 1024 px image in ~0.09 s, "
                    "6 (Pillow's default) in ~0.2 s for files ~10-15% smaller",
    )
    max_input_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest encoded input image")
    max_input_pixels: int = Field(40_000_000, ge=1024, description="largest decoded input image (w*h)")
    memory_budget_mb: float | None = Field(
        None, gt=0, description="memory models may use on the device; default: its capacity minus the reserve"
    )
    working_reserve_mb: float | None = Field(
        None, ge=0, description="memory kept free for activations; default 2048 on CUDA, 1024 elsewhere"
    )
    cpu_tier: bool = Field(True, description="keep models evicted from the GPU in CPU RAM when RAM allows")
    max_queue: int = Field(16, ge=0, description="requests that may wait for a busy device before 'busy' errors")
    keep_alive_s: float = Field(0, ge=0, description="unload models unused this long (0: keep until evicted)")
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
    compile: bool = Field(False, description="torch.compile each diffusion denoiser on load (slow first run)")
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
                   ("classify_model", self.classify_model), ("vision_model", self.vision_model)]
        if self.rewriter == "local":
            checked.append(("rewrite_model", self.rewrite_model))
        for name, value in checked:
            remote = (value is not None and name in ("generate_model", "vision_model")
                      and split_model(value, providers, self._catalog) is not None)
            if value is not None and value not in self._catalog and not remote:
                raise ValueError(f"{name}={value!r} is not in the {self.profile} catalog: {sorted(self._catalog)}"
                                 + (" (or provider:model, e.g. openai:gpt-image-1)"
                                    if name in ("generate_model", "vision_model") else ""))
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
                    f"(kind is one of sd15, sdxl, sd3, flux, chat-llm, depth, clip, siglip, vlm)"
                )
            catalog[alias] = ModelSpec(alias=alias, **changes)
    return catalog


def load_settings(**overrides) -> Settings:
    """Settings from the environment (and TOML file), with explicit keyword overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
