"""What every remote provider shares: keys from the environment, bounded retries with backoff,
failures turned into messages an assistant can act on, and image bytes in and out.

Each provider classifies its SDK's exceptions into a `Failure`; `call_with_retries` does the
rest the same way for all of them, so a 429 from Gemini and one from vLLM read alike.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import anyio
from PIL import Image

from pixelmcp.backends import CachedRewriter, ChatCompleter, ImageRequest, Progress
from pixelmcp.config import Settings
from pixelmcp.errors import PixelError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: A Retry-After longer than this is not waited for: the call fails with the provider's advice instead.
MAX_RETRY_AFTER_S = 60.0
MAX_BACKOFF_S = 30.0
HEARTBEAT_S = 10.0
#: Largest image a provider may send back (decoded pixels); real ones are at most ~4k a side.
MAX_RESULT_PIXELS = 64_000_000

_KEY_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-*]{6,}"),  # OpenAI keys, also as echoed masked in 401 messages
    re.compile(r"AIza[0-9A-Za-z_\-]{10,}"),  # Google API keys
)


class ProviderError(PixelError):
    """A remote provider failed (after the retries its failure allows)."""


class ProviderRefused(PixelError):
    """The provider declined the request under its content policy."""


class MissingKey(PixelError):
    """The provider needs an API key that is not in the server's environment."""


@dataclass
class Failure:
    """One attempt's failure, as a provider classified it."""

    message: str  # what happened, in the provider's words where it gave any (keys scrubbed)
    retryable: bool = False
    retry_after: float | None = None  # seconds the provider asked us to wait
    refusal: bool = False
    hint: str = ""  # what the caller can do about it


def api_key(provider: str, names: tuple[str, ...], *, required: bool = True) -> str | None:
    """The first of the environment variables `names` that is set; a clear error if none is and one is needed."""
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    if required:
        raise MissingKey(
            f"The {provider} provider needs an API key, and none is set: put it in {' or '.join(names)} in the "
            "server's environment (for desktop clients, the env block of pixelmcp's entry in the client config) and "
            "restart the server. Or use a local model: omit model, or pass a catalog alias (list_models)."
        )
    return None


def scrub(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    """`text` without any API key in it: keys never reach logs, results or errors."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    for pattern in _KEY_PATTERNS:
        text = pattern.sub("[redacted key]", text)
    return text


def retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if the response has them."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def status_failure(status: int, message: str, headers=None) -> Failure:
    """The failure an HTTP status means, the same for every provider."""
    if status == 429:
        return Failure(f"HTTP 429 (rate limited): {message}", retryable=True, retry_after=retry_after(headers),
                       hint="The provider is limiting this key's requests; wait a minute and call again, or use a "
                            "local model.")
    if status >= 500:
        return Failure(f"HTTP {status} (server error): {message}", retryable=True, retry_after=retry_after(headers),
                       hint="The provider's service is failing; call again later, or use a local model.")
    if status == 401:
        return Failure(f"HTTP 401 (key rejected): {message}",
                       hint="Check the API key in the server's environment (it may be wrong, expired or revoked).")
    if status == 403:
        return Failure(f"HTTP 403 (not allowed): {message}",
                       hint="This key may not use this model or feature (organisation verification, region, plan).")
    if status == 404:
        return Failure(f"HTTP 404 (not found): {message}",
                       hint="Check the model id after the provider prefix (and the base URL of the endpoint).")
    return Failure(f"HTTP {status}: {message}", hint="Fix the request as the provider's message says.")


def error_message(error) -> str:
    """The provider's own words for a failed request (`error.message` in the JSON body of an OpenAI- or
    Anthropic-style SDK's status error)."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(error, "message", "") or error)


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    classify: Callable[[BaseException], Failure],
    errors: tuple[type[BaseException], ...],
    *,
    what: str,
    settings: Settings,
    progress: Progress,
    secrets: tuple[str | None, ...] = (),
) -> T:
    """Run `call`, retrying what `classify` calls retryable, with exponential backoff; bounded in time and tries.

    `what` names the provider and model in progress messages and errors ("openai (gpt-image-1)").
    `errors` are the SDK's exception types `classify` understands; others propagate unchanged.
    """
    attempts = settings.provider_max_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            return await _attempt(call, what, settings.provider_timeout_s, progress)
        except TimeoutError:
            failure = Failure(f"no answer within {settings.provider_timeout_s:g} s", retryable=True,
                              hint="Call again, or raise PIXELMCP_PROVIDER_TIMEOUT_S if this model is slow.")
        except errors as e:
            failure = classify(e)
        failure.message = scrub(failure.message, secrets)
        if failure.refusal:
            raise ProviderRefused(f"{what} refused the request: {failure.message}. "
                                  f"{failure.hint or 'Rephrase the request within the provider policy.'}")
        waited_too_long = failure.retry_after is not None and failure.retry_after > MAX_RETRY_AFTER_S
        if not failure.retryable or attempt == attempts or waited_too_long:
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            if waited_too_long:
                failure.hint = f"The provider asks to wait {failure.retry_after:.0f} s; call again after that."
            raise ProviderError(f"{what} failed{tries}: {failure.message}. {failure.hint}".rstrip())
        delay = failure.retry_after if failure.retry_after is not None else min(
            MAX_BACKOFF_S, settings.provider_retry_base_s * 2 ** (attempt - 1))
        logger.warning("%s: %s; retry %d of %d in %.1f s", what, failure.message, attempt, attempts - 1, delay)
        await progress(0, None, f"{what}: {failure.message[:80]}; retry {attempt} of {attempts - 1} in {delay:.1f} s")
        await anyio.sleep(delay)
    raise AssertionError("unreachable")


