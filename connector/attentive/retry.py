"""Exponential backoff with full jitter, and a simple retry loop for callers without an engine.

The delivery engine has its own loop (it also tracks record age, circuits and auth pauses); it uses
:class:`Backoff` for the delays. :func:`send_with_retries` is for simple callers (tools, scripts).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from connector.attentive.client import ApiResponse
from connector.config import RetrySettings
from connector.errors import ApiError
from connector.observability.metrics import Metrics
from connector.types import Call


class Backoff:
    """``delay(attempt)`` = uniform(0, min(cap, base * 2^(attempt-1))) — "full jitter", so retries from many
    workers spread out instead of hitting Attentive together. A server ``Retry-After`` is a floor (capped)."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        if base_s <= 0 or cap_s <= 0:
            raise ValueError("base_s and cap_s must be positive")
        self.base_s = base_s
        self.cap_s = cap_s
        self._rng = rng if rng is not None else random.Random()

    @classmethod
    def from_settings(cls, retry: RetrySettings, rng: random.Random | None = None) -> Backoff:
        return cls(retry.backoff_base_s, retry.backoff_cap_s, rng)

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the jittered delay after ``attempt`` failed attempts (1-based)."""
        exponent = min(max(attempt, 1) - 1, 60)  # 2**60 * base is beyond any cap; avoids float overflow
        return min(self.cap_s, self.base_s * 2.0**exponent)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``attempt`` failed attempts; at least ``retry_after`` (capped) when given."""
        d = self._rng.uniform(0.0, self.ceiling(attempt))
        if retry_after is not None and retry_after > 0:
            d = max(d, min(retry_after, self.cap_s))
        return d


class _Sender(Protocol):
    async def send(self, call: Call) -> ApiResponse: ...


async def send_with_retries(
    client: _Sender,
    call: Call,
    *,
    max_attempts: int,
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    metrics: Metrics | None = None,
) -> ApiResponse:
    """Send ``call``, retrying retriable :class:`ApiError` s up to ``max_attempts`` attempts in all.

    Permanent and auth errors are raised at once; the last retriable error is raised when attempts run out.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    attempt = 0
    while True:
        attempt += 1
        try:
            return await client.send(call)
        except ApiError as exc:
            if not exc.retriable or attempt >= max_attempts:
                raise
            if metrics is not None:
                metrics.api_retries.labels(str(call.endpoint), exc.reason).inc()
            await sleep(backoff.delay(attempt, getattr(exc, "retry_after", None)))
