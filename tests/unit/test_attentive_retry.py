"""Backoff (exponential, full jitter, Retry-After floor, cap) and send_with_retries."""

from __future__ import annotations

import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connector.attentive.client import ApiResponse
from connector.attentive.endpoints import Endpoint
from connector.attentive.retry import Backoff, send_with_retries
from connector.config import RetrySettings
from connector.errors import (
    ApiAuthError,
    ApiPermanentError,
    ApiTransientError,
    NetworkError,
    RateLimitedError,
)
from connector.observability.metrics import Metrics
from connector.types import Call

CALL = Call(Endpoint.CUSTOM_EVENT, {"type": "x", "user": {"email": "a@b.co"}}, "t/0/1", "r")
OK = ApiResponse("custom_event", 200, None, "t/0/1", 0.01)


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


class Script:
    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def send(self, call: Call) -> ApiResponse:
        self.calls += 1
        out = self.outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out  # type: ignore[no-any-return]


async def test_retries_transient_then_succeeds_honouring_retry_after() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    metrics = Metrics(CollectorRegistry())
    client = Script(
        RateLimitedError("429", endpoint="custom_event", status=429, retry_after=1.5),
        NetworkError("timeout", endpoint="custom_event"),
        OK,
    )
    resp = await send_with_retries(
        client,
        CALL,
        max_attempts=5,
        backoff=Backoff(0.01, 10, random.Random(0)),
        sleep=sleep,
        metrics=metrics,
    )
    assert resp is OK and client.calls == 3
    assert slept[0] >= 1.5 and slept[1] <= 0.02
    reg = metrics.registry
    assert (
        reg.get_sample_value(
            "attentive_connector_api_retries_total", {"endpoint": "custom_event", "reason": "rate_limited"}
        )
        == 1
    )
    assert (
        reg.get_sample_value(
            "attentive_connector_api_retries_total", {"endpoint": "custom_event", "reason": "network"}
        )
        == 1
    )


@pytest.mark.parametrize(
    "error",
    [
        ApiPermanentError("400", endpoint="custom_event", status=400),
        ApiAuthError("401", endpoint="custom_event", status=401),
    ],
)
async def test_permanent_and_auth_errors_are_not_retried(error: Exception) -> None:
    client = Script(error, OK)

    async def sleep(s: float) -> None:
        raise AssertionError("must not sleep")

    with pytest.raises(type(error)):
        await send_with_retries(client, CALL, max_attempts=5, backoff=Backoff(0.01, 1), sleep=sleep)
    assert client.calls == 1


async def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    errors = [ApiTransientError(f"503 #{i}", endpoint="custom_event", status=503) for i in range(3)]
    client = Script(*errors)

    async def sleep(s: float) -> None:
        pass

    with pytest.raises(ApiTransientError, match="#2"):
        await send_with_retries(client, CALL, max_attempts=3, backoff=Backoff(0.01, 1), sleep=sleep)
    assert client.calls == 3
    with pytest.raises(ValueError):
        await send_with_retries(client, CALL, max_attempts=0, backoff=Backoff(0.01, 1), sleep=sleep)
