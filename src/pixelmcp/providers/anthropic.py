"""Claude through the official `anthropic` SDK: questions about images (documents, charts, photos) and prompt
rewriting, with the Messages API.

Images go up as base64 content blocks before the question, as Anthropic recommends. Claude makes no
images, so `generate_image` and the other image-making tools refuse `anthropic:` models with a pointer
to what makes them. The SDK's own retries are off: `call_with_retries` retries as for every provider
(HTTP 429, 5xx and 529 "overloaded", timeouts, lost connections).
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

from PIL import Image

from pixelmcp.backends import Progress, VisionAnswer
from pixelmcp.catalog import ModelSpec
from pixelmcp.config import Settings
from pixelmcp.providers.common import (
    Failure,
    ProviderError,
    ProviderRefused,
    api_key,
    call_with_retries,
    error_message,
    png_bytes,
    status_failure,
)
from pixelmcp.registry import ProviderRow

#: The Messages API takes images of at most 5 MB each (base64 adds a third): larger PNGs go as JPEG.
MAX_IMAGE_BYTES = 3_750_000
#: Images per request the API accepts.
MAX_IMAGES = 100


class AnthropicProvider:
    """PromptRewriter's ChatCompleter and VisionAnswerer on the Anthropic Messages API."""

    def __init__(self, row: ProviderRow, settings: Settings):
        self.name = row.name
        self.settings = settings
        self.base_url = row.address(settings)  # None: the SDK's default, or its own ANTHROPIC_BASE_URL
        self.key_names = row.key_env
        self._clients: dict[str, Any] = {}

    @staticmethod
    def image_spec(row: ProviderRow, model: str) -> ModelSpec | None:
        """Claude models make no images."""
        return None

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    # ------------------------------------------------------------------ the protocols

    async def complete(self, model: str, system: str, user: str, progress: Progress) -> str:
        """One chat turn (prompt rewriting). The Messages API of this SDK takes no temperature: the rewriter's
        cache keeps a prompt's rewrite the same for the server's lifetime."""
        response = await self._call(lambda client: client.messages.create(
            model=model, system=system, max_tokens=self.settings.rewrite_max_new_tokens,
            messages=[{"role": "user", "content": user}],
        ), model, progress)
        text, _ = _answer_of(response, f"{self.name} ({model})")
        return text

    async def answer(self, spec: ModelSpec, images: list[Image.Image], question: str, max_tokens: int,
                     progress: Progress) -> VisionAnswer:
        """One user turn: every image as a base64 block, then the question."""
        what = f"{self.name} ({spec.source})"
        if len(images) > MAX_IMAGES:
            raise ProviderError(f"{what} takes at most {MAX_IMAGES} images per request; {len(images)} were given.")
        started = time.perf_counter()
        content: list[dict[str, Any]] = [_image_block(image) for image in images]
        content.append({"type": "text", "text": question})
        response = await self._call(lambda client: client.messages.create(
            model=spec.source, max_tokens=max_tokens, messages=[{"role": "user", "content": content}],
        ), spec.source, progress)
        text, tokens = _answer_of(response, what)
        return VisionAnswer(text=text, tokens=tokens, timings={"run_s": time.perf_counter() - started})

    # ------------------------------------------------------------------ the wire

    async def _call(self, request, model: str, progress: Progress):
        import anthropic

        key = api_key(self.name, self.key_names)
        client = self._client(key)
        return await call_with_retries(
            lambda: request(client), self._failure, (anthropic.APIError,), what=f"{self.name} ({model})",
            settings=self.settings, progress=progress, secrets=(key,),
        )

    def _client(self, key: str):
        if key not in self._clients:
            from anthropic import AsyncAnthropic

            self._clients[key] = AsyncAnthropic(
                api_key=key, base_url=self.base_url, max_retries=0,
                timeout=self.settings.provider_timeout_s + 5,  # the retry loop's own limit fires first
            )
        return self._clients[key]

    def _failure(self, error: BaseException) -> Failure:
        import anthropic

        if isinstance(error, anthropic.APITimeoutError):
            return Failure("the request timed out", retryable=True,
                           hint="Call again, or raise PIXELMCP_PROVIDER_TIMEOUT_S if this model is slow.")
        if isinstance(error, anthropic.APIConnectionError):
            where = self.base_url or "api.anthropic.com"
            return Failure(f"cannot connect to {where} ({error.__cause__ or error})", retryable=True,
                           hint="Check the network, or PIXELMCP_ANTHROPIC_BASE_URL if it is set.")
        if isinstance(error, anthropic.APIStatusError):
            message = error_message(error)
            if error.status_code == 529:
                return Failure(f"HTTP 529 (overloaded): {message}", retryable=True,
                               hint="Anthropic's service is overloaded; call again in a minute, or use another model.")
            return status_failure(error.status_code, message, error.response.headers)
        return Failure(str(error) or type(error).__name__)


def _image_block(image: Image.Image) -> dict[str, Any]:
    """A base64 image block: PNG, or JPEG where a PNG would pass the API's size limit."""
    data, media_type = png_bytes(image), "image/png"
    if len(data) > MAX_IMAGE_BYTES:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=90)
        data, media_type = buffer.getvalue(), "image/jpeg"
    return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                        "data": base64.b64encode(data).decode("ascii")}}


def _answer_of(response, what: str) -> tuple[str, int]:
    """The text of a Messages API response and its output tokens; a refusal or an empty answer is an error."""
    text = "".join(block.text for block in response.content or () if getattr(block, "type", "") == "text").strip()
    if response.stop_reason == "refusal":
        said = f" It said: {text}" if text else ""
        raise ProviderRefused(f"{what} refused the request.{said} Rephrase the request within the provider's "
                              "policy, or use a local model.")
    if not text and response.stop_reason == "max_tokens":
        raise ProviderError(f"{what} used up max_tokens before answering; raise max_tokens.")
    tokens = response.usage.output_tokens if response.usage is not None else 0
    return text, tokens or 0