async def _attempt(call: Callable[[], Awaitable[T]], what: str, timeout: float, progress: Progress) -> T:
    """One try, bounded by `timeout`, with a progress heartbeat so clients do not time out waiting."""
    started = time.perf_counter()
    outcome: list = []  # [result] or [None, exception]: raised outside the task group, not wrapped in a group
    await progress(0, None, f"waiting for {what}")
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tasks:
            async def beat() -> None:
                while True:
                    await anyio.sleep(HEARTBEAT_S)
                    await progress(0, None, f"waiting for {what}: {time.perf_counter() - started:.0f} s")

            async def run() -> None:
                try:
                    outcome.append(await call())
                except Exception as e:  # noqa: BLE001 (classified by the caller; re-raised below)
                    outcome.extend([None, e])
                tasks.cancel_scope.cancel()

            tasks.start_soon(beat)
            tasks.start_soon(run)
    if len(outcome) == 2:
        raise outcome[1]
    return outcome[0]


# --------------------------------------------------------------------------- rewriting


class RemoteRewriter(CachedRewriter):
    """A PromptRewriter on a provider's chat model (temperature 0 where the model allows; answers cached)."""

    def __init__(self, provider: ChatCompleter, model: str):
        super().__init__()
        self.provider = provider
        self.model = model
        self.name = f"{provider.name}:{model}"

    async def reply(self, system: str, user: str, progress: Progress) -> str:
        return await self.provider.complete(self.model, system, user, progress)


# --------------------------------------------------------------------------- images

STYLE_INSTRUCTION = ("Create a new image of the following, in the visual style of the reference image (its colours, "
                     "texture, lighting and medium) but not its content: ")
SUBJECT_INSTRUCTION = "Create a new image featuring the subject of the reference image, as follows: "
STRUCTURE_INSTRUCTION = " Keep the composition and layout of the second image."


def reference_instruction(request: ImageRequest) -> str:
    """The prompt for a provider that edits from a reference image (style_transfer): the image comes first."""
    instruction = STYLE_INSTRUCTION if request.style.mode == "style" else SUBJECT_INSTRUCTION
    return instruction + request.model_prompt + (STRUCTURE_INSTRUCTION if request.control is not None else "")

#: For a provider without masks (Gemini): the mask rides along as a second image.
MASK_INSTRUCTION = (" Change only the area that is white in the second image (a mask); keep everything in its black "
                    "area exactly as it is, and return the whole image at the same framing.")


def edit_instruction(request: ImageRequest, mask_as_image: bool) -> str:
    """The prompt for a provider that edits the given image (edit_image, extend_image)."""
    instruction = "Edit this image: " + request.model_prompt
    return instruction + (MASK_INSTRUCTION if mask_as_image and request.edit.mask is not None else "")


def edit_images(request: ImageRequest) -> tuple[Image.Image, Image.Image | None]:
    """The image to edit at the request's size, and its mask there in OpenAI's convention (RGBA, transparent =
    repaint), or None without a mask."""
    from pixelmcp.media.editing import model_inputs

    size = (request.width, request.height)
    image, mask = model_inputs(request.edit.image, request.edit.mask, size, grow=0)
    if mask is None:
        return image, None
    transparent = Image.new("RGBA", size, (0, 0, 0, 255))
    transparent.putalpha(mask.point(lambda v: 255 - v))
    return image, transparent


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_uri(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def decode_image(data: bytes | str, what: str) -> Image.Image:
    """An image a provider sent back (raw or base64 bytes), fully decoded; a ProviderError if it is not one."""
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else data
    except ValueError as e:
        raise ProviderError(f"{what} returned image data that is not valid base64 ({e}).") from e
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            if opened.width * opened.height > MAX_RESULT_PIXELS:
                raise ProviderError(f"{what} returned a {opened.width}x{opened.height} image, over the "
                                    f"{MAX_RESULT_PIXELS:,} pixel limit.")
            opened.load()
            return opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
    except ProviderError:
        raise
    except Exception as e:  # Pillow fails on malformed data with many exception types (see media/images.py)
        raise ProviderError(f"{what} returned data that is not a readable image ({type(e).__name__}: {e}).") from e
