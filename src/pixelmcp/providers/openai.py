"""OpenAI, and any server that speaks its API (vLLM, Ollama, LM Studio, TGI), through the official SDK.

One class serves both: the official API makes images (gpt-image-1, dall-e-3), answers questions
about images and rewrites prompts through chat; an OpenAI-compatible endpoint does the chat
parts. Images go up as PNG data URIs and come back as base64. The SDK's own retries are off:
`call_with_retries` retries the same way for every provider.
"""

from __future__ import annotations

import re
import time
from typing import Any

from PIL import Image

from pixelmcp.backends import GeneratedImages, ImageRequest, Progress, VisionAnswer
from pixelmcp.catalog import ModelSpec
from pixelmcp.config import Settings
from pixelmcp.providers.common import (
    Failure,
    ProviderError,
    ProviderRefused,
    api_key,
    call_with_retries,
    data_uri,
    decode_image,
    edit_images,
    edit_instruction,
    error_message,
    png_bytes,
    reference_instruction,
    status_failure,
)
from pixelmcp.registry import ProviderRow

#: Codes OpenAI gives a request its safety system blocked.
_REFUSAL_CODES = {"content_policy_violation", "moderation_blocked", "content_filter"}
#: Reasoning models reject `temperature` and count thinking in the token cap: both are left to the API.
_NO_TEMPERATURE = re.compile(r"^(o\d|gpt-5)")

#: OpenAI image models by id prefix: the sizes each makes, how many per call, and whether it edits
#: from reference images. (DALL-E 3 also rewrites prompts itself and returns what it used.)
IMAGE_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("gpt-image", {"sizes": ((1024, 1024), (1536, 1024), (1024, 1536)), "max_n": 10, "takes_reference": True}),
    ("dall-e-3", {"sizes": ((1024, 1024), (1792, 1024), (1024, 1792)), "max_n": 1}),
    ("dall-e-2", {"sizes": ((256, 256), (512, 512), (1024, 1024)), "max_n": 10}),
)


def remote_image_spec(provider: str, model: str, **limits) -> ModelSpec:
    """A remote image model: it takes a prompt and a size, and no seed, steps, guidance or negative prompt."""
    width, height = limits["sizes"][0]
    return ModelSpec(
        alias=f"{provider}:{model}", kind="remote-image", source=model, provider=provider, default_width=width,
        default_height=height, takes_seed=False, takes_steps=False, takes_guidance=False, negative_prompt=False,
        default_guidance=0.0, min_guidance=0.0, max_guidance=0.0, default_steps=1, **limits,
    )


