"""The sandbox's Identity API and privacy deletion requests: answers per the spec, links, attribution counts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from connector.attentive.endpoints import Endpoint
from connector.attentive.spec import default_validator
from connector.sandbox.app import SandboxSettings, make_app
from connector.sandbox.identities import mask_email, mask_phone
from tests.unit.attentive_examples import BAD_SHAPES, PRIVACY_BAD_SHAPES

KEY = "sandbox-identity-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PHONE = "+13115552368"
V = default_validator()

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


async def post(c: TestClient[Any, Any], endpoint: Endpoint, body: Any) -> Any:
    return await c.post(
        endpoint.path, data=json.dumps(body).encode(), headers={**AUTH, "X-Record-Id": "t/0/1"}
    )


async def stats(c: TestClient[Any, Any]) -> dict[str, Any]:
    result: dict[str, Any] = await (await c.get("/__sandbox/stats")).json()
    return result


async def test_identity_answers_202_without_a_body_and_its_rate_limit_is_10(make: Factory) -> None:
    c = await make(clock=lambda: 10_000.25)  # one fixed second: the window cannot roll over mid-test
    r = await post(c, Endpoint.IDENTITY, {"phone": PHONE, "clientUserId": "cust-1"})
    assert r.status == 202 and await r.read() == b""
    assert r.headers["x-ratelimit-limit"] == "10"
    body = {"email": "a@b.co", "clientUserId": "c"}
    statuses = [(await post(c, Endpoint.IDENTITY, body)).status for _ in range(10)]
    assert statuses == [202] * 9 + [429]  # the 11th in one second is over Attentive's 10/s


@pytest.mark.parametrize(
    ("name", "endpoint", "body", "fragment"),
    [s for s in BAD_SHAPES if s[1] is Endpoint.IDENTITY],
    ids=[s[0] for s in BAD_SHAPES if s[1] is Endpoint.IDENTITY],
)
async def test_invalid_identity_requests_get_400(
    make: Factory, name: str, endpoint: Endpoint, body: Any, fragment: str
) -> None:
    c = await make()
    r = await post(c, endpoint, body)
    assert r.status == 400
    assert fragment in (await r.json())["error"]["message"]
    assert (await stats(c))["identity"]["links"] == 0  # nothing linked by a refused request


async def test_privacy_delete_answers_with_an_id_then_get_returns_it_masked(make: Factory) -> None:
    c = await make()
    r = await post(
        c,
        Endpoint.PRIVACY_DELETE,
        {"subjectPhone": PHONE, "subjectEmail": "abc@website.com", "requestMsg": "m"},
    )
    assert r.status == 200
    answer = await r.json()
    assert V.validate_component("PrivacyRequestDto", answer) == [] and answer["id"]
    got = await c.get(f"{Endpoint.PRIVACY_DELETE.path}/{answer['id']}", headers=AUTH)
    assert got.status == 200
    request = await got.json()
    assert V.validate_component("PrivacyRequestDto", request) == []
    assert request["id"] == answer["id"] and request["type"] == "DELETE" and request["processed"] is False
    assert request["subjectPhone"] == "+*******2368" and request["subjectEmail"] == "a**@website.com"
    assert request["requestMsg"] == "m"
    assert PHONE not in json.dumps(request)
    missing = await c.get(f"{Endpoint.PRIVACY_DELETE.path}/nope", headers=AUTH)
    assert missing.status == 404
    refused = await c.get(f"{Endpoint.PRIVACY_DELETE.path}/{answer['id']}")
    assert refused.status == 401
    assert (await stats(c))["privacy"] == {"delete_requests": 1}


@pytest.mark.parametrize(
    ("name", "endpoint", "body", "fragment"), PRIVACY_BAD_SHAPES, ids=[s[0] for s in PRIVACY_BAD_SHAPES]
)
async def test_invalid_deletion_requests_get_the_specs_error_body(
    make: Factory, name: str, endpoint: Endpoint, body: Any, fragment: str
) -> None:
    c = await make()
    r = await post(c, endpoint, body)
    assert r.status == 400
    error = await r.json()
    assert V.validate_component("PrivacyRequestErrorDto", error) == []
    assert isinstance(error["error"], str) and fragment in error["error"]
    assert (await stats(c))["privacy"] == {"delete_requests": 0}


async def test_privacy_delete_without_validation_still_answers_an_id(make: Factory) -> None:
    c = await make(validate=False)
    r = await post(c, Endpoint.PRIVACY_DELETE, {"subjectEmail": "a@b.co"})
    assert r.status == 200 and (await r.json())["id"]
    assert (await post(c, Endpoint.IDENTITY, {"clientUserId": "c"})).status == 202


async def test_events_by_customer_id_count_as_attributed_only_after_a_link(make: Factory) -> None:
    c = await make()
    by_id = {"type": "Order Shipped", "user": {"externalIdentifiers": {"clientUserId": "cust-7"}}}
    assert (await post(c, Endpoint.CUSTOM_EVENT, by_id)).status == 200  # Attentive answers 200 either way
    assert (await stats(c))["identity"]["events_by_external_id"] == {"attributed": 0, "unattributed": 1}
    assert (await post(c, Endpoint.IDENTITY, {"phone": PHONE, "clientUserId": "cust-7"})).status == 202
    assert (await post(c, Endpoint.CUSTOM_EVENT, by_id)).status == 200
    by_custom = {
        "properties": {"tier": "GOLD"},
        "user": {"externalIdentifiers": {"customIdentifiers": [{"name": "loyaltyId", "value": "L1"}]}},
    }
    assert (await post(c, Endpoint.CUSTOM_ATTRIBUTES, by_custom)).status == 200  # not linked yet
    # a later link through the same client user id brings in the loyalty id
    assert (
        await post(
            c,
            Endpoint.IDENTITY,
            {"clientUserId": "cust-7", "customIdentifiers": [{"name": "loyaltyId", "value": "L1"}]},
        )
    ).status == 202
    assert (await post(c, Endpoint.CUSTOM_ATTRIBUTES, by_custom)).status == 200
    # events with a phone or email are not counted: they need no link
    assert (await post(c, Endpoint.CUSTOM_EVENT, {"type": "X", "user": {"phone": PHONE}})).status == 200
    s = await stats(c)
    assert s["identity"] == {"links": 2, "events_by_external_id": {"attributed": 2, "unattributed": 2}}
    assert (await c.post("/__sandbox/reset")).status == 200
    assert (await stats(c))["identity"] == {
        "links": 0,
        "events_by_external_id": {"attributed": 0, "unattributed": 0},
    }


def test_masks() -> None:
    assert mask_phone("+13115555555") == "+*******5555"
    assert mask_email("abc@website.com") == "a**@website.com"
    assert mask_email("broken") == "***"
