"""The client's HTTP seam: AttentiveClient over MockTransport (what goes on the wire, what is parsed, how failures
map), AiohttpTransport against a real local aiohttp server, HttpxTransport's error mapping, secret hygiene."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from connector import __version__
from connector.attentive import client as client_module
from connector.attentive.client import AttentiveClient
from connector.attentive.endpoints import Endpoint
from connector.attentive.transport import (
    AiohttpTransport,
    HttpxTransport,
    MockRequest,
    MockTransport,
    RawResponse,
    TransportFailure,
)
from connector.config import AttentiveSettings
from connector.devkafka.broker import free_port
from connector.errors import ApiPermanentError, NetworkError, RateLimitedError
from connector.observability.metrics import Metrics
from connector.types import Call

KEY = "sk_live_seam-secret-0123456789"
BODY = {"type": "Signed Up", "properties": {"price": Decimal("19.990")}, "user": {"email": "a@b.co"}}
CALL = Call(Endpoint.CUSTOM_EVENT, BODY, "signups/0/7", "signup")
SUBSCRIBE = Call(Endpoint.SUBSCRIBE, {"user": {"email": "a@b.co"}, "signUpSourceId": "1"}, "s/0/1", "sub")


def settings(**kw: Any) -> AttentiveSettings:
    return AttentiveSettings(base_url="https://attentive.test/v1", api_key=KEY, **kw)  # type: ignore[arg-type]


def ok(status: int = 200, body: bytes = b"", **headers: str) -> RawResponse:
    return RawResponse(status, headers, body)


def make(
    handler: Callable[[MockRequest], RawResponse | Awaitable[RawResponse]], **kw: Any
) -> tuple[AttentiveClient, MockTransport, Metrics]:
    transport = MockTransport(handler)
    metrics = Metrics(CollectorRegistry())
    return AttentiveClient(settings(), transport=transport, metrics=metrics, **kw), transport, metrics


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(f"attentive_connector_{name}", labels)


async def test_one_post_with_the_prebuilt_headers_and_the_exact_body() -> None:
    client, transport, metrics = make(lambda r: ok(200, b'{"ignored": true}'))
    async with client:
        resp = await client.send(CALL)
        await client.send(Call(Endpoint.CUSTOM_EVENT, BODY, "signups/0/8", "signup"))
    assert transport.closed
    first, second = transport.requests
    assert (first.method, first.path) == ("POST", "/v1/events/custom")
    assert first.body == b'{"type":"Signed Up","properties":{"price":19.990},"user":{"email":"a@b.co"}}'
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Accept"] == "application/json"
    assert first.headers["User-Agent"] == f"attentive-connector/{__version__}"
    assert (first.headers["X-Record-Id"], second.headers["X-Record-Id"]) == ("signups/0/7", "signups/0/8")
    # A custom event's answer is not read by the engine: not even decoded.
    assert resp.body is None and resp.status == 200 and not resp.already_done
    assert sample(metrics, "api_requests_total", endpoint="custom_event", status_class="2xx") == 2
    assert sample(metrics, "api_request_duration_seconds_count", endpoint="custom_event") == 2
    assert sample(metrics, "in_flight_requests") == 0


@pytest.mark.parametrize(
    ("call", "body", "done"),
    [
        (SUBSCRIBE, b'{"subscriptionResponses":[{"subscriptionCreationStatus":"PREVIOUSLY_CREATED"}]}', True),
        (SUBSCRIBE, b'{"subscriptionResponses":[{"subscriptionCreationStatus":"NEWLY_CREATED"}]}', False),
        (
            Call(Endpoint.UNSUBSCRIBE, {"user": {"email": "a@b.co"}}, "u/0/1", "unsub"),
            b'{"subscriptionResponses":[{"subscriptionUnsubscribeStatus":"PREVIOUSLY_UNSUBSCRIBED"}]}',
            True,
        ),
        (SUBSCRIBE, b"not json", False),
    ],
)
async def test_subscriber_answers_are_parsed_for_already_done(call: Call, body: bytes, done: bool) -> None:
    client, _, _ = make(lambda r: ok(202, body))
    async with client:
        resp = await client.send(call)
    assert resp.already_done is done


async def test_subscribe_409_is_a_success_and_other_statuses_raise() -> None:
    statuses = iter([409, 400])
    client, _, metrics = make(lambda r: ok(next(statuses), b'{"error":"dup"}'))
    async with client:
        assert (await client.send(SUBSCRIBE)).already_done
        with pytest.raises(ApiPermanentError) as info:
            await client.send(SUBSCRIBE)
    assert info.value.body == '{"error":"dup"}' and info.value.status == 400
    assert sample(metrics, "api_requests_total", endpoint="subscribe", status_class="4xx") == 2


async def test_rate_limit_headers_read_once_feed_limiter_and_gauge() -> None:
    client, _, metrics = make(
        lambda r: RawResponse(200, {"X-RateLimit-Limit": "40", "x-ratelimit-remaining": " 39 "}, b"")
    )
    async with client:
        await client.send(CALL)
    assert client.limiter[Endpoint.CUSTOM_EVENT].rate == 40
    assert client.limiter[Endpoint.CUSTOM_EVENT].remaining == 39
    assert sample(metrics, "rate_limit_remaining", endpoint="custom_event") == 39


async def test_429_holds_the_endpoint_for_retry_after() -> None:
    client, _, _ = make(lambda r: ok(429, b"slow down", **{"Retry-After": "3"}))
    async with client:
        with pytest.raises(RateLimitedError) as info:
            await client.send(CALL)
    assert info.value.retry_after == 3.0
    assert 2.5 < client.ready_in(Endpoint.CUSTOM_EVENT) <= 3.0


@pytest.mark.parametrize(
    ("failure", "fragment", "reason"),
    [
        (TransportFailure("timed out", timeout=True), "timed out after 10s calling custom_event", "timeout"),
        (
            TransportFailure("Connection refused"),
            "cannot reach Attentive at https://attentive.test",
            "network",
        ),
    ],
)
async def test_transport_failures_become_network_errors(
    failure: TransportFailure, fragment: str, reason: str
) -> None:
    def boom(request: MockRequest) -> RawResponse:
        raise failure

    client, _, metrics = make(boom)
    async with client:
        with pytest.raises(NetworkError) as info:
            await client.send(CALL)
    assert fragment in str(info.value) and "signups/0/7" in str(info.value)
    assert info.value.retriable and info.value.reason in (reason, "network")
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert sample(metrics, "api_requests_total", endpoint="custom_event", status_class="network") == 1
    assert sample(metrics, "in_flight_requests") == 0


async def test_a_free_turn_is_taken_without_sleeping() -> None:
    """The deliverer's contract: ready_in() <= 0, then send() with no await between, never sleeps."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    now = [100.0]
    client, _, _ = make(lambda r: ok(), clock=lambda: now[0], sleep=sleep)
    async with client:
        for _ in range(50):
            if client.ready_in(Endpoint.SUBSCRIBE) <= 0:
                await client.send(SUBSCRIBE)
            now[0] += 0.01
    assert slept == []