class OpenAIProvider:
    """ImageGenerator, PromptRewriter and VisionAnswerer on the OpenAI API (or a compatible server)."""

    def __init__(self, row: ProviderRow, settings: Settings):
        self.name = row.name  # the provider prefix: openai, openai-compatible, or an endpoint's name
        self.settings = settings
        self.base_url = row.address(settings)
        self.key_names = row.key_env
        self.key_required = row.key_required
        self.official = row.official
        self._clients: dict[str | None, Any] = {}

    @staticmethod
    def image_spec(row: ProviderRow, model: str) -> ModelSpec | None:
        """The catalog-style entry of an OpenAI image model, or None if `model` is not one."""
        for prefix, limits in IMAGE_MODELS:
            if model.startswith(prefix):
                return remote_image_spec(row.name, model, **limits)
        return None

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    # ------------------------------------------------------------------ the protocols

    async def generate(self, request: ImageRequest, progress: Progress) -> GeneratedImages:
        """Text to image (images.generate); from reference images (images.edit, style_transfer on gpt-image
        models); an edit of the given image within its mask (images.edit with `mask`); base64 results,
        DALL-E 3's revised prompt kept."""
        spec = request.spec
        params: dict[str, Any] = {"model": spec.source, "prompt": request.model_prompt, "n": len(request.seeds),
                                  "size": f"{request.width}x{request.height}"}
        if spec.source.startswith("dall-e"):
            params["response_format"] = "b64_json"  # newer models always answer in base64 and refuse the field
        started = time.perf_counter()
        if request.edit is not None:  # edit_image / extend_image: the image, and where to repaint it
            image, mask = edit_images(request)
            params.update(prompt=edit_instruction(request, mask_as_image=False),
                          image=[("image.png", png_bytes(image), "image/png")])
            if mask is not None:
                params["mask"] = ("mask.png", png_bytes(mask), "image/png")
            response = await self._call(lambda client: client.images.edit(**params), spec.source, progress)
        elif request.style is not None:
            references = [("reference.png", png_bytes(request.style.image), "image/png")]
            if request.control is not None:
                references.append(("structure.png", png_bytes(request.control.image), "image/png"))
            params["prompt"] = reference_instruction(request)
            params["image"] = references
            response = await self._call(lambda client: client.images.edit(**params), spec.source, progress)
        else:
            response = await self._call(lambda client: client.images.generate(**params), spec.source, progress)
        items = list(response.data or [])
        what = f"{self.name} ({spec.source})"
        if len(items) != len(request.seeds) or any(not item.b64_json for item in items):
            raise ProviderError(f"{what} sent {sum(bool(item.b64_json) for item in items)} image(s) as base64 for "
                                f"{len(request.seeds)} requested; call again.")
        images = [decode_image(item.b64_json, what) for item in items]
        return GeneratedImages(images=images, scheduler=None, device=self._where(), batch_size=1,
                          timings={"run_s": time.perf_counter() - started},
                          revised_prompt=items[0].revised_prompt or None)

    async def complete(self, model: str, system: str, user: str, progress: Progress) -> str:
        """One chat turn (prompt rewriting): temperature 0 where the model allows it."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        text, _ = await self._chat(model, messages, self.settings.rewrite_max_new_tokens, progress)
        return text

    async def answer(self, spec: ModelSpec, images: list[Image.Image], question: str, max_tokens: int,
                     progress: Progress) -> VisionAnswer:
        """One user message holding the question and every image, as data URIs."""
        started = time.perf_counter()
        content: list[dict[str, Any]] = [{"type": "text", "text": question}]
        content += [{"type": "image_url", "image_url": {"url": data_uri(image)}} for image in images]
        text, tokens = await self._chat(spec.source, [{"role": "user", "content": content}], max_tokens, progress)
        return VisionAnswer(text=text, tokens=tokens, timings={"run_s": time.perf_counter() - started})

    # ------------------------------------------------------------------ the wire

    async def _chat(self, model: str, messages: list[dict], max_tokens: int, progress: Progress) -> tuple[str, int]:
        params: dict[str, Any] = {"model": model, "messages": messages}
        # The official API wants max_completion_tokens (reasoning models count their thinking in it,
        # so they get no cap: the instructions bound the answer); compatible servers
        # (vLLM, Ollama) all understand the older max_tokens.
        reasoning = self.official and _NO_TEMPERATURE.match(model)
        if not reasoning:
            params["max_completion_tokens" if self.official else "max_tokens"] = max_tokens
            params["temperature"] = 0
        response = await self._call(lambda client: client.chat.completions.create(**params), model, progress)
        if not response.choices:
            raise ProviderError(f"{self.name} ({model}) returned no answer; call again.")
        choice = response.choices[0]
        refusal = getattr(choice.message, "refusal", None)
        if refusal or choice.finish_reason == "content_filter":
            raise ProviderRefused(f"{self.name} ({model}) refused the request: "
                                  f"{refusal or 'its content filter stopped the answer'}. "
                                  "Rephrase the request within the provider's policy, or use a local model.")
        tokens = response.usage.completion_tokens if response.usage is not None else 0
        return choice.message.content or "", tokens or 0

    async def _call(self, request, model: str, progress: Progress):
        import openai

        key = api_key(self.name, self.key_names, required=self.key_required)
        client = self._client(key)
        return await call_with_retries(
            lambda: request(client), self._failure, (openai.APIError,), what=f"{self.name} ({model})",
            settings=self.settings, progress=progress, secrets=(key,),
        )

    def _client(self, key: str | None):
        if key not in self._clients:
            from openai import AsyncOpenAI

            # A compatible server without auth still needs some bearer value in the SDK.
            self._clients[key] = AsyncOpenAI(
                api_key=key or "no-key", base_url=self.base_url, max_retries=0,
                timeout=self.settings.provider_timeout_s + 5,  # the retry loop's own limit fires first
            )
        return self._clients[key]

    def _where(self) -> str:
        return self.base_url or "api.openai.com"

    def _failure(self, error: BaseException) -> Failure:
        """What an SDK exception means for the caller."""
        import openai

        if isinstance(error, openai.APITimeoutError):
            return Failure("the request timed out", retryable=True,
                           hint="Call again, or raise PIXELMCP_PROVIDER_TIMEOUT_S if this model is slow.")
        if isinstance(error, openai.APIConnectionError):
            return Failure(f"cannot connect to {self._where()} ({error.__cause__ or error})", retryable=True,
                           hint="Check that the server is running and its base URL is right.")
        if isinstance(error, openai.APIStatusError):
            message = error_message(error)
            code = getattr(error, "code", None)
            if code in _REFUSAL_CODES:
                return Failure(message, refusal=True,
                               hint="Rephrase the prompt within the provider's policy, or use a local model.")
            if error.status_code == 429 and code == "insufficient_quota":
                return Failure(f"HTTP 429 (quota used up): {message}",
                               hint="Add credit or raise the key's limits, or use a local model.")
            return status_failure(error.status_code, message, error.response.headers)
        return Failure(str(error) or type(error).__name__)

