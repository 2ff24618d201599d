"""AttentiveClient with a mock transport: headers, exact JSON, classification of every status into the error
tree, network failures, metrics, Retry-After, and secret hygiene (the key in no repr, message or log)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from connector import __version__
from connector.attentive.client import (
    ApiResponse,
    AttentiveClient,
    api_base_url,
    classify,
    parse_retry_after,
)
from connector.attentive.endpoints import Endpoint
from connector.config import AttentiveSettings
from connector.errors import (
    ApiAuthError,
    ApiError,
    ApiPermanentError,
    ApiTransientError,
    NetworkError,
    RateLimitedError,
    RoutingError,
)
from connector.observability.metrics import Metrics
from connector.types import Call

KEY = "sk_live_do-not-leak-0123456789"
BODY = {
    "items": [
        {
            "productId": "p",
            "productVariantId": "v",
            "price": [{"value": Decimal("19.990"), "currency": "USD"}],
        }
    ],
    "user": {"phone": "+14155550123"},
}
CALL = Call(Endpoint.PURCHASE, BODY, "orders/2/17", "purchase")


def settings(**kw: Any) -> AttentiveSettings:
    return AttentiveSettings(base_url="https://attentive.test", api_key=KEY, **kw)  # type: ignore[arg-type]


def make_client(
    handler: Callable[[httpx.Request], httpx.Response], **kw: Any
) -> tuple[AttentiveClient, Metrics, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def wrapped(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    metrics = Metrics(CollectorRegistry())
    client = AttentiveClient(settings(**kw), transport=httpx.MockTransport(wrapped), metrics=metrics)
    return client, metrics, seen


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"attentive_connector_{name}", labels)


async def test_request_headers_and_exact_body() -> None:
    client, metrics, seen = make_client(lambda r: httpx.Response(200))
    async with client:
        resp = await client.send(CALL)
    assert resp == ApiResponse("ecommerce.purchase", 200, None, "orders/2/17", resp.duration_s)
    req = seen[0]
    assert req.method == "POST" and str(req.url) == "https://attentive.test/v1/events/ecommerce/purchase"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["X-Record-Id"] == "orders/2/17"
    assert req.headers["User-Agent"] == f"attentive-connector/{__version__}"
    assert b'"value":19.990' in req.content  # Decimal as an exact JSON number, not a float or string
    assert sample(metrics, "api_requests_total", endpoint="ecommerce.purchase", status_class="2xx") == 1
    assert sample(metrics, "api_request_duration_seconds_count", endpoint="ecommerce.purchase") == 1
    assert sample(metrics, "in_flight_requests") == 0


def test_base_url_with_v1_suffix_is_tolerated() -> None:
    assert api_base_url("https://api.attentivemobile.com/v1/") == "https://api.attentivemobile.com"
    assert api_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("status", "endpoint", "error"),
    [
        (400, Endpoint.PURCHASE, ApiPermanentError),
        (404, Endpoint.CUSTOM_EVENT, ApiPermanentError),
        (413, Endpoint.CUSTOM_ATTRIBUTES, ApiPermanentError),
        (422, Endpoint.PURCHASE, ApiPermanentError),
        (409, Endpoint.PURCHASE, ApiPermanentError),
        (401, Endpoint.PURCHASE, ApiAuthError),
        (403, Endpoint.SUBSCRIBE, ApiAuthError),
        (429, Endpoint.PURCHASE, RateLimitedError),
        (500, Endpoint.PURCHASE, ApiTransientError),
        (502, Endpoint.UNSUBSCRIBE, ApiTransientError),
        (503, Endpoint.PURCHASE, ApiTransientError),
        (504, Endpoint.PURCHASE, ApiTransientError),
        (408, Endpoint.PURCHASE, ApiTransientError),
        (302, Endpoint.PURCHASE, ApiTransientError),
    ],
)
async def test_status_classification(status: int, endpoint: Endpoint, error: type[ApiError]) -> None:
    client, metrics, _ = make_client(lambda r: httpx.Response(status, json={"error": {"message": "nope"}}))
    async with client:
        with pytest.raises(error) as info:
            await client.send(Call(endpoint, {"x": 1}, "t/0/9", "r"))
    exc = info.value
    assert type(exc) is error
    assert exc.status == status and exc.endpoint == str(endpoint)
    assert "nope" in exc.body
    assert "t/0/9" in str(exc) and str(status) in str(exc)
    assert (exc.retriable, exc.permanent, exc.auth) == (
        issubclass(error, ApiTransientError),
        issubclass(error, ApiPermanentError),
        issubclass(error, ApiAuthError),
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, None),
        (202, {"subscriptionResponses": [{"subscriptionCreationStatus": "NEWLY_CREATED"}]}),
        (202, {"subscriptionResponses": [{"subscriptionCreationStatus": "PREVIOUSLY_CREATED"}]}),
        (409, None),
    ],
)
async def test_subscribe_successes(status: int, body: Any) -> None:
    client, _, _ = make_client(
        lambda r: httpx.Response(status, json=body) if body else httpx.Response(status)
    )
    async with client:
        resp = await client.send(Call(Endpoint.SUBSCRIBE, {"user": {}}, "s/0/1", "r"))
    assert resp.status == status
    assert resp.already_done is (status == 409 or "PREVIOUSLY_CREATED" in str(body))


def test_already_done_for_unsubscribe() -> None:
    prev = {"subscriptionResponses": [{"subscriptionUnsubscribeStatus": "PREVIOUSLY_UNSUBSCRIBED"}]}
    mixed = {
        "subscriptionResponses": [
            {"subscriptionUnsubscribeStatus": "PREVIOUSLY_UNSUBSCRIBED"},
            {"subscriptionUnsubscribeStatus": "NEWLY_UNSUBSCRIBED"},
        ]
    }
    assert ApiResponse("unsubscribe", 202, prev, "", 0).already_done
    assert not ApiResponse("unsubscribe", 202, mixed, "", 0).already_done
    assert not ApiResponse("unsubscribe", 202, {"subscriptionResponses": []}, "", 0).already_done
    assert not ApiResponse("custom_event", 200, None, "", 0).already_done


async def test_429_with_retry_after_holds_the_endpoint() -> None:
    client, metrics, _ = make_client(
        lambda r: httpx.Response(
            429, headers={"Retry-After": "3", "x-ratelimit-limit": "150", "x-ratelimit-remaining": "0"}
        )
    )
    async with client:
        with pytest.raises(RateLimitedError) as info:
            await client.send(CALL)
    assert info.value.retry_after == 3.0
    assert 2.5 < client.limiter[Endpoint.PURCHASE].delay() <= 3.0
    assert client.limiter[Endpoint.CUSTOM_EVENT].delay() == 0  # only that endpoint
    assert sample(metrics, "api_requests_total", endpoint="ecommerce.purchase", status_class="429") == 1
    assert sample(metrics, "rate_limit_remaining", endpoint="ecommerce.purchase") == 0


def test_retry_after_parsing() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:05 GMT", now=lambda: now) == 5.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:59:00 GMT", now=lambda: now) == 0.0
    assert parse_retry_after("-4") == 0.0
    for bad in (None, "", "soon", "nan"):
        assert parse_retry_after(bad) is None


def test_classify_503_with_retry_after() -> None:
    err = classify("custom_event", 503, {"retry-after": "7"}, "down")
    assert isinstance(err, ApiTransientError) and err.retry_after == 7.0 and err.body == "down"
    assert classify("subscribe", 409, {}, "") is None
    assert classify("custom_event", 204, {}, "") is None


async def test_rate_limit_headers_feed_the_limiter_and_gauge() -> None:
    client, metrics, _ = make_client(
        lambda r: httpx.Response(200, headers={"x-ratelimit-limit": "40", "x-ratelimit-remaining": "39"})
    )
    async with client:
        await client.send(CALL)
    assert client.limiter[Endpoint.PURCHASE].rate == 40
    assert sample(metrics, "rate_limit_remaining", endpoint="ecommerce.purchase") == 39


@pytest.mark.parametrize(
    ("exc", "fragment"),
    [
        (httpx.ConnectError("connection refused"), "cannot reach Attentive at https://attentive.test"),
        (httpx.ReadTimeout("read timed out"), "timed out after 10s"),
        (httpx.RemoteProtocolError("server disconnected"), "cannot reach Attentive"),
    ],
)
async def test_network_failures_are_transient(exc: Exception, fragment: str) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise exc

    client, metrics, _ = make_client(boom)
    async with client:
        with pytest.raises(NetworkError) as info:
            await client.send(CALL)
    assert fragment in str(info.value) and info.value.retriable and info.value.status is None
    assert (
        info.value.__cause__ is None and info.value.__suppress_context__
    )  # no httpx request (headers) attached
    assert sample(metrics, "api_requests_total", endpoint="ecommerce.purchase", status_class="network") == 1
    assert sample(metrics, "in_flight_requests") == 0


async def test_me() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET" and request.url.path == "/v1/me"
        assert "X-Record-Id" not in request.headers
        return httpx.Response(200, json={"companyName": "Hudson & Ivy", "applicationName": "Pillow Api"})

    client, metrics, _ = make_client(handler)
    async with client:
        me = await client.me()
    assert (me.companyName, me.applicationName) == ("Hudson & Ivy", "Pillow Api")
    assert sample(metrics, "api_requests_total", endpoint="me", status_class="2xx") == 1

    client, _, _ = make_client(lambda r: httpx.Response(401))
    async with client:
        with pytest.raises(ApiAuthError):
            await client.me()


async def test_secret_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    statuses = iter([200, 400, 401, 429, 500])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), text="error body")

    s = settings()
    client, metrics, _ = make_client(handler)
    errors: list[BaseException] = []
    async with client:
        for _ in range(5):
            try:
                await client.send(CALL)
            except ApiError as exc:
                errors.append(exc)

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client2, _, _ = make_client(boom)
    async with client2:
        with pytest.raises(NetworkError) as info:
            await client2.send(CALL)
    errors.append(info.value)
    texts = [
        repr(client),
        str(client),
        repr(s),
        str(s),
        repr(s.api_key),
        s.model_dump_json(),
        caplog.text,
        generate_latest(metrics.registry).decode(),
        repr(client._transport),
        repr(client._routes),
    ]
    texts += [f"{e!s} {e!r} {vars(e)}" for e in errors]
    for text in texts:
        assert KEY not in text
    assert len(errors) == 5
    assert "orders/2/17" in caplog.text  # the log line is there, with the record id


async def test_unserialisable_body_is_the_records_fault_and_sends_nothing() -> None:
    client, metrics, seen = make_client(lambda r: httpx.Response(200))
    async with client:
        with pytest.raises(RoutingError, match="not JSON") as info:
            await client.send(Call(Endpoint.CUSTOM_EVENT, {"type": "x", "when": object()}, "t/0/1", "rule-a"))
        with pytest.raises(RoutingError):
            await client.send(Call(Endpoint.PURCHASE, {"v": float("nan")}, "t/0/2", "rule-a"))
    assert info.value.permanent and info.value.rule == "rule-a"
    assert seen == []