async def test_no_debug_log_arguments_when_debug_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kw: object) -> None:
        raise AssertionError("log.debug called with debug off")

    monkeypatch.setattr(client_module.log, "debug", forbidden)
    previous = client_module.log.level
    client_module.log.setLevel(logging.INFO)  # setLevel also clears the loggers' isEnabledFor cache
    try:
        client, _, _ = make(lambda r: ok())
        async with client:
            await client.send(CALL)
    finally:
        client_module.log.setLevel(previous)
    client_module.log.setLevel(logging.DEBUG)
    try:
        client, _, _ = make(lambda r: ok())
        with pytest.raises(AssertionError, match="debug off"):  # the guard is what kept it quiet
            async with client:
                await client.send(CALL)
    finally:
        client_module.log.setLevel(previous)


async def test_me_uses_get_without_record_id() -> None:
    client, transport, _ = make(lambda r: ok(200, b'{"companyName": "Hudson & Ivy"}'))
    async with client:
        me = await client.me()
    assert me.companyName == "Hudson & Ivy"
    (request,) = transport.requests
    assert (request.method, request.path, request.body) == ("GET", "/v1/me", None)
    assert "X-Record-Id" not in request.headers and request.headers["Authorization"] == f"Bearer {KEY}"


async def test_async_handlers_are_awaited() -> None:
    async def handler(request: MockRequest) -> RawResponse:
        await asyncio.sleep(0)
        return ok(204)

    client, _, _ = make(handler)
    async with client:
        assert (await client.send(CALL)).status == 204


def test_the_key_is_in_no_repr() -> None:
    client, transport, _ = make(lambda r: ok())
    texts = [repr(client), repr(transport), repr(client._transport), repr(client._routes), repr(client._me)]
    texts += [
        repr(AiohttpTransport("http://x")),
        repr(HttpxTransport("http://x", httpx.MockTransport(lambda r: httpx.Response(200)))),
    ]
    assert all(KEY not in t for t in texts), texts


