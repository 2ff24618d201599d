"""Backoff (exponential, full jitter, Retry-After floor, cap)."""

from __future__ import annotations

import random

import pytest

from connector.attentive.retry import Backoff
from connector.config import RetrySettings


def test_full_jitter_within_exponential_ceiling() -> None:
    b = Backoff(0.2, 30.0, random.Random(1))
    for attempt, ceiling in [(1, 0.2), (2, 0.4), (3, 0.8), (5, 3.2), (8, 25.6), (9, 30.0), (500, 30.0)]:
        assert b.ceiling(attempt) == pytest.approx(ceiling)
        delays = [b.delay(attempt) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2  # really jittered over the range


def test_retry_after_is_a_floor_capped_at_cap() -> None:
    b = Backoff(0.2, 5.0, random.Random(2))
    assert all(b.delay(1, retry_after=2.0) >= 2.0 for _ in range(50))
    assert all(b.delay(1, retry_after=3600) == 5.0 for _ in range(10))
    assert all(b.delay(1, retry_after=0) <= 0.2 for _ in range(10))


def test_deterministic_with_seeded_rng_and_from_settings() -> None:
    a = Backoff.from_settings(RetrySettings(), random.Random(7))
    b = Backoff.from_settings(RetrySettings(), random.Random(7))
    assert [a.delay(i) for i in range(1, 6)] == [b.delay(i) for i in range(1, 6)]
    assert a.base_s == 0.2 and a.cap_s == 30.0
    with pytest.raises(ValueError):
        Backoff(0, 1)
