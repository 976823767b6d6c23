"""Whether OpenAI-compatible endpoints answer: a GET of `/models` on each base URL, with a short timeout, for
list_models and `doctor`. Answers are kept briefly, so asking often costs the servers nothing."""

from __future__ import annotations

import os
import time

import anyio

from pixelmcp.providers.common import scrub
from pixelmcp.registry import ProviderInfo

PROBE_TIMEOUT_S = 3.0
#: How long an answer is reused.
KEEP_S = 15.0

_answers: dict[str, tuple[float, bool, str | None]] = {}


async def probe(url: str, key: str | None, timeout: float = PROBE_TIMEOUT_S) -> tuple[bool, str | None]:
    """(answers, why not) for the server at base URL `url`."""
    import httpx

    kept = _answers.get(url)
    if kept is not None and time.monotonic() - kept[0] < KEEP_S:
        return kept[1], kept[2]
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(url.rstrip("/") + "/models", headers=headers)
        answers = response.status_code < 500
        detail = None if answers else f"HTTP {response.status_code} from GET /models"
    except httpx.HTTPError as e:
        answers, detail = False, scrub(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, (key,))
    _answers[url] = (time.monotonic(), answers, detail)
    return answers, detail


async def check_endpoints(infos: list[ProviderInfo], states: dict[str, list[dict]] | None = None) -> None:
    """Fill in, for each ready OpenAI-compatible endpoint, whether each of its replicas answers (all asked at
    once), and from `states` (provider name -> Replicas.states()) how this server's requests to them went."""
    states = states or {}

    async def one(info: ProviderInfo, index: int) -> None:
        replica = info.replicas[index]
        key = next((os.environ[k].strip() for k in info.key_env if os.environ.get(k, "").strip()), None)
        replica.answers, replica.detail = await probe(replica.url, key)

    async with anyio.create_task_group() as tasks:
        for info in infos:
            if not info.ready:
                continue
            for index, replica in enumerate(info.replicas):
                seen = next((s for s in states.get(info.name, []) if s["url"] == replica.url), None)
                if seen is not None:
                    replica.in_flight, replica.answered, replica.failed = (seen["in_flight"], seen["answered"],
                                                                           seen["failed"])
                    replica.resting_s = seen["resting_s"]
                tasks.start_soon(one, info, index)
