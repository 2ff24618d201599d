"""Exponential backoff with full jitter.

The delivery engine owns the retry loop (it also tracks record age, circuits and auth pauses); it uses
:class:`Backoff` for the delays.
"""

from __future__ import annotations

import random

from connector.config import RetrySettings


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
