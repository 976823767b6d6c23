"""Replicas of one OpenAI-compatible server: the least busy answers, a failing one rests a while.

Deliberately small. Each request goes to the replica with the fewest requests in flight from this
process (ties: the one used longest ago). A replica that cannot be reached or answers 5xx is
skipped for `rest_s` seconds, and the request is tried once more, at once, on another replica;
past that, the provider's ordinary retries (with backoff) take over. There is no health polling, no
weighting and no shared state between pixelmcp instances: for more, put the engine's own router
(SGLang's router, vLLM's production stack, NVIDIA Dynamo) in front and give pixelmcp its one URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from pixelmcp.providers.common import scrub

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a replica that failed is skipped.
REST_S = 30.0


@dataclass
class Replica:
    url: str | None  # None: the SDK's default address
    in_flight: int = 0
    last_used: float = 0.0
    resting_until: float = 0.0
    answered: int = 0
    failed: int = 0
    last_error: str | None = None

    def state(self, now: float) -> dict:
        return {"url": self.url, "in_flight": self.in_flight, "answered": self.answered, "failed": self.failed,
                "resting_s": round(max(0.0, self.resting_until - now), 1), "last_error": self.last_error}


class Replicas:
    """The replicas of one server and how each is doing, for one provider client."""

    def __init__(self, urls: tuple[str, ...] | tuple[None], rest_s: float = REST_S,
                 clock: Callable[[], float] = time.monotonic):
        self.replicas = [Replica(url) for url in urls]
        self.rest_s = rest_s
        self.clock = clock

    def pick(self, exclude: tuple[Replica, ...] = ()) -> Replica | None:
        """The least busy replica that is not resting (if all rest: the one that rests least); None if every
        replica is excluded."""
        candidates = [replica for replica in self.replicas if replica not in exclude]
        if not candidates:
            return None
        now = self.clock()
        awake = [replica for replica in candidates if replica.resting_until <= now]
        if not awake:
            return min(candidates, key=lambda replica: replica.resting_until)
        return min(awake, key=lambda replica: (replica.in_flight, replica.last_used))

    async def call(self, request: Callable[[str | None], Awaitable[T]],
                   replica_failed: Callable[[BaseException], bool]) -> T:
        """`request(url)` on the best replica; if that replica fails as `replica_failed` says (cannot connect,
        5xx), it rests and the request goes once to another one. Other failures are the request's own and
        propagate at once."""
        tried: tuple[Replica, ...] = ()
        while True:
            replica = self.pick(tried)
            tried += (replica,)
            try:
                return await self._on(replica, request)
            except Exception as e:
                if not replica_failed(e):
                    raise
                self._rest(replica, e)
                if len(tried) >= 2 or self.pick(tried) is None:
                    raise
                logger.warning("replica %s failed (%s); trying another replica", replica.url, e)

    async def _on(self, replica: Replica, request: Callable[[str | None], Awaitable[T]]) -> T:
        replica.in_flight += 1
        replica.last_used = self.clock()
        try:
            result = await request(replica.url)
        finally:
            replica.in_flight -= 1
        replica.answered += 1
        replica.resting_until = 0.0
        return result

    def _rest(self, replica: Replica, error: BaseException) -> None:
        replica.failed += 1
        replica.last_error = scrub(str(error) or type(error).__name__)[:200]
        if len(self.replicas) > 1:
            replica.resting_until = self.clock() + self.rest_s

    def states(self) -> list[dict]:
        now = self.clock()
        return [replica.state(now) for replica in self.replicas]
