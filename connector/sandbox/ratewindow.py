"""Attentive-style rate limiting: a fixed one-second window per endpoint.

Each endpoint may take ``limit`` requests per wall-clock second (the window is ``floor(now)``). Every answer
reports ``x-ratelimit-limit`` and ``x-ratelimit-remaining``; the request over the limit gets 429 with
``Retry-After`` (whole seconds until the window ends, as HTTP wants an integer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int = 0


class FixedWindow:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("rate limit must be at least 1 request per second")
        self.limit = limit
        self._window = -1
        self._count = 0

    def take(self, now: float) -> Decision:
        window = math.floor(now)
        if window != self._window:
            self._window = window
            self._count = 0
        if self._count >= self.limit:
            return Decision(False, self.limit, 0, max(1, math.ceil(window + 1 - now)))
        self._count += 1
        return Decision(True, self.limit, self.limit - self._count)

    def peek(self, now: float) -> int:
        """Remaining in the current window without taking (for answers that don't count)."""
        return self.limit if math.floor(now) != self._window else max(0, self.limit - self._count)
