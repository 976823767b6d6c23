"""The remote providers, one row each: what the router, list_models, `doctor` and the settings' checks
all read. Adding a provider is one row here (plus a client in `CLIENTS` of router.py when it speaks
a new API); an OpenAI-compatible server needs no code at all (`[endpoints.NAME]` in the config).

This module sits on the lowest floor with the settings (it imports no other pixelmcp module), so
the settings can check provider names against it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, Field

#: Tools a chat/vision endpoint can serve.
CHAT_TOOLS = ("ask_about_image", "compare_images", "rewrite_prompt")
#: What an OpenAI-compatible endpoint can declare it serves (`serves` of `[endpoints.NAME]`), as tools.
SERVICE_TOOLS: dict[str, tuple[str, ...]] = {
    "chat": ("rewrite_prompt",), "vision": ("ask_about_image", "compare_images"), "images": ("generate_image",),
    "edits": ("edit_image", "extend_image", "style_transfer"),
}


@dataclass(frozen=True)
class ProviderRow:
    """One remote provider."""

    name: str  # the prefix of provider:model
    client: Literal["openai", "gemini", "anthropic"]  # the API it speaks (the client class that calls it)
    key_env: tuple[str, ...]  # environment variables its key is read from, first set wins
    key_required: bool
    serves: tuple[str, ...]  # tools it can serve
    examples: tuple[str, ...]  # model arguments to try
    base_url_setting: str | None = None  # the setting that overrides its base URL (comma-separated: replicas)
    base_urls: tuple[str, ...] = ()  # fixed base URLs (an endpoint from the config file; several are replicas)
    needs_base_url: bool = False  # no default address: useless until one is set
    rewrite_model: str | None = None  # the model that rewrites prompts when PIXELMCP_REWRITER names it
    official: bool = False  # the provider's own API (not a compatible server): its model quirks apply
    image_fix: str | None = None  # what to use instead of a model it does not make images with (None: see image_help)
    # OpenAI-compatible image engines: the API dialect, and what the config says of their models.
    engine: str = "openai"  # openai (standard fields only), sglang, vllm-omni (seed, steps, guidance, negative)
    image_models: tuple[str, ...] = ()  # the image models it serves (empty: any id is passed on)
    sizes: tuple[tuple[int, int], ...] = ()  # the only sizes its image models make (empty: any)
    max_n: int | None = None

    def addresses(self, settings: Any) -> tuple[str, ...]:
        """Its base URLs under `settings` (empty: the SDK's default); several are replicas of one server."""
        if self.base_url_setting is not None:
            value = getattr(settings, self.base_url_setting) or ""
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return self.base_urls

    def address(self, settings: Any) -> str | None:
        """Its base URL under `settings` (None: the SDK's default); the first replica's when there are several."""
        urls = self.addresses(settings)
        return urls[0] if urls else None

    def example(self) -> str:
        return self.examples[0] if self.examples else f"{self.name}:MODEL"

    def undeclared(self, service: str) -> str:
        """The fix when an endpoint is asked for what its config does not say it serves."""
        return f"Add \"{service}\" to serves under [endpoints.{self.name}] if its server does it"

    def image_help(self) -> str:
        """What to do about a model this provider does not make images with here."""
        if self.image_fix is not None:
            return self.image_fix
        if "generate_image" not in self.serves and "edit_image" not in self.serves:
            return (f"The endpoint does not declare images. {self.undeclared('images')} (/v1/images/generations: "
                    "SGLang Diffusion, vLLM-Omni), or use openai:gpt-image-1, gemini:gemini-2.5-flash-image or a "
                    "local model.")
        return (f"Use one of the image models it lists: {', '.join(self.image_models)} (image_models under "
                f"[endpoints.{self.name}]).")


BUILTIN: tuple[ProviderRow, ...] = (
    ProviderRow(
        name="openai", client="openai", key_env=("OPENAI_API_KEY",), key_required=True,
        serves=("generate_image", "style_transfer", "edit_image", "extend_image", *CHAT_TOOLS),
        examples=("openai:gpt-image-1", "openai:dall-e-3", "openai:gpt-4o", "openai:gpt-4.1-mini"),
        base_url_setting="openai_base_url", rewrite_model="gpt-4.1-mini", official=True,
        image_fix="Use openai:gpt-image-1, openai:dall-e-3 or openai:dall-e-2 (for chat models use "
                  "ask_about_image).",
    ),
    ProviderRow(
        name="gemini", client="gemini", key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"), key_required=True,
        serves=("generate_image", "style_transfer", "edit_image", "extend_image", *CHAT_TOOLS),
        examples=("gemini:gemini-2.5-flash-image", "gemini:gemini-2.5-flash"),
        base_url_setting="gemini_base_url", rewrite_model="gemini-2.5-flash", official=True,
        image_fix="Use an image-output model such as gemini:gemini-2.5-flash-image (for chat models use "
                  "ask_about_image).",
    ),
    ProviderRow(
        name="anthropic", client="anthropic", key_env=("ANTHROPIC_API_KEY",), key_required=True,
        serves=CHAT_TOOLS,
        examples=("anthropic:claude-sonnet-4-5", "anthropic:claude-haiku-4-5"),
        base_url_setting="anthropic_base_url", rewrite_model="claude-haiku-4-5", official=True,
        image_fix="Claude models read images here (ask_about_image, compare_images) but do not make them: use "
                  "openai:gpt-image-1, gemini:gemini-2.5-flash-image or a local model.",
    ),
    ProviderRow(
        name="openai-compatible", client="openai", key_env=("OPENAI_COMPATIBLE_API_KEY",), key_required=False,
        serves=tuple(tool for tools in SERVICE_TOOLS.values() for tool in tools),
        examples=(("openai-compatible:MODEL (the id the server serves, e.g. Qwen/Qwen2.5-VL-7B-Instruct or "
                   "black-forest-labs/FLUX.1-dev)"),),
        base_url_setting="openai_compatible_base_url", needs_base_url=True,
    ),
)
BUILTIN_NAMES: tuple[str, ...] = tuple(row.name for row in BUILTIN)


def provider_rows(settings: Any) -> dict[str, ProviderRow]:
    """Every provider `settings` knows: the built-in ones, then the `[endpoints.NAME]` of the config file."""
    rows = {row.name: row for row in BUILTIN}
    rows["openai-compatible"] = replace(rows["openai-compatible"], engine=settings.openai_compatible_engine)
    for name, endpoint in settings.endpoints.items():
        keys = (endpoint.api_key_env,) if endpoint.api_key_env else ()
        serves = tuple(tool for service in endpoint.serves for tool in SERVICE_TOOLS[service])
        rows[name] = ProviderRow(
            name=name, client="openai", key_env=keys, key_required=bool(keys), serves=serves,
            examples=tuple(f"{name}:{model}" for model in endpoint.image_models) or (f"{name}:MODEL",),
            base_urls=endpoint.urls, engine=endpoint.engine, image_models=tuple(endpoint.image_models),
            sizes=tuple(tuple(size) for size in endpoint.sizes), max_n=endpoint.max_n,
        )
    return rows


def split_model(value: str, catalog: dict[str, Any]) -> tuple[str, str] | None:
    """The one reading of a `model` value: (provider, model id) for `provider:model`, None for a catalog alias
    (even one with a colon in it). Whether the provider exists is the caller's to check and to explain."""
    if value in catalog or ":" not in value:
        return None
    provider, _, model = value.partition(":")
    return provider, model.strip()


# --------------------------------------------------------------------------- what users are shown


class ReplicaInfo(BaseModel):
    """One base URL of an OpenAI-compatible endpoint: whether it answers, and how this server's requests to it
    went."""

    url: str
    answers: bool | None = Field(None, description="it answered GET /models just now (null: not asked)")
    detail: str | None = Field(None, description="why it does not answer")
    in_flight: int = 0
    answered: int = Field(0, description="requests it answered since the server started")
    failed: int = Field(0, description="requests it failed (cannot connect, 5xx)")
    resting_s: float = Field(0.0, description="seconds it is still skipped after a failure")


class ProviderInfo(BaseModel):
    """One remote provider as this server is configured for it (never a key's value)."""

    name: str = Field(description="the prefix of provider:model")
    ready: bool = Field(description="configured, with its key set where it needs one")
    key_env: list[str] = Field(description="environment variables its key is read from (first set wins)")
    key_set: bool
    base_url: str | None
    serves: list[str] = Field(description="tools it can serve")
    examples: list[str] = Field(description="model arguments to try")
    fix: str | None = Field(None, description="what to do to make it ready")
    engine: str | None = Field(None, description="an OpenAI-compatible endpoint's image API: openai, sglang, vllm-omni")
    replicas: list[ReplicaInfo] = Field(default_factory=list, description="an OpenAI-compatible endpoint's base URLs")


def provider_infos(settings: Any) -> list[ProviderInfo]:
    infos = []
    for row in provider_rows(settings).values():
        key_set = any(os.environ.get(key, "").strip() for key in row.key_env)
        address = row.address(settings)
        fix = None
        if row.needs_base_url and not address:
            fix = f"set PIXELMCP_{row.base_url_setting.upper()} (e.g. http://gpu-box:8000/v1)"
        elif row.key_required and not key_set:
            fix = f"set {' or '.join(row.key_env)} in the server's environment"
        compatible = not row.official
        infos.append(ProviderInfo(
            name=row.name, ready=fix is None, key_env=list(row.key_env), key_set=key_set, base_url=address,
            serves=list(row.serves), examples=list(row.examples), fix=fix, engine=row.engine if compatible else None,
            replicas=[ReplicaInfo(url=url) for url in row.addresses(settings)] if compatible else [],
        ))
    return infos
