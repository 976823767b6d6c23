"""Remote backends (OpenAI, Gemini, OpenAI-compatible, MCP sampling) behind the protocols in
pixelmcp.backends, and what a user or an assistant needs to know to use them."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from pixelmcp.config import Settings


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


def provider_infos(settings: Settings) -> list[ProviderInfo]:
    vision = ["ask_about_image", "compare_images", "rewrite_prompt"]
    entries = [
        ("openai", ["OPENAI_API_KEY"], True, settings.openai_base_url, ["generate_image", *vision],
         ["openai:gpt-image-1", "openai:dall-e-3", "openai:gpt-4o", "openai:gpt-4.1-mini"]),
        ("gemini", ["GEMINI_API_KEY", "GOOGLE_API_KEY"], True, settings.gemini_base_url,
         ["generate_image", "style_transfer", *vision],
         ["gemini:gemini-2.5-flash-image", "gemini:gemini-2.5-flash"]),
        ("openai-compatible", ["OPENAI_COMPATIBLE_API_KEY"], False, settings.openai_compatible_base_url, vision,
         ["openai-compatible:MODEL (the id the server serves, e.g. Qwen/Qwen2.5-VL-7B-Instruct)"]),
    ]
    for name, endpoint in settings.endpoints.items():
        keys = [endpoint.api_key_env] if endpoint.api_key_env else []
        entries.append((name, keys, bool(keys), endpoint.base_url, vision, [f"{name}:MODEL"]))
    infos = []
    for name, keys, key_required, base_url, serves, examples in entries:
        key_set = any(os.environ.get(key, "").strip() for key in keys)
        needs_url = name not in ("openai", "gemini")
        fix = None
        if needs_url and not base_url:
            fix = "set PIXELMCP_OPENAI_COMPATIBLE_BASE_URL (e.g. http://gpu-box:8000/v1)"
        elif key_required and not key_set:
            fix = f"set {' or '.join(keys)} in the server's environment"
        infos.append(ProviderInfo(name=name, ready=fix is None, key_env=keys, key_set=key_set, base_url=base_url,
                                  serves=serves, examples=examples, fix=fix))
    return infos
