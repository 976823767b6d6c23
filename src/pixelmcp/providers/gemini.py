"""Gemini through the official `google-genai` SDK: images (also from a reference image), questions
about images, and prompt rewriting, all with `generate_content`.

Image models answer with `inline_data` parts; one call makes one image, so `n` images are `n`
concurrent calls. Their size is chosen by aspect ratio: `width` and `height` must be one of
the sizes in GEMINI_IMAGE_SIZES, and the result reports the size the model made.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from PIL import Image

from pixelmcp.backends import GeneratedImages, ImageRequest, Progress, VisionAnswer
from pixelmcp.catalog import ModelSpec
from pixelmcp.config import Settings
from pixelmcp.errors import PixelError
from pixelmcp.providers.common import (
    Failure,
    ProviderError,
    ProviderRefused,
    api_key,
    call_with_retries,
    decode_image,
    edit_images,
    edit_instruction,
    png_bytes,
    reference_instruction,
    status_failure,
)
from pixelmcp.providers.openai import remote_image_spec
from pixelmcp.registry import ProviderRow

#: Gemini image models' output sizes, by the aspect ratio that asks for them.
GEMINI_IMAGE_SIZES: dict[tuple[int, int], str] = {
    (1024, 1024): "1:1", (832, 1248): "2:3", (1248, 832): "3:2", (864, 1184): "3:4", (1184, 864): "4:3",
    (896, 1152): "4:5", (1152, 896): "5:4", (768, 1344): "9:16", (1344, 768): "16:9", (1536, 672): "21:9",
}
#: Finish reasons that mean the provider's safety system stopped the answer.
_REFUSALS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
             "RECITATION", "IMAGE_RECITATION", "MODEL_ARMOR"}



class GeminiProvider:
    """ImageGenerator, PromptRewriter and VisionAnswerer on the Gemini API."""

    def __init__(self, row: ProviderRow, settings: Settings):
        self.name = row.name
        self.key_names = row.key_env
        self.base_url = row.address(settings)
        self.settings = settings
        self._clients: dict[str, Any] = {}

    @staticmethod
    def image_spec(row: ProviderRow, model: str) -> ModelSpec | None:
        """Gemini image-output models (their ids name `image`); Imagen's separate API is not one of them."""
        if "image" not in model or model.startswith("imagen"):
            return None
        return remote_image_spec(row.name, model, sizes=tuple(GEMINI_IMAGE_SIZES), max_n=None, takes_reference=True)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aio.aclose()
        self._clients.clear()

    # ------------------------------------------------------------------ the protocols

    async def generate(self, request: ImageRequest, progress: Progress) -> GeneratedImages:
        """`n` images from `n` concurrent calls; a reference image (style_transfer), or the image to edit and its mask
        (edit_image), ride along as image parts."""
        spec = request.spec
        from google.genai import types

        contents: list[Any] = [request.model_prompt]
        if request.edit is not None:  # editing by instruction; a mask goes along as a second image
            image, _ = edit_images(request)
            contents = [edit_instruction(request, mask_as_image=True), _part(image)]
            if request.edit.mask is not None:
                contents.append(_part(request.edit.mask.convert("L").resize(image.size)))
        elif request.style is not None:
            contents = [reference_instruction(request), _part(request.style.image)]
            if request.control is not None:
                contents.append(_part(request.control.image))
        config = types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],  # text too, so a refusal comes with its reason
            image_config=types.ImageConfig(aspect_ratio=GEMINI_IMAGE_SIZES[(request.width, request.height)]),
        )
        started = time.perf_counter()
        images: list[Image.Image | None] = [None] * len(request.seeds)
        failures: list[PixelError] = []  # the first one is raised as itself, not inside an exception group

        async def make(index: int) -> None:
            try:
                response = await self._call(spec.source, contents, config, progress)
                images[index] = _image_from(response, f"{self.name} ({spec.source})")
            except PixelError as e:
                failures.append(e)
                tasks.cancel_scope.cancel()  # the other images are not wanted without this one

        async with anyio.create_task_group() as tasks:
            for index in range(len(images)):
                tasks.start_soon(make, index)
        if failures:
            raise failures[0]
        return GeneratedImages(images=[image for image in images if image is not None], scheduler=None,
                          device=self.base_url or "generativelanguage.googleapis.com",
                          timings={"run_s": time.perf_counter() - started})

    async def complete(self, model: str, system: str, user: str, progress: Progress) -> str:
        """One chat turn (prompt rewriting) at temperature 0, with no output cap: thinking models count
        their reasoning in it, and the instructions bound the answer."""
        from google.genai import types

        config = types.GenerateContentConfig(system_instruction=system, temperature=0)
        response = await self._call(model, [user], config, progress)
        return _text_from(response, f"{self.name} ({model})")

    async def answer(self, spec: ModelSpec, images: list[Image.Image], question: str, max_tokens: int,
                     progress: Progress) -> VisionAnswer:
        from google.genai import types

        started = time.perf_counter()
        config = types.GenerateContentConfig(max_output_tokens=max_tokens, temperature=0)
        response = await self._call(spec.source, [question, *(_part(image) for image in images)], config, progress)
        text = _text_from(response, f"{self.name} ({spec.source})")
        usage = response.usage_metadata
        tokens = (usage.candidates_token_count or 0) if usage is not None else 0
        return VisionAnswer(text=text, tokens=tokens, timings={"run_s": time.perf_counter() - started})

    # ------------------------------------------------------------------ the wire

    async def _call(self, model: str, contents: list[Any], config, progress: Progress):
        import httpx
        import httpx2
        from google.genai import errors

        key = api_key(self.name, self.key_names)
        client = self._client(key)
        return await call_with_retries(
            lambda: client.aio.models.generate_content(model=model, contents=contents, config=config),
            _failure, (errors.APIError, httpx.TransportError, httpx2.TransportError), what=f"{self.name} ({model})",
            settings=self.settings, progress=progress, secrets=(key,),
        )

    def _client(self, key: str):
        if key not in self._clients:
            from google import genai
            from google.genai import types

            options = types.HttpOptions(
                base_url=self.base_url,
                timeout=int((self.settings.provider_timeout_s + 5) * 1000),  # ms; the retry loop's limit fires first
            )
            self._clients[key] = genai.Client(api_key=key, http_options=options)
        return self._clients[key]


