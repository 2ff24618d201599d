"""The sandbox application over real (loopback) HTTP, in process: auth, validation, rate windows, faults,
subscription state, journal and stats."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connector.attentive.endpoints import Endpoint
from connector.attentive.spec import default_validator
from connector.sandbox.app import ME_INFO, SANDBOX_KEY, SandboxSettings, make_app
from tests.unit.attentive_examples import BAD_SHAPES, DOC_SAMPLES, spec_examples

KEY = "sandbox-unit-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
EVENT = {"type": "Order Shipped", "user": {"phone": "+13115552368"}}


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.25

    def __call__(self) -> float:
        return self.now


Factory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make() -> AsyncIterator[Factory]:
    clients: list[TestClient[Any, Any]] = []

    async def _make(**kw: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(make_app(SandboxSettings(api_key=KEY, **kw))))
        await client.start_server()
        clients.append(client)
        return client

    yield _make
    for c in clients:
        await c.close()


async def post(client: TestClient[Any, Any], endpoint: Endpoint, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(endpoint.path, data=data, headers={**AUTH, "X-Record-Id": "t/0/1", **headers})


async def test_me(make: Factory) -> None:
    c = await make()
    r = await c.get("/v1/me", headers=AUTH)
    assert r.status == 200 and await r.json() == ME_INFO
    assert default_validator().validate_component("GetMeResponseDto", ME_INFO) == []
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        r = await c.get("/v1/me", headers=headers)
        assert r.status == 401


@pytest.mark.parametrize("endpoint", list(Endpoint), ids=str)
async def test_spec_examples_are_accepted(make: Factory, endpoint: Endpoint) -> None:
    c = await make()
    r = await post(c, endpoint, spec_examples()[endpoint])
    accepted = (Endpoint.SUBSCRIBE, Endpoint.UNSUBSCRIBE, Endpoint.IDENTITY)
    assert r.status == (202 if endpoint in accepted else 200), await r.text()


@pytest.mark.parametrize(("name", "endpoint", "body"), DOC_SAMPLES, ids=[s[0] for s in DOC_SAMPLES])
async def test_documented_samples_are_accepted(
    make: Factory, name: str, endpoint: Endpoint, body: Any
) -> None:
    c = await make()
    r = await post(c, endpoint, body)
    assert 200 <= r.status < 300, await r.text()


@pytest.mark.parametrize(("name", "endpoint", "body", "fragment"), BAD_SHAPES, ids=[s[0] for s in BAD_SHAPES])
async def test_bad_shapes_get_400_naming_the_field(
    make: Factory, name: str, endpoint: Endpoint, body: Any, fragment: str
) -> None:
    c = await make()
    r = await post(c, endpoint, body)
    assert r.status == 400
    error = (await r.json())["error"]
    assert fragment in error["message"] and isinstance(error["id"], int)


async def test_unauthorized_requests_are_refused_before_anything_else(make: Factory) -> None:
    c = await make()
    r = await c.post(Endpoint.CUSTOM_EVENT.path, data=b"not json", headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    assert "x-ratelimit-limit" not in r.headers


async def test_invalid_json_is_400(make: Factory) -> None:
    c = await make()
    for raw in (b"{", b"", b'{"type": NaN}'):
        r = await post(c, Endpoint.CUSTOM_EVENT, raw)
        assert r.status == 400
        assert "not valid JSON" in (await r.json())["error"]["message"]


async def test_no_validate_and_lenient_modes(make: Factory) -> None:
    fast = await make(validate=False)
    assert (await post(fast, Endpoint.PURCHASE, {"price": "anything"})).status == 200
    assert (await post(fast, Endpoint.PURCHASE, b"not even json")).status == 200
    lenient = await make(strict_top_level=False)
    strict = await make()
    body = {**EVENT, "occuredAt": "2024-01-01T00:00:00Z"}
    assert (await post(lenient, Endpoint.CUSTOM_EVENT, body)).status == 200
    r = await post(strict, Endpoint.CUSTOM_EVENT, body)
    assert r.status == 400 and "$.occuredAt: unknown field" in await r.text()


async def test_fixed_window_rate_limit_with_headers(make: Factory) -> None:
    clock = Clock()
    c = await make(clock=clock, rate_limits={Endpoint.CUSTOM_EVENT: 3})
    seen = []
    for _ in range(4):
        r = await post(c, Endpoint.CUSTOM_EVENT, EVENT)
        seen.append((r.status, r.headers["x-ratelimit-limit"], r.headers["x-ratelimit-remaining"]))
    assert seen == [(200, "3", "2"), (200, "3", "1"), (200, "3", "0"), (429, "3", "0")]
    assert r.headers["Retry-After"] == "1"
    # other endpoints have their own window (Attentive's default 150/s)
    r = await post(c, Endpoint.PRODUCT_VIEW, {"items": [], "user": {"email": "a@b.co"}})
    assert r.headers["x-ratelimit-limit"] == "150"
    clock.now += 0.75  # next second
    r = await post(c, Endpoint.CUSTOM_EVENT, EVENT)
    assert r.status == 200 and r.headers["x-ratelimit-remaining"] == "2"


async def test_attentive_default_limits(make: Factory) -> None:
    c = await make()
    limits = {}
    for endpoint in (Endpoint.SUBSCRIBE, Endpoint.UNSUBSCRIBE, Endpoint.CUSTOM_ATTRIBUTES):
        r = await post(c, endpoint, {})
        limits[endpoint] = r.headers["x-ratelimit-limit"]
    assert limits == {Endpoint.SUBSCRIBE: "10", Endpoint.UNSUBSCRIBE: "5", Endpoint.CUSTOM_ATTRIBUTES: "150"}


async def test_rate_limit_can_be_disabled(make: Factory) -> None:
    c = await make(rate_limit=False, rate_limits={Endpoint.CUSTOM_EVENT: 1})
    for _ in range(5):
        r = await post(c, Endpoint.CUSTOM_EVENT, EVENT)
        assert r.status == 200 and "x-ratelimit-limit" not in r.headers


async def test_faults_runtime_api(make: Factory) -> None:
    c = await make(seed=1)
    r = await c.get("/__sandbox/faults")
    assert await r.json() == {
        "error_rates": {},
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "unauthorized_for_s": 0.0,
    }
    r = await c.post("/__sandbox/faults", json={"error_rates": {"503": 1.0}, "latency_ms": 5})
    assert r.status == 200 and (await r.json())["error_rates"] == {"503": 1.0}
    # decided before validation: even an invalid body gets the injected status
    r = await post(c, Endpoint.CUSTOM_EVENT, {"type": "(bad)"})
    assert r.status == 503 and "injected" in (await r.json())["error"]["message"]
    assert (await c.post("/__sandbox/faults", json={})).status == 200
    assert (await post(c, Endpoint.CUSTOM_EVENT, EVENT)).status == 200
    r = await c.post("/__sandbox/faults", json={"error_rates": {"429": 1.0}})
    r = await post(c, Endpoint.CUSTOM_EVENT, EVENT)
    assert r.status == 429 and r.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"error_rates": {"200": 0.5}}, "not a 4xx/5xx"),
        ({"error_rates": {"abc": 0.5}}, "not an HTTP status"),
        ({"error_rates": {"500": 1.5}}, "between 0 and 1"),
        ({"error_rates": {"500": 0.6, "503": 0.6}}, "more than 1"),
        ({"error_rates": [500]}, "error_rates must be an object"),
        ({"latency_ms": -1}, "latency_ms must not be negative"),
        ({"latency_ms": "slow"}, "latency_ms must be a number"),
        ({"surprise": 1}, "unknown key"),
        ([1], "must be a JSON object"),
    ],
)
async def test_bad_faults_are_refused(make: Factory, doc: Any, fragment: str) -> None:
    c = await make()
    r = await c.post("/__sandbox/faults", json=doc)
    assert r.status == 400 and fragment in (await r.json())["error"]["message"]
    assert (await c.get("/__sandbox/faults")).status == 200
    assert (await post(c, Endpoint.CUSTOM_EVENT, EVENT)).status == 200  # previous faults still in force


async def test_error_rates_follow_the_probabilities_and_the_seed(make: Factory) -> None:
    async def statuses(seed: int) -> list[int]:
        c = await make(seed=seed, rate_limit=False, faults={"error_rates": {"500": 0.3, "503": 0.2}})
        return [(await post(c, Endpoint.CUSTOM_EVENT, EVENT)).status for _ in range(400)]

    a, b = await statuses(5), await statuses(5)
    assert a == b  # reproducible
    share = {s: a.count(s) / len(a) for s in (200, 500, 503)}
    assert 0.2 < share[500] < 0.4 and 0.12 < share[503] < 0.28 and 0.4 < share[200] < 0.6


async def test_latency_and_jitter(make: Factory) -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    c = await make(sleep=sleep, seed=3, faults={"latency_ms": 100, "jitter_ms": 50})
    for _ in range(20):
        await post(c, Endpoint.CUSTOM_EVENT, EVENT)
    await c.get("/v1/me", headers=AUTH)
    assert len(slept) == 21 and all(0.1 <= s <= 0.15 for s in slept) and len(set(slept)) > 10
    # The journal says when each answer left (received + the delay it was held), in the same order.
    requests = (await (await c.get("/__sandbox/requests")).json())["requests"]
    held = [e["answered"] - e["time"] for e in requests]
    assert len(held) == len(slept) and all(abs(h - s) < 1e-5 for h, s in zip(held, slept, strict=True))


async def test_unauthorized_window_covers_me_too_and_ends(make: Factory) -> None:
    clock = Clock()
    c = await make(clock=clock)
    await c.post("/__sandbox/faults", json={"unauthorized_for_s": 30})
    assert (await c.get("/__sandbox/faults")).status == 200
    assert (await (await c.get("/__sandbox/faults")).json())["unauthorized_for_s"] == 30
    assert (await post(c, Endpoint.CUSTOM_EVENT, EVENT)).status == 401
    assert (await c.get("/v1/me", headers=AUTH)).status == 401
    clock.now += 31
    assert (await post(c, Endpoint.CUSTOM_EVENT, EVENT)).status == 200
    assert (await c.get("/v1/me", headers=AUTH)).status == 200


async def test_subscription_state(make: Factory) -> None:
    c = await make()
    v = default_validator()
    sub = {"user": {"phone": "+13115552368", "email": "Shopper@Example.com"}, "signUpSourceId": "123"}
    first = await (await post(c, Endpoint.SUBSCRIBE, sub)).json()
    assert v.validate_component("AddSubscriptionsResponseDto", first) == []
    assert [
        (x["subscription"]["channel"], x["subscriptionCreationStatus"])
        for x in first["subscriptionResponses"]
    ] == [("TEXT", "NEWLY_CREATED"), ("EMAIL", "NEWLY_CREATED")]
    again = await (
        await post(c, Endpoint.SUBSCRIBE, {**sub, "user": {"email": "shopper@example.com"}})
    ).json()
    assert [x["subscriptionCreationStatus"] for x in again["subscriptionResponses"]] == ["PREVIOUSLY_CREATED"]
    unsub = {"user": {"phone": "+13115552368"}, "notification": {"language": "en-US", "disabled": True}}
    r1 = await (await post(c, Endpoint.UNSUBSCRIBE, unsub)).json()
    r2 = await (await post(c, Endpoint.UNSUBSCRIBE, unsub)).json()
    assert v.validate_component("UnsubscribeSubscriptionsResponseDto", r1) == []
    assert [x["subscriptionUnsubscribeStatus"] for x in r1["subscriptionResponses"]] == ["NEWLY_UNSUBSCRIBED"]
    assert [x["subscriptionUnsubscribeStatus"] for x in r2["subscriptionResponses"]] == [
        "PREVIOUSLY_UNSUBSCRIBED"
    ]
    # subscribing again after an unsubscribe creates it anew; the type from locale+subscriptionType is kept
    tx = {
        "user": {"phone": "+13115552368"},
        "locale": {"language": "en", "country": "US"},
        "subscriptionType": "TRANSACTIONAL",
    }
    r = await (await post(c, Endpoint.SUBSCRIBE, tx)).json()
    assert r["subscriptionResponses"] == [
        {
            "subscription": {"type": "TRANSACTIONAL", "channel": "TEXT"},
            "subscriptionCreationStatus": "NEWLY_CREATED",
        }
    ]
    only_email = {
        "user": {"email": "shopper@example.com"},
        "subscriptions": [{"type": "MARKETING", "channel": "EMAIL"}],
    }
    r = await (await post(c, Endpoint.UNSUBSCRIBE, only_email)).json()
    assert [x["subscriptionUnsubscribeStatus"] for x in r["subscriptionResponses"]] == ["NEWLY_UNSUBSCRIBED"]


async def test_journal_and_stats(make: Factory) -> None:
    c = await make()
    body = (
        b'{"items":[{"productId":"p","productVariantId":"v","price":[{"value":19.990,"currency":"USD"}]}],'
        b'"user":{"email":"a@b.co"}}'
    )
    await post(c, Endpoint.PURCHASE, body, **{"X-Record-Id": "orders/1/5"})
    await post(c, Endpoint.PURCHASE, {"items": []})
    await c.get("/v1/me", headers=AUTH)
    r = await c.get("/__sandbox/requests")
    raw = await r.read()
    assert b'"value":19.990' in raw  # the journal shows the number exactly as sent
    journal = json.loads(raw)
    first = journal["requests"][0]
    assert {k: first[k] for k in ("method", "path", "record_id", "status")} == {
        "method": "POST",
        "path": "/v1/events/ecommerce/purchase",
        "record_id": "orders/1/5",
        "status": 200,
    }
    assert first["body"]["user"] == {"email": "a@b.co"} and isinstance(first["time"], float)
    assert [e["status"] for e in journal["requests"]] == [200, 400, 200]
    assert journal["total"] == 3 and journal["truncated"] is False
    stats = await (await c.get("/__sandbox/stats")).json()
    assert stats == {
        "by_path": {"/v1/events/ecommerce/purchase": {"200": 1, "400": 1}, "/v1/me": {"200": 1}},
        "total": 3,
        "identity": {"links": 0, "events_by_external_id": {"attributed": 0, "unattributed": 0}},
        "privacy": {"delete_requests": 0},
    }
    assert (await c.delete("/__sandbox/requests")).status == 200
    assert (await (await c.get("/__sandbox/requests")).json())["requests"] == []
    stats = await (await c.get("/__sandbox/stats")).json()
    assert stats["by_path"] == {} and stats["total"] == 0


async def test_journal_is_bounded_and_says_so(make: Factory, capsys: pytest.CaptureFixture[str]) -> None:
    c = await make(journal_max=3, validate=False)
    for i in range(5):
        await post(c, Endpoint.CUSTOM_EVENT, {"n": i}, **{"X-Record-Id": f"t/0/{i}"})
    j = await (await c.get("/__sandbox/requests")).json()
    assert [e["record_id"] for e in j["requests"]] == ["t/0/2", "t/0/3", "t/0/4"]
    assert j["truncated"] is True and j["dropped"] == 2 and j["total"] == 5 and j["max_entries"] == 3
    assert "journal full (3 entries)" in capsys.readouterr().err
    newest = await (await c.get("/__sandbox/requests?last=2")).json()
    assert [e["record_id"] for e in newest["requests"]] == ["t/0/3", "t/0/4"]
    assert (await c.get("/__sandbox/requests?last=-1")).status == 400
    stats = await (await c.get("/__sandbox/stats")).json()
    assert stats["total"] == 5  # stats count everything


async def test_reset(make: Factory) -> None:
    c = await make(rate_limits={Endpoint.SUBSCRIBE: 1})
    sub = {"user": {"phone": "+13115552368"}, "signUpSourceId": "1"}
    await post(c, Endpoint.SUBSCRIBE, sub)
    await c.post("/__sandbox/faults", json={"latency_ms": 1})
    assert (await c.post("/__sandbox/reset")).status == 200
    r = await post(c, Endpoint.SUBSCRIBE, sub)
    assert r.status == 202  # the window was reset too
    assert (await r.json())["subscriptionResponses"][0]["subscriptionCreationStatus"] == "NEWLY_CREATED"
    assert (await (await c.get("/__sandbox/faults")).json())["latency_ms"] == 0
    assert isinstance(c.server, TestServer)
    assert c.server.app[SANDBOX_KEY].journal.total == 1


def test_settings_repr_hides_the_key() -> None:
    assert KEY not in repr(SandboxSettings(api_key=KEY))
