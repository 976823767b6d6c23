"""OpenAI, and any server that speaks its API (vLLM, SGLang, vLLM-Omni, Ollama, LM Studio, TGI), through the
official SDK.

One class serves both: the official API makes images (gpt-image-1, dall-e-3), answers questions
about images and rewrites prompts through chat; an OpenAI-compatible endpoint does what its config
says it serves: chat, vision, and images on image engines (SGLang Diffusion, vLLM-Omni), whose extra
fields (seed, steps, guidance, negative prompt) go along where the engine's API takes them. Images go
up as PNG data URIs or multipart files and come back as base64 (or a URL on the same server). The
SDK's own retries are off: `call_with_retries` retries the same way for every provider, and an
endpoint with several base URLs spreads its requests over them (providers/replicas.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
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
from pixelmcp.providers.replicas import Replicas
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


#: Largest image an engine may link to instead of sending it (bytes).
MAX_LINKED_BYTES = 64 * 1024 * 1024


def remote_image_spec(provider: str, model: str, **limits) -> ModelSpec:
    """A remote image model: it takes a prompt and a size, and no seed, steps, guidance or negative prompt."""
    width, height = limits["sizes"][0]
    return ModelSpec(
        alias=f"{provider}:{model}", kind="remote-image", source=model, provider=provider, default_width=width,
        default_height=height, takes_seed=False, takes_steps=False, takes_guidance=False, negative_prompt=False,
        default_guidance=0.0, min_guidance=0.0, max_guidance=0.0, default_steps=1, **limits,
    )


def engine_image_spec(row: ProviderRow, model: str) -> ModelSpec | None:
    """An image model on an OpenAI-compatible engine, as its endpoint's config describes it; None if the endpoint
    lists its image models and `model` is not one. SGLang and vLLM-Omni take a seed, steps, guidance and a
    negative prompt (those the caller omits are the engine's own); a plain OpenAI-style server takes none."""
    if row.image_models and model not in row.image_models:
        return None
    extras = row.engine != "openai"
    width, height = row.sizes[0] if row.sizes else (1024, 1024)
    return ModelSpec(
        alias=f"{row.name}:{model}", kind="remote-image", source=model, provider=row.name, default_width=width,
        default_height=height, min_side=64, max_side=4096, multiple_of=8 if row.sizes else 16, sizes=row.sizes,
        max_n=row.max_n, takes_seed=extras, takes_steps=extras, takes_guidance=extras, negative_prompt=extras,
        engine_defaults=True, takes_reference="edit_image" in row.serves,
        description=f"{model} on the {row.engine} image API of {row.name}",
    )


def engine_fields(request: ImageRequest, seed: int | None) -> dict[str, Any]:
    """The fields beyond OpenAI's that SGLang Diffusion and vLLM-Omni take, for what the request sets (their
    APIs: `seed`, `num_inference_steps`, `guidance_scale`, `negative_prompt`)."""
    fields: dict[str, Any] = {"seed": seed, "num_inference_steps": request.steps,
                              "guidance_scale": request.guidance_scale, "negative_prompt": request.negative_prompt}
    return {name: value for name, value in fields.items() if value is not None}


class OpenAIProvider:
    """ImageGenerator, PromptRewriter and VisionAnswerer on the OpenAI API (or a compatible server)."""

    def __init__(self, row: ProviderRow, settings: Settings):
        self.name = row.name  # the provider prefix: openai, openai-compatible, or an endpoint's name
        self.settings = settings
        self.replicas = Replicas(row.addresses(settings) or (None,))
        self.key_names = row.key_env
        self.key_required = row.key_required
        self.official = row.official
        self.engine = row.engine
        self._clients: dict[tuple[str | None, str | None], Any] = {}

    @staticmethod
    def image_spec(row: ProviderRow, model: str) -> ModelSpec | None:
        """The catalog-style entry of an image model `row` serves, or None if `model` is not one."""
        if not row.official:
            return engine_image_spec(row, model)
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
        if not self.official:
            return await self._engine_generate(request, progress)
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

    async def _engine_generate(self, request: ImageRequest, progress: Progress) -> GeneratedImages:
        """Images on an OpenAI-compatible engine: one call per image where a seed makes it (image i from
        seed + i, each reproducible alone, and spread over the replicas), else one call for all of them."""
        started = time.perf_counter()
        seeds = request.seeds
        calls = [(seed, 1) for seed in seeds] if seeds[0] is not None else [(None, len(seeds))]
        outcomes: list[Any] = [None] * len(calls)

        async def one(index: int, seed: int | None, n: int) -> None:
            try:
                outcomes[index] = await self._engine_call(request, seed, n, progress)
            except Exception as e:  # noqa: BLE001 (re-raised below, outside the task group)
                outcomes[index] = e

        async with anyio.create_task_group() as tasks:
            for index, (seed, n) in enumerate(calls):
                tasks.start_soon(one, index, seed, n)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        images = [image for batch in outcomes for image in batch]
        return GeneratedImages(images=images, scheduler=None, device=self._where(), batch_size=1,
                               timings={"run_s": time.perf_counter() - started})

    async def _engine_call(self, request: ImageRequest, seed: int | None, n: int,
                           progress: Progress) -> list[Image.Image]:
        """One images.generate (or images.edit, for an edit or a reference image) on the engine."""
        spec = request.spec
        what = f"{self.name} ({spec.source})"
        params: dict[str, Any] = {"model": spec.source, "prompt": request.model_prompt, "n": n,
                                  "size": f"{request.width}x{request.height}", "response_format": "b64_json",
                                  "extra_body": engine_fields(request, seed)}
        if request.edit is not None:
            image, mask = edit_images(request)
            # A mask goes as OpenAI's field where the engine speaks plain OpenAI; other engines edit the whole
            # image from the instruction, and the tool puts the original back outside the mask either way.
            mask = mask if self.engine == "openai" else None
            params.update(prompt=edit_instruction(request, mask_as_image=False),
                          image=[("image.png", png_bytes(image), "image/png")])
            if mask is not None:
                params["mask"] = ("mask.png", png_bytes(mask), "image/png")
        elif request.style is not None:
            params.update(prompt=reference_instruction(request),
                          image=[("reference.png", png_bytes(request.style.image), "image/png")]
                          + ([("structure.png", png_bytes(request.control.image), "image/png")]
                             if request.control is not None else []))
        method = "edit" if "image" in params else "generate"

        async def images_from(client) -> list[Image.Image]:
            response = await getattr(client.images, method)(**params)
            items = list(response.data or [])
            if len(items) != n or not all(item.b64_json or item.url for item in items):
                raise ProviderError(f"{what} sent {sum(bool(item.b64_json or item.url) for item in items)} "
                                    f"image(s) for {n} requested; call again.")
            return [decode_image(item.b64_json, what) if item.b64_json
                    else decode_image(await self._linked(client, item.url, what), what) for item in items]

        return await self._call(images_from, spec.source, progress)

    async def _linked(self, client, url: str, what: str) -> bytes:
        """An image the engine answered with a link to (absolute, or a path on the server that answered)."""
        import httpx

        target = httpx.URL(str(client.base_url)).join(url)
        headers = {"authorization": f"Bearer {client.api_key}"} if client.api_key != "no-key" else {}
        try:
            async with (httpx.AsyncClient(timeout=self.settings.provider_timeout_s, follow_redirects=True) as http,
                        http.stream("GET", target, headers=headers) as response):
                if response.status_code != 200:
                    raise ProviderError(f"{what} linked its image at {target}, which answered HTTP "
                                        f"{response.status_code}; call again.")
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > MAX_LINKED_BYTES:
                        raise ProviderError(f"{what} linked an image over {MAX_LINKED_BYTES:,} bytes.")
                return bytes(data)
        except httpx.HTTPError as e:
            raise ProviderError(f"{what} linked its image at {target}, which could not be fetched "
                                f"({type(e).__name__}: {e}); call again.") from e

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

    async def _call(self, request: Callable[[Any], Awaitable[Any]], model: str, progress: Progress):
        """`request(client)` with the provider's retries, each attempt on the best replica (a failing replica
        hands the attempt to another one at once)."""
        import openai

        key = api_key(self.name, self.key_names, required=self.key_required)
        return await call_with_retries(
            lambda: self.replicas.call(lambda url: request(self._client(key, url)), self._replica_failed),
            self._failure, (openai.APIError,), what=f"{self.name} ({model})", settings=self.settings,
            progress=progress, secrets=(key,),
        )

    def _client(self, key: str | None, url: str | None):
        if (key, url) not in self._clients:
            from openai import AsyncOpenAI

            # A compatible server without auth still needs some bearer value in the SDK.
            self._clients[key, url] = AsyncOpenAI(
                api_key=key or "no-key", base_url=url, max_retries=0,
                timeout=self.settings.provider_timeout_s + 5,  # the retry loop's own limit fires first
            )
        return self._clients[key, url]

    @staticmethod
    def _replica_failed(error: BaseException) -> bool:
        """A failure of the server that answered (not of the request): another replica may do better."""
        import openai

        if isinstance(error, openai.APIConnectionError):  # (timeouts included)
            return True
        return isinstance(error, openai.APIStatusError) and error.status_code >= 500

    def _where(self) -> str:
        urls = [replica.url for replica in self.replicas.replicas if replica.url]
        return ", ".join(urls) if urls else "api.openai.com"

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