# --- AiohttpTransport over a real socket ----------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[web.Request], asyncio.Event]]:
    seen: list[web.Request] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        body = await request.read()
        if request.path == "/v1/hang":
            await release.wait()  # until the test ends: the client's timeout fires first
        return web.Response(
            status=201, body=b"echo:" + body, headers={"x-ratelimit-remaining": "7", "Set-Cookie": "a=b"}
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen, release
    release.set()
    await runner.cleanup()


async def test_aiohttp_transport_posts_and_gets(server: tuple[str, list[web.Request], asyncio.Event]) -> None:
    url, seen, _ = server
    transport = AiohttpTransport(url + "/", max_connections=4, timeout_s=5)
    try:
        raw = await transport.post("/v1/events/custom", b'{"a":1}', {"X-Record-Id": "t/0/1", "Accept": "x/y"})
        again = await transport.get("/v1/me", {"Authorization": "Bearer k"})
    finally:
        await transport.aclose()
    assert (raw.status, raw.body, raw.headers["X-RATELIMIT-REMAINING"]) == (201, b'echo:{"a":1}', "7")
    assert again.body == b"echo:"
    assert seen[0].method == "POST" and seen[0].headers["X-Record-Id"] == "t/0/1"
    assert seen[0].headers["Accept"] == "x/y"
    assert seen[1].method == "GET" and "Cookie" not in seen[1].headers  # no cookie jar: nothing sent back


async def test_aiohttp_transport_timeout(server: tuple[str, list[web.Request], asyncio.Event]) -> None:
    url, _, _ = server
    transport = AiohttpTransport(url, timeout_s=0.2)
    try:
        with pytest.raises(TransportFailure) as info:
            await transport.post("/v1/hang", b"{}", {})
    finally:
        await transport.aclose()
    assert info.value.timeout and "timed out after 0.2s" in info.value.detail


async def test_aiohttp_transport_connection_refused() -> None:
    transport = AiohttpTransport(f"http://127.0.0.1:{free_port()}", timeout_s=5)
    try:
        with pytest.raises(TransportFailure) as info:
            await transport.post("/v1/events/custom", b"{}", {})
    finally:
        await transport.aclose()
    assert not info.value.timeout and info.value.__cause__ is None


async def test_client_over_a_real_socket_end_to_end(
    server: tuple[str, list[web.Request], asyncio.Event],
) -> None:
    url, seen, _ = server
    s = AttentiveSettings(base_url=url, api_key=KEY)  # type: ignore[arg-type]
    async with AttentiveClient(s, metrics=Metrics(CollectorRegistry())) as client:
        resp = await client.send(CALL)
    assert resp.status == 201 and resp.body is None
    assert (
        seen[0].headers["Authorization"] == f"Bearer {KEY}"
        and seen[0].headers["X-Record-Id"] == "signups/0/7"
    )
    assert client.limiter[Endpoint.CUSTOM_EVENT].remaining == 7


# --- HttpxTransport: any httpx transport behind the seam ------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "timeout"),
    [
        (httpx.ReadTimeout("slow"), True),
        (httpx.ConnectError("refused"), False),
        (httpx.RemoteProtocolError("disconnected"), False),
    ],
)
async def test_httpx_transport_maps_failures(exc: Exception, timeout: bool) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise exc

    transport = HttpxTransport("https://a.test", httpx.MockTransport(boom))
    with pytest.raises(TransportFailure) as info:
        await transport.post("/v1/x", b"{}", {"Authorization": f"Bearer {KEY}"})
    assert info.value.timeout is timeout and KEY not in str(info.value)


async def test_httpx_transport_tells_a_refused_connection_from_a_timeout() -> None:
    """httpx-aiohttp reports a refused connection as ConnectTimeout caused by aiohttp's ClientConnectorError."""

    def boom(request: httpx.Request) -> httpx.Response:
        cause = aiohttp.ClientConnectorError(
            aiohttp.client_reqrep.ConnectionKey("a.test", 443, True, True, None, None, None),
            OSError(111, "Connection refused"),
        )
        raise httpx.ConnectTimeout("connect") from cause

    transport = HttpxTransport("https://a.test", httpx.MockTransport(boom))
    with pytest.raises(TransportFailure) as info:
        await transport.post("/v1/x", b"{}", {})
    assert not info.value.timeout and "Connection refused" in info.value.detail


async def test_httpx_transport_round_trip() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url) == "https://a.test/v1/x" and request.content == b"{}"
        return httpx.Response(202, content=b"ok", headers={"X-RateLimit-Limit": "5"})

    transport = HttpxTransport("https://a.test/", httpx.MockTransport(handler))
    raw = await transport.post("/v1/x", b"{}", {"X-Record-Id": "r"})
    assert (raw.status, raw.body, raw.headers["x-ratelimit-limit"]) == (202, b"ok", "5")
    await transport.aclose()