def _part(image: Image.Image):
    from google.genai import types

    return types.Part.from_bytes(data=png_bytes(image), mime_type="image/png")


def _failure(error: BaseException) -> Failure:
    from google.genai import errors

    if isinstance(error, errors.APIError):
        message = error.message or error.status or str(error)
        if error.code == 400 and "api key" in message.lower():
            return Failure(f"HTTP 400 (key rejected): {message}",
                           hint="Check GEMINI_API_KEY (or GOOGLE_API_KEY) in the server's environment.")
        response = getattr(error, "response", None)
        return status_failure(error.code or 0, message, getattr(response, "headers", None))
    return Failure(f"cannot connect ({type(error).__name__}: {error})", retryable=True,
                   hint="Check the network, or PIXELMCP_GEMINI_BASE_URL if it is set.")


def _check_blocked(response, what: str) -> None:
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        reason = getattr(feedback.block_reason, "value", feedback.block_reason)
        detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        raise ProviderRefused(f"{what} refused the request (prompt blocked, {reason}{detail}). "
                              "Rephrase the request within the provider's policy, or use a local model.")


def _candidate(response, what: str):
    _check_blocked(response, what)
    if not response.candidates:
        raise ProviderError(f"{what} returned no answer; call again.")
    candidate = response.candidates[0]
    reason = getattr(candidate.finish_reason, "value", candidate.finish_reason) or ""
    parts = candidate.content.parts if candidate.content is not None and candidate.content.parts else []
    text = " ".join(part.text for part in parts if part.text and not part.thought).strip()
    if reason in _REFUSALS:
        said = f" It said: {text}" if text else ""
        raise ProviderRefused(f"{what} refused the request (finish reason {reason}).{said} "
                              "Rephrase the request within the provider's policy, or use a local model.")
    return candidate, parts, text, reason


def _text_from(response, what: str) -> str:
    _, _, text, reason = _candidate(response, what)
    if not text and reason == "MAX_TOKENS":
        raise ProviderError(f"{what} used up its output tokens before answering (thinking models count their "
                            "reasoning); raise max_tokens.")
    return text


def _image_from(response, what: str) -> Image.Image:
    _, parts, text, reason = _candidate(response, what)
    for part in parts:
        blob = part.inline_data
        if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
            return decode_image(blob.data, what)
    said = f" Its reply: {text[:300]!r}." if text else ""
    raise ProviderError(f"{what} returned no image (finish reason {reason or 'none'}).{said} Describe the image "
                        "to make in plain words, or call again.")
